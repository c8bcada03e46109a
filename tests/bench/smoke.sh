#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# smoke.sh BIN_DIR -- the benchmark programs with tiny counts, so that the
# suite never rots: every pp-bench subcommand locally and against a ppserver
# on 127.0.0.1 (directly, through delay-proxy, and through delay-proxy with
# a rate limit, which must hold), pp-bench limits, pp-scale's three against
# it, spin-cmd, and usage errors.  Each run must print one JSON object with
# positive figures and no job errors.  No Gearman, no network beyond
# loopback.
set -uo pipefail
bin=$(cd "$1" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# check NAME KEY... -- COMMAND...: runs COMMAND (at most 120 s); its stdout
# must be one JSON object whose KEYs are positive numbers and whose
# "errors" (if any) is 0.
check() {
    local name=$1
    shift
    local keys=()
    while [ "$1" != "--" ]; do
        keys+=("$1")
        shift
    done
    shift
    local out rc
    out=$(timeout 120 "$@" 2>"$tmp/err")
    rc=$?
    if [ $rc -ne 0 ]; then
        bad "$name (exit $rc): $(head -c 500 "$tmp/err")"
        return
    fi
    if printf '%s\n' "$out" | python3 -c "$validate" "${keys[@]}" 2>"$tmp/perr"; then
        ok "$name: $out"
    else
        bad "$name: $(tail -1 "$tmp/perr") in: $out"
    fi
}
validate='
import json, sys
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
assert len(lines) == 1, "want one line, got %d" % len(lines)
d = json.loads(lines[0])
for k in sys.argv[1:]:
    v = d.get(k)
    assert isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "%s = %r" % (k, v)
assert d.get("errors", 0) == 0, "errors = %r" % d.get("errors")
'

# A ppserver on loopback with a fresh secret, and the delay proxy before it.
"$bin/ppserver" --gen-secret "$tmp/secret" 2>/dev/null
"$bin/ppserver" -p 0 -i 127.0.0.1 -w 1 --secret-file "$tmp/secret" --port-file "$tmp/port" \
    --cache-dir "$tmp/cache" --log-file "$tmp/ppserver.log" &
server_pid=$!
pids+=($server_pid)
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
if [ ! -s "$tmp/port" ]; then
    echo "ppserver did not start:"
    cat "$tmp/ppserver.log"
    echo "0 passed, 1 failed"
    exit 1
fi
port=$(cat "$tmp/port")
"$bin/delay-proxy" --to "$port" --port-file "$tmp/pport" --delay-ms 1 --max-seconds 600 &
pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/pport" ] && break; sleep 0.05; done
pport=$(cat "$tmp/pport" 2>/dev/null || echo 1)
# The same with 50 Mbit/s each way: 6.25 MB/s.
"$bin/delay-proxy" --to "$port" --port-file "$tmp/rport" --delay-ms 1 --rate-mbit 50 \
    --max-seconds 600 &
pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/rport" ] && break; sleep 0.05; done
rport=$(cat "$tmp/rport" 2>/dev/null || echo 1)
remote=(--servers "127.0.0.1:$port" --secret-file "$tmp/secret")
proxied=(--servers "127.0.0.1:$pport" --secret-file "$tmp/secret")
pb="$bin/pp-bench"

check "rss of the idle ppserver" rss_kb pss_kb processes -- "$pb" rss --pid "$server_pid"
check "tiny local" jobs_per_s seconds -- "$pb" tiny --jobs 2000
check "map local" items_per_s seconds jobs -- "$pb" map --n 20000
check "latency local" median_us p99_us -- "$pb" latency --n 50
check "cpu 1 worker" seconds jobs_per_s -- "$pb" cpu --jobs 4 --ms 5 --ncpus 1
check "cpu 2 workers" seconds jobs_per_s -- "$pb" cpu --jobs 4 --ms 5 --ncpus 2
check "payload local 1 MiB" mb_per_s median_mb_per_s -- "$pb" payload --bytes 1048576 --reps 3
check "payload local 256 KiB compressible" mb_per_s -- "$pb" payload --bytes 262144 --reps 3 \
    --pattern compressible
check "payload local 1 MiB zero-copy" mb_per_s -- "$pb" payload --bytes 1048576 --reps 3 --zero-copy
check "payload local 100 bytes zero-copy" mb_per_s -- "$pb" payload --bytes 100 --reps 3 --zero-copy
check "limits at 64 KiB" warm_memcpy_mb_per_s fresh_memcpy_mb_per_s tcp_echo_mb_per_s \
    warm_memcpy_best_mb_per_s tcp_echo_samples tcp_saf_mb_per_s tls_saf_mb_per_s \
    tls_saf_samples -- "$pb" limits --bytes 65536
check "limits at 4 KiB" warm_memcpy_mb_per_s fresh_memcpy_mb_per_s tcp_echo_mb_per_s \
    tcp_saf_mb_per_s tls_saf_mb_per_s -- "$pb" limits --bytes 4096
check "queue" bytes_per_job rss_after_kb -- "$pb" queue --jobs 10000
check "cancel of queued jobs" ms -- "$pb" cancel --jobs 1000
check "rss with max_pending" peak_rss_kb jobs_per_s -- "$pb" pending-rss --n 20000
check "tiny remote" jobs_per_s -- "$pb" tiny --jobs 2000 "${remote[@]}"
check "map remote" items_per_s jobs -- "$pb" map --n 20000 "${remote[@]}"
check "latency remote" median_us p99_us -- "$pb" latency --n 50 "${remote[@]}"
check "payload remote 1 MiB" mb_per_s -- "$pb" payload --bytes 1048576 --reps 3 "${remote[@]}"
check "payload remote 256 KiB compressible" mb_per_s -- "$pb" payload --bytes 262144 --reps 3 \
    --pattern compressible "${remote[@]}"
check "payload remote 256 KiB zero-copy" mb_per_s -- "$pb" payload --bytes 262144 --reps 3 \
    --zero-copy "${remote[@]}"
for mode in always never; do
    check "payload remote 256 KiB compressible, --compress $mode" mb_per_s -- "$pb" payload \
        --bytes 262144 --reps 3 --pattern compressible --compress $mode "${remote[@]}"
done
check "hide direct" jobs_per_s -- "$pb" hide --jobs 100 --ms 1 --warmup 20 "${remote[@]}"
check "hide through the delay proxy" jobs_per_s -- "$pb" hide --jobs 100 --ms 1 --warmup 20 "${proxied[@]}"
# Random bytes (nothing to compress) through the 50 Mbit/s proxy: each
# 256 KiB round trip crosses it twice, so at most 3.125 MB/s, and a little
# more for the bucket's 16 KiB bursts: the limit holds whatever the load.
out=$(timeout 120 "$pb" payload --bytes 262144 --reps 2 --servers "127.0.0.1:$rport" \
    --secret-file "$tmp/secret" 2>"$tmp/err")
if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["errors"] == 0 and 0 < d["mb_per_s"] <= 3.125 * 1.15 else 1)' \
    "$out" 2>/dev/null; then
    ok "payload through the rate-limited proxy stays within 50 Mbit/s: $out"
