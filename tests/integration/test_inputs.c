/* SPDX-License-Identifier: MIT */
/* test_inputs.c -- what libpp (and ppserver) read besides frames,
 * attacked: node names (host ranges, control bytes, IPv6 forms, lists of
 * 100,000 entries, in pp_config.ppservers, $PP_SERVERS and pp_add_node()),
 * secret files and TLS certificate, key and CA files that are FIFOs,
 * devices, directories, huge or open to others, nodes files of garbage, of
 * 100 MB, flipping every few milliseconds while jobs run, ppserver's
 * configuration file turned into a FIFO or /dev/zero before a SIGHUP, FIFO
 * directories planted in $TMPDIR for the next program's sweep, and a
 * $TMPDIR that is no directory.
 *
 * Each attack ends in a clear error naming the input (or, mid-run, the
 * nodes as they were) and never in a hang: every call that could block is
 * under alarm(), every wait is bounded.  Jobs on a good node still run.
 * The nodes files' other checks are in test_nodes; the parsers' own cases
 * in test_net and test_conf. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <pp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "certs.h"
#include "client_util.h"
#include "cunit_main.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define SECRET "0123456789abcdef0123456789abcdef"
#define HUGE_LIST 100000

static char tmpdir[256];

static void in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

/* pp_last_error() contains `want` (else printed). */
static int error_has(const char *want)
{
    const char *e = pp_last_error();
    int ok = e && strstr(e, want) != NULL;
    if (!ok)
        fprintf(stderr, "\n    error \"%s\" lacks \"%s\"\n", e ? e : "(null)", want);
    return ok;
}

/* pp_server_new(cfg) under alarm(60) (a hang ends the run); 1 when it
 * failed with `want` in its error. */
static int refused(pp_config cfg, const char *want)
{
    if (!cfg.log_level)
        cfg.log_level = "error";
    alarm(60);
    pp_server *s = pp_server_new(&cfg);
    alarm(0);
    if (s) {
        fprintf(stderr, "\n    accepted, wanted an error with \"%s\"\n", want);
        pp_server_free(s);
        return 0;
    }
    return error_has(want);
}

/* n t_square jobs, all done right on `node`. */
static int squares_on(pp_server *s, int n, const char *node)
{
    for (int i = 0; i < n; i++) {
        pp_job *j = pp_submitf(s, t_square, NULL, "l", (long)(3 + i));
        int st = j ? pp_job_wait_for(j, 20) : -1;
        long r = 0;
        int ok = st == PP_DONE && pp_job_unpack(j, "l", &r) == 0 && r == (3 + i) * (3 + i) &&
                 strcmp(pp_job_node(j), node) == 0;
        if (!ok)
            fprintf(stderr, "\n    t_square(%d): status %d (%s) on \"%s\", wanted %s\n", 3 + i,
                    st, j ? pp_job_error(j) : pp_last_error(), j ? pp_job_node(j) : "", node);
        pp_job_free(j);
        if (!ok)
            return 0;
    }
    return 1;
}

static void test_teardown(void)
{
    alarm(0);
    unsetenv("PP_SERVERS");
    unsetenv("PP_SECRET_FILE");
    cl_clients_free();
    cl_servers_end(cl_server_end);
}

/* A client of node a alone, once a is up (tracked: freed by the
 * teardown), or NULL. */
static pp_server *client_of(const srv_harness *a)
{
    char na[64];
    cl_node_name(a, na, sizeof na);
    pp_server *s = cl_track(cl_new(&(pp_config){.ncpus = 0, .ppservers = ARGS(na),
                                                 .secret = a->secret, .log_level = "error"}));
    return s && cl_wait_up(s, a, 10) ? s : NULL;
}

/* ---- node names ---- */

