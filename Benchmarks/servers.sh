# Sourced by compare.sh and hubs.sh: servers started in the background on 127.0.0.1 and stopped by their PIDs when
# the script exits. Needs HERE (the Benchmarks folder, for results/.server-NAME.log) and a `log` function.

PIDS=()
stop_servers() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_servers EXIT

# wait_for_port PORT: until 127.0.0.1:PORT accepts a connection, at most 10 s.
wait_for_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# start NAME PORT COMMAND...: sets PID_<NAME>, or leaves it empty (and logs why) when the server does not come up.
start() {
    local name=$1 port=$2
    shift 2
    "$@" >"$HERE/results/.server-$name.log" 2>&1 &
    local pid=$!
    if wait_for_port "$port"; then
        PIDS+=("$pid")
        printf -v "PID_${name//-/_}" '%s' "$pid"
    else
        kill "$pid" 2>/dev/null || true
        log "# $name did not start on port $port: $(tail -3 "$HERE/results/.server-$name.log" | tr '\n' ' ')"
        printf -v "PID_${name//-/_}" '%s' ""
    fi
}
