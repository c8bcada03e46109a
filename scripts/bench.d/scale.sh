#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/bench.d/scale.sh -- the scale rows of scripts/bench (S1..S4), run
# by it after B9; also runs alone on a build:
#   scale.sh BIN_DIR WORK_DIR RESULTS QUICK(0|1) RUNS
# Starts NODES ppservers (-w 1; 1,000, or 100 with QUICK) on 127.0.0.1 at
# consecutive ports below the ephemeral range (from 20000 up, a block where
# nothing listens), plus one -w 2 node, and appends "KEY<TAB>JSON" lines to
# RESULTS: s1.nodes (one client with every node: connect time, idle CPU,
# RSS per node), s2.clients (a node's RSS and CPU with 1 and 64 idle
# clients), s3.n16 / s3.n64 (tiny jobs through 16 and 64 nodes), s4.share
# (64 clients sharing the -w 2 node), s.meta.  Every server it starts is
# stopped when it ends, on failure and on a signal too.  PP_SCALE_ROWS
# (e.g. "s1 s4") runs only those rows; PP_SCALE_NO_TLS=1 runs nodes and
# clients in plaintext (noted in s.meta).
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: scale.sh BIN_DIR WORK_DIR RESULTS QUICK RUNS" >&2; exit 2; }
bin=$1 work=$2 results=$3 quick=$4 runs=$5
log() { printf '==> %s\n' "$*" >&2; }

if [ "$quick" = 1 ]; then
    nodes=100 idle=5 clients=16 share_jobs=8 tiny_jobs=20000
else
    nodes=1000 idle=10 clients=64 share_jobs=16 tiny_jobs=200000
fi
share_ms=5
notes=()

# Memory: about 5.6 MB per node (ppserver and its worker); fewer nodes
# rather than a machine out of memory.
avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
fit=$(((avail_kb - 1048576) / 6144))
if [ "$fit" -lt "$nodes" ]; then
    notes+=("only ${fit} nodes fit in the free memory (wanted $nodes)")
    nodes=$fit
fi
# Descriptors: the client holds one socket per node.
want_fd=$((nodes + 1024))
if [ "$(ulimit -n)" -lt "$want_fd" ]; then
    hard=$(ulimit -Hn)
    [ "$hard" = unlimited ] || [ "$hard" -ge "$want_fd" ] || want_fd=$hard
    ulimit -n "$want_fd"
    if [ $((want_fd - 1024)) -lt "$nodes" ]; then
        notes+=("ulimit -n allows $((want_fd - 1024)) nodes only (wanted $nodes)")
        nodes=$((want_fd - 1024))
    fi
fi
[ "$nodes" -ge 17 ] || { log "scale: memory or descriptors for $nodes nodes only"; exit 1; }
# A block of ports nobody listens on, below the ephemeral range.
eph_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
listening=$(ss -ltnH 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}' | sort -un)
base=""
for b in $(seq 20000 1000 $((eph_lo - nodes - 2))); do
    if ! awk -v lo="$b" -v hi=$((b + nodes + 1)) '$1 >= lo && $1 <= hi {f=1} END {exit !f}' \
        <<<"$listening"; then
        base=$b
        break
    fi
done
[ -n "$base" ] || { log "scale: no free block of $((nodes + 1)) ports below $eph_lo"; exit 1; }

