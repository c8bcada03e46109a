/* SPDX-License-Identifier: MIT */
/* crawl_tasks.h -- the tasks of pp-crawl (libppcrawl.so). */
#ifndef CRAWL_TASKS_H
#define CRAWL_TASKS_H
#include <pp.h>

/* Fetches a URL.  Argument: pp_pack "sdlsl" url, timeout (s), size cap
 * (bytes), user agent, redirect limit.  Result: "lssldss" HTTP status (0 when
 * no response), final URL, content type, bytes, seconds, error text, links
 * (absolute http(s) URLs without fragments, one per line; HTML pages only). */
int pp_crawl_fetch(const void *arg, size_t len, pp_buf *out);

/* Fetches a robots.txt (same argument).  Result: "ls" HTTP status, the rules
 * that apply to the user agent, one per line: "A path" (allow) or
 * "D path" (disallow). */
int pp_crawl_robots(const void *arg, size_t len, pp_buf *out);
#endif
