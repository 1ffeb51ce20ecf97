#!/usr/bin/env bash
# The benchmark: `make bench` (bench/run.sh full, ≤ 10 min on 2 cores) and `make bench-quick`
# (bench/run.sh quick, ≤ 60 s). Everything runs on loopback, started and stopped here, against
# one backend (build/mcp-example-server, tool echo) in one run:
#   direct        loadgen → backend
#   nginx         loadgen → nginx (proxy_pass, upstream keep-alive) → backend
#   gateway       loadgen → build/mcp-gateway --workers 1 → backend       (also --workers 2)
#   gateway_auth  the same with JWT validation (RS256 tokens from a local key, JWKS from nginx)
#   gateway_stdio the gateway in front of the stdio backend below (servers[].command), when the
#                 build serves stdio upstreams (detected; skipped otherwise)
#   peer          loadgen → npm MCP proxy (mcp-proxy, supergateway) → stdio backend (bench/stdio-echo:
#                 both peers only front stdio servers)
# and the gateway alone: 20,000 sessions, 5,000 SSE streams with one notification fanned out,
# tools/list over 10 upstreams (one slow), start-up, JWT verification (src/jwt.h via libgw.a).
#
# CPU layout (the same for every contender; override with BENCH_PROXY_CPU / BENCH_CLIENT_CPU):
#   cpu 0: the proxy under test (nginx worker, gateway, node peer)
#   cpu 1: the load generator and the backend(s)
# Every process of the run (this script's children) runs at nice BENCH_NICE (default -10 as root):
# the same priority for every contender, above the machine's other work, which on a shared
# machine otherwise takes the proxy's core in bursts.
# Output: a table on stdout, bench/results/latest.json (and latest.txt, latest-raw.jsonl).
# Environment: BUILD (default build), BENCH_KEEP=1 keeps the temporary directory (logs),
# BENCH_NICE, BENCH_PROXY_CPU, BENCH_CLIENT_CPU, BENCH_CONNS, BENCH_SESSIONS, BENCH_STREAMS,
# BENCH_COMMIT (what was measured, when not run from a git checkout). See docs/performance.md.
set -euo pipefail

MODE=${1:-quick}
case "$MODE" in quick|full) ;; *) echo "usage: bench/run.sh quick|full" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
RESULTS=$ROOT/bench/results
NPROC=$(nproc)
PROXY_CPU=${BENCH_PROXY_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
if [ "$NPROC" -lt 2 ]; then PROXY_CPU=0; CLIENT_CPU=0; fi
BACKEND_CPU=$CLIENT_CPU

if [ "$MODE" = full ]; then
    DUR=10; WARM=1; REPS=3; RATE_DUR=6; RATE_REPS=3; STARTUP_RUNS=20; FANOUT_RUNS=3; JWT_S=4; WRK=1
else
    DUR=1.5; WARM=0.3; REPS=1; RATE_DUR=1.5; RATE_REPS=1; STARTUP_RUNS=5; FANOUT_RUNS=1; JWT_S=1; WRK=0
fi
CONNS=${BENCH_CONNS:-32}
NICE=${BENCH_NICE:-$([ "$(id -u)" = 0 ] && echo -10 || echo 0)}
[ "$NICE" = 0 ] || renice -n "$NICE" -p $$ >/dev/null 2>&1 || NICE=0
SESSIONS=${BENCH_SESSIONS:-20000}
STREAMS=${BENCH_STREAMS:-5000}
T0=$(date +%s)

log() { printf '[%5.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

for b in mcp-gateway mcp-example-server bench/loadgen bench/stdio-echo bench/jwtkit; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: run make bench (it builds them)"
done
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || die "nginx is missing: run bench/deps.sh"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -d bench/node_modules/mcp-proxy ] || die "bench/node_modules is missing: run bench/deps.sh"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

TMP=$(mktemp -d /tmp/mcp-bench.XXXXXX)
RAW=$TMP/raw.jsonl
: >"$RAW"
# One binary for the whole run, even if build/ is rebuilt meanwhile.
mkdir -p "$TMP/bin" "$TMP/logs"
for b in mcp-gateway mcp-example-server bench/loadgen bench/stdio-echo bench/jwtkit; do cp "$BUILD/$b" "$TMP/bin/"; done
BIN=$TMP/bin
LG=$BIN/loadgen
export GATEWAY_SIGNING_KEY=${GATEWAY_SIGNING_KEY:-bench-signing-key-0123456789abcdef0123456789}

# ---- processes ------------------------------------------------------------------------------------
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for i in "${!PIDS[@]}"; do kill -TERM -- "-${PIDS[$i]}" 2>/dev/null || kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ $rc -ne 0 ] || [ "${BENCH_KEEP:-}" = 1 ]; then
        echo "bench: logs in $TMP/logs" >&2
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CPU cmd... — in its own process group (so its children go with it); sets $LAST_PID
start() {
    local name=$1 cpu=$2; shift 2
    setsid taskset -c "$cpu" "$@" >"$TMP/logs/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
stop() {   # stop PID...: TERM to their groups, wait up to 3 s, then KILL
    local p left
    for p in "$@"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 30); do
        left=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
        [ $left -eq 0 ] && { forget "$@"; return 0; }
        sleep 0.1
    done
    for p in "$@"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    forget "$@"
}
forget() {   # forget PID...: no longer ours to stop at exit (their ids may be reused)
    local keep=() p q drop
    for p in "${PIDS[@]}"; do
        drop=0
        for q in "$@"; do [ "$p" = "$q" ] && drop=1; done
        [ $drop -eq 0 ] && keep+=("$p")
    done
    PIDS=("${keep[@]}")
}
alive() { kill -0 "$1" 2>/dev/null || die "$2 died; its log: $TMP/logs/$2.log ($(tail -3 "$TMP/logs/$2.log" 2>/dev/null | tr '\n' ' '))"; }

