#!/usr/bin/env python3
"""Fan-out of one ticker to N clients: Server-Sent Events (/broadcast) vs WebSockets (/ws-broadcast), on ws-echo.

Both sides run on the same server binary over HTTP/1.1 (one TCP connection per client): SSE clients send
`GET /broadcast` and read the chunked `text/event-stream`; WebSocket clients upgrade on `/ws-broadcast` and read
text frames. The server publishes one tick every --interval-ms with --event-size bytes of data; the SSE side
sends it as one event (`id:` + `data:` lines, encoded once by `EventStreamBroadcaster`), the WebSocket side as
one text message (the payload buffer is shared; see Sources/ws-echo/EchoWebSocketBroadcast.swift).

For each transport and run, from /proc on the SERVER process and from counts at the CLIENTS:
  - memory per idle connection: a server started with a ticker that never fires (interval one hour); its RSS
    after N clients connected minus its RSS before, divided by N;
  - delivered events per second: events counted by the clients over a --seconds window (after a warm-up),
    divided by the window;
  - server CPU per delivered event: the server's user+system CPU time over that window divided by those events.

The clients are --workers processes (raw non-blocking sockets and `selectors`, N/workers connections each,
counting events without decoding them: SSE event terminators `\\n\\n`, WebSocket frame headers). Their CPU use
over the window is printed too: when a worker is near 100 % of a core, the client may be what limits the
delivered rate (the server's CPU per event stays meaningful). A benchmark, not a test: nothing is asserted.

    python3 Benchmarks/sse_fanout.py --ws-echo .build/release/ws-echo [--count 1000] [--runs 3]
"""

import argparse
import base64
import datetime
import multiprocessing
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests"))

from testprocs import free_port, wait_for_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
IDLE_INTERVAL_MS = 3_600_000


def proc_stats(pid: int) -> tuple[int, float]:
    """(RSS bytes, user+system CPU seconds) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return rss, cpu


def start_server(binary: str, transport: str, interval_ms: int, event_size: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    args = [binary, "--port", str(port), "--log-level", "warning", "--h2c",
            "--event-interval", str(interval_ms), "--event-size", str(event_size), "--event-heartbeat", "0"]
    if transport == "ws":
        args.append("--ws-broadcast")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def open_client(port: int, transport: str) -> tuple[socket.socket, bytes]:
    """Connects and completes the request (SSE) or the opening handshake (WebSocket); returns the socket and the
    bytes that followed the response head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if transport == "sse":
        request = (f"GET /broadcast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                   "Cache-Control: no-cache\r\n\r\n")
    else:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws-broadcast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"{transport}: connection closed during the handshake: {head[:80]!r}")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    expected = b"HTTP/1.1 200" if transport == "sse" else b"HTTP/1.1 101"
    if not head.startswith(expected):
        raise RuntimeError(f"{transport}: unexpected response {head[:80]!r}")
    sock.setblocking(False)
    return sock, rest


class SSECounter:
    """Counts events in a chunked text/event-stream: one `\\n\\n` ends each event (chunk framing adds `\\r\\n`
    only, and heartbeats are off)."""

    def __init__(self) -> None:
        self.last = b""

    def feed(self, data: bytes) -> int:
        n = data.count(b"\n\n")
        if self.last == b"\n" and data[:1] == b"\n":
            n += 1
        self.last = data[-1:]
        return n


class WSCounter:
    """Counts final data frames in the server's (unmasked) frame stream without looking at payloads."""

    def __init__(self) -> None:
        self.buf = b""
        self.skip = 0

    def feed(self, data: bytes) -> int:
        if self.skip:
            take = min(self.skip, len(data))
            self.skip -= take
            data = data[take:]
            if self.skip:
                return 0
        buf = self.buf + data if self.buf else data
        i, n, size = 0, 0, len(buf)
        while size - i >= 2:
            b0, length = buf[i], buf[i + 1] & 0x7F
            header = 2
            if length == 126:
                if size - i < 4:
                    break
                length, header = int.from_bytes(buf[i + 2:i + 4], "big"), 4
            elif length == 127:
                if size - i < 10:
                    break
                length, header = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            if b0 & 0x80 and (b0 & 0x0F) in (0, 1, 2):
                n += 1
            i += header
            take = min(length, size - i)
            i += take
            if take < length:
                self.skip = length - take
                break
        self.buf = buf[i:]
        return n


def worker(port: int, transport: str, count: int, control) -> None:
    """Opens `count` clients, then counts events until told to stop; answers `snap` with (events, closed, cpu)."""
    clients = [open_client(port, transport) for _ in range(count)]
    selector = selectors.DefaultSelector()
    total, closed = 0, 0
    for sock, rest in clients:
        counter = SSECounter() if transport == "sse" else WSCounter()
        if rest:
            total += counter.feed(rest)
        selector.register(sock, selectors.EVENT_READ, counter)
    selector.register(control, selectors.EVENT_READ, None)
    control.send("ready")
    running = True
    while running:
        for key, _ in selector.select(timeout=1.0):
            counter = key.data
            if counter is None:
                command = control.recv()
                if command == "snap":
                    t = os.times()
                    control.send((total, closed, t.user + t.system))
                else:
                    running = False
                continue
            try:
                data = key.fileobj.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                closed += 1
                selector.unregister(key.fileobj)
                key.fileobj.close()
                continue
            total += counter.feed(data)
    for sock, _ in clients:
        sock.close()
    control.send("stopped")


def snapshot(pipes) -> tuple[int, int, list[float]]:
    for pipe in pipes:
        pipe.send("snap")
    answers = [pipe.recv() for pipe in pipes]
    return sum(a[0] for a in answers), sum(a[1] for a in answers), [a[2] for a in answers]


