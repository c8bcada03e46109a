#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_slurm.sh BIN_DIR SOURCE_DIR -- scripts/slurm/pp.sbatch against a real
# Slurm on this machine: munged (its own key and socket), slurmctld and three
# slurmd (n1..n3, NodeAddr 127.0.0.1, a port each), all in a private
# temporary directory, then
#   (i)  sbatch -N 3 --wait pp.sbatch: pp-fib's results are right, jobs ran
#        on each of the three ppservers (the statistics table and each
#        ppserver's "stopped after N jobs"), the secret is gone and no
#        process of the job is left;
#   (ii) a long run (a user command: pp-fib through PP_SERVERS and
#        PP_SECRET_FILE, then a sleep) cancelled with scancel once it runs:
#        every ppserver stops cleanly, no process of the job (srun,
#        ppserver, the command) is left, the secret is gone;
#   (iii) --serve with nobody connecting: the ppservers leave after
#        --idle-exit and the job ends by itself;
#   (iv) ppservers that cannot start (a bad option): the job fails at once
#        with the script's error and ppserver's reason, nothing left.
# Every daemon and every process started here (they all carry
# PP_SLURM_TEST_TAG in their environment) is killed at the end, on failure
# too.  Exits 77 (skipped) with the reason when the daemons cannot start:
# not root, Slurm or munge missing, munged or a Slurm daemon failing at start.
set -euo pipefail

bin=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
sbatch_script=$src/scripts/slurm/pp.sbatch

skip() {
    echo "slurm: SKIPPED: $*"
    exit 77
}

if [ "${PP_TEST_SANITIZED:-0}" != 0 ]; then
    skip "this test checks scripts/slurm/pp.sbatch with Slurm; ppserver's own part" \
        "(--idle-exit, the secret on stdin) runs under the sanitizers in test_lifetime"
fi
[ "$(id -u)" = 0 ] || skip "needs root (slurmd and slurmctld run as root here)"
for c in munged slurmctld slurmd sbatch srun scontrol sinfo squeue scancel python3 ss; do
    command -v "$c" >/dev/null ||
        skip "$c is missing (Debian: apt-get install slurm-wlm slurm-client munge python3 iproute2)"
done
if [ ! -x "$bin/ppserver" ] || [ ! -x "$bin/pp-fib" ]; then
    skip "no ppserver or pp-fib in $bin"
fi

# A Slurm of our own: nothing of one this shell may run inside of.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC|SQUEUE|SINFO|SCONTROL)_' || true)

# Private directory: 0711, as munged wants every directory above its socket
# searchable; what is secret below it is 0700 or 0600.
T=$(mktemp -d /tmp/pp-slurm.XXXXXX)
chmod 711 "$T"
export PP_SLURM_TEST_TAG=$T
mkdir -m 700 "$T/munge" "$T/state" "$T/log" "$T/cache"
mkdir -m 755 "$T/sock" "$T/spool" "$T/spool/n1" "$T/spool/n2" "$T/spool/n3" "$T/work"
pids=()
t_start=$(date +%s)

# /proc/PID/FILE of the processes whose FILE (environ or cmdline: NUL-
# separated) has an entry equal to $2, as pids.  One grep over all of them.
pids_with() {
    grep -slzxF -- "$2" /proc/[0-9]*/"$1" | sed 's|^/proc/\([0-9]*\)/.*|\1|' |
        grep -vx "$$" || true
}

# Pids of the processes started here: their environment holds our tag.
tagged() { pids_with environ "PP_SLURM_TEST_TAG=$T"; }

# Pids of our processes whose environment has SLURM_JOB_ID=$1.
of_job() {
    comm -12 <(tagged | sort) <(pids_with environ "SLURM_JOB_ID=$1" | sort)
}

# ppserver processes of job directory $1: given $1/secret as an argument.
ppservers_of() {
    local p
    for p in $(pids_with cmdline "$1/secret"); do
        [[ "$(head -zn1 "/proc/$p/cmdline" 2>/dev/null | tr -d '\0')" == */ppserver ]] &&
            echo "$p"
    done
    return 0
}

# Processes of job $1 and ppservers of directory $2, comma-separated.
left_of() {
    { of_job "$1"; ppservers_of "$2"; } | sort -u | paste -sd, -
}

