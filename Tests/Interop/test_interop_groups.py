"""ws-echo --groups (/chat, an example of WebSocketGroups) with python-websockets clients: a room's message reaches
everyone in the room and no one else, '@user text' reaches every connection of that user, permessage-deflate
connections included."""

import time

import pytest

pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402


def test_rooms_and_users(start_echo):
    echo = start_echo("--groups")
    base = f"ws://127.0.0.1:{echo.port}/chat"
    with connect(f"{base}?room=a&user=ann", compression=None) as ann, \
            connect(f"{base}?room=a&user=bob") as bob, \
            connect(f"{base}?room=b&user=ann", compression=None) as ann2:
        # A connection has joined its room once its own message comes back; skip the others' probes.
        for name, websocket in (("ann", ann), ("bob", bob), ("ann2", ann2)):
            websocket.send(f"probe {name}")
            deadline = time.monotonic() + 10
            while websocket.recv(timeout=10) != f"probe {name}":
                assert time.monotonic() < deadline
        # ann was in room a before bob's probe: it is queued for ann.
        while ann.recv(timeout=10) != "probe bob":
            pass
        bob.send("hello room a")
        assert ann.recv(timeout=10) == "hello room a"
        assert bob.recv(timeout=10) == "hello room a"
        bob.send("@ann private")
        assert ann.recv(timeout=10) == "private"
        assert ann2.recv(timeout=10) == "private"
        # Room b never saw room a's messages: the next thing ann2 gets is its own room's.
        ann2.send("only b")
        assert ann2.recv(timeout=10) == "only b"
        with pytest.raises(TimeoutError):
            bob.recv(timeout=0.3)