else
    bad "payload through the rate-limited proxy: $out $(head -c 300 "$tmp/err")"
fi
# The scale rows' program (scripts/bench.d/scale.sh), with one node.
ps="$bin/pp-scale"
check "scale: nodes" connect_s idle_s up_at_end -- "$ps" nodes --port-base "$port" --count 1 \
    --idle 0.5 --secret-file "$tmp/secret"
check "scale: clients of a node" rss_low_kb rss_high_kb -- "$ps" clients --counts 1,2 --idle 0.5 \
    --pid "$server_pid" "${remote[@]}"
check "scale: clients sharing a node" fastest_s slowest_s ratio -- "$ps" share --clients 3 \
    --jobs 2 --ms 1 "${remote[@]}"

# The GNU parallel peer's command: the same spin, as a process.
t0=$(date +%s%N)
if "$bin/spin-cmd" 20 && [ $((($(date +%s%N) - t0) / 1000000)) -ge 20 ]; then
    ok "spin-cmd 20 burns at least 20 ms"
else
    bad "spin-cmd 20"
fi
"$bin/spin-cmd" bogus 2>/dev/null
[ $? -eq 2 ] && ok "spin-cmd refuses a bad number" || bad "spin-cmd refuses a bad number"
"$pb" frobnicate >/dev/null 2>&1
[ $? -eq 2 ] && ok "pp-bench refuses an unknown command" || bad "pp-bench refuses an unknown command"
"$pb" tiny --jobs x >/dev/null 2>&1
[ $? -eq 2 ] && ok "pp-bench refuses a bad number" || bad "pp-bench refuses a bad number"
"$pb" payload --pattern zeros >/dev/null 2>&1
[ $? -eq 2 ] && ok "pp-bench refuses an unknown pattern" || bad "pp-bench refuses an unknown pattern"
"$pb" payload --compress sometimes >/dev/null 2>&1
[ $? -eq 2 ] && ok "pp-bench refuses an unknown --compress" || bad "pp-bench refuses an unknown --compress"
"$bin/delay-proxy" --to 1 --rate-mbit 0 >/dev/null 2>&1
[ $? -eq 2 ] && ok "delay-proxy refuses a zero rate" || bad "delay-proxy refuses a zero rate"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
