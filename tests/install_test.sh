#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install_test.sh BUILD_DIR SOURCE_DIR -- installs pp into a temporary
# prefix and builds the hello example against it twice: with the CMake
# package and with pkg-config; the installed libpp must find the installed
# ppworker by itself.  Also checks that libpp exports only pp.h's names.
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset PP_WORKER

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in include/pp.h lib/libpp.so lib/libpp.a lib/pkgconfig/pp.pc \
    lib/cmake/pp/ppConfig.cmake libexec/pp/ppworker; do
    [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done

# CMake package.
cmake -S "$src/ppclient/examples/hello" -B "$tmp/hello" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_BUILD_RPATH="$tmp/prefix/lib" >/dev/null
cmake --build "$tmp/hello" >/dev/null
out=$("$tmp/hello/hello")
echo "$out" | grep -q "Sum of primes below 100000 is 454396537" ||
    { echo "FAIL: cmake-built hello printed:"; echo "$out"; exit 1; }

# pkg-config.
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cd "$tmp"
cc -shared -fPIC "$src/ppclient/examples/hello/tasks.c" -o libtasks.so $(pkg-config --cflags pp)
cc "$src/ppclient/examples/hello/app.c" -o app -I"$src/ppclient/examples/hello" \
    $(pkg-config --cflags --libs pp) -L. -ltasks -Wl,-rpath,"$tmp:$tmp/prefix/lib"
out=$(./app)
echo "$out" | grep -q "Sum of primes below 100700 is" ||
    { echo "FAIL: pkg-config-built app printed:"; echo "$out"; exit 1; }

# Only the public API is exported.
extra=$(nm -D --defined-only "$tmp/prefix/lib/libpp.so" | awk '{print $3}' | grep -v '^pp_' || true)
hidden=$(nm -D --defined-only "$tmp/prefix/lib/libpp.so" | awk '{print $3}' | grep '^pp_' |
    while read -r sym; do grep -q "\\b$sym(" "$src/ppclient/include/pp.h" || echo "$sym"; done)
if [ -n "$extra$hidden" ]; then
    echo "FAIL: libpp exports names not in pp.h: $extra $hidden"
    exit 1
fi
echo "install test: 3 passed, 0 failed"