def run_transport(a, transport: str, interval_ms: int, measure: bool) -> dict:
    """One server, N clients; idle memory when not `measure`, else the fan-out figures."""
    proc, port = start_server(a.ws_echo, transport, interval_ms, a.event_size)
    workers, pipes = [], []
    try:
        time.sleep(0.5)
        rss0, _ = proc_stats(proc.pid)
        context = multiprocessing.get_context("fork")
        for w in range(a.workers):
            share = a.count // a.workers + (1 if w < a.count % a.workers else 0)
            parent, child = context.Pipe()
            process = context.Process(target=worker, args=(port, transport, share, child), daemon=True)
            process.start()
            workers.append(process)
            pipes.append(parent)
        for pipe in pipes:
            if not pipe.poll(120):
                raise RuntimeError("a worker did not connect its clients in 120 s (an overloaded server stops "
                                   "accepting: lower the tick rate)")
            assert pipe.recv() == "ready"
        if not measure:
            time.sleep(2.0)
            rss1, _ = proc_stats(proc.pid)
            return {"rss_per_conn": (rss1 - rss0) / a.count}
        time.sleep(a.warmup)
        events0, closed0, client_cpu0 = snapshot(pipes)
        _, cpu0 = proc_stats(proc.pid)
        t0 = time.monotonic()
        time.sleep(a.seconds)
        events1, closed1, client_cpu1 = snapshot(pipes)
        _, cpu1 = proc_stats(proc.pid)
        t1 = time.monotonic()
        events = events1 - events0
        elapsed = t1 - t0
        return {
            "events": events,
            "events_per_s": events / elapsed,
            "per_client_per_s": events / elapsed / a.count,
            "cpu_per_event_us": (cpu1 - cpu0) / max(events, 1) * 1e6,
            "server_cpu_pct": (cpu1 - cpu0) / elapsed * 100,
            "client_cpu_pct": [(c1 - c0) / elapsed * 100 for c0, c1 in zip(client_cpu0, client_cpu1)],
            "closed": closed1,
        }
    finally:
        for pipe in pipes:
            try:
                pipe.send("stop")
            except OSError:
                pass
        for process in workers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        stop_server(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ws-echo", default=".build/release/ws-echo")
    ap.add_argument("--count", type=int, default=1000, help="clients per transport")
    ap.add_argument("--interval-ms", type=int, default=100, help="the server's tick interval")
    ap.add_argument("--event-size", type=int, default=64, help="bytes of data per tick")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds between connecting and measuring")
    ap.add_argument("--workers", type=int, default=2, help="client processes")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * a.count + 200)), hard))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# sse_fanout.py  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC  commit {commit}")
    print(f"# uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"# count={a.count} interval_ms={a.interval_ms} event_size={a.event_size} seconds={a.seconds} "
          f"warmup={a.warmup} workers={a.workers} runs={a.runs} nofile={resource.getrlimit(resource.RLIMIT_NOFILE)}")
    sys.stdout.flush()
    rows = []
    for run in range(1, a.runs + 1):
        row = {}
        for transport in ("sse", "ws"):
            idle = run_transport(a, transport, IDLE_INTERVAL_MS, measure=False)
            fan = run_transport(a, transport, a.interval_ms, measure=True)
            row[transport] = {**idle, **fan}
            r = row[transport]
            print(f"run {run} {transport:3}: idle {r['rss_per_conn'] / 1024:.2f} KiB/conn | "
                  f"{r['events_per_s']:.0f} events/s ({r['per_client_per_s']:.1f}/client/s, {r['events']} events) | "
                  f"server {r['cpu_per_event_us']:.2f} µs CPU/event, {r['server_cpu_pct']:.0f}% CPU | "
                  f"clients {', '.join(f'{c:.0f}%' for c in r['client_cpu_pct'])} CPU | closed {r['closed']}")
            sys.stdout.flush()
        s, w = row["sse"], row["ws"]
        print(f"run {run} ratio sse/ws: memory {s['rss_per_conn'] / w['rss_per_conn']:.2f}, "
              f"events/s {s['events_per_s'] / w['events_per_s']:.2f}, "
              f"CPU/event {s['cpu_per_event_us'] / w['cpu_per_event_us']:.2f}")
        print(f"# uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        sys.stdout.flush()
        rows.append(row)

    def med(transport: str, key: str) -> float:
        return statistics.median(r[transport][key] for r in rows)

    def ratios(key: str) -> str:
        values = [r["sse"][key] / r["ws"][key] for r in rows]
        return f"{statistics.median(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})"

    print()
    print(f"| transport | clients | server memory per idle connection | delivered events/s | server CPU per event |")
    print(f"|---|---|---|---|---|")
    for transport, name in (("sse", "SSE /broadcast (HTTP/1.1 chunked)"), ("ws", "WebSocket /ws-broadcast")):
        per_run = lambda key, fmt: ", ".join(fmt(r[transport][key]) for r in rows)  # noqa: E731
        print(f"| {name} | {a.count} | {med(transport, 'rss_per_conn') / 1024:.2f} KiB "
              f"({per_run('rss_per_conn', lambda v: f'{v / 1024:.2f}')}) "
              f"| {med(transport, 'events_per_s'):.0f} ({per_run('events_per_s', lambda v: f'{v:.0f}')}) "
              f"| {med(transport, 'cpu_per_event_us'):.2f} µs ({per_run('cpu_per_event_us', lambda v: f'{v:.2f}')}) |")
    print(f"| ratio SSE/WebSocket, median (per run) | | {ratios('rss_per_conn')} | {ratios('events_per_s')} "
          f"| {ratios('cpu_per_event_us')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
