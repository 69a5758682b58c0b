#!/usr/bin/env python3
"""WebSockets over one HTTP/2 connection (RFC 8441) vs one TCP connection each (RFC 6455), against ws-echo.

For N WebSockets (default 1000) on each transport, measures from /proc on the SERVER process:
  - memory per WebSocket: the server's RSS after opening them minus its RSS before, divided by N;
  - CPU per echoed message: the server's user+system CPU time over R rounds (one small text message echoed on
    every WebSocket per round) divided by the N*R messages.
The load generator is Python (`h2` + `wsproto` for HTTP/2, raw sockets + `wsproto` for HTTP/1.1); only the
server's figures are reported, so its own speed does not matter. A benchmark, not a test: nothing is asserted.

    python3 Benchmarks/h2_vs_h1.py --ws-echo .build/release/ws-echo [--count 1000] [--rounds 20]
"""

import argparse
import base64
import os
import resource
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "HTTP2"))

from testprocs import free_port, wait_for_port  # noqa: E402
from h2peer import H2Client, TextMessage  # noqa: E402
from wsproto.connection import Connection, ConnectionType  # noqa: E402
from wsproto.events import TextMessage as WsText  # noqa: E402
from wsproto.frame_protocol import Opcode  # noqa: E402,F401

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def server_stats(pid: int) -> tuple[int, float]:
    """(RSS bytes, user+system CPU seconds) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return rss, cpu


def raw(transport: str, count: int, rounds: int, rss0: int, rss1: int, cpu0: float, cpu1: float) -> dict:
    """Prints the raw measurements (CPU time is counted in clock ticks of 1/SC_CLK_TCK s) and returns the
    figures."""
    print(f"RAW {transport} count={count} rounds={rounds} rss_before={rss0} rss_after={rss1} "
          f"cpu_seconds={cpu1 - cpu0:.2f} messages={count * rounds}", flush=True)
    return {"rss_per_ws": (rss1 - rss0) / count, "cpu_per_msg_us": (cpu1 - cpu0) / (count * rounds) * 1e6}


def start(binary: str, *extra: str):
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--log-level", "warning", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc, port


def bench_h2(binary: str, count: int, rounds: int) -> dict:
    proc, port = start(binary, "--h2c", "--max-concurrent-streams", str(count + 10),
                       "--max-websockets-per-connection", str(count))
    try:
        time.sleep(0.3)
        rss0, _ = server_stats(proc.pid)
        client = H2Client(port, timeout=60)
        streams = [client.open_websocket(wait=False) for _ in range(count)]
        client.pump_until(lambda: all(s.headers for s in streams), timeout=120)
        for s in streams:
            assert s.headers[":status"] == "200"
            s.ws = Connection(ConnectionType.CLIENT)
        time.sleep(0.5)
        rss1, cpu0 = server_stats(proc.pid)
        for r in range(rounds):
            for s in streams:
                client.conn.send_data(s.stream_id, s.ws.send(TextMessage(f"m{r}")))
            client.flush()
            client.pump_until(lambda: all(len(client.messages(s)) > r for s in streams), timeout=120)
        _, cpu1 = server_stats(proc.pid)
        client.close()
        return raw("h2", count, rounds, rss0, rss1, cpu0, cpu1)
    finally:
        proc.terminate()
        proc.wait()


def bench_h1(binary: str, count: int, rounds: int) -> dict:
    proc, port = start(binary)
    socks = []
    try:
        time.sleep(0.3)
        rss0, _ = server_stats(proc.pid)
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 101"), head[:40]
            socks.append((sock, Connection(ConnectionType.CLIENT)))
        time.sleep(0.5)
        rss1, cpu0 = server_stats(proc.pid)
        for r in range(rounds):
            for sock, ws in socks:
                sock.sendall(ws.send(WsText(f"m{r}")))
            for sock, ws in socks:
                got = False
                while not got:
                    ws.receive_data(sock.recv(4096))
                    got = any(isinstance(e, WsText) for e in ws.events())
        _, cpu1 = server_stats(proc.pid)
        return raw("h1", count, rounds, rss0, rss1, cpu0, cpu1)
    finally:
        for sock, _ in socks:
            sock.close()
        proc.terminate()
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ws-echo", default=".build/release/ws-echo")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * a.count + 100)), hard))
    h2 = bench_h2(a.ws_echo, a.count, a.rounds)
    h1 = bench_h1(a.ws_echo, a.count, a.rounds)
    print(f"| transport | WebSockets | server memory per WebSocket | server CPU per echoed message |")
    print(f"|---|---|---|---|")
    print(f"| HTTP/2, one connection (RFC 8441) | {a.count} | {h2['rss_per_ws'] / 1024:.2f} KiB "
          f"| {h2['cpu_per_msg_us']:.2f} µs |")
    print(f"| HTTP/1.1, one TCP connection each | {a.count} | {h1['rss_per_ws'] / 1024:.2f} KiB "
          f"| {h1['cpu_per_msg_us']:.2f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
