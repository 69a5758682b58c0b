"""An HTTP/2 transport for the harness's client side (server direction): the WebSocket runs on one stream of an
h2c connection opened with an extended CONNECT (RFC 8441), through the third-party `h2` package.

The harness's `Peer` speaks raw RFC 6455 over a socket; here it gets one end of a socketpair, and a bridge thread
carries bytes between the other end and the stream's DATA frames. The stream's ends map to TCP's: the server's
END_STREAM is an EOF on the socket (a clean close by the server), its RST_STREAM or a dead connection is an abrupt
close, and the harness closing its socket ends the stream with END_STREAM. So every case runs unchanged, and what
it checks (frames, close codes, who closed first) is what went over the stream.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class H2Bridge:
    def __init__(self, host: str, port: int, path: str, extra: dict | None, timeout: float):
        self.tcp = socket.create_connection((host, port), timeout=timeout)
        self.tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.tcp.sendall(self.conn.data_to_send())
        self.request_lines: list[str] = []
        self.response: dict | None = None
        self.reset_code: int | None = None
        self.pending = bytearray()
        self.early: list[bytes] = []
        self.end_after_pending = False
        deadline = time.monotonic() + timeout
        settings = False
        while not settings:  # the server's SETTINGS tell whether extended CONNECT is allowed (RFC 8441 §3)
            for event in self._read(deadline):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings = True
        if self.conn.remote_settings.get(0x8, 0) != 1:
            raise ConnectionError("the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL = 1")
        headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":path", path),
                   (":authority", f"{host}:{port}"), ("sec-websocket-version", "13")]
        headers += [(k.lower(), v) for k, v in (extra or {}).items()]
        self.request_lines = [f"{k}: {v}" for k, v in headers]
        self.stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.stream_id, headers)
        self.tcp.sendall(self.conn.data_to_send())
        while self.response is None and self.reset_code is None:
            for event in self._read(deadline):
                self._on_event(event, None)
        if self.reset_code is not None:
            raise ConnectionError(f"the server reset the stream ({self.reset_code})")
        self.harness_end, self.bridge_end = socket.socketpair()
        for data in self.early:
            self.bridge_end.sendall(data)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def status(self) -> str:
        return (self.response or {}).get(":status", "")

    def _read(self, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no HTTP/2 answer in time")
        self.tcp.settimeout(remaining)
        data = self.tcp.recv(65536)
        if not data:
            raise ConnectionError("connection closed during the extended CONNECT")
        events = self.conn.receive_data(data)
        out = self.conn.data_to_send()
        if out:
            self.tcp.sendall(out)
        return events

    def _on_event(self, event, sink: socket.socket | None) -> bool:
        """Handles one h2 event; False when the bridge is over."""
        if isinstance(event, h2.events.ResponseReceived) and event.stream_id == self.stream_id:
            self.response = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived) and event.stream_id == self.stream_id:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.data:
                if sink is None:
                    self.early.append(event.data)
                else:
                    try:
                        sink.sendall(event.data)
                    except OSError:
                        return False
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id == self.stream_id:
            if sink is not None:
                try:
                    sink.shutdown(socket.SHUT_WR)  # the server's END_STREAM: EOF for the harness
                except OSError:
                    pass
        elif isinstance(event, h2.events.StreamReset) and event.stream_id == self.stream_id:
            self.reset_code = int(event.error_code)
            return False
        elif isinstance(event, h2.events.ConnectionTerminated):
            return False
        elif isinstance(event, h2.events.WindowUpdated):
            self._flush_pending()
        return True

    def _flush_pending(self):
        while self.pending:
            try:
                window = min(self.conn.local_flow_control_window(self.stream_id), self.conn.max_outbound_frame_size)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.pending.clear()
                return
            if window <= 0:
                return
            chunk = bytes(self.pending[:window])
            del self.pending[:window]
            self.conn.send_data(self.stream_id, chunk)
        if self.end_after_pending:
            self.end_after_pending = False
            try:
                self.conn.end_stream(self.stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass

    def _run(self):
        harness_closed_at = None
        try:
            self.tcp.settimeout(None)
            while True:
                if harness_closed_at is not None and time.monotonic() - harness_closed_at > 2:
                    break
                readable, _, _ = select.select([self.tcp, self.bridge_end], [], [], 0.1)
                if self.bridge_end in readable and harness_closed_at is None:
                    try:
                        data = self.bridge_end.recv(1 << 20)
                    except OSError:
                        data = b""
                    if data:
                        self.pending += data
                        self._flush_pending()
                    else:
                        # The harness closed its socket: end our side of the stream.
                        harness_closed_at = time.monotonic()
                        self.end_after_pending = True
                        self._flush_pending()
                if self.tcp in readable:
                    data = self.tcp.recv(1 << 20)
                    if not data:
                        break
                    alive = all([self._on_event(event, self.bridge_end) for event in self.conn.receive_data(data)])
                    if not alive:
                        break
                out = self.conn.data_to_send()
                if out:
                    self.tcp.sendall(out)
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            for sock in (self.bridge_end, self.tcp):
                try:
                    sock.close()
                except OSError:
                    pass


def open_websocket(host: str, port: int, path: str, extra: dict | None, timeout: float) -> H2Bridge:
    """Opens a WebSocket over an h2c stream; `bridge.harness_end` is the socket the harness's Peer uses."""
    return H2Bridge(host, port, path, extra, timeout)
