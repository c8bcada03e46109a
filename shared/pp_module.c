/* SPDX-License-Identifier: MIT */
/* pp_module.c -- the module cache. */
#include "pp_module.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp_common.h"

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
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        pp_seterr(err, "cache directory %s is not a directory", path);
        return -1;
    }
    if (access(path, W_OK | X_OK) != 0) {
        pp_seterr(err, "cache directory %s is not writable: %s", path, strerror(errno));
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

int pp_module_store(const char *dir, const uint8_t hash[PP_SHA256_LEN], const void *data,
                    size_t len, char *err)
{
    uint8_t got[PP_SHA256_LEN];
    if (pp_sha256(data, len, got) != 0 || memcmp(got, hash, sizeof got) != 0) {
        pp_seterr(err, "module bytes do not match their SHA-256");
        return -1;
    }
    char final[PATH_MAX], tmp[PATH_MAX + 32];
    pp_module_path(dir, hash, final, sizeof final);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", final, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        pp_seterr(err, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
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
    if (fsync(fd) != 0 || close(fd) != 0) {
        pp_seterr(err, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, final) != 0) {
        pp_seterr(err, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
