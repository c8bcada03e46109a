/* SPDX-License-Identifier: MIT */
/* ppworker.c -- the worker process: reads jobs from its request FIFO, runs
 * each task (loaded from its task module with dlopen) and writes results to
 * its response FIFO.  Started by the worker pool of libpp and of ppserver;
 * not meant to be run by hand.
 *
 * Results of tiny jobs are batched: they go out when no further job is
 * waiting in what was read, when a batch grows large, or when the oldest
 * unsent result is older than FLUSH_AGE, so that a tiny job costs a fraction
 * of a system call.  Other results go out before the next job starts.  The
 * job running now is published in a page shared with the pool, which is how
 * a crash or a timeout is charged to the right job.
 *
 * A batch job (PP_WIRE_F_BATCH) runs its task once per item, in order, and
 * answers one RESULT holding every item's status and output (pp_proto.h):
 * the pool sees one job, so a crash or a timeout ends the whole batch. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pp.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_proto.h"
#include "pp_shm.h"
#include "pp_worker.h"

#define FLUSH_AGE 0.0002     /* seconds */
#define TINY_JOB 0.00002     /* jobs shorter than this on average are batched */
#define FLUSH_BYTES (256 * 1024)
#define BIG_JOB (8u << 20)   /* an argument or result this large: trim when idle */

typedef struct task_slot {
    char *module, *symbol;
    pp_task fn;              /* resolved on first use */
    char *loaderr;           /* why it cannot be resolved, once known */
} task_slot;

/* A shared-memory buffer the pool mapped into a slot (WSHM). */
typedef struct shm_slot {
    int fd;                  /* -1: empty */
    uint8_t *base;           /* NULL when the mapping failed (err says why) */
    size_t size;
    int err;
    int rw;                  /* mapped writable: ours to write results into;
                                the program's buffers map read-only (pp_shm.h) */
} shm_slot;

typedef struct worker {
    int rfd, wfd, sfd;
    uint32_t max_frame;
    pp_wire_reader rd;
    task_slot *tasks;
    uint32_t ntasks;
    pp_buf out;              /* batched result frames */
    double oldest;           /* pp_now() of the oldest unsent result */
    double avg_run;          /* moving average of run time, seconds */
    int big_freed;           /* a large job ended since the heap was trimmed */
    pp_worker_state *st;     /* shared with the pool: the job running now */
    shm_slot slot[PP_SHM_SLOTS];
    /* Held by the main thread except while a task runs: then the flusher
     * thread may send the batched results when the pool asks. */
    pthread_mutex_t mu;
} worker;

/* Something is wrong with our input or our process: say what and stop. */
static void die(const char *what, const char *detail)
{
    fprintf(stderr, "ppworker[%d]: %s%s%s\n", (int)getpid(), what, detail ? ": " : "",
            detail ? detail : "");
    exit(2);
}

static void write_all(int fd, const struct iovec *iov_in, int n)
{
    struct iovec iov[8];
    memcpy(iov, iov_in, (size_t)n * sizeof *iov);
    struct iovec *v = iov;
    while (n > 0) {
        ssize_t w = writev(fd, v, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            /* The parent is gone: nothing more to do. */
            exit(errno == EPIPE ? 0 : 3);
        }
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
}

static void flush(worker *w)
{
    if (w->out.len == 0)
        return;
    struct iovec iov = {w->out.data, w->out.len};
    write_all(w->wfd, &iov, 1);
    w->out.len = 0;
}

/* A RESULT frame (flags: PP_WIRE_F_BATCH for a batch result, else 0). */
static void send_result(worker *w, uint64_t id, uint16_t flags, int status, uint64_t run_ns,
                        const void *data, size_t len)
{
    uint8_t hdr[PP_WIRE_HDR + PP_RESULT_HDR];
    pp_wire_encode_hdr(hdr, PP_T_RESULT, flags, id, (uint32_t)(len + PP_RESULT_HDR));
    pp_proto_result_head(hdr + PP_WIRE_HDR, status, run_ns);
    if (len > FLUSH_BYTES) {
        /* Large results go straight out, without a copy into the batch. */
        flush(w);
        struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, len}};
        write_all(w->wfd, iov, 2);
        return;
    }
    if (w->out.len == 0)
        w->oldest = pp_now();
    if (pp_buf_append(&w->out, hdr, sizeof hdr) != 0 ||
        pp_buf_append(&w->out, data, len) != 0)
        die("out of memory batching results", NULL);
    if (w->out.len >= FLUSH_BYTES)
        flush(w);
}

