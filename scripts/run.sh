#!/usr/bin/env bash
# `make run`: two example MCP servers in the background and the gateway in the foreground.
#   server1 on :9001, server2 on :9002 (examples/gateway.yaml points at them), gateway on :8080.
# Environment: BUILD (default build), GATEWAY_PORT (default 8080), GATEWAY_SIGNING_KEY (a random one
# for this run when unset). Extra arguments are passed to the gateway. Ctrl-C stops everything.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
GATEWAY=$BUILD/mcp-gateway
EXAMPLE=$BUILD/mcp-example-server
CONFIG=${CONFIG:-examples/gateway.yaml}
PORT=${GATEWAY_PORT:-8080}
LOGDIR=$BUILD/run-logs

for b in "$GATEWAY" "$EXAMPLE"; do
    [ -x "$b" ] || { echo "run.sh: $b not found: build it with make" >&2; exit 1; }
done
mkdir -p "$LOGDIR"

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
    for _ in $(seq 100); do
        port_busy "$1" && return 0
        kill -0 "$2" 2>/dev/null || { echo "run.sh: $3 exited; see $LOGDIR/$3.log" >&2; tail -5 "$LOGDIR/$3.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: $3 did not listen on port $1 within 10 s" >&2; exit 1
}

for p in 9001 9002 "$PORT"; do
    port_busy "$p" && { echo "run.sh: port $p is already in use" >&2; exit 1; }
done

"$EXAMPLE" --port 9001 --name server1 >"$LOGDIR/server1.log" 2>&1 & pids+=($!)
"$EXAMPLE" --port 9002 --name server2 >"$LOGDIR/server2.log" 2>&1 & pids+=($!)
wait_port 9001 "${pids[0]}" server1
wait_port 9002 "${pids[1]}" server2

if [ -z "${GATEWAY_SIGNING_KEY:-}" ]; then
    GATEWAY_SIGNING_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export GATEWAY_SIGNING_KEY
fi

URL=http://localhost:$PORT/mcp
cat <<MSG
mcp-gateway is starting on $URL
  upstreams: server1 http://127.0.0.1:9001/mcp (tools s1_*), server2 http://127.0.0.1:9002/mcp (tools s2_*)
  upstream logs: $LOGDIR/   config: $CONFIG   health: http://localhost:$PORT/status

Try it:
  curl -si $URL \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  # then send the Mcp-Session-Id header it returned with "tools/list", "tools/call", ...

  Interactive: npx @modelcontextprotocol/inspector   (transport "Streamable HTTP", URL $URL)

Press Ctrl-C to stop.
MSG

"$GATEWAY" --mcp-gateway-config "$CONFIG" --mcp-broker-public-address "127.0.0.1:$PORT" "$@" &
gw=$!
pids+=("$gw")
set +e
wait "$gw"
rc=$?
exit $rc
