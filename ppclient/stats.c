/* SPDX-License-Identifier: MIT */
/* stats.c -- nodes and statistics: pp_get_active_nodes, pp_get_stats,
 * pp_print_stats. */
#include <stdio.h>

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
    default: return "?";
    }
}

PP_API int pp_get_active_nodes(pp_server *s, pp_node_info *out, int max)
{
    if (!s || max < 0 || (max > 0 && !out)) {
        pp_set_error("pp_get_active_nodes: %s", !s ? "NULL server" : "bad out/max");
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nnodes && i < max; i++) {
        pp_node *n = s->nodes[i];
        out[i] = (pp_node_info){.name = n->name, .ncpus = n->ncpus, .state = n->state,
                                .jobs = n->jobs, .busy_seconds = (double)n->busy_ns * 1e-9,
                                .connects = n->connects, .tags = n->tags ? n->tags : ""};
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
    pthread_mutex_lock(&s->mu);
    uint64_t busy = 0;
    for (int i = 0; i < s->nnodes; i++)
        busy += s->nodes[i]->busy_ns;
    *out = (pp_stats){
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
    pthread_mutex_unlock(&s->mu);
    return 0;
}

PP_API void pp_print_stats(pp_server *s, FILE *fp)
{
    if (!s || !fp)
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
