/* SPDX-License-Identifier: MIT */
/* test_conf.c -- pp_conf over a small table: setting values of each kind
 * with their ranges, configuration files and their errors, lookup, --help
 * output and freeing; secret files.  Files go to a private temporary directory. */
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_conf.h"

typedef struct settings {
    int port;
    double ratio;
    char *name;
    int verbose;
    int count;    /* no short option */
} settings;

static const pp_conf_opt table[] = {
    {"port", 'p', PP_CONF_INT, offsetof(settings, port), 1, 65535, "PORT",
     "TCP port to listen on"},
    {"ratio", 'r', PP_CONF_DOUBLE, offsetof(settings, ratio), 0.0, 1.0, "R",
     "a fraction between 0 and 1"},
    {"name", 'n', PP_CONF_STR, offsetof(settings, name), 0, 0, "NAME", "what to call it"},
    {"verbose", 'v', PP_CONF_BOOL, offsetof(settings, verbose), 0, 1, NULL, "talk more"},
    {"count", 0, PP_CONF_INT, offsetof(settings, count), -10, 10, "N", "how many"},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL},
};

static const pp_conf_opt *opt(const char *name)
{
    const pp_conf_opt *o = pp_conf_find(table, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    return o;
}

/* ---- temporary files ---- */

static char tmpdir[64];

static int suite_init(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pptest-conf-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int suite_clean(void)
{
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes text to tmpdir/name; the path goes to path (PATH_MAX-ish). */
static void write_file(const char *name, const char *text, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_EQUAL(fputs(text, fp) >= 0, 1);
    CU_ASSERT_EQUAL(fclose(fp), 0);
}

/* ---- pp_conf_find ---- */

static void test_find(void)
{
    CU_ASSERT_PTR_EQUAL(pp_conf_find(table, "port"), &table[0]);
    CU_ASSERT_PTR_EQUAL(pp_conf_find(table, "verbose"), &table[3]);
    CU_ASSERT_PTR_EQUAL(pp_conf_find(table, "count"), &table[4]);
    CU_ASSERT_PTR_NULL(pp_conf_find(table, "por"));   /* no prefixes */
    CU_ASSERT_PTR_NULL(pp_conf_find(table, "ports"));
    CU_ASSERT_PTR_NULL(pp_conf_find(table, "PORT"));  /* case matters */
    CU_ASSERT_PTR_NULL(pp_conf_find(table, ""));
    CU_ASSERT_PTR_NULL(pp_conf_find(table, "p"));     /* not by short letter */
}

/* ---- pp_conf_set ---- */

/* Expects value to be refused for option `name`, the error text naming the
 * option and quoting the value. */
static void set_bad(settings *s, const char *name, const char *value)
{
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_conf_set(opt(name), s, value, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, name));
    char quoted[PP_ERR_LEN], q[72]; /* as messages quote outside text */
    snprintf(quoted, sizeof quoted, "\"%s\"", pp_quote(value, strlen(value), q, sizeof q));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, quoted));
}

static void test_set_int(void)
{
    settings s = {.port = 42};
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_conf_set(opt("port"), &s, "8080", err), 0);
    CU_ASSERT_EQUAL(s.port, 8080);
    CU_ASSERT_EQUAL(pp_conf_set(opt("port"), &s, "1", err), 0);
    CU_ASSERT_EQUAL(s.port, 1);
    CU_ASSERT_EQUAL(pp_conf_set(opt("port"), &s, "65535", err), 0);
    CU_ASSERT_EQUAL(s.port, 65535);
    CU_ASSERT_EQUAL(pp_conf_set(opt("count"), &s, "-10", err), 0);
    CU_ASSERT_EQUAL(s.count, -10);
    CU_ASSERT_EQUAL(pp_conf_set(opt("count"), &s, "7", err), 0);
    CU_ASSERT_EQUAL(s.count, 7);

    s.port = 42;
    set_bad(&s, "port", "0");        /* below the range */
    set_bad(&s, "port", "65536");    /* above */
    set_bad(&s, "port", "-1");
    set_bad(&s, "port", "abc");      /* not a number */
    set_bad(&s, "port", "80abc");    /* trailing junk */
    set_bad(&s, "port", "");
    set_bad(&s, "port", "80.5");     /* fractional */
    set_bad(&s, "port", "nan");
    set_bad(&s, "port", "NaN");
    set_bad(&s, "port", "inf");
    set_bad(&s, "port", "1e400");    /* overflows a double */
    set_bad(&s, "port", "99999999999999999999"); /* overflows a long */
    set_bad(&s, "count", "-99999999999999999999");
    set_bad(&s, "port", "0x50");     /* hex */
    set_bad(&s, "port", " 80");      /* blanks */
    set_bad(&s, "port", "8\x1b[2J0");
    set_bad(&s, "count", "11");
    set_bad(&s, "count", "-11");
    CU_ASSERT_EQUAL(s.port, 42);     /* refused values change nothing */
    CU_ASSERT_EQUAL(s.count, 7);

    /* The message says what is wanted. */
    CU_ASSERT_EQUAL(pp_conf_set(opt("port"), &s, "0", err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "whole number"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "1..65535"));
}

