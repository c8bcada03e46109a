/* SPDX-License-Identifier: MIT */
/* pp_shm.h -- shared-memory buffers: memfds that the program (or ppserver)
 * and its workers both map, so that large arguments and results cross
 * between them without passing through the workers' pipes.
 *
 * A buffer is a memfd mapped whole and sealed against shrinking: no process
 * that maps it can be made to fault (SIGBUS) by another one truncating it.
 * Two kinds, because a worker runs code we do not control:
 *   - the program's (owner 0): arguments, and what a connection receives.
 *     Sealed against any write but through the program's own mapping
 *     (F_SEAL_FUTURE_WRITE) and against growing: a worker maps it
 *     read-only and can neither write it nor map it writable, whatever it
 *     does with the fd.
 *   - a worker's (owner = its id): results.  That worker writes it (and
 *     may grow it), so it only ever goes back to that worker: a task that
 *     left a thread scribbling can spoil only its own worker's buffers.
 * Buffers are reference counted; the last reference gives the buffer back
 * to its cache, which hands it out again (same kind, same owner) with its
 * pages still in memory (a fresh buffer costs a page fault and a zeroed
 * page per 4 KiB, a reused one nothing) and, beyond the bytes it may keep,
 * unmaps and closes the oldest.  Workers know a buffer by its id
 * (pp_pool.c sends them its fd once).  A cache and its buffers may be used
 * from any thread. */
#ifndef PP_SHM_H
#define PP_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pp_shm_cache pp_shm_cache;

typedef struct pp_shm {
    uint8_t *base;          /* the whole file, mapped read-write, then a
                               read-only page of zeros (a C string read
                               from inside ends there at the latest) */
    size_t cap;             /* bytes mapped: the file's size */
    int fd;                 /* -1 once settled (pp_shm_settle) */
    uint64_t id;            /* unique in its cache, never 0 */
    uint64_t owner;         /* 0: the program's; else the worker that writes it */
    size_t len;             /* bytes asked for by the last pp_shm_get() */
    _Atomic unsigned refs;
    pp_shm_cache *cache;
    struct pp_shm *next;    /* (cache lock) in the idle list */
    double idle_since;      /* (cache lock) pp_now() when it went idle */
} pp_shm;

/* Idle buffers a cache keeps per owner, at most (the most recent). */
#define PP_SHM_IDLE_MAX 2

/* A cache that keeps up to keep_bytes of idle buffers.  NULL out of
 * memory. */
pp_shm_cache *pp_shm_cache_new(size_t keep_bytes);

/* Frees the cache and its idle buffers; buffers still referenced stay
 * valid and go with their last reference.  NULL is a no-op. */
void pp_shm_cache_free(pp_shm_cache *c);

/* A buffer of at least len + 1 bytes (room for a NUL after len bytes) of
 * `owner` (0: the program's; else an id of pp_shm_owner_new()), one
 * reference the caller's: an idle one of that owner (the smallest that
 * fits) or a new one.  NULL with the reason in err (PP_ERR_LEN bytes), e.g.
 * where memfds or their seals are refused. */
pp_shm *pp_shm_get(pp_shm_cache *c, size_t len, uint64_t owner, char *err);

/* A new owner id for a worker's buffers (never 0, never reused). */
uint64_t pp_shm_owner_new(pp_shm_cache *c);

void pp_shm_ref(pp_shm *b);

/* Drops a reference; the last one makes the buffer idle.  NULL is a no-op. */
void pp_shm_unref(pp_shm *b);

/* Maps the buffer anew at `size` bytes after its worker grew its file
 * (appending a result): checks that the file is at least that large
 * first.  Only its sole holder may call this.  0, or -1 (the buffer is
 * unchanged). */
int pp_shm_remap(pp_shm *b, size_t size);

/* Unmaps and closes the idle buffers that have been idle for `age` seconds
 * or more (0: all of them).  Returns the bytes released. */
size_t pp_shm_cache_trim(pp_shm_cache *c, double age);

/* Open fds a cache's buffers keep at most before pp_shm_settle() closes
 * some (a program may hold thousands of large results). */
#define PP_SHM_FDS_MAX 256

/* The buffer is read where it is from now on and may be held for long (a
 * result the program keeps): past PP_SHM_FDS_MAX open fds in its cache,
 * its fd is closed (its mapping stays); such a buffer goes when released
 * instead of being reused.  NULL is a no-op. */
void pp_shm_settle(pp_shm *b);

/* Bytes of buffers now (idle ones, and all). */
void pp_shm_cache_bytes(pp_shm_cache *c, size_t *idle, size_t *total);

/* Passes fd over a Unix socket with a 4-byte tag (the slot it is for).
 * 0, or -1 (errno; the socket is full, or gone). */
int pp_shm_send_fd(int sock, uint32_t tag, int fd);

/* Receives one fd and its tag (close-on-exec), waiting for it.  The fd, or
 * -1 (errno: EBADMSG when the message is not one tag with one fd). */
int pp_shm_recv_fd(int sock, uint32_t *tag);

#endif
