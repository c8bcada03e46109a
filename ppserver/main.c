/* SPDX-License-Identifier: MIT */
/* main.c -- ppserver: a pp node.  Options (defaults < configuration file <
 * environment < command line), the secret, pidfile, daemon mode, signals,
 * exit codes (sysexits.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "pp.h"
#include "pp_auth.h"
#include "pp_conf.h"
#include "pp_module.h"
#include "pp_tags.h"
#include "pp_zpolicy.h"
#include "announce.h"
#include "metrics.h"
#include "server.h"

#define O(field) offsetof(srv_cfg, field)

/* One table: the command line, the configuration file and --help. */
static const pp_conf_opt options[] = {
    {"port", 'p', PP_CONF_INT, O(port), 0, 65535, "PORT",
     "TCP port to listen on (default 60000; 0 = any free port)"},
    {"interface", 'i', PP_CONF_STR, O(interface), 0, 0, "ADDR",
     "address to listen on (default: all interfaces)"},
    {"secret", 's', PP_CONF_STR, O(secret), 0, 0, "SECRET",
     "shared secret (visible in the process list: prefer --secret-file)"},
    {"secret-file", 0, PP_CONF_STR, O(secret_file), 0, 0, "FILE",
     "read the shared secret from FILE (must not be readable by others); \"-\" = "
     "from standard input, to its end"},
    {"workers", 'w', PP_CONF_INT, O(workers), -1, 4096, "N",
     "worker processes (default: the CPUs available)"},
    {"timeout", 't', PP_CONF_DOUBLE, O(idle_timeout), 0, 1e9, "SECONDS",
     "close client connections idle this long (default 3600; 0 = never)"},
    {"idle-exit", 0, PP_CONF_DOUBLE, O(idle_exit), 0, 1e9, "SECONDS",
     "exit (status 0) once no client has been connected this long, counted from the "
     "start (default 0 = never); a client whose connection libpp closed as idle "
     "(dormant) is no client"},
    {"config", 'c', PP_CONF_STR, O(config), 0, 0, "FILE",
     "read settings from FILE (keys are the long option names)"},
    {"pidfile", 'P', PP_CONF_STR, O(pidfile), 0, 0, "FILE", "write the process id to FILE"},
    {"debug", 'd', PP_CONF_BOOL, O(debug), 0, 0, "",
     "log at debug level (same as --log-level debug)"},
    {"daemon", 'D', PP_CONF_BOOL, O(daemonize), 0, 0, "",
     "run in the background as a daemon (logs go to --log-file)"},
    {"cache-dir", 0, PP_CONF_STR, O(cache_dir), 0, 0, "DIR",
     "module cache (default: ~/.cache/ppserver, /var/cache/ppserver as root)"},
    {"cache-max-mib", 0, PP_CONF_INT, O(cache_max_mib), 0, 1048576, "MIB",
     "module cache limit: least recently used modules not in use are evicted "
     "(default 1024; 0 = no limit)"},
    {"port-file", 0, PP_CONF_STR, O(port_file), 0, 0, "FILE",
     "write the port actually bound to FILE (useful with -p 0)"},
    {"log-file", 0, PP_CONF_STR, O(log_file), 0, 0, "FILE", "log to FILE (default: stderr)"},
    {"log-level", 0, PP_CONF_STR, O(log_level), 0, 0, "LEVEL",
     "error, warn, info (default) or debug"},
    {"log-format", 0, PP_CONF_STR, O(log_format), 0, 0, "FORMAT",
     "text (default) or json: one JSON object per line (time, level, program, pid, "
     "message)"},
    {"max-frame-mib", 0, PP_CONF_DOUBLE, O(max_frame_mib), 1, 3072, "MIB",
     "largest job argument or result (default 1024)"},
    {"handshake-timeout", 0, PP_CONF_DOUBLE, O(handshake_timeout), 0.05, 3600, "SECONDS",
     "total time allowed for a client's handshake (default 10)"},
    {"heartbeat", 0, PP_CONF_DOUBLE, O(heartbeat), 0.05, 3600, "SECONDS",
     "a client with jobs here silent (no frame) this long gets a PING; one with none, "
     "after 0.6 x --dead-after (default 1)"},
    {"dead-after", 0, PP_CONF_DOUBLE, O(dead_after), 0.1, 86400, "SECONDS",
     "close a client silent this long (default 10)"},
    {"max-connections", 0, PP_CONF_INT, O(max_connections), 1, 100000, "N",
     "connections at most (default 256)"},
    {"max-unauthenticated", 0, PP_CONF_INT, O(max_unauth), 1, 100000, "N",
     "connections still in their handshake at most; the oldest goes (default 64)"},
    {"max-per-address", 0, PP_CONF_INT, O(max_per_address), 1, 100000, "N",
     "connections from one address at most (default 64)"},
    {"auth-delay", 0, PP_CONF_DOUBLE, O(auth_delay), 0, 10, "SECONDS",
     "delay before refusing a wrong inner proof (default 0.2; over TLS a wrong secret "
     "already fails the TLS handshake, refused at once)"},
    {"max-queue", 0, PP_CONF_INT, O(max_queue), 1, 10000000, "N",
     "jobs queued per client before its socket is no longer read (default 8192)"},
    {"max-output-mib", 0, PP_CONF_DOUBLE, O(max_output_mib), 1, 65536, "MIB",
     "results waiting for a client that does not read them, at most (default 256)"},
    {"job-memory-mib", 0, PP_CONF_INT, O(job_memory_mib), 0, 1 << 24, "MIB",
     "virtual memory of each worker, its task included (RLIMIT_AS; default 0 = "
     "no limit; at least 64)"},
    {"max-jobs-per-worker", 0, PP_CONF_INT, O(max_jobs_per_worker), 0, 1 << 30, "N",
     "replace a worker once it has run N jobs, a fresh process for the next ones (as "
     "Parallel Python's ppserver -r did after every job; default 0 = never)"},
    {"max-auth-failures", 0, PP_CONF_INT, O(max_auth_failures), 0, 1000000, "N",
     "wrong secrets from one address within --auth-lockout before it is refused "
     "(default 20; 0 = never)"},
    {"auth-lockout", 0, PP_CONF_DOUBLE, O(auth_lockout), 1, 86400, "SECONDS",
     "how long such an address is refused, and the window failures count in "
     "(default 60)"},
    {"worker-env", 0, PP_CONF_STR, O(worker_env), 0, 0, "NAME[,NAME...]",
     "pass these environment variables to the workers too (repeatable; e.g. "
     "LD_PRELOAD for task modules built with -fsanitize=address)"},
    {"tag", 0, PP_CONF_LIST, O(tags), 0, 0, "NAME[,NAME...]",
     "a tag of this node, told to authenticated clients: jobs that need it "
     "(pp_submit_opts.tags) run only on nodes that have it (repeatable; at most 32 "
     "tags of 1 to 32 characters A-Z a-z 0-9 _ . -)"},
    {"session-budget-mib", 0, PP_CONF_DOUBLE, O(session_budget_mib), 1, 1 << 22, "MIB",
     "job bytes (as inflated) one client may have here -- queued, waiting for their "
     "module, running -- before its further jobs wait; also its largest job "
     "(default 1024)"},
    {"server-budget-mib", 0, PP_CONF_DOUBLE, O(server_budget_mib), 1, 1 << 24, "MIB",
     "the same for all clients together (default 2048)"},
    {"module-timeout", 0, PP_CONF_DOUBLE, O(module_timeout), 0.1, 86400, "SECONDS",
     "jobs waiting this long for the module their client was asked for end PP_ELOAD "
     "(default 60)"},
    {"max-pending-modules", 0, PP_CONF_INT, O(max_pending_modules), 1, 100000, "N",
     "modules asked of one client and not sent yet; its jobs naming more end PP_ELOAD "
     "(default 16)"},
    {"max-handshakes-per-address", 0, PP_CONF_INT, O(max_hs_per_address), 1, 100000, "N",
     "connections from one address still in their handshake; its oldest goes (default 8)"},
    {"log-rate", 0, PP_CONF_DOUBLE, O(log_rate), 0, 1e6, "N",
     "log lines of one kind a second, in bursts of up to 20 N; the others are counted in "
     "a summary line (default 10; 0 = no limit)"},
    {"worker-user", 0, PP_CONF_STR, O(worker_user), 0, 0, "USER",
     "run the workers as USER, which they become before loading any module (ppserver "
     "started as root only)"},
    {"no-tls", 0, PP_CONF_BOOL, O(no_tls), 0, 0, "",
     "plaintext connections, for a trusted network only (clients set pp_config.no_tls; "
     "a mismatch is refused)"},
    {"tls-cert", 0, PP_CONF_STR, O(tls_cert), 0, 0, "FILE",
     "this node's certificate (PEM): certificates instead of the secret's key for TLS, "
     "with --tls-key and --tls-ca"},
    {"tls-key", 0, PP_CONF_STR, O(tls_key), 0, 0, "FILE", "its private key (PEM)"},
    {"tls-ca", 0, PP_CONF_STR, O(tls_ca), 0, 0, "FILE",
     "the CA certificate(s) the clients' certificates must chain to (PEM)"},
    {"no-secret", 0, PP_CONF_BOOL, O(no_secret), 0, 0, "",
     "with certificates: no shared secret, the certificates alone authenticate"},
    {"announce", 0, PP_CONF_STR, O(announce), 0, 0, "[ADDR[:PORT]]",
     "announce this node for discovery (clients list \"*\"): a UDP datagram every "
     "--announce-interval, MAC'd with a key from the secret, to ADDR:PORT (default "
     "255.255.255.255:60001; a subnet broadcast, a multicast group 224.0.0.0/4 with "
     "TTL 1, or one address). In the file: announce yes, or announce ADDR[:PORT]"},
    {"announce-interval", 0, PP_CONF_DOUBLE, O(announce_interval), 0.1, 3600, "SECONDS",
     "seconds between announcements (default 2); clients drop a node silent for 3 of them"},
    {"metrics", 0, PP_CONF_STR, O(metrics), 0, 0, "ADDR:PORT",
     "serve Prometheus metrics on http://ADDR:PORT/metrics (numeric address; keep it on "
     "loopback or a management network: no authentication; default off)"},
    {"compress", 0, PP_CONF_STR, O(compress), 0, 0, "MODE",
     "large results to the clients: auto (default: compressed only when the measured "
     "link is slower than the compressor on the data), always (when a sample shrinks by a "
     "third) or never; modules are always compressed"},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL},
};