static void on_taskdef(worker *w, const pp_frame *f)
{
    pp_msg_taskdef m;
    if (pp_proto_taskdef_decode(f, &m) != 0 || m.id > 1u << 20)
        die("malformed task definition from the parent", NULL);
    uint32_t id = m.id;
    if (id >= w->ntasks) {
        task_slot *t = realloc(w->tasks, ((size_t)id + 1) * sizeof *t);
        if (!t)
            die("out of memory", NULL);
        memset(t + w->ntasks, 0, ((size_t)id + 1 - w->ntasks) * sizeof *t);
        w->tasks = t;
        w->ntasks = id + 1;
    }
    task_slot *t = &w->tasks[id];
    free(t->module);
    free(t->symbol);
    free(t->loaderr);
    t->module = strdup(m.module);
    t->symbol = strdup(m.symbol);
    t->fn = NULL;
    t->loaderr = NULL;
    if (!t->module || !t->symbol)
        die("out of memory", NULL);
}

/* Resolves a task; returns NULL and sets loaderr when it cannot. */
static pp_task resolve(task_slot *t)
{
    if (t->fn || t->loaderr)
        return t->fn;
    char msg[PATH_MAX + 512];
    void *h = dlopen(t->module, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(msg, sizeof msg, "cannot load task module: %s", e ? e : t->module);
    } else {
        dlerror();
        void *sym = dlsym(h, t->symbol);
        if (sym) {
            /* POSIX guarantees function pointers round-trip through dlsym. */
            memcpy(&t->fn, &sym, sizeof t->fn);
            return t->fn;
        }
        const char *e = dlerror();
        snprintf(msg, sizeof msg, "task %s not found in %s: %s", t->symbol, t->module,
                 e ? e : "no such symbol");
    }
    t->loaderr = strdup(msg);
    if (!t->loaderr)
        die("out of memory", NULL);
    return NULL;
}

/* Runs a task once per item of a batch argument, in order, into one batch
 * result (res): an item whose task returns non-zero is PP_FAILED with its
 * output as the error text, and the batch goes on.  One output buffer
 * serves every item (emptied, never freed, between them), so an item costs
 * its task call and the copy of its output.  0, or -1 with the reason for
 * the whole batch's PP_FAILED in msg (a malformed batch, results over the
 * frame limit). */
