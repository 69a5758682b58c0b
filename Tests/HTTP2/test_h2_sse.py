"""Server-Sent Events over HTTP/2 streams against our server (ws-echo --h2c / --http2 with TLS and
--event-interval), driven by a client on the third-party `h2` package: several event streams and a WebSocket
multiplexed on one connection, Last-Event-ID resumption, the accept hook, a reset stream, a stream whose
client does not read (HTTP/2 flow control as backpressure), and the graceful shutdown."""

import json
import signal
import socket
import time

import pytest
from h2peer import H2Client, TextMessage, tolerate_frames_after_goaway

CANCEL = 0x8


@pytest.fixture(params=["h2c", "tls"])
def mode(request, certificate):
    """Arguments that make ws-echo serve HTTP/2: h2c prior knowledge on a plain port, or ALPN h2 over TLS."""
    if request.param == "h2c":
        return ["--h2c"], False
    cert, key = certificate
    return ["--http2", "--tls-cert", cert, "--tls-key", key], True


def events_of(stream) -> list[dict]:
    """The complete events (and comments, as {"comment": text}) in the stream's body so far."""
    result, event = [], {}
    text = bytes(stream.body).decode()
    for line in text.split("\n")[:-1]:  # the server writes LF line ends; the last piece is incomplete
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if line == "":
            if event:
                result.append(event)
            event = {}
        elif name == "":
            result.append({"comment": value})
        else:
            event[name] = event[name] + "\n" + value if name == "data" and name in event else value
    return result


def ids_of(stream) -> list[int]:
    return [int(event["id"]) for event in events_of(stream) if "id" in event]


def open_events(client: H2Client, path: str, extra=()) -> "object":
    return client.request([(":method", "GET"), (":scheme", client.scheme), (":path", path),
                           (":authority", "127.0.0.1"), ("accept", "text/event-stream"), *extra])


def stats(client: H2Client) -> dict:
    stream = client.get("/stats")
    assert stream.headers[":status"] == "200"
    return json.loads(bytes(stream.body))


def test_event_streams_and_a_websocket_share_one_connection(start_echo, mode):
    args, tls = mode
    process = start_echo(*args, "--event-interval", "40")
    client = H2Client(process.port, tls=tls)
    streams = [open_events(client, "/events") for _ in range(3)]
    socket_stream = client.open_websocket()
    assert socket_stream.headers[":status"] == "200"
    client.pump_until(lambda: all(len(ids_of(s)) >= 3 for s in streams))
    for stream in streams:
        headers = stream.headers
        assert headers[":status"] == "200"
        assert headers["content-type"] == "text/event-stream"
        assert headers["cache-control"] == "no-cache"
        assert headers["x-event-route"] == "ticker"  # from the accept hook
        for forbidden in ("connection", "transfer-encoding", "keep-alive", "content-encoding", "content-length"):
            assert forbidden not in headers
        assert ids_of(stream)[:3] == [1, 2, 3]
        assert events_of(stream)[0]["data"] == "1"

    # One stream reset by the client: its producer stops, the others and the WebSocket go on.
    client.reset(streams[1].stream_id, CANCEL)
    client.ws_send(socket_stream.stream_id, TextMessage("still here"))
    assert client.wait_messages(socket_stream, 1) == ["still here"]
    before = [len(ids_of(s)) for s in streams]
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        client.pump()
    after = [len(ids_of(s)) for s in streams]
    assert after[0] > before[0] + 3 and after[2] > before[2] + 3
    assert after[1] == before[1]
    for stream in (streams[0], streams[2]):
        ids = ids_of(stream)
        assert ids == list(range(1, len(ids) + 1))
    client.ws_send(socket_stream.stream_id, TextMessage("and again"))
    assert client.wait_messages(socket_stream, 2)[1] == "and again"

    counters = stats(client)
    assert counters["connections"] == 1
    assert counters["eventStreamsOpened"] == 3
    assert counters["openEventStreams"] == 2
    assert counters["openWebSockets"] == 1
    client.close()


