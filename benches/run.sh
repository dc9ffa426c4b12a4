#!/usr/bin/env bash
# Runs the load scenarios against baseline-naive, baseline-bare, when its binary builds,
# tether's hub (`tether serve`), and, when named in SERVERS, nginx with nchan, one server after
# the other for each scenario, and writes benches/results/<date>.md (tables), <date>.svg
# (chart) and <date>.jsonl (raw results).
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
#   PUBLISHERS1=16     publishing connections of the one-event-per-request scenarios (*-http1)
#   EVICTED_AWAY=300   events published while the client of the evicted scenario is away
#   EVICTED_RING=256   tether's --ring-events in the evicted scenario (baseline-bare's ring and
#                      nchan's buffer hold 256 events), so every server keeps the same number
#   NCHAN_SHM=512M     nchan_shared_memory_size (messages of every channel are kept there)
#   AGUI_SELF_RATE=1000000  --self-publish-agui rate of agui-self (high enough to saturate)
#   AGUI_HTTP_RATE=    events/s offered in agui-http1 and agui-http (empty: as fast as the
#                      server answers)
#   AGUI_RECONNECT_RATE=20000  events/s of agui-reconnect-self and agui-reconnect-http1
#   RECONNECT_EVERY=3  seconds between a client's reconnects on average in agui-reconnect-*
#   SERVERS="naive bare tether"   (also: tether-noagui = the hub with --no-agui, whose AG-UI
#                      tables get a tracker-share row; redis1 = the hub with --redis on one
#                      node, redis2 = two hubs on one Redis, clients on one, the generator
#                      publishing on the other; both need redis-server and run only the HTTP
#                      scenarios; their server CPU sums the hubs and redis-server. nchan =
#                      nginx with the nchan module, installed with apt-get when missing; it
#                      runs idle, evicted and the one-event-per-request scenarios; its CPU and
#                      RSS sum the nginx master and its worker)
#   SCENARIOS="throughput-http throughput-self latency-http latency-http1 latency-self idle idle-flood storm-self evicted"
#                      (storm-http, throughput-http1 and storm-http1 are available too: *-http1
#                      publish one JSON object per request; idle-flood runs on tether only:
#                      the baselines have no connection cap to overflow; the AG-UI scenarios
#                      agui-self, agui-http1, agui-http, agui-reconnect-self and
#                      agui-reconnect-http1 run when named, not on nchan, the -self ones on the
#                      hub only, e.g. SERVERS="tether tether-noagui" SCENARIOS="agui-self
#                      agui-http1")
#   OUT=benches/results/<date>   output path without extension
#
# Scale curves (CURVES=1): each curve's points against every server in SERVERS (default
# "bare tether"), point after point, the servers alternating; writes
# benches/results/<date>-curves.{md,jsonl} and one line chart per curve,
# <date>-curves-{publish-cost,resume,rss,storm}.svg. A point is a scenario NAME@X in
# SCENARIOS (they can also be given without CURVES):
#   publish-cost@N     N sessions, each given COST_HISTORY events over HTTP, one in
#                      COST_CLIENT_SHARE of them holding an SSE client, the server publishing
#                      COST_RATE events/s in-process round-robin over all of them
#                      (--self-publish-all; rings of COST_HISTORY events, so every publish
#                      evicts one): server CPU per published event, RSS
#   resume@K           one session of RESUME_HISTORY events (rings of RESUME_RING), a client
#                      resuming K events behind its head RESUMES times (at most
#                      RESUME_DURATION s): server CPU per resume, time to the last replayed
#                      event, exact replays
#   idle@N             N idle SSE connections: server RSS
#   storm-waves@N      N clients at STORM_SESSION_RATE events/s each, dropping and
#                      reconnecting with Last-Event-ID in waves of at most STORM_WAVE spread over
#                      STORM_SPREAD s: time until all caught up, lost, duplicated
# Curve settings (environment), with the points:
#   COST_SESSIONS="1000 3000 10000 30000 100000"  COST_HISTORY=16  COST_CLIENT_SHARE=100
#   COST_RATE=100000  COST_MEMORY_BUDGET=4294967296 (the hub's --memory-budget-bytes)
#   RESUME_BEHIND="0 10 100 1000 10000"  RESUME_HISTORY=10000  RESUME_RING=16384
#   RESUME_RING_BYTES=16777216 (the hub's --ring-bytes)  RESUMES=5000  RESUME_DURATION=3
#   IDLE_POINTS="1000 5000 10000 15000 19000"
#   STORM_CLIENTS="1000 2000 4000 10000"  STORM_SESSION_RATE=4  STORM_WAVE=4096
#   STORM_SPREAD=0.2  STORM_TIMEOUT=10
#   CURVE_WARMUP=1  CURVE_DURATION=3   warmup and window of publish-cost, seconds
#   WAIT_QUIET=1       (the default with CURVES=1; WAIT_QUIET= turns it off) before each
#                      curve, or each scenario outside the curves, wait until no rustc, cargo,
#                      cargo-nextest or nextest process runs and the 1-minute load average is
#                      below QUIET_LOAD (1.0), polling every 20 s for at most QUIET_MAX_WAIT
#                      (900) s; the waits and the load averages go into the results
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
PUBLISHERS1=${PUBLISHERS1:-16}
EVICTED_AWAY=${EVICTED_AWAY:-300}
EVICTED_RING=${EVICTED_RING:-256}
NCHAN_SHM=${NCHAN_SHM:-512M}
AGUI_SELF_RATE=${AGUI_SELF_RATE:-1000000}
AGUI_HTTP_RATE=${AGUI_HTTP_RATE:-}
AGUI_RECONNECT_RATE=${AGUI_RECONNECT_RATE:-20000}
RECONNECT_EVERY=${RECONNECT_EVERY:-3}
CURVES=${CURVES:-}
COST_SESSIONS=${COST_SESSIONS:-"1000 3000 10000 30000 100000"}
COST_HISTORY=${COST_HISTORY:-16}
COST_CLIENT_SHARE=${COST_CLIENT_SHARE:-100}
COST_RATE=${COST_RATE:-100000}
COST_MEMORY_BUDGET=${COST_MEMORY_BUDGET:-4294967296}
RESUME_BEHIND=${RESUME_BEHIND:-"0 10 100 1000 10000"}
RESUME_HISTORY=${RESUME_HISTORY:-10000}
RESUME_RING=${RESUME_RING:-16384}
RESUME_RING_BYTES=${RESUME_RING_BYTES:-16777216}
RESUMES=${RESUMES:-5000}
RESUME_DURATION=${RESUME_DURATION:-3}
IDLE_POINTS=${IDLE_POINTS:-"1000 5000 10000 15000 19000"}
STORM_CLIENTS=${STORM_CLIENTS:-"1000 2000 4000 10000"}
STORM_SESSION_RATE=${STORM_SESSION_RATE:-4}
STORM_WAVE=${STORM_WAVE:-4096}
STORM_SPREAD=${STORM_SPREAD:-0.2}
STORM_TIMEOUT=${STORM_TIMEOUT:-10}
CURVE_WARMUP=${CURVE_WARMUP:-1}
CURVE_DURATION=${CURVE_DURATION:-3}
QUIET_LOAD=${QUIET_LOAD:-1.0}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-900}
DATE=$(date -u +%Y-%m-%d)
if [[ -n $CURVES ]]; then
    curve_points=()
    for n in $COST_SESSIONS; do curve_points+=("publish-cost@$n"); done
    for k in $RESUME_BEHIND; do curve_points+=("resume@$k"); done
    for n in $IDLE_POINTS; do curve_points+=("idle@$n"); done
    for n in $STORM_CLIENTS; do curve_points+=("storm-waves@$n"); done
    SERVERS=${SERVERS:-"bare tether"}
    SCENARIOS=${SCENARIOS:-"${curve_points[*]}"}
    OUT=${OUT:-benches/results/$DATE-curves}
    WAIT_QUIET=${WAIT_QUIET-1}
