#!/bin/sh
# SPDX-License-Identifier: MIT
# netns_run.sh PROGRAM [ARGS...] -- runs PROGRAM with PP_TEST_NETNS=1 in a
# private network namespace of its own (only a loopback, brought up), so that
# a test may add and cut links without touching the machine's network.
# Exits 77 (CTest: skipped, with the reason) where namespaces cannot be made.
set -u
if ! unshare --net true 2>/dev/null; then
    echo "skipped: cannot create a network namespace (needs root or CAP_SYS_ADMIN)"
    exit 77
fi
for tool in ip nsenter; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "skipped: $tool is not installed (Debian: iproute2, util-linux)"
        exit 77
    }
done
PP_TEST_NETNS=1 exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh "$@"
