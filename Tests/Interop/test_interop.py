"""Interop with the Python `websockets` package (pip install websockets):

* websockets as the client against our ws-echo (ws and wss);
* websockets as the server for our client (ws-conformance-client --interop), ws and wss.

The binaries come from WS_ECHO / WS_CLIENT_BIN, or from .build/release or .build/debug; nothing is built here.
"""

import signal

import pytest

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402
from wspeers import EchoServer, assert_client_passed, assert_closed_with, client_ssl, run_client, server_ssl  # noqa: E402

MiB = 1 << 20


def payload(size: int, seed: int = 7) -> bytes:
    return bytes((seed + i * 31) & 0xFF for i in range(size)) if size < MiB else (bytes(range(256)) * (size // 256 + 1))[:size]


# ---------------------------------------------------------------------------------------------------------
# websockets client -> ws-echo


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB])
def test_websockets_client_binary_echo(start_echo, size):
    echo = start_echo()
    data = payload(size)
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None, open_timeout=10) as ws:
        ws.send(data)
        assert ws.recv(timeout=30) == data


def test_websockets_client_text_and_fragments(start_echo):
    echo = start_echo()
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None) as ws:
        for text in ["", "hello", "héllo wörld ✓ 🎉", "ü" * 100_000]:
            ws.send(text)
            reply = ws.recv(timeout=10)
            assert isinstance(reply, str) and reply == text
        # A fragmented message (websockets sends one frame per item).
        ws.send(["frag", "mented ", "téxt"])
        assert ws.recv(timeout=10) == "fragmented téxt"
        ws.send([b"\x00\x01", b"", b"\x02"])
        assert ws.recv(timeout=10) == b"\x00\x01\x02"


def test_websockets_client_ping_pong(start_echo):
    echo = start_echo()
    with connect(f"ws://127.0.0.1:{echo.port}/") as ws:
        pongs = [ws.ping(bytes([i]) * i) for i in range(5)]
        for waiter in pongs:
            assert waiter.wait(timeout=5)


def test_websockets_client_close_code_and_reason(start_echo):
    echo = start_echo()
    with connect(f"ws://127.0.0.1:{echo.port}/") as ws:
        ws.close(4000, "done here")
        # The server echoes the code (RFC 6455 §5.5.1).
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.code == 4000


def test_websockets_client_message_too_big(start_echo):
    echo = start_echo("--max-message-length", "1000")
    with connect(f"ws://127.0.0.1:{echo.port}/") as ws:
        ws.send(b"x" * 1000)
        assert ws.recv(timeout=5) == b"x" * 1000
        ws.send(b"x" * 1001)
        assert_closed_with(ws, 1009, timeout=5)


def test_websockets_client_invalid_utf8_is_1007(start_echo):
    echo = start_echo()
    with connect(f"ws://127.0.0.1:{echo.port}/") as ws:
        # Bypass websockets' own encoding: send a text frame with invalid UTF-8 (RFC 6455 §8.1).
        from websockets.frames import Frame, Opcode
        with ws.protocol_mutex:
            ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
            ws.send_data()
        assert_closed_with(ws, 1007, timeout=5)


def test_websockets_client_graceful_shutdown_sends_1001(start_echo):
    echo = start_echo()
    with connect(f"ws://127.0.0.1:{echo.port}/") as ws:
        ws.send("before shutdown")
        assert ws.recv(timeout=5) == "before shutdown"
        echo.process.send_signal(signal.SIGTERM)
        assert_closed_with(ws, 1001, timeout=10)
    assert echo.process.wait(timeout=10) == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_websockets_client_wss(start_echo, certificate, host):
    cert, key = certificate
    echo = start_echo("--tls-cert", cert, "--tls-key", key)
    with connect(f"wss://{host}:{echo.port}/", ssl=client_ssl(cert), max_size=None) as ws:
        ws.send("over tls")
        assert ws.recv(timeout=10) == "over tls"
        data = payload(2 * MiB)
        ws.send(data)
        assert ws.recv(timeout=30) == data


# ---------------------------------------------------------------------------------------------------------
# our client -> websockets server


def test_our_client_against_websockets_server(ws_client_bin):
    server = EchoServer(subprotocols=["chat.v2"])
    try:
        result = run_client(ws_client_bin, f"ws://127.0.0.1:{server.port}/", "--subprotocol", "chat.v1",
                            "--subprotocol", "chat.v2")
        assert_client_passed(result)
        assert "subprotocol chat.v2" in result.stdout
    finally:
        server.stop()
    assert server.subprotocols_seen == ["chat.v2"]
    assert server.closes == [(1000, "bye")]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_our_client_against_websockets_server_wss(ws_client_bin, certificate, host):
    cert, key = certificate
    server = EchoServer(ssl_context=server_ssl(cert, key))
    try:
        result = run_client(ws_client_bin, f"wss://{host}:{server.port}/", "--ca-cert", cert)
        assert_client_passed(result)
    finally:
        server.stop()
    assert server.closes == [(1000, "bye")]


def test_our_client_rejects_untrusted_certificate(ws_client_bin, certificate):
    cert, key = certificate
    server = EchoServer(ssl_context=server_ssl(cert, key))
    try:
        result = run_client(ws_client_bin, f"wss://127.0.0.1:{server.port}/")
        assert result.returncode != 0
    finally:
        server.stop()
