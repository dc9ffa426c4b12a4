#!/usr/bin/env bash
# Runs the load scenarios against baseline-naive, baseline-bare and, when its binary builds,
# tether's hub (`tether serve`), one server after the other for each scenario, and writes
# benches/results/<date>.md (tables), <date>.svg (chart) and <date>.jsonl (raw results).
#
# Every server listens on 127.0.0.1 and the generator only targets loopback.
#
# Settings (environment):
#   ROUNDS=1           rounds of every scenario; with more, tables show medians and the
#                      server order rotates each round
#   DURATION=10        measured window of throughput and latency, seconds
#   WARMUP=2           warmup before each window, seconds
#   SELF_RATE=1000000  --self-publish rate of throughput-self (high enough to saturate)
#   LATENCY_RATE=20000 events/s of the latency scenarios
#   STORM_RATE=20000   events/s published during the storm
#   SESSIONS=1000      sessions of throughput and latency
#   IDLE_CONNS=15000   connections of the idle scenario
#   STORM_SESSIONS=5000
#   FLOOD_CONNS=15000  idle connections of idle-flood (the generator's fd limit is the bound)
#   FLOOD_MAX_CONNS=10000  the hub's --max-connections in idle-flood, below FLOOD_CONNS so
#                      the flood overflows the cap
#   FLOOD_ROUNDS=200   legitimate rounds (health check, subscribe + publish) during the flood
#   FLOOD_DURATION=20  seconds the rounds are spread over
#   AGUI_SELF_RATE=1000000  --self-publish-agui rate of agui-self (high enough to saturate)
#   AGUI_HTTP_RATE=    events/s offered in agui-http and agui-batch-http (empty: as fast as
#                      the server answers)
#   AGUI_RECONNECT_RATE=20000  events/s of agui-reconnect-self and agui-reconnect-http
#   RECONNECT_EVERY=3  seconds between a client's reconnects on average in agui-reconnect-*
#   SERVERS="naive bare tether"   (also: tether-noagui = the hub with --no-agui, whose AG-UI
#                      tables get a tracker-share row; redis1 = the hub with --redis on one
#                      node, redis2 = two hubs on one Redis, clients on one, the generator
#                      publishing on the other; both need redis-server and run only the HTTP
#                      scenarios; their server CPU sums the hubs and redis-server)
#   SCENARIOS="throughput-http throughput-self latency-http latency-self idle idle-flood storm-self"
#                      (storm-http is available too; idle-flood runs on tether only: the
#                      baselines have no connection cap to overflow; the AG-UI scenarios
#                      agui-self, agui-http, agui-batch-http, agui-reconnect-self and
#                      agui-reconnect-http run when named, the -self ones on the hub only, e.g.
#                      SERVERS="tether tether-noagui" SCENARIOS="agui-self agui-http")
#   OUT=benches/results/<date>   output path without extension
set -euo pipefail

cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SELF_RATE=${SELF_RATE:-1000000}
LATENCY_RATE=${LATENCY_RATE:-20000}
STORM_RATE=${STORM_RATE:-20000}
SESSIONS=${SESSIONS:-1000}
IDLE_CONNS=${IDLE_CONNS:-15000}
STORM_SESSIONS=${STORM_SESSIONS:-5000}
FLOOD_CONNS=${FLOOD_CONNS:-15000}
FLOOD_MAX_CONNS=${FLOOD_MAX_CONNS:-10000}
FLOOD_ROUNDS=${FLOOD_ROUNDS:-200}
FLOOD_DURATION=${FLOOD_DURATION:-20}
AGUI_SELF_RATE=${AGUI_SELF_RATE:-1000000}
AGUI_HTTP_RATE=${AGUI_HTTP_RATE:-}
AGUI_RECONNECT_RATE=${AGUI_RECONNECT_RATE:-20000}
RECONNECT_EVERY=${RECONNECT_EVERY:-3}
SERVERS=${SERVERS:-"naive bare tether"}
SCENARIOS=${SCENARIOS:-"throughput-http throughput-self latency-http latency-self idle idle-flood storm-self"}
DATE=$(date -u +%Y-%m-%d)
OUT=${OUT:-benches/results/$DATE}

started=$(date +%s)
log() { printf '[%4ds] %s\n' "$(($(date +%s) - started))" "$*" >&2; }

# 15,000 connections need 15,000 descriptors in the server and in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# One cargo invocation for everything the run needs, so shared dependencies are built once
# with one set of features; the baselines only when they run.
packages=(-p tether-load)
for s in naive bare; do
    if [[ " $SERVERS " == *" $s "* ]]; then packages+=(-p "baseline-$s"); fi
done
tether_bin=""
if [[ " $SERVERS " == *" tether "* || " $SERVERS " == *" tether-noagui "* || " $SERVERS " == *" redis"* ]]; then
    log "building the generator, baselines and tether's hub (release)"
    if cargo build --release "${packages[@]}" -p tether-cli >/dev/null 2>&1 &&
        [[ -x target/release/tether ]]; then
        tether_bin=target/release/tether
    else
        log "target/release/tether does not build: tether is skipped"
    fi