fi
SERVERS=${SERVERS:-"naive bare tether"}
SCENARIOS=${SCENARIOS:-"throughput-http throughput-self latency-http latency-http1 latency-self idle idle-flood storm-self evicted"}
OUT=${OUT:-benches/results/$DATE}
WAIT_QUIET=${WAIT_QUIET:-}

started=$(date +%s)
log() { printf '[%4ds] %s\n' "$(($(date +%s) - started))" "$*" >&2; }
# Other work on the machine shifts the numbers: the load average goes into the results.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Where cargo puts the binaries.
bin=${CARGO_TARGET_DIR:-target}/release

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
        [[ -x $bin/tether ]]; then
        tether_bin=$bin/tether
    else
        log "$bin/tether does not build: tether is skipped"
    fi
fi
if [[ -z $tether_bin ]]; then
    log "building the generator and baselines (release)"
    cargo build --release "${packages[@]}"
fi

# nchan: nginx and Debian's nchan module, installed when missing (root, or sudo without a
# password).
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
nchan_ok=""
if [[ " $SERVERS " == *" nchan "* ]]; then
    if [[ ! -x $nginx_bin || ! -f $NCHAN_MODULE ]]; then
        log "installing nginx and libnginx-mod-nchan (apt-get)"
        sudo=()
        if ((EUID != 0)); then sudo=(sudo -n); fi
        if ! { "${sudo[@]}" apt-get update -qq &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends nginx libnginx-mod-nchan; } >/dev/null 2>&1; then
            log "apt-get could not install nginx and libnginx-mod-nchan"
        fi
        nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
    fi
    if [[ -x $nginx_bin && -f $NCHAN_MODULE ]]; then
        nchan_ok=1
    else
        log "nginx or $NCHAN_MODULE is missing: nchan is skipped"
    fi
