/* SPDX-License-Identifier: MIT */
/* test_module.c -- pp_module: creating the cache directory (nested, 0700),
 * cache paths, and storing modules under their SHA-256: exact bytes, mode
 * 0600, no temporary file left, refused on a hash mismatch or where nothing
 * can be written.  Everything happens in a private temporary directory.
 *
 * And the attacks on the cache (H1), each reproduced: a directory others
 * may write (or another user's) is refused; a symlink planted at the
 * temporary name an earlier node used (<final>.tmp.<pid>) or at the final
 * name is never followed (the node wrote the module through it into the
 * planted target, then renamed the link into place); a planted <hash>.so
 * whose bytes do not match, a link, a FIFO, a file others may write is
 * never taken for the module (pp_module_verify). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_common.h"
#include "pp_module.h"

static char base[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700); /* a directory made read-only by a test */
    return remove(path);
}

static int suite_init(void)
{
    snprintf(base, sizeof base, "/tmp/pptest-module-XXXXXX");
    return mkdtemp(base) ? 0 : -1;
}

static int suite_clean(void)
{
    return nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* base/name */
static void sub(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", base, name);
}

static int mode_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    return (int)(st.st_mode & 0777);
}

static int is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Entries in a directory other than . and .. (-1 if it cannot be read);
 * the first name goes to first. */
static int count_entries(const char *dir, char *first, size_t firstlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    if (first && firstlen)
        first[0] = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == 0 && first)
            snprintf(first, firstlen, "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void make_file(const char *path, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "plain file\n", 11), 11);
    close(fd);
    CU_ASSERT_EQUAL(chmod(path, (mode_t)mode), 0);
}

/* ---- pp_module_cache_init ---- */

static void test_init_nested(void)
{
    char a[256], ab[256], abc[256], err[PP_ERR_LEN] = "";
    sub(a, sizeof a, "n");
    sub(ab, sizeof ab, "n/cache");
    sub(abc, sizeof abc, "n/cache/modules");
    CU_ASSERT_FALSE(is_dir(a));
    CU_ASSERT_EQUAL(pp_module_cache_init(abc, err), 0);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT(is_dir(a));
    CU_ASSERT(is_dir(ab));
    CU_ASSERT(is_dir(abc));
    CU_ASSERT_EQUAL(mode_of(a), 0700);
    CU_ASSERT_EQUAL(mode_of(ab), 0700);
    CU_ASSERT_EQUAL(mode_of(abc), 0700);
    CU_ASSERT_EQUAL(count_entries(abc, NULL, 0), 0);

    /* Again, on the existing directory: fine, nothing changes. */
    CU_ASSERT_EQUAL(pp_module_cache_init(abc, err), 0);
    CU_ASSERT_EQUAL(mode_of(abc), 0700);
    CU_ASSERT_EQUAL(pp_module_cache_init(ab, err), 0);
    CU_ASSERT_EQUAL(count_entries(ab, NULL, 0), 1);

    /* A trailing slash and doubled slashes are harmless. */
    char slashy[256];
    sub(slashy, sizeof slashy, "s//t/");
    CU_ASSERT_EQUAL(pp_module_cache_init(slashy, err), 0);
    sub(slashy, sizeof slashy, "s/t");
    CU_ASSERT(is_dir(slashy));
    CU_ASSERT_EQUAL(mode_of(slashy), 0700);
}

static void test_init_under_file(void)
{
    char file[256], dir[256], err[PP_ERR_LEN] = "";
    sub(file, sizeof file, "regular");
    make_file(file, 0600);
    sub(dir, sizeof dir, "regular/cache/x");
    CU_ASSERT_EQUAL(pp_module_cache_init(dir, err), -1);
    CU_ASSERT(err[0] != 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, file));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, strerror(ENOTDIR)));
}

/* An existing regular file is not a cache directory, whatever its mode. */
static void test_init_on_file(void)
{
    char file[256], err[PP_ERR_LEN] = "";
    sub(file, sizeof file, "exec-file");
    make_file(file, 0700);
    int rc = pp_module_cache_init(file, err);
    CU_ASSERT_EQUAL(rc, -1);
    if (rc == 0)
        fprintf(stderr, "\n  pp_module_cache_init(\"%s\") accepted a regular file\n", file);
}

/* ---- pp_module_path ---- */