static volatile sig_atomic_t stop_flag, reload_flag, dump_flag;
static const char *config_path;
/* The handler writes a byte here, which the loop watches: a signal that
 * lands after the loop read the flags and before it sleeps still wakes it
 * (the flags are read before each wait). */
static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        reload_flag = 1;
    else if (sig == SIGUSR1)
        dump_flag = 1;
    else
        stop_flag = 1;
    if (wake_pipe[1] >= 0)
        (void)!write(wake_pipe[1], "", 1); /* full: a wake-up is pending anyway */
    errno = saved;
}

static void on_wake(pp_loop *loop, pp_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    char b[64];
    while (read(io->fd, b, sizeof b) > 0)
        ;
}

/* SIGHUP: the worker count from the configuration file (other settings
 * need a restart).  The new count, or -1. */
static int reload_workers(server *srv)
{
    if (!config_path) {
        pp_log(&srv->log, PP_LOG_WARN, "SIGHUP: no configuration file (-c) to re-read");
        return -1;
    }
    srv_cfg fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.workers = -1;
    char err[PP_ERR_LEN];
    int n = -1;
    if (pp_conf_load(options, &fresh, config_path, err) != 0)
        pp_log(&srv->log, PP_LOG_ERROR, "SIGHUP: %s; nothing changed", err);
    else
        n = fresh.workers < 0 ? pp_ncpus_available() : fresh.workers;
    pp_conf_free(options, &fresh);
    return n;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: ppserver [options]\n"
                "\n"
                "A pp node: runs the jobs of authenticated pp clients on its worker\n"
                "processes.  A secret of at least %d bytes is required (--secret-file,\n"
                "$PP_SECRET, the configuration file, or -s).\n"
                "\n",
            PP_SECRET_MIN);
    pp_conf_help(options, fp);
    fprintf(fp, "  %-30s %s\n", "    --gen-secret FILE", "write a fresh secret to FILE (mode 0600) and exit");
    fprintf(fp, "  %-30s %s\n", "    --version", "print the version and exit");
    fprintf(fp, "  %-30s %s\n", "-h, --help", "this text");
}