static int run_batch(worker *w, pp_task fn, const uint8_t *arg, size_t len, pp_buf *res,
                     char *msg, size_t msgcap)
{
    pp_batch_iter it;
    pp_batch_item item;
    if (pp_proto_batch_open(&it, arg, len, PP_BATCH_ARGS) != 0) {
        snprintf(msg, msgcap, "malformed batch: its item count does not fit its %zu bytes "
                 "(or is above %u)", len, PP_BATCH_MAX);
        return -1;
    }
    if (pp_proto_batch_begin(res) != 0) {
        snprintf(msg, msgcap, "out of memory for the batch's results");
        return -1;
    }
    /* Room for results about the size of the arguments up front (each
     * item's head is 4 bytes longer): no reallocation per item for most
     * batches.  Only a hint: the results may grow past it. */
    (void)pp_buf_reserve(res, len + 4 * (size_t)it.count);
    size_t limit = w->max_frame - PP_RESULT_HDR;
    pp_buf out;
    pp_buf_init(&out, limit - 4 - PP_BATCH_ITEM_HDR);
    int r, rc = 0;
    while ((r = pp_proto_batch_next(&it, &item)) == 1) {
        out.len = 0;
        out.overflow = 0;
        if (out.data)
            out.data[0] = 0;
        int trc = fn(item.len ? item.data : NULL, item.len, &out);
        int st = trc == 0 && !out.overflow ? PP_DONE : PP_FAILED;
        const void *data = out.data;
        size_t n = out.len;
        char over[128];
        if (out.overflow) {
            n = (size_t)snprintf(over, sizeof over, "the result exceeds the limit of %zu bytes",
                                 out.max);
            data = over;
        }
        if (pp_proto_batch_add_result(res, st, data, n) != 0) {
            snprintf(msg, msgcap, "the batch's results exceed the limit of %zu bytes (at item "
                     "%u of %u)", limit, it.done, it.count);
            rc = -1;
            break;
        }
    }
    if (r < 0) {
        snprintf(msg, msgcap, "malformed batch: item %u of %u runs past its %zu bytes, or "
                 "bytes follow the last item", it.done + 1, it.count, len);
        rc = -1;
    }
    w->big_freed |= out.cap >= BIG_JOB || res->len >= BIG_JOB;
    pp_buf_reset(&out);
    return rc;
}

/* Claims job `id` in the shared page and marks it running from t0;
 * 0, or -1 when the pool took it back meanwhile (then it is answered). */
