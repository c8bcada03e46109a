#!/bin/sh
# SPDX-License-Identifier: MIT
# check.sh CC INCLUDE_DIR [CXX] -- the compile-time checks of pp.h's typed
# v-forms (CTest "typed_compile").  With the project's C compiler, -std=c11
# -Wall -Wextra -Werror:
#   - good.c (every right use) compiles, also with -pedantic and more
#     warnings; bad.c without a misuse compiles (the control);
#   - each misuse of bad.c fails to compile, and the compiler's messages
#     show why (a _Generic with no matching association, the static
#     assertion on PP_VALUES_MAX, an incompatible pointer): a failure for
#     any other reason (a missing header, a typo) is a test failure;
#   - cxx.cpp, pp.h in C++, compiles with g++ (or CXX) if there is one.
# Exit 0 when every check passes, 1 otherwise.
set -u
cc=${1:?usage: check.sh CC INCLUDE_DIR [CXX]}
inc=${2:?usage: check.sh CC INCLUDE_DIR [CXX]}
cxx=${3:-${CXX:-g++}}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pp-typed-compile.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
LC_ALL=C
export LC_ALL   # plain quotes in the compilers' messages

base="-std=c11 -Wall -Wextra -Werror -I$inc"
failures=0
pass() { echo "ok:   $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }

# compiles NAME FILE FLAGS...: FILE must compile.
compiles() {
    name=$1 file=$2
    shift 2
    if "$cc" $base "$@" -c "$here/$file" -o "$tmp/out.o" 2>"$tmp/log"; then
        pass "$name compiles"
    else
        fail "$name does not compile:"
        sed 's/^/      /' "$tmp/log"
    fi
}

# refused CASE REGEX: bad.c with -DCASE must fail to compile, with a
# message matching the extended regular expression REGEX.
refused() {
    case_=$1 why=$2
    if "$cc" $base -D"$case_" -c "$here/bad.c" -o "$tmp/out.o" 2>"$tmp/log"; then
        fail "$case_ compiled, but must not"
    elif grep -Eq -- "$why" "$tmp/log"; then
        pass "$case_ refused: $(grep -Em1 -- "$why" "$tmp/log" | sed 's/^[^ ]* //')"
    else
        fail "$case_ failed to compile, but not for the expected reason /$why/:"
        sed 's/^/      /' "$tmp/log"
    fi
}

compiles "good.c" good.c
compiles "good.c (-pedantic -Wshadow -Wconversion ...)" good.c -pedantic -Wshadow \
    -Wconversion -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2
compiles "bad.c with no misuse (the control)" bad.c

# nomatch TYPE: the message of a _Generic with no association for TYPE (an
# ERE).  gcc: "'_Generic' selector of type 'int *' is not compatible with
# any association"; clang: "controlling expression type 'int *' not
# compatible with any generic association type".
nomatch() { echo "(_Generic' selector of|controlling expression) type '$1'.*not compatible with any"; }
refused BAD_UNPACK_INT_PTR "$(nomatch 'int \*')"
refused BAD_UNPACK_FLOAT_PTR "$(nomatch 'float \*')"
refused BAD_UNPACK_ULONG_PTR "$(nomatch '(long unsigned int|unsigned long) \*')"
refused BAD_UNPACK_CHAR_PTR_PTR "$(nomatch 'char \*\*')"
refused BAD_JOB_UNPACK_INT_PTR "$(nomatch 'int \*')"
refused BAD_PACK_INT_PTR "$(nomatch 'int \*')"
refused BAD_PACK_NULL "$(nomatch 'void \*')"
refused BAD_PACK_LONG_DOUBLE "$(nomatch 'long double')"
# gcc: "static assertion failed: ..."; clang: "static_assert failed ..." or
# "static assertion failed: ...".
toomany='static[ _]assert(ion)? failed.*more than PP_VALUES_MAX'
refused BAD_PACK_17 "$toomany"
refused BAD_UNPACK_17 "$toomany"
refused BAD_SUBMIT_40 "$toomany"
# Past 64 arguments the count no longer reaches the assertion, but the
# dispatch names a macro that does not exist: still an error.
refused BAD_PACK_70 "macro \"PP_V_MAP_[0-9]+\" passed|too many arguments provided to function-like macro"
refused BAD_LONGS_OF_INTS "incompatible pointer type"
refused BAD_OUT_LONGS_OF_INTS "incompatible pointer type"

if command -v "$cxx" >/dev/null 2>&1; then
    if "$cxx" -std=c++11 -Wall -Wextra -Werror -pedantic -I"$inc" -c "$here/cxx.cpp" \
        -o "$tmp/out.o" 2>"$tmp/log"; then
        pass "pp.h in C++ ($cxx) compiles"
    else
        fail "pp.h in C++ ($cxx) does not compile:"
        sed 's/^/      /' "$tmp/log"
    fi
else
    echo "skip: no C++ compiler ($cxx): pp.h in C++ not checked"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