USED_PORTS=" "
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {   # pick_port VAR: a free port below the ephemeral range
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        port_busy "$p" && continue
        USED_PORTS="$USED_PORTS$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "no free port"
}
wait_port() {   # wait_port PORT PID NAME
    for _ in $(seq 200); do
        port_busy "$1" && return 0
        alive "$2" "$3"
        sleep 0.05
    done
    die "$3 does not listen on $1"
}
wait_ready() {  # wait_ready URL PID NAME: HTTP 200
    for _ in $(seq 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
        alive "$2" "$3"
        sleep 0.05
    done
    die "$3: $1 never answered 200"
}

# check_port PORT PID NAME: nobody but PID (and its children) listens on PORT. The gateway binds
# with SO_REUSEPORT, so another process of the same user can bind the same port later and the
# kernel then splits the connections between the two: a benchmark on a shared machine must look.
check_port() {
    command -v ss >/dev/null 2>&1 || return 0
    local o
    for o in $(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | sed 's/pid=//' | sort -u); do
        [ "$o" = "$2" ] && continue
        [ "$(ps -o ppid= -p "$o" 2>/dev/null | tr -d ' ')" = "$2" ] && continue
        die "port $1 ($3) is also listened on by pid $o ($(ps -o args= -p "$o" 2>/dev/null | cut -c1-100)), which bound it with SO_REUSEPORT: rerun"
    done
}

# record KEY JSON: one line of raw results
record() { printf '{"key":"%s","data":%s}\n' "$1" "$2" >>"$RAW"; }

# ---- machine -----------------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
# what was measured: BENCH_COMMIT, or the checkout's commit (+dirty when src/ has local changes)
if [ -n "${BENCH_COMMIT:-}" ]; then COMMIT=$BENCH_COMMIT
elif git rev-parse --git-dir >/dev/null 2>&1; then
    COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src 2>/dev/null || echo +dirty)
else COMMIT=unknown; fi
read -r LOAD1 _ < /proc/loadavg
record machine "$(printf '{"nproc":%s,"nice":%s,"cpu_model":"%s","kernel":"%s","mem_kb":%s,"loadavg_start":%s,"mode":"%s","proxy_cpu":%s,"client_cpu":%s,"backend_cpu":%s,"conns":%s,"duration_s":%s,"warmup_s":%s,"reps":%s,"nginx":"%s","node":"%s","date":"%s","commit":"%s"}' \
    "$NPROC" "$NICE" "$CPU_MODEL" "$(uname -r)" "$(awk '/MemTotal/{print $2}' /proc/meminfo)" "$LOAD1" "$MODE" "$PROXY_CPU" "$CLIENT_CPU" \
    "$BACKEND_CPU" "$CONNS" "$DUR" "$WARM" "$REPS" "$($NGINX -v 2>&1 | sed 's/.*nginx\///')" "$(node --version)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$COMMIT")"