def test_last_event_id_resumes_after_that_event(start_echo, mode):
    args, tls = mode
    process = start_echo(*args, "--event-interval", "20")
    client = H2Client(process.port, tls=tls)
    stream = open_events(client, "/events", [("last-event-id", "41")])
    client.pump_until(lambda: len(ids_of(stream)) >= 3)
    assert ids_of(stream)[:3] == [42, 43, 44]
    client.close()


def test_broadcast_resumes_from_history(start_echo):
    process = start_echo("--h2c", "--event-interval", "30")
    client = H2Client(process.port)
    first = open_events(client, "/broadcast")
    client.pump_until(lambda: len(ids_of(first)) >= 4)
    seen = ids_of(first)
    client.reset(first.stream_id, CANCEL)
    time.sleep(0.3)  # events published meanwhile stay in the history
    resumed = open_events(client, "/broadcast", [("last-event-id", str(seen[1]))])
    client.pump_until(lambda: len(ids_of(resumed)) >= 15)
    ids = ids_of(resumed)
    assert ids == list(range(seen[1] + 1, seen[1] + 1 + len(ids)))
    client.close()


def test_accept_hook_and_refusals(start_echo):
    process = start_echo("--h2c", "--event-interval", "50")
    client = H2Client(process.port)
    denied = client.get("/events?deny")
    assert denied.headers[":status"] == "403"
    assert bytes(denied.body) == b"denied\n"
    done = client.get("/events?done")
    assert done.headers[":status"] == "204"
    assert "content-length" not in done.headers and bytes(done.body) == b""
    post = client.request([(":method", "POST"), (":scheme", "http"), (":path", "/events"),
                           (":authority", "127.0.0.1")])
    client.pump_until(lambda: post.ended)
    assert post.headers[":status"] == "405" and post.headers["allow"] == "GET"
    bad = open_events(client, "/events", [("last-event-id", "x" * 2000)])
    client.pump_until(lambda: bad.ended)
    assert bad.headers[":status"] == "400"
    # The connection is still good for a stream.
    stream = open_events(client, "/events")
    client.pump_until(lambda: len(ids_of(stream)) >= 1)
    client.close()


def test_client_that_does_not_read(start_echo):
    """Flow control as backpressure: a stream whose client grants no window keeps the server's bytes in that
    stream's bounded buffer. /events (a producer that can wait) is paused and resumes without a gap once the
    client reads; /broadcast (a producer that cannot wait for one client) drops that stream only."""
    process = start_echo("--h2c", "--event-interval", "2", "--event-size", "4000")
    client = H2Client(process.port)
    # The held streams must not starve the others through the connection window: grant a large one.
    client.conn.increment_flow_control_window(1 << 30)
    client.flush()
    paused = open_events(client, "/events")
    paused.hold = True
    slow = open_events(client, "/broadcast")
    slow.hold = True
    fast = open_events(client, "/broadcast")
    client.pump_until(lambda: slow.reset_code is not None, timeout=20)
    assert slow.reset_code == CANCEL
    held_bytes = sum(len(event.data) for event in paused.held)
    assert held_bytes <= 65535  # the stream window: no byte beyond it was sent
    rss_before = process_rss_kib(process)
    count = len(ids_of(fast))
    deadline = time.monotonic() + 1.0  # the paused producer would write 2 MB meanwhile were it not paused
    while time.monotonic() < deadline:
        client.pump()
    assert process_rss_kib(process) < rss_before + 8 * 1024
    assert len(ids_of(fast)) > count + 20 and fast.reset_code is None
    fast_ids = ids_of(fast)
    assert fast_ids == list(range(fast_ids[0], fast_ids[0] + len(fast_ids)))
    client.release(paused)
    client.pump_until(lambda: len(ids_of(paused)) >= 100, timeout=20)
    ids = ids_of(paused)
    assert ids == list(range(1, len(ids) + 1))  # paused, never dropped
    client.close()


