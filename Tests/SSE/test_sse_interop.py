"""Server-Sent Events interop with peers we did not write: launchdarkly-eventsource (a Python client that
reconnects with Last-Event-ID) against sse-ticker, our sse-client against sse-starlette under uvicorn, and bad
input against sse-ticker (malformed Last-Event-ID, a client that never reads, many streams)."""

import json
import socket
import subprocess
import threading
import time
import urllib.request

import pytest


def raw_request(port: int, target: str, headers: list[str] = ()) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream", *headers]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_launchdarkly_client_resumes_with_last_event_id(start_ticker):
    ld = pytest.importorskip("ld_eventsource")
    from ld_eventsource.actions import Event
    from ld_eventsource.config import ConnectStrategy, ErrorStrategy

    # The server drops each connection after 3 events; the client must reconnect with Last-Event-ID each time.
    server = start_ticker("--interval", "20", "--count", "9", "--drop-after", "3", "--retry", "100")
    client = ld.SSEClient(
        connect=ConnectStrategy.http(f"http://127.0.0.1:{server.port}/ticker"),
        initial_retry_delay=0.1,
        error_strategy=ErrorStrategy.always_continue(),
    )
    received = []
    deadline = time.monotonic() + 20
    try:
        for action in client.all:
            if isinstance(action, Event):
                received.append((action.id, action.data))
                if action.id == "9":
                    break
            assert time.monotonic() < deadline, f"timed out with {received}"
    finally:
        client.close()
    assert received == [(str(n), str(n)) for n in range(1, 10)]
    log = server.output
    assert "last-event-id=3" in log and "last-event-id=6" in log, log


def test_our_client_against_sse_starlette(start_starlette, client_bin):
    app = start_starlette()
    result = subprocess.run(
        [client_bin, f"http://127.0.0.1:{app.port}/numbers"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr  # ends normally on 204
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["id"] for e in events] == [str(n) for n in range(1, 10)]
    assert [e["data"] for e in events] == [f"n{n}\nline 2" for n in range(1, 10)]
    assert {e["type"] for e in events} == {"number"}
    assert {e["retry"] for e in events} == {100}
    with urllib.request.urlopen(f"http://127.0.0.1:{app.port}/log", timeout=5) as response:
        assert json.load(response) == [None, "3", "6", "9"]


def test_our_client_against_our_server(start_ticker, client_bin):
    server = start_ticker("--interval", "10", "--count", "6", "--drop-after", "2", "--retry", "50")
    result = subprocess.run(
        [client_bin, f"http://127.0.0.1:{server.port}/ticker"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["data"] for line in result.stdout.splitlines()] == [str(n) for n in range(1, 7)]


def test_our_client_fails_without_reconnect_on_bad_status(start_ticker, client_bin):
    server = start_ticker()
    result = subprocess.run(
        [client_bin, f"http://127.0.0.1:{server.port}/nothing"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "404" in result.stderr


@pytest.mark.parametrize("value", ["abc", "-1", "1" * 2000])
def test_malformed_last_event_id_is_refused(start_ticker, value):
    server = start_ticker()
    with raw_request(server.port, "/ticker", [f"Last-Event-ID: {value}"]) as sock:
        head = read_until(sock, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head[:100]
    # The server still serves.
    with raw_request(server.port, "/ticker") as sock:
        assert b"data: 1" in read_until(sock, b"data: 1")


def test_client_that_never_reads_keeps_memory_bounded(start_ticker):
    # 1 ms ticks of 20 kB: 20 MB/s that the client never reads; the stream's buffer bound pauses the producer.
    server = start_ticker("--interval", "1", "--data-size", "20000", "--heartbeat", "0")
    socks = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /ticker HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            socks.append(sock)
        time.sleep(0.5)
        before = server.rss_kib()
        time.sleep(2.5)  # without a bound: 4 × 50 MB more
        after = server.rss_kib()
        assert after - before < 16 * 1024, f"RSS grew from {before} to {after} KiB"
        # A reading client is still served.
        with raw_request(server.port, "/ticker") as sock:
            assert b"id: 1" in read_until(sock, b"id: 1")
    finally:
        for sock in socks:
            sock.close()


def test_many_streams(start_ticker):
    server = start_ticker("--interval", "50", "--count", "2")
    results = []

    def one():
        try:
            with raw_request(server.port, "/ticker") as sock:
                data = read_until(sock, b"0\r\n\r\n")
            results.append(data.count(b"data: "))
        except OSError as error:
            results.append(repr(error))

    threads = [threading.Thread(target=one) for _ in range(300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [2] * 300
