"""The harness endpoint that plays one catalog case over one TCP connection.

It mirrors the mechanics of Autobahn|Testsuite's fuzzing peer, so that verdicts mean the same:

* the case sends frames (any bytes, optionally in chops), arms timers (`kill_after`,
  `close_after`, `continue_later`) and lists the event sequences it accepts per behaviour;
* the harness records what the peer sends (`message`, `ping`, `pong`; `timeout` markers that
  the case adds itself) and answers pings with pongs and closes with closes, like a conforming
  endpoint;
* when the connection is gone, the recorded events are compared with the expected sequences
  (-> behaviour) and the close handshake is judged (-> close behaviour): who closed first,
  whether it was clean (close frames both ways and the *server* dropped TCP), which code the
  peer sent.

Single-threaded: one non-blocking socket, `select`, a timer heap and an output queue. Every
wait is bounded; a hard per-case deadline drops the connection whatever happens.
"""

from __future__ import annotations

import heapq
import itertools
import os
import select
import socket
import time
from collections import Counter, deque

from . import deflate as D
from . import frames as F

OPEN, CLOSING, CLOSED = "OPEN", "CLOSING", "CLOSED"

# Behaviours (same words and meaning as Autobahn|Testsuite).
OK = "OK"
NON_STRICT = "NON-STRICT"
INFORMATIONAL = "INFORMATIONAL"
FAILED = "FAILED"
UNIMPLEMENTED = "UNIMPLEMENTED"
# Close behaviours.
WRONG_CODE = "WRONG CODE"
UNCLEAN = "UNCLEAN"
FAILED_BY_CLIENT = "FAILED BY CLIENT"

CLOSE_HANDSHAKE_TIMEOUT = 1.0   # we sent close: the peer must answer within this
SERVER_DROP_TIMEOUT = 1.0       # harness is the client: the server must drop TCP within this
WIRELOG_MAX_PER_KIND = 12         # first N sent frames, N received frames, N events
WIRELOG_MAX_BYTES = 64
SYNC_PAUSE = 0.002              # pause after a "sync" chunk so it travels alone


