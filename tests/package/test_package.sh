#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_package.sh SOURCE_DIR WORK_DIR -- the Debian packages (issue 14):
#   1. scripts/package builds them (a build for /usr in WORK_DIR/build);
#   2. their fields (versions, Depends, Source, conffiles, maintainer
#      scripts, shlibs, the ldconfig trigger) and contents: every file a full
#      install makes is in the one package it belongs to; the packaged unit
#      names /usr/bin/ppserver and the ppserver user, and systemd accepts it;
#   3. lintian reports no error (warnings are shown);
#   4. as root, they are installed with dpkg into a throwaway Debian root
#      made by mmdebstrap (its tarball is kept in WORK_DIR for the next run):
#      the ppserver user and its cache, ppserver --version, the node started
#      on a loopback port, the hello example (built here against libpp-dev:
#      pkg-config and the CMake package) and pp-fib with no local worker run
#      their jobs on it, then removal and purge.  Everything in the root runs
#      in a mount and PID namespace of its own, so nothing outlives the test.
# Exit 77 (skipped) where cpack or dpkg-dev is missing, or where the install
# into a root cannot run (not root, no mirror): the checks that could run
# still ran, and the message says which part was left out.
set -euo pipefail
src=$1
work=$2
mkdir -p "$work"
tmp=$(mktemp -d "$work/run.XXXXXX")
# --one-file-system: never into a mount (the root's /dev is mounted only in
# a namespace of its own, but be sure).
trap 'rm -rf --one-file-system "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
# step FUNCTION MESSAGE: runs a group of checks; "ok" only if none failed.
step() {
    local before=$fails
    "$1"
    if [ $fails -eq "$before" ]; then ok "$2"; fi
}
skip() { echo "skipped: $*"; exit 77; }

for tool in cpack dpkg-deb dpkg-shlibdeps dpkg-buildflags file; do
    command -v "$tool" >/dev/null || skip "$tool is missing (Debian packages cmake, dpkg-dev, file)"
done
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)

# ---- 1. build ----
"$src/scripts/package" --no-deps --build-dir "$work/build" --out "$tmp/debs" >"$tmp/package.log" 2>&1 ||
    { cat "$tmp/package.log"; echo "FAIL: scripts/package"; exit 1; }
ver=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$work/build/CMakeCache.txt")
major=${ver%%.*}
deb() { echo "$tmp/debs/${1}_${ver}_${arch}.deb"; }
for p in "libpp$major" libpp-dev ppserver pp-demos; do
    [ -f "$(deb "$p")" ] || { echo "FAIL: no $(deb "$p") (scripts/package made: $(ls "$tmp/debs"))"; exit 1; }
done
ok "scripts/package built $(ls "$tmp/debs" | tr '\n' ' ')"

