"""The hub over HTTP/2 (h2c prior knowledge), with Python's `h2` and `wsproto` (Tests/HTTP2/h2peer.py): negotiate
as an HTTP/2 POST, then the hub's WebSocket as an extended CONNECT stream (RFC 8441), JSON hub protocol."""

import json
import sys
from pathlib import Path

from wsproto.events import TextMessage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "HTTP2"))
from h2peer import H2Client  # noqa: E402

RS = "\x1e"


def post(client: H2Client, path: str, body: bytes = b"", extra=()):
    headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
               ("content-length", str(len(body))), *extra]
    stream = client.request(headers, end_stream=not body)
    if body:
        client.send_data(stream.stream_id, body, end_stream=True)
    client.pump_until(lambda: stream.ended or stream.reset_code is not None)
    return stream


def test_negotiate_and_hub_over_http2(h2c_server):
    client = H2Client(h2c_server.port)
    try:
        assert client.connect_protocol_enabled
        # Negotiate: POST with and without a body; other methods get 405; bad tokens 401.
        stream = post(client, "/chat/negotiate?negotiateVersion=1")
        assert stream.headers[":status"] == "200"
        negotiated = json.loads(stream.body)
        assert negotiated["negotiateVersion"] == 1
        assert [t["transport"] for t in negotiated["availableTransports"]] == [
            "WebSockets", "ServerSentEvents", "LongPolling"]
        assert post(client, "/chat/negotiate", b"{}").headers[":status"] == "200"
        assert client.get("/chat/negotiate").headers[":status"] == "405"
        assert post(client, "/chat/negotiate", extra=[("authorization", "Bearer wrong")]).headers[":status"] == "401"

        # Two hub connections on one HTTP/2 connection: the negotiated one and a skip-negotiation one.
        first = client.open_websocket(f"/chat?id={negotiated['connectionToken']}")
        second = client.open_websocket("/chat?access_token=tok-alice")
        assert first.headers[":status"] == "200" and second.headers[":status"] == "200"
        for stream in (first, second):
            client.ws_send(stream.stream_id, TextMessage(data='{"protocol":"json","version":1}' + RS))
            assert client.wait_messages(stream, 1)[0] == "{}" + RS
        client.ws_send(first.stream_id, TextMessage(
            data='{"type":1,"invocationId":"1","target":"Add","arguments":[40,2]}' + RS))
        client.ws_send(second.stream_id, TextMessage(
            data='{"type":1,"invocationId":"1","target":"WhoAmI","arguments":[]}' + RS))
        completions = [m for m in client.wait_messages(first, 2) if '"type":3' in m]
        assert json.loads(completions[0].rstrip(RS)) == {"type": 3, "invocationId": "1", "result": 42}
        completions = [m for m in client.wait_messages(second, 2) if '"type":3' in m]
        assert json.loads(completions[0].rstrip(RS))["result"] == "alice"
        # A negotiated id already connected is refused with 409, even over HTTP/2.
        again = client.open_websocket(f"/chat?id={negotiated['connectionToken']}")
        assert again.headers[":status"] == "409"
    finally:
        client.close()


def test_sse_and_long_polling_over_http2(h2c_server):
    """One HTTP/2 connection carries an SSE connection (its event stream and its POSTs) and a long-polling
    connection (polls, POSTs, DELETE), each request on its own stream."""
    client = H2Client(h2c_server.port)
    handshake = b'{"protocol":"json","version":1}\x1e'
    add = b'{"type":1,"invocationId":"1","target":"Add","arguments":[40,2]}\x1e'
    try:
        sse_id = json.loads(post(client, "/chat/negotiate?negotiateVersion=1").body)["connectionToken"]
        events = client.request([(":method", "GET"), (":scheme", "http"), (":path", f"/chat?id={sse_id}"),
                                 (":authority", "127.0.0.1"), ("accept", "text/event-stream")])
        client.pump_until(lambda: ":status" in events.headers)
        assert events.headers[":status"] == "200"
        assert events.headers["content-type"] == "text/event-stream"
        assert post(client, f"/chat?id={sse_id}", handshake).headers[":status"] == "200"
        client.pump_until(lambda: b"data: {}\x1e\n\n" in events.body)
        assert post(client, f"/chat?id={sse_id}", add).headers[":status"] == "200"
        client.pump_until(lambda: b'data: {"type":3,"invocationId":"1","result":42}\x1e\n\n' in events.body)

        lp_id = json.loads(post(client, "/chat/negotiate?negotiateVersion=1").body)["connectionToken"]
        first = client.get(f"/chat?id={lp_id}")
        assert first.headers[":status"] == "200" and bytes(first.body) == b""
        assert post(client, f"/chat?id={lp_id}", handshake).headers[":status"] == "200"
        assert bytes(client.get(f"/chat?id={lp_id}").body) == b"{}\x1e"
        assert post(client, f"/chat?id={lp_id}", add).headers[":status"] == "200"
        poll = client.get(f"/chat?id={lp_id}")
        assert poll.headers["content-type"] == "application/octet-stream"
        assert json.loads(bytes(poll.body).rstrip(b"\x1e")) == {"type": 3, "invocationId": "1", "result": 42}
        delete = client.request([(":method", "DELETE"), (":scheme", "http"), (":path", f"/chat?id={lp_id}"),
                                 (":authority", "127.0.0.1")])
        client.pump_until(lambda: delete.ended)
        assert delete.headers[":status"] == "202"
    finally:
        client.close()