static void test_set_double(void)
{
    settings s = {.ratio = 0.125};
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_conf_set(opt("ratio"), &s, "0.5", err), 0);
    CU_ASSERT_DOUBLE_EQUAL(s.ratio, 0.5, 1e-12);
    CU_ASSERT_EQUAL(pp_conf_set(opt("ratio"), &s, "0", err), 0);
    CU_ASSERT_DOUBLE_EQUAL(s.ratio, 0.0, 1e-12);
    CU_ASSERT_EQUAL(pp_conf_set(opt("ratio"), &s, "1", err), 0);
    CU_ASSERT_DOUBLE_EQUAL(s.ratio, 1.0, 1e-12);
    CU_ASSERT_EQUAL(pp_conf_set(opt("ratio"), &s, "2.5e-1", err), 0);
    CU_ASSERT_DOUBLE_EQUAL(s.ratio, 0.25, 1e-12);

    s.ratio = 0.75;
    set_bad(&s, "ratio", "1.0001");
    set_bad(&s, "ratio", "-0.1");
    set_bad(&s, "ratio", "nan");
    set_bad(&s, "ratio", "-nan");
    set_bad(&s, "ratio", "inf");
    set_bad(&s, "ratio", "half");
    set_bad(&s, "ratio", "0.5x");
    set_bad(&s, "ratio", "");
    CU_ASSERT_DOUBLE_EQUAL(s.ratio, 0.75, 1e-12);
    CU_ASSERT_EQUAL(pp_conf_set(opt("ratio"), &s, "7", err), -1);
    CU_ASSERT_PTR_NULL(strstr(err, "whole number"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "number"));
}

static void test_set_bool(void)
{
    static const struct {
        const char *text;
        int value;
    } spell[] = {
        {"yes", 1}, {"no", 0}, {"true", 1}, {"false", 0}, {"1", 1}, {"0", 0},
        {"YES", 1}, {"No", 0}, {"TRUE", 1}, {"False", 0},
    };
    settings s = {0};
    char err[PP_ERR_LEN];
    for (size_t i = 0; i < PP_ARRAY_LEN(spell); i++) {
        s.verbose = !spell[i].value;
        CU_ASSERT_EQUAL(pp_conf_set(opt("verbose"), &s, spell[i].text, err), 0);
        CU_ASSERT_EQUAL(s.verbose, spell[i].value);
    }
    s.verbose = 1;
    set_bad(&s, "verbose", "maybe");
    set_bad(&s, "verbose", "2");
    set_bad(&s, "verbose", "");
    set_bad(&s, "verbose", "yess");
    set_bad(&s, "verbose", "on");
    CU_ASSERT_EQUAL(s.verbose, 1);
}

static void test_set_str(void)
{
    settings s = {0};
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_conf_set(opt("name"), &s, "first", err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.name);
    CU_ASSERT_STRING_EQUAL(s.name, "first");
    /* A copy, not the caller's pointer. */
    char value[] = "second value";
    CU_ASSERT_EQUAL(pp_conf_set(opt("name"), &s, value, err), 0);
    CU_ASSERT_PTR_NOT_EQUAL(s.name, value);
    value[0] = 'X';
    CU_ASSERT_STRING_EQUAL(s.name, "second value");
    /* Replacing again: the old copy is freed (LeakSanitizer watches). */
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(pp_conf_set(opt("name"), &s, i % 2 ? "odd" : "even", err), 0);
    CU_ASSERT_STRING_EQUAL(s.name, "odd");
    CU_ASSERT_EQUAL(pp_conf_set(opt("name"), &s, "", err), 0); /* empty is a string too */
    CU_ASSERT_STRING_EQUAL(s.name, "");
    pp_conf_free(table, &s);
    CU_ASSERT_PTR_NULL(s.name);
}

/* ---- pp_conf_load ---- */

