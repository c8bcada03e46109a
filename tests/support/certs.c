/* SPDX-License-Identifier: MIT */
/* certs.c -- see certs.h. */
#include "certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int sh(const char *dir, const char *cmd)
{
    char full[2048];
    snprintf(full, sizeof full, "cd '%s' && (%s) >/dev/null 2>&1", dir, cmd);
    return system(full) == 0 ? 0 : -1;
}

int certs_make(const char *dir)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0)
        return -1;
    const char *req = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    char cmd[1024];
    int rc = 0;
    snprintf(cmd, sizeof cmd, "%s -keyout ca.key -out ca.crt -days 2 -subj /CN=pp-test-ca", req);
    rc |= sh(dir, cmd);
    snprintf(cmd, sizeof cmd, "%s -keyout other.key -out other.crt -days 2 -subj /CN=other-ca",
             req);
    rc |= sh(dir, cmd);
    const char *leaf[][3] = {{"server", "ca", "-days 2"},
                             {"client", "ca", "-days 2"},
                             {"stranger", "other", "-days 2"},
                             {"expired", "ca", "-not_before 20200101000000Z -not_after "
                                               "20200102000000Z"}};
    for (size_t i = 0; i < sizeof leaf / sizeof leaf[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                 "-keyout %s.key -out %s.csr -subj /CN=%s && openssl x509 -req -in %s.csr "
                 "-CA %s.crt -CAkey %s.key -CAcreateserial -out %s.crt %s",
                 leaf[i][0], leaf[i][0], leaf[i][0], leaf[i][0], leaf[i][1], leaf[i][1],
                 leaf[i][0], leaf[i][2]);
        if (sh(dir, cmd) != 0 && strcmp(leaf[i][0], "expired") == 0) {
            /* openssl x509 before 3.4 has no -not_before: a certificate
             * valid for -1 days has expired already. */
            rc |= sh(dir, "openssl x509 -req -in expired.csr -CA ca.crt -CAkey ca.key "
                          "-CAcreateserial -out expired.crt -days -1");
        }
        struct stat st;
        char f[1024];
        snprintf(f, sizeof f, "%s/%s.crt", dir, leaf[i][0]);
        rc |= stat(f, &st);
    }
    return rc == 0 ? 0 : -1;
}

int certs_make_chain(const char *dir)
{
    return sh(dir, "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign\\n'"
                   " > inter.ext && "
                   "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                   "-keyout inter.key -out inter.csr -subj /CN=pp-test-intermediate && "
                   "openssl x509 -req -in inter.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                   "-days 2 -extfile inter.ext -out inter.crt && "
                   "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                   "-keyout leaf.key -out leaf.csr -subj /CN=leaf && "
                   "openssl x509 -req -in leaf.csr -CA inter.crt -CAkey inter.key "
                   "-CAcreateserial -days 2 -out leaf.crt && "
                   "cat leaf.crt inter.crt > chain.crt && cat other.crt ca.crt > bundle.crt");
}
