#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_examples.py -- Parallel Python's six examples, ported to C
(ppclient/examples/parallel-python), run on the local pool and across two
real ppserver processes on 127.0.0.1; their output is checked against values
computed here, in Python: prime sums by a sieve, the series with the same
floating-point operations, MD5 with hashlib, the automatic derivatives with
dual numbers, the sorted array from the same random generator.

usage: test_examples.py BIN_DIR
Prints one line per test and "N passed, N failed"; exits non-zero on failure.
"""
import hashlib
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
PPSERVER = os.path.join(BIN, "ppserver")
TIMEOUT = 120  # seconds for any one command: nothing may hang


def prog(name):
    return os.path.join(BIN, name)


# ---- ppservers --------------------------------------------------------------

class Cluster:
    """Two ppservers (-p 0, one worker each) sharing a generated secret."""

    def __init__(self, n):
        self.dir = tempfile.mkdtemp(prefix="pp-examples-")
        self.procs, self.addrs = [], []
        try:
            self.secret = os.path.join(self.dir, "secret")
            subprocess.run([PPSERVER, "--gen-secret", self.secret], check=True,
                           stderr=subprocess.DEVNULL, timeout=TIMEOUT)
            for i in range(n):
                pf = os.path.join(self.dir, f"port{i}")
                p = subprocess.Popen([PPSERVER, "-p", "0", "-i", "127.0.0.1", "-w", "1",
                                      "--secret-file", self.secret, "--port-file", pf,
                                      "--cache-dir", os.path.join(self.dir, f"cache{i}"),
                                      "--log-file", os.path.join(self.dir, f"log{i}")])
                self.procs.append(p)
                deadline = time.time() + 20
                while not (os.path.exists(pf) and open(pf).read().strip()):
                    if time.time() > deadline or p.poll() is not None:
                        raise RuntimeError(f"ppserver {i} did not start")
                    time.sleep(0.05)
                self.addrs.append(f"127.0.0.1:{open(pf).read().strip()}")
        except BaseException:
            self.close()
            raise

    def args(self):
        return ["--servers", ",".join(self.addrs), "--secret-file", self.secret]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


def run(args):
    r = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    # Under ASan + UBSan: a report fails the test whatever the exit status.
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


def run_ok(args):
    rc, out, err = run(args)
    assert rc == 0, f"{os.path.basename(args[0])} exit {rc}: {err.strip()}"
    return out


def stats_jobs(out):
    """{node: jobs} from pp's statistics table."""
    rows = {}
    lines = out.splitlines()
    i = lines.index("Job execution statistics:")
    for line in lines[i + 2:]:
        if line.startswith("Jobs:"):
            break
        f = line.split()
        rows[f[0]] = int(f[2])
    return rows


def check_remote(out, cluster, total):
    """Every job ran on the two ppservers, none locally."""
    rows = stats_jobs(out)
    assert set(cluster.addrs) <= set(rows), rows
    assert rows.get("local", 0) == 0, rows
    assert sum(rows[a] for a in cluster.addrs) == total, (rows, total)
    assert f"Jobs: {total} submitted, {total} done, 0 not done, 0 pending" in out, out


def check_common(out, workers):
    lines = out.splitlines()
    assert lines[0] == f"Starting pp with {workers} workers", lines[0]
    assert re.search(r"^Time elapsed: \d+\.\d+ s$", out, re.M), out
    assert "Job execution statistics:" in out and "Time elapsed since server creation" in out


# ---- sum_primes ---------------------------------------------------------------