log "mode $MODE: $NPROC cpus ($CPU_MODEL), proxy on cpu $PROXY_CPU, loadgen and backend on cpu $CLIENT_CPU, nice $NICE, load average $LOAD1"

# ---- the backend(s) ----------------------------------------------------------------------------------
pick_port P_BACKEND
start backend "$BACKEND_CPU" "$BIN/mcp-example-server" --port "$P_BACKEND" --name backend --max-sessions 100000
BACKEND_PID=$LAST_PID
wait_port "$P_BACKEND" "$BACKEND_PID" backend
BACKEND_URL=http://127.0.0.1:$P_BACKEND/mcp

# peers: npm MCP proxies in front of the stdio backend (neither fronts an HTTP server); node starts
# slowly, so they start first and are waited for later
pick_port P_MP; pick_port P_SG
STDIO_CMD="taskset -c $BACKEND_CPU $BIN/stdio-echo"
start peer_mcp-proxy "$PROXY_CPU" node bench/node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs --port "$P_MP" \
    --host 127.0.0.1 --server stream --no-eventStore -- taskset -c "$BACKEND_CPU" "$BIN/stdio-echo"
MP_PID=$LAST_PID
start peer_supergateway "$PROXY_CPU" node bench/node_modules/supergateway/dist/index.js --stdio "$STDIO_CMD" \
    --outputTransport streamableHttp --stateful --port "$P_SG" --logLevel none
SG_PID=$LAST_PID

# ---- keys and the auxiliary nginx (static JWKS; the slow upstream of the fan-out test) --------------
mkdir -p "$TMP/keys" "$TMP/www"
"$BIN/jwtkit" keygen "$TMP/keys"
cp "$TMP/keys/jwks.json" "$TMP/www/jwks.json"
chmod 755 "$TMP" "$TMP/www"; chmod 644 "$TMP/www/jwks.json"   # nginx workers run as an unprivileged user
pick_port P_AUX; pick_port P_SLOW
pick_port P_NGINX
nginx_conf() {   # nginx_conf DIR BODY
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
$2
}
EOF
}
# the slow upstream: the backend behind nginx delaying every request to 5 per second
nginx_conf "$TMP/nginx-aux" "  types { application/json json; }
  limit_req_zone \$server_port zone=slow:1m rate=5r/s;
  server { listen 127.0.0.1:$P_AUX; root $TMP/www; }
  server {
    listen 127.0.0.1:$P_SLOW;
    location / {
      limit_req zone=slow burst=100;
      proxy_pass http://127.0.0.1:$P_BACKEND;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_buffering off;
    }
  }"
start nginx-aux "$BACKEND_CPU" "$NGINX" -c "$TMP/nginx-aux/nginx.conf" -e "$TMP/nginx-aux/error.log"
AUX_PID=$LAST_PID
wait_port "$P_AUX" "$AUX_PID" nginx-aux

# ---- contenders ------------------------------------------------------------------------------------------
# nginx: the L7 baseline, one worker, upstream keep-alive
nginx_conf "$TMP/nginx" "  upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
start nginx "$PROXY_CPU" "$NGINX" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
NGINX_MASTER=$LAST_PID
wait_port "$P_NGINX" "$NGINX_MASTER" nginx
NGINX_PID=$(pgrep -P "$NGINX_MASTER" | head -1)
[ -n "$NGINX_PID" ] || die "nginx has no worker process"

# the gateway: config with the one backend, tools as b_<name>
cat >"$TMP/gateway.yaml" <<EOF
servers:
  - name: backend
    url: $BACKEND_URL
    prefix: b_
EOF
gw_start() {   # gw_start NAME PORT WORKERS CONFIG [ENV=VALUE...]: sets LAST_PID
    local name=$1 port=$2 workers=$3 cfg=$4; shift 4
    start "$name" "$PROXY_CPU" env "$@" "$BIN/mcp-gateway" --mcp-gateway-config "$cfg" \
        --mcp-broker-public-address "127.0.0.1:$port" --workers "$workers"
}
pick_port P_GW1; pick_port P_GW2; pick_port P_GWA
gw_start gateway "$P_GW1" 1 "$TMP/gateway.yaml"; GW1_PID=$LAST_PID
gw_start gateway_w2 "$P_GW2" 2 "$TMP/gateway.yaml"; GW2_PID=$LAST_PID

