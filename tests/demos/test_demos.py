#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_demos.py -- pp-fib and pp-crawl with real parts: a local HTTP server
(in this process, on 127.0.0.1) serving a generated site with a known link
graph, and real ppserver processes on loopback ports.

usage: test_demos.py BIN_DIR
Prints one line per test and "N passed, N failed"; exits non-zero on failure.
"""
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
PPSERVER = os.path.join(BIN, "ppserver")
FIB = os.path.join(BIN, "pp-fib")
CRAWL = os.path.join(BIN, "pp-crawl")
TIMEOUT = 120  # seconds for any one command: nothing may hang

# ---- the site ---------------------------------------------------------------
# Paths -> (status, content type, body, extra headers).  {P} is the port.
BIG = "<html><body>" + "x" * (2 << 20) + "<a href=/never.html>n</a></body></html>"
PAGES = {
    "/robots.txt": (200, "text/plain",
                    "User-agent: *\nDisallow: /private/\n\nUser-agent: otherbot\nDisallow: /\n", {}),
    "/index.html": (200, "text/html", """<!doctype html><html><body>
      <a href="p1.html">one</a>
      <A HREF = 'p2.html#section'>two, upper case and a fragment</A>
      <a href=/redir>a redirect</a>
      <a href="/loop1">a redirect loop</a>
      <a href="/err500">a server error</a>
      <a href="/big.html">too large</a>
      <a href="/file.pdf">not html</a>
      <a href="http://127.0.0.1:1/refused.html">refused</a>
      <a href="http://127.0.0.2:{P}/off.html">off-site</a>
      <a href="mailto:someone@example.org">mail</a>
      <a href="javascript:alert(1)">script</a>
      <a name="no-href">anchor</a>
    </body></html>""", {}),
    "/p1.html": (200, "text/html; charset=utf-8", """<html><body>
      <a href="  p1a.html  ">whitespace around</a>
      <a href="/missing.html">broken</a>
      <a href="/private/secret.html">robots says no</a>
      <a href=p4.html>unquoted</a>
      <a href="q.html?a=1&amp;b=2">entity</a>
      <a href="index.html">back</a>
    </body></html>""", {}),
    "/p2.html": (200, "text/html", """<html><head><base href="/sub/"></head><body>
      <a href="s1.html">relative to base</a>
      <a href="/p1.html">absolute path</a></body></html>""", {}),
    "/p3.html": (200, "text/html", '<a href="p3a.html">after redirect</a>', {}),
    "/p1a.html": (200, "text/html", '<a href="deep.html">depth 3</a>', {}),
    "/p3a.html": (200, "text/html", "leaf", {}),
    "/p4.html": (200, "text/html", "leaf", {}),
    "/q.html": (200, "text/html", "leaf with a query", {}),
    "/sub/s1.html": (200, "text/html", "leaf under base", {}),
    "/deep.html": (200, "text/html", "too deep to be fetched", {}),
    "/private/secret.html": (200, "text/html", "must not be fetched", {}),
    "/file.pdf": (200, "application/pdf", '%PDF-1.4 <a href="/hidden.html">x</a>', {}),
    "/big.html": (200, "text/html", BIG, {}),
    "/redir": (302, "text/html", "", {"Location": "/p3.html"}),
    "/loop1": (302, "text/html", "", {"Location": "/loop2"}),
    "/loop2": (302, "text/html", "", {"Location": "/loop1"}),
    "/err500": (500, "text/html", "boom", {}),
    "/off.html": (200, "text/html", "off-site page", {}),
}


class Site:
    """A threaded HTTP server recording every request and peak concurrency."""

    def __init__(self, addr, port=0, slow=0.0, tls=None):
        self.requests = []
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.slow = slow
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with site.lock:
                    site.requests.append(self.path)
                    site.active += 1
                    site.peak = max(site.peak, site.active)
                done = False
                try:
                    if site.slow and self.path.startswith("/slow"):
                        time.sleep(site.slow)
                    path = self.path.split("?")[0]
                    if path.startswith("/slow"):
                        n = int(path[5:].split(".")[0] or 0)
                        links = "".join(f'<a href="/slow{n * 10 + k}.html">s</a>'
                                        for k in range(1, 10)) if n < 100 else ""
                        entry = (200, "text/html", links, {})
                    else:
                        entry = PAGES.get(path, (404, "text/html", "not found", {}))
                    status, ctype, body, headers = entry
                    data = body.replace("{P}", str(site.port)).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    # Count the request as over before the client can see the
                    # response: the client may start its next fetch at once.
                    with site.lock:
                        site.active -= 1
                    done = True
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    if not done:
                        with site.lock:
                            site.active -= 1

        self.httpd = http.server.ThreadingHTTPServer((addr, port), Handler)
        self.httpd.daemon_threads = True
        if tls:  # (certificate file, key file): HTTPS
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- ppservers --------------------------------------------------------------

class Cluster:
    def __init__(self, n):
        self.dir = tempfile.mkdtemp(prefix="pp-demos-")
        self.secret = os.path.join(self.dir, "secret")
        subprocess.run([PPSERVER, "--gen-secret", self.secret], check=True,
                       stderr=subprocess.DEVNULL, timeout=TIMEOUT)
        self.procs, self.addrs = [], []
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

    def args(self):
        return ["--servers", ",".join(self.addrs), "--secret-file", self.secret]

    def close(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(args):
    r = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    return r.returncode, r.stdout, r.stderr


def crawl_json(args):
    rc, out, err = run([CRAWL, "--json"] + args)
    assert rc == 0, f"pp-crawl exit {rc}: {err}"
    return json.loads(out), err


# ---- tests ------------------------------------------------------------------

def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def check_fib(out, ns, where):
    lines = [l for l in out.splitlines() if l.startswith("fib(")]
    assert len(lines) == len(ns), out
    for line, n in zip(lines, ns):  # in input order
        head, node = line.rsplit("  [", 1)
        assert head == f"fib({n}) = {fib(n)}", line
        assert node.rstrip("]") in where, line


def test_fib_local():
    ns = [0, 1, 2, 10, 50, 90, 91, 92]
    rc, out, err = run([FIB, "--ncpus", "2"] + [str(n) for n in ns])
    assert rc == 0, err
    check_fib(out, ns, {"local"})
    assert "Job execution statistics" in out and "Time elapsed" in out


def test_fib_big(cluster):
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)  # fib(30000) has 6,270 digits
    ns = [0, 1, 2, 92, 93, 100, 1000, 30000, 12345]
    rc, out, err = run([FIB, "--ncpus", "2", "--big"] + [str(n) for n in ns])
    assert rc == 0, err
    check_fib(out, ns, {"local"})
    rc, out, err = run([FIB, "--ncpus", "0", "--big"] + cluster.args() + [str(n) for n in ns])
    assert rc == 0, err
    check_fib(out, ns, set(cluster.addrs))
    rc, _, err = run([FIB, "--big", "1000001"])
    assert rc == 2 and "--big takes 0 <= N <= 1000000" in err, err


def test_fib_two_servers(cluster):
    ns = list(range(0, 93, 4))
    rc, out, err = run([FIB, "--ncpus", "0"] + cluster.args() + [str(n) for n in ns])
    assert rc == 0, err
    check_fib(out, ns, set(cluster.addrs))
    for a in cluster.addrs:  # both listed in the stats table
        assert a in out


def test_fib_bad_input(cluster):
    for args, code, text in [
        (["93"], 2, "--big for any precision"),
        (["--", "-1"], 2, "out of range"),
        (["x"], 2, "not a number"),
        (["--bogus", "5"], 2, "try --help"),
        ([], 2, "at least one N"),
        (["--ncpus", "0", "--servers", "127.0.0.1:1", "--secret-file", cluster.secret, "5"],
         1, "cannot connect"),
    ]:
        rc, out, err = run([FIB] + args)
        assert rc == code, (args, rc, err)
        assert text in err, (args, err)
        assert len(err.strip().splitlines()) <= 2, (args, err)
    bad = os.path.join(cluster.dir, "wrong")
    with open(bad, "w") as f:
        f.write("not-the-right-secret-at-all")
    os.chmod(bad, 0o600)
    rc, out, err = run([FIB, "--ncpus", "0", "--servers", cluster.addrs[0],
                        "--secret-file", bad, "5"])
    assert rc == 1 and "authentication failed" in err, err


EXPECTED = {  # url path -> status, for --depth 2 from /index.html
    "/index.html": 200, "/p1.html": 200, "/p2.html": 200, "/redir": 200, "/loop1": 0,
    "/err500": 500, "/big.html": 200, "/file.pdf": 200, "REFUSED": 0,
    "/p1a.html": 200, "/missing.html": 404, "/p4.html": 200, "/q.html?a=1&b=2": 200,
    "/sub/s1.html": 200, "/p3a.html": 200,
}


def page_map(report, port):
    got = {}
    for p in report["pages"]:
        url = p["url"]
        if url.startswith("http://127.0.0.1:1/"):
            got["REFUSED"] = p
        else:
            prefix = f"http://127.0.0.1:{port}"
            assert url.startswith(prefix), url
            got[url[len(prefix):]] = p
    return got


def check_site_crawl(report, site):
    got = page_map(report, site.port)
    assert set(got) == set(EXPECTED), sorted(set(got) ^ set(EXPECTED))
    for k, status in EXPECTED.items():
        assert got[k]["status"] == status, (k, got[k])
    assert got["/redir"]["final_url"].endswith("/p3.html")
    assert "redirect" in got["/loop1"]["error"].lower(), got["/loop1"]
    assert "size cap" in got["/big.html"]["error"], got["/big.html"]
    assert got["REFUSED"]["error"], got["REFUSED"]
    assert got["/file.pdf"]["links"] == 0  # not HTML: not parsed
    assert got["/index.html"]["links"] == 9  # mailto:, javascript:, no href: ignored
    s = report["summary"]
    assert s["pages"] == len(EXPECTED) and s["skipped_by_robots"] == 1, s
    assert s["errors"] == 5, s  # loop, 500, big, refused, 404
    with site.lock:
        reqs = list(site.requests)
    for never in ("/private/secret.html", "/deep.html", "/hidden.html", "/never.html",
                  "/off.html"):
        assert never not in reqs, never
    # Each URL fetched once (redirect targets aside); robots.txt once per crawl.
    fetched = [r for r in reqs if r not in ("/robots.txt", "/loop1", "/loop2", "/p3.html")]
    assert len(fetched) == len(set(fetched)), sorted(fetched)
    assert reqs.count("/robots.txt") == 1
    return {k: v["status"] for k, v in got.items()}


def crawl_site(site, extra):
    with site.lock:
        site.requests.clear()
    report, err = crawl_json(["--depth", "2", "--max-size", str(1 << 20), "--timeout", "10"]
                             + extra + [f"http://127.0.0.1:{site.port}/index.html"])
    return report, err


def test_crawl_local(site):
    report, err = crawl_site(site, ["--ncpus", "2"])
    check_site_crawl(report, site)
    assert "Job execution statistics" in err and "pages/s" in err


def test_crawl_same_on_two_servers(site, cluster):
    local, _ = crawl_site(site, ["--ncpus", "2"])
    a = check_site_crawl(local, site)
    remote, err = crawl_site(site, ["--ncpus", "0"] + cluster.args())
    b = check_site_crawl(remote, site)
    assert a == b
    nodes = {p["node"] for p in remote["pages"]}
    assert nodes <= set(cluster.addrs) and nodes, nodes


def test_crawl_lines(site):
    rc, out, err = run([CRAWL, "--ncpus", "1", "--depth", "1", "--max-size", str(1 << 20),
                        f"http://127.0.0.1:{site.port}/index.html"])
    assert rc == 0, err
    lines = out.splitlines()
    assert f"200 http://127.0.0.1:{site.port}/index.html" in lines, out
    assert any(l.startswith("000 http://127.0.0.1:1/refused.html ") for l in lines), out
    assert any(l.startswith(f"500 http://127.0.0.1:{site.port}/err500") for l in lines), out
    assert any(l.startswith(f"200 http://127.0.0.1:{site.port}/redir -> ") for l in lines), out
    assert "pages 9, links" in err, err


def test_crawl_max_pages(site):
    report, _ = crawl_json(["--ncpus", "2", "--max-pages", "3",
                            f"http://127.0.0.1:{site.port}/index.html"])
    assert report["summary"]["pages"] == 3


def test_crawl_all_hosts(site, site2):
    report, _ = crawl_json(["--ncpus", "2", "--depth", "1", "--all-hosts",
                            "--max-size", str(1 << 20),
                            f"http://127.0.0.1:{site.port}/index.html"])
    urls = {p["url"] for p in report["pages"]}
    assert f"http://127.0.0.2:{site.port}/off.html" in urls, urls
    assert "/off.html" in site2.requests


def test_crawl_robots_agent(site):
    # The group naming our agent wins over "*": otherbot may fetch nothing.
    report, err = crawl_json(["--ncpus", "1", "--user-agent", "otherbot/1.0",
                              f"http://127.0.0.1:{site.port}/index.html"])
    assert report["summary"]["pages"] == 0 and report["summary"]["skipped_by_robots"] == 1


def test_crawl_per_host_limit(slow):
    report, _ = crawl_json(["--ncpus", "8", "--depth", "2", "--max-pages", "40",
                            f"http://127.0.0.1:{slow.port}/slow1.html"])
    assert report["summary"]["pages"] >= 20, report["summary"]
    assert 1 <= slow.peak <= 4, slow.peak  # at most 4 fetches per host in flight


def test_crawl_bad_input(cluster):
    for args, code, text in [
        (["not a url"], 2, "not a URL"),
        (["ftp://127.0.0.1/x"], 2, "only http and https"),
        (["--depth", "x", "http://127.0.0.1/"], 2, "--depth"),
        (["--frobnicate", "http://127.0.0.1/"], 2, "try --help"),
        ([], 2, "at least one URL"),
        (["--ncpus", "0", "--servers", "127.0.0.1:1", "--secret-file", cluster.secret,
          "http://127.0.0.1/"], 1, "cannot connect"),
        (["--servers", "bad:port:x", "--secret-file", cluster.secret, "http://127.0.0.1/"],
         1, "node address"),
    ]:
        rc, out, err = run([CRAWL] + args)
        assert rc == code, (args, rc, err)
        assert text.lower() in err.lower(), (args, err)
        assert len(err.strip().splitlines()) <= 2, (args, err)


def self_signed(tmp):
    """A certificate for 127.0.0.1 and its key, made with the openssl tool."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    rc, _, err = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                      "-keyout", key, "-out", cert])
    assert rc == 0, err
    return cert, key


