"""Interop of the Swift hub server (hub-chat) with the real third-party SignalR clients from PyPI:
`pysignalr` (asyncio; WebSockets; JSON and MessagePack) and `signalrcore` (threads; WebSockets here; JSON and
MessagePack). Every wait is bounded; a test fails if a message does not arrive within its timeout.

pysignalr negotiates without `negotiateVersion` (version 0) and sends handshake version 1; signalrcore negotiates
version 0 and sends handshake version 0."""

import asyncio
import threading
import time
from urllib.error import HTTPError
from contextlib import asynccontextmanager, suppress

import pytest
from pysignalr.client import SignalRClient
from pysignalr.exceptions import AuthorizationError, ServerError
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol
from signalrcore.hub.errors import UnAuthorizedHubError
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.subject import Subject
from signalrcore.types import HubProtocolEncoding

TIMEOUT = 5.0

PROTOCOLS = {"json": JSONProtocol, "messagepack": MessagepackProtocol}


# ---------------------------------------------------------------------------------------------------------------
# pysignalr helpers


@asynccontextmanager
async def pysignalr_client(url: str, protocol: str = "json", headers=None, setup=None, **options):
    """A connected pysignalr client (handshake done); `setup(client)` registers handlers before it connects."""
    client = SignalRClient(url, protocol=PROTOCOLS[protocol](), headers=headers, retry_count=1, **options)
    opened = asyncio.Event()

    async def on_open():
        opened.set()

    client.on_open(on_open)
    if setup:
        setup(client)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(opened.wait(), TIMEOUT)
        yield client
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task