# Job $1's state once it has ended, polled for at most $2 seconds (sbatch
# --wait polls every few seconds, which would make the test slower).
job_end() {
    local state="" i
    for ((i = 0; i < $2 * 4; i++)); do
        state=$(scontrol -o show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        case $state in
        "" | PENDING | CONFIGURING | RUNNING | COMPLETING | SUSPENDED) sleep 0.25 ;;
        *) break ;;
        esac
    done
    echo "$state"
}

cleanup() {
    local rc=$?
    trap - EXIT
    # Only our own controller's jobs (never a Slurm this machine may run).
    if [ "${SLURM_CONF:-}" = "$T/slurm.conf" ] && [ -n "$(squeue -h -o %i 2>/dev/null || true)" ]; then
        # shellcheck disable=SC2046
        scancel $(squeue -h -o %i) 2>/dev/null || true
        for _ in $(seq 40); do
            [ -z "$(squeue -h -o %i 2>/dev/null || true)" ] && break
            sleep 0.25
        done
    fi
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 40); do
            kill -0 "${pids[@]}" 2>/dev/null || break
            sleep 0.25
        done
    fi
    # Whatever of ours is left (a daemon that ignored SIGTERM, a step).
    # shellcheck disable=SC2046
    kill -KILL "${pids[@]}" $(tagged) 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
        for f in "$T"/log/*; do
            echo "---- $f (last lines)"
            tail -n 25 "$f"
        done
    fi
    rm -rf "$T"
    echo "slurm: $(($(date +%s) - t_start)) s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

fail() {
    echo "slurm: FAIL: $*" >&2
    exit 1
}
pass() { echo "PASS $*"; }

# ---- munge ----
head -c 1024 /dev/urandom >"$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
munged -F --key-file="$T/munge/munge.key" --socket="$T/sock/munge.sock" \
    --pid-file="$T/munge/munged.pid" --log-file="$T/log/munged.log" \
    --seed-file="$T/munge/seed" >"$T/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    [ -S "$T/sock/munge.sock" ] && break
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.1
done
munge -S "$T/sock/munge.sock" -n 2>/dev/null | unmunge -S "$T/sock/munge.sock" >/dev/null 2>&1 ||
    skip "munged did not start: $(tail -n 3 "$T/log/munged.out" | tr '\n' ' ')"

# ---- Slurm: five free ports below the ephemeral range ----
read -r p_ctld p_d p1 p2 p3 < <(python3 - <<'EOF'
import random, socket
ports = []
while len(ports) < 5:
    p = random.randint(20000, 32000)
    if p in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("", p))
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(*ports)
EOF
)
cat >"$T/slurm.conf" <<EOF
ClusterName=pptest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$p_ctld
SlurmdPort=$p_d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$T/sock/munge.sock
CredType=cred/munge
CommunicationParameters=NoInAddrAny
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool/%n
SlurmctldPidFile=$T/state/slurmctld.pid
SlurmdPidFile=$T/spool/slurmd.%n.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=10
MessageTimeout=5
InactiveLimit=0
KillWait=5
MinJobAge=60
Waittime=0
NodeName=n1 NodeAddr=127.0.0.1 NodeHostname=localhost Port=$p1 CPUs=1 RealMemory=100 State=UNKNOWN
NodeName=n2 NodeAddr=127.0.0.1 NodeHostname=localhost Port=$p2 CPUs=1 RealMemory=100 State=UNKNOWN
NodeName=n3 NodeAddr=127.0.0.1 NodeHostname=localhost Port=$p3 CPUs=1 RealMemory=100 State=UNKNOWN
PartitionName=pp Nodes=n[1-3] Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$T/slurm.conf
slurmctld -D -c -f "$SLURM_CONF" >"$T/log/slurmctld.out" 2>&1 &
pids+=($!)
for n in n1 n2 n3; do
    slurmd -D -N "$n" -f "$SLURM_CONF" >"$T/log/slurmd.$n.out" 2>&1 &
    pids+=($!)
done
idle=0
for _ in $(seq 120); do # 30 s
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null ||
            skip "a Slurm daemon exited at start (pid $p): $(cat "$T"/log/*.out | tail -n 5 | tr '\n' ' ')"
    done
    idle=$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle$' || true)
    [ "$idle" = 3 ] && break
    sleep 0.25
done
[ "$idle" = 3 ] || fail "sinfo shows $idle idle node(s) of 3 after 30 s: $(sinfo -N 2>&1 | tr '\n' ' ')"
pass "munged, slurmctld and three slurmd up; sinfo: 3 idle nodes ($(($(date +%s) - t_start)) s)"

# What the sbatch script gets from us: pp's executables, ppservers on the
# loopback only with their module cache here, short waits.
export PP_BIN_DIR=$bin PP_SERVER_OPTS="-i 127.0.0.1 --cache-dir $T/cache"
export PP_IDLE_EXIT=120 PP_START_TIMEOUT=30
cd "$T/work"

# ---- (i) pp-fib across the three nodes ----
t0=$(date +%s)
rc=0
out=$(timeout 120 sbatch --parsable -N 3 --wait -o "$T/log/job-%j.out" "$sbatch_script") || rc=$?
id=${out%%;*}
[ "$rc" = 0 ] || fail "sbatch --wait pp.sbatch exited $rc (job '$id'): $(cat "$T/log/job-$id.out" 2>/dev/null)"
job_out=$T/log/job-$id.out
dir=$T/work/pp-$id
pass "sbatch -N 3 --wait pp.sbatch: job $id ended with status 0 ($(($(date +%s) - t0)) s)"

expected=$(a=0 b=1; for n in $(seq 0 92); do echo "fib($n) = $a"; t=$((a + b)); a=$b; b=$t; done)
got=$(grep '^fib(' "$job_out" | sed 's/  \[.*\]$//')
[ "$got" = "$expected" ] ||
    fail "pp-fib's results differ from fib(0..92): $(diff <(echo "$expected") <(echo "$got") | head)"
pass "pp-fib: fib(0..92) all right"

[ "$(wc -l <"$dir/nodes")" = 3 ] || fail "the nodes file has not 3 lines: $(cat "$dir/nodes")"
for n in n1 n2 n3; do
    port=$(cat "$dir/port.$n")
    grep -qx "127.0.0.1:$port" "$dir/nodes" || fail "$n's port $port is not in the nodes file"
    jobs=$(awk -v node="127.0.0.1:$port" '$1 == node { print $3 }' "$job_out")
    if [ -z "$jobs" ] || [ "$jobs" -le 0 ]; then
        fail "no job ran on $n (127.0.0.1:$port): $(grep -A5 'statistics' "$job_out")"
    fi
    log_jobs=$(sed -n 's/.*stopped after \([0-9]*\) jobs.*/\1/p' "$dir/ppserver.$n.log")
    [ "$log_jobs" = "$jobs" ] ||
        fail "$n's ppserver log says it ran '${log_jobs}' jobs (stopped cleanly?), the table $jobs"
