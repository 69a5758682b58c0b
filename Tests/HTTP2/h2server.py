"""A third-party WebSocket-over-HTTP/2 echo server for testing our client (RFC 8441): `h2` for HTTP/2 (server
side, advertising SETTINGS_ENABLE_CONNECT_PROTOCOL), `wsproto` for the WebSocket in each stream. Threads, one per
connection; it records what it saw so tests can assert the WebSockets ran over HTTP/2 streams."""

import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate


class H2EchoServer:
    def __init__(self, cert: tuple[str, str] | None = None, advertise: bool = True,
                 max_concurrent_streams: int | None = None, goaway_after: int | None = None):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.advertise = advertise
        self.max_concurrent_streams = max_concurrent_streams
        self.connections = 0     # TCP connections accepted
        self.goaway_after = goaway_after  # send GOAWAY (NO_ERROR) once a connection has this many WebSockets
        self.context = None
        if cert:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*cert)
            self.context.set_alpn_protocols(["h2"])
        self.lock = threading.Lock()
        self.websockets = 0      # extended CONNECT streams accepted
        self.requests = []       # the request header blocks seen
        self.clean_ends = 0      # WebSocket streams the client ended with END_STREAM
        self.resets = 0          # streams the client reset
        self.stopping = False
        self.pending: dict = {}  # per connection, per stream: bytes waiting for flow-control window
        self.ending: set = set()  # (connection, stream) to end once their pending bytes are sent
        self.threads = []
        self.acceptor = threading.Thread(target=self.accept_loop, daemon=True)
        self.acceptor.start()

    def accept_loop(self):
        self.listener.settimeout(0.2)
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            thread = threading.Thread(target=self.serve, args=(sock,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def serve(self, sock):
        try:
            if self.context:
                sock = self.context.wrap_socket(sock, server_side=True)
            sock.settimeout(0.2)
            conn = h2.connection.H2Connection(
                config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
            initial = {}
            if self.advertise:  # in the server's first SETTINGS frame (RFC 8441 §3)
                initial[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
            if self.max_concurrent_streams is not None:
                initial[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = self.max_concurrent_streams
            if initial:
                conn.local_settings = h2.settings.Settings(client=False, initial_values=initial)
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            sockets: dict[int, Connection] = {}
            while not self.stopping:
                try:
                    data = sock.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                if not data:
                    return
                for event in conn.receive_data(data):
                    self.handle(conn, sockets, event)
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            return
        finally:
            sock.close()

    def handle(self, conn, sockets, event):
        if isinstance(event, h2.events.RequestReceived):
            headers = dict(event.headers)
            with self.lock:
                self.requests.append(headers)
            if headers.get(":method") != "CONNECT" or headers.get(":protocol") != "websocket":
                conn.send_headers(event.stream_id, [(":status", "400")], end_stream=True)
                return
            response = [(":status", "200")]
            extensions = []
            offer = headers.get("sec-websocket-extensions")
            if offer and offer.startswith("permessage-deflate"):
                extension = PerMessageDeflate()
                accepted = extension.accept(offer.partition(";")[2].strip())
                if accepted is not None:
                    value = "permessage-deflate" + (f"; {accepted}" if accepted is not True and accepted else "")
                    response.append(("sec-websocket-extensions", value))
                    extensions.append(extension)
            conn.send_headers(event.stream_id, response)
            sockets[event.stream_id] = Connection(ConnectionType.SERVER, extensions=extensions)
            with self.lock:
                self.websockets += 1
            if self.goaway_after is not None and len(sockets) == self.goaway_after:
                # No new stream on this connection; the open ones run on (RFC 9113 §6.8). Needs
                # h2peer.tolerate_frames_after_goaway(): h2 otherwise refuses every frame after a GOAWAY.
                conn.close_connection(error_code=0, last_stream_id=event.stream_id)
        elif isinstance(event, h2.events.DataReceived):
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            ws = sockets.get(event.stream_id)
            if ws is None or not event.data:  # an empty DATA frame may carry END_STREAM
                return
            ws.receive_data(event.data)
            for ws_event in ws.events():
                if isinstance(ws_event, TextMessage):
                    out = ws.send(TextMessage(ws_event.data, message_finished=ws_event.message_finished))
                elif isinstance(ws_event, BytesMessage):
                    out = ws.send(BytesMessage(ws_event.data, message_finished=ws_event.message_finished))
                elif isinstance(ws_event, Ping):
                    out = ws.send(ws_event.response())
                elif isinstance(ws_event, CloseConnection):
                    # The close handshake is done: end our side of the stream, as a server closes TCP first
                    # (RFC 6455 §7.1.1; on HTTP/2 the stream's END_STREAM stands for the TCP FIN, RFC 8441 §5).
                    self.send(conn, event.stream_id, ws.send(ws_event.response()), end=True)
                    continue
                else:
                    continue
                self.send(conn, event.stream_id, out)
        elif isinstance(event, h2.events.StreamEnded):
            if event.stream_id in sockets:
                with self.lock:
                    self.clean_ends += 1
                if event.stream_id not in self.pending.get(conn, {}):
                    self.end(conn, event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            self.flush_pending(conn)
        elif isinstance(event, h2.events.StreamReset):
            with self.lock:
                self.resets += 1

    def send(self, conn, stream_id, data, end=False):
        """Queues `data` on the stream and sends what the flow-control windows allow (the rest on WINDOW_UPDATE);
        with `end`, END_STREAM follows the last byte."""
        self.pending.setdefault(conn, {}).setdefault(stream_id, bytearray()).extend(data)
        if end:
            self.ending.add((id(conn), stream_id))
        self.flush_pending(conn)

    def flush_pending(self, conn):
        pending = self.pending.get(conn, {})
        for stream_id, buffer in list(pending.items()):
            while buffer:
                try:
                    window = conn.local_flow_control_window(stream_id)
                except h2.exceptions.StreamClosedError:
                    buffer.clear()
                    break
                size = min(window, conn.max_outbound_frame_size, len(buffer))
                if size <= 0:
                    break
                conn.send_data(stream_id, bytes(buffer[:size]))
                del buffer[:size]
            if not buffer:
                del pending[stream_id]
                if (id(conn), stream_id) in self.ending:
                    self.ending.discard((id(conn), stream_id))
                    self.end(conn, stream_id)

    @staticmethod
    def end(conn, stream_id):
        try:
            conn.end_stream(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass  # already ended or reset

    def stop(self):
        self.stopping = True
        self.listener.close()
        self.acceptor.join(timeout=2)
        for thread in self.threads:
            thread.join(timeout=2)
