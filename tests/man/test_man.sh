#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_man.sh SOURCE_DIR BUILD_DIR PP_H PROGRAM... -- checks the man pages
# of conf/man: lint-clean (mandoc -Tlint -Wwarning, else groff -ww -z);
# each program's long options in its --help and in its page, both ways;
# every PP_API function of pp.h named in a section-3 page; every .Xr
# pointing at a page or an alias; and `cmake --install` into a temporary
# prefix putting them under share/man/man1, man3, man8, where they render.
# A PROGRAM is NAME=PATH (e.g. ppserver=/build/bin/ppserver).
# (Here-strings, not pipes, feed grep -q: with pipefail an early exit of
# grep would fail the writer with SIGPIPE.)
# Exit 77 (skipped) when neither mandoc nor groff is installed.
set -uo pipefail
src=$1 build=$2 pph=$3
shift 3
man=$src/conf/man
fail=0
bad() { echo "FAIL: $*"; fail=1; }

if command -v mandoc >/dev/null; then
    lint() { mandoc -Tlint -Wwarning "$1"; }
    render() { mandoc -Tutf8 "$1"; }
elif command -v groff >/dev/null; then
    lint() { groff -ww -z -mandoc "$1" 2>&1 | grep . && return 1; return 0; }
    render() { groff -Tutf8 -mandoc "$1"; }
else
    echo "skipped: neither mandoc nor groff is installed"
    exit 77
fi

pages=("$man"/*.[1-8])
[ ${#pages[@]} -ge 5 ] || { echo "FAIL: no man pages in $man"; exit 1; }

# 1. Lint.
for p in "${pages[@]}"; do
    out=$(lint "$p" 2>&1) || bad "$(basename "$p"): lint: $out"
    [ -z "$out" ] || bad "$(basename "$p"): lint: $out"
done

# 2. Options: the option column of --help (lines starting with blanks then
# -x, or --long) against the .It Fl entries of the page.
help_opts() {
    "$1" --help 2>&1 | grep -E '^[[:space:]]+(-[A-Za-z], )?--[a-z]' |
        sed -E 's/^[[:space:]]+(-[A-Za-z], )?(--[a-z0-9][a-z0-9-]*).*/\2/' | sort -u
}
page_opts() {
    grep -E '^\.It .*Fl ' "$1" | grep -oE 'Fl \\-[a-z0-9][a-z0-9-]*' |
        sed 's/^Fl \\-/--/' | sort -u
}
for prog in "$@"; do
    name=${prog%%=*} path=${prog#*=}
    page=$(ls "$man/$name".[18] 2>/dev/null | head -n1)
    if [ -z "$page" ]; then bad "$name: no man page in $man"; continue; fi
    if [ ! -x "$path" ]; then bad "$name: program $path not built"; continue; fi
    h=$(help_opts "$path") p=$(page_opts "$page")
    [ -n "$h" ] || { bad "$name: no long options found in --help"; continue; }
    missing=$(comm -23 <(echo "$h") <(echo "$p") | tr '\n' ' ')
    extra=$(comm -13 <(echo "$h") <(echo "$p") | tr '\n' ' ')
    [ -z "$missing" ] || bad "$name: in --help, not in $(basename "$page"): $missing"
    [ -z "$extra" ] || bad "$name: in $(basename "$page"), not in --help: $extra"
    echo "$name: $(echo "$h" | wc -l) options compared"
done

# Names a page's NAME section gives (.Nm before .Nd), "name.section" each.
names_of() {
    local f=$1 s=${1##*.}
    sed -n '/^\.Sh NAME/,/^\.Nd/p' "$f" | sed -n 's/^\.Nm \([A-Za-z0-9_.-]*\).*/\1/p' |
        sed "s/\$/.$s/"
}
all_names=$(for p in "${pages[@]}"; do names_of "$p"; done | sort -u)

# 3. Every PP_API function of pp.h in some section-3 page's NAME section.
funcs=$(grep -oE '^PP_API [^(]*[^A-Za-z0-9_]pp_[a-z0-9_]+\(' "$pph" |
    grep -oE 'pp_[a-z0-9_]+\($' | tr -d '(' | sort -u)
[ -n "$funcs" ] || bad "no PP_API function found in $pph"
nf=0
for f in $funcs; do
    nf=$((nf + 1))
    grep -qx "$f.3" <<<"$all_names" || bad "pp.h: $f is in no section-3 man page"
done
echo "pp.h: $nf functions checked"

# 4. Cross references resolve.
for p in "${pages[@]}"; do
    for x in $(grep -hoE '^\.Xr [A-Za-z0-9_.-]+ [1-8]' "$p" | awk '{print $2"."$3}' | sort -u); do
        grep -qx "$x" <<<"$all_names" || bad "$(basename "$p"): .Xr ${x%.*}(${x##*.}) names no page"
    done
done

# 5. Installed into share/man/manN, aliases included, and they render.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! cmake --install "$build" --prefix "$tmp" >"$tmp/log" 2>&1; then
    bad "cmake --install: $(tail -n3 "$tmp/log")"
else
    for n in $all_names; do
        f=$tmp/share/man/man${n##*.}/$n
        [ -s "$f" ] || { bad "$n not installed as $f"; continue; }
        out=$(cd "$tmp/share/man" && render "$f" 2>&1) || bad "$n: does not render"
        sed 's/.\x08//g' <<<"$out" | grep -c '^NAME' >/dev/null || bad "$n: rendered without a NAME section"
    done
    echo "installed: $(echo "$all_names" | wc -l) pages and aliases under share/man"
fi
[ $fail -eq 0 ] && echo "man pages: OK"
exit $fail