mkdir -p "$work"
pids=()
mpid="" # the measurement running, if any
cleanup() {
    trap - EXIT INT TERM
    [ -z "$mpid" ] || kill -TERM "$mpid" 2>/dev/null || true
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local i
    for i in $(seq 50); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$bin/ppserver" --gen-secret "$work/secret" 2>/dev/null
secret=(--secret-file "$work/secret")
if [ "${PP_SCALE_NO_TLS:-0}" = 1 ]; then
    secret+=(--no-tls) # every ppserver, pp-scale and pp-bench below takes it
    notes+=("plaintext (PP_SCALE_NO_TLS=1)")
fi
# start_node I WORKERS: a node on port base+I.
start_node() {
    "$bin/ppserver" -p $((base + $1)) -i 127.0.0.1 -w "$2" "${secret[@]}" \
        --port-file "$work/$1.port" --cache-dir "$work/cache.$1" --log-file "$work/$1.log" \
        --log-level warn 2>>"$work/$1.log" &
    pids+=($!)
}
wait_ports() { # FIRST LAST: up to 60 s for their port files
    local i t
    for ((i = $1; i <= $2; i++)); do
        for t in $(seq 1200); do
            [ -s "$work/$i.port" ] && continue 2
            kill -0 "${pids[$i]}" 2>/dev/null || break
            sleep 0.05
        done
        log "scale: the node on port $((base + i)) did not start:"
        cat "$work/$i.log" >&2
        exit 1
    done
}
t0=$(date +%s.%N)
for ((first = 0; first < nodes; first += 50)); do
    last=$((first + 49 < nodes - 1 ? first + 49 : nodes - 1))
    for ((i = first; i <= last; i++)); do start_node "$i" 1; done
    wait_ports "$first" "$last"
done
start_node "$nodes" 2
wait_ports "$nodes" "$nodes"
log "scale: $nodes nodes (-w 1) on 127.0.0.1:$base-$((base + nodes - 1)) and one -w 2 on" \
    "port $((base + nodes)), started in $(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))") s"

record() { printf '%s\t%s\n' "$1" "$2" >>"$results"; }
failed=0
# measure KEY CMD...: in the background, so that a signal stops it at once.
measure() {
    local key=$1 out rc
    shift
    timeout 300 "$@" >"$work/out" 2>"$work/err" &
    mpid=$!
    wait $mpid && rc=0 || rc=$?
    mpid=""
    out=$(cat "$work/out")
    if [ $rc -eq 0 ] && [ -n "$out" ]; then
        record "$key" "$out"
    else
        log "scale: $key failed (exit $rc): $(tail -c 300 "$work/err")"
        notes+=("$key: exit $rc")
        failed=1
    fi
}
list() { # FIRST COUNT: host:port,... of COUNT nodes
    local i s=""
    for ((i = $1; i < $1 + $2; i++)); do s+="${s:+,}127.0.0.1:$((base + i))"; done
    echo "$s"
}
pscale="$bin/pp-scale"
want() { case " ${PP_SCALE_ROWS:-s1 s2 s3 s4} " in *" $1 "*) return 0 ;; esac; return 1; }
want s1 && log "S1: one client with $nodes idle nodes: connect, ${idle} s idle"
for r in $(seq "$runs"); do
    want s1 || break
    measure s1.nodes "$pscale" nodes --port-base "$base" --count "$nodes" --idle "$idle" \
        "${secret[@]}"
done
want s2 && log "S2: a node's cost with 1 and $clients idle clients"
want s2 && measure s2.clients "$pscale" clients --servers "$(list 0 1)" --pid "${pids[0]}" \
    --counts "1,$clients" --idle 5 "${secret[@]}"
want s3 && log "S3: $tiny_jobs tiny jobs through 16 and 64 nodes (-w 1 each)"
for r in $(seq "$runs"); do
    want s3 || break
    for k in 16 64; do
        [ "$k" -lt "$nodes" ] || continue # nodes 1..k
        measure "s3.n$k" "$bin/pp-bench" tiny --jobs "$tiny_jobs" --ncpus 0 \
            --servers "$(list 1 "$k")" "${secret[@]}"
    done
done
want s4 && log "S4: $clients clients, $share_jobs jobs of $share_ms ms each, sharing one -w 2 node"
for r in $(seq "$runs"); do
    want s4 || break
    measure s4.share "$pscale" share --servers "$(list "$nodes" 1)" --clients "$clients" \
        --jobs "$share_jobs" --ms "$share_ms" "${secret[@]}"
done
still=0
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && still=$((still + 1)); done
[ "$still" -eq ${#pids[@]} ] || notes+=("$((${#pids[@]} - still)) node(s) exited during the rows")
record s.meta "$(python3 - "$nodes" "$base" "$(ulimit -n)" "$clients" "${notes[@]+"${notes[@]}"}" <<'PY'
import json, sys
a = sys.argv[1:]
print(json.dumps({"bench": "scale", "nodes": int(a[0]), "port_base": int(a[1]),
                  "ulimit_n": a[2], "clients": int(a[3]), "notes": a[4:]}))
PY
)"
exit $failed
