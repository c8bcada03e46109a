/* SPDX-License-Identifier: MIT */
/* stats.c -- nodes and statistics: pp_get_active_nodes, pp_get_stats,
 * pp_print_stats, pp_write_stats_json. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "pp_common.h"

static const char *state_name(int st)
{
    switch (st) {
    case PP_NODE_UP: return "up";
    case PP_NODE_CONNECTING: return "connecting";
    case PP_NODE_DOWN: return "down";
    case PP_NODE_AUTH_FAILED: return "auth failed";
    case PP_NODE_DRAINING: return "draining";
    case PP_NODE_REMOVED: return "removed";
    case PP_NODE_DORMANT: return "dormant";
    default: return "?";
    }
}

PP_API int pp_get_active_nodes(pp_server *s, pp_node_info *out, int max)
{
    if (!s || max < 0 || (max > 0 && !out)) {
        pp_set_error("pp_get_active_nodes: %s", !s ? "NULL server" : "bad out/max");
        return -1;
    }
    if (pp_forked(s, "pp_get_active_nodes"))
        return -1;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nnodes && i < max; i++) {
        pp_node *n = s->nodes[i];
        out[i] = (pp_node_info){
            .name = n->name, .ncpus = n->ncpus, .state = n->state, .jobs = n->jobs,
            .busy_seconds = (double)n->busy_ns * 1e-9, .connects = n->connects,
            .tags = n->tags ? n->tags : "",
            .bytes_in = atomic_load_explicit(&n->bytes_in, memory_order_relaxed),
            .bytes_out = atomic_load_explicit(&n->bytes_out, memory_order_relaxed),
            .auth_failures = n->refusals, .handshake_errors = n->handshake_errors,
            .drops = n->drops, .frame_errors = n->frame_errors, .requeued = n->requeued};
        snprintf(out[i].why, sizeof out[i].why, "%s", n->why);
    }
    int n = s->nnodes;
    pthread_mutex_unlock(&s->mu);
    return n;
}

PP_API int pp_get_stats(pp_server *s, pp_stats *out)
{
    if (!s || !out) {
        pp_set_error("pp_get_stats: NULL %s", !s ? "server" : "out");
        return -1;
    }
    if (pp_forked(s, "pp_get_stats"))
        return -1;
    pthread_mutex_lock(&s->mu);
    uint64_t busy = 0;
    for (int i = 0; i < s->nnodes; i++)
        busy += s->nodes[i]->busy_ns;
    pp_stats st = {
        .submitted = s->submitted,
        .pending = s->submitted - s->ndone - s->nfailed,
        .done = s->ndone,
        .failed = s->nfailed,
        .busy_seconds = (double)busy * 1e-9,
        .wall_seconds = pp_now() - s->t0,
        .nodes = s->nnodes,
        .cancelled = s->ncancelled,
        .retried = s->nretried,
        .announce_taken = s->announces[PP_ANN_OK],
        .announce_bad = s->announces[PP_ANN_BAD],
        .announce_wrong_key = s->announces[PP_ANN_WRONG_KEY],
        .announce_stale = s->announces[PP_ANN_STALE],
        .announce_replayed = s->announces[PP_ANN_REPLAYED],
    };
    memcpy(st.by_status, s->nstatus, sizeof st.by_status);
    memcpy(st.run_hist, s->run_hist, sizeof st.run_hist);
    for (int i = 0; i < s->nnodes; i++) {
        pp_node *n = s->nodes[i];
        st.bytes_in += atomic_load_explicit(&n->bytes_in, memory_order_relaxed);
        st.bytes_out += atomic_load_explicit(&n->bytes_out, memory_order_relaxed);
        st.auth_failures += n->refusals;
        st.handshake_errors += n->handshake_errors;
        st.drops += n->drops;
        st.frame_errors += n->frame_errors;
        st.requeued += n->requeued;
    }
    pthread_mutex_unlock(&s->mu);
    *out = st;
    return 0;
}

PP_API void pp_print_stats(pp_server *s, FILE *fp)
{
    if (!s || !fp || pp_forked(s, "pp_print_stats"))
        return;
    pthread_mutex_lock(&s->mu);
    uint64_t total = 0;
    for (int i = 0; i < s->nnodes; i++)
        total += s->nodes[i]->jobs;
    fprintf(fp, "Job execution statistics:\n");
    fprintf(fp, " %-24s %5s %10s %9s %12s %12s  %-11s %s\n", "node", "CPUs", "jobs",
            "% of all", "busy (s)", "s per job", "state", "tags");
    for (int i = 0; i < s->nnodes; i++) {
        pp_node *n = s->nodes[i];
        double busy = (double)n->busy_ns * 1e-9;
        fprintf(fp, " %-24s %5d %10llu %9.2f %12.4f %12.6f  %-11s %s\n", n->name, n->ncpus,
                (unsigned long long)n->jobs, total ? 100.0 * (double)n->jobs / (double)total : 0.0,
                busy, n->jobs ? busy / (double)n->jobs : 0.0, state_name(n->state),
                n->tags && n->tags[0] ? n->tags : "-");
    }
    fprintf(fp, "Jobs: %llu submitted, %llu done, %llu not done, %llu pending, %llu cancelled, "
                "%llu retried\n",
            (unsigned long long)s->submitted, (unsigned long long)s->ndone,
            (unsigned long long)s->nfailed,
            (unsigned long long)(s->submitted - s->ndone - s->nfailed),
            (unsigned long long)s->ncancelled, (unsigned long long)s->nretried);
    const uint64_t *a = s->announces;
    if (a[PP_ANN_OK] || a[PP_ANN_BAD] || a[PP_ANN_WRONG_KEY] || a[PP_ANN_STALE] ||
        a[PP_ANN_REPLAYED])
        fprintf(fp, "Announcements: %llu taken; ignored: %llu malformed, %llu wrong key, "
                    "%llu stale, %llu replayed\n",
                (unsigned long long)a[PP_ANN_OK], (unsigned long long)a[PP_ANN_BAD],
                (unsigned long long)a[PP_ANN_WRONG_KEY], (unsigned long long)a[PP_ANN_STALE],
                (unsigned long long)a[PP_ANN_REPLAYED]);
    fprintf(fp, "Time elapsed since server creation: %.3f s\n", pp_now() - s->t0);
    pthread_mutex_unlock(&s->mu);
}

/* ---- JSON ---- */

