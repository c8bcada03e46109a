/* SPDX-License-Identifier: MIT */
/* map.c -- pp_map: one task over an array of arguments.
 *
 * The items are cut into units, one job each: a batch job of many small
 * items (the worker runs the task once per item; pp_proto.h, "Batches") or
 * a plain job of one item (a big one; one of a batch that crashed, timed
 * out or failed whole, run again alone so that only the item at fault
 * fails; or one that failed in its batch and is retried).  Each unit's
 * callback, on the callback thread, records its items' outcomes, queues
 * the unit for pp_map_next() and frees the job.  An item run again alone
 * is marked ITEM_MOVED: its batch's entry is then not its outcome, and its
 * own unit returns it.  A map keeps
 * per item one status byte, a pointer and a length; the results live in
 * one block per unit (a batch's copied out of its result, each item 16-byte
 * aligned and NUL-terminated; a plain job's taken over from the job).  The
 * arguments are not kept: each job holds its copy, and the items of a batch
 * that must run again are read back from its job's argument.
 *
 * Locking: m->mu guards what is marked (mu).  An item's data and length are
 * written before its status is published (release), so a reader that sees
 * the status final reads them without the lock.  Lock order: m->mu, then
 * the server's mu (pp_job_cancel, pp_submit_entry, the callback-thread
 * check); libpp never takes m->mu.  Callbacks run with the server's mu
 * released, so they may take m->mu. */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "pp_buf.h"
#include "pp_tags.h"
#include "pp_proto.h"
#include "pp_wire.h"

/* Automatic batching: enough jobs for every CPU to take several (so that
 * a slow CPU or a slow item does not hold the map up), each big enough that
 * the cost of a job (well under a microsecond) vanishes behind its items. */
#define MAP_JOBS_PER_CPU 8
#define MAP_ITEMS_MAX 1024             /* items per automatic batch */
#define MAP_BATCH_BYTES (1u << 20)     /* argument bytes per automatic batch */
#define MAP_BIG_ITEM (64u << 10)       /* an item this big is a job of its own */
#define MAP_HARD_BYTES (256u << 20)    /* argument bytes per batch with opts->batch */

/* Item texts of items that never got one from a worker. */
static const char CANCELLED_TEXT[] = "cancelled";
static const char SPLIT_CANCELLED_TEXT[] =
    "cancelled before it could run again alone (its batch crashed, timed out or failed)";
static const char BAD_BATCH_TEXT[] = "pp_map: a bad batch result (no memory to say more)";

typedef struct map_unit {
    pp_map *m;
    pp_job *job;                 /* (mu) our handle until its callback begins */
    size_t first;                /* its first item */
    uint32_t count;              /* items: 1 = a plain job, more = a batch job */
    int called;                  /* (mu) its callback began */
    int redo;                    /* runs an item again alone (ITEM_MOVED) */
    void *block;                 /* owned: its items' results, or their shared text */
    pp_shm *shm;                 /* owned: the shared buffer holding its result, or NULL */
    struct map_unit *qnext;      /* (mu) in the completion queue */
    struct map_unit *enext;      /* (mu) in m->extra */
} map_unit;

struct pp_map {
    pp_server *s;
    pp_task_entry *task;
    pp_submit_opts jopts;        /* every job's group (m->group) and priority */
    int retries;                 /* per item (pp_map_opts.retries) */
    char *group;                 /* owned copy of opts->group, or NULL */
    char *tags;                  /* owned copy of opts->tags, or NULL */
    double item_timeout;         /* seconds per item; 0 = none */
    size_t n;
    _Atomic unsigned char *status; /* per item: pp_status (PP_PENDING, 0, at first)
                                    | ITEM_MOVED */
    const char **data;           /* per item: its result or error text */
    uint32_t *len;               /* per item: its length (results are < 1 GiB) */
    map_unit *units;             /* nunits, made by pp_map_new; never move */
    size_t nunits;
    map_unit *extra;             /* (mu) units of items run again alone */

    pthread_mutex_t mu;
    pthread_cond_t cv;           /* items finished, or a job's callback returned */
    int waiters;                 /* (mu) threads waiting on cv */
    size_t live;                 /* (mu) jobs submitted whose callback has not returned */
    int cancelled;               /* (mu) pp_map_cancel() or pp_map_free(): no job is
                                    sent any more */
    int free_pending;            /* (mu) pp_map_free() from a callback: the last
                                    callback frees the map */
    _Atomic size_t ndone;        /* items final (written under mu) */
    size_t nbad;                 /* (mu) of those, not PP_DONE */
    map_unit *qhead, *qtail;     /* (mu) units finished, not yet all returned */
    uint32_t qoff;               /* (mu) items of qhead pp_map_next() returned */
    size_t nreturned;            /* (mu) items pp_map_next() returned */
};

