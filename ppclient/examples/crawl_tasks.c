/* SPDX-License-Identifier: MIT */
/* crawl_tasks.c -- the task module of pp-crawl: fetch one URL with libcurl
 * (redirects followed and bounded, a size cap, a timeout, HTTP and HTTPS
 * only), find the links of an HTML page with an HTML5 parser (gumbo), resolve
 * them with libcurl's URL API; and fetch a host's robots.txt rules.  Page
 * bodies stay on the node: only the status, the metadata and the links come
 * back. */
#include <curl/curl.h>
#include <gumbo.h>
#include <pp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crawl_tasks.h"

typedef struct body {
    char *data;
    size_t len, cap, max;
    int over;                   /* the page exceeded max */
} body;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t k = size * n;
    if (b->len + k > b->max) {
        b->over = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (b->len + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + k + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = 0;
    return k;
}

typedef struct fetch {
    long status;
    char final_url[4096];
    char content_type[256];
    double seconds;
    char error[512];
    body b;
    /* set by fetch_start() */
    const char *ua;            /* the User-Agent, from the task's argument */
    FILE *text;                /* the task's text result, being written */
    char *text_buf;            /* what it wrote: fetch_text() */
    size_t text_len;
} fetch;

/* Fetches url; fills f.  Returns 0 when an HTTP response arrived. */
static int do_fetch(const char *url, double timeout, long max_bytes, const char *ua,
                    long max_redirs, const char *cacert, fetch *f)
{
    memset(f, 0, sizeof *f);
    f->b.max = (size_t)max_bytes;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(f->error, sizeof f->error, "cannot initialise libcurl");
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, max_redirs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f->b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (cacert && *cacert) /* else the system's certificate authorities */
        curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    CURLcode rc = curl_easy_perform(c);
    char *eff = NULL, *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &f->seconds);
    snprintf(f->final_url, sizeof f->final_url, "%s", eff ? eff : url);
    snprintf(f->content_type, sizeof f->content_type, "%s", ct ? ct : "");
    int ok = 0;
    if (f->b.over) {
        snprintf(f->error, sizeof f->error, "larger than the size cap of %ld bytes", max_bytes);
    } else if (rc != CURLE_OK) {
        snprintf(f->error, sizeof f->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        f->status = 0; /* no complete response */
        ok = -1;
    }
    curl_easy_cleanup(c);
    return ok;
}

static int is_html(const char *ct)
{
    return strncasecmp(ct, "text/html", 9) == 0 ||
           strncasecmp(ct, "application/xhtml+xml", 21) == 0;
}

/* ---- links ---- */

typedef struct links {
    FILE *out;                  /* newline-separated absolute URLs */
    CURLU *base;
    long count;
} links;

/* Trims the ASCII whitespace HTML strips from URLs. */
static const char *trim(const char *s, size_t *len)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
                 s[n - 1] == '\r' || s[n - 1] == '\f'))
        n--;
    *len = n;
    return s;
}

/* Resolves href against base: an absolute http(s) URL without fragment
 * (malloc'd), or NULL for other schemes and malformed references. */