async def invoke(client: SignalRClient, method: str, arguments: list):
    """Invokes with an invocation id and returns the Completion message."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    async def on_completion(message):
        if not done.done():
            done.set_result(message)

    async def on_error(message):
        if not done.done():
            done.set_result(message)

    client.on_error(on_error)
    await client.send(method, arguments, on_invocation=on_completion)
    return await asyncio.wait_for(done, TIMEOUT)


class Inbox:
    """Collects the arguments of one client method; `wait(n)` waits for n calls."""

    def __init__(self):
        self.calls = []
        self.event = asyncio.Event()

    async def handler(self, arguments):
        self.calls.append(arguments)
        self.event.set()

    async def wait(self, count: int = 1, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.calls)} of {count} calls arrived: {self.calls}")
            self.event.clear()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.event.wait(), remaining)
        return self.calls


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


# ---------------------------------------------------------------------------------------------------------------
# signalrcore helpers


class SignalrcoreClient:
    """A started signalrcore connection (handshake done) with thread-safe inboxes."""

    def __init__(self, url: str, protocol: str = "json", token: str | None = None, skip_negotiation=False):
        options = {"skip_negotiation": skip_negotiation}
        if token is not None:
            options["access_token_factory"] = lambda: token
        builder = HubConnectionBuilder().with_url(url, options=options)
        builder.with_hub_protocol(HubProtocolEncoding.binary if protocol == "messagepack" else HubProtocolEncoding.text)
        self.connection = builder.build()
        self.opened = threading.Event()
        self.closed = threading.Event()
        self.connection.on_open(self.opened.set)
        self.connection.on_close(self.closed.set)
        self.calls: dict[str, list] = {}
        self.lock = threading.Condition()

    def on(self, method: str):
        def handler(arguments):
            with self.lock:
                self.calls.setdefault(method, []).append(arguments)
                self.lock.notify_all()

        self.connection.on(method, handler)

    def start(self):
        self.connection.start()
        if not self.opened.wait(TIMEOUT):
            raise TimeoutError("signalrcore did not open")

    def wait(self, method: str, count: int = 1, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.calls.get(method, [])) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{method}: {self.calls.get(method)}")
                self.lock.wait(remaining)
            return list(self.calls[method])

    def invoke(self, method: str, arguments: list):
        done = threading.Event()
        box = {}

        def on_completion(message):
            box["message"] = message
            done.set()

        def on_error(message):
            box["message"] = message
            done.set()

        self.connection.on_error(on_error)
        self.connection.send(method, arguments, on_invocation=on_completion)
        if not done.wait(TIMEOUT):
            raise TimeoutError(f"no completion for {method}")
        return box["message"]

    def stop(self):
        with suppress(Exception):
            self.connection.stop()


# ---------------------------------------------------------------------------------------------------------------
# pysignalr


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_pysignalr_invoke_with_result(hub_server, protocol):
    async def main():
        async with pysignalr_client(hub_server.http, protocol) as client:
            completion = await invoke(client, "Add", [40, 2])
            assert completion.error is None
            assert completion.result == 42
            completion = await invoke(client, "Echo", ["héllo ✓"])
            assert completion.result == "héllo ✓"

    run(main())


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_pysignalr_errors(hub_server, protocol):
    async def main():
        async with pysignalr_client(hub_server.http, protocol) as client:
            completion = await invoke(client, "Throw", ["boom"])
            assert completion.error == "An unexpected error occurred invoking 'Throw' on the server. HubException: boom"
            completion = await invoke(client, "Fail", [])
            assert completion.error == "An unexpected error occurred invoking 'Fail' on the server."
            completion = await invoke(client, "NoSuchMethod", [])
            assert completion.error == "Unknown hub method 'NoSuchMethod'"
            completion = await invoke(client, "Add", [1])
            assert "Invocation provides 1 argument(s) but target expects 2." in completion.error
            completion = await invoke(client, "Add", ["one", "two"])
            assert "Error binding arguments" in completion.error
            # The connection is still usable after every failed invocation.
            completion = await invoke(client, "Add", [2, 3])
            assert completion.result == 5

    run(main())


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_pysignalr_server_to_client_messages(hub_server, protocol):
    inbox = Inbox()

    async def main():
        setup = lambda c: c.on("ReceiveMessage", inbox.handler)  # noqa: E731
        async with pysignalr_client(hub_server.http, protocol, setup=setup) as client:
            await client.send("SendMessage", ["ann", "hello"])
            calls = await inbox.wait(1)
            assert calls[0] == ["ann", "hello"]

    run(main())


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_pysignalr_server_to_client_stream(hub_server, protocol):
    async def main():
        async with pysignalr_client(hub_server.http, protocol) as client:
            items = []
            completed = asyncio.Event()

            async def on_next(item):
                items.append(item)

            async def on_complete(message):
                completed.set()

            await client.stream("Counter", [5, 10], on_next=on_next, on_complete=on_complete)
            await asyncio.wait_for(completed.wait(), TIMEOUT)
            assert items == [0, 1, 2, 3, 4]

    run(main())


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_pysignalr_client_to_server_stream(hub_server, protocol):
    inbox = Inbox()

    async def main():
        setup = lambda c: c.on("SumResult", inbox.handler)  # noqa: E731
        async with pysignalr_client(hub_server.http, protocol, setup=setup) as client:
            async with client.client_stream("Sum") as stream:
                for number in [1, 2, 3, 4, 5]:
                    await stream.send(number)
            calls = await inbox.wait(1)
            assert calls[0] == [15]

    run(main())


def test_pysignalr_user_targeting_with_access_token(hub_server):
    """alice connects with an Authorization header, bob with the access_token query parameter; a message to user
    alice reaches alice's connection only."""
    alice_inbox, bob_inbox = Inbox(), Inbox()

    async def main():
        async with pysignalr_client(
            hub_server.http, "json", headers={"Authorization": "Bearer tok-alice"},
            setup=lambda c: c.on("ReceiveMessage", alice_inbox.handler),
        ) as alice, pysignalr_client(
            hub_server.http + "?access_token=tok-bob", "messagepack",
            setup=lambda c: c.on("ReceiveMessage", bob_inbox.handler),
        ) as bob:
            assert (await invoke(alice, "WhoAmI", [])).result == "alice"
            assert (await invoke(bob, "WhoAmI", [])).result == "bob"
            await bob.send("SendToUser", ["alice", "psst"])
            calls = await alice_inbox.wait(1)
            assert calls[0] == ["bob", "psst"]
            await alice.send("SendToUser", ["bob", "hi bob"])
            calls = await bob_inbox.wait(1)
            assert calls[0] == ["alice", "hi bob"]
            await asyncio.sleep(0.2)
            assert len(alice_inbox.calls) == 1 and len(bob_inbox.calls) == 1

        # SendToUser is for authenticated users only (a per-method rule).
        async with pysignalr_client(hub_server.http, "json") as anonymous:
            completion = await invoke(anonymous, "SendToUser", ["alice", "spam"])
            assert completion.error == "Failed to invoke 'SendToUser' because user is unauthorized"
        assert len(alice_inbox.calls) == 1

    run(main())


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_pysignalr_close_message_from_server(hub_server, protocol):
    """Kick makes the server send a Close message with an error; pysignalr raises it as ServerError."""

    async def main():
        client = SignalRClient(hub_server.http, protocol=PROTOCOLS[protocol](), retry_count=1)
        opened = asyncio.Event()

        async def on_open():
            opened.set()

        client.on_open(on_open)
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(opened.wait(), TIMEOUT)
        await client.send("Kick", [])
        with pytest.raises(ServerError, match="Connection aborted by the server."):
            await asyncio.wait_for(task, TIMEOUT)

    run(main())


