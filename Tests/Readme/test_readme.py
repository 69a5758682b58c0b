"""The README's programs (the core endpoint, a server, a client): the code in README.md is the code in Examples/ (checked byte for
byte), and both programs are run: the server echoes for an authorized python-websockets client, refuses one
without a token with 401, and on SIGINT / SIGTERM sends close 1001 to open connections and exits 0; the client
program prints the echo of "hello"."""

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from testprocs import free_port, wait_for_port
import websockets

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def binary(name: str) -> str:
    bin_dir = os.environ.get("WS_BIN_DIR")
    candidates = [Path(bin_dir) / name] if bin_dir else []
    candidates += [ROOT / ".build" / "debug" / name, ROOT / ".build" / "release" / name]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"{name} not built: run `swift build` (scripts/test.sh sets WS_BIN_DIR)")


@pytest.fixture
def echo_server():
    port = free_port()
    process = subprocess.Popen([binary("example-echo-server"), str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, process)
        yield port, process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.parametrize("path", ["Examples/CoreEcho/Endpoint.swift", "Examples/EchoServer/main.swift",
                                  "Examples/EchoClient/main.swift"])
def test_readme_shows_the_example_verbatim(path):
    # The README introduces each program with a line naming its file, then a ```swift block.
    match = re.search(r"`" + re.escape(path) + r"`[^\n]*\n+```swift\n(.*?)```", README, re.S)
    assert match, f"README.md has no swift block introduced by `{path}`"
    assert match.group(1) == (ROOT / path).read_text(), f"README.md and {path} differ"


def test_core_endpoint_echoes():
    result = subprocess.run([binary("example-core-echo")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "core echo ok" in result.stdout


def test_server_echoes_and_refuses_without_token(echo_server):
    port, _ = echo_server

    async def scenario():
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat?access_token=secret") as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 10) == "hello"
            await ws.send(b"\x00\x01\xff")
            assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\x01\xff"
            # A fragmented 300 kB message from websockets (three frames) comes back whole: the async API
            # reassembles it (and hands out slices of reads where it can).
            pieces = [bytes([n]) * 100_000 for n in (1, 2, 3)]
            await ws.send(pieces)
            assert await asyncio.wait_for(ws.recv(), 10) == b"".join(pieces)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{port}/chat"):
                pass
        assert refused.value.response.status_code == 401

    asyncio.run(scenario())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_server_shuts_down_gracefully_on_signal(echo_server, signum):
    port, process = echo_server

    async def scenario():
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat?access_token=secret") as ws:
            await ws.send("before the signal")
            assert await asyncio.wait_for(ws.recv(), 10) == "before the signal"
            os.kill(process.pid, signum)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

    asyncio.run(scenario())
    assert process.wait(timeout=15) == 0


def test_client_program_prints_the_echo(echo_server):
    port, _ = echo_server
    result = subprocess.run([binary("example-echo-client"), f"ws://127.0.0.1:{port}/chat?access_token=secret"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "received: hello" in result.stdout
