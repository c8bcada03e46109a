/* SPDX-License-Identifier: MIT */
/* test_net.c -- pp_net: host:port parsing, listening on 127.0.0.1, a
 * non-blocking connect and accept, data both ways, refused connections and
 * names that do not resolve.  Only 127.0.0.1 is used; every wait is a poll()
 * with a timeout. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_net.h"

#define DEFPORT 60000

/* ---- pp_net_parse_hostport ---- */

/* Parses s; on success checks host and port. */
static void parse_ok(const char *s, const char *want_host, int want_port)
{
    char host[256] = "untouched", err[PP_ERR_LEN] = "";
    int port = -7;
    int rc = pp_net_parse_hostport(s, DEFPORT, host, sizeof host, &port, err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n  parse \"%s\" failed: %s\n", s, err);
        return;
    }
    CU_ASSERT_STRING_EQUAL(host, want_host);
    CU_ASSERT_EQUAL(port, want_port);
}

/* Parses s expecting a failure whose text quotes the input (its first
 * `mention` bytes when the whole would not fit the error buffer). */
static void parse_bad(const char *s, size_t mention)
{
    char host[256], err[PP_ERR_LEN] = "";
    int port = -7;
    int rc = pp_net_parse_hostport(s, DEFPORT, host, sizeof host, &port, err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT(err[0] != 0);
    char want[PP_ERR_LEN];
    snprintf(want, sizeof want, "\"%.*s", (int)PP_MIN(mention, sizeof want - 2), s);
    if (!strstr(err, want)) {
        CU_FAIL("error text does not quote the input");
        fprintf(stderr, "\n  input \"%s\": error \"%s\"\n", s, err);
    }
}

static void test_parse_good(void)
{
    parse_ok("host", "host", DEFPORT);
    parse_ok("host:1", "host", 1);
    parse_ok("host:65535", "host", 65535);
    parse_ok("[::1]:8080", "::1", 8080);
    parse_ok("[::1]", "::1", DEFPORT);
    parse_ok("127.0.0.1:60001", "127.0.0.1", 60001);
    parse_ok("node-7.example.org", "node-7.example.org", DEFPORT);
}

static void test_parse_default_port(void)
{
    char host[64], err[PP_ERR_LEN] = "";
    int port = -1;
    CU_ASSERT_EQUAL(pp_net_parse_hostport("alpha", 1234, host, sizeof host, &port, err), 0);
    CU_ASSERT_STRING_EQUAL(host, "alpha");
    CU_ASSERT_EQUAL(port, 1234);
    CU_ASSERT_EQUAL(pp_net_parse_hostport("[fe80::1]", 4321, host, sizeof host, &port, err), 0);
    CU_ASSERT_STRING_EQUAL(host, "fe80::1");
    CU_ASSERT_EQUAL(port, 4321);
    /* An explicit port wins over the default. */
    CU_ASSERT_EQUAL(pp_net_parse_hostport("alpha:99", 1234, host, sizeof host, &port, err), 0);
    CU_ASSERT_EQUAL(port, 99);
}

static void test_parse_bad(void)
{
    parse_bad("h:0", 3);
    parse_bad("h:65536", 7);
    parse_bad("h:x", 3);
    parse_bad("h:", 2);
    parse_bad("h:80x", 5);
    parse_bad("h:-1", 4);
    parse_bad(":80", 3);
    parse_bad("a:b:c", 5);  /* IPv6 without brackets */
    parse_bad("::1", 3);
    parse_bad("[::1", 4);
    parse_bad("[::1]x", 6);
    parse_bad("[::1]:", 6);
    parse_bad("[::1]:0", 7);
    parse_bad("[]:80", 5);
    parse_bad("[]", 2);

    /* A 300-character host does not fit a 256-byte host buffer; the text
     * quotes as much of it as the error buffer holds. */
    char longhost[310];
    memset(longhost, 'a', 300);
    strcpy(longhost + 300, ":80");
    parse_bad(longhost, 100);
    longhost[300] = 0;
    parse_bad(longhost, 100);
}

static void test_parse_empty(void)
{
    char host[64], err[PP_ERR_LEN] = "";
    int port = -7;
    CU_ASSERT_EQUAL(pp_net_parse_hostport("", DEFPORT, host, sizeof host, &port, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));
    err[0] = 0;
    CU_ASSERT_EQUAL(pp_net_parse_hostport(NULL, DEFPORT, host, sizeof host, &port, err), -1);
    CU_ASSERT(err[0] != 0);
    CU_ASSERT_EQUAL(port, -7); /* untouched on failure */
}

/* The host buffer bounds the host: exactly hostlen - 1 bytes fit. */
static void test_parse_hostlen(void)
{
    char host[5], err[PP_ERR_LEN] = "";
    int port = 0;
    CU_ASSERT_EQUAL(pp_net_parse_hostport("abcd:7", DEFPORT, host, sizeof host, &port, err), 0);
    CU_ASSERT_STRING_EQUAL(host, "abcd");
    CU_ASSERT_EQUAL(port, 7);
    CU_ASSERT_EQUAL(pp_net_parse_hostport("abcde:7", DEFPORT, host, sizeof host, &port, err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "abcde"));
}

/* ---- sockets ---- */

/* Waits for `events` on fd for at most ms milliseconds; the revents. */
static short wait_fd(int fd, short events, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (int i = 0; i < 10; i++) {
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return pfd.revents;
        if (n == 0 || errno != EINTR)
            return 0;
    }
    return 0;
}

static int local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 || sa.sin_family != AF_INET)
        return -1;
    return ntohs(sa.sin_port);
}

/* Reads exactly n bytes within a few seconds. */
static int read_all(int fd, char *buf, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 100 && got < n; i++) {
        if (!(wait_fd(fd, POLLIN, 2000) & POLLIN))
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR))
            break;
    }
    return got == n ? 0 : -1;
}