static void test_path(void)
{
    uint8_t hash[PP_SHA256_LEN];
    for (int i = 0; i < PP_SHA256_LEN; i++)
        hash[i] = (uint8_t)(i * 8 + 1);
    char out[512];
    pp_module_path("/var/cache/pp", hash, out, sizeof out);
    char want[512] = "/var/cache/pp/";
    for (int i = 0; i < PP_SHA256_LEN; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%02x", hash[i]);
    strcat(want, ".so");
    CU_ASSERT_STRING_EQUAL(out, want);
    CU_ASSERT_EQUAL(strlen(out), strlen("/var/cache/pp/") + 64 + 3);
    /* Lower-case hex digits only. */
    const char *h = out + strlen("/var/cache/pp/");
    int hexok = 1;
    for (int i = 0; i < 64; i++)
        hexok = hexok && strchr("0123456789abcdef", h[i]) != NULL;
    CU_ASSERT(hexok);

    /* A short buffer is truncated, still terminated. */
    char small[20];
    memset(small, 'Z', sizeof small);
    pp_module_path("/var/cache/pp", hash, small, sizeof small);
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
    CU_ASSERT_EQUAL(strncmp(small, want, sizeof small - 1), 0);
}

/* ---- pp_module_store ---- */

static void test_store_good(void)
{
    char dir[256], err[PP_ERR_LEN] = "";
    sub(dir, sizeof dir, "store");
    CU_ASSERT_EQUAL_FATAL(pp_module_cache_init(dir, err), 0);

    enum { N = 100000 };
    uint8_t *data = malloc(N);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    uint32_t x = 7;
    for (size_t i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 16); /* zero bytes included */
    }
    uint8_t hash[PP_SHA256_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_sha256(data, N, hash), 0);
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, N, err), 0);
    CU_ASSERT_STRING_EQUAL(err, "");

    char path[512];
    pp_module_path(dir, hash, path, sizeof path);
    CU_ASSERT_EQUAL(mode_of(path), 0600);
    /* The exact bytes. */
    FILE *fp = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    uint8_t *back = malloc(N + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    size_t got = fread(back, 1, N + 1, fp);
    fclose(fp);
    CU_ASSERT_EQUAL(got, N);
    CU_ASSERT_EQUAL(memcmp(back, data, N), 0);
    free(back);
    uint8_t again[PP_SHA256_LEN];
    CU_ASSERT_EQUAL(pp_sha256_file(path, again, err), 0);
    CU_ASSERT_EQUAL(memcmp(again, hash, sizeof hash), 0);

    /* Only the module: no temporary file left behind. */
    char first[300];
    CU_ASSERT_EQUAL(count_entries(dir, first, sizeof first), 1);
    CU_ASSERT_STRING_EQUAL(first, strrchr(path, '/') + 1);

    /* Storing it again replaces it atomically; still one file. */
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, N, err), 0);
    CU_ASSERT_EQUAL(count_entries(dir, NULL, 0), 1);
    CU_ASSERT_EQUAL(mode_of(path), 0600);

    /* A second, small module beside it. */
    static const char small[] = "tiny";
    uint8_t h2[PP_SHA256_LEN];
    CU_ASSERT_EQUAL(pp_sha256(small, 4, h2), 0);
    CU_ASSERT_EQUAL(pp_module_store(dir, h2, small, 4, err), 0);
    CU_ASSERT_EQUAL(count_entries(dir, NULL, 0), 2);
    free(data);
}

static void test_store_mismatch(void)
{
    char dir[256], err[PP_ERR_LEN] = "";
    sub(dir, sizeof dir, "mismatch");
    CU_ASSERT_EQUAL_FATAL(pp_module_cache_init(dir, err), 0);
    static const char data[] = "module bytes";
    uint8_t hash[PP_SHA256_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_sha256(data, sizeof data, hash), 0);
    hash[PP_SHA256_LEN - 1] ^= 1;
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, sizeof data, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "do not match"));
    CU_ASSERT_EQUAL(count_entries(dir, NULL, 0), 0);

    /* The right hash of other bytes: refused too. */
    hash[PP_SHA256_LEN - 1] ^= 1;
    err[0] = 0;
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, sizeof data - 1, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "do not match"));
    CU_ASSERT_EQUAL(count_entries(dir, NULL, 0), 0);
}