class Peer:
    """One harness endpoint. `is_server` is the harness's role (the peer has the other one)."""

    def __init__(self, sock: socket.socket, is_server: bool, leftover: bytes = b"",
                 deflate: "D.Codec | None" = None, deflate_info: dict | None = None):
        self.sock = sock
        self.sock.setblocking(False)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.is_server = is_server
        self.state = OPEN
        self.reader = F.FrameReader()
        self.pending_input = leftover

        self.closed_by_me = False       # we sent the first close frame
        self.failed_by_me = False       # we failed the connection (dropped it on a timer/violation)
        self.dropped_by_me = False      # we closed the TCP connection first
        self.was_clean = False
        self.not_clean_reason = None
        self.close_sent = False
        self.close_received = False
        self.local_close_code = None
        self.local_close_reason = None
        self.remote_close_code = None
        self.remote_close_reason = None
        self.peer_dropped_tcp = False
        self.killed_by_timer = False
        self.hard_timeout_hit = False
        self.case_timeout_note = None

        self.out: deque = deque()        # (bytes, pause_after)
        self.pause_until = 0.0
        self.drop_when_flushed = False
        self.timers: list = []
        self._seq = itertools.count()
        self.frag_opcode = None
        self.frag_buf = bytearray()
        self.violations: list[str] = []
        self.wirelog: list[str] = []
        self._log_counts: Counter = Counter()
        self.wirelog_enabled = True
        self.tx_frame_stats: Counter = Counter()
        self.rx_octets = 0
        self.tx_octets = 0
        self.case = None
        self.done = False
        # permessage-deflate (sections 12/13): the agreed codec, or None (then any RSV bit is a
        # violation); what was offered/answered; octet counts of payloads and of their
        # compressed form on the wire.
        self.deflate = deflate
        self.deflate_info = deflate_info if deflate_info is not None else {}
        self.frag_compressed = False
        self.deflate_stats: Counter = Counter()

    # ------------------------------------------------------------------------------- logging
    def log(self, line: str) -> None:
        # Separate budgets for sent frames, received frames and events, so a case that sends
        # thousands of frames still shows the first frames the peer sent back and how it ended.
        kind = line[:2]
        if self.wirelog_enabled and self._log_counts[kind] < WIRELOG_MAX_PER_KIND:
            self._log_counts[kind] += 1
            self.wirelog.append(line)

    def logging(self, kind: str) -> bool:
        """Whether a line of this kind ('TX', 'RX', '--') would still be logged (saves formatting
        thousands of frames that the budget drops anyway)."""
        return self.wirelog_enabled and self._log_counts[kind] < WIRELOG_MAX_PER_KIND

    @staticmethod
    def _hex(b: bytes) -> str:
        h = b[:WIRELOG_MAX_BYTES].hex()
        return h + (" ..." if len(b) > WIRELOG_MAX_BYTES else "")

    # ------------------------------------------------------------------------------ sending
    def _mask_key(self, mask):
        if mask is None:
            mask = not self.is_server     # a client masks, a server does not
        if mask is True:
            return os.urandom(4)
        if mask is False:
            return None
        return mask                       # explicit 4-byte key

    def send_raw(self, data: bytes, chopsize: int | None = None, sync: bool = False) -> None:
        if self.state == CLOSED:
            return
        if chopsize and chopsize > 0:
            pause = sync or chopsize < 16
            for i in range(0, len(data), chopsize):
                self.out.append((data[i:i + chopsize], pause))
        else:
            self.out.append((data, sync))
        self.tx_octets += len(data)

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                   mask=None, payload_len: int | None = None, chopsize: int | None = None,
                   sync: bool = False, length_override: int | None = None) -> None:
        """Send one frame exactly as described (never validated). `payload_len` repeats
        `payload` up to that length, like Autobahn's sendFrame."""
        if self.state == CLOSED:
            return
        if payload_len is not None:
            reps = payload_len // max(1, len(payload)) + 1
            payload = (payload * reps)[:payload_len]
        key = self._mask_key(mask)
        data = F.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key,
                              length_override=length_override)
        self.tx_frame_stats[opcode] += 1
        if self.logging("TX"):
            desc = F.Frame(fin, rsv, opcode, key is not None, key, payload).summary()
            extra = f" chop={chopsize}" if chopsize else ""
            self.log(f"TX {desc}{extra}: {self._hex(data)}")
        self.send_raw(data, chopsize=chopsize, sync=sync)

    def send_message(self, payload: bytes, binary: bool = False,
                     fragment_size: int | None = None, chopsize: int | None = None) -> None:
        """Send a message, fragmented into frames of `fragment_size` octets if given. With
        permessage-deflate agreed, the message is compressed first, the compressed payload is
        fragmented (as Autobahn's autoFragmentSize does) and RSV1 is set on the first frame."""
        op = F.OP_BINARY if binary else F.OP_TEXT
        rsv = 0
        if self.deflate is not None and self.state != CLOSED:
            wire = self.deflate.compress(payload)
            self.deflate_stats["tx_messages"] += 1
            self.deflate_stats["tx_payload_octets"] += len(payload)
            self.deflate_stats["tx_wire_octets"] += len(wire)
            if self.deflate_stats["tx_messages"] <= 3:
                self.log(f"-- sending message #{self.deflate_stats['tx_messages']}: {len(payload)} octets "
                         f"deflated to {len(wire)}")
            payload, rsv = wire, 4
        if not fragment_size or fragment_size >= len(payload):
            self.send_frame(op, payload, rsv=rsv, chopsize=chopsize)
            return
        for i in range(0, len(payload), fragment_size):
            last = i + fragment_size >= len(payload)
            self.send_frame(op if i == 0 else F.OP_CONT, payload[i:i + fragment_size],
                            fin=last, rsv=rsv if i == 0 else 0, chopsize=chopsize)

    def send_close_frame(self, code: int | None = None, reason: bytes = b"",
                         payload: bytes | None = None) -> None:
        """Start the closing handshake (only while OPEN), with any code/reason bytes."""
        if self.state != OPEN:
            return
        if payload is None:
            payload = b"" if code is None else code.to_bytes(2, "big") + reason
        self.send_frame(F.OP_CLOSE, payload)
        self.state = CLOSING
        self.closed_by_me = True
        self.close_sent = True
        self.local_close_code = code
        self.local_close_reason = reason
        self.call_later(CLOSE_HANDSHAKE_TIMEOUT, self._close_handshake_timeout)

    def send_close(self, code: int | None = 1000, reason: bytes = b"") -> None:
        self.send_close_frame(code, reason)

    # ------------------------------------------------------------------------------- timers
    def call_later(self, delay: float, fn, *args) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self._seq), fn, args))

    def kill_after(self, delay: float) -> None:
        def kill():
            if self.state != CLOSED:
                self.log(f"-- kill timer ({delay}s) fired: harness drops TCP")
                self.killed_by_timer = True
                self.failed_by_me = True
                self.drop("killed by the case timer")
        self.call_later(delay, kill)

    def close_after(self, delay: float) -> None:
        def close():
            if self.state == OPEN:
                self.log(f"-- close timer ({delay}s) fired: harness starts closing handshake")
                self.send_close(1000)
        self.call_later(delay, close)

    def continue_later(self, delay: float, fn, tag=None) -> None:
        def go():
            if self.state != CLOSED:
                self.log(f"-- continue {tag or ''} after {delay}s")
                fn()
        self.call_later(delay, go)

    def _close_handshake_timeout(self) -> None:
        if self.state != CLOSED and not self.close_received:
            self.not_clean_reason = "peer did not answer our close frame in time"
            self.drop(self.not_clean_reason)

    # ------------------------------------------------------------------------------- closing
    def drop(self, reason: str) -> None:
        if self.state == CLOSED:
            return
        self.log(f"-- harness drops TCP ({reason})")
        self.dropped_by_me = True
        if not (self.close_sent and self.close_received):
            self.was_clean = False
            self.not_clean_reason = self.not_clean_reason or reason
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.state = CLOSED
        self.done = True

    def _peer_closed_tcp(self, how: str) -> None:
        if self.state == CLOSED:
            return
        self.log(f"-- peer closed TCP ({how})")
        self.peer_dropped_tcp = True
        if self.close_sent and self.close_received:
            self.was_clean = True
        else:
            self.was_clean = False
            self.not_clean_reason = self.not_clean_reason or f"peer dropped TCP ({how}) without closing handshake"
        try:
            self.sock.close()
        except OSError:
            pass
        self.state = CLOSED
        self.done = True

    def _after_close_handshake(self) -> None:
        if self.is_server:
            # The server drops TCP once the handshake is complete and the reply flushed.
            self.drop_when_flushed = True
            self.was_clean = True
        else:
            def server_should_have_dropped():
                if self.state != CLOSED:
                    self.not_clean_reason = "server did not drop TCP after the closing handshake"
                    self.drop(self.not_clean_reason)
            self.call_later(SERVER_DROP_TIMEOUT, server_should_have_dropped)

    # ------------------------------------------------------------------------------ receiving
    def violation(self, what: str) -> None:
        self.violations.append(what)
        self.log(f"-- peer protocol violation: {what}")

    def _on_frame(self, fr: F.Frame) -> None:
        if not self.logging("RX"):
            pass
        elif fr.masked:
            self.log(f"RX {fr.summary()}: {self._hex(fr.header)} | unmasked payload {self._hex(fr.payload)}")
        else:
            self.log(f"RX {fr.summary()}: {self._hex(fr.header + fr.payload)}")
        if self.close_received:
            return                          # nothing after the peer's close frame counts
        must_mask = self.is_server
        if fr.masked != must_mask:
            self.violation("server sent a masked frame" if fr.masked else "client sent an unmasked frame")
        op = fr.opcode
        compressed = False
        if fr.rsv:
            if self.deflate is None:
                self.violation(f"RSV bits {fr.rsv} set without an extension")
            elif fr.rsv != 4:
                self.violation(f"RSV bits {fr.rsv} set: permessage-deflate claims RSV1 only")
            elif op in (F.OP_TEXT, F.OP_BINARY):
                compressed = True
            elif op == F.OP_CONT:
                self.violation("RSV1 set on a continuation frame (RFC 7692 §6: first frame of a message only)")
            else:
                self.violation("RSV1 set on a control frame (RFC 7692 §6.1)")
        if op >= 8:
            if op not in (F.OP_CLOSE, F.OP_PING, F.OP_PONG):
                self.violation(f"reserved control opcode {op}")
                return
            if not fr.fin:
                self.violation("fragmented control frame")
            if len(fr.payload) > 125:
                self.violation("control frame payload > 125 bytes")
            if op == F.OP_PING:
                if self.state == OPEN:
                    self.send_frame(F.OP_PONG, fr.payload)
                self.case.on_ping(self, fr.payload)
            elif op == F.OP_PONG:
                self.case.on_pong(self, fr.payload)
            else:
                self._on_close_frame(fr.payload)
            return
        if op not in (F.OP_CONT, F.OP_TEXT, F.OP_BINARY):
            self.violation(f"reserved data opcode {op}")
            return
        if op == F.OP_CONT:
            if self.frag_opcode is None:
                self.violation("continuation frame without a message to continue")
                return
        else:
            if self.frag_opcode is not None:
                self.violation("new data frame inside a fragmented message")
            self.frag_opcode = op
            self.frag_buf = bytearray()
            self.frag_compressed = compressed
        self.frag_buf += fr.payload
        if fr.fin:
            data = bytes(self.frag_buf)
            binary = self.frag_opcode == F.OP_BINARY
            self.frag_opcode = None
            self.frag_buf = bytearray()
            if self.deflate is not None:
                st = self.deflate_stats
                if self.frag_compressed:
                    try:
                        wire, data = data, self.deflate.decompress(data)
                    except D.InflateError as e:
                        pr = self.deflate.params
                        self.violation(
                            f"compressed message #{st['rx_messages'] + 1} cannot be inflated with the agreed "
                            f"parameters (peer window 2^{self.deflate.rx_bits}, peer "
                            f"{'resets' if self.deflate.rx_reset else 'keeps'} its context per message; "
                            f"agreed: {pr.response!r}): {e}")
                        self.failed_by_me = True
                        self.drop("undecodable compressed message")
                        return
                    st["rx_wire_octets"] += len(wire)
                    st["rx_payload_octets"] += len(data)
                else:
                    st["rx_uncompressed_messages"] += 1
                    st["rx_wire_octets"] += len(data)
                    st["rx_payload_octets"] += len(data)
                st["rx_messages"] += 1
                if st["rx_messages"] <= 3:
                    n_wire = len(wire) if self.frag_compressed else len(data)
                    self.log(f"-- received message #{st['rx_messages']}: {n_wire} octets on the wire -> "
                             f"{len(data)}{' inflated' if self.frag_compressed else ' (sent uncompressed)'}")
            if not binary:
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    self.violation("text message with invalid UTF-8")
            self.case.on_message(self, data, binary)

    def _on_close_frame(self, payload: bytes) -> None:
        self.close_received = True
        if len(payload) >= 2:
            self.remote_close_code = int.from_bytes(payload[:2], "big")
            self.remote_close_reason = payload[2:]
        elif len(payload) == 1:
            self.violation("close frame with a 1-byte payload")
        self.log(f"-- peer close: code={self.remote_close_code}")
        if self.state == OPEN:
            # The peer starts the closing handshake: answer (Autobahn answers with 1000).
            self.state = CLOSING
            self.closed_by_me = False
            reply_code = None if self.remote_close_code is None else 1000
            reply = b"" if reply_code is None else reply_code.to_bytes(2, "big")
            self.send_frame(F.OP_CLOSE, reply)
            self.close_sent = True
            self.local_close_code = reply_code
        self._after_close_handshake()

    def _feed(self, data: bytes) -> None:
        self.rx_octets += len(data)
        self.reader.feed(data)
        while self.state != CLOSED:
            try:
                fr = self.reader.next_frame()
            except ValueError as e:
                self.violation(str(e))
                self.failed_by_me = True
                self.drop(str(e))
                return
            if fr is None:
                return
            self._on_frame(fr)

    # -------------------------------------------------------------------------------- loop
    def run(self, case, hard_timeout: float) -> None:
        self.case = case
        deadline = time.monotonic() + hard_timeout
        case.on_open(self)
        if self.pending_input:
            data, self.pending_input = self.pending_input, b""
            self._feed(data)
        while not self.done:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now and not self.done:
                _, _, fn, args = heapq.heappop(self.timers)
                fn(*args)
            if self.done:
                break
            if now >= deadline:
                self.hard_timeout_hit = True
                self.failed_by_me = True
                self.drop(f"hard case timeout ({hard_timeout:.0f}s)")
                break
            if self.drop_when_flushed and not self.out:
                self.drop("closing handshake complete (server drops TCP)")
                break
            wake = deadline
            if self.timers:
                wake = min(wake, self.timers[0][0])
            want_write = bool(self.out)
            if want_write and self.pause_until > now:
                wake = min(wake, self.pause_until)
                want_write = False
            timeout = max(0.0, wake - now)
            try:
                r, w, _ = select.select([self.sock], [self.sock] if want_write else [], [], timeout)
            except (OSError, ValueError):
                self._peer_closed_tcp("socket error")
                break
            if r:
                try:
                    data = self.sock.recv(1 << 20)
                except BlockingIOError:
                    data = None
                except OSError as e:
                    self._peer_closed_tcp(f"reset: {e.strerror or e}")
                    break
                if data == b"":
                    self._peer_closed_tcp("EOF")
                    break
                if data:
                    self._feed(data)
            if w and self.out and not self.done:
                self._write_some()

    def _write_some(self) -> None:
        # Write whole chunks while the socket accepts them; a chunk with a pause flag ends
        # the burst, so it leaves in its own TCP segment.
        budget = 4 << 20
        while self.out and budget > 0:
            chunk, pause = self.out[0]
            try:
                n = self.sock.send(chunk)
            except BlockingIOError:
                return
            except OSError as e:
                self._peer_closed_tcp(f"send failed: {e.strerror or e}")
                return
            budget -= n
            if n < len(chunk):
                self.out[0] = (chunk[n:], pause)
                return
            self.out.popleft()
            if pause:
                self.pause_until = time.monotonic() + SYNC_PAUSE
                return