/* s as a JSON string.  A node's message (in `why`) may hold any bytes:
 * quotes, backslashes and control characters are escaped, and bytes that
 * are not UTF-8 become U+FFFD, so that the output always parses. */
static void json_str(FILE *fp, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    const unsigned char *end = p + strlen((const char *)p);
    fputc('"', fp);
    while (*p) {
        size_t n = pp_utf8_len(p, (size_t)(end - p));
        if (n == 0) {
            fputs("\\ufffd", fp);
            p++;
        } else if (n > 1) {
            fwrite(p, 1, n, fp);
            p += n;
        } else if (*p == '"' || *p == '\\') {
            fprintf(fp, "\\%c", *p++);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(fp, "\\u%04x", *p++);
        } else {
            fputc(*p++, fp);
        }
    }
    fputc('"', fp);
}

/* The counters a node and the totals share, as "key": value pairs. */
static void json_counters(FILE *fp, uint64_t in, uint64_t out, uint64_t auth, uint64_t hs,
                          uint64_t drops, uint64_t frames, uint64_t requeued)
{
    fprintf(fp, "\"bytes_in\": %llu, \"bytes_out\": %llu, \"auth_failures\": %llu, "
                "\"handshake_errors\": %llu, \"drops\": %llu, \"frame_errors\": %llu, "
                "\"requeued\": %llu",
            (unsigned long long)in, (unsigned long long)out, (unsigned long long)auth,
            (unsigned long long)hs, (unsigned long long)drops, (unsigned long long)frames,
            (unsigned long long)requeued);
}

static void json_node(FILE *fp, const pp_node_info *n)
{
    fputs("    {\"name\": ", fp);
    json_str(fp, n->name);
    fputs(", \"state\": ", fp);
    json_str(fp, state_name(n->state));
    fprintf(fp, ", \"ncpus\": %d, \"jobs\": %llu, \"busy_seconds\": %.6f, \"connects\": %llu, ",
            n->ncpus, (unsigned long long)n->jobs, n->busy_seconds,
            (unsigned long long)n->connects);
    json_counters(fp, n->bytes_in, n->bytes_out, n->auth_failures, n->handshake_errors,
                  n->drops, n->frame_errors, n->requeued);
    fputs(", \"tags\": ", fp);
    json_str(fp, n->tags);
    fputs(", \"why\": ", fp);
    json_str(fp, n->why);
    fputc('}', fp);
}

