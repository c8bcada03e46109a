#!/bin/bash
# SPDX-License-Identifier: MIT
# test_discovery.sh -- authenticated discovery (ppserver --announce, "*" in
# libpp's node list) on a network the test builds and nobody else sees: an
# outer network namespace (unshare --net) holding a bridge, and one
# namespace per party joined to it by a veth pair, 10.199.0.0/24:
#   c .2  the client (tests/support/discovery_peer.c client), listing
#         "*239.1.2.3"; a second one there later, pp_add_node("*")
#   a .3  ppserver --announce 239.1.2.3 (multicast) with the secret
#   b .4  ppserver -i 10.199.0.4 --announce (broadcast) with the secret
#   w .5  ppserver --announce 10.199.0.255 with another secret
#   x .6  the attacker: captures, replays, floods
# Checks: a and b are found (by both clients) and run jobs; w is ignored,
# counted and logged once; a captured announcement replayed at once (from
# x) and again after the window is dropped and counted; b frozen (SIGSTOP)
# stops announcing, drains, its jobs finish on a, and it is back once
# thawed; a flood of garbage leaves the client working and its log quiet;
# the nodes end cleanly with no sanitizer report.
# Environment: PP_SERVER, PP_WORKER, PP_TEST_PEER (discovery_peer).  Exits
# 77 with the reason where namespaces cannot be made.
set -u

if [ -z "${PP_DISCOVERY_INNER:-}" ]; then
    for tool in ip nsenter unshare; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "skipped: $tool is not installed (Debian: iproute2, util-linux)"
            exit 77
        }
    done
    if ! unshare --net true 2>/dev/null; then
        echo "skipped: cannot create a network namespace (needs root or CAP_SYS_ADMIN)"
        exit 77
    fi
    PP_DISCOVERY_INNER=1 exec unshare --net bash "$0" "$@"
fi

for v in PP_SERVER PP_WORKER PP_TEST_PEER; do
    [ -x "${!v:-}" ] || { echo "FAIL: $v is not set to a program"; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/pp-discovery.XXXXXX") || exit 1
HOLDERS=()
SERVERS=()
CLIENT_PID=
failures=0
cleanup() {
    [ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null
    [ -n "${CLIENT2_PID:-}" ] && kill "$CLIENT2_PID" 2>/dev/null
    for p in "${SERVERS[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
    for p in "${SERVERS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for p in "${HOLDERS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# ---- the network ----
ip link set lo up
ip link add br0 type bridge || { echo "skipped: cannot make a bridge"; exit 77; }
# No IGMP snooping: the bridge floods multicast as a plain switch does; the
# client's host must still join the group to take it in.
ip link set br0 type bridge mcast_snooping 0 2>/dev/null
ip link set br0 up
declare -A NS
mkns() { # name, host number
    unshare --net sleep 600 &
    local pid=$!
    HOLDERS+=("$pid")
    NS[$1]=$pid
    for _ in $(seq 50); do
        [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.05
    done
    ip link add "v$1" type veth peer name "e$1" &&
        ip link set "e$1" netns "$pid" &&
        ip link set "v$1" master br0 up &&
        nsenter --net=/proc/$pid/ns/net sh -c "ip link set lo up && ip link set e$1 name eth0 &&
            ip addr add 10.199.0.$2/24 dev eth0 && ip link set eth0 up &&
            ip route add default dev eth0" || { echo "skipped: cannot set up namespace $1"; exit 77; }
}
in_ns() { local n=$1; shift; nsenter --net=/proc/${NS[$n]}/ns/net "$@"; }
mkns c 2; mkns a 3; mkns b 4; mkns w 5; mkns x 6

"$PP_SERVER" --gen-secret "$T/secret" >/dev/null || exit 1
"$PP_SERVER" --gen-secret "$T/other" >/dev/null || exit 1

# ---- the nodes ----
start_node() { # name, secret file, where to announce, more options
    mkdir -m 700 "$T/cache-$1"
    # nsenter itself in the background (not a function): $! is ppserver.
    nsenter --net=/proc/${NS[$1]}/ns/net "$PP_SERVER" -p 0 --port-file "$T/$1.port" --secret-file "$2" -w 2 \
        --cache-dir "$T/cache-$1" --announce "$3" --announce-interval 0.5 \
        --log-file "$T/$1.log" --log-level debug "${@:4}" &
    SERVERS+=("$!")
    eval "PID_$1=$!"
    for _ in $(seq 100); do [ -s "$T/$1.port" ] && break; sleep 0.1; done
    [ -s "$T/$1.port" ] || { fail "ppserver $1 did not start"; cat "$T/$1.log"; exit 1; }
}
start_node a "$T/secret" 239.1.2.3       # multicast
start_node b "$T/secret" 255.255.255.255 -i 10.199.0.4 # broadcast, from -i
start_node w "$T/other" 10.199.0.255     # a subnet's broadcast
A="10.199.0.3:$(cat "$T/a.port")"
B="10.199.0.4:$(cat "$T/b.port")"
W="10.199.0.5:$(cat "$T/w.port")"

# ---- the client ----
mkfifo "$T/cmd" "$T/out"
nsenter --net=/proc/${NS[c]}/ns/net env PP_SERVERS='*239.1.2.3' PP_SECRET_FILE="$T/secret" PP_LOG=info \
    "$PP_TEST_PEER" client <"$T/cmd" >"$T/out" 2>"$T/client.log" &
CLIENT_PID=$!
exec 3>"$T/cmd" 4<"$T/out"
ask() { # command; the answer line in $REPLY (bounded: 120 s)
    echo "$*" >&3
    if ! read -r -t 120 REPLY <&4; then REPLY="fail: no answer to $*"; fi
}
read -r -t 30 REPLY <&4
[ "$REPLY" = "ok started" ] || { fail "the client did not start: $REPLY"; cat "$T/client.log"; exit 1; }

# 1. Both nodes with the secret are found and run jobs; w is not.
ask up 2 20
case "$REPLY" in
ok*"$A=0"*"$B=0"* | ok*"$B=0"*"$A=0"*) pass "a and b found: $REPLY" ;;
*) fail "a and b not found: $REPLY" ;;
esac
case "$REPLY" in *"$W"*) fail "the node with another secret became a node: $REPLY" ;; esac
ask submit 20 100
ask collect 60
case "$REPLY" in
ok*"$A="*"$B="* | ok*"$B="*"$A="*) pass "jobs ran on both: $REPLY" ;;
*) fail "jobs: $REPLY" ;;
esac

