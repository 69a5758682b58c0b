"""Fixtures for the Server-Sent Events interop tests: our binaries (sse-ticker, sse-client) from WS_BIN_DIR
or .build, and server processes stopped by PID."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from testprocs import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def find_binary(name: str) -> str | None:
    directory = os.environ.get("WS_BIN_DIR")
    candidates = [Path(directory) / name] if directory else [ROOT / ".build" / c / name for c in ("debug", "release")]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def ticker_bin() -> str:
    path = find_binary("sse-ticker")
    if not path:
        pytest.skip("sse-ticker not found: set WS_BIN_DIR or build it (swift build --product sse-ticker)")
    return path


@pytest.fixture(scope="session")
def client_bin() -> str:
    path = find_binary("sse-client")
    if not path:
        pytest.skip("sse-client not found: set WS_BIN_DIR or build it (swift build --product sse-client)")
    return path


class ServerProcess:
    """A server process on a free port; stopped by PID (SIGTERM, then SIGKILL if it hangs)."""

    def __init__(self, command: list[str], port: int, log_path: Path):
        self.port = port
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(port, self.process)

    @property
    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture
def start_ticker(ticker_bin, tmp_path):
    """Starts sse-ticker with extra arguments on a free port; stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(*extra: str) -> ServerProcess:
        port = free_port()
        process = ServerProcess([ticker_bin, "--port", str(port), *extra], port, tmp_path / f"ticker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_starlette(tmp_path):
    """Starts Tests/SSE/starlette_app.py under uvicorn on a free port; stopped at the end of the test."""
    pytest.importorskip("sse_starlette")
    pytest.importorskip("uvicorn")
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "starlette_app:app", "--host", "127.0.0.1", "--port", str(port),
                   "--app-dir", str(Path(__file__).resolve().parent), "--log-level", "warning"]
        process = ServerProcess(command, port, tmp_path / "starlette.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