def test_crawl_https():
    tmp = tempfile.mkdtemp(prefix="pp-https-")
    site = None
    try:
        cert, key = self_signed(tmp)
        site = Site("127.0.0.1", tls=(cert, key))
        base = f"https://127.0.0.1:{site.port}"
        report, _ = crawl_json(["--ncpus", "1", "--depth", "1", "--max-size", str(1 << 20),
                                "--cacert", cert, base + "/index.html"])
        pages = {p["url"]: p for p in report["pages"]}
        assert pages[base + "/index.html"]["status"] == 200, pages
        assert pages[base + "/index.html"]["links"] == 9, pages[base + "/index.html"]
        assert pages[base + "/p1.html"]["status"] == 200, pages
        assert pages[base + "/redir"]["final_url"] == base + "/p3.html", pages[base + "/redir"]
        with site.lock:
            assert "/robots.txt" in site.requests and "/p1.html" in site.requests
        # Without --cacert the self-signed certificate is refused: verification
        # stays on.
        with site.lock:
            site.requests.clear()
        report, _ = crawl_json(["--ncpus", "1", "--depth", "0", base + "/index.html"])
        page = report["pages"][0]
        assert page["status"] == 0 and "certificate" in page["error"].lower(), page
        with site.lock:
            assert not site.requests, site.requests  # no request got through
        rc, _, err = run([CRAWL, "--cacert", os.path.join(tmp, "missing.pem"), base + "/"])
        assert rc == 2 and "--cacert" in err, (rc, err)
    finally:
        if site:
            site.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    site = Site("127.0.0.1")
    site2 = Site("127.0.0.2", site.port)
    slow = Site("127.0.0.1", slow=0.1)
    cluster = Cluster(2)
    tests = [
        ("pp-fib on the local pool", lambda: test_fib_local()),
        ("pp-fib across two ppservers", lambda: test_fib_two_servers(cluster)),
        ("pp-fib bad input", lambda: test_fib_bad_input(cluster)),
        ("pp-fib --big against Python's integers", lambda: test_fib_big(cluster)),
        ("pp-crawl finds exactly the site (local)", lambda: test_crawl_local(site)),
        ("pp-crawl: same pages on two ppservers", lambda: test_crawl_same_on_two_servers(site, cluster)),
        ("pp-crawl STATUS URL lines", lambda: test_crawl_lines(site)),
        ("pp-crawl --max-pages", lambda: test_crawl_max_pages(site)),
        ("pp-crawl --all-hosts", lambda: test_crawl_all_hosts(site, site2)),
        ("pp-crawl robots.txt groups", lambda: test_crawl_robots_agent(site)),
        ("pp-crawl per-host limit", lambda: test_crawl_per_host_limit(slow)),
        ("pp-crawl over HTTPS (--cacert; verification on)", test_crawl_https),
        ("pp-crawl bad input", lambda: test_crawl_bad_input(cluster)),
    ]
    passed = failed = 0
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
        for s in (site, site2, slow):
            s.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