ISSUER=http://127.0.0.1:$P_AUX/realms/bench
RESOURCE=http://127.0.0.1:$P_GWA/mcp
cat >"$TMP/gateway-auth.yaml" <<EOF
servers:
  - name: backend
    url: $BACKEND_URL
    prefix: b_
auth:
  issuers:
    - issuerUrl: $ISSUER
      jwksUri: http://127.0.0.1:$P_AUX/jwks.json
EOF
gw_start gateway_auth "$P_GWA" 1 "$TMP/gateway-auth.yaml" OAUTH_RESOURCE="$RESOURCE"; GWA_PID=$LAST_PID
# the gateway in front of the peers' stdio backend (servers[].command), when this build has it
cat >"$TMP/gateway-stdio.yaml" <<EOF
servers:
  - name: stdio
    command: taskset
    args: ["-c", "$BACKEND_CPU", "$BIN/stdio-echo"]
    prefix: s_
EOF
pick_port P_GWS1
GWS_PID=
if "$BIN/mcp-gateway" --mcp-gateway-config "$TMP/gateway-stdio.yaml" --check-config >/dev/null 2>&1; then
    gw_start gateway_stdio "$P_GWS1" 1 "$TMP/gateway-stdio.yaml"; GWS_PID=$LAST_PID
fi
TOKEN=$("$BIN/jwtkit" mint "$TMP/keys" RS256 "$ISSUER" "$RESOURCE" 7200)
AUTH_HDR="Authorization: Bearer $TOKEN"

wait_ready "http://127.0.0.1:$P_GW1/readyz" "$GW1_PID" gateway
wait_ready "http://127.0.0.1:$P_GW2/readyz" "$GW2_PID" gateway_w2
wait_ready "http://127.0.0.1:$P_GWA/readyz" "$GWA_PID" gateway_auth
if [ -n "$GWS_PID" ]; then
    deadline=$((SECONDS + 3))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_GWS1/readyz")" = 200 ] && break
        sleep 0.1
    done
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_GWS1/readyz")" != 200 ]; then
        log "gateway_stdio: this build does not serve stdio upstreams ($(grep -m1 -o 'warn .*' "$TMP/logs/gateway_stdio.log" | cut -c1-100)); not measured"
        stop "$GWS_PID"
        GWS_PID=
    fi
fi
# the auth gateway fetches its JWKS in the background: wait until a token is accepted
for i in $(seq 100); do
    "$LG" --mode init --port "$P_GWA" --header "$AUTH_HDR" >/dev/null 2>&1 && break
    [ "$i" = 100 ] && die "gateway_auth never accepted the token"
    alive "$GWA_PID" gateway_auth
    sleep 0.05
done
# and without a token it refuses (the auth path really is on)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$RESOURCE" -H 'content-type: application/json' \
       -H 'accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"ping"}')
[ "$code" = 401 ] || die "gateway_auth answered $code without a token (expected 401)"

wait_port "$P_MP" "$MP_PID" peer_mcp-proxy
wait_port "$P_SG" "$SG_PID" peer_supergateway
log "backend :$P_BACKEND, nginx :$P_NGINX, gateway :$P_GW1 (w1) :$P_GW2 (w2) :$P_GWA (auth), mcp-proxy :$P_MP, supergateway :$P_SG"

