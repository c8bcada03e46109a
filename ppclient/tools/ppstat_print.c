/* SPDX-License-Identifier: MIT */
/* ppstat_print.c -- ppstat's tables and JSON. */
#include "ppstat_print.h"

#include <inttypes.h>
#include <string.h>

typedef unsigned long long ull;

/* "3d 04:05:06" or "04:05:06". */
static const char *duration(double s, char *buf, size_t len)
{
    ull t = s > 0 && s < 1e12 ? (ull)s : 0;
    if (t >= 86400)
        snprintf(buf, len, "%llud %02llu:%02llu:%02llu", t / 86400, t / 3600 % 24, t / 60 % 60,
                 t % 60);
    else
        snprintf(buf, len, "%02llu:%02llu:%02llu", t / 3600, t / 60 % 60, t % 60);
    return buf;
}

/* "512 B", "1.5 KiB", "3.2 MiB", ... */
static const char *bytes(uint64_t b, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof unit / sizeof *unit) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (ull)b);
    else
        snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

static void table_workers(FILE *fp, const ppstat_node *n)
{
    fprintf(fp, "workers    %llu (%llu busy, %llu idle)\n", (ull)n->workers_target,
            (ull)n->workers_busy, (ull)n->workers_idle);
    if (!n->nworkers)
        return;
    fprintf(fp, "  %-8s %-5s %-24s %-10s %s\n", "PID", "JOBS", "CLIENT", "JOB", "RUNNING");
    for (size_t i = 0; i < n->nworkers; i++) {
        const ppstat_worker *w = &n->workers[i];
        if (w->busy)
            fprintf(fp, "  %-8llu %-5llu %-24s %-10llu %.1f s\n", (ull)w->pid, (ull)w->inflight,
                    w->client[0] ? w->client : "(gone)", (ull)w->job, w->run);
        else
            fprintf(fp, "  %-8llu %-5llu %-24s %-10s %s\n", (ull)w->pid, (ull)w->inflight, "-",
                    "-", "idle");
    }
}

static void table_clients(FILE *fp, const ppstat_node *n)
{
    char in[32], out[32];
    fprintf(fp, "clients    %llu connected (%llu ready, %llu in handshake, %llu closing)\n",
            (ull)(n->conns_hello + n->conns_auth + n->conns_ready + n->conns_closing),
            (ull)n->conns_ready, (ull)(n->conns_hello + n->conns_auth), (ull)n->conns_closing);
    if (!n->nclients)
        return;
    fprintf(fp, "  %-24s %-7s %7s %7s %9s %7s %11s %11s\n", "ADDRESS", "STATE", "QUEUED",
            "RUNNING", "DONE", "FAILED", "BYTES IN", "BYTES OUT");
    for (size_t i = 0; i < n->nclients; i++) {
        const ppstat_client *c = &n->clients[i];
        fprintf(fp, "  %-24s %-7s %7llu %7llu %9llu %7llu %11s %11s\n", c->addr, c->state,
                (ull)c->queued, (ull)c->running, (ull)c->done, (ull)c->failed,
                bytes(c->bytes_in, in, sizeof in), bytes(c->bytes_out, out, sizeof out));
    }
    uint64_t all = n->conns_hello + n->conns_auth + n->conns_ready + n->conns_closing;
    if (all > n->nclients) /* the node lists a bounded number */
        fprintf(fp, "  ... and %llu more not listed\n", (ull)(all - n->nclients));
}

static void table_node(FILE *fp, const ppstat_node *n)
{
    char up[40], b1[32], b2[32];
    fprintf(fp, "version    %s, up %s\n", n->version, duration(n->uptime, up, sizeof up));
    table_workers(fp, n);
    table_clients(fp, n);
    fprintf(fp, "jobs       %llu queued, %llu running; ended: %llu done, %llu failed, %llu "
                "crashed, %llu timed out, %llu cancelled, %llu not loaded\n",
            (ull)n->queue_depth, (ull)n->running, (ull)n->done, (ull)n->failed, (ull)n->crashed,
            (ull)n->timeout, (ull)n->cancelled, (ull)n->eload);
    fprintf(fp, "modules    %llu cached (%s", (ull)n->modules, bytes(n->cache_bytes, b1, sizeof b1));
    if (n->cache_max)
        fprintf(fp, " of %s", bytes(n->cache_max, b2, sizeof b2));
    fprintf(fp, ", %llu evicted), %llu awaited\n", (ull)n->cache_evictions,
            (ull)n->modules_wanted);
    fprintf(fp, "auth       %llu failures (wrong secret: %llu proof, %llu TLS key); refused: "
                "%llu locked out, %llu over --max-connections, %llu over --max-per-address, "
                "%llu handshakes dropped\n",
            (ull)n->auth_failures, (ull)n->wrong_proof, (ull)n->tls_key, (ull)n->lockout,
            (ull)n->ref_connections, (ull)n->ref_per_address, (ull)n->ref_handshakes);
    fprintf(fp, "errors     %llu handshake, %llu frame; traffic %s in, %s out\n",
            (ull)n->handshake_errors, (ull)n->frame_errors, bytes(n->bytes_in, b1, sizeof b1),
            bytes(n->bytes_out, b2, sizeof b2));
}

void ppstat_print_table(FILE *fp, const ppstat_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(fp, "%s== %s ==\n", i ? "\n" : "", r[i].name);
        if (r[i].error)
            fprintf(fp, "error      %s\n", r[i].error);
        else
            table_node(fp, r[i].node);
    }
}

/* ---- JSON ---- */