fi

servers=()
for s in $SERVERS; do
    if [[ $s == nchan && -z $nchan_ok ]]; then continue; fi
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
# nginx's configuration, pid file, error log and temp paths.
nchan_dir=$(mktemp -d)
SERVER_PID=""
# More processes of the server under test (the other node, redis-server): their CPU counts as
# the server's, and they stop with it.
EXTRA_PIDS=()
# Extra generator flags for the server under test (redis2 publishes on the other node).
GEN_EXTRA=()
# Extra flags of tether's hub for the scenario being run (idle-flood's connection cap), and of
# baseline-bare.
HUB_FLAGS=()
BARE_FLAGS=()
# The flag that makes a server publish in-process at the scenario's rate.
SELF_FLAG=--self-publish
# The quiet waits and load averages of each curve (or scenario), as table rows.
quiet_rows=$(mktemp)
cleanup() {
    for pid in $SERVER_PID "${EXTRA_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -f "$jsonl" "$server_log" "$quiet_rows"
    rm -rf "$nchan_dir"
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

# write_nchan_conf PORT: nginx.conf for the contract's two routes on 127.0.0.1:PORT, one
# worker, everything it writes in $nchan_dir. A request body is one message; a channel keeps
# its last 256 (as baseline-bare's ring); a new subscriber without Last-Event-ID waits for the
# next message, as on the other servers.
write_nchan_conf() {
    local port=$1 nofile
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited ]] && nofile=1048576
    cat >"$nchan_dir/nginx.conf" <<EOF
load_module $NCHAN_MODULE;
worker_processes 1;
daemon off;
pid $nchan_dir/nginx.pid;
error_log $nchan_dir/error.log warn;
worker_rlimit_nofile $nofile;
events {
    worker_connections $nofile;
}
http {
    access_log off;
    client_body_temp_path $nchan_dir/body;
    proxy_temp_path $nchan_dir/proxy;
    fastcgi_temp_path $nchan_dir/fastcgi;
    uwsgi_temp_path $nchan_dir/uwsgi;
    scgi_temp_path $nchan_dir/scgi;
    keepalive_requests 1000000;
    nchan_shared_memory_size $NCHAN_SHM;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location ~ ^/api/sse/session/(.+)\$ {
            nchan_subscriber eventsource;
            nchan_channel_id \$1;
            nchan_subscriber_first_message newest;
        }
        location ~ ^/api/sessions/(.+)/events\$ {
            nchan_publisher http;
            nchan_channel_id \$1;
            nchan_message_buffer_length 256;
        }
    }
}
EOF
}

# start_nchan: nginx in the foreground (its master is SERVER_PID); the worker's CPU and RSS
# count as the server's.
start_nchan() {
    PORT=$(free_port)
    write_nchan_conf "$PORT"
    "$nginx_bin" -p "$nchan_dir" -e "$nchan_dir/error.log" -c "$nchan_dir/nginx.conf" \
        >>"$server_log" 2>&1 &
    SERVER_PID=$!
    if ! wait_listening "$SERVER_PID" "$PORT" nchan; then
        cat "$nchan_dir/error.log" >>"$server_log" 2>/dev/null || true
        stop_server
        return 1
    fi
    local worker
    worker=$(pgrep -P "$SERVER_PID" | head -n 1)
    if [[ -z $worker ]]; then
        log "nchan: no nginx worker under $SERVER_PID"
        stop_server
        return 1
    fi
    GEN_EXTRA+=(--server-kind nchan --cpu-pid "$worker" --rss-pid "$worker")
}

