#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install_test.sh BUILD_DIR SOURCE_DIR -- installs pp into a temporary
# prefix and builds the hello example against it: with the CMake package,
# with pkg-config, and statically; the installed libpp must find the
# installed ppworker by itself.  Also checks that libpp exports only pp.h's names.
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

# pkg-config, as the README shows it for a prefix outside the linker's
# search path (the rpath names libpp's directory).
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cd "$tmp"
cc -shared -fPIC "$src/ppclient/examples/hello/tasks.c" -o libtasks.so $(pkg-config --cflags pp)
cc "$src/ppclient/examples/hello/app.c" -o app -I"$src/ppclient/examples/hello" \
    $(pkg-config --cflags --libs pp) -L. -ltasks -Wl,-rpath,'$ORIGIN' \
    -Wl,-rpath,"$(pkg-config --variable=libdir pp)"
out=$(./app)
echo "$out" | grep -q "Sum of primes below 100700 is" ||
    { echo "FAIL: pkg-config-built app printed:"; echo "$out"; exit 1; }

# The static libpp, as the README shows it: it finds ppworker beside the
# program, in ../libexec/pp from it, at the install path compiled in, or
# through PP_WORKER.
cc "$src/ppclient/examples/hello/app.c" -o app-static -I"$src/ppclient/examples/hello" \
    $(pkg-config --cflags pp) "$(pkg-config --variable=libdir pp)/libpp.a" \
    $(pkg-config --static --libs-only-l pp | sed 's/-lpp\b//') -L. -ltasks -Wl,-rpath,'$ORIGIN'
if out=$(./app-static 2>&1); then
    # Only where pp is installed at the compiled-in path too.
    echo "$out" | grep -q "Sum of primes below 100700 is" ||
        { echo "FAIL: static app printed:"; echo "$out"; exit 1; }
else
    echo "$out" | grep -q "set PP_WORKER" ||
        { echo "FAIL: static app without ppworker printed:"; echo "$out"; exit 1; }
fi
out=$(PP_WORKER="$tmp/prefix/libexec/pp/ppworker" ./app-static)
echo "$out" | grep -q "Sum of primes below 100700 is" ||
    { echo "FAIL: static app with PP_WORKER printed:"; echo "$out"; exit 1; }
mkdir -p "$tmp/prefix/bin"
cp app-static libtasks.so "$tmp/prefix/bin/"
out=$("$tmp/prefix/bin/app-static")
echo "$out" | grep -q "Sum of primes below 100700 is" ||
    { echo "FAIL: static app in PREFIX/bin printed:"; echo "$out"; exit 1; }

# Only the public API is exported.
extra=$(nm -D --defined-only "$tmp/prefix/lib/libpp.so" | awk '{print $3}' | grep -v '^pp_' || true)
hidden=$(nm -D --defined-only "$tmp/prefix/lib/libpp.so" | awk '{print $3}' | grep '^pp_' |
    while read -r sym; do grep -q "\\b$sym(" "$src/ppclient/include/pp.h" || echo "$sym"; done)
if [ -n "$extra$hidden" ]; then
    echo "FAIL: libpp exports names not in pp.h: $extra $hidden"
    exit 1
fi
echo "install test: 4 passed, 0 failed"