# A second program on the same host listening on the same port, its "*"
# given later with pp_add_node(): it finds both nodes too.
mkfifo "$T/cmd2" "$T/out2"
nsenter --net=/proc/${NS[c]}/ns/net env -u PP_SERVERS PP_TEST_ADD='*' \
    PP_SECRET_FILE="$T/secret" PP_LOG=info \
    "$PP_TEST_PEER" client <"$T/cmd2" >"$T/out2" 2>"$T/client2.log" &
CLIENT2_PID=$!
exec 5>"$T/cmd2" 6<"$T/out2"
read -r -t 30 REPLY <&6
[ "$REPLY" = "ok started" ] || fail "the second client did not start: $REPLY"
echo "up 2 20" >&5
read -r -t 60 REPLY <&6 || REPLY="fail: no answer"
case "$REPLY" in
ok*"$A=0"*"$B=0"* | ok*"$B=0"*"$A=0"*) pass "a second listener on the host finds both: $REPLY" ;;
*) fail "the second listener: $REPLY" ;;
esac
exec 5>&-
wait "$CLIENT2_PID" || fail "the second client exited $?"
exec 6<&-

# 2. The wrong secret: ignored, counted, logged once.
ask stats
wk=$(echo "$REPLY" | sed -n 's/.*wrong_key=\([0-9]*\).*/\1/p')
[ "${wk:-0}" -gt 0 ] && pass "wrong key counted: $REPLY" || fail "wrong key not counted: $REPLY"
n=$(grep -c "wrong key" "$T/client.log")
[ "$n" = 1 ] && pass "wrong key logged once" || fail "wrong key logged $n times"