# start_server NAME RATE: starts it on 127.0.0.1, sets SERVER_PID and PORT (the node the clients
# connect to), waits until it accepts.
start_server() {
    local name=$1 rate=$2 cmd
    EXTRA_PIDS=()
    GEN_EXTRA=()
    case $name in
        naive) cmd=("$bin/baseline-naive") ;;
        bare) cmd=("$bin/baseline-bare" "${BARE_FLAGS[@]}") ;;
        tether) cmd=("$tether_bin" serve --dev "${HUB_FLAGS[@]}") ;;
        tether-noagui) cmd=("$tether_bin" serve --dev --no-agui "${HUB_FLAGS[@]}") ;;
        redis1 | redis2)
            start_redis || { stop_server; return 1; }
            cmd=("$tether_bin" serve --dev --redis "$REDIS_URL" "${HUB_FLAGS[@]}")
            ;;
        nchan) start_nchan; return ;;
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
    local one=(--publish http --batch 1 --publishers "$PUBLISHERS1")
    local agui_rate=()
    if [[ -n $AGUI_HTTP_RATE ]]; then agui_rate=(--rate "$AGUI_HTTP_RATE"); fi
    local reconnect=(--reconnect-every "$RECONNECT_EVERY" --verify)
    # A curve's point: NAME@X. The hub runs the points with --drain-secs 0, so that stopping
    # it takes no 10 s drain window.
    local point=${scenario#*@}
    HUB_FLAGS=()
    BARE_FLAGS=()
    SELF_FLAG=--self-publish
    case $scenario in
        publish-cost@*)
            rate=$COST_RATE
            gen=(publish-cost --sessions "$point" --clients $((point / COST_CLIENT_SHARE))
                --history "$COST_HISTORY" --rate "$COST_RATE"
                --warmup "$CURVE_WARMUP" --duration "$CURVE_DURATION")
            HUB_FLAGS=(--self-publish-all --ring-events "$COST_HISTORY"
                --max-sessions $((2 * point)) --memory-budget-bytes "$COST_MEMORY_BUDGET"
                --drain-secs 0)
            BARE_FLAGS=(--self-publish-all --ring "$COST_HISTORY")
            ;;
        resume@*)
            gen=(resume --history "$RESUME_HISTORY" --behind "$point" --resumes "$RESUMES"
                --duration "$RESUME_DURATION")
            HUB_FLAGS=(--ring-events "$RESUME_RING" --ring-bytes "$RESUME_RING_BYTES"
                --drain-secs 0)
            BARE_FLAGS=(--ring "$RESUME_RING")
            ;;
        idle@*)
            gen=(idle --connections "$point")
            HUB_FLAGS=(--drain-secs 0)
            ;;
        storm-waves@*)
            rate=$((point * STORM_SESSION_RATE))
            gen=(storm --publish self --rate "$rate" --sessions "$point" --wave "$STORM_WAVE"
                --spread "$STORM_SPREAD" --timeout "$STORM_TIMEOUT")
            HUB_FLAGS=(--drain-secs 0)
            ;;
        throughput-http) gen=(throughput --publish http --sessions "$SESSIONS" "${window[@]}") ;;
        throughput-http1) gen=(throughput "${one[@]}" --sessions "$SESSIONS" "${window[@]}") ;;
        throughput-self) rate=$SELF_RATE; gen=(throughput --publish self --rate "$SELF_RATE" --sessions "$SESSIONS" "${window[@]}") ;;
        latency-http) gen=(latency --publish http --rate "$LATENCY_RATE" --sessions "$SESSIONS" "${window[@]}") ;;
        latency-http1) gen=(latency "${one[@]}" --rate "$LATENCY_RATE" --sessions "$SESSIONS" "${window[@]}") ;;
        latency-self) rate=$LATENCY_RATE; gen=(latency --publish self --rate "$LATENCY_RATE" --sessions "$SESSIONS" "${window[@]}") ;;
        idle) gen=(idle --connections "$IDLE_CONNS") ;;
        idle-flood)
            gen=(idle-flood --connections "$FLOOD_CONNS" --rounds "$FLOOD_ROUNDS" --duration "$FLOOD_DURATION")
            HUB_FLAGS=(--max-connections "$FLOOD_MAX_CONNS")
            ;;
        storm-self) rate=$STORM_RATE; gen=(storm --publish self --rate "$STORM_RATE" --sessions "$STORM_SESSIONS") ;;
        storm-http) gen=(storm --publish http --rate "$STORM_RATE" --sessions "$STORM_SESSIONS") ;;
        storm-http1) gen=(storm "${one[@]}" --rate "$STORM_RATE" --sessions "$STORM_SESSIONS") ;;
        evicted)
            gen=(evicted --away "$EVICTED_AWAY")
            HUB_FLAGS=(--ring-events "$EVICTED_RING")
            ;;
        agui-self)
            rate=$AGUI_SELF_RATE SELF_FLAG=--self-publish-agui
            gen=(agui --publish self --rate "$AGUI_SELF_RATE" --sessions "$SESSIONS" "${window[@]}")
            ;;
        agui-http1) gen=(agui --publish http "${agui_rate[@]}" --sessions "$SESSIONS" "${window[@]}") ;;
        agui-http) gen=(agui --publish http --batch-bursts "${agui_rate[@]}" --sessions "$SESSIONS" "${window[@]}") ;;
        agui-reconnect-self)
            rate=$AGUI_RECONNECT_RATE SELF_FLAG=--self-publish-agui
            gen=(agui --publish self --rate "$AGUI_RECONNECT_RATE" "${reconnect[@]}" --sessions "$SESSIONS" "${window[@]}")
            ;;
        agui-reconnect-http1)
            gen=(agui --publish http --rate "$AGUI_RECONNECT_RATE" --publishers 4 "${reconnect[@]}" --sessions "$SESSIONS" "${window[@]}")
            ;;
        *) log "unknown scenario $scenario"; return 0 ;;
    esac
    if [[ $scenario == *@* && $scenario != idle@* && $server != bare && $server != tether* ]]; then
        # The curves need --self-publish-all, a raised ring and ids that name a sequence.
        log "round $round: $scenario runs on bare and the hub only"
        return 0
    fi
    if [[ $server == redis* && ($rate -gt 0 || $scenario == idle || $scenario == idle@*) ]]; then
        # --self-publish would number events past the backplane, and idle says nothing of it.
        log "round $round: $scenario is not run on $server"
        return 0
    fi
    if [[ $server == nchan && ($rate -gt 0 || $scenario == *-http) ]]; then
        # nchan cannot publish in-process, and it stores a request body as one message: a
        # JSON-array batch would reach its subscribers as one event. Its HTTP rows are the
        # one-event-per-request scenarios (*-http1).
        log "round $round: $scenario is not run on $server (see ${scenario%-http}-http1)"
        return 0
    fi
    if [[ $server == nchan && $scenario == agui-* ]]; then
        # The AG-UI scenarios judge loss and preludes by the server's ids (<epoch>-<seq>).
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
    "$bin/tether-load" --url "http://127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
        "${GEN_EXTRA[@]}" --label "$server" --round "$round" --json-out "$jsonl" "${gen[@]}" |
        grep -v '^{' >&2 || log "$scenario on $server failed"
    stop_server
}

