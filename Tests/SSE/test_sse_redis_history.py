"""SSE resumption across servers with a third-party client: two sse-ticker processes share their /broadcast
history through a real redis-server (--redis, a Redis stream); launchdarkly-eventsource reads from the first,
drops, and resumes on the second with Last-Event-ID: it gets exactly the entries the stream holds after that ID."""

import json
import shutil
import subprocess
import tempfile
import time

import pytest
from testprocs import free_port, wait_for_port


@pytest.fixture
def redis_port():
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed (scripts/setup.sh)")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="sse-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port(port, process, timeout=10)
        yield port
    finally:
        process.kill()  # by its PID
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def stream_entries(port: int, key: str, after: str) -> list[tuple[str, str]]:
    """(id, data) of the stream's entries after `after`, read with redis-cli (XRANGE key (after +)."""
    output = subprocess.run(
        ["redis-cli", "-p", str(port), "--json", "XRANGE", key, f"({after}", "+"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    entries = []
    for entry_id, fields in json.loads(output):
        values = dict(zip(fields[::2], fields[1::2]))
        entries.append((entry_id, values.get("data", "")))
    return entries


def read_events(client, count: int, timeout: float = 15) -> list[tuple[str, str]]:
    from ld_eventsource.actions import Event
    received = []
    deadline = time.monotonic() + timeout
    try:
        for action in client.all:
            if isinstance(action, Event):
                received.append((action.id, action.data))
                if len(received) == count:
                    break
            assert time.monotonic() < deadline, f"timed out with {received}"
    finally:
        client.close()
    return received


def test_launchdarkly_client_resumes_on_another_server(start_ticker, redis_port):
    ld = pytest.importorskip("ld_eventsource")
    from ld_eventsource.config import ConnectStrategy, ErrorStrategy

    key = "sse-test"
    redis = f"127.0.0.1:{redis_port}"
    one = start_ticker("--interval", "30", "--redis", redis, "--redis-key", key)
    # The second server publishes nothing itself (one tick an hour): what it replays comes from the first.
    two = start_ticker("--interval", "3600000", "--redis", redis, "--redis-key", key)

    def client(port: int, last_event_id: str | None = None):
        return ld.SSEClient(
            connect=ConnectStrategy.http(f"http://127.0.0.1:{port}/broadcast"),
            initial_retry_delay=0.1,
            error_strategy=ErrorStrategy.always_continue(),
            last_event_id=last_event_id,
        )

    first = read_events(client(one.port), 3)
    last_id = first[-1][0]
    assert all("-" in event_id for event_id, _ in first), first  # Redis stream IDs
    time.sleep(0.3)  # the first server goes on publishing while the client is away
    one.stop()  # nothing is published after this
    missed = stream_entries(redis_port, key, last_id)
    assert len(missed) >= 3, missed
    resumed = read_events(client(two.port, last_id), len(missed))
    assert resumed == missed
