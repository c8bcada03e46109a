#!/bin/sh
# SPDX-License-Identifier: MIT
# hosts_run.sh PROGRAM [ARGS...] -- runs PROGRAM in a private mount namespace
# whose /etc/hosts is a scratch copy bind-mounted over it, named in
# $PP_TEST_HOSTS, so that a test may map names to addresses of its choice
# and rewrite the map (in place: the bind mount follows the inode) without
# touching the machine's own file.  Exits 77 (CTest: skipped, with the
# reason) where the namespace or the mount cannot be made.
set -u
if ! unshare --mount true 2>/dev/null; then
    echo "skipped: cannot create a mount namespace (needs root or CAP_SYS_ADMIN)"
    exit 77
fi
hosts=$(mktemp "${TMPDIR:-/tmp}/pp-hosts.XXXXXX") || exit 1
trap 'rm -f "$hosts"' EXIT INT TERM
cat /etc/hosts >"$hosts" 2>/dev/null
chmod 644 "$hosts"
PP_TEST_HOSTS=$hosts unshare --mount sh -c '
    mount --bind "$PP_TEST_HOSTS" /etc/hosts 2>/dev/null || {
        echo "skipped: cannot bind-mount a file over /etc/hosts"
        exit 77
    }
    exec "$@"' sh "$@"