# The build and test processes of other work on the machine that are running now.
busy_processes() {
    local names=() p
    for p in rustc cargo cargo-nextest nextest; do
        if pgrep -x "$p" >/dev/null; then names+=("$p"); fi
    done
    echo "${names[*]}"
}

# wait_quiet: waits until none of busy_processes runs and the 1-minute load average is below
# QUIET_LOAD, polling every 20 s for at most QUIET_MAX_WAIT s; prints what it found.
wait_quiet() {
    local waited=0 busy load
    while :; do
        busy=$(busy_processes)
        load=$(cut -d' ' -f1 /proc/loadavg)
        if [[ -z $busy ]] && awk -v l="$load" -v q="$QUIET_LOAD" 'BEGIN { exit !(l < q) }'; then
            echo "quiet after $waited s"
            return
        fi
        if ((waited >= QUIET_MAX_WAIT)); then
            echo "not quiet after $waited s (load $load${busy:+, running: $busy}): measured anyway"
            return
        fi
        sleep 20
        waited=$((waited + 20))
    done
}

# With WAIT_QUIET, each curve (the scenarios NAME@X of one NAME, or one plain scenario) starts
# on a quiet machine, or after QUIET_MAX_WAIT; its load averages go into quiet_rows.
section="" section_quiet="" section_load="" section_started=0
end_section() {
    if [[ -n $section ]]; then
        printf '| %s | %s | %s | %s | %d s |\n' "$section" "$section_quiet" "$section_load" \
            "$(cut -d' ' -f1-3 /proc/loadavg)" $(($(date +%s) - section_started)) >>"$quiet_rows"
    fi
}
begin_section() {
    end_section
    section=$1
    log "$section: waiting for a quiet machine (no build or test process, load below $QUIET_LOAD)"
    section_quiet=$(wait_quiet)
    log "$section: $section_quiet"
    section_load=$(cut -d' ' -f1-3 /proc/loadavg)
    section_started=$(date +%s)
}

