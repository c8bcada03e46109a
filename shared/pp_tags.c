/* SPDX-License-Identifier: MIT */
/* pp_tags.c -- node tags (see the header). */
#include "pp_tags.h"

#include <stdio.h>
#include <string.h>

#include "pp_common.h"

static int tag_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

int pp_tag_ok(const char *p, size_t len)
{
    if (len == 0 || len > PP_TAG_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!tag_char((unsigned char)p[i]))
            return 0;
    return 1;
}

int pp_tags_add(pp_tags *t, const char *p, size_t len, char *err)
{
    char shown[64];
    if (!pp_tag_ok(p, len)) {
        pp_quote(p, len, shown, sizeof shown);
        pp_seterr(err, "tag \"%s\" (%zu bytes): a tag is 1 to %d characters of A-Z a-z 0-9 "
                       "_ . -", shown, len, PP_TAG_MAX);
        return -1;
    }
    char tag[PP_TAG_MAX + 1];
    memcpy(tag, p, len);
    tag[len] = 0;
    int at = 0;
    while (at < t->n && strcmp(t->tag[at], tag) < 0)
        at++;
    if (at < t->n && strcmp(t->tag[at], tag) == 0)
        return 1;
    if (t->n == PP_TAGS_MAX) {
        pp_seterr(err, "more than %d tags (at \"%s\")", PP_TAGS_MAX, tag);
        return -1;
    }
    memmove(t->tag[at + 1], t->tag[at], (size_t)(t->n - at) * sizeof t->tag[0]);
    memcpy(t->tag[at], tag, len + 1);
    t->n++;
    return 0;
}

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

int pp_tags_parse(pp_tags *t, const char *list, char *err)
{
    const char *p = list;
    if (!*list)
        return 0;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && blank(*a))
            a++;
        while (b > a && blank(b[-1]))
            b--;
        if (a == b) {
            pp_seterr(err, "an empty tag in \"%.80s\" (tags are separated by single commas)",
                      list);
            return -1;
        }
        if (pp_tags_add(t, a, (size_t)(b - a), err) < 0)
            return -1;
        if (!*end)
            break;
        p = end + 1;
    }
    return 0;
}

void pp_tags_text(const pp_tags *t, char *buf, size_t len)
{
    size_t o = 0;
    if (len)
        buf[0] = 0;
    for (int i = 0; i < t->n && o + 1 < len; i++) {
        int n = snprintf(buf + o, len - o, "%s%s", i ? "," : "", t->tag[i]);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

int pp_tags_subset(const pp_tags *need, const pp_tags *have)
{
    int j = 0;
    for (int i = 0; i < need->n; i++) {
        while (j < have->n && strcmp(have->tag[j], need->tag[i]) < 0)
            j++;
        if (j == have->n || strcmp(have->tag[j], need->tag[i]) != 0)
            return 0;
        j++;
    }
    return 1;
}
