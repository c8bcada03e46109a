/* SPDX-License-Identifier: MIT */
/* tags.h -- the tag sets jobs need (pp_submit_opts.tags), interned, each
 * with the queue of its jobs waiting for a backend (sched.c keeps them out
 * of the ready queue and hands them only to backends having every tag);
 * backends' tags (ppserver --tag, pp_config.local_tags); nodes' tags as
 * text, interned, for pp_get_active_nodes().  _locked: mu held. */
#ifndef PP_TAGS_CLIENT_H
#define PP_TAGS_CLIENT_H

#include "backend.h"
#include "pp_tags.h"

#define PP_TAGSETS_MAX 1024   /* distinct tag sets jobs may need */
#define PP_TAG_TEXTS_MAX 4096 /* distinct tag texts nodes may show */

/* A set of tags jobs need: one per distinct set, kept until the server is
 * freed (jobs name it by id). */
typedef struct pp_tagset {
    uint16_t id;                 /* 1 + its slot in s->tagset_tab: pp_job.tagset */
    pp_tags tags;                /* immutable */
    char text[PP_TAGS_TEXT_MAX]; /* "avx512,gpu", immutable */
    ready_queue q;               /* (sched) its jobs waiting for a backend */
    int active;                  /* (sched) in tag_waits.active */
    struct pp_tagset *anext;     /* (sched) the next active set */
    double since;                /* (sched) since when no backend up has them, or 0 */
    int warned;                  /* (sched) that was logged */
} pp_tagset;

/* The scheduler's jobs that need tags. */
typedef struct tag_waits {
    pp_tagset *active;           /* sets with jobs queued (through anext) */
    size_t n;                    /* jobs in them */
    pp_timer timer;              /* wakes the loop for the log and no_node_timeout */
} tag_waits;

/* The set a job needs (j->tagset not 0).  Any thread that got the job
 * through mu, or holding it. */
static inline pp_tagset *pp_tagset_of(const pp_server *s, const pp_job *j)
{
    return s->tagset_tab[j->tagset - 1];
}

/* The set `t` (not empty), made on first use.  NULL with the reason in err
 * (PP_TAGSETS_MAX sets already, out of memory). */
PP_HIDDEN pp_tagset *pp_tagset_get_locked(pp_server *s, const pp_tags *t, char *err);
/* The text of `t`, interned ("" for no tag).  NULL when PP_TAG_TEXTS_MAX
 * texts are kept already, or out of memory. */
PP_HIDDEN const char *pp_tag_text_locked(pp_server *s, const pp_tags *t);
/* Frees every set and text (teardown, the scheduler gone). */
PP_HIDDEN void pp_tags_free(pp_server *s);

/* A backend's tags are now `t` (NULL: none): it owns a copy; its node's
 * text follows.  0, or -1 (too many texts, memory; the tags stay as
 * they were). */
PP_HIDDEN int pp_tags_set_backend(pp_backend *b, const pp_tags *t);

#endif
