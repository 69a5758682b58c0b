#!/usr/bin/env bash
# Echo-server comparison on 127.0.0.1, driven by ws-bench:
#   ws-echo       our server (main package: WebSocketServer + WebSocketCore)
#   nio-ws-echo   SwiftNIO's NIOWebSocket (NIOWebSocketServerUpgrader + an echo handler), the peer
#   nio-tcp-echo  plain TCP echo on SwiftNIO, no WebSocket at all: the limit (ws-bench --raw)
# Matrix (connections, in flight per connection, payload bytes):
#   (1,1,16) (64,16,64) (64,4,1KiB) (8,2,64KiB) (4,1,1MiB)
# plus the server's memory per idle connection with 1,000 idle connections (VmRSS before/after), and text messages
# beside binary at 64 KiB and 1 MiB (labels ws-echo-text, nio-ws-echo-text).
#
# Usage: Benchmarks/compare.sh            (DURATION=10 WARMUP=1 IDLE=1000 to override)
# Results: one RESULT line per measurement in Benchmarks/results/compare-<time>.txt; render them with
#   python3 Benchmarks/report.py compare Benchmarks/results/compare-*.txt
# Servers are started here and stopped by their PIDs; the whole run takes 4-6 minutes once built.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
IDLE=${IDLE:-1000}
PORT_OURS=${PORT_OURS:-19001}
PORT_NIO=${PORT_NIO:-19002}
PORT_RAW=${PORT_RAW:-19003}
mkdir -p "$HERE/results"
OUT=${OUT:-$HERE/results/compare-$(date -u +%Y%m%d-%H%M%S).txt}
log() { printf '%s\n' "$*" | tee -a "$OUT" >&2; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log "# compare.sh $(date -u +%FT%TZ) on $(uname -srm), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
log "# duration ${DURATION}s, warmup ${WARMUP}s per cell"

# --- Build -----------------------------------------------------------------------------------------------------
# ws-echo is the main package's product, built here as a dependency (without the TLS trait: see Package.swift).
(cd "$HERE" && for product in ws-bench nio-ws-echo nio-tcp-echo ws-echo; do
    swift build -c release --product "$product" >/dev/null
done)
BIN="$(cd "$HERE" && swift build -c release --show-bin-path)"

# --- Servers ---------------------------------------------------------------------------------------------------
source "$HERE/servers.sh"

start ws-echo "$PORT_OURS" "$BIN/ws-echo" --port "$PORT_OURS"
start nio-ws-echo "$PORT_NIO" "$BIN/nio-ws-echo" --port "$PORT_NIO"
start nio-tcp-echo "$PORT_RAW" "$BIN/nio-tcp-echo" --port "$PORT_RAW"

# Only ws-echo answers a handshake check: a placeholder binary that does not listen is skipped above.
SERVERS=()
[ -n "$PID_ws_echo" ] && SERVERS+=("ws-echo")
[ -n "$PID_nio_ws_echo" ] && SERVERS+=("nio-ws-echo")
[ -n "$PID_nio_tcp_echo" ] && SERVERS+=("nio-tcp-echo")
[ -z "$PID_ws_echo" ] && log "# ws-echo unavailable: measured NIOWebSocket and raw TCP only"

target_args() {
    case $1 in
        ws-echo) echo "--url ws://127.0.0.1:$PORT_OURS/ --server-pid $PID_ws_echo" ;;
        nio-ws-echo) echo "--url ws://127.0.0.1:$PORT_NIO/ --server-pid $PID_nio_ws_echo" ;;
        nio-tcp-echo) echo "--raw --host 127.0.0.1 --port $PORT_RAW --server-pid $PID_nio_tcp_echo" ;;
    esac
}

run_bench() {
    local server=$1
    shift
    local output
    # shellcheck disable=SC2046
    if output=$(timeout 120 "$BIN/ws-bench" $(target_args "$server") --label "$server" "$@" 2>&1); then
        printf '%s\n' "$output" | grep '^RESULT' >>"$OUT"
        printf '%s\n' "$output" | grep -v '^RESULT' >&2
    else
        log "# FAILED $server $*: $(printf '%s' "$output" | tail -2 | tr '\n' ' ')"
    fi
}

# --- Memory per idle connection (fresh servers, before any load) ------------------------------------------------
for server in "${SERVERS[@]}"; do
    run_bench "$server" --idle "$IDLE" --hold 2
done
sleep 1

# --- Throughput and latency matrix: each cell runs every server in turn ------------------------------------------
for cell in "1 1 16" "64 16 64" "64 4 1024" "8 2 65536" "4 1 1048576"; do
    read -r connections inflight size <<<"$cell"
    for server in "${SERVERS[@]}"; do
        run_bench "$server" -c "$connections" -p "$inflight" -s "$size" -d "$DURATION" -w "$WARMUP"
    done
done

# --- Text beside binary: UTF-8 validation of every text message (printable ASCII payloads) ----------------------
for cell in "8 2 65536" "4 1 1048576"; do
    read -r connections inflight size <<<"$cell"
    for server in "${SERVERS[@]}"; do
        [ "$server" = nio-tcp-echo ] && continue
        run_bench "$server" -c "$connections" -p "$inflight" -s "$size" -d "$DURATION" -w "$WARMUP" --text \
            --label "$server-text"
    done
done

log "# done $(date -u +%FT%TZ); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "results: $OUT" >&2