/* Where the items are: n of `size` bytes at base (pp_map_new), or args[i]
 * and lens[i] (pp_map_newv). */
typedef struct item_src {
    const unsigned char *base;
    size_t size;
    const void *const *args;
    const size_t *lens;
} item_src;

static const void *src_item(const item_src *src, size_t i, size_t *len)
{
    if (src->args) {
        *len = src->lens[i];
        return src->args[i];
    }
    *len = src->size;
    return src->base ? src->base + i * src->size : NULL;
}

/* How items are grouped: at most k a job, at most max_bytes of batch
 * argument a job, and an item of `big` bytes or more alone. */
typedef struct plan {
    size_t k, max_bytes, big;
} plan;

/* ---- waiting ---- */

/* Waits on m->cv (mu held) until woken or `deadline` (pp_now() time; < 0 =
 * none).  0, or 1 when the deadline has passed. */
static int map_wait_locked(pp_map *m, double deadline)
{
    m->waiters++;
    int late = pp_cond_wait_until(&m->cv, &m->mu, deadline, CLOCK_MONOTONIC);
    m->waiters--;
    return late;
}

/* Whether the caller is the server's callback thread, where a wait for an
 * item would wait for itself (items are recorded by callbacks).  Only
 * while some item is pending: the server is alive then (pp_server_free()
 * runs every callback before it returns). */
static int on_callback_thread(pp_map *m)
{
    pthread_mutex_lock(&m->s->mu);
    int r = pp_callback_thread_locked(m->s);
    pthread_mutex_unlock(&m->s->mu);
    return r;
}

/* ---- recording outcomes (the callback thread) ---- */

/* An item's status byte: its pp_status, plus ITEM_MOVED once the item runs
 * again in a job of its own (its batch's outcome for it is then not its
 * outcome, and the batch's place in the completion queue skips it). */
#define ITEM_MOVED 0x80u
#define ITEM_STATUS(b) ((int)((b) & ~ITEM_MOVED))

static int item_status(pp_map *m, size_t i)
{
    return ITEM_STATUS(atomic_load_explicit(&m->status[i], memory_order_acquire));
}

/* Item k of u ends `status`: data and length first, then the status
 * (release), after which readers may take them without the lock. */
static void set_item(pp_map *m, map_unit *u, uint32_t k, int status, const char *data,
                     size_t len)
{
    size_t i = u->first + k;
    m->data[i] = data;
    m->len[i] = (uint32_t)len;
    unsigned char b = (unsigned char)(status | (u->redo ? ITEM_MOVED : 0));
    atomic_store_explicit(&m->status[i], b, memory_order_release);
}

/* Every item of u ends `status` with the text at data; returns how many
 * did not end PP_DONE. */
static size_t set_all(pp_map *m, map_unit *u, int status, const char *data, size_t len)
{
    for (uint32_t k = 0; k < u->count; k++)
        set_item(m, u, k, status, data, len);
    return status == PP_DONE ? 0 : u->count;
}

/* Takes the job's result (or error text) block into u: no copy.  The
 * text it points to ("" if none) in *data. */
static size_t take_result(map_unit *u, pp_job *j, const char **data)
{
    size_t len = j->result ? j->result_len : 0;
    *data = j->result ? j->result : "";
    u->block = j->result_mem;
    j->result_mem = NULL;
    u->shm = j->pj.rshm; /* a large result stays where the worker wrote it */
    j->pj.rshm = NULL;
    j->result = NULL;
    j->result_len = 0;
    return len;
}

/* Every item of u fails with a message of ours about its batch's result
 * (the node that sent it named).  Returns u->count. */
static size_t fail_all(pp_map *m, map_unit *u, pp_job *j, const char *msg)
{
    char text[512];
    const char *node = pp_job_node(j);
    int n = snprintf(text, sizeof text, "pp_map: %s%s%s", msg, *node ? " from " : "", node);
    size_t len = n < 0 ? 0 : PP_MIN((size_t)n, sizeof text - 1);
    char *copy = malloc(len + 1);
    if (!copy)
        return set_all(m, u, PP_FAILED, BAD_BATCH_TEXT, sizeof BAD_BATCH_TEXT - 1);
    memcpy(copy, text, len);
    copy[len] = 0;
    u->block = copy;
    return set_all(m, u, PP_FAILED, copy, len);
}

