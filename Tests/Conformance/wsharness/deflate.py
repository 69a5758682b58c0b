"""permessage-deflate (RFC 7692) for the harness, in both roles, on the standard library's zlib.

* `parse_extensions` / `format_extension`: the Sec-WebSocket-Extensions grammar of RFC 6455 §9.1
  (tokens, `;` parameters, values as tokens or quoted strings).
* `Offer`: one permessage-deflate offer the harness sends as a client.
* `check_response(offers, header)`: the harness as a client validates the server's answer
  (RFC 7692 §7.1: known parameters only, each at most once, values 8..15 without leading
  zeroes, and the answer must accept one of the offers: every server_* parameter that offer
  carries echoed, server_max_window_bits not above the offered value, client_max_window_bits
  only if offered) and returns the agreed `Params`.
* `negotiate(header, accepts)`: the harness as a server answers a client's offers the way
  Autobahn's fuzzing server does for a case: it takes the first acceptable offer for the first
  (client_no_context_takeover, client_max_window_bits) pair of the case that the offer allows,
  echoes the server_* parameters the client asked for, and adds the case's client_* parameters.
* `Codec`: compresses outgoing and inflates incoming messages with the agreed parameters: raw
  deflate (negative wbits), Z_SYNC_FLUSH with the trailing 00 00 ff ff removed, 00 00 ff ff
  appended before inflating, a fresh compressor / decompressor per message where the agreed
  parameters forbid context takeover.

Two details that zlib forces:

* zlib cannot raw-deflate with a window of 2^8 (deflateInit2 rejects wbits=-8). When the harness
  must compress within 8 bits, it uses wbits=-9 with the Z_RLE strategy, which only ever emits
  matches at distance 1, so the output fits any window.
* zlib's inflate only checks a distance against the window when the distance reaches back past
  the output of the current inflate() call. To detect a peer that compresses with a larger
  window than it agreed to, the harness inflates in output slices of a quarter of the agreed
  window when that window is smaller than 2^15: a match that reaches back more than 1.25 times
  the agreed window then fails with "invalid distance too far back".
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

EXTENSION = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"
DEFAULT_BITS = 15
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
          "server_max_window_bits", "client_max_window_bits")


class ExtensionSyntaxError(ValueError):
    pass


def parse_extensions(value: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """'a; x=1; y, b' -> [('a', [('x', '1'), ('y', None)]), ('b', [])] (names lower-cased)."""
    out: list[tuple[str, list[tuple[str, str | None]]]] = []
    s = value
    i, n = 0, len(s)

    def skip_ws(i):
        while i < n and s[i] in " \t":
            i += 1
        return i

    def token(i):
        m = _TOKEN.match(s, i)
        if not m:
            raise ExtensionSyntaxError(f"expected a token at offset {i} in {value!r}")
        return m.group(0), m.end()

    i = skip_ws(i)
    if i == n:
        return out
    while True:
        i = skip_ws(i)
        name, i = token(i)
        params: list[tuple[str, str | None]] = []
        i = skip_ws(i)
        while i < n and s[i] == ";":
            i = skip_ws(i + 1)
            pname, i = token(i)
            i = skip_ws(i)
            pval = None
            if i < n and s[i] == "=":
                i = skip_ws(i + 1)
                if i < n and s[i] == '"':
                    j = i + 1
                    buf = []
                    while j < n and s[j] != '"':
                        if s[j] == "\\" and j + 1 < n:
                            j += 1
                        buf.append(s[j])
                        j += 1
                    if j >= n:
                        raise ExtensionSyntaxError(f"unterminated quoted string in {value!r}")
                    pval = "".join(buf)
                    if not _TOKEN.fullmatch(pval):
                        raise ExtensionSyntaxError(f"quoted value {pval!r} is not a token (RFC 6455 §9.1)")
                    i = j + 1
                else:
                    pval, i = token(i)
                i = skip_ws(i)
            params.append((pname.lower(), pval))
        out.append((name.lower(), params))
        if i == n:
            return out
        if s[i] != ",":
            raise ExtensionSyntaxError(f"unexpected {s[i]!r} at offset {i} in {value!r}")
        i += 1


def _bits(value: str | None, allow_none: bool) -> int | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError("needs a value")
    if not re.fullmatch(r"[1-9][0-9]*", value) or not 8 <= int(value) <= 15:
        raise ValueError(f"value {value!r} is not an integer 8..15 without leading zeroes")
    return int(value)


@dataclass
class Elem:
    """The permessage-deflate parameters of one offer or response element."""
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = None   # True: present without a value (offers only)

    @classmethod
    def from_params(cls, params, response: bool) -> "Elem":
        e = cls()
        seen = set()
        for name, value in params:
            if name not in PARAMS:
                raise ValueError(f"unknown parameter {name!r}")
            if name in seen:
                raise ValueError(f"parameter {name!r} appears more than once")
            seen.add(name)
            try:
                if name.endswith("no_context_takeover"):
                    if value is not None:
                        raise ValueError("takes no value")
                    setattr(e, name, True)
                elif name == "server_max_window_bits":
                    e.server_max_window_bits = _bits(value, allow_none=False)
                else:
                    b = _bits(value, allow_none=not response)
                    e.client_max_window_bits = True if b is None else b
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        return e

    def header(self) -> str:
        s = EXTENSION
        if self.server_no_context_takeover:
            s += "; server_no_context_takeover"
        if self.client_no_context_takeover:
            s += "; client_no_context_takeover"
        if self.server_max_window_bits is not None:
            s += f"; server_max_window_bits={self.server_max_window_bits}"
        if self.client_max_window_bits is True:
            s += "; client_max_window_bits"
        elif self.client_max_window_bits:
            s += f"; client_max_window_bits={self.client_max_window_bits}"
        return s


def Offer(server_no_context_takeover=False, server_max_window_bits=None,
          client_max_window_bits=True, client_no_context_takeover=False) -> Elem:
    """A client offer. Default: 'permessage-deflate; client_max_window_bits' (a browser's offer)."""
    return Elem(server_no_context_takeover, client_no_context_takeover, server_max_window_bits,
                client_max_window_bits)


@dataclass
class Params:
    """Agreed parameters of one connection."""
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = DEFAULT_BITS
    client_max_window_bits: int = DEFAULT_BITS
    response: str = ""         # the Sec-WebSocket-Extensions value that established them
    offer_index: int = 0       # which of the offers was accepted (harness as client)

    def as_dict(self) -> dict:
        return {"response": self.response, "offer_index": self.offer_index,
                "server_no_context_takeover": self.server_no_context_takeover,
                "client_no_context_takeover": self.client_no_context_takeover,
                "server_max_window_bits": self.server_max_window_bits,
                "client_max_window_bits": self.client_max_window_bits}


def offers_header(offers: list[Elem]) -> str:
    return ", ".join(o.header() for o in offers)


def check_response(offers: list[Elem], value: str | None) -> tuple[Params | None, str | None]:
    """The harness as client: (agreed params, None), (None, None) if the server accepted no
    extension, or (None, reason) if the answer is invalid (the client must fail the connection)."""
    if value is None or not value.strip():
        return None, None
    try:
        elems = parse_extensions(value)
    except ExtensionSyntaxError as e:
        return None, f"unparsable Sec-WebSocket-Extensions {value!r}: {e}"
    names = [n for n, _ in elems]
    others = [n for n in names if n != EXTENSION]
    if others:
        return None, f"server accepted extension(s) the harness did not offer: {', '.join(others)}"
    if len(elems) > 1:
        return None, f"server accepted {EXTENSION} {len(elems)} times: {value!r}"
    try:
        r = Elem.from_params(elems[0][1], response=True)
    except ValueError as e:
        return None, f"invalid {EXTENSION} response {value!r}: {e}"
    for idx, o in enumerate(offers):
        if o.server_no_context_takeover and not r.server_no_context_takeover:
            continue
        if o.server_max_window_bits is not None and (
                r.server_max_window_bits is None or r.server_max_window_bits > o.server_max_window_bits):
            continue
        if r.client_max_window_bits is not None and not o.client_max_window_bits:
            continue
        if isinstance(o.client_max_window_bits, int) and o.client_max_window_bits is not True \
                and r.client_max_window_bits is not None and r.client_max_window_bits > o.client_max_window_bits:
            continue
        return Params(r.server_no_context_takeover, r.client_no_context_takeover or o.client_no_context_takeover,
                      r.server_max_window_bits or DEFAULT_BITS,
                      r.client_max_window_bits if isinstance(r.client_max_window_bits, int)
                      and r.client_max_window_bits is not True else DEFAULT_BITS,
                      response=value, offer_index=idx), None
    return None, (f"response {value!r} accepts none of the offers "
                  f"({offers_header(offers)!r}): RFC 7692 §7.1 (a server_* parameter of the offer not "
                  "echoed, server_max_window_bits above the offered value, or client_max_window_bits "
                  "not offered)")


def negotiate(value: str | None, accepts: list[tuple[bool, int | None]]
              ) -> tuple[str | None, Params | None, str]:
    """The harness as server. `accepts`: the case's (client_no_context_takeover,
    client_max_window_bits) choices in order of preference. Returns (response header or None,
    agreed params or None, a note on what happened)."""
    if not value:
        return None, None, "the client offered no extension"
    try:
        elems = parse_extensions(value)
    except ExtensionSyntaxError as e:
        return None, None, f"unparsable Sec-WebSocket-Extensions from the client: {e}"
    offers = []
    notes = []
    for name, params in elems:
        if name != EXTENSION:
            continue
        try:
            offers.append(Elem.from_params(params, response=False))
        except ValueError as e:
            notes.append(f"declined an invalid offer: {e}")
    if not offers:
        return None, None, "; ".join(notes) or f"the client offered no {EXTENSION}"
    for client_nct, client_bits in accepts:
        for o in offers:
            if client_bits is not None and not o.client_max_window_bits:
                continue            # the client did not say it can limit its window
            r = Elem(server_no_context_takeover=o.server_no_context_takeover,
                     client_no_context_takeover=client_nct,
                     server_max_window_bits=o.server_max_window_bits,
                     client_max_window_bits=client_bits)
            header = r.header()
            p = Params(o.server_no_context_takeover, client_nct or o.client_no_context_takeover,
                       o.server_max_window_bits or DEFAULT_BITS, client_bits or DEFAULT_BITS, response=header,
                       offer_index=offers.index(o))
            return header, p, "; ".join(notes + [f"accepted offer #{offers.index(o) + 1}"])
    return None, None, "; ".join(notes + ["no offer allows the parameters of this case "
                                          "(client_max_window_bits was not offered)"])


class InflateError(Exception):
    pass


class Codec:
    """Compression state of one connection for the harness's role."""

    def __init__(self, params: Params, is_server: bool, level: int = zlib.Z_DEFAULT_COMPRESSION,
                 max_message: int = 64 * 1024 * 1024):
        self.params = params
        self.is_server = is_server
        if is_server:
            self.tx_bits, self.tx_reset = params.server_max_window_bits, params.server_no_context_takeover
            self.rx_bits, self.rx_reset = params.client_max_window_bits, params.client_no_context_takeover
        else:
            self.tx_bits, self.tx_reset = params.client_max_window_bits, params.client_no_context_takeover
            self.rx_bits, self.rx_reset = params.server_max_window_bits, params.server_no_context_takeover
        self.level = level
        self.max_message = max_message
        self._c = None
        self._d = None
        self._history = b""     # last 2^rx_bits octets inflated (to continue after a BFINAL block)
        # Inflate in slices of a quarter window when the window is limited (see module doc).
        self._slice = (1 << self.rx_bits) // 4 if self.rx_bits < 15 else 0

    def _compressor(self):
        if self.tx_bits <= 8:
            return zlib.compressobj(self.level, zlib.DEFLATED, -9, 8, zlib.Z_RLE)
        return zlib.compressobj(self.level, zlib.DEFLATED, -self.tx_bits, 8)

    def compress(self, payload: bytes) -> bytes:
        if self._c is None or self.tx_reset:
            self._c = self._compressor()
        data = self._c.compress(payload) + self._c.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL)
        return data[:-4]

    def _decompressor(self):
        if self._history and not self.rx_reset:
            return zlib.decompressobj(-self.rx_bits, zdict=self._history)
        return zlib.decompressobj(-self.rx_bits)

    def decompress(self, data: bytes) -> bytes:
        if self.rx_reset:
            self._history = b""
            self._d = None
        if self._d is None:
            self._d = self._decompressor()
        d = self._d
        data = data + TAIL
        out = []
        total = 0
        try:
            if self._slice:
                buf = data
                while True:
                    chunk = d.decompress(buf, self._slice)
                    out.append(chunk)
                    total += len(chunk)
                    if total > self.max_message:
                        raise InflateError(f"inflated message exceeds {self.max_message} octets")
                    buf = d.unconsumed_tail
                    if d.eof or (not buf and len(chunk) < self._slice) or (not buf and not chunk):
                        break
            else:
                chunk = d.decompress(data, self.max_message + 1)
                out.append(chunk)
                total = len(chunk)
                if total > self.max_message or d.unconsumed_tail:
                    raise InflateError(f"inflated message exceeds {self.max_message} octets")
        except zlib.error as e:
            raise InflateError(f"zlib: {e}") from None
        result = b"".join(out)
        if d.eof:
            # The peer ended the deflate stream (a block with BFINAL = 1). RFC 7692 §7.2.3.4
            # allows it; what follows the final block must be our appended tail, and the
            # next message continues with the same sliding window (unless reset).
            rest = d.unused_data
            if rest and rest != TAIL[:len(rest)]:
                raise InflateError(f"{len(rest)} octets after a final deflate block")
            self._d = None
            if not self.rx_reset:
                self._history = (self._history + result)[-(1 << self.rx_bits):]
        elif not self.rx_reset:
            # Keep the window, in case a later message ends the stream with BFINAL.
            self._history = (self._history + result)[-(1 << self.rx_bits):] if len(result) < (1 << 15) \
                else result[-(1 << self.rx_bits):]
        return result