static void test_listen_port0(void)
{
    char err[PP_ERR_LEN] = "";
    int bound = -1;
    int lfd = pp_net_listen("127.0.0.1", 0, 16, &bound, err);
    CU_ASSERT_FATAL(lfd >= 0);
    CU_ASSERT(bound > 0 && bound <= 65535);
    CU_ASSERT_EQUAL(local_port(lfd), bound);
    /* Nobody is waiting: accept says EAGAIN (non-blocking). */
    char peer[64];
    errno = 0;
    CU_ASSERT_EQUAL(pp_net_accept(lfd, peer, sizeof peer), -1);
    CU_ASSERT(errno == EAGAIN || errno == EWOULDBLOCK);

    /* The same port again: refused, with a message naming it. */
    int bound2 = -1;
    err[0] = 0;
    int again = pp_net_listen("127.0.0.1", bound, 16, &bound2, err);
    CU_ASSERT_EQUAL(again, -1);
    if (again >= 0)
        close(again);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", bound);
    CU_ASSERT(err[0] != 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, portstr));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "127.0.0.1"));
    close(lfd);
}

static void test_connect_accept_data(void)
{
    char err[PP_ERR_LEN] = "";
    int bound = -1;
    int lfd = pp_net_listen("127.0.0.1", 0, 16, &bound, err);
    CU_ASSERT_FATAL(lfd >= 0);

    int cfd = pp_net_connect("127.0.0.1", bound, err);
    CU_ASSERT_FATAL(cfd >= 0);
    CU_ASSERT(wait_fd(cfd, POLLOUT, 5000) & POLLOUT);
    CU_ASSERT_EQUAL(pp_net_connect_result(cfd), 0);

    CU_ASSERT(wait_fd(lfd, POLLIN, 5000) & POLLIN);
    char peer[64] = "";
    int afd = -1;
    for (int i = 0; i < 50 && afd < 0; i++) {
        afd = pp_net_accept(lfd, peer, sizeof peer);
        if (afd < 0 && errno != EAGAIN && errno != EINTR)
            break;
        if (afd < 0)
            wait_fd(lfd, POLLIN, 100);
    }
    CU_ASSERT_FATAL(afd >= 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", local_port(cfd));
    CU_ASSERT_STRING_EQUAL(peer, want);

    /* Client to server, then server to client. */
    static const char ping[] = "ping from the client";
    static const char pong[] = "pong from the server, a little longer";
    char buf[64];
    CU_ASSERT_EQUAL(write(cfd, ping, sizeof ping), (ssize_t)sizeof ping);
    CU_ASSERT_EQUAL(read_all(afd, buf, sizeof ping), 0);
    CU_ASSERT_EQUAL(memcmp(buf, ping, sizeof ping), 0);
    CU_ASSERT_EQUAL(write(afd, pong, sizeof pong), (ssize_t)sizeof pong);
    CU_ASSERT_EQUAL(read_all(cfd, buf, sizeof pong), 0);
    CU_ASSERT_EQUAL(memcmp(buf, pong, sizeof pong), 0);

    /* The client closes: the server reads end of file. */
    close(cfd);
    CU_ASSERT(wait_fd(afd, POLLIN, 5000) & (POLLIN | POLLHUP));
    CU_ASSERT_EQUAL(read(afd, buf, sizeof buf), 0);
    close(afd);
    close(lfd);
}

static void test_connect_refused(void)
{
    char err[PP_ERR_LEN] = "";
    int bound = -1;
    int lfd = pp_net_listen("127.0.0.1", 0, 16, &bound, err);
    CU_ASSERT_FATAL(lfd >= 0);
    close(lfd); /* nobody listens there now */

    err[0] = 0;
    int cfd = pp_net_connect("127.0.0.1", bound, err);
    if (cfd < 0) {
        /* Refused at once. */
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot connect"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, strerror(ECONNREFUSED)));
    } else {
        short ev = wait_fd(cfd, POLLOUT, 5000);
        CU_ASSERT(ev != 0);
        CU_ASSERT_EQUAL(pp_net_connect_result(cfd), ECONNREFUSED);
        close(cfd);
    }
}

static void test_connect_unresolvable(void)
{
    char err[PP_ERR_LEN] = "";
    int fd = pp_net_connect("no-such-host.invalid", 80, err);
    CU_ASSERT_EQUAL(fd, -1);
    if (fd >= 0)
        close(fd);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot resolve"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no-such-host.invalid"));

    int bound = -1;
    err[0] = 0;
    fd = pp_net_listen("no-such-host.invalid", 0, 16, &bound, err);
    CU_ASSERT_EQUAL(fd, -1);
    if (fd >= 0)
        close(fd);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot resolve"));
}

int pp_register_suites(void)
{
    static const pp_test parse[] = {
        {"host, host:port, [v6]:port, [v6]", test_parse_good},
        {"the default port applies without one", test_parse_default_port},
        {"bad addresses are refused, quoting the input", test_parse_bad},
        {"empty and NULL", test_parse_empty},
        {"the host buffer bounds the host", test_parse_hostlen},
        {NULL, NULL},
    };
    static const pp_test sock[] = {
        {"listen on port 0; the same port twice fails", test_listen_port0},
        {"connect, accept, peer text, data both ways", test_connect_accept_data},
        {"a closed port is refused", test_connect_refused},
        {"a name that does not resolve", test_connect_unresolvable},
        {NULL, NULL},
    };
    if (pp_add_suite("pp_net parse", NULL, NULL, parse) != 0 ||
        pp_add_suite("pp_net sockets", NULL, NULL, sock) != 0)
        return -1;
    return 0;
}