fi
if [[ -z $tether_bin ]]; then
    log "building the generator and baselines (release)"
    cargo build --release "${packages[@]}"
fi

servers=()
for s in $SERVERS; do
    if [[ ($s == tether || $s == tether-noagui || $s == redis*) && -z $tether_bin ]]; then continue; fi
    if [[ $s == redis* ]] && ! command -v redis-server >/dev/null; then
        log "redis-server is not installed: $s is skipped"
        continue
    fi
    servers+=("$s")
done

mkdir -p "$(dirname "$OUT")"
jsonl=$(mktemp)
server_log=$(mktemp)
SERVER_PID=""
# More processes of the server under test (the other node, redis-server): their CPU counts as
# the server's, and they stop with it.
EXTRA_PIDS=()
# Extra generator flags for the server under test (redis2 publishes on the other node).
GEN_EXTRA=()
# Extra flags of tether's hub for the scenario being run (idle-flood's connection cap).
HUB_FLAGS=()
# The flag that makes a server publish in-process at the scenario's rate.
SELF_FLAG=--self-publish
cleanup() {
    for pid in $SERVER_PID "${EXTRA_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -f "$jsonl" "$server_log"
}
trap cleanup EXIT

# Ports below the ephemeral range, so they never collide with the generator's own sockets.
next_port=$((21000 + RANDOM % 4000))
free_port() {
    while ss -Hltn "sport = :$next_port" | grep -q .; do next_port=$((next_port + 1)); done
    echo "$next_port"
    next_port=$((next_port + 1))
}

# wait_listening PID PORT NAME: waits until PID accepts on 127.0.0.1:PORT.
wait_listening() {
    local pid=$1 port=$2 name=$3
    for _ in $(seq 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited at start: $(tail -n 3 "$server_log")"
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$name did not listen on 127.0.0.1:$port"
    return 1
}

# start_redis: a redis-server on a free loopback port, no persistence; sets REDIS_URL and adds
# it to EXTRA_PIDS.
start_redis() {
    local port
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --maxmemory-policy noeviction >>"$server_log" 2>&1 &
    EXTRA_PIDS+=($!)
    REDIS_URL="redis://127.0.0.1:$port"
    wait_listening "$!" "$port" redis-server
}

# start_server NAME RATE: starts it on 127.0.0.1, sets SERVER_PID and PORT (the node the clients
# connect to), waits until it accepts.
start_server() {
    local name=$1 rate=$2 cmd
    EXTRA_PIDS=()
    GEN_EXTRA=()
    case $name in
        naive) cmd=(target/release/baseline-naive) ;;
        bare) cmd=(target/release/baseline-bare) ;;
        tether) cmd=("$tether_bin" serve --dev "${HUB_FLAGS[@]}") ;;
        tether-noagui) cmd=("$tether_bin" serve --dev --no-agui "${HUB_FLAGS[@]}") ;;
        redis1 | redis2)
            start_redis || { stop_server; return 1; }
            cmd=("$tether_bin" serve --dev --redis "$REDIS_URL")
            ;;
        *) log "unknown server $name"; return 1 ;;
    esac
    if [[ $name == redis2 ]]; then
        # The publishing node: every event crosses Redis to the clients' node.
        local pub_port
        pub_port=$(free_port)
        "${cmd[@]}" --addr "127.0.0.1:$pub_port" >>"$server_log" 2>&1 &
        EXTRA_PIDS+=($!)
        wait_listening "$!" "$pub_port" "$name (publishing node)" || { stop_server; return 1; }
        GEN_EXTRA=(--publish-url "http://127.0.0.1:$pub_port")
    fi
    for pid in "${EXTRA_PIDS[@]}"; do GEN_EXTRA+=(--cpu-pid "$pid"); done
    PORT=$(free_port)
    cmd+=(--addr "127.0.0.1:$PORT")
    if ((rate > 0)); then cmd+=("$SELF_FLAG" "$rate"); fi
    "${cmd[@]}" >>"$server_log" 2>&1 &
    SERVER_PID=$!
    if wait_listening "$SERVER_PID" "$PORT" "$name"; then return 0; fi
    stop_server
    return 1
}

stop_server() {
    for pid in $SERVER_PID "${EXTRA_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PID=""
    EXTRA_PIDS=()
}

