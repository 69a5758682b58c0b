"""Hubs across servers: three hub-chat processes on one redis-server (started here on a free 127.0.0.1 port and
stopped by PID), with third-party SignalR clients (pysignalr, signalrcore) spread over them.

What is checked: a broadcast reaches every connection exactly once; a group send reaches only the members, on
every server; a message to a user reaches every connection of that user; a connection added to (and removed from)
a group by another server; and a Redis killed and restarted mid-run (local traffic goes on; cross-server delivery
comes back).

"Exactly once" and "nobody else" are checked with a marker: after the message under test, the same server
broadcasts a marker; one publisher's messages reach a subscriber in publish order, so once a client has the marker
it has everything that was meant for it before, and a duplicate or a stray message would be in its inbox."""

import asyncio
import os
import shutil
import signal
import subprocess
import time
import uuid
from contextlib import AsyncExitStack, ExitStack, contextmanager

import pytest

from testprocs import free_port, wait_for_port
from test_hubs_interop import Inbox, SignalrcoreClient, invoke, pysignalr_client

TIMEOUT = 5.0


class RedisServer:
    """A redis-server on 127.0.0.1 (no persistence), stopped and restarted by PID on the same port."""

    def __init__(self):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
        self.binary = binary
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)

    def kill(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextmanager
def redis_and_cluster(launch, count: int = 3):
    redis = RedisServer()
    redis.start()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    try:
        with ExitStack() as stack:
            servers = [
                stack.enter_context(launch(
                    "--redis", f"127.0.0.1:{redis.port}", "--redis-prefix", prefix, "--server-id", f"s{index}",
                    "--backplane-timeout-ms", "1000"))
                for index in range(count)
            ]
            yield redis, servers
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def cluster(hub_chat_launcher):
    with redis_and_cluster(hub_chat_launcher) as (redis, servers):
        asyncio.run(asyncio.wait_for(wait_until_connected(servers), 30))
        yield servers


async def wait_until_connected(servers, attempts: int = 100):
    """Until a broadcast from the first server reaches a client of every other server (each server has
    subscribed on Redis): one broadcast per attempt, 0.1 s apart at most."""
    inboxes = [Inbox() for _ in servers]
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                pysignalr_client(server.http, setup=lambda c, inbox=inbox: c.on("ReceiveMessage", inbox.handler)))
            for server, inbox in zip(servers, inboxes)
        ]
        for attempt in range(attempts):
            await clients[0].send("SendMessage", ["probe", str(attempt)])
            try:
                for inbox in inboxes:
                    await inbox.wait(1, timeout=0.1)
            except TimeoutError:
                continue
            # A last probe, after every earlier one (one publisher's order): none is left in flight.
            await clients[0].send("SendMessage", ["probe", "last"])
            for inbox in inboxes:
                deadline = time.monotonic() + TIMEOUT
                while ["probe", "last"] not in inbox.calls:
                    assert time.monotonic() < deadline, "the last probe did not arrive"
                    await asyncio.sleep(0.02)
            return
        raise TimeoutError("the servers did not connect to each other through Redis")


def texts(inbox: Inbox):
    return [call[1] for call in inbox.calls]


async def connect_all(stack: AsyncExitStack, servers, method: str, **options):
    """A JSON and a MessagePack pysignalr client on every server, each with an Inbox for `method`."""
    clients, inboxes = [], []
    for server in servers:
        for protocol in ("json", "messagepack"):
            inbox = Inbox()
            client = await stack.enter_async_context(pysignalr_client(
                server.http, protocol,
                setup=lambda c, inbox=inbox: c.on(method, inbox.handler), **options))
            clients.append(client)
            inboxes.append(inbox)
    return clients, inboxes


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_broadcast_reaches_every_connection_exactly_once(cluster):
    core = SignalrcoreClient(cluster[2].http, protocol="messagepack")
    core.on("ReceiveMessage")
    core.start()

    async def main():
        async with AsyncExitStack() as stack:
            clients, inboxes = await connect_all(stack, cluster, "ReceiveMessage")
            await clients[1].send("SendMessage", ["ann", "hello"])
            await clients[1].send("SendMessage", ["ann", "end"])
            for inbox in inboxes:
                await inbox.wait(2)
                assert texts(inbox) == ["hello", "end"]
            calls = await asyncio.to_thread(core.wait, "ReceiveMessage", 2)
            assert [call[1] for call in calls] == ["hello", "end"]

    try:
        run(main())
    finally:
        core.stop()


def test_group_send_reaches_only_members_on_every_server(cluster):
    room = f"room-{uuid.uuid4().hex[:6]}"
    core = SignalrcoreClient(cluster[1].http)
    core.on("ReceiveRoomMessage")
    core.on("ReceiveMessage")
    core.start()

    async def main():
        async with AsyncExitStack() as stack:
            clients, rooms = await connect_all(stack, cluster, "ReceiveRoomMessage")
            markers = []
            for client in clients:
                inbox = Inbox()
                client.on("ReceiveMessage", inbox.handler)
                markers.append(inbox)
            # Members: the JSON client of every server, and the signalrcore client on server 1.
            members = [0, 2, 4]
            for index in members:
                assert (await invoke(clients[index], "JoinRoom", [room])).error is None
            assert core.invoke("JoinRoom", [room]).error is None
            # A non-member of server 0 sends to the room, then the marker to everyone.
            await clients[1].send("SendToRoom", [room, "in the room"])
            await clients[1].send("SendMessage", ["marker", "end"])
            for index, client in enumerate(clients):
                await markers[index].wait(1)
                expected = [[room, "in the room"]] if index in members else []
                assert [call[::2] for call in rooms[index].calls] == expected
            calls = await asyncio.to_thread(core.wait, "ReceiveRoomMessage", 1)
            assert [call[::2] for call in calls] == [[room, "in the room"]]

    try:
        run(main())
    finally:
        core.stop()


