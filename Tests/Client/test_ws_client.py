"""ws-client (Sources/ws-client) against third-party peers: a python-websockets server, reached directly, through
tinyproxy (HTTP CONNECT, with and without BasicAuth) and through microsocks (SOCKS5, with and without a password),
all started here on 127.0.0.1 and stopped by PID; a proxy's 407 is reported with exit status 1; a redirect from
the websockets server is followed and the request's Origin, Authorization and extra header reach the server."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from http import HTTPStatus
from pathlib import Path

import pytest
from testprocs import free_port, wait_for_port
from websockets.sync.server import serve

ROOT = Path(__file__).resolve().parents[2]
PROXIES = shutil.which("tinyproxy") and shutil.which("microsocks")


def binary(name: str) -> str:
    bin_dir = os.environ.get("WS_BIN_DIR")
    candidates = [Path(bin_dir) / name] if bin_dir else []
    candidates += [ROOT / ".build" / "debug" / name]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"{name} not built: run `swift build` (scripts/test.sh sets WS_BIN_DIR)")


@pytest.fixture
def server():
    """A python-websockets echo server on /echo that records each request's headers; /old redirects to /echo."""
    seen = []

    def process_request(connection, request):
        if request.path == "/old":
            response = connection.respond(HTTPStatus.FOUND, "moved\n")
            response.headers["Location"] = "/echo"
            return response
        seen.append(request.headers)
        return None

    def echo(websocket):
        for message in websocket:
            websocket.send(message)

    port = free_port()
    with serve(echo, "127.0.0.1", port, process_request=process_request) as ws_server:
        thread = threading.Thread(target=ws_server.serve_forever, daemon=True)
        thread.start()
        yield port, seen
        ws_server.shutdown()
        thread.join(timeout=5)


def start(argv, port):
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process


def stop(process):
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def proxy(request):
    """Starts the proxy named by the test's parameter; yields its URL for --proxy."""
    kind = request.param
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        if kind.startswith("tinyproxy"):
            config = Path(directory) / "tinyproxy.conf"
            lines = [f"Port {port}", "Listen 127.0.0.1", "LogLevel Critical", "Allow 127.0.0.1"]
            if kind == "tinyproxy-auth":
                lines.append("BasicAuth alice s3cret")
            config.write_text("\n".join(lines) + "\n")
            process = start(["tinyproxy", "-d", "-c", str(config)], port)
            url = f"http://{'alice:s3cret@' if kind == 'tinyproxy-auth' else ''}127.0.0.1:{port}"
        else:
            argv = ["microsocks", "-i", "127.0.0.1", "-p", str(port)]
            if kind == "microsocks-auth":
                argv += ["-u", "bob", "-P", "pa55"]
            process = start(argv, port)
            url = f"socks5h://{'bob:pa55@' if kind == 'microsocks-auth' else ''}127.0.0.1:{port}"
        try:
            yield url
        finally:
            stop(process)


def run_client(*arguments):
    return subprocess.run([binary("ws-client"), *arguments], capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not PROXIES, reason="tinyproxy and microsocks are installed by scripts/setup.sh")
@pytest.mark.parametrize("proxy", ["tinyproxy", "tinyproxy-auth", "microsocks", "microsocks-auth"], indirect=True)
def test_through_proxy(server, proxy):
    port, seen = server
    result = run_client(f"ws://127.0.0.1:{port}/echo", "--proxy", proxy, "--send", "hello", "--send", "world",
                        "--count", "2", "--header", "X-Test: 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello", "world"]
    assert seen[-1]["X-Test"] == "1"


@pytest.mark.skipif(not PROXIES, reason="tinyproxy and microsocks are installed by scripts/setup.sh")
@pytest.mark.parametrize("proxy", ["tinyproxy-auth"], indirect=True)
def test_proxy_refusal(server, proxy):
    port, _ = server
    without_credentials = proxy.replace("alice:s3cret@", "")
    result = run_client(f"ws://127.0.0.1:{port}/echo", "--proxy", without_credentials, "--send", "x", "--count", "1")
    assert result.returncode == 1
    assert "407" in result.stderr


def test_redirect_and_headers(server):
    port, seen = server
    result = run_client(f"ws://127.0.0.1:{port}/old", "--origin", "https://app.example", "--authorization",
                        "Bearer t0ken", "--send", "again", "--count", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["again"]
    assert seen[-1]["Origin"] == "https://app.example"
    assert seen[-1]["Authorization"] == "Bearer t0ken"


@pytest.mark.parametrize("value", ["nan", "inf", "1e300", "0", "-1"])
def test_bad_connect_timeout_is_a_usage_error(value):
    """Out-of-range timeouts are refused before any connection (no crash converting them to milliseconds)."""
    result = run_client("ws://127.0.0.1:9/", f"--connect-timeout={value}")
    assert result.returncode == 64, (result.returncode, result.stderr)
    assert "--connect-timeout" in result.stderr


def test_bad_proxy_url_hides_its_password():
    result = run_client("ws://127.0.0.1:9/", "--proxy", "http://alice:s3cret@proxy:99999")
    assert result.returncode != 0
    assert "s3cret" not in result.stderr and "s3cret" not in result.stdout
