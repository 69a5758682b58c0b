"""WebSockets over HTTP/2 (RFC 8441) against our server (ws-echo --h2c / --http2 with TLS), driven by a client
built on third-party packages: `h2` (HTTP/2) and `wsproto` (WebSocket frames in the streams' DATA)."""

import json
import os
import signal

import pytest
from h2peer import BytesMessage, CloseConnection, H2Client, Ping, Pong, TextMessage, tolerate_frames_after_goaway

PROTOCOL_ERROR, CANCEL, REFUSED_STREAM = 0x1, 0x8, 0x7
SIZES = [0, 1, 125, 126, 1000, 65535, 65536, 200_000]


@pytest.fixture(params=["h2c", "tls"])
def server(request, start_echo, certificate):
    """ws-echo serving HTTP/2: h2c prior knowledge on a plain port, or ALPN h2 over TLS."""
    if request.param == "h2c":
        return start_echo("--h2c"), False
    cert, key = certificate
    return start_echo("--http2", "--tls-cert", cert, "--tls-key", key), True


def client_for(server) -> H2Client:
    process, tls = server
    return H2Client(process.port, tls=tls)


def stats(client: H2Client) -> dict:
    stream = client.get("/stats")
    assert stream.headers[":status"] == "200"
    return json.loads(bytes(stream.body))


def test_settings_advertise_extended_connect(server):
    client = client_for(server)
    assert client.connect_protocol_enabled
    client.close()