def prime_sums(limit):
    """sums[n] = the sum of the primes below n, for n <= limit (a sieve)."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\0\0"
    for i in range(2, int(limit ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(range(i * i, limit + 1, i)))
    sums, acc = [0] * (limit + 1), 0
    for n in range(limit + 1):
        sums[n] = acc
        if sieve[n]:
            acc += n
    return sums


SUMS = prime_sums(100700)


def check_sum_primes(out, inputs):
    lines = [l for l in out.splitlines() if l.startswith("Sum of primes")]
    want = [f"Sum of primes below {n} is {SUMS[n]}" for n in [100] + inputs]
    assert lines == want, (lines, want)


def test_sum_primes_local():
    out = run_ok([prog("pp-sum-primes"), "--ncpus", "2"])
    check_common(out, 2)
    check_sum_primes(out, list(range(100000, 100701, 100)))  # the original's inputs
    assert SUMS[100] == 1060


def test_sum_primes_cluster(cluster):
    inputs = [0, 1, 2, 3, 5, 97, 98, 50000, 99991, 100700]
    out = run_ok([prog("pp-sum-primes"), "--ncpus", "0"] + cluster.args()
                 + [str(n) for n in inputs])
    check_common(out, 0)
    check_sum_primes(out, inputs)
    check_remote(out, cluster, len(inputs) + 1)


# ---- callback and dynamic_ncpus: the series of ln(2) --------------------------

def part_sum(start, end):
    """The job, with the C code's floating-point operations in its order."""
    s = 0.0
    for x in range(start, end):
        if x % 2 == 0:
            s -= 1.0 / x
        else:
            s += 1.0 / x
    return s


def parts_of(end, parts, start=1):
    step = (end - start) // parts + 1
    return [part_sum(start + i * step, min(start + (i + 1) * step, end)) for i in range(parts)]


def floats(pattern, out):
    return [float(x) for x in re.findall(pattern, out, re.M)]


def check_callback(out, parts):
    total = math.fsum(parts)
    got = floats(r"^Partial sum is (\S+) \| diff = \S+$", out)
    diff = floats(r"^Partial sum is \S+ \| diff = (\S+)$", out)
    assert len(got) == 1 and len(diff) == 1, out
    # The callbacks add the parts in the order the jobs finish: the last bits
    # may differ from any one order of addition.
    assert abs(got[0] - total) <= 1e-14, (got, total)
    assert abs(diff[0] - (math.log(2) - got[0])) <= 1e-18, (diff, got)
    assert f"Exact value: ln(2) = {math.log(2)!r}" in out.splitlines(), out


def test_callback(cluster):
    end, parts = 1000000, 37
    want = parts_of(end, parts)
    # The limit is ln(2); after N terms the error is about 1/(2N).
    assert abs(abs(math.fsum(want) - math.log(2)) - 0.5 / end) < 1e-9
    args = ["--end", str(end), "--parts", str(parts)]
    out = run_ok([prog("pp-callback"), "--ncpus", "2"] + args)
    check_common(out, 2)
    check_callback(out, want)
    out = run_ok([prog("pp-callback"), "--ncpus", "0"] + cluster.args() + args)
    check_common(out, 0)
    check_callback(out, want)
    check_remote(out, cluster, parts)


def check_dynamic(out, want_sum, settings):
    blocks = out.split("Starting pp with ")[1:]
    assert len(blocks) == len(settings), out
    want = f"Partial sum is {want_sum!r} | diff = {math.log(2) - want_sum!r}"
    for block, n in zip(blocks, settings):
        lines = block.splitlines()
        assert lines[0] == f"{n} workers", lines
        assert lines[1] == want, (lines[1], want)  # bit for bit: same additions, same order
        assert re.fullmatch(r"Time elapsed: \d+\.\d+ s", lines[2]), lines
    assert "Results identical with every number of workers: yes" in out, out


def test_dynamic_ncpus(cluster):
    end, parts = 1000000, 16
    want = 0  # sum() of the results in submission order, as the original
    for v in parts_of(end, parts):
        want += v
    args = ["--end", str(end), "--parts", str(parts)]
    out = run_ok([prog("pp-dynamic-ncpus"), "--ncpus", "3"] + args)
    check_dynamic(out, want, [1, 2, 3, 1])
    out = run_ok([prog("pp-dynamic-ncpus"), "--ncpus", "2"] + args)
    check_dynamic(out, want, [1, 2, 1])
    out = run_ok([prog("pp-dynamic-ncpus"), "--ncpus", "1"] + cluster.args() + args)
    check_dynamic(out, want, [1, 1])
    rows = stats_jobs(out)
    assert set(cluster.addrs) <= set(rows), rows
    rc, _, err = run([prog("pp-dynamic-ncpus"), "--ncpus", "0"])
    assert rc == 2 and "--ncpus must be at least 1" in err, (rc, err)


