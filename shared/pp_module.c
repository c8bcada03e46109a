/* SPDX-License-Identifier: MIT */
/* pp_module.c -- the module cache (see pp_module.h for what it guarantees
 * and why). */
#include "pp_module.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp_common.h"
#include "pp_proto.h"

int pp_module_cache_init(const char *dir, char *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        pp_seterr(err, "cache directory path too long");
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            pp_seterr(err, "cannot create %s: %s", path, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        pp_seterr(err, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return pp_module_cache_check(path, err);
}

int pp_module_cache_check(const char *dir, char *err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        pp_seterr(err, "cache directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        pp_seterr(err, "cache directory %s is not a directory", dir);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        pp_seterr(err, "cache directory %s is not owned by this user (uid %d) but by uid %d: "
                       "another user could plant the modules the workers load",
                  dir, (int)geteuid(), (int)st.st_uid);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        pp_seterr(err, "cache directory %s is writable by group or others (mode %04o): they "
                       "could plant the modules the workers load; chmod go-w it",
                  dir, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        pp_seterr(err, "cache directory %s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int pp_module_cache_share(const char *dir, gid_t group, char *err)
{
    if (chown(dir, (uid_t)-1, group) != 0 || chmod(dir, 0750) != 0) {
        pp_seterr(err, "cannot give the cache directory %s to group %d: %s", dir, (int)group,
                  strerror(errno));
        return -1;
    }
    return 0;
}

void pp_module_path(const char *dir, const uint8_t hash[PP_SHA256_LEN], char *out,
                    size_t outlen)
{
    char hex[2 * PP_SHA256_LEN + 1];
    pp_hex(hash, PP_SHA256_LEN, hex);
    snprintf(out, outlen, "%s/%s.so", dir, hex);
}

/* Gives an open module file to `group`, mode 0640 (or leaves it 0600). */
static int share_file(int fd, gid_t group)
{
    if (group == PP_MODULE_NO_GROUP)
        return 0;
    return fchown(fd, (uid_t)-1, group) == 0 && fchmod(fd, 0640) == 0 ? 0 : -1;
}

/* Creates a fresh temporary file beside `final`: its name into tmp, its fd
 * returned, or -1 with the reason in err. */
static int create_tmp(const char *final, char *tmp, size_t tmplen, char *err)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        uint8_t rnd[PP_NONCE_LEN];
        char hex[2 * PP_NONCE_LEN + 1];
        if (pp_auth_nonce(rnd) != 0) {
            pp_seterr(err, "cannot draw random bytes for a temporary name");
            return -1;
        }
        pp_hex(rnd, 8, hex);
        if (snprintf(tmp, tmplen, "%s.tmp.%s", final, hex) >= (int)tmplen) {
            pp_seterr(err, "cache path too long: %s", final);
            return -1;
        }
        /* O_EXCL: never an existing name, a link included (never followed). */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST) {
            pp_seterr(err, "cannot create %s: %s", tmp, strerror(errno));
            return -1;
        }
    }
    pp_seterr(err, "cannot create a temporary file beside %s: every name taken", final);
    return -1;
}

int pp_module_store_as(const char *dir, const uint8_t hash[PP_SHA256_LEN], const void *data,
                       size_t len, gid_t group, char *err)
{
    uint8_t got[PP_SHA256_LEN];
    if (pp_sha256(data, len, got) != 0 || memcmp(got, hash, sizeof got) != 0) {
        pp_seterr(err, "module bytes do not match their SHA-256");
        return -1;
    }
    char final[PATH_MAX], tmp[PATH_MAX + 64];
    pp_module_path(dir, hash, final, sizeof final);
    int fd = create_tmp(final, tmp, sizeof tmp, err);
    if (fd < 0)
        return -1;
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            pp_seterr(err, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (share_file(fd, group) != 0 || fsync(fd) != 0 || close(fd) != 0) {
        pp_seterr(err, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    /* Atomic: a worker sees the old file or the new one; a link planted at
     * the final name is replaced, its target untouched. */
    if (rename(tmp, final) != 0) {
        pp_seterr(err, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int pp_module_store(const char *dir, const uint8_t hash[PP_SHA256_LEN], const void *data,
                    size_t len, char *err)
{
    return pp_module_store_as(dir, hash, data, len, PP_MODULE_NO_GROUP, err);
}

/* The SHA-256 of an open regular file of `size` bytes.  0 or -1. */
static int hash_fd(int fd, size_t size, uint8_t out[PP_SHA256_LEN])
{
    if (size == 0)
        return pp_sha256("", 0, out);
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        return -1;
    int rc = pp_sha256(map, size, out);
    munmap(map, size);
    return rc;
}

int pp_module_verify(const char *dir, const uint8_t hash[PP_SHA256_LEN], gid_t group,
                     char *err)
{
    char path[PATH_MAX];
    pp_module_path(dir, hash, path, sizeof path);
    /* O_NONBLOCK: a FIFO planted there must not stall us. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        pp_seterr(err, errno == ELOOP ? "%s is a symbolic link" : "cannot open %s: %s", path,
                  strerror(errno));
        return -1;
    }
    struct stat st;
    uint8_t got[PP_SHA256_LEN];
    int rc = -1;
    if (fstat(fd, &st) != 0)
        pp_seterr(err, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        pp_seterr(err, "%s is not a regular file", path);
    else if (st.st_uid != geteuid())
        pp_seterr(err, "%s belongs to uid %d, not to us", path, (int)st.st_uid);
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        pp_seterr(err, "%s is writable by group or others", path);
    else if ((uint64_t)st.st_size > PP_MODULE_MAX)
        pp_seterr(err, "%s is larger than a module may be", path);
    else if (hash_fd(fd, (size_t)st.st_size, got) != 0)
        pp_seterr(err, "cannot read %s: %s", path, strerror(errno));
    else if (memcmp(got, hash, sizeof got) != 0)
        pp_seterr(err, "%s does not match its name (its bytes have another SHA-256)", path);
    else if (share_file(fd, group) != 0)
        pp_seterr(err, "cannot give %s to group %d: %s", path, (int)group, strerror(errno));
    else
        rc = 1;
    close(fd);
    return rc;
}