/* Bytes an item's result takes in a unit's block: its bytes, a NUL, and
 * padding so that the next one starts 16-byte aligned. */
static size_t slot_size(size_t len)
{
    return (len + 1 + 15) & ~(size_t)15;
}

/* A batch job that ended PP_DONE: its result is a batch result with one
 * entry per item, copied into one block.  An item that failed is left
 * unpublished (data and length set, status still pending) when the map
 * retries items: retry_failed_locked() decides.  Returns the items
 * published not PP_DONE; *held the items left unpublished. */
static size_t record_batch(pp_map *m, map_unit *u, pp_job *j, size_t *held)
{
    pp_batch_iter it;
    pp_batch_item item;
    const void *res = j->result ? j->result : "";
    size_t rlen = j->result ? j->result_len : 0;
    char msg[160];
    if (pp_proto_batch_open(&it, res, rlen, PP_BATCH_RESULTS) != 0) {
        snprintf(msg, sizeof msg, "a malformed batch result (%zu bytes for %u items)", rlen,
                 u->count);
        return fail_all(m, u, j, msg);
    }
    if (it.count != u->count) {
        snprintf(msg, sizeof msg, "a batch result of %u items for a batch of %u", it.count,
                 u->count);
        return fail_all(m, u, j, msg);
    }
    size_t total = 0;
    int r;
    while ((r = pp_proto_batch_next(&it, &item)) == 1)
        total += slot_size(item.len);
    if (r != 0) {
        snprintf(msg, sizeof msg, "a malformed batch result (%zu bytes for %u items)", rlen,
                 u->count);
        return fail_all(m, u, j, msg);
    }
    char *block = aligned_alloc(16, total);
    if (!block)
        return fail_all(m, u, j, "no memory for the results of a batch");
    u->block = block;
    size_t bad = 0;
    pp_proto_batch_open(&it, res, rlen, PP_BATCH_RESULTS); /* checked above */
    for (uint32_t k = 0; pp_proto_batch_next(&it, &item) == 1; k++) {
        if (item.len)
            memcpy(block, item.data, item.len);
        block[item.len] = 0;
        if (item.status != PP_DONE && m->retries > 0) {
            m->data[u->first + k] = block;
            m->len[u->first + k] = (uint32_t)item.len;
            (*held)++;
        } else {
            set_item(m, u, k, item.status, block, item.len);
            bad += item.status != PP_DONE;
        }
        block += slot_size(item.len);
    }
    return bad;
}

/* A unit's job ended (not split): its items' outcomes.  Returns the items
 * published not PP_DONE; *held as record_batch(). */
static size_t record_unit(pp_map *m, map_unit *u, pp_job *j, int status, size_t *held)
{
    /* A cancelled job's result fields may still be written by the
     * scheduler (a result that arrived as it was cancelled): not read. */
    if (status == PP_CANCELLED)
        return set_all(m, u, PP_CANCELLED, CANCELLED_TEXT, sizeof CANCELLED_TEXT - 1);
    if (status == PP_DONE && u->count > 1)
        return record_batch(m, u, j, held);
    /* A plain job's result or error text, or the whole batch's failure
     * (lost, module not loaded). */
    const char *data;
    size_t len = take_result(u, j, &data);
    return set_all(m, u, status, data, len);
}

static pp_job *unit_submit(pp_map *m, map_unit *u, const void *arg, size_t len, int retries,
                           const char *who);

/* Item k of u runs again in a job of its own, with `retries` (mu held).
 * 0, or -1 when it cannot (no memory, the server stopping): the caller
 * then records the outcome it has. */
static int redo_item_locked(pp_map *m, map_unit *u, uint32_t k, const pp_batch_item *item,
                            int retries)
{
    map_unit *v = calloc(1, sizeof *v);
    if (!v)
        return -1;
    v->m = m;
    v->first = u->first + k;
    v->count = 1;
    v->redo = 1;
    atomic_store_explicit(&m->status[v->first], ITEM_MOVED, memory_order_release);
    m->live++;
    /* On the callback thread a submit never waits (max_pending), and v's
     * callback, on this thread too, runs after this one. */
    pp_job *nj = unit_submit(m, v, item->data, item->len, retries, "pp_map");
    if (!nj) {
        m->live--;
        free(v);
        return -1;
    }
    v->job = nj;
    v->enext = m->extra;
    m->extra = v;
    return 0;
}

