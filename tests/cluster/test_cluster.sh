#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cluster.sh BIN_DIR -- scripts/cluster start/status/stop on two
# "hosts" (127.0.0.1 and localhost, through a fake ssh that runs locally),
# pp-fib across them, and the secret's mode on the "remote" side.
set -euo pipefail
bin=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
export HOME=$tmp/home
mkdir -p "$HOME"
export PP_SSH="$root/tests/cluster/fake_ssh"
pass=0
fail=0
check() { if eval "$2"; then pass=$((pass + 1)); echo "PASS $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(free_port)
p2=$(free_port)
hosts=("127.0.0.1:$p1" "localhost:$p2")
cleanup() {
    "$root/scripts/cluster" stop --ppserver "$bin/ppserver" "${hosts[@]}" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

out=$("$root/scripts/cluster" start --ppserver "$bin/ppserver" --workers 1 \
    --secret-file "$tmp/secret" "${hosts[@]}" 2>"$tmp/err") || true
check "start prints the --servers list" "[[ \"\$out\" == \"--servers 127.0.0.1:$p1,localhost:$p2 --secret-file $tmp/secret\" ]]"
check "the local secret file is mode 600" "[ \"\$(stat -c %a '$tmp/secret')\" = 600 ]"
check "the copied secret is mode 600" "[ \"\$(stat -c %a '$HOME/.pp/secret')\" = 600 ]"
check "the copied secret is the same" "cmp -s '$tmp/secret' '$HOME/.pp/secret'"
for _ in $(seq 100); do
    "$root/scripts/cluster" status "${hosts[@]}" >/dev/null 2>&1 && break
    sleep 0.05
done
check "status says both are up" "'$root/scripts/cluster' status '${hosts[0]}' '${hosts[1]}' | grep -c ' up' | grep -qx 2"
# The daemons may need a moment to listen after writing their pidfile.
fib=""
for _ in $(seq 50); do
    fib=$("$bin/pp-fib" --ncpus 0 --servers "127.0.0.1:$p1,localhost:$p2" --secret-file "$tmp/secret" 10 20 30 2>&1) && break
    sleep 0.1
done
check "pp-fib runs across the started nodes" "grep -q 'fib(30) = 832040' <<<\"\$fib\""
"$root/scripts/cluster" stop "${hosts[@]}" >/dev/null 2>&1 || true
for _ in $(seq 100); do
    "$root/scripts/cluster" status "${hosts[@]}" >/dev/null 2>&1 || break
    sleep 0.05
done
check "stop stops them" "! '$root/scripts/cluster' status '${hosts[0]}' >/dev/null 2>&1 && ! '$root/scripts/cluster' status '${hosts[1]}' >/dev/null 2>&1"
check "bad command is refused" "! '$root/scripts/cluster' launch x 2>/dev/null"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
