"""Peers and helpers shared by the interop tests (test_interop.py, test_interop_deflate.py): a python-websockets
echo server in a thread, our client binary run against it, TLS contexts, and the close-code check."""

import ssl
import subprocess
import threading

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve


class EchoServer:
    """A websockets echo server in a thread (compression off unless asked); records, per connection, the
    subprotocol chosen, the Sec-WebSocket-Extensions answered and the close frame received."""

    def __init__(self, ssl_context=None, subprotocols=None, compression=None):
        self.closes: list[tuple[int, str]] = []
        self.subprotocols_seen: list[str | None] = []
        self.extensions: list[str] = []

        def handler(ws):
            self.subprotocols_seen.append(ws.subprotocol)
            self.extensions.append(ws.response.headers.get("Sec-WebSocket-Extensions", ""))
            try:
                for message in ws:
                    ws.send(message)
            except ConnectionClosed:
                pass
            rcvd = ws.protocol.close_rcvd
            self.closes.append((rcvd.code, rcvd.reason) if rcvd else (1006, ""))

        self.server = serve(handler, "127.0.0.1", 0, ssl=ssl_context, subprotocols=subprotocols, max_size=None,
                            compression=compression)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def run_client(binary: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    """ws-conformance-client in interop mode against `url`."""
    return subprocess.run([binary, "--interop", "--url", url, *extra], capture_output=True, text=True, timeout=120)


def assert_client_passed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout.splitlines()[-1]


def server_ssl(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def client_ssl(cert: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cert)


def assert_closed_with(ws, code: int, timeout: float = 10) -> None:
    """The next receive ends the connection with a close frame carrying `code`."""
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=timeout)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code, closed.value