/* A batch crashed, timed out or failed as a whole (mu held): its items run
 * again, each alone, so that only the item at fault fails (that run is
 * not one of the item's retries).  An item that cannot be sent, or every
 * item once the map is cancelled, ends as the batch did (or PP_CANCELLED).
 * Returns the items recorded not PP_DONE; *moved the items sent. */
static size_t split_locked(pp_map *m, map_unit *u, pp_job *j, int status, size_t *moved)
{
    pp_batch_iter it;
    pp_batch_item item;
    const char *text;
    size_t tlen = take_result(u, j, &text);
    size_t bad = 0;
    pp_proto_batch_open(&it, j->arg, j->pj.len, PP_BATCH_ARGS); /* ours: well formed */
    for (uint32_t k = 0; k < u->count; k++) {
        int got = pp_proto_batch_next(&it, &item) == 1;
        if (m->cancelled) {
            set_item(m, u, k, PP_CANCELLED, SPLIT_CANCELLED_TEXT,
                     sizeof SPLIT_CANCELLED_TEXT - 1);
        } else if (got && redo_item_locked(m, u, k, &item, m->retries) == 0) {
            (*moved)++;
            continue;
        } else {
            set_item(m, u, k, status, text, tlen);
        }
        bad++;
    }
    return bad;
}

/* The failed items record_batch() held back (mu held): each runs again
 * alone with one retry fewer, unless the map was cancelled meanwhile (it
 * then keeps its failure).  Returns the items published not PP_DONE;
 * *moved the items sent. */
static size_t retry_failed_locked(pp_map *m, map_unit *u, pp_job *j, size_t *moved)
{
    pp_batch_iter it;
    pp_batch_item item;
    size_t bad = 0;
    pp_proto_batch_open(&it, j->arg, j->pj.len, PP_BATCH_ARGS); /* ours: well formed */
    for (uint32_t k = 0; k < u->count && pp_proto_batch_next(&it, &item) == 1; k++) {
        size_t i = u->first + k;
        if (item_status(m, i) != PP_PENDING)
            continue; /* published by record_batch() */
        if (!m->cancelled && redo_item_locked(m, u, k, &item, m->retries - 1) == 0) {
            (*moved)++;
        } else {
            set_item(m, u, k, PP_FAILED, m->data[i], m->len[i]);
            bad++;
        }
    }
    return bad;
}

static void map_destroy(pp_map *m);

/* Every job's callback: records the unit's items (or runs them again
 * alone), queues it for pp_map_next(), frees the job, and frees the map if
 * pp_map_free() asked for it from a callback and this was its last job.
 * What pp_map_cancel() must see is decided under mu: a job of ours, or
 * the cancelled flag before any job is sent. */
static void unit_called_back(pp_job *j, void *arg)
{
    map_unit *u = arg;
    pp_map *m = u->m;
    int st = pp_job_status(j);
    int split = u->count > 1 && (st == PP_CRASHED || st == PP_TIMEOUT || st == PP_FAILED);
    size_t bad = 0, held = 0, moved = 0;
    pthread_mutex_lock(&m->mu);
    u->job = NULL;
    u->called = 1;
    if (split)
        bad = split_locked(m, u, j, st, &moved);
    pthread_mutex_unlock(&m->mu);
    if (!split)
        bad = record_unit(m, u, j, st, &held); /* nobody else writes these items */
    pthread_mutex_lock(&m->mu);
    if (held)
        bad += retry_failed_locked(m, u, j, &moved);
    if (moved < u->count) {
        u->qnext = NULL;
        if (m->qtail)
            m->qtail->qnext = u;
        else
            m->qhead = u;
        m->qtail = u;
        atomic_fetch_add_explicit(&m->ndone, u->count - moved, memory_order_release);
        m->nbad += bad;
    }
    m->live--;
    if (m->waiters)
        pthread_cond_broadcast(&m->cv);
    int destroy = m->free_pending && m->live == 0;
    pthread_mutex_unlock(&m->mu);
    pp_job_free(j);
    if (destroy)
        map_destroy(m); /* else nothing here touches m after the unlock */
}

/* ---- submitting ---- */

static pp_job *unit_submit(pp_map *m, map_unit *u, const void *arg, size_t len, int retries,
                           const char *who)
{
    pp_submit_opts o = m->jopts;
    o.callback = unit_called_back;
    o.callback_arg = u;
    o.timeout = m->item_timeout * u->count; /* the timeout is per item */
    /* A batch is never retried whole: its failures are its items'. */
    o.retries = u->count > 1 ? 0 : retries;
    return pp_submit_entry(m->s, m->task, arg, len, &o, u->count > 1 ? PP_WIRE_F_BATCH : 0,
                           who);
}

