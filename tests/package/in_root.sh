#!/bin/sh
# SPDX-License-Identifier: MIT
# in_root.sh VERSION MAJOR -- run by test_package.sh as root inside a
# throwaway Debian root, with the .deb files and the hello example (built
# against libpp-dev) in /tmp/t: installs the packages with dpkg, checks what
# the maintainer scripts made, runs a node from the package with jobs from
# hello and pp-fib on it, then removes and purges.  Every wait is bounded.
set -eu
ver=$1
major=$2
cd /tmp/t
export DEBIAN_FRONTEND=noninteractive
fails=0
seen=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# "ok" for the checks since the last one, if none of them failed.
ok() {
    if [ $fails -eq $seen ]; then echo "ok: $*"; fi
    seen=$fails
}
die() {
    echo "FAIL: $*"
    for f in dpkg.log node.log; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
    exit 1
}

# The user and cache the postinst makes; CHECKED again after a reinstall.
check_user() {
    ent=$(getent passwd ppserver) || { fail "no ppserver user"; return 0; }
    uid=$(echo "$ent" | cut -d: -f3)
    [ "$uid" -lt 1000 ] || fail "ppserver has uid $uid: not a system user"
    [ "$(echo "$ent" | cut -d: -f6)" = /var/cache/ppserver ] || fail "ppserver's home: $ent"
    [ "$(echo "$ent" | cut -d: -f7)" = /usr/sbin/nologin ] || fail "ppserver's shell: $ent"
    getent group ppserver >/dev/null || fail "no ppserver group"
    [ "$(stat -c '%U:%G %a' /var/cache/ppserver)" = "ppserver:ppserver 700" ] ||
        fail "/var/cache/ppserver is $(stat -c '%U:%G %a' /var/cache/ppserver)"
    [ ! -e /home/ppserver ] || fail "a home directory was made"
}

# An ordinary account named ppserver (a login, uid >= 1000) already there:
# the package must not hand it the node and the cache -- ppserver stays
# unconfigured, saying why, until that account is gone.
adduser --disabled-password --gecos "" --quiet ppserver
if dpkg -i "libpp${major}_${ver}"_*.deb libpp-dev_*.deb ppserver_*.deb pp-demos_*.deb \
    >dpkg.log 2>&1; then
    fail "installed over an ordinary user ppserver"
fi
grep -q "already exists, but is not a system user" dpkg.log || fail "no reason given: $(cat dpkg.log)"
[ "$(stat -c %U /var/cache/ppserver)" != ppserver ] || fail "the ordinary user got the cache"
[ -z "$(dpkg-statoverride --list /var/cache/ppserver)" ] || fail "a statoverride for that user"
ok "an ordinary account named ppserver: refused, the cache not given to it"
userdel -r ppserver 2>/dev/null || die "userdel ppserver"
! getent group ppserver >/dev/null || groupdel ppserver || die "groupdel ppserver"
dpkg --configure -a >>dpkg.log 2>&1 || die "dpkg --configure -a"
check_user
[ -f /etc/pp/ppserver.conf ] || fail "no /etc/pp/ppserver.conf"
[ ! -e /etc/pp/secret ] || fail "the package made a secret"
ok "installed: system user ppserver, /var/cache/ppserver ppserver:ppserver 0700, no secret"
# The same version again: prerm upgrade, then postinst configure once more.
dpkg -i ppserver_*.deb >>dpkg.log 2>&1 || die "dpkg -i ppserver again"
check_user
[ "$(getent passwd | grep -c '^ppserver:')" -eq 1 ] || fail "two ppserver users"
ok "installed again: nothing changed"

out=$(ppserver --version 2>&1) || fail "ppserver --version: $out"
[ "$out" = "ppserver $ver" ] || fail "ppserver --version printed: $out"
ok "ppserver --version: $out"

# A node from the package, as the unit runs it: as ppserver, its cache in
# /var/cache/ppserver, a secret only that user reads (LoadCredential's copy).
ppserver --gen-secret /etc/pp/secret >/dev/null 2>&1 || die "ppserver --gen-secret"
install -o ppserver -g ppserver -m 0600 /etc/pp/secret /tmp/node-secret
setpriv --reuid=ppserver --regid=ppserver --clear-groups -- \
    ppserver -c /etc/pp/ppserver.conf -i 127.0.0.1 -p 0 --port-file /tmp/node-port \
    --secret-file /tmp/node-secret --cache-dir /var/cache/ppserver -w 2 \
    --metrics 127.0.0.1:0 >node.log 2>&1 &
