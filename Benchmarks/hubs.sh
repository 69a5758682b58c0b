#!/usr/bin/env bash
# Hub benchmarks on 127.0.0.1, on the contract of ASP.NET Core SignalR's benchmark server (Echo, EchoAll,
# SendPayload; hub-bench-server), driven by hub-bench, beside this engine's raw WebSocket echo (ws-echo driven by
# ws-bench) in the same run, and the same broadcast across two server processes through a real redis-server.
#
#   echo       C connections x P Echo(tag) invocations in flight, each answered by a Completion
#   payload    the same with SendPayload(SIZE characters), answered by an empty Completion
#   broadcast  N connections; one sender keeps P EchoAll(tag) calls in flight (a call is done when the first
#              connection of every server received it); every connection receives every message
#   cross      broadcast with the connections split over two hub-bench-server processes on one Redis
#              (RedisBackplane): the latency on server 1 is publish on server 0 -> delivery on server 1
# Server CPU is the hub servers' utime+stime (/proc) per completed invocation or per delivered message; Redis's
# CPU is reported apart.
#
# Usage: Benchmarks/hubs.sh     (DURATION=10 WARMUP=2 BROADCAST_CONNS=1000 to override)
# Results: RESULT lines in Benchmarks/results/hubs-<time>.txt (printed at the end); render with
#   python3 Benchmarks/report.py hubs Benchmarks/results/hubs-<time>.txt   (several files: medians over them)
# Needs redis-server (scripts/setup.sh installs it) for the cross-server cells; they are skipped without it.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BROADCAST_CONNS=${BROADCAST_CONNS:-1000}
BASE_PORT=${BASE_PORT:-19200}
PORT_ECHO=$BASE_PORT
PORT_HUB=$((BASE_PORT + 1))
PORT_HUB_A=$((BASE_PORT + 2))
PORT_HUB_B=$((BASE_PORT + 3))
PORT_REDIS=$((BASE_PORT + 9))
mkdir -p "$HERE/results"
OUT=${OUT:-$HERE/results/hubs-$(date -u +%Y%m%d-%H%M%S).txt}

log() { printf '%s\n' "$*" | tee -a "$OUT" >&2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log "# hubs.sh $(date -u +%FT%TZ) on $(uname -srm), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
log "# duration ${DURATION}s, warmup ${WARMUP}s per cell"

# --- Build (release; ws-echo is the main package's product, built here as a dependency) -------------------------
(cd "$HERE" && for product in ws-bench hub-bench hub-bench-server ws-echo; do
    swift build -c release --product "$product" >/dev/null
done)
BIN="$(cd "$HERE" && swift build -c release --show-bin-path)"

# --- Servers ---------------------------------------------------------------------------------------------------
source "$HERE/servers.sh"
# start_or_exit NAME PORT COMMAND...: every server of this script is needed.
start_or_exit() {
    start "$@"
    local pid_var="PID_${1//-/_}"
    [ -n "${!pid_var}" ] || exit 1
}

start_or_exit ws-echo "$PORT_ECHO" "$BIN/ws-echo" --port "$PORT_ECHO"
start_or_exit hub "$PORT_HUB" "$BIN/hub-bench-server" --port "$PORT_HUB"
REDIS=""
if command -v redis-server >/dev/null 2>&1; then
    start_or_exit redis "$PORT_REDIS" redis-server --bind 127.0.0.1 --port "$PORT_REDIS" --save "" --appendonly no
    REDIS="127.0.0.1:$PORT_REDIS"
    start_or_exit hub-a "$PORT_HUB_A" "$BIN/hub-bench-server" --port "$PORT_HUB_A" --redis "$REDIS" --server-id a
    start_or_exit hub-b "$PORT_HUB_B" "$BIN/hub-bench-server" --port "$PORT_HUB_B" --redis "$REDIS" --server-id b
    sleep 1  # the backplanes subscribe
else
    log "# redis-server not installed: the cross-server cells are skipped"
fi

run() {
    local output
    if output=$(timeout 300 "$@" 2>&1); then
        printf '%s\n' "$output" | grep '^RESULT' >>"$OUT"
        printf '%s\n' "$output" | grep -v '^RESULT' >&2
    else
        log "# FAILED $*: $(printf '%s' "$output" | tail -2 | tr '\n' ' ')"
    fi
}

HUB="$BIN/hub-bench --url ws://127.0.0.1:$PORT_HUB/hub --server-pid $PID_hub -d $DURATION -w $WARMUP"
RAW="$BIN/ws-bench --url ws://127.0.0.1:$PORT_ECHO/ --server-pid $PID_ws_echo -d $DURATION -w $WARMUP"

# --- Echo beside the raw WebSocket echo, and SendPayload ---------------------------------------------------------
for cell in "1 1" "64 16"; do
    read -r connections inflight <<<"$cell"
    run $RAW -c "$connections" -p "$inflight" -s 64 --label ws-echo
    for protocol in json messagepack; do
        run $HUB --scenario echo --protocol "$protocol" -c "$connections" -p "$inflight" --label hub-echo
    done
done
for protocol in json messagepack; do
    run $HUB --scenario payload --protocol "$protocol" -c 64 -p 16 -s 1024 --label hub-payload
done

# --- Broadcast to BROADCAST_CONNS connections, one process ------------------------------------------------------
for protocol in json messagepack; do
    run $HUB --scenario broadcast --protocol "$protocol" -c "$BROADCAST_CONNS" --senders 1 -p 4 --label hub-broadcast
done

# --- Across two servers on one Redis ----------------------------------------------------------------------------
if [ -n "$REDIS" ]; then
    CROSS="$BIN/hub-bench --url ws://127.0.0.1:$PORT_HUB_A/hub --url ws://127.0.0.1:$PORT_HUB_B/hub \
        --server-pid $PID_hub_a --server-pid $PID_hub_b --redis-pid $PID_redis -d $DURATION -w $WARMUP"
    for protocol in json messagepack; do
        # shellcheck disable=SC2086
        run $CROSS --scenario broadcast --protocol "$protocol" -c "$BROADCAST_CONNS" --senders 1 -p 4 \
            --label cross-broadcast
    done
    # Latency alone: one message in flight, one connection per server (and the same on one in-process server).
    run $HUB --scenario broadcast --protocol json -c 2 --senders 1 -p 1 --label hub-broadcast-latency
    # shellcheck disable=SC2086
    run $CROSS --scenario broadcast --protocol json -c 2 --senders 1 -p 1 --label cross-broadcast-latency
fi

log "# done $(date -u +%FT%TZ); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "results: $OUT" >&2