static void test_load_good(void)
{
    char path[256], err[PP_ERR_LEN] = "";
    write_file("good.conf",
               "# a configuration file\n"
               "\n"
               "   \t  \n"
               "port 8080\n"
               "ratio = 0.5   \n"
               "  name   =   hello world   # a comment after the value\n"
               "verbose\tyes\t\n"
               "count=-3\n"
               "# name ignored\n"
               "name = final\n"
               "   # indented comment\n",
               path, sizeof path);
    settings s = {0};
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), 0);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_EQUAL(s.port, 8080);
    CU_ASSERT_DOUBLE_EQUAL(s.ratio, 0.5, 1e-12);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.name);
    CU_ASSERT_STRING_EQUAL(s.name, "final"); /* the later line wins; old one freed */
    CU_ASSERT_EQUAL(s.verbose, 1);
    CU_ASSERT_EQUAL(s.count, -3);
    pp_conf_free(table, &s);
    CU_ASSERT_PTR_NULL(s.name);

    /* Interior spaces of a value are kept, trailing ones dropped; the last
     * line may lack its newline; CRLF line ends are trailing spaces. */
    write_file("spaces.conf", "name =  a  b  \r\nport 99", path, sizeof path);
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.name);
    CU_ASSERT_STRING_EQUAL(s.name, "a  b");
    CU_ASSERT_EQUAL(s.port, 99);
    pp_conf_free(table, &s);

    /* An empty file is fine and changes nothing. */
    write_file("empty.conf", "", path, sizeof path);
    s.port = 5;
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), 0);
    CU_ASSERT_EQUAL(s.port, 5);
}

/* Loads text expecting an error "PATH:LINE: ..." containing `want`. */
static void load_bad(const char *fname, const char *text, int line, const char *want)
{
    char path[256], err[PP_ERR_LEN] = "";
    write_file(fname, text, path, sizeof path);
    settings s = {0};
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), -1);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    int ok = strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, want) != NULL;
    CU_ASSERT(ok);
    if (!ok)
        fprintf(stderr, "\n  %s: got \"%s\", wanted \"%s...%s\"\n", fname, err, prefix, want);
    pp_conf_free(table, &s);
}

static void test_load_errors(void)
{
    load_bad("unknown.conf", "# c\nport 1\nbogus 3\nport 2\n", 3, "unknown key \"bogus\"");
    load_bad("novalue.conf", "\n\n\nport\n", 4, "port needs a value");
    load_bad("novalue2.conf", "port =   \n", 1, "port needs a value");
    load_bad("novalue3.conf", "name # only a comment\n", 1, "name needs a value");
    load_bad("badint.conf", "name x\nport abc\n", 2, "\"abc\"");
    load_bad("range.conf", "port 70000\n", 1, "1..65535");
    load_bad("badbool.conf", "verbose perhaps\n", 1, "\"perhaps\"");
    load_bad("frac.conf", "count = 2.5\n", 1, "whole number");
    /* Bytes a terminal acts on come back quoted, in keys and values. */
    load_bad("esc-int.conf", "port 1\x1b[2J\n", 1, "\"1\\x1b[2J\"");
    load_bad("esc-bool.conf", "verbose y\res\n", 1, "\"y\\x0des\"");
    load_bad("esc-key.conf", "po\x1b]0;x\x07rt 1\n", 1, "unknown key \"po\\x1b]0;x\\x07rt\"");

    /* A line longer than 4096 bytes. */
    size_t n = 5000;
    char *text = malloc(n + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    strcpy(text, "port 1\n");
    size_t off = strlen(text);
    memcpy(text + off, "name ", 5);
    memset(text + off + 5, 'x', n);
    strcpy(text + off + 5 + n, "\nport 2\n");
    load_bad("long.conf", text, 2, "too long");
    free(text);
}

/* A long line that does fit (a comment of ~4000 bytes) is fine. */
static void test_load_long_ok(void)
{
    char path[256], err[PP_ERR_LEN] = "";
    size_t n = 4000;
    char *text = malloc(n + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    text[0] = '#';
    memset(text + 1, 'c', n);
    strcpy(text + 1 + n, "\nport 3\n");
    write_file("longok.conf", text, path, sizeof path);
    free(text);
    settings s = {0};
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), 0);
    CU_ASSERT_EQUAL(s.port, 3);
}