# ---- throughput (closed loop), interleaved repetitions ---------------------------------------------------
# contender: name port tool proxy-pid [header]
CONTENDERS=(
    "direct|$P_BACKEND|echo|"
    "nginx|$P_NGINX|echo|$NGINX_PID"
    "gateway|$P_GW1|b_echo|$GW1_PID"
    "gateway_w2|$P_GW2|b_echo|$GW2_PID"
    "gateway_auth|$P_GWA|b_echo|$GWA_PID"
    ${GWS_PID:+"gateway_stdio|$P_GWS1|s_echo|$GWS_PID"}
    "peer_mcp-proxy|$P_MP|echo|$MP_PID"
    "peer_supergateway|$P_SG|echo|$SG_PID"
)
loadgen() {   # loadgen NAME PORT TOOL PID MODE-ARGS...
    local name=$1 port=$2 tool=$3 pid=$4; shift 4
    local hdr=()
    [ "$name" = gateway_auth ] && hdr=(--header "$AUTH_HDR")
    local cpu=()
    [ -n "$pid" ] && cpu=(--cpu-pid "proxy=$pid")
    taskset -c "$CLIENT_CPU" "$LG" --port "$port" --tool "$tool" "${hdr[@]}" "${cpu[@]}" --cpu-pid "backend=$BACKEND_PID" \
        --label "$name" "$@" 2>>"$TMP/logs/loadgen.log"
}
check_ports() {
    for c in "${CONTENDERS[@]}"; do
        IFS='|' read -r name port tool pid <<<"$c"
        [ -n "$pid" ] || pid=$BACKEND_PID
        [ "$name" = nginx ] && pid=$NGINX_MASTER
        check_port "$port" "$pid" "$name"
    done
}
check_ports
declare -A PEAK
for rep in $(seq "$REPS"); do
    for c in "${CONTENDERS[@]}"; do
        IFS='|' read -r name port tool pid <<<"$c"
        [ -n "$pid" ] && alive "$pid" "$name"
        out=$(loadgen "$name" "$port" "$tool" "$pid" --mode throughput --conns "$CONNS" --duration "$DUR" --warmup "$WARM") ||
            die "loadgen failed against $name (exit status $?; see $TMP/logs/loadgen.log)"
        record "tp.$name" "$out"
        rps=$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$out")
        errs=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' <<<"$out")
        PEAK[$name]=$rps
        log "throughput $name (rep $rep/$REPS): $rps calls/s, $errs errors"
    done
done

# ---- latency at a fixed rate: half of the gateway's peak ---------------------------------------------------
GW_PEAK=$(grep '"key":"tp.gateway"' "$RAW" | sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
RATE=$(awk -v p="$GW_PEAK" 'BEGIN{r=int(p/2); if (r<100) r=100; print r}')
record rate "{\"rate\":$RATE,\"gateway_peak\":$GW_PEAK}"
for rep in $(seq "$RATE_REPS"); do
    for c in "${CONTENDERS[@]}"; do
        IFS='|' read -r name port tool pid <<<"$c"
        r=$RATE
        case "$name" in peer_*) r=$(awk -v p="${PEAK[$name]}" 'BEGIN{r=int(p/2); if (r<10) r=10; print r}') ;; esac
        # the peers and --workers 2: once, in the full run only
        case "$name" in peer_*|gateway_w2|gateway_stdio) [ "$MODE" = quick ] || [ "$rep" -gt 1 ] && continue ;; esac
        out=$(loadgen "$name" "$port" "$tool" "$pid" --mode rate --rate "$r" --conns 64 --duration "$RATE_DUR" --warmup "$WARM") ||
            die "loadgen (rate) failed against $name (exit status $?; see $TMP/logs/loadgen.log)"
        record "lat.$name" "$out"
        log "latency $name at $r/s (rep $rep/$RATE_REPS): p50 $(sed -n 's/.*"p50_us":\([0-9.]*\).*/\1/p' <<<"$out") µs, p99 $(sed -n 's/.*"p99_us":\([0-9.]*\).*/\1/p' <<<"$out") µs, achieved $(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$out")/s"
    done
done

check_ports

# peak RSS of the proxies after the load
for c in "${CONTENDERS[@]}"; do
    IFS='|' read -r name port tool pid <<<"$c"
    [ -n "$pid" ] || continue
    record "mem.$name" "{\"rss_kb\":$(awk '/^VmRSS/{print $2}' "/proc/$pid/status"),\"hwm_kb\":$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")}"
done

# ---- wrk cross-check (full run): the same POST on one session per contender -------------------------------
if [ "$WRK" = 1 ] && command -v wrk >/dev/null 2>&1; then
    for c in "direct|$P_BACKEND|echo|" "nginx|$P_NGINX|echo|$NGINX_PID" "gateway|$P_GW1|b_echo|$GW1_PID"; do
        IFS='|' read -r name port tool pid <<<"$c"
        read -r sid proto < <("$LG" --mode init --port "$port")
        cat >"$TMP/wrk-$name.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"$tool","arguments":{"text":"hello"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Mcp-Session-Id"] = "$sid"
wrk.headers["MCP-Protocol-Version"] = "$proto"
EOF
        out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d5s -s "$TMP/wrk-$name.lua" "http://127.0.0.1:$port/mcp" 2>&1)
        rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
        non2xx=$(awk '/Non-2xx/{print $NF}' <<<"$out")
        record "wrk.$name" "{\"rps\":${rps:-0},\"non2xx\":${non2xx:-0}}"
        log "wrk $name: $rps requests/s ${non2xx:+($non2xx non-2xx)}"
    done