static const struct {
    const char *name, *why;
} bad_names[] = {
    {"node[01-64]", "host ranges such as node[01-64] are not expanded"},
    {"n[0-99999999]:60000", "host ranges such as node[01-64] are not expanded"},
    {"n[1-2][3-4]x[5-6]", "host ranges such as node[01-64] are not expanded"},
    {"n[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]", "not expanded"},
    {"n[0001-0002]", "not expanded"},
    {"n[9-1]", "not expanded"},
    {"[::1", "bad node address"},
    {"[[::1]]:1", "bad node address"},
    {"::1", "write IPv6 as [addr]:port"},
    {"fe80::1:60000", "write IPv6 as [addr]:port"},
    {"[::1]:99999", "bad port"},
    {"host:99999999999999999999", "bad port"},
    {"host:-1", "bad port"},
    {"host:+1", "bad port"},
    {"host:0", "bad port"},
    {"host:60000junk", "bad port"},
    {"host:", "bad port"},
    {"", "empty node address"},
    {":60000", "bad node address"},
    {"%:1", "a host name has only letters"},       /* a zone only in IPv6 */
    {"h%eth0:1", "a host name has only letters"},
    {"h\x1b[2J:1", "\\x1b[2J"},                   /* quoted, not sent to a terminal */
    {"h\t:1", "\\x09"},
    {"h\x7f:1", "\\x7f"},
    {"h\xc3\xa9:1", "\\xc3\\xa9"},
    {"h\"ost:1", "\\x22"},
};

/* Every bad name refused by pp_server_new() and by pp_add_node(), with a
 * message that has no byte a terminal would act on; a node on the same
 * client meanwhile runs its jobs. */
