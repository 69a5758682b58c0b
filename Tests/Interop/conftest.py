"""Fixtures for the interop tests: our binaries (taken from the environment or .build), free ports, a TLS
certificate made with the openssl CLI, and ws-echo processes stopped by PID."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from testprocs import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def find_binary(env_name: str, name: str) -> str | None:
    """The binary from the environment variable, else from .build/release or .build/debug."""
    value = os.environ.get(env_name)
    if value:
        return value if os.path.exists(value) else None
    for config in ("release", "debug"):
        candidate = ROOT / ".build" / config / name
        if candidate.exists():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def ws_echo_bin() -> str:
    path = find_binary("WS_ECHO", "ws-echo")
    if not path:
        pytest.skip("ws-echo not found: set WS_ECHO or build it (swift build --product ws-echo)")
    return path


@pytest.fixture(scope="session")
def ws_client_bin() -> str:
    path = find_binary("WS_CLIENT_BIN", "ws-conformance-client")
    if not path:
        pytest.skip("ws-conformance-client not found: set WS_CLIENT_BIN or build it")
    return path


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    if not os.path.exists(openssl):
        pytest.skip("openssl CLI not found")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


class EchoProcess:
    """A running ws-echo; stopped by PID with SIGTERM (graceful shutdown), then SIGKILL if it hangs."""

    def __init__(self, binary: str, extra: list[str], log_path: Path):
        self.port = free_port()
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), *extra], stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, self.process)

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
def start_echo(ws_echo_bin, tmp_path):
    """Starts ws-echo with extra arguments; every process started is stopped at the end of the test."""
    started: list[EchoProcess] = []

    def start(*extra: str) -> EchoProcess:
        process = EchoProcess(ws_echo_bin, list(extra), tmp_path / f"ws-echo-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