fi

# the load contenders are done: stop them so the memory tests run on a quiet machine
stop "$MP_PID" "$SG_PID" "$GW2_PID" "$GWA_PID" "$NGINX_MASTER" "$GW1_PID" $GWS_PID

# ---- sessions and SSE streams, on a fresh gateway ------------------------------------------------------------
pick_port P_GWM
gw_start gateway_mem "$P_GWM" 1 "$TMP/gateway.yaml"; GWM_PID=$LAST_PID
wait_ready "http://127.0.0.1:$P_GWM/readyz" "$GWM_PID" gateway_mem
out=$(taskset -c "$CLIENT_CPU" "$LG" --mode sessions --port "$P_GWM" --count "$SESSIONS" --conns 50 --rss-pid "$GWM_PID" \
      --label gateway 2>>"$TMP/logs/loadgen.log") || die "loadgen (sessions) failed"
record sessions "$out"
log "sessions: $(sed -n 's/.*"count":\([0-9]*\),"errors":\([0-9]*\).*"rss_bytes_per_session":\([0-9.]*\).*/\1 created, \2 errors, \3 bytes RSS each/p' <<<"$out")"
out=$(taskset -c "$CLIENT_CPU" "$LG" --mode sse --port "$P_GWM" --streams "$STREAMS" --conns 50 --rss-pid "$GWM_PID" \
      --trigger b_toggle --label gateway 2>>"$TMP/logs/loadgen.log") || die "loadgen (sse) failed"
record sse "$out"
log "sse: $(sed -n 's/.*"opened":\([0-9]*\).*"rss_bytes_per_stream":\([0-9.-]*\).*"notified":\([0-9]*\).*"fanout_last_ms":\([0-9.-]*\).*/\1 streams, \2 bytes RSS each, \3 notified, last after \4 ms/p' <<<"$out")"
record mem.gateway_mem "{\"rss_kb\":$(awk '/^VmRSS/{print $2}' "/proc/$GWM_PID/status"),\"hwm_kb\":$(awk '/^VmHWM/{print $2}' "/proc/$GWM_PID/status")}"
stop "$GWM_PID"

# ---- start-up: exec → first accepted connection ------------------------------------------------------------------
pick_port P_GWS
out=$("$LG" --mode startup --port "$P_GWS" --runs "$STARTUP_RUNS" --cpu "$PROXY_CPU" --log "$TMP/logs/startup.log" -- \
      "$BIN/mcp-gateway" --mcp-gateway-config "$TMP/gateway.yaml" --mcp-broker-public-address "127.0.0.1:$P_GWS" --workers 1 \
      2>>"$TMP/logs/loadgen.log") || die "loadgen (startup) failed"
record startup "$out"
log "start-up: $(sed -n 's/.*"connect_ms_median":\([0-9.]*\),"healthz_ms_median":\([0-9.]*\).*/first connection \1 ms, first answer \2 ms (medians)/p' <<<"$out")"
# the same measure for two baselines on this machine: the example server (the same shared
# libraries, no configuration, no threads) and nginx
out=$("$LG" --mode startup --port "$P_GWS" --runs "$STARTUP_RUNS" --cpu "$PROXY_CPU" --log "$TMP/logs/startup-example.log" -- \
      "$BIN/mcp-example-server" --port "$P_GWS" 2>>"$TMP/logs/loadgen.log") || die "loadgen (startup, example server) failed"
record startup_example "$out"
nginx_conf "$TMP/nginx-startup" "  server { listen 127.0.0.1:$P_GWS; location /healthz { return 200 ok; } }"
out=$("$LG" --mode startup --port "$P_GWS" --runs "$STARTUP_RUNS" --cpu "$PROXY_CPU" --log "$TMP/logs/startup-nginx.log" -- \
      "$NGINX" -c "$TMP/nginx-startup/nginx.conf" -e "$TMP/nginx-startup/error.log" 2>>"$TMP/logs/loadgen.log") || die "loadgen (startup, nginx) failed"
record startup_nginx "$out"
log "start-up baselines: example server $(sed -n 's/.*"connect_ms_median":\([0-9.]*\).*/\1/p' <<<"$(grep startup_example "$RAW")") ms, nginx $(sed -n 's/.*"connect_ms_median":\([0-9.]*\).*/\1/p' <<<"$out") ms"

