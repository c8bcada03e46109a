# SPDX-License-Identifier: MIT
"""report.py RESULTS META_JSON [JSON_OUT] -- the table of scripts/bench.
report.py --markdown FILE.json -- the table of a saved run, as Markdown.

RESULTS has one measurement per line, "KEY<TAB>JSON" (the JSON line a
benchmark program printed); META_JSON describes the run.  Each figure is the
median over the runs of its key; each ratio is pp / peer from this run.  The
B5 rows also show their share of the limit that bounds them, measured in the
same run (pp-bench limits): warm memcpy for local rows; for rows through a
node an echo over one loopback connection that stores each message whole
before it sends it back, as a job does (TCP for plaintext, TLS with
OpenSSL alone for TLS); the link's rate for the slow link.
Prints the table; with JSON_OUT also writes it, the metadata and every run as
JSON.  The targets are the performance floors pp sets itself, informational only."""
import json
import statistics
import sys


PEER_SHORT = {"Gearman, 2 workers": "Gearman", "Gearman": "Gearman",
              "GNU parallel -jN spin-cmd": "parallel", "gearmand + 2 workers": "gearmand+2",
              "the same without the delay": "no delay", "B1's tiny jobs": "B1 jobs/s",
              "B2, 2 ppservers": "B2", "1 client": "1 client",
              "random bytes": "random", "compression off": "off",
              "TCP store-and-forward": "TCP s&f"}
LIMIT_SHORT = {"warm memcpy": "memcpy", "TCP store-and-forward": "TCP s&f",
               "TLS store-and-forward": "TLS s&f", "the link": "link"}


def num(v, unit):
    """A figure, with the precision its unit deserves."""
    if v is None:
        return "n/a"
    if unit in ("jobs/s", "items/s", "bytes") or abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if unit == "s":
        return "%.3f" % v
    if unit == "% of a core":
        return "%.2f" % v
    if unit in ("×", ""):
        return "%.2f" % v
    return "%.1f" % v


def ratio_text(f):
    r = f["ratio"]
    if r is None:
        return "n/a" if f["peer_name"] else "—"
    if f["ratio_percent"]:
        return "%.0f %%" % (100 * r)
    return ("%.0f×" if r >= 100 else "%.1f×" if r >= 10 else "%.2f×") % r


def limit_text(f):
    """The figure as a share of its limit: "12 % memcpy", or a dash."""
    if not f.get("limit_name"):
        return "—"
    short = LIMIT_SHORT.get(f["limit_name"], f["limit_name"])
    if f.get("share") is None:
        return "n/a " + short
    return "%.0f %% %s" % (100 * f["share"], short)


HEAD = ("figure", "pp", "peer", "ratio", "of limit", "target")


def rows_of(figures):
    rows = []
    for f in figures:
        unit = ", %s" % f["unit"] if f["unit"] else ""
        name = "%s %s%s" % (f["id"], f["name"], unit)
        if f["peer_name"]:
            peer = "%s (%s)" % (num(f["peer"], f["unit"]), PEER_SHORT.get(f["peer_name"], f["peer_name"]))
        else:
            peer = "—"
        target = f["target"] or "—"
        if f["target"]:
            target += " " + {True: "PASS", False: "MISS", None: "n/a"}[f["met"]]
        rows.append((name, num(f["pp"], f["unit"]), peer, ratio_text(f), limit_text(f), target))
    return rows


def headline(meta):
    m = meta["machine"]
    return ("pp benchmarks%s: %d CPUs, %s, Linux %s; median of %d run%s; commit %s" % (
        " (--quick)" if meta["quick"] else "", m["nproc"], m["cpu"], m["kernel"], meta["runs"],
        "" if meta["runs"] == 1 else "s", meta["commit"]),
        "peers: %s; %s; load average %s at the start, %s at the end" % (
            meta["gearmand"], meta["parallel"], meta.get("loadavg_start", "?"),
            meta.get("loadavg_end", "?")))


