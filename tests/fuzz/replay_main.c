/* SPDX-License-Identifier: MIT */
/* replay_main.c -- main() for a fuzz target built without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named, or found in a directory
 * named, on the command line (the committed corpus), so that the normal
 * test run (and its sanitizer build) replays it.  Exits 1 when a path cannot
 * be read or holds no input. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += k;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    int bad = ferror(fp) || !buf;
    fclose(fp);
    if (bad) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    long inputs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            inputs++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, NULL);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        char **paths = calloc((size_t)n, sizeof *paths);
        int m = 0;
        for (int j = 0; j < n; j++) {
            if (names[j]->d_name[0] != '.' && paths) {
                size_t len = strlen(argv[i]) + strlen(names[j]->d_name) + 2;
                if ((paths[m] = malloc(len)))
                    snprintf(paths[m++], len, "%s/%s", argv[i], names[j]->d_name);
            }
            free(names[j]);
        }
        free(names);
        qsort(paths, (size_t)m, sizeof *paths, cmp);
        int rc = 0;
        for (int j = 0; j < m; j++) {
            if (!rc && run_file(paths[j]) != 0)
                rc = 1;
            inputs++;
            free(paths[j]);
        }
        free(paths);
        if (rc)
            return 1;
    }
    printf("%ld inputs replayed\n", inputs);
    return inputs > 0 ? 0 : 1;
}
