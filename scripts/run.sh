#!/usr/bin/env bash
# `make run`: the seed guide's whole authentication flow on one machine.
#   dev IdP (examples/idp/dev-idp.mjs, like the seed's Keycloak realm) on 127.0.0.1:8002, issuer
#   http://127.0.0.1:8002/realms/mcp, user mcp / mcp; server1 on :9001 and server2 on :9002 (examples/gateway.yaml
#   points at them); the gateway on :8080 as an OAuth 2.1 resource server with the guide's OAUTH_* variables.
# Without authentication (no IdP, no node needed): scripts/run.sh --no-auth, or RUN_NO_AUTH=1.
# Environment: BUILD (default build), GATEWAY_PORT (default 8080), IDP_PORT (default 8002), GATEWAY_SIGNING_KEY
# (a random one for this run when unset), OAUTH_* (override the defaults below). Other arguments go to the
# gateway. Ctrl-C stops everything.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
GATEWAY=$BUILD/mcp-gateway
EXAMPLE=$BUILD/mcp-example-server
CONFIG=${CONFIG:-examples/gateway.yaml}
PORT=${GATEWAY_PORT:-8080}
IDP_PORT=${IDP_PORT:-8002}
LOGDIR=$BUILD/run-logs

NO_AUTH=0
case "${RUN_NO_AUTH:-}" in 1|true|yes) NO_AUTH=1 ;; esac
args=()
for a in "$@"; do
    if [ "$a" = --no-auth ]; then NO_AUTH=1; else args+=("$a"); fi
done

for b in "$GATEWAY" "$EXAMPLE"; do
    [ -x "$b" ] || { echo "run.sh: $b not found: build it with make" >&2; exit 1; }
done
mkdir -p "$LOGDIR"

if [ $NO_AUTH -eq 0 ]; then
    if ! command -v node >/dev/null 2>&1 || [ ! -d tests/node_modules/oidc-provider ]; then
        echo "run.sh: the development IdP needs node and tests/node_modules: running scripts/deps.sh test" >&2
        scripts/deps.sh test || { echo "run.sh: scripts/deps.sh test failed (or use: make run RUN_NO_AUTH=1)" >&2; exit 1; }
    fi
    if [ ! -d tests/node_modules/oidc-provider ]; then
        (cd tests && npm ci --no-audit --no-fund) || { echo "run.sh: npm ci in tests/ failed" >&2; exit 1; }
    fi
fi

pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {   # port pid name
    for _ in $(seq 150); do
        port_busy "$1" && return 0
        kill -0 "$2" 2>/dev/null || { echo "run.sh: $3 exited; see $LOGDIR/$3.log" >&2; tail -5 "$LOGDIR/$3.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: $3 did not listen on port $1 within 15 s" >&2; exit 1
}

ports=(9001 9002 "$PORT")
[ $NO_AUTH -eq 0 ] && ports+=("$IDP_PORT")
for p in "${ports[@]}"; do
    port_busy "$p" && { echo "run.sh: port $p is already in use" >&2; exit 1; }
done

URL=http://localhost:$PORT/mcp

if [ $NO_AUTH -eq 0 ]; then
    ISSUER=http://127.0.0.1:$IDP_PORT/realms/mcp
    IDP_PORT=$IDP_PORT ISSUER=$ISSUER DEFAULT_RESOURCE=${OAUTH_RESOURCE:-$URL} \
        node examples/idp/dev-idp.mjs >"$LOGDIR/idp.log" 2>&1 & pids+=($!)
    idp_pid=$!
fi

"$EXAMPLE" --port 9001 --name server1 >"$LOGDIR/server1.log" 2>&1 & pids+=($!)
s1_pid=$!
"$EXAMPLE" --port 9002 --name server2 >"$LOGDIR/server2.log" 2>&1 & pids+=($!)
s2_pid=$!
wait_port 9001 "$s1_pid" server1
wait_port 9002 "$s2_pid" server2
[ $NO_AUTH -eq 0 ] && wait_port "$IDP_PORT" "$idp_pid" idp

if [ -z "${GATEWAY_SIGNING_KEY:-}" ]; then
    GATEWAY_SIGNING_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export GATEWAY_SIGNING_KEY
fi

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

if [ $NO_AUTH -eq 1 ]; then
    cat <<MSG
mcp-gateway is starting on $URL (no authentication)
  upstreams: server1 http://127.0.0.1:9001/mcp (tools s1_*), server2 http://127.0.0.1:9002/mcp (tools s2_*)
  upstream logs: $LOGDIR/   config: $CONFIG   health: http://localhost:$PORT/status

Try it:
  curl -si $URL \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '$INIT'
  # then send the Mcp-Session-Id header it returned with "tools/list", "tools/call", ...

  Interactive: MCP Inspector (see docs/authentication.md), transport "Streamable HTTP", URL $URL

Press Ctrl-C to stop.
MSG
else
    export OAUTH_RESOURCE_NAME=${OAUTH_RESOURCE_NAME:-MCP Server}
    export OAUTH_RESOURCE=${OAUTH_RESOURCE:-$URL}
    export OAUTH_AUTHORIZATION_SERVERS=${OAUTH_AUTHORIZATION_SERVERS:-$ISSUER}
    export OAUTH_BEARER_METHODS_SUPPORTED=${OAUTH_BEARER_METHODS_SUPPORTED:-header}
    export OAUTH_SCOPES_SUPPORTED=${OAUTH_SCOPES_SUPPORTED:-basic,groups,roles,profile}
    ORIGIN=$(printf '%s' "$OAUTH_RESOURCE" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]+).*#\1#')
    cat <<MSG
mcp-gateway is starting on $URL, protected by OAuth 2.1 (the seed guide's flow, on this machine)
  identity provider: $ISSUER   (dev IdP like the seed's Keycloak realm; user mcp, password mcp)
  upstreams: server1 http://127.0.0.1:9001/mcp (tools s1_*), server2 http://127.0.0.1:9002/mcp (tools s2_*)
  logs: $LOGDIR/ (idp.log, server1.log, server2.log)   config: $CONFIG   health: http://localhost:$PORT/status

Protected resource metadata (no token needed):
  curl -s $ORIGIN/.well-known/oauth-protected-resource/mcp

Without a token /mcp answers 401 and points at that metadata:
  curl -si $URL -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

With a token (client_credentials of the test client gw-test, audience = the gateway):
  TOKEN=\$(curl -s -u gw-test:gw-test-secret -d grant_type=client_credentials -d 'scope=basic groups' \\
    --data-urlencode resource=$OAUTH_RESOURCE $ISSUER/protocol/openid-connect/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -si $URL -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '$INIT'

MCP Inspector (the full browser flow: 401 -> metadata -> registration -> login -> token):
  tests/node22/node_modules/.bin/node \\
    tests/node22/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js \\
    --web --transport http --server-url $URL
  (Inspector 2.x needs Node >= 22.19; scripts/deps.sh test installs it there), open the page it
  prints, switch the gateway on, log in as mcp / mcp on the IdP's page. Walkthrough with
  screenshots: docs/authentication.md.

Without authentication: make run RUN_NO_AUTH=1 (or scripts/run.sh --no-auth).
Press Ctrl-C to stop.
MSG
fi

"$GATEWAY" --mcp-gateway-config "$CONFIG" --mcp-broker-public-address "127.0.0.1:$PORT" ${args[@]+"${args[@]}"} &
gw=$!
pids+=("$gw")
set +e
wait "$gw"
rc=$?
exit $rc