static void test_names_refused(void)
{
    srv_harness *a = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    pp_server *s = client_of(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char na[64];
    cl_node_name(a, na, sizeof na);
    char longname[600];
    memset(longname, 'h', 520); /* over 255 bytes, then over the error's room */
    snprintf(longname + 520, sizeof longname - 520, ":1");
    for (size_t i = 0; i <= sizeof bad_names / sizeof bad_names[0]; i++) {
        int last = i == sizeof bad_names / sizeof bad_names[0];
        const char *name = last ? longname : bad_names[i].name;
        const char *why = last ? "longer than 263 bytes" : bad_names[i].why;
        CU_ASSERT(refused((pp_config){.ncpus = 0, .ppservers = ARGS(name), .secret = SECRET},
                          why));
        CU_ASSERT_EQUAL(pp_add_node(s, name), -1);
        CU_ASSERT(error_has(why));
        for (const char *c = pp_last_error(); *c; c++)
            CU_ASSERT(*c >= 0x20 && *c < 0x7f);
    }
    pp_node_info ni[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 2); /* local and a: nothing added */
    CU_ASSERT(squares_on(s, 4, na));
}

/* IPv6 literals in brackets, with or without a port or a zone, are names. */
static void test_names_ipv6(void)
{
    static const char *const good[][2] = {
        {"[::1]", "[::1]:60000"},
        {"[::1]:1", "[::1]:1"},
        {"[fe80::1%lo]:2", "[fe80::1%lo]:2"},
        {"[::ffff:127.0.0.1]:3", "[::ffff:127.0.0.1]:3"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        pp_server *s = cl_track(cl_new(&(pp_config){
            .ncpus = 0, .ppservers = ARGS(good[i][0]), .secret = SECRET, .log_level = "error"}));
        CU_ASSERT_PTR_NOT_NULL(s);
        pp_node_info ni;
        CU_ASSERT(s && cl_node_info(s, good[i][1], &ni) == 0);
        cl_client_free(s);
    }
}

/* A list of 100,000 entries, in pp_config.ppservers and in $PP_SERVERS:
 * refused before any is looked at (each is checked against those before
 * it: all of them would take minutes). */
static void test_names_huge_list(void)
{
    const char **list = calloc(HUGE_LIST + 1, sizeof *list);
    char *text = malloc((size_t)HUGE_LIST * 24);
    CU_ASSERT_FATAL(list && text);
    size_t used = 0;
    for (int i = 0; i < HUGE_LIST; i++) {
        list[i] = text + used;
        used += (size_t)snprintf(text + used, 24, "10.%d.%d.%d:1", i >> 16, (i >> 8) & 255,
                                 i & 255) + 1;
    }
    CU_ASSERT(refused((pp_config){.ncpus = 0, .ppservers = list, .secret = SECRET},
                      "pp_config.ppservers: more than 4096 entries"));
    for (size_t i = 0; i < used; i++) /* the same names, joined by commas */
        if (!text[i])
            text[i] = ',';
    text[used - 1] = 0;
    CU_ASSERT_FATAL(setenv("PP_SERVERS", text, 1) == 0);
    CU_ASSERT(refused((pp_config){.ncpus = 0, .secret = SECRET},
                      "PP_SERVERS: more than 4096 entries"));
    /* Commas alone count too: 100,000 empty entries. */
    memset(text, ',', HUGE_LIST);
    text[HUGE_LIST] = 0;
    CU_ASSERT_FATAL(setenv("PP_SERVERS", text, 1) == 0);
    CU_ASSERT(refused((pp_config){.ncpus = 0, .secret = SECRET}, "more than 4096 entries"));
    /* Bad names through the environment: the same errors, named so. */
    CU_ASSERT_FATAL(setenv("PP_SERVERS", "127.0.0.1:1,node[01-64]", 1) == 0);
    CU_ASSERT(refused((pp_config){.ncpus = 0, .secret = SECRET}, "PP_SERVERS: bad node "
                                                                 "address \"node[01-64]\""));
    unsetenv("PP_SERVERS");
    free(list);
    free(text);
}

/* ---- secret files ---- */

/* A file of `len` bytes of `byte` at path with `mode` (sparse when byte is
 * 0).  0 or -1. */
static int make_file(const char *path, size_t len, int byte, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int ok = fchmod(fd, mode) == 0;
    if (byte == 0) {
        ok = ok && ftruncate(fd, (off_t)len) == 0;
    } else {
        char buf[4096];
        memset(buf, byte, sizeof buf);
        for (size_t done = 0; ok && done < len; done += sizeof buf) {
            size_t n = len - done < sizeof buf ? len - done : sizeof buf;
            ok = write(fd, buf, n) == (ssize_t)n;
        }
    }
    return close(fd) == 0 && ok ? 0 : -1;
}

/* The secret from files that are no secret files: refused, naming the file
 * and why, through pp_config.secret_file and through $PP_SECRET_FILE; a
 * FIFO does not block (no process ever writes it). */
static void test_secret_files(void)
{
    char fifo[300], huge[300], open_[300], group[300], link[300], good[300];
    in_tmp(fifo, sizeof fifo, "secret-fifo");
    in_tmp(huge, sizeof huge, "secret-huge");
    in_tmp(open_, sizeof open_, "secret-0644");
    in_tmp(group, sizeof group, "secret-0640");
    in_tmp(link, sizeof link, "secret-link");
    in_tmp(good, sizeof good, "secret-good");
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    CU_ASSERT_FATAL(make_file(huge, 100u << 20, 0, 0600) == 0);
    CU_ASSERT_FATAL(make_file(open_, 40, 's', 0644) == 0);
    CU_ASSERT_FATAL(make_file(group, 40, 's', 0640) == 0);
    CU_ASSERT_FATAL(make_file(good, 40, 's', 0600) == 0);
    CU_ASSERT_FATAL(symlink("/dev/zero", link) == 0);
    const char *const cases[][2] = {
        {fifo, "not a regular file"},     {"/dev/zero", "not a regular file"},
        {link, "not a regular file"},     {tmpdir, "not a regular file"},
        {huge, "exceeds 4 KiB"},          {open_, "readable by others (mode 644)"},
        {group, "readable by others (mode 640)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CU_ASSERT(refused((pp_config){.ncpus = 0, .secret_file = cases[i][0]}, cases[i][1]));
        CU_ASSERT(error_has(cases[i][0]));
        CU_ASSERT_FATAL(setenv("PP_SECRET_FILE", cases[i][0], 1) == 0);
        CU_ASSERT(refused((pp_config){.ncpus = 0}, cases[i][1]));
        CU_ASSERT(error_has(cases[i][0]));
    }
    unsetenv("PP_SECRET_FILE");
    /* The same bytes in a private file: taken. */
    pp_server *s = cl_track(cl_new(&(pp_config){.ncpus = 0, .secret_file = good,
                                                 .log_level = "error"}));
    CU_ASSERT_PTR_NOT_NULL(s);
    unlink(fifo);
    unlink(huge);
}

/* ---- certificate, key and CA files ---- */

/* Each of the three files in turn replaced by a FIFO, /dev/zero, a
 * directory, a file over 1 MiB, or with a mode that lets others change it
 * (or read the key): refused naming it, no hang.  The good three are
 * taken. */
static void test_cert_files(void)
{
    char dir[300], crt[320], key[320], ca[320], fifo[320], big[320];
    in_tmp(dir, sizeof dir, "certs");
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    if (certs_make(dir) != 0) {
        printf("skipped: no openssl program to make certificates ");
        return;
    }
    snprintf(crt, sizeof crt, "%s/client.crt", dir);
    snprintf(key, sizeof key, "%s/client.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo.pem", dir);
    snprintf(big, sizeof big, "%s/big.pem", dir);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    CU_ASSERT_FATAL(make_file(big, (1u << 20) + 1, 'A', 0600) == 0);
    pp_config good = {.ncpus = 0, .secret = SECRET, .tls_cert = crt, .tls_key = key,
                      .tls_ca = ca, .ppservers = ARGS("127.0.0.1:1"), .log_level = "error"};
    const char *const bad[][2] = {
        {fifo, "is not a regular file"},
        {"/dev/zero", "is not a regular file"},
        {dir, "is not a regular file"},
        {big, "is larger than 1048576 bytes"},
    };
    for (int which = 0; which < 3; which++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            pp_config c = good;
            const char **slot = which == 0 ? &c.tls_cert : which == 1 ? &c.tls_key : &c.tls_ca;
            *slot = bad[i][0];
            CU_ASSERT(refused(c, bad[i][1]));
            CU_ASSERT(error_has(bad[i][0]));
        }
    /* Each file where another is expected: OpenSSL's reason, naming it. */
    pp_config swapped = good;
    swapped.tls_cert = key;
    CU_ASSERT(refused(swapped, key));
    swapped = good;
    swapped.tls_key = ca;
    CU_ASSERT(refused(swapped, ca));
    swapped = good;
    swapped.tls_ca = key;
    CU_ASSERT(refused(swapped, key));
    /* Modes: a key others may read, a CA or certificate others may write
     * (whoever writes it chooses whom the client trusts): refused; a key
     * its group may read (Debian's ssl-cert): taken. */
    CU_ASSERT_FATAL(chmod(key, 0604) == 0);
    CU_ASSERT(refused(good, "others may read or write the key (mode 604)"));
    CU_ASSERT_FATAL(chmod(key, 0640) == 0 && chmod(ca, 0646) == 0);
    CU_ASSERT(refused(good, "others may write the CA file (mode 646)"));
    CU_ASSERT_FATAL(chmod(ca, 0644) == 0 && chmod(crt, 0602) == 0);
    CU_ASSERT(refused(good, "others may write the certificate (mode 602)"));
    CU_ASSERT_FATAL(chmod(crt, 0644) == 0);
    pp_server *s = cl_track(cl_new(&good));
    CU_ASSERT_PTR_NOT_NULL(s);
    unlink(fifo);
    unlink(big);
}

/* A nodes file of binary garbage (every byte but NUL and newline, then
 * an escape sequence that would retitle a terminal): refused with the
 * line, the message printable. */
static void test_file_garbage(void)
{
    char path[300], entry[320], text[300];
    in_tmp(path, sizeof path, "nodes-garbage");
    snprintf(entry, sizeof entry, "@%s", path);
    size_t n = 0;
    for (int c = 255; c >= 1; c--)
        if (c != '\n' && c != '#')
            text[n++] = (char)c;
    text[n++] = '\n';
    text[n] = 0;
    const char *const lines[] = {text, "\x1b]0;owned\x07:1\n", "node\r\x1b[1A:1\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT(write(fd, lines[i], strlen(lines[i])) == (ssize_t)strlen(lines[i]));
        close(fd);
        CU_ASSERT(refused((pp_config){.ncpus = 0, .ppservers = ARGS(entry), .secret = SECRET},
                          "line 1: "));
        for (const char *c = pp_last_error(); *c; c++)
            CU_ASSERT(*c >= 0x20 && *c < 0x7f);
    }
}

/* A nodes file of 100 MB (sparse: zeros) and one of a single 10 MB line:
 * refused by their size before a byte is read. */
static void test_file_huge(void)
{
    char path[300], entry[320];
    in_tmp(path, sizeof path, "nodes-huge");
    snprintf(entry, sizeof entry, "@%s", path);
    CU_ASSERT_FATAL(make_file(path, 100u << 20, 0, 0644) == 0);
    CU_ASSERT(refused((pp_config){.ncpus = 0, .ppservers = ARGS(entry), .secret = SECRET},
                      "larger than 1048576 bytes"));
    CU_ASSERT_FATAL(make_file(path, 10u << 20, 'n', 0644) == 0);
    CU_ASSERT(refused((pp_config){.ncpus = 0, .ppservers = ARGS(entry), .secret = SECRET},
                      "larger than 1048576 bytes"));
    unlink(path);
}

/* ---- a nodes file that will not hold still ---- */

/* Writes text to path through a new file renamed over it. */
static int replace_with(const char *path, const char *text)
{
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    return close(fd) == 0 && ok ? rename(tmp, path) : -1;
}

/* The file flips every few milliseconds for 3 s among the good list, a
 * garbage line, a FIFO, a symbolic link to /dev/zero, nothing at all and
 * an empty file, while jobs run: no hang, no crash, the node stays and
 * every job ends done there; once the file holds still it is read. */
static void test_file_flipping(void)
{
    srv_harness *a = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    char na[64], path[300], entry[320], good[80], tmp[320];
    cl_node_name(a, na, sizeof na);
    in_tmp(path, sizeof path, "nodes-flipping");
    snprintf(good, sizeof good, "%s\n", na);
    CU_ASSERT_FATAL(replace_with(path, good) == 0);
    snprintf(entry, sizeof entry, "@%s", path);
    pp_server *s = cl_track(cl_new(&(pp_config){.ncpus = 0, .ppservers = ARGS(entry),
                                                 .secret = a->secret, .log_level = "error"}));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(cl_wait_up(s, a, 10));
    snprintf(tmp, sizeof tmp, "%s.odd", path);
    pp_job *jobs[64] = {0};
    int n = 0, flips = 0;
    for (double end = now_s() + 3; now_s() < end && flips < 100000; flips++) {
        unlink(tmp);
        switch (flips % 6) {
        case 0: CU_ASSERT(replace_with(path, good) == 0); break;
        case 1: CU_ASSERT(replace_with(path, "no such:port\n") == 0); break;
        case 2: CU_ASSERT(mkfifo(tmp, 0644) == 0 && rename(tmp, path) == 0); break;
        case 3: CU_ASSERT(symlink("/dev/zero", tmp) == 0 && rename(tmp, path) == 0); break;
        case 4: unlink(path); break;
        default: CU_ASSERT(replace_with(path, "") == 0); break;
        }
        if (flips % 50 == 0 && n < 64) {
            jobs[n] = pp_submitf(s, t_square, NULL, "l", (long)n);
            n++;
        }
        sleep_s(0.003);
    }
    CU_ASSERT(replace_with(path, good) == 0);
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, n, 60), n);
    for (int i = 0; i < n; i++) {
        long r = -1;
        CU_ASSERT(jobs[i] && pp_job_status(jobs[i]) == PP_DONE &&
                  pp_job_unpack(jobs[i], "l", &r) == 0 && r == (long)i * i);
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(cl_node_state(s, na), PP_NODE_UP);
    CU_ASSERT(squares_on(s, 2, na));
    unlink(tmp);
}

/* ---- ppserver's configuration file ---- */

/* Waits (at most 10 s) until the log of h has `n` lines with `needle`. */
static int wait_log(const srv_harness *h, const char *needle, int n)
{
    const char *const needles[] = {needle, NULL};
    for (double end = now_s() + 10; now_s() < end; sleep_s(0.05))
        if (srv_log_count(h, needles) >= n)
            return 1;
    fprintf(stderr, "\n    no %d log lines with \"%s\"\n", n, needle);
    return 0;
}

/* ppserver re-reads its configuration file on SIGHUP: replaced by a FIFO
 * (that no process writes) or by a link to /dev/zero, it is refused and
 * logged; the node goes on serving, and a good file is read again. */
static void test_conf_reload(void)
{
    char conf[300], tmp[320];
    in_tmp(conf, sizeof conf, "ppserver.conf");
    snprintf(tmp, sizeof tmp, "%s.odd", conf);
    CU_ASSERT_FATAL(replace_with(conf, "workers 1\n") == 0);
    srv_harness *a = cl_server_start(&(srv_opts){.args = ARGS("-c", conf)});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    pp_server *s = client_of(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char na[64];
    cl_node_name(a, na, sizeof na);
    CU_ASSERT_FATAL(mkfifo(tmp, 0644) == 0 && rename(tmp, conf) == 0);
    CU_ASSERT_FATAL(kill(a->pid, SIGHUP) == 0);
    CU_ASSERT(wait_log(a, "not a regular file; nothing changed", 1));
    CU_ASSERT(squares_on(s, 2, na));
    CU_ASSERT_FATAL(symlink("/dev/zero", tmp) == 0 && rename(tmp, conf) == 0);
    CU_ASSERT_FATAL(kill(a->pid, SIGHUP) == 0);
    CU_ASSERT(wait_log(a, "not a regular file; nothing changed", 2));
    CU_ASSERT(squares_on(s, 2, na));
    /* A NUL byte cuts no setting short: refused as well. */
    CU_ASSERT_FATAL(unlink(conf) == 0);
    int fd = open(conf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(write(fd, "workers 2\0junk\n", 15) == 15);
    close(fd);
    CU_ASSERT_FATAL(kill(a->pid, SIGHUP) == 0);
    CU_ASSERT(wait_log(a, "a NUL byte; nothing changed", 1));
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, na, &ni) == 0 && ni.ncpus == 1);
    CU_ASSERT(squares_on(s, 2, na));
    CU_ASSERT(srv_alive(a));
}

/* ---- leftovers in $TMPDIR ---- */

/* A pid that no process has now (a child that has exited and been reaped);
 * -1 when none could be made. */
static int dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    return pid > 0 && waitpid(pid, NULL, 0) == pid ? pid : -1;
}

/* Entries planted in a private $TMPDIR as leftovers of dead processes: the
 * next program's sweep removes only its own user's empty-but-for-FIFOs
 * directories of mode 0700 whose process is gone; it follows no symbolic
 * link, removes nothing else (a victim file named by a link, a directory
 * of another user, of a live process, of another mode, a file beside the
 * FIFOs) and still starts its workers. */
static void test_leftover_plants(void)
{
    char sweep[300], victim[300], p[420], vdir[300];
    in_tmp(sweep, sizeof sweep, "sweep");
    in_tmp(victim, sizeof victim, "victim");
    in_tmp(vdir, sizeof vdir, "victim-dir");
    CU_ASSERT_FATAL(mkdir(sweep, 0700) == 0 && mkdir(vdir, 0700) == 0);
    CU_ASSERT_FATAL(make_file(victim, 10, 'v', 0600) == 0);
    int dead = dead_pid();
    CU_ASSERT_FATAL(dead > 0);
    static const char *const kinds[] = {"linkreq", "symdir", "other", "alive", "mode", "extra",
                                        "plain"};
    char d[7][400];
    for (int i = 0; i < 7; i++)
        snprintf(d[i], sizeof d[i], "%s/pp-%d-%.6s", sweep, i == 3 ? (int)getppid() : dead,
                 kinds[i]);
    /* Its "req" a link to the victim: the link may go, never the victim. */
    snprintf(p, sizeof p, "%s/req", d[0]);
    CU_ASSERT_FATAL(mkdir(d[0], 0700) == 0 && symlink(victim, p) == 0);
    /* The directory itself a link to another, whose FIFOs must stay. */
    snprintf(p, sizeof p, "%s/req", vdir);
    CU_ASSERT_FATAL(mkfifo(p, 0600) == 0 && symlink(vdir, d[1]) == 0);
    int root = geteuid() == 0;
    CU_ASSERT_FATAL(mkdir(d[2], 0700) == 0 && (!root || chown(d[2], 65534, 65534) == 0));
    CU_ASSERT_FATAL(mkdir(d[3], 0700) == 0);
    CU_ASSERT_FATAL(mkdir(d[4], 0755) == 0);
    snprintf(p, sizeof p, "%s/req", d[5]);
    CU_ASSERT_FATAL(mkdir(d[5], 0700) == 0 && mkfifo(p, 0600) == 0);
    snprintf(p, sizeof p, "%s/keep", d[5]);
    CU_ASSERT_FATAL(make_file(p, 3, 'k', 0600) == 0);
    snprintf(p, sizeof p, "%s/req", d[6]);
    CU_ASSERT_FATAL(mkdir(d[6], 0700) == 0 && mkfifo(p, 0600) == 0);
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    CU_ASSERT_FATAL(setenv("TMPDIR", sweep, 1) == 0);
    pp_server *s = cl_new(&(pp_config){.ncpus = 1, .log_level = "error"});
    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cl_track(s));
    struct stat st;
    CU_ASSERT(stat(victim, &st) == 0 && st.st_size == 10);
    snprintf(p, sizeof p, "%s/req", vdir);
    CU_ASSERT(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode));
    CU_ASSERT(lstat(d[1], &st) == 0 && S_ISLNK(st.st_mode));
    for (int i = 2; i <= 4; i++)
        CU_ASSERT(lstat(d[i], &st) == 0 && S_ISDIR(st.st_mode));
    snprintf(p, sizeof p, "%s/keep", d[5]);
    CU_ASSERT(lstat(p, &st) == 0 && S_ISREG(st.st_mode));
    CU_ASSERT(lstat(d[6], &st) != 0 && errno == ENOENT); /* the one true leftover */
    pp_job *j = pp_submitf(s, t_square, NULL, "l", 7L);
    long r = 0;
    CU_ASSERT(j && pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "l", &r) == 0 &&
              r == 49);
    pp_job_free(j);
}