static void cfg_defaults(srv_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->port = PP_DEFAULT_PORT;
    c->workers = -1;
    c->idle_timeout = 3600;
    c->max_frame_mib = 1024;
    c->handshake_timeout = 10;
    c->heartbeat = 1;
    c->dead_after = 10;
    c->max_connections = 256;
    c->max_unauth = 64;
    c->max_per_address = 64;
    c->auth_delay = 0.2;
    c->max_queue = 8192;
    c->max_output_mib = 256;
    c->max_auth_failures = 20;
    c->auth_lockout = 60;
    c->session_budget_mib = SRV_SESSION_BUDGET_MIB;
    c->server_budget_mib = SRV_SERVER_BUDGET_MIB;
    c->module_timeout = SRV_MODULE_TIMEOUT;
    c->max_pending_modules = SRV_MAX_PENDING_MODULES;
    c->cache_max_mib = SRV_CACHE_MAX_MIB;
    c->max_hs_per_address = SRV_MAX_HS_PER_ADDRESS;
    c->log_rate = SRV_LOG_RATE;
    c->worker_uid = c->worker_gid = -1;
    c->announce_interval = 2;
}

/* --gen-secret: a fresh secret into a new file of mode 0600. */
static int gen_secret(const char *path)
{
    char hex[65];
    if (pp_auth_gen_secret(hex) != 0) {
        fprintf(stderr, "ppserver: cannot draw random bytes\n");
        return EX_SOFTWARE;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "ppserver: cannot create %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (not overwritten)" : "");
        return EX_CANTCREAT;
    }
    hex[64] = '\n';
    int ok = write(fd, hex, 65) == 65;
    ok &= close(fd) == 0;
    pp_auth_wipe(hex, sizeof hex);
    if (!ok) {
        fprintf(stderr, "ppserver: cannot write %s\n", path);
        unlink(path);
        return EX_IOERR;
    }
    fprintf(stderr, "ppserver: wrote a new secret to %s (mode 0600); copy it to every "
                    "node and client\n", path);
    return EX_OK;
}