static void test_store_unwritable(void)
{
    char dir[256], err[PP_ERR_LEN] = "";
    static const char data[] = "module bytes";
    uint8_t hash[PP_SHA256_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_sha256(data, sizeof data, hash), 0);

    /* A "directory" below a regular file: nothing can be created there,
     * not even by root. */
    char file[256];
    sub(file, sizeof file, "blocker");
    make_file(file, 0600);
    sub(dir, sizeof dir, "blocker/cache");
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, sizeof data, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot create"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, dir));

    /* A directory that does not exist. */
    sub(dir, sizeof dir, "never-made");
    err[0] = 0;
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, sizeof data, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot create"));
    CU_ASSERT_FALSE(is_dir(dir));

    /* A read-only directory stops everyone but root. */
    if (geteuid() != 0) {
        sub(dir, sizeof dir, "readonly");
        CU_ASSERT_EQUAL_FATAL(pp_module_cache_init(dir, err), 0);
        CU_ASSERT_EQUAL_FATAL(chmod(dir, 0500), 0);
        err[0] = 0;
        CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, sizeof data, err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot create"));
        CU_ASSERT_EQUAL(chmod(dir, 0700), 0);
        CU_ASSERT_EQUAL(count_entries(dir, NULL, 0), 0);
    }
}

/* ---- the attacks on the cache (H1) ---- */

static void test_check_refuses(void)
{
    struct {
        const char *name;
        mode_t mode;
        int ok;
    } cases[] = {
        {"c-0700", 0700, 1}, {"c-0755", 0755, 1}, {"c-0750", 0750, 1},
        {"c-0777", 0777, 0}, {"c-0770", 0770, 0}, {"c-1777", 01777, 0},
        {"c-0702", 0702, 0},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        char dir[256], err[PP_ERR_LEN] = "";
        sub(dir, sizeof dir, cases[i].name);
        CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
        CU_ASSERT_EQUAL(chmod(dir, cases[i].mode), 0);
        int rc = pp_module_cache_check(dir, err);
        CU_ASSERT_EQUAL(rc, cases[i].ok ? 0 : -1);
        CU_ASSERT_EQUAL(pp_module_cache_init(dir, err), cases[i].ok ? 0 : -1);
        if (!cases[i].ok)
            CU_ASSERT_PTR_NOT_NULL(strstr(err, "writable by group or others"));
    }
    /* Another user's directory (root only: nobody else can make one). */
    if (geteuid() == 0) {
        char dir[256], err[PP_ERR_LEN] = "";
        sub(dir, sizeof dir, "c-nobody");
        CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
        CU_ASSERT_EQUAL(chown(dir, 65534, 65534), 0);
        CU_ASSERT_EQUAL(pp_module_cache_check(dir, err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not owned by this user"));
    } else {
        printf("(another user's directory: skipped, needs root) ");
    }
    /* Not a directory at all. */
    char file[256], err[PP_ERR_LEN] = "";
    sub(file, sizeof file, "c-file");
    make_file(file, 0600);
    CU_ASSERT_EQUAL(pp_module_cache_check(file, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a directory"));
}

/* A module's bytes and hash. */
static void module_bytes(uint8_t *data, size_t n, uint32_t seed, uint8_t hash[PP_SHA256_LEN])
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (uint8_t)(seed >> 16);
    }
    CU_ASSERT_EQUAL_FATAL(pp_sha256(data, n, hash), 0);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, fp) : 0;
    fclose(fp);
    if (buf)
        buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* Attack: a local user plants a symlink at the temporary name the node
 * used to write through (<final>.tmp.<pid>, predictable) and at the final
 * name, both pointing at a file of the node's user.  The node followed the
 * first (truncating and overwriting the target with module bytes) and
 * renamed the link into place.  Now neither is followed. */
static void test_store_planted_links(void)
{
    char dir[256], victim[256], err[PP_ERR_LEN] = "";
    sub(dir, sizeof dir, "links");
    sub(victim, sizeof victim, "victim.txt");
    CU_ASSERT_EQUAL_FATAL(pp_module_cache_init(dir, err), 0);
    make_file(victim, 0600); /* "plain file\n" */
    uint8_t data[5000], hash[PP_SHA256_LEN];
    module_bytes(data, sizeof data, 11, hash);
    char final[512], tmp[600];
    pp_module_path(dir, hash, final, sizeof final);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", final, (int)getpid());
    CU_ASSERT_EQUAL_FATAL(symlink(victim, tmp), 0);
    CU_ASSERT_EQUAL_FATAL(symlink(victim, final), 0);
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, sizeof data, err), 0);
    /* The target is untouched... */
    char *v = slurp(victim, NULL);
    CU_ASSERT(v && strcmp(v, "plain file\n") == 0);
    free(v);
    /* ... the final name is now a regular file with the module... */
    struct stat st;
    CU_ASSERT(lstat(final, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == sizeof data);
    size_t len = 0;
    char *back = slurp(final, &len);
    CU_ASSERT(back && len == sizeof data && memcmp(back, data, len) == 0);
    free(back);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), 1);
    /* ... and the planted temporary link is still just a link. */
    CU_ASSERT(lstat(tmp, &st) == 0 && S_ISLNK(st.st_mode));
    unlink(tmp);
}

