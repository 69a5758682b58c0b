"""RFC 6455 framing and opening handshake, written for a test harness.

Nothing here validates what it is asked to *send*: the harness must be able to put any byte
sequence on the wire (reserved bits, reserved opcodes, oversized control frames, wrong masking).
The parser, on the other hand, reports every rule the *peer* breaks, so a case can fail on it.
Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODE_NAMES = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}


def opcode_name(op: int) -> str:
    return OPCODE_NAMES.get(op, f"RESERVED-{op:X}")


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR `data` with the 4-byte `key` repeated (RFC 6455 §5.3). Fast for large payloads."""
    n = len(data)
    if n == 0:
        return b""
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                 mask_key: bytes | None = None, length_override: int | None = None) -> bytes:
    """Serialise one frame exactly as asked (no validation).

    `length_override` writes a different value into the length field than the real payload
    length (used to send a 64-bit length with its most significant bit set).
    """
    b0 = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    n = len(payload) if length_override is None else length_override
    mbit = 0x80 if mask_key is not None else 0
    if n <= 125:
        head = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if mask_key is not None:
        return head + mask_key + apply_mask(payload, mask_key)
    return head + payload


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    mask_key: bytes | None
    payload: bytes
    header: bytes = b""

    def summary(self) -> str:
        flags = "FIN" if self.fin else "---"
        rsv = f" RSV={self.rsv}" if self.rsv else ""
        mask = " MASKED" if self.masked else ""
        return f"{opcode_name(self.opcode)} {flags}{rsv}{mask} len={len(self.payload)}"


class FrameReader:
    """Incremental frame parser over a growing buffer. Unmasks payloads.

    Raises nothing for protocol violations: it returns frames as they are and lets the caller
    judge them; it only refuses a length field with the MSB set (it cannot be parsed).
    """

    def __init__(self, max_frame: int = 64 * 1024 * 1024):
        self.buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next_frame(self) -> Frame | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n = int.from_bytes(buf[2:4], "big")
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n = int.from_bytes(buf[2:10], "big")
            pos = 10
            if n >> 63:
                raise ValueError("64-bit payload length with most significant bit set")
        if n > self.max_frame:
            raise ValueError(f"frame of {n} bytes exceeds the harness limit")
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos:pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        header = bytes(buf[:pos])
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        if key is not None:
            payload = apply_mask(payload, key)
        return Frame(fin=bool(b0 & 0x80), rsv=(b0 >> 4) & 7, opcode=b0 & 0xF, masked=masked,
                     mask_key=key, payload=payload, header=header)


# ---------------------------------------------------------------------------------------------
# Opening handshake (RFC 6455 §4)

def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def client_request(host: str, port: int, path: str = "/",
                   extra_headers: dict | None = None) -> tuple[bytes, str]:
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (extra_headers or {}).items())
    req = (f"GET {path} HTTP/1.1\r\n"
           f"Host: {host}:{port}\r\n"
           "Upgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\n"
           "Sec-WebSocket-Version: 13\r\n"
           "User-Agent: ws-conformance-harness\r\n"
           f"{extra}"
           "\r\n")
    return req.encode("ascii"), key


@dataclass
class HttpHead:
    start_line: str
    headers: dict = field(default_factory=dict)  # lower-case name -> value (last wins, except
                                                 # Sec-WebSocket-Extensions: joined with ", ")
    raw: bytes = b""


def parse_head(raw: bytes) -> HttpHead:
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    head = HttpHead(start_line=lines[0], raw=raw)
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "sec-websocket-extensions" and head.headers.get(name):
            head.headers[name] += ", " + value.strip()    # a list header may be split (RFC 7230 §3.2.2)
        else:
            head.headers[name] = value.strip()
    return head


def check_server_response(head: HttpHead, key: str, extensions_offered: bool = False) -> str | None:
    """Return None if the 101 response is acceptable, else a reason."""
    parts = head.start_line.split(" ", 2)
    if len(parts) < 2 or parts[1] != "101":
        return f"expected status 101, got {head.start_line!r}"
    if head.headers.get("upgrade", "").lower() != "websocket":
        return "missing 'Upgrade: websocket'"
    if "upgrade" not in [t.strip().lower() for t in head.headers.get("connection", "").split(",")]:
        return "missing 'Connection: Upgrade'"
    if head.headers.get("sec-websocket-accept") != accept_value(key):
        return "wrong Sec-WebSocket-Accept"
    if head.headers.get("sec-websocket-extensions") and not extensions_offered:
        return "server accepted an extension the harness did not offer"
    return None


def server_response(request: HttpHead, extensions: str | None = None) -> tuple[bytes, str | None]:
    """Build the answer to a client's upgrade request; (response bytes, error or None)."""
    h = request.headers
    key = h.get("sec-websocket-key")
    problems = []
    if not request.start_line.startswith("GET "):
        problems.append("method is not GET")
    if h.get("upgrade", "").lower() != "websocket":
        problems.append("missing 'Upgrade: websocket'")
    if "upgrade" not in [t.strip().lower() for t in h.get("connection", "").split(",")]:
        problems.append("missing 'Connection: Upgrade'")
    if h.get("sec-websocket-version") != "13":
        problems.append("Sec-WebSocket-Version is not 13")
    if not key or len(base64.b64decode(key + "==")[:17]) != 16:
        problems.append("bad Sec-WebSocket-Key")
    if problems:
        body = "; ".join(problems)
        return (f"HTTP/1.1 400 Bad Request\r\nContent-Length: {len(body)}\r\n"
                f"Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n{body}").encode(), body
    resp = ("HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_value(key)}\r\n"
            + (f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else "")
            + "Server: ws-conformance-harness\r\n"
            "\r\n")
    return resp.encode("ascii"), None


def parse_request_target(start_line: str) -> tuple[str, dict]:
    """'GET /runCase?case=3&agent=x HTTP/1.1' -> ('/runCase', {'case': '3', 'agent': 'x'})."""
    from urllib.parse import parse_qs, urlsplit
    m = re.match(r"^\S+\s+(\S+)", start_line)
    target = m.group(1) if m else "/"
    parts = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return parts.path or "/", query