# ---- reverse_md5 --------------------------------------------------------------

def md5(n):
    return hashlib.md5(str(n).encode()).hexdigest()


def test_reverse_md5_default():
    out = run_ok([prog("pp-reverse-md5"), "--ncpus", "2"])
    check_common(out, 2)
    h = md5(1829182)  # the original's number
    lines = out.splitlines()
    assert lines[1] == f"hash = {h}", lines
    assert f"Reverse md5 for {h} is 1829182" in lines, out


def test_reverse_md5_cluster(cluster):
    rng = random.Random(20240611)
    end, parts = 300000, 24
    n = rng.randrange(1, end)
    h = md5(n)
    out = run_ok([prog("pp-reverse-md5"), "--ncpus", "0", "--end", str(end), "--parts",
                  str(parts)] + cluster.args() + [h.upper()])
    check_common(out, 0)
    assert f"Reverse md5 for {h.upper()} is {n}" in out.splitlines(), (n, out)
    rows = stats_jobs(out)
    assert rows.get("local", 0) == 0 and set(cluster.addrs) <= set(rows), rows
    # A number outside the range: not found, exit status 1.
    h = md5(end + 5)
    rc, out, err = run([prog("pp-reverse-md5"), "--ncpus", "2", "--end", str(end), h])
    assert rc == 1, (rc, err)
    assert f"Reverse md5 for {h} has not been found" in out.splitlines(), out
    rc, _, err = run([prog("pp-reverse-md5"), "0123"])
    assert rc == 2 and "not an MD5 digest" in err, (rc, err)


# ---- auto_diff ----------------------------------------------------------------

def t_log(x, terms):
    """t_log on the dual number (x, 1), in the C code's operation order."""
    a, da = x - 1.0, 1.0
    s, ds = 0.0, 0.0
    for i in range(1, terms):
        sign = 1.0 if i % 2 else -1.0
        p, dp = a ** i, float(i) * a ** (i - 1) * da       # a ** i
        p, dp = p * sign, sign * dp                        # * sign
        p, dp = p * (1 / float(i)), (1 / float(i)) * dp    # / i
        s, ds = s + p, ds + dp
    return s, ds


def autodiff_lines(out):
    return [l for l in out.splitlines() if l.startswith("t_log(")]


def test_auto_diff_local():
    terms, points = 2000, 32
    out = run_ok([prog("pp-auto-diff"), "--ncpus", "2", "--terms", str(terms)])
    check_common(out, 2)
    want = []
    for i in range(points):
        x = float(i) / 32 + 1  # the original's points
        v, dv = t_log(x, terms)
        want.append("t_log(%f) = %f, t_log'(%f) = %f" % (x, v, x, dv))
    assert autodiff_lines(out) == want, (autodiff_lines(out), want)


def test_auto_diff_cluster(cluster):
    # The original's 20000 terms: the series has converged to ln(x) and its
    # derivative to 1/x, to the digits printed.
    points = 20
    out = run_ok([prog("pp-auto-diff"), "--ncpus", "0", "--points", str(points)]
                 + cluster.args())
    check_common(out, 0)
    lines = autodiff_lines(out)
    assert len(lines) == points, out
    for i, line in enumerate(lines):
        m = re.fullmatch(r"t_log\((\S+)\) = (\S+), t_log'(\S+) = (\S+)", line)
        assert m, line
        x = float(i) / points + 1
        assert m.group(1) == "%f" % x and m.group(3) == "(%f)" % x, line
        assert abs(float(m.group(2)) - math.log(x)) <= 1e-6, (line, math.log(x))
        assert abs(float(m.group(4)) - 1 / x) <= 1e-6, (line, 1 / x)
    check_remote(out, cluster, points)


# ---- quicksort ----------------------------------------------------------------

MASK = (1 << 64) - 1


def splitmix64(seed, n, vmax):
    state, out = seed, []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append((z ^ (z >> 31)) % (vmax + 1))
    return out


def check_quicksort(out, seed, size, vmax):
    data = sorted(splitmix64(seed, size, vmax))
    checksum = sum((i + 1) * v for i, v in enumerate(data)) & MASK
    lines = out.splitlines()
    assert f"first 30 numbers in increasing order: {data[:30]}" in lines, out
    assert "Sorted: yes; a permutation of the input: yes" in lines, out
    assert f"Checksum, the sum of (i + 1) * a[i] modulo 2^64: {checksum}" in lines, out


