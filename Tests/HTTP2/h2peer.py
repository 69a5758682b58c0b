"""A synchronous HTTP/2 WebSocket peer for tests, on third-party packages: `h2` for HTTP/2 framing and
`wsproto` for the WebSocket frames carried in each stream's DATA (RFC 8441). One socket, many WebSockets."""

import socket
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage)
from wsproto.extensions import PerMessageDeflate


@dataclass
class Stream:
    """What one stream received: response headers, WebSocket events, DATA bytes, how it ended."""
    stream_id: int
    headers: dict = field(default_factory=dict)
    ws: Connection | None = None
    events: list = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False          # the server sent END_STREAM
    reset_code: int | None = None  # the server reset the stream
    held: list = field(default_factory=list)  # DATA not yet read (while `hold`): no WINDOW_UPDATE is sent for it
    hold: bool = False


def tolerate_frames_after_goaway():
    """h2 treats a received GOAWAY as the end of the connection and raises on any later frame, while RFC 9113 §6.8
    lets the streams the GOAWAY covers run to completion (a graceful shutdown: GOAWAY, then each WebSocket's close
    handshake). Let the closed state receive and send stream frames."""
    from h2.connection import ConnectionInputs, ConnectionState, H2ConnectionStateMachine
    for name in ("RECV_DATA", "RECV_HEADERS", "RECV_WINDOW_UPDATE", "RECV_RST_STREAM", "RECV_PING",
                 "SEND_DATA", "SEND_HEADERS", "SEND_WINDOW_UPDATE", "SEND_RST_STREAM"):
        key = (ConnectionState.CLOSED, getattr(ConnectionInputs, name))
        H2ConnectionStateMachine._transitions.setdefault(key, (None, ConnectionState.CLOSED))


class H2Client:
    """An HTTP/2 client connection (h2c prior knowledge, or TLS with ALPN h2) that opens WebSockets with the
    extended CONNECT method. `validate=False` lets tests send malformed header blocks."""

    def __init__(self, port: int, tls: bool = False, validate: bool = True, timeout: float = 10.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            self.sock = context.wrap_socket(raw, server_hostname="localhost")
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        else:
            self.sock = raw
        self.scheme = "https" if tls else "http"
        config = h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=validate,
            normalize_outbound_headers=validate, validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.flush()
        self.streams: dict[int, Stream] = {}
        self.goaway = None
        self.settings_received = False
        self.closed = False
        self.deadline = timeout
        self.pump_until(lambda: self.settings_received)

    # --- I/O ---------------------------------------------------------------------------------------------

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, wait: float = 0.05) -> bool:
        """Reads once (up to `wait` seconds) and dispatches the events; False when the connection is closed."""
        if self.closed:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, ssl.SSLError, OSError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        for event in self.conn.receive_data(data):
            self.dispatch(event)
        self.flush()
        return True

    def pump_until(self, condition, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.deadline)
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            if not self.pump() and not condition():
                raise ConnectionError("connection closed")

    def dispatch(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
        elif isinstance(event, h2.events.ResponseReceived):
            self.streams[event.stream_id].headers = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams[event.stream_id]
            if stream.hold:  # a slow reader: keep the bytes, grant no more window
                stream.held.append(event)
                return
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if stream.ws is not None:
                if not event.data:
                    return  # e.g. the empty DATA frame that carries END_STREAM
                stream.ws.receive_data(event.data)
                for ws_event in stream.ws.events():
                    stream.events.append(ws_event)
                    if isinstance(ws_event, Ping):
                        self.ws_send(stream.stream_id, ws_event.response())
            else:
                stream.body += event.data
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.streams:
                self.streams[event.stream_id].reset_code = int(event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def release(self, stream: Stream):
        """Ends `hold`: reads what was held back (granting window again)."""
        stream.hold = False
        held, stream.held = stream.held, []
        for event in held:
            self.dispatch(event)
        self.flush()

    @property
    def connect_protocol_enabled(self) -> bool:
        return self.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 1

    # --- requests ----------------------------------------------------------------------------------------

    def request(self, headers: list[tuple[str, str]], end_stream: bool = True) -> Stream:
        stream_id = self.conn.get_next_available_stream_id()
        self.streams[stream_id] = Stream(stream_id)
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.flush()
        return self.streams[stream_id]

    def get(self, path: str) -> Stream:
        stream = self.request([(":method", "GET"), (":scheme", self.scheme), (":path", path),
                               (":authority", "127.0.0.1")])
        self.pump_until(lambda: stream.ended or stream.reset_code is not None)
        return stream

    def connect_headers(self, path="/", protocol="websocket", version="13", extra=()):
        headers = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", self.scheme), (":path", path),
                   (":authority", "127.0.0.1")]
        if version is not None:
            headers.append(("sec-websocket-version", version))
        return headers + list(extra)

    def open_websocket(self, path="/", deflate=False, extra=(), wait=True) -> Stream:
        """Sends an extended CONNECT; once the 200 arrives the stream carries a wsproto client connection."""
        extra = list(extra)
        extension = None
        if deflate:
            extension = PerMessageDeflate()
            extra.append(("sec-websocket-extensions", f"{extension.name}; {extension.offer()}"))
        stream = self.request(self.connect_headers(path, extra=extra), end_stream=False)
        if not wait:
            return stream
        self.pump_until(lambda: stream.headers or stream.reset_code is not None or stream.ended)
        if stream.headers.get(":status") == "200":
            extensions = []
            if extension is not None and "sec-websocket-extensions" in stream.headers:
                extension.finalize(stream.headers["sec-websocket-extensions"])
                extensions.append(extension)
            stream.ws = Connection(ConnectionType.CLIENT, extensions=extensions)
        return stream

    def ws_send(self, stream_id: int, event):
        data = self.streams[stream_id].ws.send(event)
        self.send_data(stream_id, data)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False):
        """Sends DATA respecting the flow-control window (waiting for WINDOW_UPDATEs)."""
        view = memoryview(data)
        while True:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump_until(lambda: self.conn.local_flow_control_window(stream_id) > 0
                                or self.streams[stream_id].reset_code is not None)
                if self.streams[stream_id].reset_code is not None:
                    return
                continue
            chunk, view = view[:window], view[window:]
            self.conn.send_data(stream_id, bytes(chunk), end_stream=end_stream and not view)
            self.flush()
            if not view:
                return

    def end_stream(self, stream_id: int):
        self.conn.end_stream(stream_id)
        self.flush()

    def reset(self, stream_id: int, code: int = 8):
        self.conn.reset_stream(stream_id, error_code=code)
        self.flush()

    def messages(self, stream: Stream) -> list:
        """Whole messages received so far (text as str, binary as bytes), reassembling fragments."""
        result, pending = [], None
        for event in stream.events:
            if isinstance(event, Message):
                pending = event.data if pending is None else pending + event.data
                if event.message_finished:
                    result.append(pending)
                    pending = None
        return result

    def wait_messages(self, stream: Stream, count: int, timeout: float = 10.0) -> list:
        self.pump_until(lambda: len(self.messages(stream)) >= count, timeout)
        return self.messages(stream)

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        self.sock.close()


__all__ = ["H2Client", "Stream", "BytesMessage", "TextMessage", "CloseConnection", "Ping", "Pong"]