@pytest.mark.parametrize("size", SIZES)
def test_echo_text_and_binary(server, size):
    client = client_for(server)
    stream = client.open_websocket()
    assert stream.headers[":status"] == "200"
    for forbidden in ("upgrade", "connection", "sec-websocket-accept"):
        assert forbidden not in stream.headers
    text = ("é" * (size // 2 + 1))[: max(size // 2, 0)]
    data = os.urandom(size)
    client.ws_send(stream.stream_id, TextMessage(text))
    client.ws_send(stream.stream_id, BytesMessage(data))
    messages = client.wait_messages(stream, 2, timeout=20)
    assert messages[0] == text
    assert messages[1] == data
    client.close()


def test_fragmented_message(server):
    client = client_for(server)
    stream = client.open_websocket()
    parts = [b"a" * 10, b"b" * 70_000, b"c"]
    for index, part in enumerate(parts):
        client.ws_send(stream.stream_id, BytesMessage(part, message_finished=index == len(parts) - 1))
    assert client.wait_messages(stream, 1)[0] == b"".join(parts)
    client.close()


def test_ping_gets_pong(server):
    client = client_for(server)
    stream = client.open_websocket()
    client.ws_send(stream.stream_id, Ping(b"hello"))
    client.pump_until(lambda: any(isinstance(e, Pong) for e in stream.events))
    assert [e.payload for e in stream.events if isinstance(e, Pong)] == [b"hello"]
    client.close()


def test_close_handshake_ends_stream_with_end_stream(server):
    client = client_for(server)
    stream = client.open_websocket()
    client.ws_send(stream.stream_id, CloseConnection(code=1000, reason="bye"))
    client.pump_until(lambda: stream.ended or stream.reset_code is not None)
    closes = [e for e in stream.events if isinstance(e, CloseConnection)]
    assert closes and closes[0].code == 1000
    assert stream.ended and stream.reset_code is None  # END_STREAM, never RST_STREAM
    client.end_stream(stream.stream_id)
    # The connection is still usable, and the server saw the WebSocket end.
    client.pump_until(lambda: stats(client)["openWebSockets"] == 0)
    client.close()


def test_many_websockets_on_one_connection(server):
    client = client_for(server)
    streams = [client.open_websocket(wait=False) for _ in range(40)]
    client.pump_until(lambda: all(s.headers for s in streams))
    from wsproto.connection import Connection, ConnectionType
    for s in streams:
        assert s.headers[":status"] == "200"
        s.ws = Connection(ConnectionType.CLIENT)
    for round_ in range(3):
        for index, s in enumerate(streams):
            client.ws_send(s.stream_id, TextMessage(f"{index}:{round_}"))
    for index, s in enumerate(streams):
        assert client.wait_messages(s, 3) == [f"{index}:{r}" for r in range(3)]
    counters = stats(client)
    assert counters["openWebSockets"] == 40
    assert counters["connections"] == 1
    client.close()


def test_plain_http_over_http2(server):
    client = client_for(server)
    assert client.get("/nothing-here").headers[":status"] == "404"
    assert client.get("/stats").headers[":status"] == "200"
    client.close()


def test_missing_path_is_a_stream_error(server):
    process, tls = server
    client = H2Client(process.port, tls=tls, validate=False)
    headers = [h for h in client.connect_headers() if h[0] != ":path"]
    stream = client.request(headers, end_stream=False)
    client.pump_until(lambda: stream.reset_code is not None or bool(stream.headers))
    assert stream.reset_code == PROTOCOL_ERROR and not stream.headers
    # Only that stream failed: the connection still carries WebSockets.
    other = client.open_websocket()
    assert other.headers[":status"] == "200"
    client.close()


def test_wrong_version_gets_400_with_version_13(server):
    client = client_for(server)
    stream = client.request(client.connect_headers(version="8"), end_stream=False)
    client.pump_until(lambda: stream.ended or stream.reset_code is not None)
    assert stream.headers[":status"] == "400"
    assert stream.headers["sec-websocket-version"] == "13"
    client.close()


def test_other_protocol_is_refused_not_hung(server):
    client = client_for(server)
    stream = client.request(client.connect_headers(protocol="connect-udp"), end_stream=False)
    client.pump_until(lambda: stream.ended or stream.reset_code is not None)
    assert stream.headers[":status"] == "501"
    client.close()


def test_reset_mid_message_fails_only_that_stream(server):
    client = client_for(server)
    victim = client.open_websocket()
    survivor = client.open_websocket()
    client.ws_send(victim.stream_id, BytesMessage(b"x" * 5000, message_finished=False))
    client.reset(victim.stream_id, CANCEL)
    client.ws_send(survivor.stream_id, TextMessage("still here"))
    assert client.wait_messages(survivor, 1) == ["still here"]
    client.pump_until(lambda: stats(client)["openWebSockets"] == 1)
    client.close()


def test_graceful_shutdown_sends_goaway_then_1001(server):
    tolerate_frames_after_goaway()
    process, tls = server
    client = H2Client(process.port, tls=tls)
    streams = [client.open_websocket() for _ in range(3)]
    process.process.send_signal(signal.SIGTERM)
    client.pump_until(lambda: all(any(isinstance(e, CloseConnection) for e in s.events) for s in streams))
    assert client.goaway is not None and client.goaway.error_code == 0
    for s in streams:
        assert [e.code for e in s.events if isinstance(e, CloseConnection)] == [1001]
        client.ws_send(s.stream_id, CloseConnection(code=1001))
    client.pump_until(lambda: all(s.ended or s.reset_code is not None for s in streams) or client.closed)
    client.close()
    assert process.stop() == 0


def test_permessage_deflate(start_echo):
    process = start_echo("--h2c", "--deflate")
    client = H2Client(process.port)
    stream = client.open_websocket(deflate=True)
    assert stream.headers[":status"] == "200"
    assert stream.headers["sec-websocket-extensions"].startswith("permessage-deflate")
    payload = "compressible " * 5000
    client.ws_send(stream.stream_id, TextMessage(payload))
    assert client.wait_messages(stream, 1) == [payload]
    client.close()


def test_more_websockets_than_allowed_are_refused(start_echo):
    process = start_echo("--h2c", "--max-websockets-per-connection", "3")
    client = H2Client(process.port)
    opened = [client.open_websocket() for _ in range(3)]
    assert all(s.headers[":status"] == "200" for s in opened)
    refused = client.open_websocket()
    assert refused.reset_code == REFUSED_STREAM
    client.ws_send(opened[0].stream_id, TextMessage("ok"))
    assert client.wait_messages(opened[0], 1) == ["ok"]
    client.close()


def test_max_concurrent_streams_is_advertised_and_enforced(start_echo):
    tolerate_frames_after_goaway()
    process = start_echo("--h2c", "--max-concurrent-streams", "4")
    client = H2Client(process.port)
    import h2.settings
    assert client.conn.remote_settings.max_concurrent_streams == 4
    streams = [client.open_websocket() for _ in range(4)]
    assert all(s.headers[":status"] == "200" for s in streams)
    # Lie to h2 about the limit so that it sends a fifth stream. NIOHTTP2 answers with a connection error
    # (GOAWAY PROTOCOL_ERROR, RFC 9113 §5.1.2 allows it) whose last stream ID lets the open streams finish: the
    # fifth is never processed, the four WebSockets keep working.
    client.conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 100
    client.conn.remote_settings.acknowledge()
    fifth = client.open_websocket(wait=False)
    client.pump_until(lambda: fifth.reset_code is not None or client.goaway is not None)
    assert not fifth.headers
    if client.goaway is not None:
        assert client.goaway.error_code == PROTOCOL_ERROR
        assert client.goaway.last_stream_id >= streams[-1].stream_id
    for index, s in enumerate(streams):
        client.ws_send(s.stream_id, TextMessage(f"still {index}"))
        assert client.wait_messages(s, 1) == [f"still {index}"]
    client.close()


def test_protocol_refused_when_not_advertised(start_echo):
    process = start_echo("--h2c", "--no-websocket-routes")
    client = H2Client(process.port, validate=False)
    assert not client.connect_protocol_enabled
    stream = client.request(client.connect_headers(), end_stream=False)
    client.pump_until(lambda: stream.reset_code is not None or bool(stream.headers) or client.goaway is not None)
    assert not stream.headers
    assert stream.reset_code == PROTOCOL_ERROR or client.goaway is not None
    client.close()


def test_http1_still_works_beside_h2c(start_echo):
    from websockets.sync.client import connect
    process = start_echo("--h2c")
    with connect(f"ws://127.0.0.1:{process.port}/") as ws:
        ws.send("over HTTP/1.1")
        assert ws.recv(timeout=5) == "over HTTP/1.1"


def test_flow_control_is_per_stream_backpressure(start_echo):
    """A WebSocket whose reader stops (no WINDOW_UPDATE for its echoes) stops being read by the server, so its
    sender runs out of window; another WebSocket on the same connection keeps echoing; once the reader resumes,
    every echo arrives."""
    process = start_echo("--h2c")
    client = H2Client(process.port)
    # A large connection-level receive window, so that holding back one stream's window is all that happens.
    client.conn.increment_flow_control_window(1 << 30)
    client.flush()
    slow, fast = client.open_websocket(), client.open_websocket()
    slow.hold = True
    chunk = b"s" * 16_000
    sent = 0
    while client.conn.local_flow_control_window(slow.stream_id) > 0 and sent < 200:
        data = slow.ws.send(BytesMessage(chunk))
        window = client.conn.local_flow_control_window(slow.stream_id)
        if window < len(data):
            break
        client.conn.send_data(slow.stream_id, data)
        client.flush()
        sent += 1
        client.pump(0.02)
    client.pump_until(lambda: client.conn.local_flow_control_window(slow.stream_id) < len(chunk) + 14, timeout=10)
    assert sent < 200  # the server stopped granting window on the slow stream long before 3 MB
    for index in range(3):
        client.ws_send(fast.stream_id, TextMessage(f"fast {index}"))
    assert client.wait_messages(fast, 3) == ["fast 0", "fast 1", "fast 2"]
    client.release(slow)
    assert len(client.wait_messages(slow, sent, timeout=20)) == sent
    client.close()


def test_heartbeat_pings_over_the_stream(start_echo):
    process = start_echo("--h2c", "--ping-interval", "1", "--pong-timeout", "5")
    client = H2Client(process.port)
    stream = client.open_websocket()  # h2peer answers every ping with a pong
    client.pump_until(lambda: any(isinstance(e, Ping) for e in stream.events), timeout=10)
    client.ws_send(stream.stream_id, TextMessage("alive"))
    assert client.wait_messages(stream, 1) == ["alive"]
    client.close()


def test_message_limit_fails_only_that_stream(start_echo):
    process = start_echo("--h2c", "--max-message-length", "1000")
    client = H2Client(process.port)
    big, small = client.open_websocket(), client.open_websocket()
    client.ws_send(big.stream_id, BytesMessage(b"x" * 5000))
    client.pump_until(lambda: any(isinstance(e, CloseConnection) for e in big.events))
    assert [e.code for e in big.events if isinstance(e, CloseConnection)] == [1009]
    client.ws_send(small.stream_id, TextMessage("fine"))
    assert client.wait_messages(small, 1) == ["fine"]
    client.close()