# ---- 2. fields ----
field() { dpkg-deb -f "$(deb "$1")" "$2"; }
# has_dep PACKAGE DEPENDENCY-REGEX
has_dep() {
    field "$1" Depends | tr ',' '\n' | sed 's/^ *//' | grep -Eq "^$2\$" ||
        fail "$1 Depends lacks /$2/: $(field "$1" Depends)"
}
check_fields() {
    local p
    for p in "libpp$major" libpp-dev ppserver pp-demos; do
        [ "$(field "$p" Version)" = "$ver" ] || fail "$p Version $(field "$p" Version), not $ver"
        [ "$(field "$p" Source)" = pp ] || fail "$p Source $(field "$p" Source)"
        [ "$(field "$p" Architecture)" = "$arch" ] || fail "$p Architecture"
    done
    has_dep "libpp$major" 'libc6 \(>= [0-9.]+\)'
    has_dep "libpp$major" 'libssl3 \(>= [0-9.]+\)'
    has_dep "libpp$major" 'zlib1g.*'
    has_dep libpp-dev "libpp$major \(= $ver\)"
    has_dep ppserver "libpp$major \(= $ver\)"
    has_dep ppserver adduser
    has_dep ppserver libmicrohttpd12
    has_dep ppserver 'libssl3 \(>= [0-9.]+\)'
    has_dep pp-demos "libpp$major \(= $ver\)"
    has_dep pp-demos 'libcurl4 .*'
    [ "$(dpkg-deb -I "$(deb ppserver)" conffiles)" = /etc/pp/ppserver.conf ] ||
        fail "ppserver conffiles: $(dpkg-deb -I "$(deb ppserver)" conffiles 2>&1)"
    dpkg-deb -e "$(deb ppserver)" "$tmp/ctl"
    for s in postinst prerm postrm; do
        [ -x "$tmp/ctl/$s" ] && sh -n "$tmp/ctl/$s" || fail "ppserver $s missing or not sh"
    done
    [ "$(dpkg-deb -I "$(deb "libpp$major")" shlibs)" = "libpp $major libpp$major (>= $ver)" ] ||
        fail "libpp$major shlibs: $(dpkg-deb -I "$(deb "libpp$major")" shlibs 2>&1)"
    dpkg-deb -I "$(deb "libpp$major")" triggers | grep -qx 'activate-noawait ldconfig' ||
        fail "libpp$major does not activate the ldconfig trigger"
}
step check_fields "fields: versions $ver, Depends, conffiles, maintainer scripts, shlibs, trigger"

