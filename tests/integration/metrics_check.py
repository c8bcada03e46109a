#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""metrics_check.py -- scrapes ppserver --metrics for test_metrics.c.

Run with Debian's /usr/bin/python3 (python3-prometheus-client).

  metrics_check.py probe
      exit 0 when prometheus_client's parser can be imported, else 77.
  metrics_check.py scrape URL [EXPECT...]
      GET URL; the Content-Type must be the 0.0.4 text format; the body is
      parsed with prometheus_client.parser.text_string_to_metric_families
      (any malformed line fails); every family is named ppserver_*, has
      HELP and a TYPE, counters end in _total, histograms have cumulative
      buckets ending in +Inf equal to _count.  Each EXPECT is
      NAME{label="value",...}OP NUMBER with OP one of == >= <=; the sample
      must exist and compare true.
  metrics_check.py http URL
      other paths answer 404, other methods 405 (with Allow), HEAD works.
  metrics_check.py flood HOST PORT SECONDS IDLE SCRAPES
      holds IDLE idle connections and makes SCRAPES requests (each bounded
      by a timeout) for at most SECONDS, then closes everything; prints
      how many scrapes got a page.  Never fails on refusals: the node is
      allowed to shed a flood.

Exit status: 0 all good, 1 a check failed (each printed), 2 usage, 77 no
parser.
"""
import http.client
import re
import socket
import sys
import time
import urllib.error
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - the caller skips
    text_string_to_metric_families = None

EXPECT_RE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?(==|>=|<=)(\S+)$')
LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')

failures = []


def fail(msg):
    failures.append(msg)
    print("metrics_check: " + msg, file=sys.stderr)


def fetch(url, method="GET", timeout=10):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")


def parse_labels(text):
    labels = {}
    if not text:
        return labels
    inner = text[1:-1]
    pos = 0
    while pos < len(inner):
        m = LABEL_RE.match(inner, pos)
        if not m:
            raise ValueError("bad labels " + text)
        labels[m.group(1)] = m.group(2).encode().decode("unicode_escape")
        pos = m.end()
    return labels


def check_families(families):
    for fam in families:
        if not fam.name.startswith("ppserver_"):
            fail("family %s is not named ppserver_*" % fam.name)
        if not fam.documentation:
            fail("family %s has no HELP" % fam.name)
        if fam.type not in ("counter", "gauge", "histogram"):
            fail("family %s has type %s" % (fam.name, fam.type))
        if fam.type == "counter":
            for s in fam.samples:
                if not s.name.endswith(("_total", "_created")):
                    fail("counter sample %s does not end in _total" % s.name)
        if fam.type == "histogram":
            check_histogram(fam)


def check_histogram(fam):
    buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
    counts = [s for s in fam.samples if s.name.endswith("_count")]
    sums = [s for s in fam.samples if s.name.endswith("_sum")]
    if not buckets or len(counts) != 1 or len(sums) != 1:
        fail("histogram %s: buckets, one _count and one _sum expected" % fam.name)
        return
    last = -1.0
    prev_le = float("-inf")
    for b in buckets:
        le = float(b.labels["le"])
        if le <= prev_le or b.value < last:
            fail("histogram %s: buckets not ascending and cumulative" % fam.name)
        prev_le, last = le, b.value
    if buckets[-1].labels["le"] != "+Inf" or buckets[-1].value != counts[0].value:
        fail("histogram %s: the +Inf bucket is not _count" % fam.name)


def scrape(url, expects):
    status, headers, body = fetch(url)
    if status != 200:
        fail("GET %s: status %d" % (url, status))
        return
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if not ctype.startswith("text/plain; version=0.0.4"):
        fail("Content-Type %r" % ctype)
    try:
        families = list(text_string_to_metric_families(body))
    except Exception as e:  # the parser's own rules: any error fails
        fail("the exposition does not parse: %r" % e)
        print(body, file=sys.stderr)
        return
    check_families(families)
    samples = [s for fam in families for s in fam.samples]
    for e in expects:
        m = EXPECT_RE.match(e)
        if not m:
            fail("bad expectation %r" % e)
            continue
        name, labels, op, want = m.group(1), parse_labels(m.group(2)), m.group(3), float(m.group(4))
        found = [s for s in samples if s.name == name and s.labels == labels]
        if not found:
            fail("no sample %s%s" % (name, m.group(2) or ""))
            continue
        got = found[0].value
        ok = got == want if op == "==" else got >= want if op == ">=" else got <= want
        if not ok:
            fail("%s%s = %g, expected %s %g" % (name, m.group(2) or "", got, op, want))
    if failures:
        print(body, file=sys.stderr)


def http_rules(url):
    base = url.rsplit("/", 1)[0]
    for path in ("/", "/metric", "/metrics/x", "/../metrics", "/favicon.ico"):
        status, _, _ = fetch(base + path)
        if status != 404:
            fail("GET %s: %d, expected 404" % (path, status))
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = fetch(url, method=method)
        allow = {k.lower(): v for k, v in headers.items()}.get("allow", "")
        if status != 405 or "GET" not in allow:
            fail("%s /metrics: %d (Allow %r), expected 405 with Allow: GET" %
                 (method, status, allow))
    status, _, body = fetch(url, method="HEAD")
    if status != 200 or body:
        fail("HEAD /metrics: %d with %d bytes of body" % (status, len(body)))
    # A request line and headers larger than the node takes: refused, and
    # the next scrape is served.
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.putrequest("GET", "/metrics")
        c.putheader("X-Big", "a" * 100000)
        c.endheaders()
        status = c.getresponse().status
        if status == 200:
            fail("a 100 kB header was served")
    except (OSError, http.client.HTTPException):
        pass  # closed on us: refused too
    finally:
        c.close()
    status, _, _ = fetch(url)
    if status != 200:
        fail("GET /metrics after the big header: %d" % status)


def flood(host, port, seconds, idle, scrapes):
    deadline = time.monotonic() + seconds
    held = []
    for _ in range(idle):
        try:
            s = socket.create_connection((host, port), timeout=2)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append(s)
        except OSError:
            pass
    pages = 0
    for _ in range(scrapes):
        if time.monotonic() >= deadline:
            break
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", "/metrics")
            if c.getresponse().status == 200:
                pages += 1
            c.close()
        except (OSError, http.client.HTTPException):
            pass
    while time.monotonic() < deadline:
        time.sleep(0.05)
    for s in held:
        s.close()
    print("held %d idle connections, %d pages" % (len(held), pages))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if text_string_to_metric_families is None:
        print("metrics_check: prometheus_client is missing (Debian: "
              "python3-prometheus-client, for /usr/bin/python3)", file=sys.stderr)
        return 77
    cmd = argv[1]
    if cmd == "probe":
        return 0
    if cmd == "scrape" and len(argv) >= 3:
        scrape(argv[2], argv[3:])
    elif cmd == "http" and len(argv) == 3:
        http_rules(argv[2])
    elif cmd == "flood" and len(argv) == 7:
        flood(argv[2], int(argv[3]), float(argv[4]), int(argv[5]), int(argv[6]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