done
pass "jobs ran on each of the three ppservers, each stopped cleanly after them"

[ ! -e "$dir/secret" ] || fail "the secret $dir/secret is still there"
left=""
for _ in $(seq 40); do
    left=$(left_of "$id" "$dir")
    [ -z "$left" ] && break
    sleep 0.25
done
[ -z "$left" ] || fail "processes of job $id left: $(ps -o pid,args -p "$left" 2>&1)"
pass "no ppserver, srun or other process of job $id left; the secret removed"

# ---- (ii) a long run, cancelled ----
# A user command: pp-fib given neither nodes nor secret, so libpp takes
# them from the exported PP_SERVERS (@ the nodes file) and PP_SECRET_FILE;
# then a long sleep.
t0=$(date +%s)
# shellcheck disable=SC2016
id=$(sbatch --parsable -N 3 -o "$T/log/job-%j.out" "$sbatch_script" sh -c '
    echo "servers: $PP_SERVERS secret file: $PP_SECRET_FILE"
    "$PP_BIN_DIR/pp-fib" --ncpus 0 10 20 30 && exec sleep 300')
id=${id%%;*}
dir=$T/work/pp-$id
job_out=$T/log/job-$id.out
for _ in $(seq 240); do # 60 s
    grep -q '^fib(30) = 832040' "$job_out" 2>/dev/null && break
    sleep 0.25
done
grep -q '^fib(30) = 832040' "$job_out" 2>/dev/null ||
    fail "the long run did not get going within 60 s: $(squeue 2>&1; cat "$job_out" 2>&1)"
grep -qxF "servers: @$dir/nodes secret file: $dir/secret" "$job_out" ||
    fail "PP_SERVERS, PP_SECRET_FILE are not @$dir/nodes, $dir/secret: $(grep servers: "$job_out")"
n_srv=$(ppservers_of "$dir" | wc -l)
[ "$n_srv" = 3 ] || fail "$n_srv ppserver(s) of job $id running, not 3"
# pp-fib ran on the nodes (--ncpus 0), every one of them listed: it took
# them from the nodes file.
for n in n1 n2 n3; do
    grep -qE "^ 127\.0\.0\.1:$(cat "$dir/port.$n") " "$job_out" ||
        fail "pp-fib did not get $n's ppserver through PP_SERVERS: $(cat "$job_out")"
done
[ -e "$dir/secret" ] || fail "no secret while the job runs"
[ "$(stat -c %a "$dir/secret") $(stat -c %a "$dir")" = "600 700" ] ||
    fail "the secret is mode $(stat -c %a "$dir/secret") in a directory of mode $(stat -c %a "$dir")"
# (The pattern comes from the file: on grep's own command line it would
# find itself.)
hits=$(grep -salF -f "$dir/secret" /proc/[0-9]*/cmdline || true)
[ -z "$hits" ] || fail "the secret is in the command line of: $hits"
pass "the secret: mode 0600 in a 0700 directory, on no command line"
pass "a long run (user command) going on 3 ppservers, PP_SERVERS and PP_SECRET_FILE used"

t1=$(date +%s)
scancel "$id"
left=""
for _ in $(seq 120); do # 30 s
    left=$(left_of "$id" "$dir")
    [ -z "$left" ] && [ ! -e "$dir/secret" ] && break
    sleep 0.25
done
[ -z "$left" ] ||
    fail "processes of job $id left 30 s after scancel: $(ps -o pid,args -p "$left" 2>&1)"
[ ! -e "$dir/secret" ] || fail "the secret $dir/secret is still there 30 s after scancel"
for n in n1 n2 n3; do
    grep -q 'stopped after' "$dir/ppserver.$n.log" ||
        fail "$n's ppserver did not stop cleanly: $(cat "$dir/ppserver.$n.log")"
done
state=$(job_end "$id" 30) # COMPLETING until Slurm has heard from every node
[ "$state" = CANCELLED ] || fail "job $id is $state after scancel, not CANCELLED"
pass "scancel: every ppserver stopped cleanly, no srun or process of job $id left," \
    "the secret removed ($(($(date +%s) - t1)) s; run $(($(date +%s) - t0)) s)"

# ---- (iii) --serve: nobody comes, the allocation is freed ----
t0=$(date +%s)
id=$(PP_IDLE_EXIT=2 sbatch --parsable -N 3 -o "$T/log/job-%j.out" "$sbatch_script" --serve)
id=${id%%;*}
dir=$T/work/pp-$id
state=$(job_end "$id" 60)
[ "$state" = COMPLETED ] ||
    fail "pp.sbatch --serve with no client: job $id is '$state', not COMPLETED: $(cat "$T/log/job-$id.out" 2>&1)"
for n in n1 n2 n3; do
    grep -q 'no client for 2 s (--idle-exit): exiting' "$dir/ppserver.$n.log" ||
        fail "$n's ppserver did not exit for want of clients: $(cat "$dir/ppserver.$n.log")"
done
[ ! -e "$dir/secret" ] || fail "the secret $dir/secret is still there after --serve"
[ -z "$(left_of "$id" "$dir")" ] || fail "processes of job $id left after --serve"
pass "--serve with no client: each ppserver left after 2 s idle, the job ended by itself ($(($(date +%s) - t0)) s)"

# ---- (iv) ppservers that cannot start: a clear error, nothing left ----
t0=$(date +%s)
id=$(PP_SERVER_OPTS="--no-such-option" PP_START_TIMEOUT=60 \
    sbatch --parsable -N 3 -o "$T/log/job-%j.out" "$sbatch_script")
id=${id%%;*}
dir=$T/work/pp-$id
state=$(job_end "$id" 60)
[ "$state" = FAILED ] || fail "a job whose ppservers cannot start is '$state', not FAILED"
grep -q "the ppservers' step ended before .* reported its port" "$T/log/job-$id.out" ||
    fail "no clear error when the ppservers cannot start: $(cat "$T/log/job-$id.out")"
grep -q 'unrecognized option' "$T/log/job-$id.out" ||
    fail "ppserver's own reason is not in the job's output: $(cat "$T/log/job-$id.out")"
[ ! -e "$dir/secret" ] || fail "the secret $dir/secret is still there after a failed start"
[ -z "$(left_of "$id" "$dir")" ] || fail "processes of job $id left after a failed start"
pass "ppservers that cannot start: the job fails at once saying why, nothing left ($(($(date +%s) - t0)) s)"
