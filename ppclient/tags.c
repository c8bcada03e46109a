/* SPDX-License-Identifier: MIT */
/* tags.c -- tag sets and nodes' tags, interned (see tags.h).  Which
 * backend takes a job that needs tags is the scheduler's (sched.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tags.h"

/* A node's tags as text, interned: pp_node_info.tags points here. */
struct tag_text {
    struct tag_text *next;
    char text[];
};

/* ---- interning ---- */

pp_tagset *pp_tagset_get_locked(pp_server *s, const pp_tags *t, char *err)
{
    char text[PP_TAGS_TEXT_MAX];
    pp_tags_text(t, text, sizeof text);
    for (int i = 0; i < s->ntagsets; i++)
        if (strcmp(s->tagset_tab[i]->text, text) == 0)
            return s->tagset_tab[i];
    if (s->ntagsets >= PP_TAGSETS_MAX) {
        pp_seterr(err, "more than %d distinct sets of tags", PP_TAGSETS_MAX);
        return NULL;
    }
    if (!s->tagset_tab && !(s->tagset_tab = calloc(PP_TAGSETS_MAX, sizeof *s->tagset_tab))) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    pp_tagset *ts = calloc(1, sizeof *ts);
    ready_level *lv = malloc(4 * sizeof *lv); /* a push never lacks a level */
    if (!ts || !lv) {
        free(ts);
        free(lv);
        pp_seterr(err, "out of memory");
        return NULL;
    }
    ts->tags = *t;
    memcpy(ts->text, text, sizeof text);
    ts->q = (ready_queue){.lv = lv, .cap = 4};
    s->tagset_tab[s->ntagsets++] = ts;
    ts->id = (uint16_t)s->ntagsets;
    return ts;
}

const char *pp_tag_text_locked(pp_server *s, const pp_tags *t)
{
    char text[PP_TAGS_TEXT_MAX];
    pp_tags_text(t, text, sizeof text);
    for (struct tag_text *x = s->tag_texts; x; x = x->next)
        if (strcmp(x->text, text) == 0)
            return x->text;
    size_t n = strlen(text);
    struct tag_text *x = s->ntag_texts < PP_TAG_TEXTS_MAX ? malloc(sizeof *x + n + 1) : NULL;
    if (!x)
        return NULL;
    memcpy(x->text, text, n + 1);
    x->next = s->tag_texts;
    s->tag_texts = x;
    s->ntag_texts++;
    return x->text;
}

void pp_tags_free(pp_server *s)
{
    for (int i = 0; i < s->ntagsets; i++) {
        free(s->tagset_tab[i]->q.lv);
        free(s->tagset_tab[i]);
    }
    free(s->tagset_tab);
    s->tagset_tab = NULL;
    s->ntagsets = 0;
    while (s->tag_texts) {
        struct tag_text *x = s->tag_texts;
        s->tag_texts = x->next;
        free(x);
    }
    free(s->local_tags);
    s->local_tags = NULL;
}

int pp_tags_set_backend(pp_backend *b, const pp_tags *t)
{
    pp_server *s = b->s;
    pp_tags *copy = NULL;
    if (t && t->n) {
        if (!(copy = malloc(sizeof *copy)))
            return -1;
        *copy = *t;
    }
    pthread_mutex_lock(&s->mu);
    const char *text = copy ? pp_tag_text_locked(s, copy) : NULL;
    if (copy && !text) {
        pthread_mutex_unlock(&s->mu);
        free(copy);
        return -1;
    }
    b->node->tags = text;
    pthread_mutex_unlock(&s->mu);
    free(b->tags);
    b->tags = copy;
    b->tags_known = 1;
    return 0;
}
