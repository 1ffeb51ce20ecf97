#!/usr/bin/env bash
# What `make bench` needs besides the build: nginx (the L7 baseline and a static JWKS server), wrk
# (a cross-check of the C load generator), curl, node + npm, and the npm MCP proxies measured as
# peers (bench/package.json → bench/node_modules). Debian packages and npm only; fast when all is
# present (no apt-get update, no npm call).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
die() { echo "bench/deps.sh: error: $*" >&2; exit 1; }

"$ROOT/scripts/deps.sh" build

SUDO=()
[ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && SUDO=(sudo); }

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk   >/dev/null 2>&1 || missing+=(wrk)
command -v curl  >/dev/null 2>&1 || missing+=(curl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v node  >/dev/null 2>&1 || missing+=(nodejs)
command -v npm   >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here"
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then die "missing ${missing[*]} (run as root)"; fi
    echo "bench/deps.sh: installing ${missing[*]}" >&2
    log=$(mktemp)
    # policy-rc.d or not: the nginx service is neither needed nor wanted; the bench starts its own.
    if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"; die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$log"
    # a package install may have started the system nginx on :80; it is not ours to stop, and the
    # bench never uses port 80.
fi

major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || die "node $(node --version) is too old for the npm peers (need >= 18)"

B="$ROOT/bench"
stamp="$B/node_modules/.package-lock.json"
# the peers must start, not only be present: a partial node_modules (say, one committed to git
# without its ignored build/ directories) is installed again from scratch
peers_run() {
    (cd "$B" && node node_modules/supergateway/dist/index.js --help && node node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs --help) >/dev/null 2>&1
}
if [ ! -f "$stamp" ] || [ "$B/package.json" -nt "$stamp" ] || { [ -f "$B/package-lock.json" ] && [ "$B/package-lock.json" -nt "$stamp" ]; } || ! peers_run; then
    echo "bench/deps.sh: installing the npm peers in bench/node_modules" >&2
    rm -rf "$B/node_modules"
    log=$(mktemp)
    if [ -f "$B/package-lock.json" ]; then cmd=(npm ci); else cmd=(npm install); fi
    if ! (cd "$B" && "${cmd[@]}" --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"; die "${cmd[*]} in bench/ failed"
    fi
    rm -f "$log"
    touch "$stamp"
    peers_run || die "the npm peers do not start after npm install (see: cd bench && node node_modules/supergateway/dist/index.js --help)"
fi
exit 0