/* A log level from PP_LOG (or pp_config.log_level) that is no level:
 * refused, the text quoted with no byte a terminal acts on. */
static void test_log_level_bad(void)
{
    CU_ASSERT_FATAL(setenv("PP_LOG", "\x1b]0;owned\x07" "debug", 1) == 0);
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 1}); /* log_level NULL: PP_LOG */
    unsetenv("PP_LOG");
    CU_ASSERT_PTR_NULL(s);
    pp_server_free(s);
    CU_ASSERT(error_has("unknown log level \"\\x1b]0;owned\\x07debug\""));
    const char *e = pp_last_error();
    int printable = 1;
    for (const char *c = e; *c; c++)
        printable = printable && *c >= 0x20 && *c < 0x7f;
    CU_ASSERT(printable);
    CU_ASSERT(refused((pp_config){.ncpus = 1, .log_level = "verbose\n"}, "\"verbose\\x0a\""));
}

/* $TMPDIR that is no directory to make FIFOs in (missing, a file, a
 * FIFO): pp_server_new() with local workers fails at once naming it. */
static void test_tmpdir_bad(void)
{
    char file[300], fifo[300], missing[300];
    in_tmp(file, sizeof file, "tmpdir-file");
    in_tmp(fifo, sizeof fifo, "tmpdir-fifo");
    in_tmp(missing, sizeof missing, "tmpdir-missing/below");
    CU_ASSERT_FATAL(make_file(file, 3, 'f', 0600) == 0 && mkfifo(fifo, 0600) == 0);
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    const char *const dirs[] = {missing, file, fifo};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        CU_ASSERT_FATAL(setenv("TMPDIR", dirs[i], 1) == 0);
        CU_ASSERT(refused((pp_config){.ncpus = 1}, "cannot create a FIFO directory in"));
        CU_ASSERT(error_has(dirs[i]));
    }
    /* A name no directory has: the reason still shows, the bytes quoted. */
    char longname[5000];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CU_ASSERT_FATAL(setenv("TMPDIR", longname, 1) == 0);
    CU_ASSERT(refused((pp_config){.ncpus = 1}, "is too long"));
    CU_ASSERT_FATAL(setenv("TMPDIR", "/nonexistent/\x1b[2J", 1) == 0);
    CU_ASSERT(refused((pp_config){.ncpus = 1}, "/nonexistent/\\x1b[2J: No such file"));
    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
}