# ---- fan-out: tools/list over 10 upstreams (9 example servers, 1 behind nginx limit_req 5 r/s) ---------------
{
    echo "servers:"
    for i in $(seq 0 8); do
        pick_port "P_F$i"
        eval "pf=\$P_F$i"
        start "fanout-$i" "$BACKEND_CPU" "$BIN/mcp-example-server" --port "$pf" --name "f$i"
        eval "FPID_$i=$LAST_PID"
        printf '  - name: f%s\n    url: http://127.0.0.1:%s/mcp\n    prefix: f%s_\n' "$i" "$pf" "$i"
    done
    printf '  - name: slow\n    url: http://127.0.0.1:%s/mcp\n    prefix: f9_\n' "$P_SLOW"
} >"$TMP/gateway-fanout.yaml"
for i in $(seq 0 8); do eval "wait_port \$P_F$i \$FPID_$i fanout-$i"; done
EXPECT=$(seq 0 9 | sed 's/^/f/; s/$/_echo/' | paste -sd,)
pick_port P_GWF
out=$("$LG" --mode startup --port "$P_GWF" --runs "$FANOUT_RUNS" --cpu "$PROXY_CPU" --expect "$EXPECT" --timeout 15 \
      --log "$TMP/logs/fanout-cold.log" -- "$BIN/mcp-gateway" --mcp-gateway-config "$TMP/gateway-fanout.yaml" \
      --mcp-broker-public-address "127.0.0.1:$P_GWF" --workers 1 2>>"$TMP/logs/loadgen.log") || die "loadgen (fan-out cold) failed"
record fanout_cold "$out"
log "fan-out cold: all 10 upstreams listed after $(sed -n 's/.*"all_expected_ms":\([0-9.-]*\).*/\1/p' <<<"$out") ms"
gw_start gateway_fanout "$P_GWF" 1 "$TMP/gateway-fanout.yaml"; GWF_PID=$LAST_PID
wait_port "$P_GWF" "$GWF_PID" gateway_fanout
for i in $(seq 300); do   # until the slow upstream is listed too
    n=$(curl -s "http://127.0.0.1:$P_GWF/readyz" | sed -n 's/.*"healthyServers":\([0-9]*\).*/\1/p')
    [ "${n:-0}" = 10 ] && break
    alive "$GWF_PID" gateway_fanout
    sleep 0.05
done
[ "${n:-0}" = 10 ] || die "gateway_fanout: only ${n:-0} of 10 upstreams became ready"
LIST_DUR=$DUR; [ "$MODE" = quick ] && LIST_DUR=1
out=$(taskset -c "$CLIENT_CPU" "$LG" --mode throughput --method tools/list --port "$P_GWF" --conns 1 --duration "$LIST_DUR" \
      --warmup "$WARM" --cpu-pid "proxy=$GWF_PID" --label fanout_1conn 2>>"$TMP/logs/loadgen.log") || die "loadgen (tools/list) failed"
record fanout_cached_1 "$out"
out=$(taskset -c "$CLIENT_CPU" "$LG" --mode throughput --method tools/list --port "$P_GWF" --conns "$CONNS" --duration "$LIST_DUR" \
      --warmup "$WARM" --cpu-pid "proxy=$GWF_PID" --label fanout 2>>"$TMP/logs/loadgen.log") || die "loadgen (tools/list) failed"
record fanout_cached "$out"
log "fan-out cached: tools/list $(sed -n 's/.*"rps":\([0-9.]*\).*"us_per_call":\([0-9.]*\).*/\1 lists\/s, \2 µs CPU each/p' <<<"$out")"

# ---- JWT: src/jwt.h through libgw.a -------------------------------------------------------------------------------
out=$(taskset -c "$PROXY_CPU" "$BIN/jwtkit" bench "$TMP/keys" "$ISSUER" "$RESOURCE" "$JWT_S") || die "jwtkit bench failed"
record jwt "$out"
log "jwt: $out"

read -r LOAD1 _ < /proc/loadavg
record machine_end "{\"loadavg_end\":$LOAD1,\"seconds\":$(( $(date +%s) - T0 ))}"

# ---- report --------------------------------------------------------------------------------------------------------
mkdir -p "$RESULTS"
cp "$RAW" "$RESULTS/latest-raw.jsonl"
node bench/report.mjs "$RAW" "$RESULTS/latest.json" | tee "$RESULTS/latest.txt"
log "done in $(( $(date +%s) - T0 )) s: bench/results/latest.json"