for round in $(seq "$ROUNDS"); do
    # Alternate: each round starts with a different server.
    order=()
    n=${#servers[@]}
    for i in $(seq 0 $((n - 1))); do order+=("${servers[$(((i + round - 1) % n))]}"); done
    for scenario in $SCENARIOS; do
        if [[ -n $WAIT_QUIET && ${scenario%@*} != "$section" ]]; then
            begin_section "${scenario%@*}"
        fi
        for server in "${order[@]}"; do
            run_one "$scenario" "$server" "$round"
        done
    done
done
[[ -n $WAIT_QUIET ]] && end_section

install -m 644 "$jsonl" "$OUT.jsonl"
name=$(basename "$OUT")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
machine="Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r); $(rustc --version)."
# quiet_table: the waits and load averages of each curve or scenario, when WAIT_QUIET.
quiet_table() {
    if [[ -s $quiet_rows ]]; then
        echo "Before each curve (or scenario) the run waited for a quiet machine (no \`rustc\`, \`cargo\`, \`cargo-nextest\` or \`nextest\` process, 1-minute load average below $QUIET_LOAD; polled every 20 s for at most $QUIET_MAX_WAIT s). Load averages (1, 5, 15 min):"
        echo
        echo "| curve | wait | load before | load after | took |"
        echo "|---|---|---|---|---|"
        cat "$quiet_rows"
        echo
    fi
}
if [[ -n $CURVES ]]; then
    "$bin/tether-load" report --input "$OUT.jsonl" --curves "$OUT" \
        --title "$DATE, $(nproc) cores, loopback" >"$OUT.tables.md"
    {
        echo "# Scale curves, $DATE"
        echo
        echo "Servers: ${servers[*]}$([[ -z $tether_bin && " $SERVERS " == *" tether "* ]] && echo " (tether's hub did not build and is absent)"). Rounds: $ROUNDS; each point on a fresh server process, the servers one after the other at each point."
        echo "$machine"
        echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo none). Generator and server share the machine's cores; server CPU is the server's \`utime + stime\` from \`/proc\`, in clock ticks of 10 ms."
        echo "Load average (1, 5, 15 min) before the run: $load_before; after: $load_after."
        echo
        quiet_table
        cat "$OUT.tables.md"
        echo "Raw results: [$name.jsonl]($name.jsonl). Produced by \`CURVES=1 benches/run.sh\` in $(($(date +%s) - started)) s."
    } >"$OUT.md"
    rm -f "$OUT.tables.md"
    log "wrote $OUT.md, $OUT-*.svg and $OUT.jsonl"
    exit 0
fi
"$bin/tether-load" report --input "$OUT.jsonl" --svg "$OUT.svg" \
    --title "tether load harness, $DATE ($(nproc) cores, loopback)" >"$OUT.tables.md"
{
    echo "# Load harness results, $DATE"
    echo
    echo "Servers: ${servers[*]}$([[ -z $tether_bin && " $SERVERS " == *" tether "* ]] && echo " (tether's hub did not build and is absent)")."
    echo "$machine"
    if [[ " ${servers[*]} " == *" nchan "* ]]; then
        echo "nchan: $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'), libnginx-mod-nchan $(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null || echo '(version unknown)'), one worker process, 256 messages per channel."
    fi
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo none). Rounds: $ROUNDS; measured window ${DURATION} s after ${WARMUP} s warmup."
    echo "Load average (1, 5, 15 min) before the run: $load_before; after: $load_after."
    quiet_table
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
