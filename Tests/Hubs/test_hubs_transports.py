"""The HTTP transports of the Swift hub server (hub-chat) with the real `signalrcore` client from PyPI: Server-Sent
Events and long polling with the JSON protocol, and one group message reaching three clients on three transports.

signalrcore 1.0.2's long-polling MessagePack client cannot be built (`LongPollingBinaryClient.__init__` calls
`super(LongPollingTextClient, self)`, a TypeError), so MessagePack over long polling is covered by the Swift tests
only. signalrcore's long-polling client also takes only the first message of a poll response, which is why the
server answers each poll with one message."""

import json
import threading
import time
import urllib.request
from contextlib import suppress

import pytest
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.types import HttpTransportType, HubProtocolEncoding

TIMEOUT = 5.0

TRANSPORTS = {
    "WebSockets": HttpTransportType.web_sockets,
    "ServerSentEvents": HttpTransportType.server_sent_events,
    "LongPolling": HttpTransportType.long_polling,
}


class Client:
    """A started signalrcore connection on one transport (handshake done), with thread-safe inboxes."""

    def __init__(self, url: str, transport: str):
        builder = HubConnectionBuilder().with_url(url, options={"transport": TRANSPORTS[transport]})
        builder.with_hub_protocol(HubProtocolEncoding.text)
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

        self.connection.on_error(on_completion)
        self.connection.send(method, arguments, on_invocation=on_completion)
        if not done.wait(TIMEOUT):
            raise TimeoutError(f"no completion for {method}")
        return box["message"]

    def stop(self):
        with suppress(Exception):
            self.connection.stop()


def test_negotiate_lists_three_transports(hub_server):
    request = urllib.request.Request(hub_server.http + "/negotiate?negotiateVersion=1", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        negotiated = json.loads(response.read())
    assert negotiated["availableTransports"] == [
        {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
        {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
        {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]},
    ]


@pytest.mark.parametrize("transport", ["ServerSentEvents", "LongPolling"])
def test_signalrcore_http_transport(hub_server, transport):
    """Invoke with a result and with an error, a server-to-client message, a server-to-client stream, and the
    connection id the hub sees, over one HTTP transport."""
    client = Client(hub_server.http, transport)
    client.on("ReceiveMessage")
    client.start()
    try:
        assert client.invoke("Add", [40, 2]).result == 42
        assert client.invoke("Throw", ["bad"]).error.endswith("HubException: bad")
        assert client.invoke("Echo", ["ünïcode ✓ \n line"]).result == "ünïcode ✓ \n line"
        client.connection.send("SendMessage", [transport, "hi"])
        assert client.wait("ReceiveMessage")[0] == [transport, "hi"]
        # Counter waits 50 ms before each item (signalrcore subscribes after it sent the StreamInvocation).
        items, done = [], threading.Event()
        client.connection.stream("Counter", [4, 50]).subscribe(
            {"next": items.append, "complete": lambda _: done.set(), "error": lambda _: done.set()}
        )
        assert done.wait(TIMEOUT)
        assert items == [0, 1, 2, 3]
    finally:
        client.stop()


def test_group_message_reaches_three_transports(hub_server):
    """A WebSockets, an SSE and a long-polling client join one room; one room message reaches all three once."""
    clients = {name: Client(hub_server.http, name) for name in TRANSPORTS}
    try:
        for client in clients.values():
            client.on("ReceiveRoomMessage")
            client.start()
            assert client.invoke("JoinRoom", ["mixed"]).error is None
        completion = clients["LongPolling"].invoke("SendToRoom", ["mixed", "to every transport"])
        assert completion.error is None
        for name, client in clients.items():
            calls = client.wait("ReceiveRoomMessage")
            assert calls[0][2] == "to every transport", name
        time.sleep(0.3)
        for name, client in clients.items():
            assert len(client.calls["ReceiveRoomMessage"]) == 1, name
    finally:
        for client in clients.values():
            client.stop()


def test_only_enabled_transports(fresh_long_poll_server):
    """hub-chat with --transports LongPolling: negotiate lists it alone, and signalrcore connects over it."""
    request = urllib.request.Request(fresh_long_poll_server.http + "/negotiate", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        negotiated = json.loads(response.read())
    assert negotiated["availableTransports"] == [{"transport": "LongPolling", "transferFormats": ["Text", "Binary"]}]
    client = Client(fresh_long_poll_server.http, "LongPolling")
    client.start()
    try:
        assert client.invoke("Echo", ["polled"]).result == "polled"
    finally:
        client.stop()