def print_table(figures, meta):
    rows = rows_of(figures)
    head = HEAD
    width = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print()
    for line in headline(meta):
        print(line)
    print()
    fmt = " | ".join("%%-%ds" % w for w in width)
    print((fmt % head).rstrip())
    print("-+-".join("-" * w for w in width))
    for r in rows:
        print((fmt % r).rstrip())
    for n in meta.get("notes", []):
        print("note: " + n)
    met = [f for f in figures if f["target"]]
    print("\ntargets met: %d of %d (informational)" % (sum(1 for f in met if f["met"]), len(met)))


def print_markdown(path):
    with open(path) as fp:
        d = json.load(fp)
    for line in headline(d["meta"]):
        print(line + "  ")
    print()
    print("| " + " | ".join(HEAD) + " |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows_of(d["figures"]):
        print("| " + " | ".join(r) + " |")
    for n in d["meta"].get("notes", []):
        print("\nNote: " + n)


def load(path):
    runs = {}
    with open(path) as fp:
        for line in fp:
            key, _, data = line.rstrip("\n").partition("\t")
            if not data:
                continue
            try:
                runs.setdefault(key, []).append(json.loads(data))
            except ValueError:
                pass
    return runs


def scale_rows(fig, med, div, check, le, b2, runs):
    """S1..S4 (scripts/bench.d/scale.sh): many nodes, many clients."""
    meta = (runs.get("s.meta") or [{}])[-1]
    if not meta:
        return []
    n, clients = meta.get("nodes", 0), meta.get("clients", 0)
    what = "{:,} idle ppservers (-w 1), one client".format(n)
    t = med("s1.nodes", "connect_s")
    fig("S1", what + ": time to connect all", "s", t, None, "", "≤ 2", check(le(t, 2)))
    cpu = med("s1.nodes", "idle_cpu_percent")
    fig("S1", what + ": client CPU while idle", "% of a core", cpu, None, "", "≤ 1",
        check(le(cpu, 1)))
    kb = med("s1.nodes", "rss_per_node_kb")
    kb_open = med("s1.nodes", "rss_open_per_node_kb")
    fig("S1", what + ": client RSS per node after the idle period (idle connections "
        "beyond 64 closed)", "KiB", kb, kb_open, "all connected", "≤ 16", check(le(kb, 16)))
    up = med("s1.nodes", "burst_all_up_s")
    fig("S1", what + ": a burst of 4 jobs a node (1 ms of CPU each) from dormant: until "
        "every node is up again", "s", up, None, "")
    per = med("s2.clients", "rss_per_client_kb")
    fig("S2", "ppserver -w 1, RSS growth per idle client (1 → %d clients)" % clients, "KiB",
        per, None, "")
    c1, c2 = med("s2.clients", "cpu_low_percent"), med("s2.clients", "cpu_high_percent")
    fig("S2", "ppserver -w 1, CPU with %d idle clients" % clients, "% of a core", c2, c1,
        "1 client")
    for k in (16, 64):
        v = med("s3.n%d" % k, "jobs_per_s")
        fig("S3", "tiny jobs, %d ppservers (1 worker each), TLS" % k, "jobs/s", v, b2,
            "B2, 2 ppservers", ratio=div(v, b2), ratio_pct=True)
    r = med("s4.share", "ratio")
    share = (runs.get("s4.share") or [{}])[-1]
    fig("S4", "%d clients sharing one ppserver -w 2 (%s × %g ms jobs each): slowest / "
        "fastest completion" % (clients, share.get("jobs", "?"), share.get("ms", 0)), "×",
        r, None, "", "≤ 1.2", check(le(r, 1.2)))
    return ["scale rows: " + note for note in meta.get("notes", [])]


def size_text(b):
    return "%d MiB" % (b >> 20) if b >= 1 << 20 else "%d KiB" % (b >> 10)


def b5_rows(fig, med, div, check, ge, meta):
    """B5: echoes of 64 KiB, 1 MiB and the large size, each size after the
    limits measured at it (pp-bench limits); each row as a share of its
    limit.  The large size also zero-copy and with compressible bytes; then
    a compressible echo on a slow link, compression automatic and off."""
    small, big = meta["small_bytes"], meta["big_bytes"]
    # A job takes its whole argument before it runs and sends its result
    # once it has ended: through a node the limit is an echo that stores
    # the message before it sends it back, over TCP for plaintext and
    # inside TLS (OpenSSL alone) for TLS.  The streamed echo (both
    # directions at once) is printed beside them.
    MEM, TCP, TLS = "warm memcpy", "TCP store-and-forward", "TLS store-and-forward"
    modes = (("local", "local", MEM), ("remote", "remote, TLS", TLS),
             ("plain", "remote, plaintext", TCP))
    for size in (meta.get("tiny_bytes"), small, big):
        if not size:
            continue
        at = size_text(size)
        lim = lambda field: med("lim.%d" % size, field)
        # The median sample of each, as a B5 figure is a rate over several
        # round trips: like set against like on a machine that others share.
        mem = lim("warm_memcpy_mb_per_s")
        limits = {MEM: mem, TCP: lim("tcp_saf_mb_per_s"), TLS: lim("tls_saf_mb_per_s")}
        fig("B5", "limit at %s: memcpy between warm buffers" % at, "MB/s", mem, None, "")
        fig("B5", "limit at %s: memcpy into a fresh buffer" % at, "MB/s",
            lim("fresh_memcpy_mb_per_s"), None, "")
        fig("B5", "limit at %s: loopback TCP echo, one stream, streamed" % at, "MB/s",
            lim("tcp_echo_mb_per_s"), None, "")
        fig("B5", "limit at %s: loopback TCP echo, one stream, store-and-forward" % at, "MB/s",
            limits[TCP], None, "")
        fig("B5", "limit at %s: loopback TLS echo (OpenSSL alone), store-and-forward" % at,
            "MB/s", limits[TLS], limits[TCP], "TCP store-and-forward",
            ratio=div(limits[TLS], limits[TCP]), ratio_pct=True)
        g = med("b5.g.%d" % size, "median_mb_per_s")
        rows = [("b5." + m, label, name) for m, label, name in modes]
        if size == big:
            rows.insert(1, ("b5.zc", "local, zero-copy (pp_submit_shm)", MEM))
            rows.insert(3, ("b5.zcremote", "remote, TLS, zero-copy (pp_submit_shm)", TLS))
            rows.insert(5, ("b5.zcplain", "remote, plaintext, zero-copy (pp_submit_shm)", TCP))
            rows += [("b5.c" + m, "compressible, " + label, name) for m, label, name in modes]
        for key, label, name in rows:
            # The median round trip, as the limits are medians: at 64 KiB a
            # few round trips slowed by other work would weigh on a mean.
            v = med("%s.%d" % (key, size), "median_mb_per_s")
            limit = limits[name]
            target, met = "", None
            if size == big and name == MEM and "compressible" not in label:
                target, met = "≥ 3000 and ≥ 25 % memcpy", check(ge(v, 3000),
                                                                ge(div(v, limit), 0.25))
            elif size == big and name != MEM:
                target, met = "≥ 80 % " + name, check(ge(div(v, limit), 0.8))
            # Gearman echoed random bytes: no peer for the compressible rows.
            peer = (None, "") if "compressible" in label else (g, "Gearman")
            fig("B5", "echo of %s, %s" % (at, label), "MB/s", v, peer[0], peer[1], target, met,
                limit=limit, limit_name=name)
    for mode, label in (("remote", "TLS"), ("plain", "plaintext")):
        c = med("b5.c%s.%d" % (mode, big), "median_mb_per_s")
        r = med("b5.%s.%d" % (mode, big), "median_mb_per_s")
        fig("B5", "echo of %s through a node, %s, compressible vs random" % (size_text(big), label),
            "MB/s", c, r, "random bytes", "≥ 100 %", check(ge(div(c, r), 1)), ratio=div(c, r),
            ratio_pct=True)
    slow, mbit = meta.get("slow_bytes", 0), meta.get("slow_mbit", 0)
    auto, off = med("b5.slow.auto", "mb_per_s"), med("b5.slow.never", "mb_per_s")
    # One job at a time: the argument, then the result, each over the link.
    link = mbit * 1e6 / 8 / 2 / 1e6 if mbit else None
    name = "compressible echo of %s over %g Mbit/s, +%g ms" % (
        size_text(slow), mbit, meta["counts"]["delay_ms_each_way"])
    fig("B5", name + ", compression auto", "MB/s", auto, off, "compression off",
        "> compression off", check(None if auto is None or off is None else auto > off),
        limit=link, limit_name="the link")
    fig("B5", name + ", compression off", "MB/s", off, None, "", limit=link,
        limit_name="the link")


def main():
    if sys.argv[1] == "--markdown":
        print_markdown(sys.argv[2])
        return
    runs = load(sys.argv[1])
    meta = json.loads(sys.argv[2])
    json_out = sys.argv[3] if len(sys.argv) > 3 else None

    def med(key, field):
        vals = [r[field] for r in runs.get(key, [])
                if isinstance(r.get(field), (int, float)) and not r.get("errors")]
        return statistics.median(vals) if vals else None

    def div(a, b):
        return a / b if a is not None and b not in (None, 0) else None

    figures = []

    def fig(fid, name, unit, pp, peer, peer_name, target="", met=None, ratio=None,
            ratio_pct=False, limit=None, limit_name=""):
        if ratio is None:
            ratio = div(pp, peer)
        figures.append({"id": fid, "name": name, "unit": unit, "pp": pp, "peer": peer,
                        "peer_name": peer_name, "ratio": ratio, "ratio_percent": ratio_pct,
                        "target": target, "met": met, "limit": limit,
                        "limit_name": limit_name, "share": div(pp, limit)})

    def check(*conds):
        """True/False when every condition is known, None when one is not."""
        if any(c is False for c in conds):
            return False
        return None if any(c is None for c in conds) else True

    def ge(a, b):
        return None if a is None else a >= b

    def le(a, b):
        return None if a is None else a <= b

    G = "Gearman, 2 workers"
    PL = "plaintext"
    # B1, B2: tiny jobs.
    b1, b1g = med("b1.pp", "jobs_per_s"), med("b1.g", "jobs_per_s")
    fig("B1", "tiny jobs, local pool (2 workers)", "jobs/s", b1, b1g, G,
        "≥ 100000 and ≥ 10× Gearman", check(ge(b1, 1e5), ge(div(b1, b1g), 10)))
    # B1 beside it: pp_map over 8-byte items (batch jobs), items/s against
    # B1's jobs/s from the same runs.
    bm = med("b1.map", "items_per_s")
    fig("B1", "map of {:,} 8-byte items (pp_map), local pool (2 workers)".format(
        meta["counts"].get("map_items", 1000000)), "items/s", bm, b1, "B1's tiny jobs",
        "≥ B1's jobs/s", check(ge(div(bm, b1), 1)))
    b2, b2g = med("b2.pp", "jobs_per_s"), med("b2.g", "jobs_per_s")
    fig("B2", "tiny jobs, 2 ppservers (1 worker each), ncpus 0, TLS", "jobs/s", b2, b2g, G,
        "≥ 5× Gearman", check(ge(div(b2, b2g), 5)))
    b2p = med("b2.plain", "jobs_per_s")
    fig("B2", "the same in plaintext (--no-tls)", "jobs/s", b2p, b2g, G)
    fig("B2", "TLS / plaintext", "", b2, b2p, PL, "≥ 80 %", check(ge(div(b2, b2p), 0.8)),
        ratio=div(b2, b2p), ratio_pct=True)
    # B3: round trips.
    for mode, limit in (("local", 50), ("remote", 100)):
        m, mg = med("b3." + mode, "median_us"), med("b3.g", "median_us")
        tls = ", TLS" if mode == "remote" else ""
        fig("B3", "round trip, %s%s, median" % (mode, tls), "µs", m, mg, G,
            "≤ %d and ≤ ½ Gearman" % limit, check(le(m, limit), le(div(m, mg), 0.5)))
        fig("B3", "round trip, %s%s, p99" % (mode, tls), "µs", med("b3." + mode, "p99_us"),
            med("b3.g", "p99_us"), G)
    m, mp = med("b3.remote", "median_us"), med("b3.plain", "median_us")
    fig("B3", "round trip, remote, plaintext, median", "µs", mp, med("b3.g", "median_us"), G)
    extra = m - mp if m is not None and mp is not None else None
    fig("B3", "TLS − plaintext, remote median", "µs", extra, None, "", "≤ 10",
        check(le(extra, 10)))
    # B4: CPU-bound scaling.
    P = "GNU parallel -jN spin-cmd"
    t1, t2 = med("b4.pp1", "seconds"), med("b4.pp2", "seconds")
    p1, p2 = med("b4.par1", "seconds"), med("b4.par2", "seconds")
    fig("B4", "32 × 50 ms CPU jobs, 1 worker, wall", "s", t1, p1, P)
    fig("B4", "32 × 50 ms CPU jobs, 2 workers, wall", "s", t2, p2, P)
    s_pp, s_par = div(t1, t2), div(p1, p2)
    fig("B4", "speedup 1 → 2 workers", "×", s_pp, s_par, P)
    e_pp = s_pp / 2 if s_pp is not None else None
    e_par = s_par / 2 if s_par is not None else None
    fig("B4", "efficiency at 2 workers (speedup / 2)", "", e_pp, e_par, P, "≥ 0.95",
        check(ge(e_pp, 0.95)))
    ideal = 32 * 0.050 / 2
    fig("B4", "2 workers, ideal time / wall (0.8 s / wall)", "", div(ideal, t2), div(ideal, p2), P)
    # B5: payload, beside the limits of the same run.
    b5_rows(fig, med, div, check, ge, meta)
    # B6: memory.
    rss, rss_g = med("b6.rss", "rss_mb"), med("b6.g", "rss_mb")
    fig("B6", "idle ppserver -w 2 with its workers, RSS", "MB", rss, rss_g,
        "gearmand + 2 workers", "≤ 10 MB in all", check(le(rss, 10)))
    fig("B6", "idle ppserver -w 2 with its workers, PSS", "MB", med("b6.rss", "pss_mb"), None, "")
    per_job = med("b6.queue", "bytes_per_job")
    fig("B6", "client memory per queued job (%d queued)" % meta["counts"]["queued_jobs"],
        "bytes", per_job, None, "", "≤ 300", check(le(per_job, 300)))
    # B7: latency hiding.
    d, nd = med("b7.delay", "jobs_per_s"), med("b7.direct", "jobs_per_s")
    share = div(d, nd)
    fig("B7", "1 ms jobs, ppserver -w 2 behind +%g ms each way" % meta["counts"]["delay_ms_each_way"],
        "jobs/s", d, nd, "the same without the delay", "≥ 85 %",
        check(ge(share, 0.85)), ratio=share, ratio_pct=True)

    # B8: connection set-up.
    c, cp = med("b8.tls", "median_ms"), med("b8.plain", "median_ms")
    fig("B8", "connection set-up (TCP, TLS, proof), median", "ms", c, cp, PL, "≤ 2",
        check(le(c, 2)))
    fig("B8", "key derivation (pp_server_new, scrypt), median", "ms",
        med("b8.tls", "new_median_ms"), None, "")

    # B9: job control.  The counts come from the runs themselves.
    def count(key, field):
        vals = [r.get(field) for r in runs.get(key, []) if isinstance(r.get(field), int)]
        return vals[0] if vals else 0
    fig("B9", "pp_cancel_group of {:,} queued jobs until pp_wait returns".format(
        count("b9.cancel", "jobs")), "ms", med("b9.cancel", "ms"), None, "")
    n_rss, at = count("b9.rss", "jobs"), count("b9.rss", "checkpoint_jobs")
    kb = lambda field: div(med("b9.rss", field), 1024)
    fig("B9", "client RSS after {:,} of {:,} tiny jobs, max_pending 10,000".format(at, n_rss),
        "MB", kb("rss_checkpoint_kb"), None, "")
    fig("B9", "client RSS at the end of the {:,} jobs".format(n_rss), "MB", kb("rss_end_kb"),
        None, "")
    peak = kb("peak_rss_kb")
    fig("B9", "client peak RSS (VmHWM) over the {:,} jobs".format(n_rss), "MB", peak, None, "")

    meta.setdefault("notes", []).extend(scale_rows(fig, med, div, check, le, b2, runs) or [])

    print_table(figures, meta)

    if json_out:
        with open(json_out, "w") as fp:
            json.dump({"meta": meta, "figures": figures, "runs": runs}, fp, indent=1,
                      ensure_ascii=False)
            fp.write("\n")


if __name__ == "__main__":
    main()