/* The size of the unit starting at item i. */
static uint32_t plan_next(const plan *p, const item_src *src, size_t i, size_t n)
{
    size_t len;
    src_item(src, i, &len);
    if (p->k == 1 || len >= p->big)
        return 1;
    size_t bytes = 4, c = 0;
    while (i + c < n && c < p->k) {
        src_item(src, i + c, &len);
        if (len >= p->big || (c > 0 && bytes + 4 + len > p->max_bytes))
            break;
        bytes += 4 + len;
        c++;
    }
    return (uint32_t)c;
}

/* Whether a backend with the tags `have` (text, NULL: none) may run the
 * jobs that need `need` (NULL: any). */
static int tags_cover(const pp_tags *need, const char *have)
{
    pp_tags t;
    char why[PP_ERR_LEN];
    t.n = 0; /* pp_tags_parse adds to what is there */
    return !need || (have && pp_tags_parse(&t, have, why) == 0 && pp_tags_subset(need, &t));
}

/* Items per automatic batch for n items of avg_bytes on average: about
 * MAP_JOBS_PER_CPU jobs per CPU (local workers and nodes' CPUs now, those
 * having the tags `need` if not NULL), at most MAP_ITEMS_MAX items and
 * MAP_BATCH_BYTES of argument. */
static size_t auto_batch(pp_server *s, size_t n, size_t avg_bytes, const pp_tags *need)
{
    pthread_mutex_lock(&s->mu);
    long cpus = 0;
    if (s->ncpus_want > 0 && (!need || (s->local_tags && pp_tags_subset(need, s->local_tags))))
        cpus = s->ncpus_want;
    int nodes = 0; /* only backends that may run the jobs count */
    for (int i = 1; i < s->nnodes; i++) {
        int may = tags_cover(need, s->nodes[i]->tags);
        cpus += may ? s->nodes[i]->ncpus : 0;
        nodes += may && s->nodes[i]->state != PP_NODE_REMOVED;
    }
    pthread_mutex_unlock(&s->mu);
    if (cpus < 1) /* nodes not up yet, or none: a guess */
        cpus = 4L * PP_MAX(nodes, 1);
    size_t jobs = (size_t)cpus * MAP_JOBS_PER_CPU;
    size_t k = n / jobs + (n % jobs != 0);
    k = PP_MIN(k, (size_t)MAP_ITEMS_MAX);
    k = PP_MIN(k, MAP_BATCH_BYTES / (avg_bytes + 4));
    return k ? k : 1;
}

/* Cuts the items into units (m->units). */
static int make_units(pp_map *m, const item_src *src, const plan *p)
{
    size_t nunits = 0;
    for (size_t i = 0; i < m->n; i += plan_next(p, src, i, m->n))
        nunits++;
    m->units = calloc(nunits ? nunits : 1, sizeof *m->units);
    if (!m->units)
        return -1;
    m->nunits = nunits;
    size_t i = 0;
    for (size_t k = 0; k < nunits; k++) {
        map_unit *u = &m->units[k];
        u->m = m;
        u->first = i;
        u->count = plan_next(p, src, i, m->n);
        i += u->count;
    }
    return 0;
}

/* Submits every unit.  0, or -1 with pp_last_error() set (the units sent
 * so far are left to pp_map_free()). */
static int submit_all(pp_map *m, const item_src *src, const char *who)
{
    pp_buf b;
    pp_buf_init(&b, PP_MAX_FRAME - 4);
    int rc = 0;
    for (size_t k = 0; k < m->nunits && rc == 0; k++) {
        map_unit *u = &m->units[k];
        const void *arg;
        size_t len;
        if (u->count == 1) {
            arg = src_item(src, u->first, &len);
        } else {
            pp_proto_batch_begin(&b);
            for (uint32_t x = 0; x < u->count && rc == 0; x++) {
                const void *p = src_item(src, u->first + x, &len);
                if (pp_proto_batch_add(&b, p, len) != 0) {
                    pp_set_error("%s: out of memory for a batch of %u items", who, u->count);
                    rc = -1;
                }
            }
            arg = b.data;
            len = b.len;
        }
        if (rc)
            break;
        pthread_mutex_lock(&m->mu);
        m->live++;
        pthread_mutex_unlock(&m->mu);
        /* Not under mu: the submit may wait (max_pending) for callbacks,
         * ours among them. */
        pp_job *j = unit_submit(m, u, arg, len, m->retries, who);
        pthread_mutex_lock(&m->mu);
        if (!j) {
            m->live--;
            rc = -1;
        } else if (!u->called) {
            u->job = j; /* else its callback ran already and freed it */
        }
        pthread_mutex_unlock(&m->mu);
    }
    pp_buf_reset(&b);
    return rc;
}