static char *resolve(CURLU *base, const char *href)
{
    size_t n;
    const char *h = trim(href, &n);
    if (n == 0 || n > 8000)
        return NULL;
    char *ref = strndup(h, n);
    CURLU *u = curl_url_dup(base);
    char *out = NULL, *scheme = NULL;
    if (ref && u && curl_url_set(u, CURLUPART_URL, ref, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0)) {
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        char *url = NULL;
        if (curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK) {
            out = strdup(url);
            curl_free(url);
        }
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    free(ref);
    return out;
}

static void find_base(GumboNode *n, CURLU *base, int *found)
{
    if (*found || n->type != GUMBO_NODE_ELEMENT)
        return;
    if (n->v.element.tag == GUMBO_TAG_BASE) {
        GumboAttribute *a = gumbo_get_attribute(&n->v.element.attributes, "href");
        if (a) {
            char *abs = resolve(base, a->value);
            if (abs) {
                curl_url_set(base, CURLUPART_URL, abs, 0);
                free(abs);
            }
            *found = 1;
            return;
        }
    }
    GumboVector *kids = &n->v.element.children;
    for (unsigned i = 0; i < kids->length; i++)
        find_base(kids->data[i], base, found);
}

static void find_links(GumboNode *n, links *l)
{
    if (n->type != GUMBO_NODE_ELEMENT && n->type != GUMBO_NODE_TEMPLATE)
        return;
    if (n->v.element.tag == GUMBO_TAG_A) {
        GumboAttribute *a = gumbo_get_attribute(&n->v.element.attributes, "href");
        if (a) {
            char *abs = resolve(l->base, a->value);
            if (abs) {
                fprintf(l->out, "%s\n", abs);
                l->count++;
                free(abs);
            }
        }
    }
    GumboVector *kids = &n->v.element.children;
    for (unsigned i = 0; i < kids->length; i++)
        find_links(kids->data[i], l);
}

/* Writes the page's links, one per line, to out.  Returns their count. */
static long parse_links(const char *html, size_t len, const char *page_url, FILE *out)
{
    CURLU *base = curl_url();
    if (!base || curl_url_set(base, CURLUPART_URL, page_url, 0) != CURLUE_OK) {
        curl_url_cleanup(base);
        return 0;
    }
    GumboOutput *g = gumbo_parse_with_options(&kGumboDefaultOptions, html, len);
    if (!g) {
        curl_url_cleanup(base);
        return 0;
    }
    int found = 0;
    find_base(g->root, base, &found);
    links l = {.out = out, .base = base};
    find_links(g->root, &l);
    gumbo_destroy_output(&kGumboDefaultOptions, g);
    curl_url_cleanup(base);
    return l.count;
}

/* What both tasks begin with: decode the argument (the same for both),
 * fetch, and open f->text, a memory stream for the task's text result.
 * Returns 0 (fetch_free(f) when done), or -1 after writing why to out. */
static int fetch_start(const void *arg, size_t len, pp_buf *out, fetch *f)
{
    const char *url, *ua, *cacert;
    double timeout;
    long max_bytes, max_redirs;
    if (pp_unpack(arg, len, "sdlsls", &url, &timeout, &max_bytes, &ua, &max_redirs, &cacert) !=
        0) {
        pp_buf_printf(out, "%s", pp_last_error());
        return -1;
    }
    do_fetch(url, timeout, max_bytes, ua, max_redirs, cacert, f);
    f->ua = ua;
    f->text = open_memstream(&f->text_buf, &f->text_len);
    if (!f->text) {
        free(f->b.data);
        pp_buf_printf(out, "out of memory");
        return -1;
    }
    return 0;
}

/* Closes f->text: what was written to it. */
static const char *fetch_text(fetch *f)
{
    fclose(f->text);
    f->text = NULL;
    return f->text_buf ? f->text_buf : "";
}

static void fetch_free(fetch *f)
{
    free(f->text_buf);
    free(f->b.data);
}

int pp_crawl_fetch(const void *arg, size_t len, pp_buf *out)
{
    fetch f;
    if (fetch_start(arg, len, out, &f) != 0)
        return 1;
    if (f.status >= 200 && f.status < 300 && !f.b.over && f.b.data && is_html(f.content_type))
        parse_links(f.b.data, f.b.len, f.final_url, f.text);
    const char *list = fetch_text(&f);
    int rc = pp_pack(out, "lssldss", f.status, f.final_url, f.content_type, (long)f.b.len,
                     f.seconds, f.error, list);
    fetch_free(&f);
    return rc == 0 ? 0 : 1;
}

/* ---- robots.txt ---- */

/* Whether a robots.txt User-agent line value applies to our agent. */
static int agent_matches(const char *value, const char *ua)
{
    if (strcmp(value, "*") == 0)
        return 1;
    /* "pp-crawl" matches "pp-crawl/0.1 (...)": compare the product token. */
    size_t n = strcspn(ua, "/ ");
    return strlen(value) == n && strncasecmp(value, ua, n) == 0;
}

int pp_crawl_robots(const void *arg, size_t len, pp_buf *out)
{
    fetch f;
    if (fetch_start(arg, len, out, &f) != 0)
        return 1;
    /* Groups of User-agent lines then rules; the group naming our agent
     * wins over "*" (RFC 9309).  Output: "A path" or "D path" per line. */
    if (f.status >= 200 && f.status < 300 && f.b.data) {
        char *ours = NULL, *star = NULL;
        size_t ours_len = 0, star_len = 0;
        FILE *fo = open_memstream(&ours, &ours_len), *fs = open_memstream(&star, &star_len);
        int in_ours = 0, in_star = 0, last_was_agent = 0;
        char *save = NULL;
        for (char *line = strtok_r(f.b.data, "\r\n", &save); line;
             line = strtok_r(NULL, "\r\n", &save)) {
            char *hash = strchr(line, '#');
            if (hash)
                *hash = 0;
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            *colon = 0;
            size_t kl, vl;
            const char *k = trim(line, &kl);
            const char *v = trim(colon + 1, &vl);
            char key[32], val[2048];
            snprintf(key, sizeof key, "%.*s", (int)kl, k);
            snprintf(val, sizeof val, "%.*s", (int)vl, v);
            if (strcasecmp(key, "user-agent") == 0) {
                if (!last_was_agent)
                    in_ours = in_star = 0;
                if (agent_matches(val, f.ua)) {
                    if (strcmp(val, "*") == 0)
                        in_star = 1;
                    else
                        in_ours = 1;
                }
                last_was_agent = 1;
                continue;
            }
            last_was_agent = 0;
            int allow = strcasecmp(key, "allow") == 0;
            if (!allow && strcasecmp(key, "disallow") != 0)
                continue;
            if (!val[0] && !allow)
                continue; /* "Disallow:" with nothing: everything allowed */
            if (fo && in_ours)
                fprintf(fo, "%c %s\n", allow ? 'A' : 'D', val);
            if (fs && in_star)
                fprintf(fs, "%c %s\n", allow ? 'A' : 'D', val);
        }
        if (fo)
            fclose(fo);
        if (fs)
            fclose(fs);
        fputs(ours && ours_len ? ours : star ? star : "", f.text);
        free(ours);
        free(star);
    } else if (f.status == 401 || f.status == 403) {
        fputs("D /\n", f.text); /* RFC 9309: unauthorized robots.txt disallows all */
    }
    const char *rules = fetch_text(&f);
    int rc = pp_pack(out, "ls", f.status, rules);
    fetch_free(&f);
    return rc == 0 ? 0 : 1;
}