/* Writes a small file atomically (a temporary in the same directory, then
 * rename): a reader polling for it sees the whole text or no file.  0, or -1
 * with errno set. */
static int write_file(const char *path, const char *text)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return -1;
    int ok = fputs(text, fp) >= 0;
    ok &= fclose(fp) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

static char *default_cache_dir(void)
{
    char buf[4096];
    const char *home = getenv("HOME");
    if (geteuid() == 0 || !home || !*home)
        snprintf(buf, sizeof buf, "/var/cache/ppserver");
    else
        snprintf(buf, sizeof buf, "%s/.cache/ppserver", home);
    return strdup(buf);
}

/* getopt_long's tables, built from ours.  Options of the table get their
 * short letter or 2000 + their index. */
enum { OPT_GEN = 1000, OPT_VERSION, OPT_TABLE = 2000 };

/* The steps of main() return GO_ON, or the exit code to end with (their
 * message printed): EX_OK too, after --help, --version, --gen-secret. */
#define GO_ON (-1)

static void build_getopt(struct option *lopts, char *shorts)
{
    size_t n = 0;
    strcpy(shorts, "h");
    for (const pp_conf_opt *o = options; o->name; o++, n++) {
        int has = o->kind == PP_CONF_BOOL       ? no_argument
                  : o->offset == O(announce) ? optional_argument
                                             : required_argument;
        lopts[n] = (struct option){o->name, has, NULL,
                                   o->shortc ? o->shortc : (int)(OPT_TABLE + n)};
        if (o->shortc) {
            size_t l = strlen(shorts);
            shorts[l] = (char)o->shortc;
            shorts[l + 1] = 0;
            if (o->kind != PP_CONF_BOOL)
                strcat(shorts, ":");
        }
    }
    lopts[n++] = (struct option){"gen-secret", required_argument, NULL, OPT_GEN};
    lopts[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    lopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    lopts[n] = (struct option){NULL, 0, NULL, 0};
}

/* --announce's address is optional; getopt takes one only as
 * --announce=ADDR, so the next word is taken too unless it is an option. */
static void announce_arg(int c, int argc, char **argv)
{
    for (const pp_conf_opt *o = options; o->name; o++)
        if (o->offset == O(announce) && c == (int)(OPT_TABLE + (o - options)) && !optarg &&
            optind < argc && argv[optind][0] != '-')
            optarg = argv[optind++];
}

/* Pass 1 over argv: --help, --version, --gen-secret (each ends the run),
 * and -c (*config). */
static int first_pass(int argc, char **argv, const struct option *lopts, const char *shorts,
                      const char **config)
{
    int c;
    opterr = 1;
    while ((c = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
        announce_arg(c, argc, argv);
        if (c == 'h') {
            usage(stdout);
            return EX_OK;
        }
        if (c == OPT_VERSION) {
            printf("ppserver %s\n", pp_version());
            return EX_OK;
        }
        if (c == OPT_GEN)
            return gen_secret(optarg);
        if (c == 'c')
            *config = optarg;
        if (c == '?') {
            fprintf(stderr, "ppserver: try --help\n");
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ppserver: unexpected argument \"%s\" (try --help)\n", argv[optind]);
        return EX_USAGE;
    }
    return GO_ON;
}

/* Pass 2: the command line over the file and the environment. */
static int apply_args(int argc, char **argv, const struct option *lopts, const char *shorts,
                      srv_cfg *cfg, int *secret_on_cmdline)
{
    char err[PP_ERR_LEN];
    int env_from_argv = 0, c;
    unsigned char on_argv[PP_ARRAY_LEN(options)] = {0};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
        announce_arg(c, argc, argv);
        const pp_conf_opt *o = NULL;
        for (const pp_conf_opt *p = options; p->name; p++)
            if (p->shortc ? p->shortc == c : c == (int)(OPT_TABLE + (p - options)))
                o = p;
        if (!o || o->offset == O(config))
            continue;
        if (o->kind == PP_CONF_LIST && !on_argv[o - options]) {
            /* The command line's list replaces the file's; its repeats add up. */
            char **field = (char **)((char *)cfg + o->offset);
            free(*field);
            *field = NULL;
        }
        on_argv[o - options] = 1;
        char *joined = NULL;
        if (o->offset == O(worker_env) && env_from_argv && cfg->worker_env) {
            /* Repeated: the lists add up. */
            size_t len = strlen(cfg->worker_env) + strlen(optarg) + 2;
            if ((joined = malloc(len)))
                snprintf(joined, len, "%s,%s", cfg->worker_env, optarg);
        }
        env_from_argv |= o->offset == O(worker_env);
        const char *value = joined                   ? joined
                            : o->kind == PP_CONF_BOOL || !optarg ? "yes"
                                                                 : optarg;
        int set = pp_conf_set(o, cfg, value, err);
        free(joined);
        if (set != 0) {
            fprintf(stderr, "ppserver: %s\n", err);
            return EX_USAGE;
        }
        if (o->offset == O(secret)) {
            *secret_on_cmdline = 1;
            free(cfg->secret_file);
            cfg->secret_file = NULL;
            /* Copied: its bytes in argv go, so that /proc/PID/cmdline (which
             * every local user, and job code, can read) no longer shows it. */
            pp_auth_wipe(optarg, strlen(optarg));
        } else if (o->offset == O(secret_file)) {
            free(cfg->secret);
            cfg->secret = NULL;
        }
    }
    return GO_ON;
}

/* PP_SECRET out of our environment for good: unsetenv() takes the variable
 * out of environ, but its bytes stay where exec put them, which is what
 * /proc/PID/environ shows (to our user, job code included, and root); so
 * they are overwritten in place too. */
static void wipe_env_secret(void)
{
    char *found[16];
    size_t n = 0;
    for (char **e = environ; *e && n < PP_ARRAY_LEN(found); e++)
        if (strncmp(*e, "PP_SECRET=", 10) == 0)
            found[n++] = *e;
    unsetenv("PP_SECRET"); /* every occurrence */
    for (size_t i = 0; i < n; i++)
        pp_auth_wipe(found[i], strlen(found[i]));
}

/* The settings: defaults < file < environment < command line, then the
 * derived ones checked. */
static int load_settings(int argc, char **argv, srv_cfg *cfg, int *secret_on_cmdline)
{
    /* The table's options (its end marker counted) + 3 extras + the end. */
    struct option lopts[sizeof options / sizeof options[0] + 3];
    char shorts[128];
    build_getopt(lopts, shorts);
    const char *config = NULL;
    int rc = first_pass(argc, argv, lopts, shorts, &config);
    if (rc != GO_ON)
        return rc;
    char err[PP_ERR_LEN];
    config_path = config;
    if (config && pp_conf_load(options, cfg, config, err) != 0) {
        fprintf(stderr, "ppserver: %s\n", err);
        return EX_CONFIG;
    }
    if (config && cfg->secret && pp_conf_private(config, err) != 0) {
        /* A secret in it: the file is a secret file too. */
        fprintf(stderr, "ppserver: %s\n", err);
        return EX_CONFIG;
    }
    const char *env_secret = getenv("PP_SECRET");
    if (env_secret && *env_secret) {
        free(cfg->secret);
        cfg->secret = strdup(env_secret);
        free(cfg->secret_file);
        cfg->secret_file = NULL;
    }
    wipe_env_secret();
    if ((rc = apply_args(argc, argv, lopts, shorts, cfg, secret_on_cmdline)) != GO_ON)
        return rc;
    if (cfg->debug) {
        free(cfg->log_level);
        cfg->log_level = strdup("debug");
    }
    if (!cfg->log_level)
        cfg->log_level = strdup("info");
    if (!cfg->log_level || pp_log_parse_level(cfg->log_level) < 0) {
        fprintf(stderr, "ppserver: unknown log level \"%s\" (error, warn, info, debug)\n",
                cfg->log_level ? cfg->log_level : "?");
        return EX_USAGE;
    }
    if (cfg->log_format && pp_log_parse_format(cfg->log_format) < 0) {
        fprintf(stderr, "ppserver: unknown log format \"%s\" (text, json)\n", cfg->log_format);
        return EX_USAGE;
    }
    if (pp_zpolicy_parse(cfg->compress) == -2) {
        fprintf(stderr, "ppserver: unknown --compress \"%s\" (auto, always, never)\n",
                cfg->compress);
        return EX_USAGE;
    }
    if (cfg->job_memory_mib != 0 && cfg->job_memory_mib < 64) {
        fprintf(stderr, "ppserver: --job-memory-mib %d is too small: 0 (no limit) or at "
                        "least 64 (a worker needs some for itself)\n", cfg->job_memory_mib);
        return EX_USAGE;
    }
    pp_tags tags = {0};
    if (cfg->tags && !cfg->tags[0])
        snprintf(err, sizeof err, "an empty tag");
    if (cfg->tags && (!cfg->tags[0] || pp_tags_parse(&tags, cfg->tags, err) != 0)) {
        fprintf(stderr, "ppserver: --tag: %s\n", err);
        return EX_USAGE;
    }
    char mhost[64];
    int mport;
    if (cfg->metrics && metrics_parse_addr(cfg->metrics, mhost, sizeof mhost, &mport, err) != 0) {
        fprintf(stderr, "ppserver: %s\n", err); /* before anything starts */
        return EX_USAGE;
    }
    if (!cfg->cache_dir)
        cfg->cache_dir = default_cache_dir();
    if (cfg->workers < 0)
        cfg->workers = pp_ncpus_available();
    return GO_ON;
}

/* --worker-user: its ids into cfg (-1 without it).  Only for a ppserver
 * started as root: anyone else's workers run as themselves anyway. */
static int resolve_worker_user(srv_cfg *cfg)
{
    cfg->worker_uid = cfg->worker_gid = -1;
    if (!cfg->worker_user)
        return GO_ON;
    if (geteuid() != 0) {
        fprintf(stderr, "ppserver: --worker-user %s needs root: it is how a ppserver started "
                        "as root runs its workers as another user (this one runs as uid %d, "
                        "as its workers do)\n", cfg->worker_user, (int)geteuid());
        return EX_CONFIG;
    }
    struct passwd *pw = getpwnam(cfg->worker_user);
    if (!pw) {
        fprintf(stderr, "ppserver: --worker-user %s: no such user\n", cfg->worker_user);
        return EX_CONFIG;
    }
    if (pw->pw_uid == 0) {
        fprintf(stderr, "ppserver: --worker-user %s is root: the workers would keep every "
                        "privilege; name an unprivileged user\n", cfg->worker_user);
        return EX_CONFIG;
    }
    cfg->worker_uid = (int)pw->pw_uid;
    cfg->worker_gid = (int)pw->pw_gid;
    return GO_ON;
}

/* The module cache: made if missing, then it must be ours and writable by
 * nobody else (whoever can write there chooses what the workers load);
 * with --worker-user, readable by that user's group. */
static int check_cache(const srv_cfg *cfg)
{
    char err[PP_ERR_LEN];
    if (pp_module_cache_init(cfg->cache_dir, err) != 0 ||
        (cfg->worker_gid >= 0 &&
         pp_module_cache_share(cfg->cache_dir, (gid_t)cfg->worker_gid, err) != 0)) {
        fprintf(stderr, "ppserver: %s\n", err);
        return EX_CONFIG;
    }
    return GO_ON;
}

/* TLS settings that go together: the three certificate files, none with
 * --no-tls, and --no-secret only with certificates. */
static int check_tls(const srv_cfg *cfg)
{
    int certs = !!cfg->tls_cert + !!cfg->tls_key + !!cfg->tls_ca;
    const char *why = NULL;
    if (certs != 0 && certs != 3)
        why = "--tls-cert, --tls-key and --tls-ca go together";
    else if (certs && cfg->no_tls)
        why = "certificates are for TLS: --no-tls and --tls-cert/--tls-key/--tls-ca exclude "
              "each other";
    else if (cfg->no_secret && !certs)
        why = "--no-secret needs certificates (--tls-cert, --tls-key, --tls-ca): without a "
              "secret they alone authenticate";
    if (why) {
        fprintf(stderr, "ppserver: %s\n", why);
        return EX_CONFIG;
    }
    if (cfg->no_tls)
        fprintf(stderr, "ppserver: warning: --no-tls: jobs, results and modules cross the "
                        "network in plaintext, and anyone on the path can change them\n");
    return GO_ON;
}

/* --secret-file -: the secret from standard input, read to its end, under
 * a secret file's rules (at most 4 KiB, trailing newlines dropped, no NUL
 * byte), so that a launcher can hand it over without a file or argv.  A
 * pipe is its writer's alone; a file redirected in must be private, as
 * --secret-file's.  The secret (malloc'd), or NULL with the reason in err. */
static char *read_secret_stdin(char *err)
{
    char buf[4097];
    size_t n = 0;
    char *s = NULL;
    struct stat st;
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
        pp_seterr(err, "the secret on standard input comes from a file readable by others "
                       "(mode %03o); chmod 600 it", (unsigned)(st.st_mode & 0777));
        return NULL;
    }
    while (n < sizeof buf) {
        ssize_t r = read(STDIN_FILENO, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            pp_seterr(err, "cannot read the secret from standard input: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n == sizeof buf) {
        pp_seterr(err, "the secret on standard input exceeds 4 KiB");
        goto out;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (memchr(buf, 0, n)) {
        /* It would end the secret early: another secret than the one sent. */
        pp_seterr(err, "the secret on standard input contains a NUL byte");
        goto out;
    }
    buf[n] = 0;
    if (!(s = strdup(buf)))
        pp_seterr(err, "out of memory");
out:
    pp_auth_wipe(buf, sizeof buf);
    return s;
}

/* The secret, as every side takes it (pp_auth_secret: no trailing
 * newline), into *out (malloc'd). */
static int take_secret(const srv_cfg *cfg, int on_cmdline, char **out)
{
    char err[PP_ERR_LEN];
    char *secret = NULL;
    if (cfg->no_secret) {
        /* Certificates authenticate; the inner proof runs with a public
         * stand-in (checked in check_tls()). */
        if (cfg->secret || cfg->secret_file) {
            fprintf(stderr, "ppserver: --no-secret and a secret (-s, --secret-file, PP_SECRET) "
                            "exclude each other\n");
            return EX_CONFIG;
        }
        *out = strdup(PP_AUTH_NO_SECRET);
        return *out ? GO_ON : EX_OSERR;
    }
    if (cfg->secret_file) {
        secret = strcmp(cfg->secret_file, "-") == 0 ? read_secret_stdin(err)
                                                    : pp_conf_read_secret(cfg->secret_file, err);
        if (!secret) {
            fprintf(stderr, "ppserver: %s\n", err);
            return EX_CONFIG;
        }
    } else if (cfg->secret) {
        secret = strdup(cfg->secret);
    }
    if (!secret || !*secret) {
        fprintf(stderr, "ppserver: no secret: give --secret-file FILE (create one with "
                        "--gen-secret FILE), set PP_SECRET, or -s SECRET\n");
        free(secret);
        return EX_CONFIG;
    }
    size_t len = 0;
    if (pp_auth_secret(secret, &len, err) != 0) {
        fprintf(stderr, "ppserver: %s\n", err);
        pp_auth_wipe(secret, strlen(secret));
        free(secret);
        return EX_CONFIG;
    }
    secret[len] = 0;
    if (on_cmdline)
        fprintf(stderr, "ppserver: warning: a secret given with -s is visible to every "
                        "local user in the process list until ppserver wipes it, and stays in "
                        "the shell's history; prefer --secret-file\n");
    /* Workers inherit no secret: the pool scrubs their environment. */
    unsetenv("PP_SECRET");
    *out = secret;
    return GO_ON;
}

/* Logs, daemon mode, the heap, signals. */
static int setup_process(const srv_cfg *cfg)
{
    if (cfg->log_file) {
        if (!freopen(cfg->log_file, "a", stderr)) {
            fprintf(stdout, "ppserver: cannot open the log file %s: %s\n", cfg->log_file,
                    strerror(errno));
            return EX_CANTCREAT;
        }
        setvbuf(stderr, NULL, _IOLBF, 0);
    }
    if (cfg->daemonize) {
        /* -D: into the background, detached from the terminal. */
        if (daemon(1, cfg->log_file ? 1 : 0) != 0) {
            fprintf(stderr, "ppserver: cannot become a daemon: %s\n", strerror(errno));
            return EX_OSERR;
        }
        if (cfg->log_file) {
            int fd = open("/dev/null", O_RDWR);
            if (fd >= 0) {
                dup2(fd, 0);
                dup2(fd, 1);
                close(fd);
            }
        }
    }
    /* Frames of many MiB reuse the heap instead of fresh mappings faulted in
     * and unmapped for every job. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "ppserver: cannot make the signal pipe: %s\n", strerror(errno));
        return EX_OSERR;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL); /* the status into the log */
    signal(SIGPIPE, SIG_IGN);
    return GO_ON;
}

/* Runs the node until SIGTERM/SIGINT.  The secret is wiped once the key is
 * derived.  An exit code. */
static int serve(srv_cfg *cfg, char *secret)
{
    char err[PP_ERR_LEN];
    server srv;
    int rc = server_init(&srv, cfg, secret, &stop_flag, err);
    pp_auth_wipe(secret, strlen(secret));
    if (rc != 0) {
        fprintf(stderr, "ppserver: %s\n", err);
        server_destroy(&srv);
        return EX_UNAVAILABLE;
    }
    srv.reload = &reload_flag;
    srv.dump = &dump_flag;
    srv.reload_workers = reload_workers;
    char text[64];
    if (cfg->pidfile) {
        snprintf(text, sizeof text, "%d\n", (int)getpid());
        if (write_file(cfg->pidfile, text) != 0)
            pp_log(&srv.log, PP_LOG_WARN, "cannot write the pidfile %s: %s", cfg->pidfile,
                   strerror(errno));
    }
    if (cfg->port_file) {
        snprintf(text, sizeof text, "%d\n", srv.port);
        if (write_file(cfg->port_file, text) != 0) {
            fprintf(stderr, "ppserver: cannot write the port file %s: %s\n", cfg->port_file,
                    strerror(errno));
            server_destroy(&srv);
            return EX_CANTCREAT;
        }
    }
    announcer *an = NULL;
    if (cfg->announce && !(an = announce_start(&srv, cfg->announce, cfg->announce_interval,
                                               err))) {
        fprintf(stderr, "ppserver: %s\n", err);
        server_destroy(&srv);
        return EX_USAGE;
    }
    metrics *mx = NULL;
    if (cfg->metrics && !(mx = metrics_start(&srv, cfg->metrics, err))) {
        fprintf(stderr, "ppserver: %s\n", err); /* the address was checked: cannot bind */
        announce_stop(an);
        server_destroy(&srv);
        return EX_UNAVAILABLE;
    }
    pp_io wake = {.fd = wake_pipe[0], .fn = on_wake};
    if (pp_loop_add(srv.loop, &wake, PP_EV_READ) != 0)
        pp_log(&srv.log, PP_LOG_WARN, "signals wait for the next event: %s", strerror(errno));
    rc = server_run(&srv) != 0 ? EX_SOFTWARE : EX_OK;
    if (wake.added || wake.events)
        pp_loop_del(srv.loop, &wake);
    pp_log(&srv.log, PP_LOG_INFO, "stopped after %llu jobs", (unsigned long long)srv.jobs_done);
    metrics_stop(mx);
    announce_stop(an);
    server_destroy(&srv);
    if (cfg->pidfile)
        unlink(cfg->pidfile);
    return rc;
}

int main(int argc, char **argv)
{
    /* Not dumpable: no core file with the secret in it, and a process of
     * our user -- job code on the workers -- can neither ptrace us nor read
     * /proc/PID/mem or /proc/PID/environ. */
    prctl(PR_SET_DUMPABLE, 0);
    srv_cfg cfg;
    cfg_defaults(&cfg);
    int on_cmdline = 0;
    char *secret = NULL;
    int rc = load_settings(argc, argv, &cfg, &on_cmdline);
    if (rc == GO_ON)
        rc = resolve_worker_user(&cfg);
    if (rc == GO_ON)
        rc = check_cache(&cfg);
    if (rc == GO_ON)
        rc = check_tls(&cfg);
    if (rc == GO_ON)
        rc = take_secret(&cfg, on_cmdline, &secret);
    if (rc == GO_ON)
        rc = setup_process(&cfg);
    if (rc == GO_ON)
        rc = serve(&cfg, secret);
    if (secret)
        pp_auth_wipe(secret, strlen(secret));
    free(secret);
    pp_conf_free(options, &cfg);
    return rc;
}