def test_user_targeting_reaches_every_connection_of_the_user(cluster):
    async def main():
        async with AsyncExitStack() as stack:
            alice, alice_inboxes = [], []
            for server in cluster:
                inbox = Inbox()
                alice.append(await stack.enter_async_context(pysignalr_client(
                    server.http + "?access_token=tok-alice", "messagepack",
                    setup=lambda c, inbox=inbox: c.on("ReceiveMessage", inbox.handler))))
                alice_inboxes.append(inbox)
            bob_inbox = Inbox()
            bob = await stack.enter_async_context(pysignalr_client(
                cluster[0].http, "json", headers={"Authorization": "Bearer tok-bob"},
                setup=lambda c: c.on("ReceiveMessage", bob_inbox.handler)))
            await bob.send("SendToUser", ["alice", "psst"])
            await bob.send("SendMessage", ["marker", "end"])
            for inbox in alice_inboxes:
                await inbox.wait(2)
                assert inbox.calls == [["bob", "psst"], ["marker", "end"]]
            await bob_inbox.wait(1)
            assert bob_inbox.calls == [["marker", "end"]]

    run(main())


def test_group_changes_of_a_connection_on_another_server(cluster):
    room = f"room-{uuid.uuid4().hex[:6]}"

    async def main():
        async with AsyncExitStack() as stack:
            inbox = Inbox()
            target = await stack.enter_async_context(pysignalr_client(
                cluster[1].http, "messagepack", setup=lambda c: c.on("ReceiveRoomMessage", inbox.handler)))
            adder = await stack.enter_async_context(pysignalr_client(cluster[0].http, "json"))
            sender = await stack.enter_async_context(pysignalr_client(cluster[2].http, "json"))
            target_id = (await invoke(target, "ConnectionId", [])).result
            # Server 0 adds a connection of server 1; server 2 sends to the room.
            assert (await invoke(adder, "AddToRoom", [target_id, room])).error is None
            await sender.send("SendToRoom", [room, "welcome"])
            await inbox.wait(1)
            assert [call[::2] for call in inbox.calls] == [[room, "welcome"]]
            # Server 2 removes it; the room's messages stop.
            assert (await invoke(sender, "RemoveFromRoom", [target_id, room])).error is None
            await sender.send("SendToRoom", [room, "after"])
            # Added again: "again" arrives, and "after" (sent before it by the same server) did not.
            assert (await invoke(adder, "AddToRoom", [target_id, room])).error is None
            await sender.send("SendToRoom", [room, "again"])
            await inbox.wait(2)
            assert [call[::2] for call in inbox.calls] == [[room, "welcome"], [room, "again"]]
            # A connection no server holds: an error Completion after the acknowledgement timeout.
            completion = await invoke(adder, "AddToRoom", ["no-such-connection", room])
            assert completion.error and "no-such-connection" in completion.error

    run(main())


def test_redis_restart_local_traffic_goes_on_and_cross_server_delivery_resumes(hub_chat_launcher):
    with redis_and_cluster(hub_chat_launcher, 2) as (redis, servers):
        async def main():
            await wait_until_connected(servers)
            async with AsyncExitStack() as stack:
                # Clients 0 and 1 on server 0, 2 and 3 on server 1.
                clients, inboxes = await connect_all(stack, servers, "ReceiveMessage")
                redis.kill()
                # Local traffic on every server while Redis is down: each sender's own server delivers.
                await clients[0].send("SendMessage", ["local", "down-0"])
                await clients[2].send("SendMessage", ["local", "down-1"])
                for index, inbox in enumerate(inboxes):
                    own = "down-0" if index < 2 else "down-1"
                    deadline = time.monotonic() + TIMEOUT
                    while own not in texts(inbox):
                        assert time.monotonic() < deadline, texts(inbox)
                        await asyncio.sleep(0.02)
                redis.start()
                # Cross-server delivery comes back (reconnect with backoff, resubscribe): one broadcast each way
                # per attempt until each server's clients get one from the other.
                deadline = time.monotonic() + 20
                attempt = 0
                while not (any(t.startswith("up-0-") for t in texts(inboxes[2]))
                           and any(t.startswith("up-1-") for t in texts(inboxes[0]))):
                    assert time.monotonic() < deadline, "cross-server delivery did not resume"
                    attempt += 1
                    await clients[0].send("SendMessage", ["after", f"up-0-{attempt}"])
                    await clients[2].send("SendMessage", ["after", f"up-1-{attempt}"])
                    await asyncio.sleep(0.2)
                # After that nothing is lost: a broadcast from each side reaches every client.
                await clients[3].send("SendMessage", ["after", "final-1"])
                await clients[1].send("SendMessage", ["after", "final-0"])
                for inbox in inboxes:
                    deadline = time.monotonic() + TIMEOUT
                    while not {"final-0", "final-1"} <= set(texts(inbox)):
                        assert time.monotonic() < deadline, texts(inbox)
                        await asyncio.sleep(0.02)

        run(main())