def process_rss_kib(process) -> int:
    with open(f"/proc/{process.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_heartbeats_and_graceful_shutdown_end_each_stream(start_echo, mode):
    tolerate_frames_after_goaway()
    args, tls = mode
    process = start_echo(*args, "--event-interval", "600000", "--event-heartbeat", "1")
    client = H2Client(process.port, tls=tls)
    quiet = open_events(client, "/broadcast")
    ticking = open_events(client, "/events")
    socket_stream = client.open_websocket()
    client.pump_until(lambda: any("comment" in e for e in events_of(quiet)), timeout=5)
    client.pump_until(lambda: ids_of(ticking) == [1])
    process.process.send_signal(signal.SIGTERM)
    client.pump_until(lambda: quiet.ended and ticking.ended, timeout=10)
    assert client.goaway is not None and client.goaway.error_code == 0
    assert quiet.reset_code is None and ticking.reset_code is None
    client.pump_until(lambda: any(getattr(e, "code", None) == 1001 for e in socket_stream.events), timeout=10)
    close = next(e for e in socket_stream.events if getattr(e, "code", None) == 1001)
    client.ws_send(socket_stream.stream_id, close.response())
    client.close()
    assert process.stop() == 0


def test_reset_flood_closes_the_connection_and_its_event_streams(start_echo):
    """Streams opened and reset in a loop (CVE-2023-44487 "rapid reset"): NIOHTTP2 answers GOAWAY
    ENHANCE_YOUR_CALM, and the server must then close the TCP connection (RFC 9113 §5.4.1), ending the event
    stream still open on it, instead of keeping both until the client leaves."""
    tolerate_frames_after_goaway()
    process = start_echo("--h2c", "--event-interval", "20")
    client = H2Client(process.port)
    kept = open_events(client, "/events")
    client.pump_until(lambda: len(ids_of(kept)) >= 1)
    for _ in range(1000):
        if client.goaway is not None or client.closed:
            break
        stream = open_events(client, "/events")
        client.reset(stream.stream_id, CANCEL)
        client.pump(0.001)
    client.pump_until(lambda: client.goaway is not None, timeout=5)
    assert client.goaway.error_code == 11  # ENHANCE_YOUR_CALM
    deadline = time.monotonic() + 5
    closed = False
    client.sock.settimeout(0.2)
    while time.monotonic() < deadline and not closed:
        try:
            closed = client.sock.recv(65536) == b""
        except TimeoutError:
            pass
        except OSError:
            closed = True
    assert closed, "the server kept the connection open after its GOAWAY for a connection error"
    observer = H2Client(process.port)
    assert stats(observer)["openEventStreams"] == 0
    observer.close()


def _closed_within(sock, seconds):
    """True when the peer closes `sock` within `seconds` (whatever it sends first is read and dropped)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            pass
        except OSError:
            return True
    return False


@pytest.mark.parametrize("frame", [
    # A SETTINGS frame of length 5 (FRAME_SIZE_ERROR, RFC 9113 §6.5), DATA on stream 0 and a WINDOW_UPDATE of 0 on
    # the connection (PROTOCOL_ERROR, §6.1 and §6.9): connection errors, each answered with GOAWAY.
    bytes([0, 0, 5, 0x4, 0, 0, 0, 0, 0]) + bytes(5),
    bytes([0, 0, 1, 0x0, 0, 0, 0, 0, 0]) + b"x",
    bytes([0, 0, 4, 0x8, 0, 0, 0, 0, 0]) + bytes(4),
], ids=["settings-length-5", "data-on-stream-0", "window-update-0"])
def test_connection_error_goaway_closes_the_connection(start_echo, frame):
    """RFC 9113 §5.4.1: after the GOAWAY of a connection error the server closes TCP (it used to keep the
    connection open after any GOAWAY but the flood limits'); the server keeps serving new connections."""
    process = start_echo("--h2c", "--event-interval", "20")
    sock = socket.create_connection(("127.0.0.1", process.port), timeout=5)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 0x4, 0, 0, 0, 0, 0]) + frame)
    assert _closed_within(sock, 5), "the server kept the connection open after its GOAWAY for a connection error"
    sock.close()
    observer = H2Client(process.port)
    assert stats(observer)["connections"] >= 2
    observer.close()
