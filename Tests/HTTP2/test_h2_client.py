"""Our client (ws-conformance-client --interop, on the WebSocketClient module) against a third-party WebSocket
over HTTP/2 server (Python `h2` + `wsproto`, h2server.py): h2c prior knowledge and TLS with ALPN h2."""

import subprocess
import time

import pytest
from h2peer import tolerate_frames_after_goaway
from h2server import H2EchoServer


@pytest.fixture(scope="session")
def client_bin():
    from Interop.conftest import find_binary
    path = find_binary("WS_CLIENT_BIN", "ws-conformance-client")
    if not path:
        pytest.skip("ws-conformance-client not found")
    return path


def run_client(binary, url, *extra):
    return subprocess.run([binary, "--interop", "--url", url, *extra], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("deflate", [False, True])
def test_client_over_h2c(client_bin, deflate):
    server = H2EchoServer()
    try:
        extra = ["--http2", "prior-knowledge"] + (["--deflate"] if deflate else [])
        result = run_client(client_bin, f"ws://127.0.0.1:{server.port}/echo", *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert server.websockets == 1
        request = server.requests[0]
        assert request[":method"] == "CONNECT" and request[":protocol"] == "websocket"
        assert request[":path"] == "/echo" and request["sec-websocket-version"] == "13"
        assert "sec-websocket-key" not in request and "upgrade" not in request
        deadline = time.monotonic() + 5
        while server.clean_ends == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.clean_ends == 1 and server.resets == 0  # the stream ended with END_STREAM
    finally:
        server.stop()


def test_client_over_tls_alpn_h2(client_bin, certificate):
    server = H2EchoServer(cert=certificate)
    try:
        result = run_client(client_bin, f"wss://localhost:{server.port}/echo", "--http2", "preferred",
                            "--ca-cert", certificate[0])
        assert result.returncode == 0, result.stdout + result.stderr
        assert server.websockets == 1
        assert server.requests[0][":scheme"] == "https"
    finally:
        server.stop()


def test_client_does_not_send_protocol_when_not_advertised(client_bin):
    # The server speaks h2 only and does not advertise extended CONNECT: the client must not send :protocol; it
    # falls back to HTTP/1.1, which this server does not speak, so the connection fails.
    server = H2EchoServer(advertise=False)
    try:
        result = run_client(client_bin, f"ws://127.0.0.1:{server.port}/echo", "--http2", "prior-knowledge")
        assert result.returncode != 0
        assert server.requests == []
    finally:
        server.stop()


@pytest.mark.parametrize("max_streams, expected_connections", [(None, 1), (2, 3)])
def test_pooled_websockets_share_connections(client_bin, max_streams, expected_connections):
    # Five WebSockets through one HTTP2ConnectionPool (ws-conformance-client --pooled): one TCP connection while
    # the server's SETTINGS_MAX_CONCURRENT_STREAMS allows, another when it is full; counted by the server.
    server = H2EchoServer(max_concurrent_streams=max_streams)
    try:
        result = run_client(client_bin, f"ws://127.0.0.1:{server.port}/echo", "--http2", "prior-knowledge",
                            "--pooled", "5")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"pool connections {expected_connections} streams 5" in result.stdout
        assert "11 passed, 0 failed" in result.stdout  # 5 echoes, the close, 4 echoes after it, the shutdown
        assert server.websockets == 5
        assert server.connections == expected_connections
    finally:
        server.stop()


def test_pool_opens_a_new_connection_after_goaway(client_bin):
    # The server sends GOAWAY once a connection carries two WebSockets: those two keep working, and the pool puts
    # the next WebSockets on new connections (5 WebSockets: 2 + 2 + 1 on three connections).
    tolerate_frames_after_goaway()
    server = H2EchoServer(goaway_after=2)
    try:
        result = run_client(client_bin, f"ws://127.0.0.1:{server.port}/echo", "--http2", "prior-knowledge",
                            "--pooled", "5")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "pool connections 3 streams 5" in result.stdout
        assert "11 passed, 0 failed" in result.stdout
        assert server.websockets == 5
        assert server.connections == 3
    finally:
        server.stop()
