"""Bad input against hub-chat over a raw WebSocket (the `websockets` package): each is answered with the
protocol's error (a handshake error or a Close message) and then the close, and a second connection is not
disturbed."""

import json

import msgpack
import pytest
from websockets.sync.client import connect

RS = "\x1e"
TIMEOUT = 5


def frames_until_close(ws):
    frames = []
    try:
        while True:
            frames.append(ws.recv(timeout=TIMEOUT))
    except Exception:
        return frames


def handshake(ws, protocol="json"):
    ws.send(json.dumps({"protocol": protocol, "version": 1}) + RS)
    assert ws.recv(timeout=TIMEOUT) in ("{}" + RS, b"{}\x1e")


@pytest.mark.parametrize("name, first, expected", [
    ("unknown protocol", '{"protocol":"xml","version":1}' + RS, "The protocol 'xml' is not supported."),
    ("unknown version", '{"protocol":"json","version":9}' + RS,
     "The server does not support version 9 of the 'json' protocol."),
    ("message before handshake", '{"type":6}' + RS, "Handshake was canceled."),
])
def test_handshake_errors(hub_server, name, first, expected):
    with connect(hub_server.ws) as ws:
        ws.send(first)
        frames = frames_until_close(ws)
    assert frames, name
    assert json.loads(frames[0].rstrip(RS))["error"].startswith(expected)
    assert len(frames) == 1


@pytest.mark.parametrize("name, frame, code", [
    ("malformed JSON", '{"type":1,' + RS, "malformedJSON"),
    ("missing record separator", '{"type":6}', "missingRecordSeparator"),
    ("unknown message type", '{"type":42}' + RS, "unknownMessageType"),
    ("oversized message", json.dumps({"type": 1, "target": "Echo", "arguments": ["x" * 40000]}) + RS,
     "messageTooLarge"),
])
def test_json_protocol_errors_close_with_an_error(hub_server, name, frame, code):
    with connect(hub_server.ws) as bystander, connect(hub_server.ws, max_size=None) as ws:
        handshake(bystander)
        handshake(ws)
        ws.send(frame)
        frames = [f for f in frames_until_close(ws) if f != '{"type":6}' + RS]
        assert len(frames) == 1, (name, frames)
        close = json.loads(frames[0].rstrip(RS))
        assert close["type"] == 7 and code in close["error"], close
        bystander.send('{"type":1,"invocationId":"1","target":"Add","arguments":[1,2]}' + RS)
        reply = bystander.recv(timeout=TIMEOUT)
        while '"type":3' not in reply:  # skip keep-alive pings
            reply = bystander.recv(timeout=TIMEOUT)
        assert json.loads(reply.rstrip(RS))["result"] == 3


def test_invalid_messagepack_varint(hub_server):
    with connect(hub_server.ws) as ws:
        handshake(ws, "messagepack")
        ws.send(bytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x91, 0x06]))
        frames = [f for f in frames_until_close(ws) if f != b"\x02\x91\x06"]
    assert len(frames) == 1
    body = frames[0]
    assert body[0] < 0x80  # one-byte length prefix
    message = msgpack.unpackb(body[1:])
    assert message[0] == 7 and "invalidVarInt" in message[1]


def test_unknown_target_and_stream_item_for_unknown_stream(hub_server):
    with connect(hub_server.ws) as ws:
        handshake(ws)
        ws.send('{"type":2,"invocationId":"nobody","item":1}' + RS)
        ws.send('{"type":1,"invocationId":"1","target":"Nope","arguments":[]}' + RS)
        reply = ws.recv(timeout=TIMEOUT)
        while '"type":3' not in reply:
            reply = ws.recv(timeout=TIMEOUT)
        assert json.loads(reply.rstrip(RS)) == {"type": 3, "invocationId": "1", "error": "Unknown hub method 'Nope'"}