static void json_totals(FILE *fp, const pp_stats *st)
{
    static const char *const names[] = {
        [PP_DONE] = "done", [PP_FAILED] = "failed", [PP_CRASHED] = "crashed",
        [PP_TIMEOUT] = "timeout", [PP_LOST] = "lost", [PP_CANCELLED] = "cancelled",
        [PP_ELOAD] = "eload"};
    fprintf(fp, "{\"version\": \"%s\", \"wall_seconds\": %.6f, \"busy_seconds\": %.6f,\n",
            pp_version(), st->wall_seconds, st->busy_seconds);
    fprintf(fp, "  \"jobs\": {\"submitted\": %llu, \"pending\": %llu, \"done\": %llu, "
                "\"failed\": %llu, \"cancelled\": %llu, \"retried\": %llu, \"requeued\": %llu,"
                "\n           \"by_status\": {",
            (unsigned long long)st->submitted, (unsigned long long)st->pending,
            (unsigned long long)st->done, (unsigned long long)st->failed,
            (unsigned long long)st->cancelled, (unsigned long long)st->retried,
            (unsigned long long)st->requeued);
    for (size_t i = PP_DONE; i < PP_ARRAY_LEN(names); i++)
        fprintf(fp, "%s\"%s\": %llu", i == PP_DONE ? "" : ", ", names[i],
                (unsigned long long)st->by_status[i]);
    fputs("}},\n  \"run_seconds_histogram\": {\"le\": [", fp);
    static const double le[] = {PP_STATS_RUN_LE};
    _Static_assert(PP_ARRAY_LEN(le) + 1 == PP_STATS_RUN_BUCKETS, "one bucket per bound, +1");
    for (size_t i = 0; i < PP_ARRAY_LEN(le); i++)
        fprintf(fp, "%s%g", i ? ", " : "", le[i]);
    fputs("], \"counts\": [", fp);
    for (size_t i = 0; i < PP_STATS_RUN_BUCKETS; i++)
        fprintf(fp, "%s%llu", i ? ", " : "", (unsigned long long)st->run_hist[i]);
    fputs("]},\n  ", fp);
    json_counters(fp, st->bytes_in, st->bytes_out, st->auth_failures, st->handshake_errors,
                  st->drops, st->frame_errors, st->requeued);
    fprintf(fp, ",\n  \"announcements\": {\"taken\": %llu, \"malformed\": %llu, "
                "\"wrong_key\": %llu, \"stale\": %llu, \"replayed\": %llu},\n",
            (unsigned long long)st->announce_taken, (unsigned long long)st->announce_bad,
            (unsigned long long)st->announce_wrong_key, (unsigned long long)st->announce_stale,
            (unsigned long long)st->announce_replayed);
}

PP_API int pp_write_stats_json(pp_server *s, FILE *fp)
{
    if (!s || !fp) {
        pp_set_error("pp_write_stats_json: NULL %s", !s ? "server" : "stream");
        return -1;
    }
    if (pp_forked(s, "pp_write_stats_json"))
        return -1;
    /* A copy first: the stream may block, and mu must not wait for it. */
    pp_stats st;
    pp_get_stats(s, &st);
    int n = pp_get_active_nodes(s, NULL, 0);
    pp_node_info *nodes = n > 0 ? calloc((size_t)n, sizeof *nodes) : NULL;
    if (n > 0 && !nodes) {
        pp_set_error("pp_write_stats_json: out of memory");
        return -1;
    }
    int got = n > 0 ? pp_get_active_nodes(s, nodes, n) : 0;
    if (got > n) /* nodes were added meanwhile: those we have room for */
        got = n;
    json_totals(fp, &st);
    fputs("  \"nodes\": [", fp);
    for (int i = 0; i < got; i++) {
        fputs(i ? ",\n" : "\n", fp);
        json_node(fp, &nodes[i]);
    }
    fputs(got ? "\n  ]}\n" : "]}\n", fp);
    free(nodes);
    if (fflush(fp) != 0 || ferror(fp)) {
        pp_set_error("pp_write_stats_json: cannot write: %s", strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}