node=$!
i=0
while [ ! -s /tmp/node-port ] && [ $i -lt 100 ] && kill -0 $node 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
[ -s /tmp/node-port ] || die "the node wrote no port within 10 s"
port=$(cat /tmp/node-port)
ok "node up on 127.0.0.1:$port as ppserver"
# --metrics loads libmicrohttpd at run time: the package must bring it.
grep -q 'metrics on http://127.0.0.1:' node.log || fail "--metrics did not start: $(cat node.log)"
ok "--metrics: libmicrohttpd loaded"

for prog in ./hello ./cmake/hello; do
    out=$(PP_SERVERS=127.0.0.1:$port PP_SECRET_FILE=/etc/pp/secret timeout 60 "$prog" 2>&1) ||
        fail "$prog: $out"
    echo "$out" | grep -q '^Sum of primes below 100000 is 454396537$' &&
        [ "$(echo "$out" | grep -c '^Sum of primes below')" -eq 8 ] ||
        fail "$prog printed: $out"
done
ok "hello (pkg-config and CMake builds): 8 results, right"
# No local worker: every job runs on the node, its module sent and cached.
out=$(timeout 60 pp-fib --servers "127.0.0.1:$port" --secret-file /etc/pp/secret --ncpus 0 30 40 2>&1) ||
    fail "pp-fib: $out"
echo "$out" | grep -q "^fib(30) = 832040  \[127.0.0.1:$port\]" &&
    echo "$out" | grep -q "^fib(40) = 102334155  \[127.0.0.1:$port\]" || fail "pp-fib printed: $out"
[ -n "$(ls -A /var/cache/ppserver)" ] || fail "the node cached no module"
[ -z "$(find /var/cache/ppserver -mindepth 1 ! -user ppserver)" ] ||
    fail "cache entries not ppserver's: $(ls -la /var/cache/ppserver)"
ok "pp-fib --ncpus 0: both jobs on the node, its module in /var/cache/ppserver"
# The packaged ppstat asks the packaged node.
if command -v ppstat >/dev/null; then
    out=$(timeout 30 ppstat --json --secret-file /etc/pp/secret "127.0.0.1:$port" 2>&1) &&
        echo "$out" | grep -q "\"$ver\"" || fail "ppstat: $out"
    ok "ppstat --json: the node answers, version $ver"
fi

kill -TERM $node
i=0
while kill -0 $node 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -0 $node 2>/dev/null && die "the node did not stop within 10 s of SIGTERM"
wait $node || fail "the node exited with status $? (log below)"
ok "node stopped by SIGTERM"

# An administrator's `systemctl enable ppserver`, by hand (no systemd here).
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -s /lib/systemd/system/ppserver.service /etc/systemd/system/multi-user.target.wants/
dpkg -r pp-demos libpp-dev ppserver >>dpkg.log 2>&1 || die "dpkg -r"
[ ! -e /usr/bin/ppserver ] || fail "/usr/bin/ppserver left after remove"
[ -f /etc/pp/ppserver.conf ] || fail "remove took the conffile"
[ "$(readlink /etc/systemd/system/ppserver.service 2>/dev/null)" = /dev/null ] ||
    fail "remove did not mask the unit"
ok "removed: program gone, configuration kept, unit masked"
dpkg -P ppserver >>dpkg.log 2>&1 || die "dpkg -P ppserver"
[ ! -e /etc/pp/ppserver.conf ] || fail "purge left /etc/pp/ppserver.conf"
[ ! -e /var/cache/ppserver ] || fail "purge left /var/cache/ppserver: $(ls -la /var/cache/ppserver)"
[ -z "$(dpkg-statoverride --list /var/cache/ppserver)" ] || fail "purge left the statoverride"
[ ! -e /etc/systemd/system/ppserver.service ] && [ ! -L /etc/systemd/system/ppserver.service ] ||
    fail "purge left the mask"
[ ! -L /etc/systemd/system/multi-user.target.wants/ppserver.service ] ||
    fail "purge left the enable link"
getent passwd ppserver >/dev/null || fail "purge removed the ppserver user (Debian keeps system users)"
dpkg -P "libpp$major" >>dpkg.log 2>&1 || die "dpkg -P libpp$major"
[ ! -e /usr/libexec/pp/ppworker ] || fail "ppworker left after purge"
ok "purged: configuration, cache, statoverride, unit links gone; the system user kept"

[ $fails -eq 0 ] || die "$fails failure(s) in the root"