# run_one SCENARIO SERVER ROUND
run_one() {
    local scenario=$1 server=$2 round=$3 rate=0 gen
    local window=(--warmup "$WARMUP" --duration "$DURATION")
    local agui_rate=()
    if [[ -n $AGUI_HTTP_RATE ]]; then agui_rate=(--rate "$AGUI_HTTP_RATE"); fi
    local reconnect=(--reconnect-every "$RECONNECT_EVERY" --verify)
    HUB_FLAGS=()
    SELF_FLAG=--self-publish
    case $scenario in
        throughput-http) gen=(throughput --publish http --sessions "$SESSIONS" "${window[@]}") ;;
        throughput-self) rate=$SELF_RATE; gen=(throughput --publish self --rate "$SELF_RATE" --sessions "$SESSIONS" "${window[@]}") ;;
        latency-http) gen=(latency --publish http --rate "$LATENCY_RATE" --sessions "$SESSIONS" "${window[@]}") ;;
        latency-self) rate=$LATENCY_RATE; gen=(latency --publish self --rate "$LATENCY_RATE" --sessions "$SESSIONS" "${window[@]}") ;;
        idle) gen=(idle --connections "$IDLE_CONNS") ;;
        idle-flood)
            gen=(idle-flood --connections "$FLOOD_CONNS" --rounds "$FLOOD_ROUNDS" --duration "$FLOOD_DURATION")
            HUB_FLAGS=(--max-connections "$FLOOD_MAX_CONNS")
            ;;
        storm-self) rate=$STORM_RATE; gen=(storm --publish self --rate "$STORM_RATE" --sessions "$STORM_SESSIONS") ;;
        storm-http) gen=(storm --publish http --rate "$STORM_RATE" --sessions "$STORM_SESSIONS") ;;
        agui-self)
            rate=$AGUI_SELF_RATE SELF_FLAG=--self-publish-agui
            gen=(agui --publish self --rate "$AGUI_SELF_RATE" --sessions "$SESSIONS" "${window[@]}")
            ;;
        agui-http) gen=(agui --publish http "${agui_rate[@]}" --sessions "$SESSIONS" "${window[@]}") ;;
        agui-batch-http) gen=(agui --publish http --batch-bursts "${agui_rate[@]}" --sessions "$SESSIONS" "${window[@]}") ;;
        agui-reconnect-self)
            rate=$AGUI_RECONNECT_RATE SELF_FLAG=--self-publish-agui
            gen=(agui --publish self --rate "$AGUI_RECONNECT_RATE" "${reconnect[@]}" --sessions "$SESSIONS" "${window[@]}")
            ;;
        agui-reconnect-http)
            gen=(agui --publish http --rate "$AGUI_RECONNECT_RATE" --publishers 4 "${reconnect[@]}" --sessions "$SESSIONS" "${window[@]}")
            ;;
        *) log "unknown scenario $scenario"; return 0 ;;
    esac
    if [[ $server == redis* && ($rate -gt 0 || $scenario == idle) ]]; then
        # --self-publish would number events past the backplane, and idle says nothing of it.
        log "round $round: $scenario is not run on $server"
        return 0
    fi
    if [[ $SELF_FLAG == --self-publish-agui && $server != tether* ]]; then
        # Only the hub plays agent runs in-process.
        log "round $round: $scenario runs on the hub only"
        return 0
    fi
    if [[ $scenario == idle-flood && $server != tether ]]; then
        # The baselines have no connection cap: 15,000 idle connections fit in their 20,000
        # descriptors and overflow nothing, and more would exhaust the generator's own.
        log "round $round: idle-flood runs on tether only"
        return 0
    fi
    log "round $round: $scenario on $server"
    : >"$server_log"
    start_server "$server" "$rate" || return 0
    target/release/tether-load --url "http://127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
        "${GEN_EXTRA[@]}" --label "$server" --round "$round" --json-out "$jsonl" "${gen[@]}" |
        grep -v '^{' >&2 || log "$scenario on $server failed"
    stop_server
}

for round in $(seq "$ROUNDS"); do
    # Alternate: each round starts with a different server.
    order=()
    n=${#servers[@]}
    for i in $(seq 0 $((n - 1))); do order+=("${servers[$(((i + round - 1) % n))]}"); done
    for scenario in $SCENARIOS; do
        for server in "${order[@]}"; do
            run_one "$scenario" "$server" "$round"
        done
    done
done

install -m 644 "$jsonl" "$OUT.jsonl"
name=$(basename "$OUT")
target/release/tether-load report --input "$OUT.jsonl" --svg "$OUT.svg" \
    --title "tether load harness, $DATE ($(nproc) cores, loopback)" >"$OUT.tables.md"
{
    echo "# Load harness results, $DATE"
    echo
    echo "Servers: ${servers[*]}$([[ -z $tether_bin && " $SERVERS " == *" tether "* ]] && echo " (tether's hub did not build and is absent)")."
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r); $(rustc --version)."
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo none). Rounds: $ROUNDS; measured window ${DURATION} s after ${WARMUP} s warmup."
    echo "Generator and server share the machine's cores, so events/s depends on what else runs;"
    echo "server CPU µs/event (utime+stime of the server over the window / delivered events) is the steadier comparison."
    echo "Latency is publish-to-receive (the event's \`ts\`, \`rawEvent.ts\` in the AG-UI scenarios) on loopback. ↑ higher is better, ↓ lower is better."
    echo
    echo "![chart]($name.svg)"
    echo
    cat "$OUT.tables.md"
    echo "Raw results: [$name.jsonl]($name.jsonl). Produced by \`benches/run.sh\` in $(($(date +%s) - started)) s."
} >"$OUT.md"
rm -f "$OUT.tables.md"
log "wrote $OUT.md, $OUT.svg and $OUT.jsonl"