def test_quicksort_local():
    seed, size, vmax = 12345, 200000, 100000
    out = run_ok([prog("pp-quicksort"), "--ncpus", "2", "--seed", str(seed), "--size",
                  str(size), "--max", str(vmax)])
    check_common(out, 2)
    check_quicksort(out, seed, size, vmax)
    rows = stats_jobs(out)
    assert 1 <= rows["local"] <= 32, rows  # 2^5 parts at most
    # Depth 0: the whole array in one job; many equal values.
    out = run_ok([prog("pp-quicksort"), "--ncpus", "1", "--seed", "3", "--size", "5000",
                  "--max", "7", "--depth", "0"])
    check_quicksort(out, 3, 5000, 7)
    assert stats_jobs(out)["local"] == 1


def test_quicksort_cluster(cluster):
    seed, size, vmax = 987654321, 100000, 1000000
    out = run_ok([prog("pp-quicksort"), "--ncpus", "0", "--seed", str(seed), "--size",
                  str(size), "--max", str(vmax), "--depth", "4"] + cluster.args())
    check_common(out, 0)
    check_quicksort(out, seed, size, vmax)
    rows = stats_jobs(out)
    assert rows.get("local", 0) == 0 and set(cluster.addrs) <= set(rows), rows


# ---- conventions shared by all six --------------------------------------------

ALL = ["pp-sum-primes", "pp-callback", "pp-dynamic-ncpus", "pp-reverse-md5",
       "pp-auto-diff", "pp-quicksort"]


def test_conventions(cluster):
    for name in ALL:
        rc, out, err = run([prog(name), "--help"])
        assert rc == 0 and out.startswith(f"usage: {name} ") and "--servers" in out \
            and "--secret-file" in out and "--ncpus" in out, (name, rc, out)
        rc, out, err = run([prog(name), "--bogus"])
        assert rc == 2 and "try --help" in err, (name, rc, err)
        rc, out, err = run([prog(name), "--ncpus", "x"])
        assert rc == 2 and "--ncpus" in err, (name, rc, err)
        rc, out, err = run([prog(name), "--ncpus", "1", "--servers", "127.0.0.1:1",
                            "--secret-file", cluster.secret])
        assert rc == 1 and "cannot connect" in err, (name, rc, err)
        assert len(err.strip().splitlines()) <= 2, (name, err)


def main():
    for name in ALL + ["ppserver"]:
        if not os.access(prog(name), os.X_OK):
            print(f"FAIL {prog(name)} is missing")
            return 1
    cluster = Cluster(2)
    tests = [
        ("pp-sum-primes on the local pool (the original's inputs)", test_sum_primes_local),
        ("pp-sum-primes across two ppservers", lambda: test_sum_primes_cluster(cluster)),
        ("pp-callback: the callbacks' total, local and remote", lambda: test_callback(cluster)),
        ("pp-dynamic-ncpus: same sum with 1, 2, 3 workers", lambda: test_dynamic_ncpus(cluster)),
        ("pp-reverse-md5: the original's hash", test_reverse_md5_default),
        ("pp-reverse-md5 across two ppservers; not found", lambda: test_reverse_md5_cluster(cluster)),
        ("pp-auto-diff against dual numbers in Python", test_auto_diff_local),
        ("pp-auto-diff across two ppservers: ln(x), 1/x", lambda: test_auto_diff_cluster(cluster)),
        ("pp-quicksort on the local pool", test_quicksort_local),
        ("pp-quicksort across two ppservers", lambda: test_quicksort_cluster(cluster)),
        ("options, --help, bad input, unreachable node", lambda: test_conventions(cluster)),
    ]
    passed = failed = 0
    t_all = time.time()
    try:
        for name, fn in tests:
            t0 = time.time()
            try:
                fn()
                passed += 1
                print(f"PASS {name} ({time.time() - t0:.1f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 -- report and go on
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    finally:
        cluster.close()
    print(f"{passed} passed, {failed} failed ({time.time() - t_all:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
