"""SSE across servers with a third-party client: two sse-ticker processes share their /broadcast history (a
Redis stream) and their live events (Redis pub/sub, the backplane) through a real redis-server (--redis).
launchdarkly-eventsource reads from the first, drops, and resumes on the second with Last-Event-ID: it gets
exactly the entries the stream holds after that ID; and a client of the second server gets the first server's
events live, each once and in order, also across a resumption."""

import json
import shutil
import subprocess
import tempfile
import threading
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


def ld_client(port: int, last_event_id: str | None = None):
    import ld_eventsource as ld
    from ld_eventsource.config import ConnectStrategy, ErrorStrategy
    return ld.SSEClient(
        connect=ConnectStrategy.http(f"http://127.0.0.1:{port}/broadcast"),
        initial_retry_delay=0.1,
        error_strategy=ErrorStrategy.always_continue(),
        last_event_id=last_event_id,
    )


def all_entries(port: int, key: str) -> list[tuple[str, str]]:
    return stream_entries(port, key, "0-0")


def test_live_events_cross_servers_through_the_backplane(start_ticker, redis_port):
    pytest.importorskip("ld_eventsource")
    key = "sse-live"
    redis = f"127.0.0.1:{redis_port}"
    # A publishes a tick every 50 ms; B publishes nothing itself (one tick an hour): B's clients get A's ticks
    # live only through the backplane.
    a = start_ticker("--interval", "50", "--redis", redis, "--redis-key", key, "--server-id", "a")
    b = start_ticker("--interval", "3600000", "--redis", redis, "--redis-key", key, "--server-id", "b")

    # A client on each server at the same time: each gets the same run of A's ticks, once each and in order.
    results: dict[str, list[tuple[str, str]]] = {}

    def read(name: str, port: int):
        results[name] = read_events(ld_client(port), 12)

    servers = (("a", a.port), ("b", b.port))
    threads = [threading.Thread(target=read, args=server, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    entries = all_entries(redis_port, key)
    for name in ("a", "b"):
        received = results.get(name)
        assert received is not None and len(received) == 12, (name, received)
        start = entries.index(received[0])  # the stream's own entries, in its order, with nothing missing or twice
        assert received == entries[start:start + 12], (name, received)
        numbers = [int(data) for _, data in received]
        assert numbers == list(range(numbers[0], numbers[0] + 12)), (name, numbers)

    # A client of B drops and comes back to B with its last ID while A goes on: it gets exactly the missed entries
    # (replayed from Redis), then A's later ticks live (through the backplane), each once, in the stream's order.
    first = read_events(ld_client(b.port), 3)
    last_id = first[-1][0]
    time.sleep(0.3)  # A publishes about six ticks meanwhile
    missed = len(stream_entries(redis_port, key, last_id))
    assert missed >= 3
    resumed = read_events(ld_client(b.port, last_id), missed + 6)
    after = stream_entries(redis_port, key, last_id)
    assert resumed == after[:missed + 6]
    assert "sharing /broadcast through Redis" in b.output