static void test_load_missing(void)
{
    char path[256], err[PP_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/no-such-file.conf", tmpdir);
    settings s = {0};
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), -1);
    CU_ASSERT_EQUAL(strncmp(err, path, strlen(path)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
}

/* ---- pp_conf_read_secret ---- */

/* Writes n bytes to tmpdir/name with `mode`; the path in `path`. */
static void write_bytes(const char *name, const void *data, size_t n, mode_t mode, char *path,
                        size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_EQUAL(fwrite(data, 1, n, fp), n);
    CU_ASSERT_EQUAL(fclose(fp), 0);
    CU_ASSERT_EQUAL(chmod(path, mode), 0);
}

/* The secret of a file, or NULL with err[] checked to contain `why`. */
static char *secret_of(const char *name, const void *data, size_t n, mode_t mode,
                       const char *why)
{
    char path[256], err[PP_ERR_LEN] = "";
    write_bytes(name, data, n, mode, path, sizeof path);
    char *s = pp_conf_read_secret(path, err);
    if (!why && !s)
        fprintf(stderr, "\n    %s: %s\n", name, err);
    if (why) {
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, why));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    }
    return s;
}

static void test_secret(void)
{
    char *s = secret_of("s1", "0123456789abcdef\n", 17, 0600, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s, "0123456789abcdef");
    free(s);
    s = secret_of("s2", "with spaces kept \r\n\n", 20, 0400, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s, "with spaces kept ");
    free(s);
    s = secret_of("s3", "", 0, 0600, NULL); /* empty: the caller judges length */
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s, "");
    free(s);
    CU_ASSERT_PTR_NULL(secret_of("s4", "0123456789abcdef\n", 17, 0640, "readable by others"));
    CU_ASSERT_PTR_NULL(secret_of("s5", "0123456789abcdef\n", 17, 0604, "readable by others"));
    /* A NUL would end the secret early: refused, not truncated. */
    CU_ASSERT_PTR_NULL(secret_of("s6", "aame\n\0nme\n", 11, 0600, "NUL"));
    char big[5000];
    memset(big, 's', sizeof big);
    CU_ASSERT_PTR_NULL(secret_of("s7", big, sizeof big, 0600, "exceeds 4 KiB"));
    s = secret_of("s8", big, 4096, 0600, NULL); /* exactly 4 KiB fits */
    CU_ASSERT(s && strlen(s) == 4096);
    free(s);
    char path[256], err[PP_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/no-such-secret", tmpdir);
    CU_ASSERT_PTR_NULL(pp_conf_read_secret(path, err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open"));
    CU_ASSERT_PTR_NULL(pp_conf_read_secret(tmpdir, err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
}

/* Files that are no regular files, or that never end, where a secret or a
 * configuration file is expected: refused at once.  A FIFO would block the
 * open until some process writes it; /dev/zero would be read forever.
 * alarm() ends the run if either hangs. */
static void test_not_files(void)
{
    char fifo[256], err[PP_ERR_LEN] = "";
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    const char *const paths[] = {fifo, "/dev/zero", "/dev/null", tmpdir};
    alarm(20);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        settings s = {0};
        err[0] = 0;
        CU_ASSERT_PTR_NULL(pp_conf_read_secret(paths[i], err));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, paths[i]));
        err[0] = 0;
        CU_ASSERT_EQUAL(pp_conf_private(paths[i], err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
        err[0] = 0;
        CU_ASSERT_EQUAL(pp_conf_load(table, &s, paths[i], err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
        CU_ASSERT_EQUAL(strncmp(err, paths[i], strlen(paths[i])), 0);
        pp_conf_free(table, &s);
    }
    alarm(0);
    unlink(fifo);
}

/* A configuration file with a NUL byte (it would cut its line short: a
 * setting other than the file's), or larger than 1 MiB: refused. */
static void test_load_binary_and_huge(void)
{
    char path[256], err[PP_ERR_LEN] = "";
    static const char nul[] = "port 1\nport 6\0junk\nname x\n";
    write_bytes("nul.conf", nul, sizeof nul - 1, 0644, path, sizeof path);
    settings s = {0};
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: a NUL byte"));
    pp_conf_free(table, &s);
    size_t big = (1u << 20) + 1;
    char *text = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    for (size_t i = 0; i < big; i++) /* comment lines: harmless, only too many */
        text[i] = i % 64 == 0 ? '#' : i % 64 == 63 ? '\n' : 'c';
    write_bytes("huge.conf", text, big, 0644, path, sizeof path);
    free(text);
    err[0] = 0;
    CU_ASSERT_EQUAL(pp_conf_load(table, &s, path, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "larger than 1048576 bytes"));
    pp_conf_free(table, &s);
}

/* ---- pp_conf_help, pp_conf_free ---- */

static void test_help(void)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *fp = open_memstream(&out, &outlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    pp_conf_help(table, fp);
    CU_ASSERT_EQUAL(fclose(fp), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);

    /* One line per option. */
    int lines = 0;
    for (const char *c = out; *c; c++)
        lines += *c == '\n';
    CU_ASSERT_EQUAL(lines, 5);

    CU_ASSERT_PTR_NOT_NULL(strstr(out, "-p, --port PORT"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "-r, --ratio R"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "-n, --name NAME"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "-v, --verbose "));
    CU_ASSERT_PTR_NULL(strstr(out, "--verbose ("));   /* a flag takes no argument */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "    --count N"));
    CU_ASSERT_PTR_NULL(strstr(out, "-, --count"));
    /* Each line carries its help text, after the option. */
    const char *p = strstr(out, "-p, --port PORT");
    const char *h = strstr(out, "TCP port to listen on");
    CU_ASSERT(p && h && h > p);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "talk more\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "how many\n"));
    /* Help texts line up in one column. */
    const char *c1 = strstr(out, "TCP port"), *l1 = out;
    const char *c2 = strstr(out, "how many");
    const char *l2 = c2;
    while (l2 > out && l2[-1] != '\n')
        l2--;
    CU_ASSERT(c1 && c2 && c1 - l1 == c2 - l2);
    free(out);

    /* An empty table prints nothing. */
    static const pp_conf_opt none[] = {{NULL, 0, 0, 0, 0, 0, NULL, NULL}};
    char buf[64];
    memset(buf, 0, sizeof buf);
    fp = fmemopen(buf, sizeof buf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    pp_conf_help(none, fp);
    CU_ASSERT_EQUAL(ftell(fp), 0);
    fclose(fp);
}

static void test_free(void)
{
    settings s = {.port = 9};
    char err[PP_ERR_LEN];
    CU_ASSERT_EQUAL(pp_conf_set(opt("name"), &s, "to be freed", err), 0);
    CU_ASSERT_PTR_NOT_NULL(s.name);
    pp_conf_free(table, &s);
    CU_ASSERT_PTR_NULL(s.name);
    CU_ASSERT_EQUAL(s.port, 9); /* numbers untouched */
    pp_conf_free(table, &s);    /* twice is fine */
    CU_ASSERT_PTR_NULL(s.name);
}

/* LIST: repeats add up, on the command line (pp_conf_set) and in a file
 * (a key on several lines, or a comma list); freed by pp_conf_free. */
static void test_list(void)
{
    typedef struct {
        char *tags;
    } lset;
    static const pp_conf_opt lt[] = {
        {"tag", 0, PP_CONF_LIST, offsetof(lset, tags), 0, 0, "NAME", "a tag"},
        {NULL, 0, 0, 0, 0, 0, NULL, NULL},
    };
    lset v = {0};
    char err[PP_ERR_LEN], path[256];
    CU_ASSERT_EQUAL(pp_conf_set(&lt[0], &v, "gpu", err), 0);
    CU_ASSERT_STRING_EQUAL(v.tags, "gpu");
    CU_ASSERT_EQUAL(pp_conf_set(&lt[0], &v, "avx512,fast", err), 0);
    CU_ASSERT_STRING_EQUAL(v.tags, "gpu,avx512,fast");
    pp_conf_free(lt, &v);
    CU_ASSERT_PTR_NULL(v.tags);
    write_file("list.conf", "tag gpu\n# a comment\ntag = avx512\ntag a,b\n", path,
               sizeof path);
    CU_ASSERT_EQUAL(pp_conf_load(lt, &v, path, err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v.tags);
    CU_ASSERT_STRING_EQUAL(v.tags, "gpu,avx512,a,b");
    pp_conf_free(lt, &v);
}

int pp_register_suites(void)
{
    static const pp_test set[] = {
        {"pp_conf_find", test_find},
        {"INT: values, range, junk, fractions, NaN", test_set_int},
        {"DOUBLE: values, range, NaN, junk", test_set_double},
        {"BOOL spellings", test_set_bool},
        {"STR: copies, replacement frees the old one", test_set_str},
        {"pp_conf_help lines", test_help},
        {"pp_conf_free frees and clears strings", test_free},
        {NULL, NULL},
    };
    static const pp_test load[] = {
        {"comments, blank lines, both forms, trailing spaces", test_load_good},
        {"errors are FILE:LINE: reason", test_load_errors},
        {"a long comment line that fits", test_load_long_ok},
        {"a missing file", test_load_missing},
        {"LIST: repeats add up", test_list},
        {"secret files: trimmed, mode, NUL, size", test_secret},
        {"a FIFO, a device, a directory: refused without blocking", test_not_files},
        {"a NUL byte, more than 1 MiB: refused", test_load_binary_and_huge},
        {NULL, NULL},
    };
    if (pp_add_suite("pp_conf set", NULL, NULL, set) != 0 ||
        pp_add_suite("pp_conf load", suite_init, suite_clean, load) != 0)
        return -1;
    return 0;
}
