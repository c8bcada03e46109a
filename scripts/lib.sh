# SPDX-License-Identifier: MIT
# scripts/lib.sh -- shared by the scripts: install what is missing, build.
# Sourced, not run.

PP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PP_JOBS=$(nproc 2>/dev/null || echo 2)

# The Debian packages pp needs to build, test and run its demos.  systemd
# gives systemd-analyze, which checks conf/ppserver.service; the package does
# not make itself the init (systemd-sysv does) nor start anything.  faketime
# runs a ppserver on a fast clock (a TLS key older than its lifetime).
# slurm-wlm (slurmctld, slurmd, slurm-client) and munge: the slurm test runs
# scripts/slurm/pp.sbatch on daemons of its own (its own munge key, socket,
# ports and configuration), apart from any the system runs.
# libmicrohttpd-dev serves ppserver --metrics; python3-prometheus-client's
# parser (for /usr/bin/python3) checks that exposition in test_metrics.
# dpkg-dev (dpkg-shlibdeps, dpkg-buildflags) and file let cpack make the
# .debs (scripts/package); lintian checks them and mmdebstrap makes the
# Debian root the package test installs them into.
PP_PACKAGES="build-essential cmake pkg-config libssl-dev zlib1g-dev
libcurl4-openssl-dev libcunit1-dev libgumbo-dev python3 procps iproute2 openssl
universal-ctags systemd faketime slurm-wlm slurm-client munge
libmicrohttpd-dev python3-prometheus-client mandoc
dpkg-dev file lintian mmdebstrap"

pp_log() { printf '==> %s\n' "$*" >&2; }

# Installs the packages that are not installed yet (apt-get; as root or with
# sudo).  Nothing to do on a machine that has them all.
pp_install_deps() {
    local missing=()
    local p
    for p in $PP_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    pp_log "installing: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "pp: need root (or sudo) to install: ${missing[*]}" >&2
            return 1
        }
        sudo=sudo
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
}

# pp_build DIR [cmake options...]: configures (once) and builds.
pp_build() {
    local dir=$1
    shift
    pp_log "building in $dir $*"
    cmake -S "$PP_ROOT" -B "$dir" "$@" >/dev/null &&
        cmake --build "$dir" -j "$PP_JOBS" -- --no-print-directory >/dev/null
}
