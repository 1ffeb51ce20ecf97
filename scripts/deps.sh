#!/usr/bin/env bash
# Install what mcp-gateway needs on Debian 12 (run as root; sudo is used when available otherwise).
#   scripts/deps.sh build   compiler, pkg-config and the C libraries
#   scripts/deps.sh test    build deps + cmocka, redis, curl, chromium (for the browser test), nginx and
#                           haproxy (balancers in front of replicas), systemd and groff-base (checks of the
#                           unit and the man page), node/npm and tests/node_modules, tests/node22/node_modules
# Fast when everything is already present: nothing is downloaded and apt-get update is not run.
set -euo pipefail

MODE=${1:-build}
case "$MODE" in build|test) ;; *) echo "usage: $0 build|test" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

die() { echo "deps.sh: error: $*" >&2; exit 1; }

BUILD_PKGS=(build-essential pkg-config libuv1-dev node-llhttp libcurl4-openssl-dev libjansson-dev
            libyaml-dev libssl-dev libhiredis-dev)
# chromium: Debian's, driven by playwright-core in tests/e2e/90-browser (never a browser download from npm)
# nginx, haproxy: the balancers tests/e2e/96-replicas runs (never the system services);
# systemd (systemd-analyze verify of the unit), groff-base (the man page lint): tests/e2e/95-install
TEST_PKGS=(libcmocka-dev redis-server curl chromium fonts-dejavu-core nginx haproxy systemd groff-base valgrind)

pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

APT_UPDATED=0
apt_install() {
    [ $# -gt 0 ] || return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages ($*) and no apt-get on this machine"
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
        die "missing packages: $* (run as root: apt-get install $*)"
    fi
    echo "deps.sh: installing $*" >&2
    if [ $APT_UPDATED -eq 0 ]; then
        "${SUDO[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    local log; log=$(mktemp)
    if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"
        die "apt-get install $* failed"
    fi
    rm -f "$log"
}

missing=()
want=("${BUILD_PKGS[@]}")
[ "$MODE" = test ] && want+=("${TEST_PKGS[@]}")
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
else
    # Not Debian: check what we can and report, do not try to install.
    for m in libuv libcurl jansson yaml-0.1 openssl hiredis; do
        pkg-config --exists "$m" 2>/dev/null || missing+=("pkgconfig:$m")
    done
    [ ${#missing[@]} -eq 0 ] || die "not a Debian system and missing: ${missing[*]}"
fi

# node + npm: nodesource's nodejs ships npm itself, so look at the commands, not the packages.
if [ "$MODE" = test ]; then
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm  >/dev/null 2>&1 || missing+=(npm)
fi

apt_install "${missing[@]}"

# Sanity check: everything the Makefile asks pkg-config for resolves.
for m in libuv libcurl jansson yaml-0.1 openssl; do
    pkg-config --exists "$m" || die "pkg-config cannot find $m after installation"
done
[ -f /usr/share/llhttp/llhttp.c ] && [ -f /usr/share/include/llhttp/llhttp.h ] ||
    die "llhttp sources not found under /usr/share/llhttp (package node-llhttp)"

if [ "$MODE" = test ]; then
    command -v node >/dev/null 2>&1 || die "node not found after installation"
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 18 ] || die "node $(node --version) is too old (need >= 18)"

    # node_modules of tests/ (Node 20 tooling) and tests/node22/ (tools that need Node 22, which
    # itself comes from npm): (re)installed when missing or older than the lock file / package.json.
    for T in "$ROOT/tests" "$ROOT/tests/node22"; do
        stamp="$T/node_modules/.package-lock.json"     # written by npm on every install
        need=0
        if [ ! -d "$T/node_modules" ] || [ ! -f "$stamp" ]; then need=1
        elif [ -f "$T/package-lock.json" ] && [ "$T/package-lock.json" -nt "$stamp" ]; then need=1
        elif [ "$T/package.json" -nt "$stamp" ]; then need=1
        fi
        [ $need -eq 1 ] || continue
        echo "deps.sh: installing node packages in ${T#$ROOT/}/" >&2
        log=$(mktemp)
        if [ -f "$T/package-lock.json" ]; then cmd=(npm ci); else cmd=(npm install); fi
        if ! (cd "$T" && "${cmd[@]}" --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
            cat "$log" >&2; rm -f "$log"
            die "${cmd[*]} in ${T#$ROOT/}/ failed"
        fi
        rm -f "$log"
        touch "$stamp"
    done
fi
exit 0
