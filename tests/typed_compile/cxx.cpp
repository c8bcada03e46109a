// SPDX-License-Identifier: MIT
// cxx.cpp -- pp.h in a C++ translation unit (the v-forms are C only; C++
// uses the format functions and the *_values functions).
#include <pp.h>

int use_from_cxx(pp_buf *b, const void *data, size_t len);

int use_from_cxx(pp_buf *b, const void *data, size_t len)
{
    long xs[] = {1, 2};
    int rc = pp_pack(b, "lnL", 1L, xs, sizeof xs / sizeof xs[0]);
    pp_value v;
    v.type = 'l';
    v.n = 0;
    v.as.l = 3;
    rc |= pp_pack_values(b, &v, 1);
    long l = 0;
    pp_out o;
    o.type = 'l';
    o.n = 0;
    o.to.l = &l;
    rc |= pp_unpack_values(data, len, &o, 1);
    char fmt[8];
    return rc | pp_unpack_format(data, len, fmt, sizeof fmt);
}