# 3. A captured announcement of b, replayed from x at once: dropped.
in_ns x "$PP_TEST_PEER" capture 60001 "$T/captured" 10 10.199.0.4 || fail "nothing captured"
captured_at=$(date +%s.%N)
ask stats
before=$(echo "$REPLY" | sed -n 's/.*replayed=\([0-9]*\).*/\1/p')
in_ns x "$PP_TEST_PEER" send 10.199.0.255 60001 "$T/captured" || fail "cannot replay"
sleep 0.5
ask stats
after=$(echo "$REPLY" | sed -n 's/.*replayed=\([0-9]*\).*/\1/p')
[ "${after:-0}" -gt "${before:-0}" ] && pass "replay dropped and counted: $REPLY" ||
    fail "replay not counted: $REPLY"
ask nodes
case "$REPLY" in *10.199.0.6*) fail "the replayer's address became a node: $REPLY" ;; esac

# 4. b frozen: it stops announcing, drains (REMOVED), its jobs end on a;
# thawed, it announces again and is back.
ask submit 40 300
sleep 0.5
kill -STOP "$PID_b"
ask state "$B" 5 30
case "$REPLY" in ok*) pass "silent b removed: $REPLY" ;; *) fail "b not removed: $REPLY" ;; esac
ask collect 90
case "$REPLY" in
ok*"$A="*) pass "b's jobs finished elsewhere: $REPLY" ;;
*) fail "jobs with b frozen: $REPLY" ;;
esac
grep -q "$B has not announced itself" "$T/client.log" || fail "no log line for silent b"
kill -CONT "$PID_b"
ask state "$B" 0 30
case "$REPLY" in ok*) pass "b back once it announces again: $REPLY" ;; *) fail "b not back: $REPLY" ;; esac

# 5. The same capture again, now older than the window: stale.
for _ in $(seq 100); do
    awk -v now="$(date +%s.%N)" -v then="$captured_at" 'BEGIN { exit !(now - then < 6) }' ||
        break
    sleep 0.2
done
ask stats
before=$(echo "$REPLY" | sed -n 's/.*stale=\([0-9]*\).*/\1/p')
in_ns x "$PP_TEST_PEER" send 10.199.0.255 60001 "$T/captured" || fail "cannot replay"
sleep 0.5
ask stats
after=$(echo "$REPLY" | sed -n 's/.*stale=\([0-9]*\).*/\1/p')
[ "${after:-0}" -gt "${before:-0}" ] && pass "late replay dropped as stale: $REPLY" ||
    fail "late replay not counted: $REPLY"

# 6. A flood of garbage: the client keeps working, its log stays quiet.
lines_before=$(wc -l <"$T/client.log")
in_ns x "$PP_TEST_PEER" flood 10.199.0.255 60001 20000 &
flood_pid=$!
ask submit 20 50
ask collect 60
case "$REPLY" in ok*) pass "jobs during the flood: $REPLY" ;; *) fail "jobs during the flood: $REPLY" ;; esac
wait "$flood_pid"
sleep 0.5
ask up 2 10
case "$REPLY" in ok*) pass "both nodes up after the flood" ;; *) fail "after the flood: $REPLY" ;; esac
ask stats
bad=$(echo "$REPLY" | sed -n 's/.*bad=\([0-9]*\).*/\1/p')
[ "${bad:-0}" -gt 100 ] && pass "garbage counted: $REPLY" || fail "garbage not counted: $REPLY"
added=$(($(wc -l <"$T/client.log") - lines_before))
[ "$added" -le 5 ] && pass "the log stayed quiet ($added lines)" ||
    fail "the flood wrote $added log lines"

exec 3>&-
wait "$CLIENT_PID"
rc=$?
CLIENT_PID=
[ "$rc" = 0 ] || fail "the client exited $rc"
grep -q "Announcements:" "$T/client.log" || fail "pp_print_stats shows no announcement counts"
# The nodes end cleanly (SIGTERM), with nothing from the sanitizers.
for n in a b w; do
    pid_var=PID_$n
    pid=${!pid_var}
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { fail "ppserver $n did not stop"; continue; }
    wait "$pid"
    rc=$?
    [ "$rc" = 0 ] || fail "ppserver $n exited $rc"
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$T/$n.log"; then
        fail "a sanitizer report in ppserver $n's log"
    fi
done
SERVERS=()
if [ "$failures" -ne 0 ]; then
    echo "--- client log"; cat "$T/client.log"
    echo "--- a log"; tail -20 "$T/a.log"
    echo "$failures check(s) failed"
    exit 1
fi
echo "discovery: all checks passed"