static void jstr(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(fp, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(fp, "\\u%04x", *p); /* bytes, not UTF-8: ASCII out, always valid */
        else
            fputc(*p, fp);
    }
    fputc('"', fp);
}

static void jkey(FILE *fp, const char *k, uint64_t v, int comma)
{
    fprintf(fp, "\"%s\":%" PRIu64 "%s", k, v, comma ? "," : "");
}

static void json_lists(FILE *fp, const ppstat_node *n)
{
    fputs("\"workers\":[", fp);
    for (size_t i = 0; i < n->nworkers; i++) {
        const ppstat_worker *w = &n->workers[i];
        fprintf(fp, "%s{", i ? "," : "");
        jkey(fp, "pid", w->pid, 1), jkey(fp, "inflight", w->inflight, 1);
        fprintf(fp, "\"busy\":%s,\"client\":", w->busy ? "true" : "false");
        jstr(fp, w->client);
        fprintf(fp, ",\"job\":%" PRIu64 ",\"run_seconds\":%.3f}", w->job, w->run);
    }
    fputs("],\"clients\":[", fp);
    for (size_t i = 0; i < n->nclients; i++) {
        const ppstat_client *c = &n->clients[i];
        fprintf(fp, "%s{\"address\":", i ? "," : "");
        jstr(fp, c->addr);
        fputs(",\"state\":", fp);
        jstr(fp, c->state);
        fprintf(fp, ",\"connected_seconds\":%.3f,", c->connected);
        jkey(fp, "queued", c->queued, 1), jkey(fp, "running", c->running, 1);
        jkey(fp, "done", c->done, 1), jkey(fp, "failed", c->failed, 1);
        jkey(fp, "bytes_in", c->bytes_in, 1), jkey(fp, "bytes_out", c->bytes_out, 0);
        fputc('}', fp);
    }
    fputs("],", fp);
}

static void json_counters(FILE *fp, const ppstat_node *n)
{
    fputs("\"connections\":{", fp);
    jkey(fp, "hello", n->conns_hello, 1), jkey(fp, "auth", n->conns_auth, 1);
    jkey(fp, "ready", n->conns_ready, 1), jkey(fp, "closing", n->conns_closing, 0);
    fputs("},\"jobs\":{", fp);
    jkey(fp, "queued", n->queue_depth, 1), jkey(fp, "running", n->running, 1);
    jkey(fp, "done", n->done, 1), jkey(fp, "failed", n->failed, 1);
    jkey(fp, "crashed", n->crashed, 1), jkey(fp, "timeout", n->timeout, 1);
    jkey(fp, "lost", n->lost, 1), jkey(fp, "cancelled", n->cancelled, 1);
    jkey(fp, "eload", n->eload, 0);
    fputs("},\"run_time\":{\"buckets\":[", fp);
    for (size_t i = 0; i < PPSTAT_RUN_BUCKETS; i++)
        fprintf(fp, "%s{\"le\":%s,\"count\":%" PRIu64 "}", i ? "," : "",
                i + 1 < PPSTAT_RUN_BUCKETS ? ppstat_run_le[i] : "null", n->run[i]);
    fprintf(fp, "],\"sum_seconds\":%.6f},\"modules\":{", n->run_sum);
    jkey(fp, "cached", n->modules, 1), jkey(fp, "awaited", n->modules_wanted, 1);
    jkey(fp, "bytes", n->cache_bytes, 1), jkey(fp, "max_bytes", n->cache_max, 1);
    jkey(fp, "evictions", n->cache_evictions, 0);
    fputs("},\"auth\":{", fp);
    jkey(fp, "failures", n->auth_failures, 1), jkey(fp, "wrong_proof", n->wrong_proof, 1);
    jkey(fp, "tls_key", n->tls_key, 1), jkey(fp, "lockout", n->lockout, 1);
    jkey(fp, "connections", n->ref_connections, 1);
    jkey(fp, "per_address", n->ref_per_address, 1);
    jkey(fp, "handshakes", n->ref_handshakes, 0);
    fputs("},\"errors\":{", fp);
    jkey(fp, "handshake", n->handshake_errors, 1), jkey(fp, "frame", n->frame_errors, 0);
    fputc('}', fp);
}

void ppstat_print_json(FILE *fp, const ppstat_result *r, size_t n)
{
    fputs("{\"nodes\":[", fp);
    for (size_t i = 0; i < n; i++) {
        const ppstat_node *nd = r[i].node;
        fprintf(fp, "%s{\"node\":", i ? "," : "");
        jstr(fp, r[i].name);
        if (r[i].error) {
            fputs(",\"ok\":false,\"error\":", fp);
            jstr(fp, r[i].error);
            fputc('}', fp);
            continue;
        }
        fputs(",\"ok\":true,\"version\":", fp);
        jstr(fp, nd->version);
        fprintf(fp, ",\"uptime_seconds\":%.3f,", nd->uptime);
        jkey(fp, "port", nd->port, 1), jkey(fp, "accepted", nd->accepted, 1);
        jkey(fp, "bytes_in", nd->bytes_in, 1), jkey(fp, "bytes_out", nd->bytes_out, 1);
        fputs("\"worker_count\":{", fp);
        jkey(fp, "target", nd->workers_target, 1), jkey(fp, "busy", nd->workers_busy, 1);
        jkey(fp, "idle", nd->workers_idle, 0);
        fputs("},", fp);
        json_lists(fp, nd);
        json_counters(fp, nd);
        fputc('}', fp);
    }
    fputs("]}\n", fp);
}