/* Attack: <hash>.so planted before the node ever received that module.
 * pp_module_verify() takes only the real thing. */
static void test_verify(void)
{
    char dir[256], err[PP_ERR_LEN] = "";
    sub(dir, sizeof dir, "verify");
    CU_ASSERT_EQUAL_FATAL(pp_module_cache_init(dir, err), 0);
    uint8_t data[3000], hash[PP_SHA256_LEN];
    module_bytes(data, sizeof data, 5, hash);
    char path[512], real[256];
    pp_module_path(dir, hash, path, sizeof path);
    /* Absent. */
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), 0);
    /* The real bytes elsewhere, and a link to them: not taken (a link). */
    sub(real, sizeof real, "real.so");
    int fd = open(real, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, data, sizeof data), (ssize_t)sizeof data);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(symlink(real, path), 0);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "symbolic link"));
    unlink(path);
    /* Other bytes under its name. */
    make_file(path, 0600);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not match its name"));
    unlink(path);
    /* A FIFO (it must not block us), a directory. */
    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
    unlink(path);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0700), 0);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), -1);
    rmdir(path);
    /* The right bytes, but writable by others. */
    CU_ASSERT_EQUAL_FATAL(pp_module_store(dir, hash, data, sizeof data, err), 0);
    CU_ASSERT_EQUAL(chmod(path, 0666), 0);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "writable by group or others"));
    /* Another user's (root only). */
    if (geteuid() == 0) {
        CU_ASSERT_EQUAL(chmod(path, 0600), 0);
        CU_ASSERT_EQUAL(chown(path, 65534, 65534), 0);
        CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not to us"));
    }
    /* Stored again: replaced atomically, then taken. */
    CU_ASSERT_EQUAL(pp_module_store(dir, hash, data, sizeof data, err), 0);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, PP_MODULE_NO_GROUP, err), 1);
    CU_ASSERT_EQUAL(mode_of(path), 0600);
}

/* For workers of another user: the directory and files get their group,
 * readable, never writable by it. */
static void test_group(void)
{
    char dir[256], err[PP_ERR_LEN] = "";
    sub(dir, sizeof dir, "group");
    CU_ASSERT_EQUAL_FATAL(pp_module_cache_init(dir, err), 0);
    gid_t g = getegid(); /* a group we may give files to */
    CU_ASSERT_EQUAL(pp_module_cache_share(dir, g, err), 0);
    CU_ASSERT_EQUAL(mode_of(dir), 0750);
    CU_ASSERT_EQUAL(pp_module_cache_check(dir, err), 0);
    uint8_t data[100], hash[PP_SHA256_LEN];
    module_bytes(data, sizeof data, 9, hash);
    CU_ASSERT_EQUAL(pp_module_store_as(dir, hash, data, sizeof data, g, err), 0);
    char path[512];
    pp_module_path(dir, hash, path, sizeof path);
    struct stat st;
    CU_ASSERT(stat(path, &st) == 0 && st.st_gid == g && (st.st_mode & 0777) == 0640);
    /* A file of an earlier run (0600) gets the group when verified. */
    CU_ASSERT_EQUAL(chmod(path, 0600), 0);
    CU_ASSERT_EQUAL(pp_module_verify(dir, hash, g, err), 1);
    CU_ASSERT_EQUAL(mode_of(path), 0640);
}

int pp_register_suites(void)
{
    static const pp_test cache[] = {
        {"cache_init: nested 0700 directories, existing one", test_init_nested},
        {"cache_init under a regular file fails", test_init_under_file},
        {"regression: cache_init refuses an existing regular file", test_init_on_file},
        {"pp_module_path is DIR/<64 hex>.so", test_path},
        {"store: exact bytes, 0600, no temporary left", test_store_good},
        {"store: hash mismatch creates nothing", test_store_mismatch},
        {"store: nowhere to write", test_store_unwritable},
        {"H1 cache_check: writable by others, another user's, not a directory",
         test_check_refuses},
        {"H1 store: links planted at the temporary and final names are not followed",
         test_store_planted_links},
        {"H1 verify: a planted link, other bytes, a FIFO, others' files are not taken",
         test_verify},
        {"H1 for workers of another user: group, 0750 and 0640", test_group},
        {NULL, NULL},
    };
    return pp_add_suite("pp_module", suite_init, suite_clean, cache);
}