/* ---- suites ---- */

static int suite_init(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/pp-inputs-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    if (tmpdir[0])
        rm_tree(tmpdir);
    tmpdir[0] = 0;
    return 0;
}

static const pp_test name_tests[] = {
    {"names: host ranges, control bytes, ports, IPv6 forms refused", test_names_refused},
    {"names: IPv6 literals in brackets", test_names_ipv6},
    {"names: 100,000 entries in the list and in PP_SERVERS", test_names_huge_list},
    {NULL, NULL},
};
static const pp_test file_tests[] = {
    {"secret files: FIFO, device, link, directory, huge, modes", test_secret_files},
    {"certificate, key, CA: FIFO, device, directory, huge, swapped", test_cert_files},
    {"nodes file of binary garbage and escape sequences", test_file_garbage},
    {"nodes file of 100 MB, of one 10 MB line", test_file_huge},
    {"nodes file flipping every few ms while jobs run", test_file_flipping},
    {"ppserver's configuration file: a FIFO, /dev/zero, a NUL at SIGHUP", test_conf_reload},
    {"leftovers planted in TMPDIR", test_leftover_plants},
    {"TMPDIR missing, a file, a FIFO", test_tmpdir_bad},
    {"PP_LOG of control bytes", test_log_level_bad},
    {NULL, NULL},
};

int pp_register_suites(void)
{
    if (!srv_exe() || cl_suite_env() != 0) {
        printf("skipped: $PP_SERVER, $PP_WORKER or $PP_TEST_TASKS is not set\n");
        exit(77);
    }
    return pp_add_suite_with("names", suite_init, suite_clean, NULL, test_teardown,
                             name_tests) ||
                   pp_add_suite_with("files", suite_init, suite_clean, NULL, test_teardown,
                                     file_tests)
               ? -1
               : 0;
}