/* ---- creating ---- */

/* The options, checked; their tags parsed into *tags (emptied first). */
static int check_opts(const pp_map_opts *o, pp_tags *tags, const char *who)
{
    tags->n = 0;
    if (!o)
        return 0;
    if (o->timeout < 0 || isnan(o->timeout) || isinf(o->timeout)) {
        pp_set_error("%s: the timeout must be >= 0 seconds", who);
        return -1;
    }
    if (o->retries < 0) {
        pp_set_error("%s: retries must be >= 0", who);
        return -1;
    }
    if (o->group && strlen(o->group) > 1024) {
        pp_set_error("%s: group names are limited to 1024 bytes", who);
        return -1;
    }
    char why[PP_ERR_LEN];
    if (o->tags && pp_tags_parse(tags, o->tags, why) != 0) {
        pp_set_error("%s: tags \"%.100s\": %s", who, o->tags, why);
        return -1;
    }
    return 0;
}

/* An empty map for n items (nothing submitted), or NULL. */
static pp_map *map_alloc(pp_server *s, pp_task_entry *t, size_t n, const pp_map_opts *o)
{
    pp_map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    size_t cells = n ? n : 1;
    m->status = calloc(cells, sizeof *m->status); /* all PP_PENDING (0) */
    m->data = calloc(cells, sizeof *m->data);
    m->len = calloc(cells, sizeof *m->len);
    pthread_condattr_t ca;
    int cv_ok = pthread_condattr_init(&ca) == 0;
    if (cv_ok) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        cv_ok = pthread_cond_init(&m->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (o && o->group)
        m->group = strdup(o->group);
    if (o && o->tags && *o->tags)
        m->tags = strdup(o->tags);
    if (!m->status || !m->data || !m->len || !cv_ok || (o && o->group && !m->group) ||
        (o && o->tags && *o->tags && !m->tags)) {
        if (cv_ok)
            pthread_cond_destroy(&m->cv);
        free((void *)m->status);
        free(m->data);
        free(m->len);
        free(m->group);
        free(m->tags);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    m->s = s;
    m->task = t;
    m->n = n;
    m->jopts.group = m->group;
    m->jopts.tags = m->tags;
    if (o) {
        m->jopts.priority = o->priority;
        m->retries = o->retries;
        m->item_timeout = o->timeout;
    }
    return m;
}

static pp_map *map_start(pp_server *s, pp_task task, const item_src *src, size_t n,
                         size_t avg_bytes, const pp_map_opts *opts, const char *who)
{
    if (!s || !task) {
        pp_set_error("%s: %s is NULL", who, !s ? "the server" : "the task");
        return NULL;
    }
    pp_tags need;
    if (check_opts(opts, &need, who) != 0)
        return NULL;
    pp_task_entry *t = pp_tasks_get(s, task, who);
    if (!t)
        return NULL;
    pp_map *m = map_alloc(s, t, n, opts);
    if (!m) {
        pp_set_error("%s: out of memory for %zu items", who, n);
        return NULL;
    }
    plan p = {.k = 0, .max_bytes = MAP_BATCH_BYTES, .big = MAP_BIG_ITEM};
    if (opts && opts->batch) {
        p.k = PP_MIN(opts->batch, (size_t)PP_BATCH_MAX);
        p.max_bytes = MAP_HARD_BYTES;
        p.big = SIZE_MAX;
    } else {
        p.k = auto_batch(s, n, avg_bytes, need.n ? &need : NULL);
    }
    if (make_units(m, src, &p) != 0) {
        pp_set_error("%s: out of memory for %zu items", who, n);
        map_destroy(m);
        return NULL;
    }
    if (submit_all(m, src, who) != 0) {
        char why[PP_ERR_LEN];
        snprintf(why, sizeof why, "%s", pp_last_error());
        pp_map_free(m); /* what was sent is cancelled */
        pp_set_error("%s", why);
        return NULL;
    }
    return m;
}

PP_API pp_map *pp_map_new(pp_server *s, pp_task task, const void *items, size_t item_size,
                          size_t n, const pp_map_opts *opts)
{
    const char *who = "pp_map_new";
    if (!items && n && item_size) {
        pp_set_error("%s: items is NULL but there are %zu of %zu bytes", who, n, item_size);
        return NULL;
    }
    if (item_size > PP_MAX_FRAME - 4) {
        pp_set_error("%s: an item of %zu bytes exceeds the limit of %u", who, item_size,
                     PP_MAX_FRAME - 4);
        return NULL;
    }
    if (item_size && n > SIZE_MAX / item_size) {
        pp_set_error("%s: %zu items of %zu bytes: the size overflows (no array is that "
                     "large)", who, n, item_size);
        return NULL;
    }
    item_src src = {.base = items, .size = item_size};
    return map_start(s, task, &src, n, item_size, opts, who);
}

PP_API pp_map *pp_map_newv(pp_server *s, pp_task task, const void *const *args,
                           const size_t *lens, size_t n, const pp_map_opts *opts)
{
    const char *who = "pp_map_newv";
    if (n && (!args || !lens)) {
        pp_set_error("%s: %s is NULL but n is %zu", who, !args ? "args" : "lens", n);
        return NULL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!args[i] && lens[i]) {
            pp_set_error("%s: args[%zu] is NULL but lens[%zu] is %zu", who, i, i, lens[i]);
            return NULL;
        }
        if (lens[i] > PP_MAX_FRAME - 4) {
            pp_set_error("%s: item %zu has %zu bytes, over the limit of %u", who, i, lens[i],
                         PP_MAX_FRAME - 4);
            return NULL;
        }
        total = total + lens[i] < total ? SIZE_MAX : total + lens[i];
    }
    item_src src = {.args = args, .lens = lens};
    return map_start(s, task, &src, n, n ? total / n : 0, opts, who);
}

/* ---- results ---- */

PP_API int pp_map_result(pp_map *m, size_t i, const void **data, size_t *len)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!m || i >= m->n) {
        if (m)
            pp_set_error("pp_map_result: item %zu of a map of %zu", i, m->n);
        else
            pp_set_error("pp_map_result: NULL map");
        return -1;
    }
    int st = item_status(m, i);
    if (st == PP_PENDING && pp_forked(m->s, "pp_map_result")) /* nothing ends it there */
        return -1;
    if (st == PP_PENDING) {
        pthread_mutex_lock(&m->mu);
        st = item_status(m, i);
        if (st == PP_PENDING && on_callback_thread(m)) {
            pthread_mutex_unlock(&m->mu);
            pp_set_error("pp_map_result: item %zu is pending and this is a callback: "
                         "waiting would wait for itself",
                         i);
            return -1;
        }
        while ((st = item_status(m, i)) == PP_PENDING)
            map_wait_locked(m, -1);
        pthread_mutex_unlock(&m->mu);
    }
    if (data)
        *data = m->data[i];
    if (len)
        *len = m->len[i];
    return st;
}