def test_pysignalr_keep_alive_and_client_timeout(short_timeout_server):
    """A client that pings every 0.5 s stays connected past the server's 1.5 s client timeout (and receives the
    server's pings); one that pings every 30 s is closed with the timeout error in a Close message."""

    async def main():
        pings = 0
        async with pysignalr_client(short_timeout_server.http, "json", signalr_ping_interval=0.5) as pinger:
            # Counts the server's pings (pysignalr drops them silently).
            original = pinger._transport._on_raw_message

            async def count_pings(raw):
                nonlocal pings
                pings += str(raw).count('{"type":6}')
                await original(raw)

            pinger._transport._on_raw_message = count_pings
            await asyncio.sleep(3.0)
            assert (await invoke(pinger, "Echo", ["still here"])).result == "still here"
        assert pings >= 3

        silent = SignalRClient(short_timeout_server.http, signalr_ping_interval=30, retry_count=1)
        with pytest.raises(ServerError, match="Server timeout elapsed without receiving a message from the client."):
            await asyncio.wait_for(silent.run(), TIMEOUT)

    run(main())


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_pysignalr_client_results(hub_server, protocol):
    """The server invokes GetAnswer on one client and waits for its Completion (pysignalr returns the callback's
    value as the result, and an exception's text as the error)."""

    async def answer(arguments):
        if arguments[0] == "fail":
            raise ValueError("no idea")
        return f"answer to {arguments[0]}"

    async def main():
        async with pysignalr_client(
            hub_server.http, protocol, setup=lambda c: c.on("GetAnswer", answer)
        ) as answerer, pysignalr_client(hub_server.http, "json") as asker:
            answerer_id = (await invoke(answerer, "ConnectionId", [])).result
            completion = await invoke(asker, "AskClient", [answerer_id, "life"])
            assert completion.error is None
            assert completion.result == "answer to life"
            completion = await invoke(asker, "AskClient", [answerer_id, "fail"])
            assert completion.error == (
                "An unexpected error occurred invoking 'AskClient' on the server. HubException: no idea")
            completion = await invoke(answerer, "AskCaller", ["self"])
            assert "cannot wait for a result from its own caller" in completion.error
            completion = await invoke(asker, "AskClient", ["nobody", "x"])
            assert "is not connected" in completion.error

    run(main())


def test_pysignalr_auth_rejected(hub_server):
    async def main():
        client = SignalRClient(hub_server.http, headers={"Authorization": "Bearer wrong"}, retry_count=1)
        with pytest.raises(AuthorizationError):
            await asyncio.wait_for(client.run(), TIMEOUT)

    run(main())


# ---------------------------------------------------------------------------------------------------------------
# signalrcore


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_signalrcore_invoke_messages_and_stream(hub_server, protocol):
    client = SignalrcoreClient(hub_server.http, protocol)
    client.on("ReceiveMessage")
    client.start()
    try:
        completion = client.invoke("Add", [40, 2])
        assert completion.result == 42
        completion = client.invoke("Throw", ["bad"])
        assert completion.error.endswith("HubException: bad")
        client.connection.send("SendMessage", ["core", "hi"])
        assert client.wait("ReceiveMessage")[0] == ["core", "hi"]

        # signalrcore sends the StreamInvocation before subscribe() sets the callbacks, so an item arriving at once
        # would be dropped by the client: Counter waits 50 ms before each item, the first one too.
        items, done = [], threading.Event()
        client.connection.stream("Counter", [4, 50]).subscribe(
            {"next": items.append, "complete": lambda _: done.set(), "error": lambda _: done.set()}
        )
        assert done.wait(TIMEOUT)
        assert items == [0, 1, 2, 3]
    finally:
        client.stop()


# signalrcore 1.0.2 writes MessagePack client-stream messages without their InvocationId slot
# ([1, {}, "Sum", [], ["id"]]) and the stream's Completion without a ResultKind ([3, {}, "id"]); the spec's layouts
# have no such forms, and our decoder reads them (the shipped clients win).
@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_signalrcore_upload_stream_skip_negotiation_and_close(hub_server, protocol):
    """skip_negotiation (no id= on the WebSocket), an upload stream through a Subject, then Kick: the server's
    Close message makes signalrcore close the transport."""
    client = SignalrcoreClient(hub_server.ws, protocol, skip_negotiation=True)
    client.on("SumResult")
    client.start()
    try:
        subject = Subject()
        client.connection.send("Sum", subject)
        for number in range(1, 11):
            subject.next(number)
        subject.complete()
        assert client.wait("SumResult")[0] == [55]
        client.connection.send("Kick", [])
        assert client.closed.wait(TIMEOUT)
    finally:
        client.stop()


