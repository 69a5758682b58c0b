"""permessage-deflate (RFC 7692) interop with the Python `websockets` package, which negotiates it by default:

* websockets as the client against `ws-echo --deflate` (and --deflate-low-memory, wss, an 8-bit server window);
* websockets as the server (compression on) for our client (`ws-conformance-client --interop --deflate`), ws and wss.

Same binaries and environment as test_interop.py (WS_ECHO / WS_CLIENT_BIN or .build/release|debug).
"""

import pytest

websockets = pytest.importorskip("websockets")
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate  # noqa: E402
from websockets.sync.client import connect  # noqa: E402
from wspeers import EchoServer, assert_client_passed, assert_closed_with, client_ssl, run_client, server_ssl  # noqa: E402

MiB = 1 << 20
SIZES = [0, 31, 32, 1000, 65536, MiB]


def compressible_text(size: int) -> str:
    words = "the quick brown fox jumps over the lazy dog 0123456789 héllo ✓ "
    text = (words * (size // len(words) + 1))
    # Cut on a character boundary near `size` bytes of UTF-8.
    return text[:size].encode()[:size].decode(errors="ignore")


def compressible_bytes(size: int) -> bytes:
    return bytes(((i // 16) * 13) & 0xFF for i in range(size)) if size < MiB else \
        (bytes(((i // 16) * 13) & 0xFF for i in range(4096)) * (size // 4096 + 1))[:size]


def negotiated(ws) -> str:
    return ws.response.headers.get("Sec-WebSocket-Extensions", "")


def deflate_extensions(ws) -> list:
    return [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]


def assert_echoes(ws, sizes) -> None:
    """Compressible bytes, then compressible text, of each size come back unchanged."""
    for size in sizes:
        data = compressible_bytes(size)
        ws.send(data)
        assert ws.recv(timeout=30) == data
        text = compressible_text(size)
        ws.send(text)
        reply = ws.recv(timeout=30)
        assert isinstance(reply, str) and reply == text


# ---------------------------------------------------------------------------------------------------------
# websockets client -> ws-echo --deflate


@pytest.mark.parametrize("size", SIZES)
def test_websockets_client_deflate_echo(start_echo, size):
    echo = start_echo("--deflate")
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None, open_timeout=10) as ws:
        assert negotiated(ws).startswith("permessage-deflate"), negotiated(ws)
        assert len(deflate_extensions(ws)) == 1
        text = compressible_text(size)
        data = compressible_bytes(size)
        for _ in range(2):  # a second round uses the kept context (context takeover)
            ws.send(text)
            reply = ws.recv(timeout=30)
            assert isinstance(reply, str) and reply == text
            ws.send(data)
            assert ws.recv(timeout=30) == data


def test_websockets_client_deflate_16mib_and_random(start_echo):
    import os
    echo = start_echo("--deflate")
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None, open_timeout=10) as ws:
        assert negotiated(ws).startswith("permessage-deflate")
        big = compressible_bytes(16 * MiB - 16)
        ws.send(big)
        assert ws.recv(timeout=60) == big
        noise = os.urandom(MiB)
        ws.send(noise)
        assert ws.recv(timeout=30) == noise
        ws.send(["frag", "mented ", "téxt" * 100])
        assert ws.recv(timeout=10) == "fragmented " + "téxt" * 100


def test_websockets_client_deflate_low_memory(start_echo):
    echo = start_echo("--deflate", "--deflate-low-memory")
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None, open_timeout=10) as ws:
        header = negotiated(ws)
        assert header.startswith("permessage-deflate"), header
        for parameter in ("server_no_context_takeover", "client_no_context_takeover",
                          "server_max_window_bits=9", "client_max_window_bits=9"):
            assert parameter in header, header
        assert_echoes(ws, SIZES)


def test_websockets_client_asks_server_window_8(start_echo):
    """websockets inflates with a real 256-byte window (zlib wbits=-8): any match farther back than 256 bytes in
    our server's output fails its decoding."""
    echo = start_echo("--deflate")
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=8, client_max_window_bits=True)
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None, open_timeout=10, compression=None,
                 extensions=[factory]) as ws:
        header = negotiated(ws)
        assert "server_max_window_bits=8" in header, header
        block = bytes(((i * 7919) >> 3 ^ i) & 0xFF for i in range(1000))
        for data in [block * 30, compressible_bytes(MiB), block * 1000]:
            ws.send(data)
            assert ws.recv(timeout=30) == data


def test_websockets_client_without_compression(start_echo):
    echo = start_echo("--deflate")
    with connect(f"ws://127.0.0.1:{echo.port}/", compression=None, max_size=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        data = compressible_bytes(MiB)
        ws.send(data)
        assert ws.recv(timeout=30) == data


def test_websockets_client_deflate_message_too_big(start_echo):
    """A compressed message that inflates beyond --max-message-length gets 1009."""
    echo = start_echo("--deflate", "--max-message-length", "100000")
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None) as ws:
        assert negotiated(ws).startswith("permessage-deflate")
        ws.send(b"\0" * 100000)
        assert ws.recv(timeout=10) == b"\0" * 100000
        ws.send(b"\0" * (4 * MiB))  # about 4 KiB on the wire
        assert_closed_with(ws, 1009, timeout=10)


def test_websockets_client_deflate_wss(start_echo, certificate):
    cert, key = certificate
    echo = start_echo("--deflate", "--tls-cert", cert, "--tls-key", key)
    with connect(f"wss://127.0.0.1:{echo.port}/", ssl=client_ssl(cert), max_size=None, open_timeout=10) as ws:
        assert negotiated(ws).startswith("permessage-deflate")
        assert_echoes(ws, (100, MiB))


# ---------------------------------------------------------------------------------------------------------
# our client -> websockets server with compression


def test_our_client_deflate_against_websockets_server(ws_client_bin):
    server = EchoServer(compression="deflate")
    try:
        result = run_client(ws_client_bin, f"ws://127.0.0.1:{server.port}/", "--deflate")
        assert_client_passed(result)
    finally:
        server.stop()
    assert len(server.extensions) == 1 and server.extensions[0].startswith("permessage-deflate"), server.extensions
    assert server.closes == [(1000, "bye")]


def test_our_client_deflate_against_websockets_server_without_compression(ws_client_bin):
    server = EchoServer(compression=None)
    try:
        result = run_client(ws_client_bin, f"ws://127.0.0.1:{server.port}/", "--deflate")
        assert_client_passed(result)
    finally:
        server.stop()
    assert server.extensions == [""]
    assert server.closes == [(1000, "bye")]


def test_our_client_deflate_against_websockets_server_wss(ws_client_bin, certificate):
    cert, key = certificate
    server = EchoServer(ssl_context=server_ssl(cert, key), compression="deflate")
    try:
        result = run_client(ws_client_bin, f"wss://localhost:{server.port}/", "--deflate", "--ca-cert", cert)
        assert_client_passed(result)
    finally:
        server.stop()
    assert len(server.extensions) == 1 and server.extensions[0].startswith("permessage-deflate"), server.extensions
    assert server.closes == [(1000, "bye")]
