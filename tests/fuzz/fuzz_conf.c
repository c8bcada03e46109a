/* SPDX-License-Identifier: MIT */
/* fuzz_conf.c -- the configuration file parser (a table with every kind of
 * value) and the secret-file reader, on files holding the input (memfds,
 * opened by their /proc path as a user's file would be).  The input's first
 * byte picks which one. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp_auth.h"
#include "pp_common.h"
#include "pp_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct settings {
    int port, workers, daemon;
    double heartbeat, ratio;
    char *name, *dir;
} settings;

#define O(f) offsetof(settings, f)
static const pp_conf_opt table[] = {
    {"port", 'p', PP_CONF_INT, O(port), 0, 65535, "PORT", "port"},
    {"workers", 'w', PP_CONF_INT, O(workers), -1, 4096, "N", "workers"},
    {"daemon", 'D', PP_CONF_BOOL, O(daemon), 0, 1, NULL, "daemon"},
    {"heartbeat", 0, PP_CONF_DOUBLE, O(heartbeat), 0.05, 3600, "S", "heartbeat"},
    {"ratio", 0, PP_CONF_DOUBLE, O(ratio), -1, 1, "R", "ratio"},
    {"name", 0, PP_CONF_STR, O(name), 0, 0, "NAME", "name"},
    {"cache-dir", 0, PP_CONF_STR, O(dir), 0, 0, "DIR", "dir"},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL},
};

/* A memfd holding the bytes, or -1. */
static int file_of(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t k = write(fd, data + off, size - off);
        if (k <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)k;
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int secret = data[0] & 1;
    int fd = file_of(data + 1, size - 1);
    if (fd < 0)
        return 0;
    char path[64], err[PP_ERR_LEN];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    err[0] = 0;
    if (secret) {
        (void)fchmod(fd, (data[0] & 2) ? 0644 : 0600);
        char *s = pp_conf_read_secret(path, err);
        if (s) {
            size_t n = strlen(s);
            if ((data[0] & 2) || n > 4096 || (n && (s[n - 1] == '\n' || s[n - 1] == '\r')))
                abort(); /* readable by others, too long, or not trimmed */
            pp_auth_wipe(s, n);
            free(s);
        } else if (!err[0]) {
            abort();
        }
    } else {
        settings st = {.port = 60000, .workers = -1, .heartbeat = 1, .ratio = 0};
        if (pp_conf_load(table, &st, path, err) == 0) {
            if (st.port < 0 || st.port > 65535 || st.workers < -1 || st.workers > 4096 ||
                st.heartbeat < 0.05 || st.heartbeat > 3600 || st.ratio < -1 || st.ratio > 1 ||
                (st.daemon != 0 && st.daemon != 1))
                abort(); /* a value outside its range was stored */
        } else if (!err[0]) {
            abort();
        }
        pp_conf_free(table, &st);
    }
    close(fd);
    return 0;
}
