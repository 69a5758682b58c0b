"""The hub-chat server for the SignalR interop tests: one process per module on a free 127.0.0.1 port, stopped by PID.

Tokens: `tok-alice` authenticates as user `alice`, `tok-bob` as `bob`; any other bearer token is refused with 401.
Needs WS_BIN_DIR (the `swift build --show-bin-path` directory) or HUB_CHAT pointing at the executable."""

import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from testprocs import free_port, wait_for_port


def hub_chat_binary() -> str:
    if os.environ.get("HUB_CHAT"):
        return os.environ["HUB_CHAT"]
    bin_dir = os.environ.get("WS_BIN_DIR")
    if not bin_dir:
        pytest.skip("set WS_BIN_DIR (swift build --show-bin-path) or HUB_CHAT")
    path = Path(bin_dir) / "hub-chat"
    if not path.exists():
        pytest.fail(f"{path} is missing: run swift build")
    return str(path)


class HubServer:
    def __init__(self, port: int, pid: int):
        self.port = port
        self.pid = pid
        self.http = f"http://127.0.0.1:{port}/chat"
        self.ws = f"ws://127.0.0.1:{port}/chat"


def start_hub_chat(*extra: str):
    """Starts hub-chat on a free port with `extra` arguments; yields a HubServer, then stops it by PID."""
    port = free_port()
    args = [
        hub_chat_binary(), "--port", str(port),
        "--token", "tok-alice=alice", "--token", "tok-bob=bob",
        "--log-level", "warning", *extra,
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield HubServer(port, process.pid)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def hub_server():
    yield from start_hub_chat("--keep-alive-ms", "1000")


@pytest.fixture
def short_timeout_server():
    """Pings every 300 ms, and closes a client that sent nothing for 1.5 s."""
    yield from start_hub_chat("--keep-alive-ms", "300", "--client-timeout-ms", "1500")


@pytest.fixture
def h2c_server():
    """hub-chat accepting HTTP/2 with prior knowledge besides HTTP/1.1."""
    yield from start_hub_chat("--h2c")


@pytest.fixture
def fresh_server():
    """A hub-chat of its own (the test stops it)."""
    yield from start_hub_chat()


@pytest.fixture
def fresh_long_poll_server():
    """hub-chat serving long polling only, with a 2 s poll timeout."""
    yield from start_hub_chat("--transports", "LongPolling", "--long-poll-timeout-ms", "2000")


@pytest.fixture(scope="module")
def hub_chat_launcher():
    """`start_hub_chat` as a context manager, for tests that start several servers with arguments of their own."""
    return contextmanager(start_hub_chat)