# ---- 2. contents: each file of a full install in the package it belongs to ----
# owner PATH: the package a file of the install belongs in.
owner() {
    case "${1%.gz}" in
    usr/share/doc/* | usr/share/lintian/overrides/*)
        local d=${1#usr/share/doc/}
        d=${d#usr/share/lintian/overrides/}
        echo "${d%%/*}" ;;
    usr/share/man/man3/*) echo libpp-dev ;;
    usr/share/man/man1/pp-fib.1* | usr/share/man/man1/pp-crawl.1*) echo pp-demos ;;
    usr/share/man/man[18]/*) echo ppserver ;;
    usr/bin/pp-fib | usr/bin/pp-crawl | "usr/lib/$triplet/pp/"*) echo pp-demos ;;
    usr/bin/* | etc/pp/* | lib/systemd/system/* | var/cache/ppserver) echo ppserver ;;
    usr/libexec/pp/ppworker | "usr/lib/$triplet/libpp.so.$major"*) echo "libpp$major" ;;
    usr/include/* | "usr/lib/$triplet/libpp."[sa]* | "usr/lib/$triplet/pkgconfig/"* | \
        "usr/lib/$triplet/cmake/pp/"*) echo libpp-dev ;;
    *) echo "?" ;;
    esac
}
check_contents() {
    DESTDIR="$tmp/full" cmake --install "$work/build" >/dev/null
    local p f want n=0
    for p in "libpp$major" libpp-dev ppserver pp-demos; do
        dpkg-deb -c "$(deb "$p")" | awk -v p="$p" '$1 !~ /^d/ || $6 == "./var/cache/ppserver/" {
            f = $6; sub(/^\.\//, "", f); sub(/\/$/, "", f); print f, p }'
    done | sort >"$tmp/packaged"
    # (The packages' man pages are gzipped: cmake/deb/compress_man.cmake.)
    (cd "$tmp/full" && find . \( -type f -o -type l \) -printf '%P\n'; echo var/cache/ppserver) |
        sed 's#^\(usr/share/man/man[1-8]/.*\.[1-8]\)$#\1.gz#' | sort -u >"$tmp/installed"
    while read -r f; do
        n=$((n + 1))
        want=$(owner "$f")
        if [ "$want" = "?" ]; then
            fail "$f: installed, but no package is meant for it (tests/package/test_package.sh owner())"
        elif ! grep -qx "$f $want" "$tmp/packaged"; then
            fail "$f: not in $want (but in: $(grep "^$f " "$tmp/packaged" | cut -d' ' -f2 |
                tr '\n' ' ')) -- its install() rule needs COMPONENT ${want/libpp$major/libpp}"
        fi
    done <"$tmp/installed"
    [ "$(wc -l <"$tmp/packaged")" -eq "$n" ] ||
        fail "the packages hold $(wc -l <"$tmp/packaged") files, a full install $n"
    for f in usr/bin/ppserver usr/libexec/pp/ppworker "usr/lib/$triplet/libpp.so.$major" \
        usr/include/pp.h "usr/lib/$triplet/libpp.a" "usr/lib/$triplet/pkgconfig/pp.pc" \
        "usr/lib/$triplet/cmake/pp/ppConfig.cmake" etc/pp/ppserver.conf \
        lib/systemd/system/ppserver.service var/cache/ppserver usr/bin/pp-fib \
        usr/share/doc/ppserver/copyright; do
        grep -q "^$f " "$tmp/packaged" || fail "$f is in no package"
    done
}
step check_contents "contents: every file of a full install in its package"

check_unit() {
    dpkg-deb -x "$(deb ppserver)" "$tmp/x"
    local unit="$tmp/x/lib/systemd/system/ppserver.service" key
    for key in 'ExecStart=/usr/bin/ppserver -c /etc/pp/ppserver.conf ' 'User=ppserver$' \
        'CacheDirectory=ppserver$' 'LoadCredential=secret:/etc/pp/secret$' \
        'NoNewPrivileges=yes$' 'ProtectSystem=strict$' 'CapabilityBoundingSet=$'; do
        grep -q "^$key" "$unit" || fail "the packaged unit lacks $key"
    done
    grep -q '^DynamicUser' "$unit" && fail "the packaged unit has DynamicUser= (the package makes the user)"
    if command -v systemd-analyze >/dev/null; then
        sed "s#=/usr/bin/ppserver #=$tmp/x/usr/bin/ppserver #" "$unit" >"$tmp/ppserver.service"
        out=$(systemd-analyze verify "$tmp/ppserver.service" 2>&1) && [ -z "$out" ] ||
            fail "systemd-analyze verify: $out"
    fi
}
step check_unit "the packaged unit: /usr/bin/ppserver, User=ppserver, hardening kept, systemd-analyze verify clean"

# ---- 3. lintian ----
if command -v lintian >/dev/null; then
    lintian --fail-on error "$tmp"/debs/*.deb >"$tmp/lintian.log" 2>&1 || fail "lintian reports errors"
    grep -E '^[EW]:' "$tmp/lintian.log" || true
    ok "lintian: $(grep -c '^E:' "$tmp/lintian.log" || true) error(s), $(grep -c '^W:' "$tmp/lintian.log" || true) warning(s)"
else
    echo "note: lintian is not installed: not run"
fi
[ $fails -eq 0 ] || { echo "package test: $fails failure(s)"; exit 1; }

# ---- 4. hello, built here against the packaged libpp-dev ----
build_hello() {
    local x="$tmp/dev" h="$src/ppclient/examples/hello"
    dpkg-deb -x "$(deb libpp-dev)" "$x" && dpkg-deb -x "$(deb "libpp$major")" "$x"
    mkdir -p "$tmp/hello"
    export PKG_CONFIG_PATH="$x/usr/lib/$triplet/pkgconfig"
    # shellcheck disable=SC2046 # pkg-config gives several words
    (cd "$tmp/hello" &&
        cc -shared -fPIC "$h/tasks.c" -o libhellotasks.so $(pkg-config --cflags pp) &&
        cc "$h/app.c" -o hello -I"$h" $(pkg-config --cflags --libs pp) -L. -lhellotasks \
            -Wl,-rpath,'$ORIGIN') || return 1
    cmake -S "$h" -B "$tmp/hello-cmake" -DCMAKE_PREFIX_PATH="$x/usr" \
        -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DCMAKE_SKIP_BUILD_RPATH=OFF >/dev/null &&
        cmake --build "$tmp/hello-cmake" >/dev/null &&
        mkdir -p "$tmp/hello/cmake" &&
        cp "$tmp/hello-cmake/hello" "$tmp/hello-cmake/libhellotasks.so" "$tmp/hello/cmake/"
}
build_hello >"$tmp/hello.log" 2>&1 || { cat "$tmp/hello.log"; echo "FAIL: hello against the packaged libpp-dev"; exit 1; }
ok "hello built against the packaged libpp-dev (pkg-config and find_package(pp))"

# The extracted files alone (what runs where no root can be made): the
# packaged ppserver runs, hello runs on the packaged libpp and ppworker.
out=$("$tmp/x/usr/bin/ppserver" --version 2>&1) && [ "$out" = "ppserver $ver" ] ||
    { echo "FAIL: extracted ppserver --version: $out"; exit 1; }
out=$(cd "$tmp/hello" && LD_LIBRARY_PATH="$tmp/dev/usr/lib/$triplet" \
    PP_WORKER="$tmp/dev/usr/libexec/pp/ppworker" timeout 60 ./hello 2>&1) &&
    echo "$out" | grep -q '^Sum of primes below 100000 is 454396537$' ||
    { echo "FAIL: hello on the extracted libpp: $out"; exit 1; }
ok "extracted: ppserver --version, hello on the packaged libpp and ppworker"

[ "$(id -u)" -eq 0 ] || skip "not root: not installed into a throwaway root (packages built and checked)"
for tool in unshare chroot mount; do
    command -v "$tool" >/dev/null || skip "$tool is missing: not installed into a root (packages built and checked)"
done
unshare --mount --pid --fork true 2>/dev/null ||
    skip "no mount/PID namespace here: not installed into a root (packages built and checked)"

# The root: Debian's apt variant plus what the packages depend on, so that
# dpkg -i needs no network; kept in WORK_DIR, named by that list.
rootfs_tarball() {
    local suite deps sum tar
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    deps=$(for p in "libpp$major" libpp-dev ppserver pp-demos; do field "$p" Depends; done |
        tr ',' '\n' | sed 's/|.*//; s/(.*//; s/ //g' | grep -v '^libpp\|^$' | sort -u | tr '\n' ',')
    deps="${deps}init-system-helpers"
    sum=$(echo "$suite $deps" | sha256sum | cut -c1-12)
    tar="$work/root-$suite-$sum.tar"
    if [ ! -s "$tar" ]; then
        command -v mmdebstrap >/dev/null || return 1
        rm -rf "$work"/root-*.tar
        # (mmdebstrap chooses the output's format by its extension.)
        timeout 600 mmdebstrap --quiet --variant=apt --include="$deps" "$suite" \
            "$work/root-part.tar" >"$work/mmdebstrap.log" 2>&1 || return 1
        mv "$work/root-part.tar" "$tar"
    fi
    echo "$tar"
}
tar=$(rootfs_tarball) ||
    skip "no Debian root: mmdebstrap missing or failed (see $work/mmdebstrap.log); packages built and checked, not installed"
root="$tmp/root"
mkdir -p "$root"
tar -C "$root" -xf "$tar" || { echo "FAIL: cannot unpack $tar"; exit 1; }
mkdir -p "$root/tmp/t"
cp -r "$tmp"/debs/*.deb "$tmp"/hello/* "$src/tests/package/in_root.sh" "$root/tmp/t/"
ok "root: $(basename "$tar")"

# In a mount and PID namespace: /proc and /dev for the root go with it, and
# every process started in the root (ppserver, its workers) ends with it.
timeout 300 unshare --mount --pid --fork --propagation private sh -c '
    root=$1
    mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" || exit 1
    chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh /tmp/t/in_root.sh "$2" "$3"
' sh "$root" "$ver" "$major" || { echo "FAIL: in the root (above)"; exit 1; }
echo "package test: passed"