PP_API int pp_map_next(pp_map *m, double timeout, size_t *i)
{
    if (!m || !i || isnan(timeout)) {
        pp_set_error("pp_map_next: %s", !m ? "NULL map"
                                           : !i ? "i is NULL" : "the timeout is NaN");
        return -1;
    }
    if (atomic_load_explicit(&m->ndone, memory_order_relaxed) < m->n &&
        pp_forked(m->s, "pp_map_next"))
        return -1;
    double deadline = timeout < 0 ? -1 : pp_now() + timeout;
    int checked = 0;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        map_unit *u;
        while ((u = m->qhead)) {
            size_t k = u->first + m->qoff;
            if (++m->qoff == u->count) {
                m->qhead = u->qnext;
                if (!m->qhead)
                    m->qtail = NULL;
                m->qoff = 0;
            }
            /* An item that ran again alone is its own unit's to return. */
            if (!u->redo && (atomic_load_explicit(&m->status[k], memory_order_relaxed) &
                             ITEM_MOVED))
                continue;
            *i = k;
            m->nreturned++;
            pthread_mutex_unlock(&m->mu);
            return 1;
        }
        if (m->nreturned == m->n) {
            pthread_mutex_unlock(&m->mu);
            pp_set_error("pp_map_next: every item has been returned");
            return 0;
        }
        if (timeout == 0)
            break;
        if (!checked && on_callback_thread(m)) {
            pthread_mutex_unlock(&m->mu);
            pp_set_error("pp_map_next: called from a callback with a timeout: it would wait "
                         "for itself (use 0)");
            return -1;
        }
        checked = 1;
        if (map_wait_locked(m, deadline) && !m->qhead && m->nreturned < m->n)
            break;
    }
    size_t done = atomic_load_explicit(&m->ndone, memory_order_relaxed);
    pthread_mutex_unlock(&m->mu);
    pp_set_error("pp_map_next: no item finished within %g s (%zu of %zu done)", timeout, done,
                 m->n);
    return -1;
}

