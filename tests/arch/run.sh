#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/arch/run.sh SOURCE_DIR -- the CTest `architecture`: scripts/arch on
# the fixture trees (bad/ must fail naming each planted problem, good/ must
# pass), then on the real tree.  The real tree is checked in REPORT mode: its
# cycles and long functions are printed but do not fail the test, unless
# PP_ARCH_STRICT=1, which makes them fail it.
# Exit 77 (skipped) when Universal Ctags (or python3) is missing.
set -u
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
arch="$src/scripts/arch"
fix="$src/tests/arch"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

command -v python3 >/dev/null || {
    echo "architecture: skipped: python3 is missing"
    exit 77
}
fail=0
bad() {
    echo "FAIL: $*"
    fail=1
}

# 1. bad/: exit 1, and a problem line for every planted problem.
python3 "$arch" --check --root "$fix/bad" >"$out" 2>&1
rc=$?
if [ $rc -eq 77 ]; then
    cat "$out"
    exit 77
fi
[ $rc -eq 1 ] || bad "arch --check --root tests/arch/bad exited $rc, not 1"
while IFS= read -r want; do
    [ -n "$want" ] || continue
    grep -qF -- "$want" "$out" || bad "bad/: no line with: $want"
done <<'EOF'
problem: cycle: ppclient/a.c -> ppclient/b.c -> ppclient/a.c
problem: cycle: ppserver/server.c -> ppserver/session.c -> ppserver/server.c
    ppclient/a.c -> ppclient/b.c: b_step, #include "b.h"
    ppclient/b.c -> ppclient/a.c: a_done, #include "a.h"
problem: layer: ppserver/session.c -> ppclient/a.c (ppserver uses ppclient): a_done
problem: layer: shared/pp_util.c -> ppserver/server.c (shared uses ppserver): #include "server.h"
problem: long: shared/pp_long.c:6: long_unexplained: 88 lines
problem: long: shared/pp_long.c:98: long_reasonless: 88 lines
shared/pp_long.c:190: long_explained: 88 lines: Long: a table of steps
arch: 6 problems
EOF
if grep -q 'problem: .*long_explained' "$out"; then
    bad "bad/: long_explained has its Long: reason but was counted a problem"
fi
[ $fail -eq 0 ] || cat "$out"

# 2. good/: exit 0; its shared/ cycle reported; no false edge.
python3 "$arch" --check --root "$fix/good" >"$out" 2>&1
rc=$?
[ $rc -eq 0 ] || bad "arch --check --root tests/arch/good exited $rc, not 0"
grep -qF "note: cycle among shared/ modules (reported, does not fail): shared/pp_x.c -> shared/pp_y.c -> shared/pp_x.c" "$out" ||
    bad "good/: the shared/ cycle is not reported"
grep -qF "shared/pp_long.c:8: long_explained: 88 lines: Long: the steps" "$out" ||
    bad "good/: long_explained is not listed with its reason"
if grep -q 'ppclient/c.c -> ppclient/d.c\|examples\|ppserver/session.c -> ppserver/server.c' "$out"; then
    bad "good/: an edge made of a comment, string, member, static or local name, or examples/"
fi
[ $rc -eq 0 ] && [ $fail -eq 0 ] || cat "$out"

# 3. --help of every form.
for form in "" deps long layers --check; do
    python3 "$arch" $form --help >/dev/null || bad "arch $form --help failed"
done

# 4. The real tree.
echo "== scripts/arch --check on $src"
python3 "$arch" --check --root "$src" >"$out" 2>&1
rc=$?
sed -n '/^== Cycles/,$p' "$out"
if [ "${PP_ARCH_STRICT:-0}" = 1 ]; then
    [ $rc -eq 0 ] || bad "the real tree has the problems above (PP_ARCH_STRICT=1)"
else
    case $rc in
    0 | 1) echo "(REPORT mode: the real tree's problems do not fail this test; PP_ARCH_STRICT=1 makes them fail it)" ;;
    *) bad "arch --check on the real tree exited $rc" ;;
    esac
fi

if [ $fail -eq 0 ]; then
    echo "architecture: fixtures OK"
fi
exit $fail