static int claim(worker *w, uint64_t id, double t0)
{
    uint64_t g = atomic_load_explicit(&w->st->gate, memory_order_acquire);
    for (;;) {
        if ((g & PP_WORKER_REVOKE) && id <= (g & ~PP_WORKER_REVOKE)) {
            send_result(w, id, 0, PP_WORKER_REVOKED, 0, NULL, 0);
            return -1;
        }
        if (atomic_compare_exchange_weak_explicit(&w->st->gate, &g, id, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    atomic_store_explicit(&w->st->start_ns, (uint64_t)(t0 * 1e9), memory_order_relaxed);
    atomic_store_explicit(&w->st->seq, id, memory_order_release);
    return 0;
}

/* Grows a result in a slot (pp_buf's grow): the file, then the mapping. */
static int slot_grow(pp_buf *b, size_t cap)
{
    shm_slot *sl = b->ext;
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    if (cap > SIZE_MAX - pg)
        return -1;
    cap = (cap + pg - 1) / pg * pg;
    if (ftruncate(sl->fd, (off_t)cap) != 0)
        return -1;
    void *p = mremap(sl->base, sl->size, cap, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
        return -1;
    sl->base = p;
    sl->size = cap;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* The result: in its slot when it is large and succeeded (an SRESULT),
 * else through the pipe. */
static void answer(worker *w, uint64_t id, int rc, uint64_t run_ns, pp_buf *out, shm_slot *rs)
{
    if (out->overflow) {
        char m[128];
        int n = snprintf(m, sizeof m, "the result exceeds the limit of %u bytes",
                         w->max_frame - PP_RESULT_HDR);
        send_result(w, id, 0, PP_FAILED, run_ns, m, (size_t)n);
    } else if (rs && out->grow && rc == 0 && out->len >= PP_SHM_MIN) {
        pp_msg_sresult m = {.run_ns = run_ns, .rslot = (uint32_t)(rs - w->slot),
                            .len = out->len, .size = rs->size};
        uint8_t p[PP_SRESULT_LEN], hdr[PP_WIRE_HDR];
        pp_proto_sresult(p, &m);
        pp_wire_encode_hdr(hdr, PP_T_SRESULT, 0, id, sizeof p);
        if (w->out.len == 0)
            w->oldest = pp_now();
        if (pp_buf_append(&w->out, hdr, sizeof hdr) != 0 ||
            pp_buf_append(&w->out, p, sizeof p) != 0)
            die("out of memory batching results", NULL);
    } else {
        send_result(w, id, 0, rc == 0 ? PP_DONE : PP_FAILED, run_ns, out->data, out->len);
    }
}

/* Runs job `id` of task `tid` on arg (len bytes): a batch (flags), or one
 * call whose result goes into slot rs when given. */
static void run_job(worker *w, uint64_t id, uint16_t flags, uint32_t tid, const uint8_t *arg,
                    size_t len, shm_slot *rs)
{
    int batch = (flags & PP_WIRE_F_BATCH) != 0;
    if (tid >= w->ntasks || !w->tasks[tid].module) {
        static const char m[] = "unknown task id (no definition was sent)";
        send_result(w, id, 0, PP_FAILED, 0, m, sizeof m - 1);
        return;
    }
    /* Results waiting in the batch go out first unless jobs are tiny. */
    double t0 = pp_now();
    if (w->out.len && (w->avg_run > TINY_JOB || t0 - w->oldest > FLUSH_AGE)) {
        flush(w);
        t0 = pp_now();
    }
    if (claim(w, id, t0) != 0)
        return;
    task_slot *t = &w->tasks[tid];
    pp_task fn = resolve(t);
    if (!fn) {
        atomic_store_explicit(&w->st->seq, 0, memory_order_release);
        send_result(w, id, 0, PP_ELOAD, 0, t->loaderr, strlen(t->loaderr));
        return;
    }
    pp_buf out;
    pp_buf_init(&out, w->max_frame - PP_RESULT_HDR);
    if (rs && rs->base && rs->size > 0) { /* appends land in the slot */
        out.data = rs->base;
        out.cap = rs->size;
        out.data[0] = 0;
        out.grow = slot_grow;
        out.ext = rs;
    }
    char msg[256];
    pthread_mutex_unlock(&w->mu);
    /* A batch is one job to the pool: the page names it while every item
     * runs, so a crash or a timeout in any item ends the whole batch. */
    int rc = batch ? run_batch(w, fn, arg, len, &out, msg, sizeof msg)
                   : fn(len ? arg : NULL, len, &out);
    pthread_mutex_lock(&w->mu);
    double run = pp_now() - t0;
    atomic_store_explicit(&w->st->seq, 0, memory_order_release);
    w->avg_run = 0.8 * w->avg_run + 0.2 * run;
    uint64_t run_ns = (uint64_t)(run * 1e9);
    if (batch && rc != 0)
        send_result(w, id, 0, PP_FAILED, run_ns, msg, strlen(msg));
    else if (batch)
        send_result(w, id, PP_WIRE_F_BATCH, PP_DONE, run_ns, out.data, out.len);
    else
        answer(w, id, rc, run_ns, &out, rs);
    w->big_freed |= (!out.grow && len >= BIG_JOB) || (!out.grow && out.len >= BIG_JOB);
    pp_buf_reset(&out);
}

static void on_job(worker *w, const pp_frame *f)
{
    pp_msg_job job;
    if (pp_proto_job_decode(f, &job) != 0)
        die("malformed job from the parent", NULL);
    run_job(w, f->hdr.id, f->hdr.flags, job.task, job.arg, job.len, NULL);
}

/* Maps the slot's buffer if it is not mapped yet.  Under a memory cap
 * (--max-memory-mib) the other slots' mappings make room, all but slot
 * `keep`'s (they map again when next used).  0, or -1 with sl->err. */
static int slot_map(worker *w, shm_slot *sl, uint32_t keep)
{
    for (int pass = 0; !sl->base && pass < 2; pass++) {
        /* Populated at once: one call instead of a fault per page.  The
         * program's buffers are sealed against writes: read-only then. */
        int prot = PROT_READ | PROT_WRITE;
        void *p = mmap(NULL, sl->size, prot, MAP_SHARED | MAP_POPULATE, sl->fd, 0);
        if (p == MAP_FAILED && errno == EPERM) {
            prot = PROT_READ;
            p = mmap(NULL, sl->size, prot, MAP_SHARED | MAP_POPULATE, sl->fd, 0);
        }
        if (p != MAP_FAILED) {
            sl->base = p;
            sl->rw = prot != PROT_READ;
            break;
        }
        sl->err = errno;
        for (uint32_t i = 0; i < PP_SHM_SLOTS && pass == 0; i++) {
            shm_slot *o = &w->slot[i];
            if (o != sl && i != keep && o->base) {
                munmap(o->base, o->size);
                o->base = NULL;
            }
        }
    }
    return sl->base ? 0 : -1;
}

/* A job whose argument, result or both are in slots. */
static void on_sjob(worker *w, const pp_frame *f)
{
    pp_msg_sjob m;
    if (pp_proto_sjob_decode(f, &m) != 0 ||
        (m.aslot != PP_SHM_NONE && (m.aslot >= PP_SHM_SLOTS || w->slot[m.aslot].fd < 0)) ||
        (m.rslot != PP_SHM_NONE && (m.rslot >= PP_SHM_SLOTS || w->slot[m.rslot].fd < 0)))
        die("malformed shared-memory job from the parent", NULL);
    const uint8_t *arg = m.inl;
    shm_slot *rs = m.rslot != PP_SHM_NONE ? &w->slot[m.rslot] : NULL;
    if (rs && (slot_map(w, rs, m.aslot) != 0 || !rs->rw))
        rs = NULL; /* the result goes through the pipe */
    if (m.aslot != PP_SHM_NONE) {
        shm_slot *a = &w->slot[m.aslot];
        if (slot_map(w, a, m.rslot) != 0) { /* the job fails, saying why */
            char e[160];
            int n = snprintf(e, sizeof e, "cannot map the argument's shared memory (%zu "
                             "bytes): %s", a->size, strerror(a->err));
            send_result(w, f->hdr.id, 0, PP_FAILED, 0, e, (size_t)n);
            return;
        }
        if (m.aoff > a->size || m.alen > a->size - m.aoff)
            die("a shared-memory argument outside its buffer", NULL);
        arg = a->base + m.aoff;
    }
    run_job(w, f->hdr.id, 0, m.task, arg, (size_t)m.alen, rs);
}

/* WSHM: the slot takes the buffer whose fd waits on the socket, or is
 * emptied (size 0). */
static void on_wshm(worker *w, const pp_frame *f)
{
    if (f->hdr.id >= PP_SHM_SLOTS || f->hdr.len != 8)
        die("malformed buffer message from the parent", NULL);
    shm_slot *sl = &w->slot[f->hdr.id];
    uint64_t size = pp_load64(f->payload);
    if (sl->fd >= 0) {
        if (sl->base)
            munmap(sl->base, sl->size);
        close(sl->fd);
        *sl = (shm_slot){.fd = -1};
    }
    if (size == 0)
        return;
    uint32_t tag;
    int fd = pp_shm_recv_fd(w->sfd, &tag);
    if (fd < 0 || tag != f->hdr.id || size > SIZE_MAX / 2)
        die("the buffer socket is out of step with the request FIFO", strerror(errno));
    sl->fd = fd;
    sl->size = (size_t)size; /* mapped when a job first uses it (slot_map) */
}

/* Large arguments and results stay on the heap (main() raises the mmap
 * threshold: jobs in a row reuse it), so a worker would keep the memory of
 * its largest job for ever; after a second without work it gives it back. */
static void trim_when_idle(worker *w)
{
    if (!w->big_freed)
        return;
    struct pollfd pfd = {.fd = w->rfd, .events = POLLIN};
    if (poll(&pfd, 1, 1000) == 0) {
        malloc_trim(0);
        w->big_freed = 0;
    }
}

/* The flusher thread: sleeps on the shared page's futex; when the pool asks
 * (a job runs long while earlier results wait in the batch), sends them. */
static void *flusher(void *arg)
{
    worker *w = arg;
    for (;;) {
        while (atomic_load_explicit(&w->st->flush_req, memory_order_acquire) == 0)
            syscall(SYS_futex, &w->st->flush_req, FUTEX_WAIT, 0, NULL, NULL, 0);
        atomic_store_explicit(&w->st->flush_req, 0, memory_order_release);
        pthread_mutex_lock(&w->mu);
        flush(w);
        pthread_mutex_unlock(&w->mu);
    }
    return NULL;
}

static void usage(void)
{
    puts("usage: ppworker --parent PID [--max-frame BYTES] [--max-memory-mib MIB]\n"
         "                [--user UID:GID]\n"
         "\n"
         "The pp worker process.  The worker pools of libpp and ppserver start it\n"
         "with its request FIFO on fd 3, its response FIFO on fd 4 and the state\n"
         "page it shares with the pool (which job is running) on fd 5 and a socket\n"
         "on fd 6 over which the pool passes shared-memory buffers (large arguments\n"
         "and results); it runs the jobs it reads (tasks loaded from their task\n"
         "modules) and writes the results.  It exits at the end of its input or\n"
         "when its parent dies.\n"
         "--max-memory-mib caps its virtual memory (RLIMIT_AS), tasks included.\n"
         "--user: started as root, it becomes that user (and group, no others)\n"
         "before it loads anything.");
}

/* --user UID:GID: becomes that user for good -- no supplementary group,
 * the group first (it needs our privilege), then the user, and then it
 * must be impossible to get root back -- before any task module is loaded.
 * Job code then cannot read ppserver's memory or files, nor write to the
 * module cache.  0, or -1 with a message on stderr. */
static int become(const char *spec)
{
    unsigned long uid, gid;
    char *end = NULL;
    uid = strtoul(spec, &end, 10);
    if (!end || *end != ':' || (gid = strtoul(end + 1, &end, 10), *end) || uid > 0xFFFFFFFEul ||
        gid > 0xFFFFFFFEul) {
        fprintf(stderr, "ppworker: --user %s: expected UID:GID\n", spec);
        return -1;
    }
    gid_t g = (gid_t)gid;
    if (setgroups(1, &g) != 0 || setgid(g) != 0 || setuid((uid_t)uid) != 0) {
        fprintf(stderr, "ppworker: cannot become user %lu, group %lu: %s\n", uid, gid,
                strerror(errno));
        return -1;
    }
    if (getuid() != (uid_t)uid || geteuid() != (uid_t)uid || getgid() != g ||
        getegid() != g || (uid != 0 && setuid(0) == 0)) {
        fprintf(stderr, "ppworker: still privileged after becoming user %lu\n", uid);
        return -1;
    }
    return 0;
}

/* Sets the worker up on its inherited fds, starts the flusher thread and
 * says hello. */
static void start(worker *w)
{
    w->rfd = PP_WORKER_FD_REQ;
    w->wfd = PP_WORKER_FD_RESP;
    w->sfd = PP_WORKER_FD_SHM;
    /* Not for the task's children. */
    if (fcntl(w->rfd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(w->wfd, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(w->sfd, F_SETFD, FD_CLOEXEC) != 0)
        die("no request and response FIFOs and buffer socket on fds 3, 4 and 6",
            "not started by a pool?");
    for (int i = 0; i < PP_SHM_SLOTS; i++)
        w->slot[i] = (shm_slot){.fd = -1};
    w->st = mmap(NULL, sizeof *w->st, PROT_READ | PROT_WRITE, MAP_SHARED, PP_WORKER_FD_STATE, 0);
    if (w->st == MAP_FAILED)
        die("cannot map the state page on fd 5", strerror(errno));
    close(PP_WORKER_FD_STATE);
    pp_wire_reader_init(&w->rd, w->max_frame + 64, PP_T_MAX);
    pp_buf_init(&w->out, SIZE_MAX / 2);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_lock(&w->mu);
    pthread_t tid;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals stay with the task's thread */
    if (pthread_create(&tid, NULL, flusher, w) != 0)
        die("cannot start the flusher thread", NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    uint8_t hello[8];
    pp_proto_whello(hello, (uint32_t)getpid());
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, PP_T_WHELLO, 0, 0, sizeof hello);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {hello, sizeof hello}};
    write_all(w->wfd, iov, 2);
}

/* Runs jobs until the parent closes our input. */
static void serve(worker *w)
{
    for (;;) {
        pp_frame f;
        int rc;
        while ((rc = pp_wire_reader_next(&w->rd, &f)) == 1) {
            if (f.hdr.flags & ~pp_proto_flags_allowed(f.hdr.type))
                die("a frame with flags it may not carry from the parent", NULL);
            if (f.hdr.type == PP_T_JOB)
                on_job(w, &f);
            else if (f.hdr.type == PP_T_SJOB)
                on_sjob(w, &f);
            else if (f.hdr.type == PP_T_WSHM)
                on_wshm(w, &f);
            else if (f.hdr.type == PP_T_TASKDEF)
                on_taskdef(w, &f);
            else
                die("unexpected frame from the parent", NULL);
        }
        if (rc < 0)
            die("bad input from the parent", w->rd.errstr);
        flush(w); /* nothing more to run: report everything */
        trim_when_idle(w);
        size_t room;
        void *dst = pp_wire_reader_space(&w->rd, &room);
        if (!dst)
            die("out of memory", NULL);
        ssize_t n = read(w->rfd, dst, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read", strerror(errno));
        }
        if (n == 0)
            break; /* the parent closed our input: done */
        pp_wire_reader_commit(&w->rd, (size_t)n);
    }
}

int main(int argc, char **argv)
{
    long parent = 0;
    unsigned long max_frame = 1u << 30, max_memory_mib = 0;
    const char *user = NULL;
    static const struct option opts[] = {
        {"parent", required_argument, NULL, 'p'},
        {"max-frame", required_argument, NULL, 'm'},
        {"max-memory-mib", required_argument, NULL, 'M'},
        {"user", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': parent = strtol(optarg, NULL, 10); break;
        case 'm': max_frame = strtoul(optarg, NULL, 10); break;
        case 'M': max_memory_mib = strtoul(optarg, NULL, 10); break;
        case 'u': user = optarg; break;
        case 'h': usage(); return 0;
        case 'V': printf("ppworker %s\n", pp_version()); return 0;
        default: usage(); return 2;
        }
    }
    if (parent <= 0 || max_frame < 64 || max_frame > UINT32_MAX - 64) {
        usage();
        return 2;
    }
    /* Into a pipe (ppserver's, which logs it a line at a time) a task's
     * printf() goes out by the line, not when a buffer fills or never (a
     * worker killed on a timeout flushes nothing). */
    struct stat out;
    if (fstat(1, &out) == 0 && S_ISFIFO(out.st_mode))
        setvbuf(stdout, NULL, _IOLBF, 0);
    /* Large arguments and results reuse the heap instead of fresh mappings
     * that are faulted in and unmapped for every job. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    /* First (a change of credentials clears the parent-death signal). */
    if (user && become(user) != 0)
        return 1;
    /* Die with the parent; and if it is already gone, do not start. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != (pid_t)parent)
        return 1;
    if (max_memory_mib) {
        /* Before any task module is loaded: the cap covers them too. */
        struct rlimit rl = {.rlim_cur = (rlim_t)max_memory_mib << 20,
                            .rlim_max = (rlim_t)max_memory_mib << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0) {
            fprintf(stderr, "ppworker: cannot limit memory to %lu MiB: %s\n", max_memory_mib,
                    strerror(errno));
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    worker w = {0};
    w.max_frame = (uint32_t)max_frame;
    start(&w);
    serve(&w);
    return 0;
}