PP_API long pp_map_wait(pp_map *m)
{
    if (!m) {
        pp_set_error("pp_map_wait: NULL map");
        return -1;
    }
    if (atomic_load_explicit(&m->ndone, memory_order_relaxed) < m->n &&
        pp_forked(m->s, "pp_map_wait"))
        return -1;
    pthread_mutex_lock(&m->mu);
    if (atomic_load_explicit(&m->ndone, memory_order_relaxed) < m->n && on_callback_thread(m)) {
        pthread_mutex_unlock(&m->mu);
        pp_set_error("pp_map_wait: called from a callback, it would wait for itself");
        return -1;
    }
    while (atomic_load_explicit(&m->ndone, memory_order_relaxed) < m->n)
        map_wait_locked(m, -1);
    long bad = (long)m->nbad;
    pthread_mutex_unlock(&m->mu);
    return bad;
}

/* pp_job_cancel() on u's job if it is still ours (mu held); returns the
 * items that end PP_CANCELLED because of it. */
static long cancel_unit_locked(map_unit *u)
{
    if (!u->job)
        return 0;
    int ended = pp_job_cancel(u->job);
    int st = pp_job_status(u->job);
    /* A batch that crashed, timed out or failed whole, whose callback has
     * not run yet, would have run again item by item: its callback cancels
     * those items instead. */
    if (ended == 0 || (u->count > 1 && (st == PP_CRASHED || st == PP_TIMEOUT || st == PP_FAILED)))
        return u->count;
    return 0;
}

/* Cancels every job of m still ours, and any job m would send later (mu
 * held).  Returns the items that end PP_CANCELLED because of it. */
static long cancel_locked(pp_map *m)
{
    m->cancelled = 1;
    long n = 0;
    for (size_t k = 0; k < m->nunits; k++)
        n += cancel_unit_locked(&m->units[k]);
    for (map_unit *u = m->extra; u; u = u->enext)
        n += cancel_unit_locked(u);
    return n;
}

PP_API long pp_map_cancel(pp_map *m)
{
    if (!m) {
        pp_set_error("pp_map_cancel: NULL map");
        return -1;
    }
    if (atomic_load_explicit(&m->ndone, memory_order_relaxed) < m->n &&
        pp_forked(m->s, "pp_map_cancel"))
        return -1;
    pthread_mutex_lock(&m->mu);
    long n = cancel_locked(m);
    pthread_mutex_unlock(&m->mu);
    return n;
}

PP_API size_t pp_map_done(const pp_map *m)
{
    return m ? atomic_load_explicit(&((pp_map *)m)->ndone, memory_order_acquire) : 0;
}

PP_API size_t pp_map_size(const pp_map *m)
{
    return m ? m->n : 0;
}

/* ---- freeing ---- */

static void map_destroy(pp_map *m)
{
    for (size_t k = 0; k < m->nunits; k++) {
        free(m->units[k].block);
        pp_shm_unref(m->units[k].shm);
    }
    free(m->units);
    for (map_unit *u = m->extra, *next; u; u = next) {
        next = u->enext;
        free(u->block);
        pp_shm_unref(u->shm);
        free(u);
    }
    free((void *)m->status);
    free(m->data);
    free(m->len);
    free(m->group);
    free(m->tags);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

PP_API void pp_map_free(pp_map *m)
{
    if (!m)
        return;
    /* A forked child's copy: its jobs never end there, and its lock may be
     * held by a thread the child lacks.  Items pending: the server lives. */
    if (atomic_load_explicit(&m->ndone, memory_order_relaxed) < m->n &&
        pp_forked(m->s, "pp_map_free"))
        return;
    pthread_mutex_lock(&m->mu);
    cancel_locked(m);
    if (m->live && on_callback_thread(m)) {
        /* Its callbacks run on this thread, after this one: the last of
         * them frees the map. */
        m->free_pending = 1;
        pthread_mutex_unlock(&m->mu);
        return;
    }
    while (m->live)
        map_wait_locked(m, -1);
    pthread_mutex_unlock(&m->mu);
    map_destroy(m);
}
