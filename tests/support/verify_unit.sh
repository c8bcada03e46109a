#!/bin/sh
# SPDX-License-Identifier: MIT
# verify_unit.sh UNIT PPSERVER -- conf/ppserver.service is a unit systemd
# accepts (`systemd-analyze verify`: every directive known, every value
# valid, the executable there), and its sandbox scores an exposure of 3.0
# or less (`systemd-analyze security --offline`).  The unit names the
# installed /usr/local/bin/ppserver; a copy naming PPSERVER (the build's) is
# checked.  Exit 77 (skipped) where systemd-analyze is missing.
set -u
unit=$1
exe=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skipped: systemd-analyze is not installed (Debian package systemd)"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s#/usr/local/bin/ppserver#$exe#" "$unit" >"$dir/ppserver.service"
grep -q "$exe" "$dir/ppserver.service" || { echo "no ExecStart= to point at $exe"; exit 1; }
out=$(systemd-analyze verify "$dir/ppserver.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "systemd-analyze verify: status $rc"
    echo "$out"
    exit 1
fi
echo "systemd-analyze verify: clean"
for key in DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
    ProtectHome=yes CacheDirectory=ppserver 'CapabilityBoundingSet=$'; do
    grep -q "^$key" "$unit" || { echo "the unit lacks $key"; exit 1; }
done
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    score=$(systemd-analyze security --offline=yes "$dir/ppserver.service" 2>&1 |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "exposure: $score"
    [ -n "$score" ] || { echo "no exposure score"; exit 1; }
    awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || { echo "exposure above 3.0"; exit 1; }
else
    echo "(systemd-analyze security --offline unavailable: exposure not scored)"
fi
exit 0
