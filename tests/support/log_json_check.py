# SPDX-License-Identifier: MIT
"""log_json_check.py FILE [--journal] -- checks ppserver/pp_log JSON lines.

Every line of FILE must be one JSON object (RFC 8259, UTF-8) with exactly
the fields time (RFC 3339 UTC, milliseconds), level, program, pid, message
(and suppressed, a count, on rate-limit summaries); the file ends with a
newline.  With --journal each line starts with its syslog level "<N>"
matching its level.  Prints "LEVEL<TAB>MESSAGE" per line, MESSAGE as an
ASCII JSON string, so that the caller compares what was decoded; exits 1
naming the first bad line."""
import json
import re
import sys

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SYSLOG = {"error": b"<3>", "warn": b"<4>", "info": b"<6>", "debug": b"<7>"}
FIELDS = {"time", "level", "program", "pid", "message"}


def check(raw, journal):
    prefix = b""
    if journal:
        prefix, raw = raw[:3], raw[3:]
    obj = json.loads(raw.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    keys = set(obj)
    if keys != FIELDS and keys != FIELDS | {"suppressed"}:
        raise ValueError("fields %s" % sorted(keys))
    if not TIME.match(obj["time"]) or obj["level"] not in SYSLOG:
        raise ValueError("time or level")
    if not isinstance(obj["pid"], int) or not isinstance(obj["program"], str):
        raise ValueError("pid or program")
    if not isinstance(obj["message"], str):
        raise ValueError("message")
    if "suppressed" in obj and not (isinstance(obj["suppressed"], int)
                                    and obj["suppressed"] > 0):
        raise ValueError("suppressed")
    if journal and prefix != SYSLOG[obj["level"]]:
        raise ValueError("prefix %r for %s" % (prefix, obj["level"]))
    return obj


def main():
    data = open(sys.argv[1], "rb").read()
    journal = "--journal" in sys.argv[2:]
    if data and not data.endswith(b"\n"):
        print("log_json_check: no newline at the end", file=sys.stderr)
        return 1
    for n, raw in enumerate(data.split(b"\n")[:-1], 1):
        try:
            obj = check(raw, journal)
        except (ValueError, UnicodeDecodeError, KeyError) as e:
            print("log_json_check: line %d: %s: %r" % (n, e, raw[:200]), file=sys.stderr)
            return 1
        print("%s\t%s" % (obj["level"], json.dumps(obj["message"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