def test_signalrcore_messagepack_skip_negotiation_and_close(hub_server):
    client = SignalrcoreClient(hub_server.ws, "messagepack", skip_negotiation=True)
    client.start()
    try:
        assert client.invoke("Echo", ["packed"]).result == "packed"
        client.connection.send("Kick", [])
        assert client.closed.wait(TIMEOUT)
    finally:
        client.stop()


def test_signalrcore_user_token_and_rejection(hub_server):
    client = SignalrcoreClient(hub_server.http, "json", token="tok-bob")
    client.start()
    try:
        assert client.invoke("WhoAmI", []).result == "bob"
    finally:
        client.stop()
    rejected = SignalrcoreClient(hub_server.http, "json", token="wrong")
    # signalrcore 1.0.2's urllib helper raises HTTPError for the 401 before its own UnAuthorizedHubError check.
    with pytest.raises((UnAuthorizedHubError, HTTPError)) as raised:
        rejected.connection.start()
    assert isinstance(raised.value, UnAuthorizedHubError) or raised.value.code == 401


def test_groups_with_three_clients(hub_server):
    """Two pysignalr clients (JSON and MessagePack) and one signalrcore client (MessagePack): the first two join a
    room; a room message from the third (outside the room) reaches exactly the two members, and leaving works."""
    json_inbox, msgpack_inbox = Inbox(), Inbox()
    json_joined = Inbox()
    outsider = SignalrcoreClient(hub_server.http, "messagepack")
    outsider.on("ReceiveRoomMessage")

    async def main():
        async with pysignalr_client(
            hub_server.http, "json",
            setup=lambda c: (c.on("ReceiveRoomMessage", json_inbox.handler), c.on("UserJoined", json_joined.handler)),
        ) as a, pysignalr_client(
            hub_server.http, "messagepack", setup=lambda c: c.on("ReceiveRoomMessage", msgpack_inbox.handler)
        ) as b:
            await asyncio.to_thread(outsider.start)
            assert (await invoke(a, "JoinRoom", ["lobby"])).error is None
            assert (await invoke(b, "JoinRoom", ["lobby"])).error is None
            joined = await json_joined.wait(2)
            assert [call[0] for call in joined] == ["lobby", "lobby"]

            completion = await asyncio.to_thread(outsider.invoke, "SendToRoom", ["lobby", "hello room"])
            assert completion.error is None
            assert (await json_inbox.wait(1))[0][2] == "hello room"
            assert (await msgpack_inbox.wait(1))[0][2] == "hello room"

            # othersInGroup: b's message reaches a, not b.
            await invoke(b, "SendToOthersInRoom", ["lobby", "from b"])
            assert (await json_inbox.wait(2))[1][2] == "from b"

            assert (await invoke(a, "LeaveRoom", ["lobby"])).error is None
            await asyncio.to_thread(outsider.invoke, "SendToRoom", ["lobby", "after leave"])
            assert (await msgpack_inbox.wait(2))[1][2] == "after leave"
            await asyncio.sleep(0.3)
            assert len(json_inbox.calls) == 2
            assert len(msgpack_inbox.calls) == 2
            assert "ReceiveRoomMessage" not in outsider.calls

    try:
        run(main())
    finally:
        outsider.stop()


def test_graceful_shutdown_sends_close_with_allow_reconnect(fresh_server):
    """SIGTERM: the hub sends {"type":7,"allowReconnect":true} before the server closes the WebSocket (here read with
    the `websockets` package, since both SignalR clients drop the flag)."""
    import os
    import signal

    from websockets.sync.client import connect

    with connect(fresh_server.ws, open_timeout=TIMEOUT) as ws:
        ws.send('{"protocol":"json","version":1}\x1e')
        assert ws.recv(timeout=TIMEOUT) == "{}\x1e"
        os.kill(fresh_server.pid, signal.SIGTERM)
        messages = []
        with suppress(Exception):
            while True:
                messages.append(ws.recv(timeout=TIMEOUT))
        assert '{"type":7,"allowReconnect":true}\x1e' in messages, messages
