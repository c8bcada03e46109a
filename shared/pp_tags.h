/* SPDX-License-Identifier: MIT */
/* pp_tags.h -- node tags: what a tag may be, a set of them kept sorted, a
 * comma-separated list read into one, and whether one set holds another.
 * A node has tags (ppserver --tag, pp_config.local_tags); a job may need
 * some (pp_submit_opts.tags) and then runs only where all of them are.
 *
 * A tag is 1 to PP_TAG_MAX characters of A-Z a-z 0-9 _ . - ; a set holds at
 * most PP_TAGS_MAX.  Pure: no I/O, no allocation. */
#ifndef PP_TAGS_H
#define PP_TAGS_H

#include <stddef.h>

#define PP_TAG_MAX 32                /* longest tag, in bytes */
#define PP_TAGS_MAX 32               /* most tags in a set */
/* The longest text of a set ("a,b,..."), its NUL included. */
#define PP_TAGS_TEXT_MAX (PP_TAGS_MAX * (PP_TAG_MAX + 1))

typedef struct pp_tags {
    int n;
    char tag[PP_TAGS_MAX][PP_TAG_MAX + 1]; /* sorted (strcmp), distinct */
} pp_tags;

/* Whether the len bytes at p make a tag. */
int pp_tag_ok(const char *p, size_t len);

/* Adds the tag of len bytes at p, in its place.  0 when added, 1 when the
 * set has it already (nothing changes), -1 when it is no tag or the set is
 * full, with the reason in err (PP_ERR_LEN bytes; the tag shown with bytes
 * that are not printable escaped). */
int pp_tags_add(pp_tags *t, const char *p, size_t len, char *err);

/* Adds the tags of a comma-separated list (blanks around each ignored; a
 * tag named twice counts once; "" adds none).  0, or -1 with the reason in
 * err: an empty item, a tag not allowed, more than PP_TAGS_MAX. */
int pp_tags_parse(pp_tags *t, const char *list, char *err);

/* The set as "a,b,c" ("" when empty) into buf (PP_TAGS_TEXT_MAX bytes
 * hold any set; a smaller buf gets the text cut). */
void pp_tags_text(const pp_tags *t, char *buf, size_t len);

/* Whether `have` holds every tag of `need`. */
int pp_tags_subset(const pp_tags *need, const pp_tags *have);

#endif
