"""The case catalog: Autobahn|Testsuite numbering and semantics for sections 1-7, 9 and 10,
plus a few harness-only cases (section H) for RFC 6455 rules Autobahn does not exercise.

Each case is a CaseSpec whose `setup(run, p)` sends frames through the harness peer `p`, arms
its timers and declares the expected event sequences per behaviour and the expected close.
Sizes, fragmentations, chop sizes, payloads and expectations follow the Autobahn case
definitions; the code is our own.
"""

from __future__ import annotations

import time

from dataclasses import dataclass, field

from . import deflate as D
from . import frames as F
from . import testdata
from .cases import (INVALID_PAYLOAD, NORMAL, PROTOCOL_ERROR, CaseSpec, clean_close,
                    informational, peer_fails, wrong_code_is_failure)
from .engine import FAILED, NON_STRICT, OK, OPEN, UNIMPLEMENTED

KiB, MiB = 1024, 1024 * 1024
DEFAULT_CAP = 1 * MiB

SECTION_TITLES = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc (auto-fragmentation)",
    "12": "WebSocket Compression (different payloads)",
    "13": "WebSocket Compression (different parameters)",
    "H": "Harness extensions (not in Autobahn)",
}

HELLO = b"Hello, world!"
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"          # κόσμε
INVALID_KOSME = KOSME + b"\xed\xa0\x80" + b"edited"            # with a UTF-16 surrogate


def _spec(cases, id, desc, expect, setup, **kw):
    cases.append(CaseSpec(id, desc, expect, setup, **kw))


# ---------------------------------------------------------------------------------- section 1
def section1(cases):
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for major, (kind, op, unit, binary) in enumerate(
            [("text", F.OP_TEXT, b"*", False), ("binary", F.OP_BINARY, b"\xfe", True)], start=1):
        variants = [(s, None) for s in sizes] + [(65536, 997)]
        for minor, (n, chop) in enumerate(variants, start=1):
            payload = unit * n
            chop_txt = f" Sent out data in chops of {chop} octets." if chop else ""

            def setup(run, p, payload=payload, op=op, chop=chop, binary=binary, n=n):
                run.expected[OK] = [("message", payload, binary)]
                run.expected_close = clean_close()
                p.send_frame(op, payload, chopsize=chop)
                p.kill_after(10 if n > 128 else 1)
            _spec(cases, f"1.{major}.{minor}",
                  f"Send {kind} message with payload of length {n}.{chop_txt}",
                  f"Receive echoed {kind} message (with payload as sent). Clean close with normal code.",
                  setup, timeout=15)


# ---------------------------------------------------------------------------------- section 2
def section2(cases):
    def ping_case(id, payload, desc, chop=None):
        def setup(run, p):
            run.expected[OK] = [("pong", payload)]
            run.expected_close = clean_close()
            p.send_frame(F.OP_PING, payload, chopsize=chop)
            if chop:
                p.close_after(2)
            else:
                p.kill_after(1)
        _spec(cases, id, desc, "Pong (with payload identical to ping). Clean close with normal code.", setup)

    ping_case("2.1", b"", "Send ping without payload.")
    ping_case("2.2", HELLO, "Send ping with small text payload.")
    ping_case("2.3", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", "Send ping with small binary (non UTF-8) payload.")
    ping_case("2.4", b"\xfe" * 125, "Send ping with binary payload of 125 octets.")

    def s25(run, p):
        run.expected[OK] = []
        run.expected_close = peer_fails()
        p.send_frame(F.OP_PING, b"\xfe" * 126)
        p.kill_after(1)
    _spec(cases, "2.5", "Send ping with binary payload of 126 octets.",
          "Connection is failed immediately (1002/Protocol Error): control frames may carry at most 125 octets.", s25)

    ping_case("2.6", b"\xfe" * 125, "Send ping with binary payload of 125 octets, sent in octet-wise chops.", chop=1)

    def unsolicited(id, payload, desc):
        def setup(run, p):
            run.expected[OK] = []
            run.expected_close = clean_close()
            p.send_frame(F.OP_PONG, payload)
            p.send_close(NORMAL)
            p.close_after(1)
        _spec(cases, id, desc, "Nothing (the pong is ignored). Clean close with normal code.", setup)
    unsolicited("2.7", b"", "Send unsolicited pong without payload. Verify nothing is received.")
    unsolicited("2.8", b"unsolicited pong payload", "Send unsolicited pong with payload. Verify nothing is received.")

    def s29(run, p):
        run.expected[OK] = [("pong", b"ping payload")]
        run.expected_close = clean_close()
        p.send_frame(F.OP_PONG, b"unsolicited pong payload")
        p.send_frame(F.OP_PING, b"ping payload")
        p.kill_after(1)
    _spec(cases, "2.9", "Send unsolicited pong with payload, then ping with payload.",
          "Pong for our ping (not for the unsolicited pong). Clean close with normal code.", s29)

    def ten_pings(chop):
        def setup(run, p):
            run.expected[OK] = []
            for i in range(10):
                payload = f"payload-{i}".encode()
                run.expected[OK].append(("pong", payload))
                p.send_frame(F.OP_PING, payload, chopsize=chop)
            run.expected_close = clean_close()
            p.close_after(3)
        return setup
    _spec(cases, "2.10", "Send 10 pings with payload.",
          "Pongs for all our pings, with their payloads (not required by the RFC, but checked). Clean close.",
          ten_pings(None))
    _spec(cases, "2.11", "Send 10 pings with payload, sent in octet-wise chops.",
          "Pongs for all our pings, with their payloads (not required by the RFC, but checked). Clean close.",
          ten_pings(1))


# ---------------------------------------------------------------------------------- section 3
def section3(cases):
    def s31(run, p):
        run.expected[OK] = []
        run.expected_close = peer_fails()
        p.send_frame(F.OP_TEXT, HELLO, rsv=1)
        p.kill_after(1)
    _spec(cases, "3.1", "Send small text message with RSV = 1.",
          "The connection is failed immediately (1002): RSV must be 0 without a negotiated extension.", s31)

    def after_valid(rsv, sync=False, chop=None):
        def setup(run, p):
            run.expected[OK] = [("message", HELLO, False)]
            run.expected[NON_STRICT] = []
            run.expected_close = peer_fails()
            p.send_frame(F.OP_TEXT, HELLO, sync=sync, chopsize=chop)
            p.send_frame(F.OP_TEXT, HELLO, rsv=rsv, sync=sync, chopsize=chop)
            p.send_frame(F.OP_PING, b"", sync=sync, chopsize=chop)
            p.kill_after(1)
        return setup
    exp = ("Echo for the first message, then the connection is failed immediately (1002); "
           "the pong is not received.")
    _spec(cases, "3.2", "Send small text message, then again with RSV = 2, then send ping.", exp, after_valid(2))
    _spec(cases, "3.3", "Send small text message, then again with RSV = 3, then send ping. "
          "Octets are sent in frame-wise chops (sync after each frame).", exp, after_valid(3, sync=True))
    _spec(cases, "3.4", "Send small text message, then again with RSV = 4, then send ping. "
          "Octets are sent in octet-wise chops.", exp, after_valid(4, chop=1))

    def single(op, payload, rsv):
        def setup(run, p):
            run.expected[OK] = []
            run.expected_close = peer_fails()
            p.send_frame(op, payload, rsv=rsv)
            p.kill_after(1)
        return setup
    _spec(cases, "3.5", "Send small binary message with RSV = 5.",
          "The connection is failed immediately (1002).", single(F.OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 5))
    # Autobahn's code for 3.6 sends a *binary* frame despite its description; we send what the
    # description says (a ping), which also checks RSV on control frames (see README).
    _spec(cases, "3.6", "Send ping with RSV = 6.", "The connection is failed immediately (1002).",
          single(F.OP_PING, HELLO, 6))
    _spec(cases, "3.7", "Send close with RSV = 7.", "The connection is failed immediately (1002).",
          single(F.OP_CLOSE, b"", 7))


# ---------------------------------------------------------------------------------- section 4
def section4(cases):
    # x.x.1: reserved opcode, empty; x.x.2: with payload; x.x.3-5: after a valid text message and
    # followed by a ping: empty, with payload, with payload and everything in octet-wise chops.
    for major, opcodes in ((1, [3, 4, 5, 6, 7]), (2, [11, 12, 13, 14, 15])):
        kind = "non-control" if major == 1 else "control"
        for minor, op in enumerate(opcodes, start=1):
            payload = {1: b"", 2: b"reserved opcode payload", 3: b"", 4: HELLO, 5: HELLO}[minor]
            after_msg = minor >= 3
            chop = 1 if minor == 5 else None

            def setup(run, p, op=op, payload=payload, after_msg=after_msg, chop=chop):
                run.expected_close = peer_fails()
                if after_msg:
                    run.expected[OK] = [("message", HELLO, False)]
                    run.expected[NON_STRICT] = []
                    p.send_frame(F.OP_TEXT, HELLO, chopsize=chop)
                    p.send_frame(op, payload, chopsize=chop)
                    p.send_frame(F.OP_PING, chopsize=chop)
                else:
                    run.expected[OK] = []
                    p.send_frame(op, payload)
                p.kill_after(1)
            what = f"frame with reserved {kind} opcode = {op}" + (" and non-empty payload" if payload else "")
            if after_msg:
                desc = f"Send small text message, then send {what}, then send ping."
                if chop:
                    desc += " Octets are sent in octet-wise chops."
                exp = ("Echo for the first message, then the connection is failed immediately (1002); "
                       "no pong is received.")
            else:
                desc = f"Send {what}."
                exp = "The connection is failed immediately (1002)."
            _spec(cases, f"4.{major}.{minor}", desc, exp, setup)


# ---------------------------------------------------------------------------------- section 5
def section5(cases):
    def frag_control(op):
        def setup(run, p):
            run.expected[OK] = []
            run.expected_close = peer_fails()
            p.send_frame(op, b"fragment1", fin=False)
            p.send_frame(F.OP_CONT, b"fragment2", fin=True)
            p.kill_after(1)
        return setup
    _spec(cases, "5.1", "Send ping fragmented into 2 fragments.",
          "The connection is failed immediately (1002): control frames must not be fragmented.", frag_control(F.OP_PING))
    _spec(cases, "5.2", "Send pong fragmented into 2 fragments.",
          "The connection is failed immediately (1002): control frames must not be fragmented.", frag_control(F.OP_PONG))

    modes = [("sent in one chop", {}), ("sent in per-frame chops", {"sync": True}),
             ("sent in octet-wise chops", {"chopsize": 1})]
    for i, (how, kw) in enumerate(modes):
        def s53(run, p, kw=kw):
            run.expected[OK] = [("message", b"fragment1fragment2", False)]
            run.expected_close = clean_close()
            p.send_frame(F.OP_TEXT, b"fragment1", fin=False, **kw)
            p.send_frame(F.OP_CONT, b"fragment2", fin=True, **kw)
            p.kill_after(2)
        _spec(cases, f"5.{3 + i}", f"Send text message fragmented into 2 fragments, {how}.",
              "Message is processed and echoed back to us. Clean close.", s53)
    for i, (how, kw) in enumerate(modes):
        def s56(run, p, kw=kw):
            run.expected[OK] = [("pong", b"ping payload"), ("message", b"fragment1fragment2", False)]
            run.expected_close = clean_close()
            p.send_frame(F.OP_TEXT, b"fragment1", fin=False, **kw)
            p.send_frame(F.OP_PING, b"ping payload", **kw)
            p.send_frame(F.OP_CONT, b"fragment2", fin=True, **kw)
            p.close_after(1)
        _spec(cases, f"5.{6 + i}", f"Send text message fragmented into 2 fragments, one ping with payload in-between, {how}.",
              "A pong is received, then the message is echoed back to us. Clean close.", s56)
    for j, fin in enumerate((True, False)):
        for i, (how, kw) in enumerate(modes):
            def s59(run, p, kw=kw, fin=fin):
                run.expected[OK] = []
                run.expected_close = peer_fails()
                p.send_frame(F.OP_CONT, b"non-continuation payload", fin=fin, **kw)
                p.send_frame(F.OP_TEXT, HELLO, **kw)
                p.kill_after(1)
            _spec(cases, f"5.{9 + 3 * j + i}",
                  f"Send unfragmented text message after continuation frame with FIN = {str(fin).lower()}, "
                  f"where there is nothing to continue, {how}.",
                  "The connection is failed immediately (1002), since there is no message to continue.", s59)

    def s515(run, p):
        run.expected[OK] = [("message", b"fragment1fragment2", False)]
        run.expected[NON_STRICT] = []
        run.expected_close = peer_fails()
        p.send_frame(F.OP_TEXT, b"fragment1", fin=False)
        p.send_frame(F.OP_CONT, b"fragment2", fin=True)
        p.send_frame(F.OP_CONT, b"fragment3", fin=False)
        p.send_frame(F.OP_TEXT, b"fragment4", fin=True)
        p.kill_after(1)
    _spec(cases, "5.15", "Send text message fragmented into 2 fragments, then continuation frame with FIN = false "
          "where there is nothing to continue, then unfragmented text message, all sent in one chop.",
          "Echo of the first message, then the connection is failed immediately (1002).", s515)

    def repeated(fin):
        def setup(run, p):
            run.expected[OK] = []
            run.expected_close = peer_fails()
            for _ in range(2):
                p.send_frame(F.OP_CONT, b"fragment1", fin=fin)
                p.send_frame(F.OP_TEXT, b"fragment2", fin=False)
                p.send_frame(F.OP_CONT, b"fragment3", fin=True)
            p.kill_after(1)
        return setup
    _spec(cases, "5.16", "Repeated 2x: continuation frame with FIN = false (nothing to continue), then text "
          "message fragmented into 2 fragments.", "The connection is failed immediately (1002).", repeated(False))
    _spec(cases, "5.17", "Repeated 2x: continuation frame with FIN = true (nothing to continue), then text "
          "message fragmented into 2 fragments.", "The connection is failed immediately (1002).", repeated(True))

    def s518(run, p):
        run.expected[OK] = []
        run.expected_close = peer_fails()
        p.send_frame(F.OP_TEXT, b"fragment1", fin=False)
        p.send_frame(F.OP_TEXT, b"fragment2", fin=True)
        p.kill_after(1)
    _spec(cases, "5.18", "Send text message fragmented into 2 fragments, with both frame opcodes set to text, "
          "sent in one chop.", "The connection is failed immediately (1002): a new message starts inside a "
          "fragmented one.", s518)

    def interleaved(sync):
        frags = [b"fragment1", b"fragment2", b"fragment3", b"fragment4", b"fragment5"]
        pings = [b"pongme 1!", b"pongme 2!"]

        def setup(run, p):
            run.expected[OK] = [("pong", pings[0]), ("pong", pings[1]), ("message", b"".join(frags), False)]
            run.expected_close = clean_close()
            p.send_frame(F.OP_TEXT, frags[0], fin=False, sync=sync)
            p.send_frame(F.OP_CONT, frags[1], fin=False, sync=sync)
            p.send_frame(F.OP_PING, pings[0], sync=sync)

            def part2():
                p.send_frame(F.OP_CONT, frags[2], fin=False, sync=sync)
                p.send_frame(F.OP_CONT, frags[3], fin=False, sync=sync)
                p.send_frame(F.OP_PING, pings[1], sync=sync)
                p.send_frame(F.OP_CONT, frags[4], fin=True, sync=sync)
                p.close_after(1)
            p.continue_later(1, part2)
        return setup
    exp519 = ("The peer answers the first ping before it has the last fragment, pongs both pings with "
              "their payloads and echoes the reassembled message. Clean close.")
    _spec(cases, "5.19", "A fragmented text message is sent in multiple frames. After the first 2 frames a ping "
          "is sent; then we wait 1s, send 2 more fragments, another ping and the final fragment.", exp519,
          interleaved(False))
    _spec(cases, "5.20", "Same as 5.19, but every frame is sent with sync (in its own chop).", exp519,
          interleaved(True))


# ---------------------------------------------------------------------------------- section 6
def utf8_test_sequences():
    """Markus Kuhn's UTF-8 decoder stress test, as grouped by Autobahn cases 6.5-6.23.
    Returns [(title, [(valid, bytes), ...]), ...]."""
    groups = []
    groups.append(("Some valid UTF-8 sequences", [
        (True, b"hello\x24world"), (True, b"hello\xc2\xa2world"), (True, b"hello\xe2\x82\xacworld"),
        (True, b"hello\xf0\xa4\xad\xa2world"), (True, KOSME)]))

    def valid(b):
        try:
            b.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False
    groups.append(("All prefixes of a valid UTF-8 string that contains multi-byte code points",
                   [(valid(KOSME[:i]), KOSME[:i]) for i in range(1, len(KOSME) + 1)]))
    groups.append(("First possible sequence of a certain length",
                   [(True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"), (True, b"\xf0\x90\x80\x80")]))
    groups.append(("First possible sequence length 5/6 (invalid codepoints)",
                   [(False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")]))
    groups.append(("Last possible sequence of a certain length",
                   [(True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"), (True, b"\xf4\x8f\xbf\xbf")]))
    groups.append(("Last possible sequence length 4/5/6 (invalid codepoints)",
                   [(False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"), (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")]))
    groups.append(("Other boundary conditions",
                   [(True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
                    (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")]))
    cont = [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf", b"\x80\xbf\x80\xbf\x80",
            b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xbf))]
    groups.append(("Unexpected continuation bytes", [(False, b) for b in cont]))
    lonely = []
    for lo, hi in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd)):
        lonely.append((False, b"".join(bytes([c, 0x20]) for c in range(lo, hi))))
    groups.append(("Lonely start characters", lonely))
    missing = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
               b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    groups.append(("Sequences with last continuation byte missing", [(False, b) for b in missing]))
    groups.append(("Concatenation of incomplete sequences", [(False, b"".join(missing))]))
    groups.append(("Impossible bytes", [(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")]))
    groups.append(("Examples of an overlong ASCII character", [(False, b) for b in (
        b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf", b"\xfc\x80\x80\x80\x80\xaf")]))
    groups.append(("Maximum overlong sequences", [(False, b) for b in (
        b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf8\x87\xbf\xbf\xbf", b"\xfc\x83\xbf\xbf\xbf\xbf")]))
    groups.append(("Overlong representation of the NUL character", [(False, b) for b in (
        b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80", b"\xfc\x80\x80\x80\x80\x80")]))
    singles = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80",
               b"\xed\xbe\x80", b"\xed\xbf\xbf"]
    groups.append(("Single UTF-16 surrogates", [(False, b) for b in singles]))
    paired = [hi + lo for hi in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf")
              for lo in (b"\xed\xb0\x80", b"\xed\xbf\xbf")]
    groups.append(("Paired UTF-16 surrogates", [(False, b) for b in paired]))
    nonchars = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in (0xf0, 0xf1, 0xf2, 0xf3, 0xf4):
        for z2 in (0x8f, 0x9f, 0xaf, 0xbf):
            if z1 == 0xf4 and z2 != 0x8f:
                continue            # above U+10FFFF
            for z3 in (0xbe, 0xbf):
                seq = bytes([z1, z2, 0xbf, z3])
                if z1 == 0xf0 and z2 == 0x8f:
                    continue        # overlong
                nonchars.append((True, seq))
    groups.append(("Non-character code points (valid UTF-8)", nonchars))
    groups.append(("Unicode specials (i.e. replacement char)",
                   [(True, bytes([0xef, 0xbf, c])) for c in range(0xb9, 0xc0)]))
    for title, items in groups:               # self-check against Python's strict decoder
        for ok, b in items:
            assert valid(b) == ok, (title, b)
    return groups


def section6(cases, subtitles):
    def one_message(frames_payloads, valid, sync=False):
        """frames_payloads: list of payloads, one per frame (first TEXT, rest CONT)."""
        whole = b"".join(frames_payloads)

        def setup(run, p):
            if valid:
                run.expected[OK] = [("message", whole, False)]
                run.expected_close = clean_close()
            else:
                run.expected[OK] = []
                run.expected_close = peer_fails((INVALID_PAYLOAD,))
            n = len(frames_payloads)
            for i, part in enumerate(frames_payloads):
                p.send_frame(F.OP_TEXT if i == 0 else F.OP_CONT, part, fin=(i == n - 1), sync=sync)
            p.kill_after(1 if n < 64 else 2)
        return setup

    _spec(cases, "6.1.1", "Send text message of length 0.", "A message is echoed back to us (with empty payload).",
          one_message([b""], True))
    _spec(cases, "6.1.2", "Send fragmented text message, 3 fragments each of length 0.",
          "A message is echoed back to us (with empty payload).", one_message([b"", b"", b""], True))
    _spec(cases, "6.1.3", "Send fragmented text message, 3 fragments, first and last of length 0, middle non-empty.",
          "A message is echoed back to us (with payload = payload of middle fragment).",
          one_message([b"", b"middle frame payload", b""], True))

    hello = "Hello-µ@ßöäüàá-UTF-8!!".encode()
    split = len("Hello-µ@ßöä".encode())
    octets = lambda b: [b[i:i + 1] for i in range(len(b))]
    _spec(cases, "6.2.1", "Send a valid UTF-8 text message in one fragment. MESSAGE: " + hello.hex(),
          "The message is echoed back to us.", one_message([hello], True))
    _spec(cases, "6.2.2", "Send a valid UTF-8 text message in two fragments, fragmented on UTF-8 code point boundary.",
          "The message is echoed back to us.", one_message([hello[:split], hello[split:]], True))
    _spec(cases, "6.2.3", "Send a valid UTF-8 text message in fragments of 1 octet, resulting in frames ending on "
          "positions which are not code point ends.", "The message is echoed back to us.",
          one_message(octets(hello), True))
    _spec(cases, "6.2.4", "Send a valid UTF-8 text message (κόσμε) in fragments of 1 octet, resulting in frames "
          "ending on positions which are not code point ends.", "The message is echoed back to us.",
          one_message(octets(KOSME), True))
    _spec(cases, "6.3.1", "Send invalid UTF-8 text message unfragmented. MESSAGE: " + INVALID_KOSME.hex(),
          "The connection is failed immediately (1007), since the payload is not valid UTF-8.",
          one_message([INVALID_KOSME], False))
    _spec(cases, "6.3.2", "Send invalid UTF-8 text message in fragments of 1 octet. MESSAGE: " + INVALID_KOSME.hex(),
          "The connection is failed immediately (1007), since the payload is not valid UTF-8.",
          one_message(octets(INVALID_KOSME), False))

    # 6.4.x: fail fast. The invalid octet arrives in part 2; the peer should fail right then.
    whole = KOSME + b"\xf4\x90\x80\x80" + b"edited"   # F4 90 = beyond U+10FFFF, invalid at octet 12
    parts_a = [KOSME, b"\xf4\x90\x80\x80", b"edited"]
    parts_b = [whole[:12], whole[12:13], whole[13:]]

    def fail_fast(parts, as_frames):
        def setup(run, p):
            run.expected[OK] = [("timeout", "A")]
            run.expected[NON_STRICT] = [("timeout", "A"), ("timeout", "B")]
            run.expected_close = peer_fails((INVALID_PAYLOAD,))
            if as_frames:
                chunks = None
                p.send_frame(F.OP_TEXT, parts[0], fin=False)
            else:
                key = p._mask_key(None)
                raw = F.encode_frame(F.OP_TEXT, whole, mask_key=key)
                head = len(raw) - len(whole)
                cut1, cut2 = head + len(parts[0]), head + len(parts[0]) + len(parts[1])
                chunks = [raw[:cut1], raw[cut1:cut2], raw[cut2:]]
                p.log(f"TX TEXT FIN len={len(whole)} in 3 chops: {raw[:cut1].hex()} | ...")
                p.send_raw(chunks[0], sync=True)

            def part2():
                if p.state == OPEN:
                    run.received.append(("timeout", "A"))
                    if as_frames:
                        p.send_frame(F.OP_CONT, parts[1], fin=False)
                    else:
                        p.send_raw(chunks[1], sync=True)
                    p.continue_later(1, part3, "B")

            def part3():
                if p.state == OPEN:
                    run.received.append(("timeout", "B"))
                    if as_frames:
                        p.send_frame(F.OP_CONT, parts[2], fin=True)
                    else:
                        p.send_raw(chunks[2], sync=True)
                    p.kill_after(1)
            p.continue_later(1, part2, "A")
        return setup
    exp = ("The first part is accepted (we time out on the first wait). The second part should be rejected "
           "immediately (fail fast on UTF-8, 1007). Failing only after the message is complete is NON-STRICT.")
    _spec(cases, "6.4.1", "Send invalid UTF-8 text message in 3 fragments (frames). First frame payload is valid, "
          "then wait, then 2nd frame which contains the payload making the sequence invalid (F4 90 80 80, "
          "beyond U+10FFFF), then wait, then 3rd frame with rest.", exp, fail_fast(parts_a, True))
    _spec(cases, "6.4.2", "Same as 6.4.1, but the 2nd frame holds only the octet that makes the payload invalid.",
          exp, fail_fast(parts_b, True))
    _spec(cases, "6.4.3", "Same as 6.4.1, but the message is sent as 3 chops of one single frame.",
          exp, fail_fast(parts_a, False))
    _spec(cases, "6.4.4", "Same as 6.4.2, but the message is sent as 3 chops of one single frame.",
          exp, fail_fast(parts_b, False))

    for major, (title, items) in enumerate(utf8_test_sequences(), start=5):
        subtitles[f"6.{major}"] = title
        for minor, (ok, payload) in enumerate(items, start=1):
            if ok:
                d, e = "valid UTF-8", "The message is echoed back to us."
            else:
                d, e = "not valid UTF-8", "The connection is failed immediately (1007), since the payload is not valid UTF-8."
            _spec(cases, f"6.{major}.{minor}",
                  f"Send a text message with payload which is {d} in one fragment. Payload: 0x{payload.hex()}",
                  e, one_message([payload], ok))


# ---------------------------------------------------------------------------------- section 7
def section7(cases):
    def s711(run, p):
        run.expected[OK] = [("message", b"Hello World!", False)]
        run.expected_close = clean_close()
        p.send_frame(F.OP_TEXT, b"Hello World!")
        p.kill_after(1)       # the harness closes (1000) once the echo is in
    _spec(cases, "7.1.1", "Send a message; once it is echoed, the harness sends a close frame.",
          "Echoed message followed by clean close with normal code.", s711, post=wrong_code_is_failure)

    def after_close(extra):
        def setup(run, p):
            run.suppress_close = True
            run.expected[OK] = []
            run.expected_close = clean_close()
            p.send_close(NORMAL)
            extra(p)
            p.kill_after(1)
        return setup
    _spec(cases, "7.1.2", "Send two close frames.", "Clean close with normal code; the second close frame is ignored.",
          after_close(lambda p: p.send_frame(F.OP_CLOSE)), post=wrong_code_is_failure)
    _spec(cases, "7.1.3", "Send a ping after the close message.", "Clean close with normal code, no pong.",
          after_close(lambda p: p.send_frame(F.OP_PING)), post=wrong_code_is_failure)
    _spec(cases, "7.1.4", "Send a text message after sending a close frame.",
          "Clean close with normal code. Text message ignored.",
          after_close(lambda p: p.send_frame(F.OP_TEXT, b"Hello World!")), post=wrong_code_is_failure)

    def s715(run, p):
        run.suppress_close = True
        run.expected[OK] = []
        run.expected_close = clean_close()
        p.send_frame(F.OP_TEXT, b"fragment1", fin=False)
        p.send_close(NORMAL)
        p.send_frame(F.OP_CONT, b"fragment2", fin=True)
        p.kill_after(1)
    _spec(cases, "7.1.5", "Send message fragment1 followed by close then fragment.",
          "Clean close with normal code; the incomplete message is discarded.", s715,
          post=wrong_code_is_failure)

    def s716(run, p):
        big = (b"BAsd7&jh23" * (256 * KiB // 10 + 1))[:256 * KiB]
        run.suppress_close = True
        run.expected[OK] = [("message", b"Hello World!", False)]
        run.expected[NON_STRICT] = []
        run.expected_close = clean_close()
        p.send_frame(F.OP_TEXT, big)
        p.send_frame(F.OP_TEXT, b"Hello World!")
        p.send_close(NORMAL)
        p.send_frame(F.OP_PING)
        p.kill_after(1)
    _spec(cases, "7.1.6", "Send 256K message followed by close then a ping.",
          "Outcome depends on implementation-defined close behaviour: message and close are sent back to back; "
          "if the close is processed before the echo is written, the echo may be missing or partial.",
          s716, post=informational("Implementation-defined close behaviour"))

    def close_payload(payload, close_exp, wrong_code_fails=False):
        def setup(run, p):
            run.suppress_close = True
            run.expected[OK] = []
            run.expected_close = close_exp
            p.send_close_frame(payload=payload,
                               code=int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None)
            p.kill_after(1)
        return setup, (wrong_code_is_failure if wrong_code_fails else None)

    def add_close(id, desc, exp, payload, close_exp, wrong_code_fails):
        setup, post = close_payload(payload, close_exp, wrong_code_fails)
        _spec(cases, id, desc, exp, setup, post=post)

    fail_codes = {"closed_by_me": True, "codes": [PROTOCOL_ERROR], "require_clean": False}
    add_close("7.3.1", "Send a close frame with payload length 0 (no close code, no close reason).",
              "Clean close with normal code (or empty).", b"", clean_close(), True)
    add_close("7.3.2", "Send a close frame with payload length 1.", "Clean close with protocol error (1002) or drop TCP.",
              b"a", fail_codes, True)
    add_close("7.3.3", "Send a close frame with close code and no close reason.", "Clean close with normal code.",
              NORMAL.to_bytes(2, "big"), clean_close(), True)
    add_close("7.3.4", "Send a close frame with close code and close reason.", "Clean close with normal code.",
              NORMAL.to_bytes(2, "big") + b"Hello World!", clean_close(), True)
    add_close("7.3.5", "Send a close frame with close code and close reason of maximum length (123).",
              "Clean close with normal code.", NORMAL.to_bytes(2, "big") + b"*" * 123, clean_close(), True)
    add_close("7.3.6", "Send a close frame with close code and close reason which is too long (124).",
              "Connection is failed immediately (1002) or TCP dropped: the close frame payload is 126 octets.",
              NORMAL.to_bytes(2, "big") + b"*" * 124, fail_codes, True)
    add_close("7.5.1", "Send a close frame with invalid UTF-8 payload. Reason: " + INVALID_KOSME.hex(),
              "Clean close with protocol error (1002) or invalid payload (1007) code, or dropped TCP.",
              NORMAL.to_bytes(2, "big") + INVALID_KOSME,
              {"closed_by_me": True, "codes": [PROTOCOL_ERROR, INVALID_PAYLOAD], "require_clean": False}, True)
    for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], start=1):
        add_close(f"7.7.{i}", f"Send close with valid close code {code}.", "Clean close with normal or echoed code.",
                  code.to_bytes(2, "big"), clean_close((NORMAL, code)), True)
    for i, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], start=1):
        add_close(f"7.9.{i}", f"Send close with invalid close code {code}.",
                  "Clean close with protocol error code (1002) or drop TCP.",
                  code.to_bytes(2, "big"), dict(fail_codes), True)
    for i, code in enumerate([5000, 65535], start=1):
        def s713(run, p, code=code):
            run.suppress_close = True
            run.expected[OK] = []
            run.expected_close = {"closed_by_me": True, "codes": [NORMAL, code, PROTOCOL_ERROR], "require_clean": False}
            p.send_close_frame(code)
            p.kill_after(1)
        _spec(cases, f"7.13.{i}", f"Send close with close code {code}.", "Actual events are undefined by the spec.",
              s713, post=informational("Undefined by the spec"))


# ---------------------------------------------------------------------------------- section 9
def section9(cases, full: bool, cap: int):
    filler = b"BAsd7&jh23"

    def bulk(id, binary, size, wait, frag=None, chop=None, what=""):
        used = size if full else min(size, cap)
        if not full:
            # Capped run: a bounded wait (10 s + 5 s per MiB), so a peer that never echoes costs
            # at most ~15 s per case instead of Autobahn's 100 s.
            wait = min(wait, 10 + 5 * max(1, used // MiB))
        unit = bytes(range(256)) if binary else filler
        payload = (unit * (used // len(unit) + 1))[:used]
        kind = "binary" if binary else "text"
        capped = used != size

        def setup(run, p):
            run.fixed_behaviour = True
            run.expected_close = clean_close()
            run.result = f"Did not receive message within {wait} seconds."
            run.metrics["bytes"] = used
            if frag:
                p.send_message(payload, binary=binary, fragment_size=frag)
            else:
                p.send_frame(F.OP_BINARY if binary else F.OP_TEXT, payload, chopsize=chop)
            p.close_after(wait)

        def on_message(run, p, data, is_binary):
            run.metrics["echo_ms"] = round((time.monotonic() - run.started) * 1000, 1)
            if is_binary != binary:
                run.result = f"Expected {kind} message, got {'binary' if is_binary else 'text'}."
            elif len(data) != used:
                run.result = f"Expected {kind} message of length {used}, got {len(data)}."
            elif data != payload:
                run.result = f"Echoed {kind} message of length {used} differs from what was sent."
            else:
                run.behaviour = OK
                run.result = f"Received {kind} message of length {used} (echo after {run.metrics['echo_ms']} ms)."
            p.send_close(NORMAL)

        def human(n):
            return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n // KiB} KiB" if n >= KiB else f"{n} B"
        desc = f"Send {kind} message with payload of length {human(size)}{what}."
        if capped:
            desc += f" DEFAULT RUN: capped to {human(used)} (use --full for the Autobahn size)."
        _spec(cases, id, desc, f"Receive echoed {kind} message (with payload as sent).", setup,
              on_message=on_message, timeout=wait + 15, performance=True,
              capped_from=size if capped else None)

    sizes = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB]
    waits = [10, 10, 20, 60, 80, 100]
    for major, binary in ((1, False), (2, True)):
        for i, (s, w) in enumerate(zip(sizes, waits), start=1):
            bulk(f"9.{major}.{i}", binary, s, w)
    frags = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB]
    for major, binary in ((3, False), (4, True)):
        for i, f in enumerate(frags, start=1):
            bulk(f"9.{major}.{i}", binary, 4 * MiB, 100, frag=f,
                 what=f", fragmented into frames of {f if f < KiB else str(f // KiB) + ' KiB'} octets")
    chops = [64, 128, 256, 512, 1024, 2048]
    for major, binary in ((5, False), (6, True)):
        for i, c in enumerate(chops, start=1):
            bulk(f"9.{major}.{i}", binary, 1 * MiB, 100, chop=c, what=f", sent out in chops of {c} octets")

    msg_sizes = [0, 16, 64, 256, 1024, 4096]
    for major, binary in ((7, False), (8, True)):
        kind = "binary" if binary else "text"
        for i, size in enumerate(msg_sizes, start=1):
            count = 1000
            payload = (b"\xfe" if binary else b"*") * size
            rt_wait = 60 if full else 30

            def setup(run, p, payload=payload, binary=binary, count=count, rt_wait=rt_wait):
                run.fixed_behaviour = True
                run.expected_close = clean_close()
                run.result = f"Did not receive all {count} echoes within {rt_wait} seconds."
                run.metrics["sent"] = 1
                run.metrics["ok"] = 0
                p.send_message(payload, binary=binary)
                p.close_after(rt_wait)

            def on_message(run, p, data, is_binary, payload=payload, binary=binary, count=count):
                if is_binary != binary or data != payload:
                    run.result = f"Echo #{run.metrics['ok'] + 1} differs from what was sent."
                    p.send_close(NORMAL)
                    return
                run.metrics["ok"] += 1
                if run.metrics["ok"] == count:
                    ms = (time.monotonic() - run.started) * 1000
                    run.metrics["roundtrip_total_ms"] = round(ms, 1)
                    run.behaviour = OK
                    run.result = f"{count} echoes received, {ms / count:.3f} ms per round trip."
                    p.send_close(NORMAL)
                else:
                    run.metrics["sent"] += 1
                    p.send_message(payload, binary=binary)
            _spec(cases, f"9.{major}.{i}",
                  f"Send {count} {kind} messages of payload size {size} one after the other, each only after "
                  f"the echo of the previous one (round-trip time).",
                  f"Receive all {count} echoes (with payload as sent).", setup, on_message=on_message,
                  timeout=rt_wait + 15, performance=True)


# --------------------------------------------------------------------------------- section 10
def section10(cases):
    payload = b"*" * 65536

    def setup(run, p):
        run.expected[OK] = [("message", payload, False)]
        run.expected_close = clean_close()
        p.send_message(payload, fragment_size=1300)
        p.kill_after(10)

    def post(run, p):
        want = {F.OP_CONT: len(payload) // 1300, F.OP_TEXT: 1}
        got = {F.OP_CONT: p.tx_frame_stats[F.OP_CONT], F.OP_TEXT: p.tx_frame_stats[F.OP_TEXT]}
        if want != got:
            run.behaviour = FAILED
            run.result = f"Frames transmitted {got} do not match what we expected {want}."
    _spec(cases, "10.1.1", "Send text message with payload of length 65536 auto-fragmented with autoFragmentSize = 1300.",
          "Receive echoed text message (with payload as sent). Clean close with normal code.", setup, post=post,
          timeout=15)


# ---------------------------------------------------------------------------- sections 12, 13
# Autobahn's (payload length, message count, case timeout in s, auto-fragment size) list,
# the same for every subsection of 12 and 13.
DEFLATE_SIZES = [
    (16, 1000, 60, 0), (64, 1000, 60, 0), (256, 1000, 120, 0), (1024, 1000, 240, 0),
    (4096, 1000, 480, 0), (8192, 1000, 480, 0), (16384, 1000, 480, 0), (32768, 1000, 480, 0),
    (65536, 1000, 480, 0), (131072, 1000, 480, 0),
    (8192, 1000, 480, 256), (16384, 1000, 480, 256), (32768, 1000, 480, 256), (65536, 1000, 480, 256),
    (131072, 1000, 480, 256), (131072, 1000, 480, 1024), (131072, 1000, 480, 4096),
    (131072, 1000, 480, 32768),
]
# Default run: at most this many payload octets per case (at least DEFLATE_MIN_COUNT messages),
# and a wait bounded like section 9's. --full sends Autobahn's 1000 messages and waits as long.
DEFLATE_CAP = 256 * KiB
DEFLATE_MIN_COUNT = 8
DEFLATE_WAIT_CAP = 30
DEFLATE_ECHO_IDLE = 10     # default run: a case also ends when an echo is this late (s)


@dataclass
class DeflateCase:
    """What the harness offers as a client, and how it answers a client's offer as a server.

    `offers`: permessage-deflate offers, in order (one Sec-WebSocket-Extensions value).
    `accepts`: the (client_no_context_takeover, client_max_window_bits) answers the harness
    gives as a server, in order of preference; the first one the client's offer allows wins
    (client_max_window_bits needs the client to have offered it), and the server_* parameters
    the client asked for are echoed (Autobahn's PerMessageDeflateOfferAccept).
    """
    offers: list = field(default_factory=lambda: [D.Offer()])
    accepts: list = field(default_factory=lambda: [(False, None)])
    offer_desc: str = ""
    accept_desc: str = ""


# 13.1 .. 13.7: Autobahn's client offers (requestNoContextTakeover, requestMaxWindowBits) and
# server answers (client no_context_takeover, client_max_window_bits).
DEFLATE_PARAMS = [
    ([(False, 0)], [(False, 0)]),
    ([(True, 0)], [(True, 0)]),
    ([(False, 8)], [(False, 8)]),
    ([(False, 15)], [(False, 15)]),
    ([(True, 8)], [(True, 8)]),
    ([(True, 15)], [(True, 15)]),
    ([(True, 8), (True, 0), (False, 0)], [(True, 8), (True, 0), (False, 0)]),
]


def deflate_case_for(offers, accepts) -> DeflateCase:
    return DeflateCase(
        offers=[D.Offer(server_no_context_takeover=nct, server_max_window_bits=bits or None)
                for nct, bits in offers],
        accepts=[(nct, bits or None) for nct, bits in accepts],
        offer_desc=f"client offers (server_no_context_takeover, server_max_window_bits): {offers}",
        accept_desc=f"server accepts (client_no_context_takeover, client_max_window_bits): {accepts}")


def deflate_count(size: int, count: int, full: bool) -> int:
    if full:
        return count
    return min(count, max(DEFLATE_MIN_COUNT, DEFLATE_CAP // size))


def section12_13(cases, subtitles, full: bool):
    def add(id, key, size, count, wait, frag, dcase: DeflateCase, what: str):
        desc_name, binary, fsize = testdata.CORPORA[key]
        used = deflate_count(size, count, full)
        if not full:
            wait = min(wait, DEFLATE_WAIT_CAP)
        kind = "binary" if binary else "text"

        def setup(run, p):
            run.fixed_behaviour = True
            run.expected_close = clean_close()
            run.metrics.update({"messages": used, "ok": 0})
            if p.deflate is None:
                run.behaviour = UNIMPLEMENTED
                run.result = ("permessage-deflate was not negotiated"
                              + (f" ({p.deflate_info.get('note')})" if p.deflate_info.get("note") else ""))
                p.send_close(NORMAL)
                return
            run.result = f"Case did not finish within {wait} seconds."
            run.slicer = testdata.Slicer(key, size)
            p.close_after(wait)
            send_one(run, p)
            if not full:
                p.call_later(1.0, idle_check, run, p)

        def send_one(run, p):
            msg = run.slicer.next()
            run.pending = msg
            run.sent_at = time.monotonic()
            p.send_message(msg, binary=binary, fragment_size=frag or None)

        def idle_check(run, p):
            # Default run only: a peer that stops echoing ends the case after DEFLATE_ECHO_IDLE s
            # instead of the whole wait (a silent peer would otherwise cost 30 s per case).
            if p.state != OPEN or run.behaviour != FAILED or run.metrics["ok"] >= used:
                return
            if time.monotonic() - run.sent_at > DEFLATE_ECHO_IDLE:
                run.result = (f"No echo of message #{run.metrics['ok'] + 1} within {DEFLATE_ECHO_IDLE} s "
                              f"({run.metrics['ok']} of {used} echoes received).")
                p.log(f"-- no echo for {DEFLATE_ECHO_IDLE}s: harness starts closing handshake")
                p.send_close(NORMAL)
                return
            p.call_later(1.0, idle_check, run, p)

        def on_message(run, p, data, is_binary):
            n = run.metrics["ok"] + 1
            want = run.pending
            problem = None
            if is_binary != binary:
                problem = f"Echo #{n}: got a {'binary' if is_binary else 'text'} message, expected {kind}."
            elif len(data) != len(want):
                problem = f"Echo #{n}: length {len(data)}, expected {len(want)}."
            elif data != want:
                at = next(i for i in range(len(want)) if data[i] != want[i])
                problem = f"Echo #{n}: contents differ from what was sent (first difference at octet {at})."
            if problem:
                run.behaviour = FAILED
                run.result = problem
                p.send_close(NORMAL)
                return
            run.metrics["ok"] = n
            if n < used:
                send_one(run, p)
                return
            ms = (time.monotonic() - run.started) * 1000
            run.metrics["total_ms"] = round(ms, 1)
            run.behaviour = OK
            run.result = f"Received all {used} echoed messages in time ({ms:.0f} ms)."
            p.send_close(NORMAL)

        def post(run, p):
            # A peer that ends the connection early: say so instead of "did not finish in time".
            if run.behaviour == FAILED and run.result.startswith("Case did not finish") \
                    and time.monotonic() - run.started < wait - 0.5:
                if p.close_received:
                    reason = (p.remote_close_reason or b"").decode("utf-8", "replace")[:80]
                    how = f"the peer sent close {p.remote_close_code} {reason!r}"
                elif p.peer_dropped_tcp:
                    how = "the peer dropped TCP without a close frame"
                else:
                    how = p.not_clean_reason or "the harness gave up"
                run.result = f"The connection ended after {run.metrics['ok']} of {used} echoes: {how}."

        count_txt = f"{count}" if used == count else f"{count} (DEFAULT RUN: {used}; --full for {count})"
        desc = (f"Send {count_txt} compressed messages each of payload size {size}, auto-fragment to {frag} "
                f"octets. {what}")
        exp = f"Receive echo'ed messages (with payload as sent). Timeout case after {wait} secs."
        _spec(cases, id, desc, exp, setup, on_message=on_message, post=post, timeout=wait + 15,
              performance=True, deflate=dcase)

    for j, key in enumerate(testdata.ORDER, start=1):
        desc_name, binary, fsize = testdata.CORPORA[key]
        subtitles[f"12.{j}"] = f"{desc_name} ({'binary' if binary else 'utf8'}, {fsize} bytes)"
        for i, (size, count, wait, frag) in enumerate(DEFLATE_SIZES, start=1):
            add(f"12.{j}.{i}", key, size, count, wait, frag, DeflateCase(),
                "Use default permessage-deflate offer.")
    desc_name, binary, fsize = testdata.CORPORA["json"]
    for j, (offers, accepts) in enumerate(DEFLATE_PARAMS, start=1):
        dcase = deflate_case_for(offers, accepts)
        subtitles[f"13.{j}"] = (f"{desc_name} ({'binary' if binary else 'utf8'}, {fsize} bytes) - "
                                f"{dcase.offer_desc} / {dcase.accept_desc}")
        for i, (size, count, wait, frag) in enumerate(DEFLATE_SIZES, start=1):
            add(f"13.{j}.{i}", "json", size, count, wait, frag, dcase,
                f"Use permessage-deflate {dcase.offer_desc}.")


# --------------------------------------------------------------------------------- section H
def section_h(cases):
    def wrong_mask(run, p):
        run.expected[OK] = []
        run.expected_close = peer_fails()
        p.send_frame(F.OP_TEXT, HELLO, mask=p.is_server)   # server masks / client does not: both wrong
        p.kill_after(1)
    _spec(cases, "H.1.1", "Send a text frame with the masking the peer's role forbids (RFC 6455 §5.1): a masked "
          "frame to a client, an unmasked frame to a server.",
          "The connection is failed immediately (1002 or TCP drop).", wrong_mask)

    def msb_length(run, p):
        run.expected[OK] = []
        run.expected_close = peer_fails((PROTOCOL_ERROR, 1009))
        p.send_frame(F.OP_BINARY, b"\x00" * 8, length_override=(1 << 63) | 8)
        p.kill_after(1)
    _spec(cases, "H.1.2", "Send a binary frame whose 64-bit payload length has its most significant bit set "
          "(RFC 6455 §5.2).", "The connection is failed immediately (1002 or 1009, or TCP drop).", msb_length)

    def ping_in_control_len(run, p):
        run.expected[OK] = []
        run.expected_close = peer_fails()
        p.send_frame(F.OP_CLOSE, NORMAL.to_bytes(2, "big"), fin=False)
        p.kill_after(1)
    _spec(cases, "H.1.3", "Send a close frame with FIN = 0 (a fragmented control frame, RFC 6455 §5.5).",
          "The connection is failed immediately (1002 or TCP drop).", ping_in_control_len)


# ------------------------------------------------------------------------------------ catalog
def build_catalog(full: bool = False, cap: int = DEFAULT_CAP):
    cases: list[CaseSpec] = []
    subtitles: dict[str, str] = {}
    section1(cases)
    section2(cases)
    section3(cases)
    section4(cases)
    section5(cases)
    section6(cases, subtitles)
    section7(cases)
    section9(cases, full, cap)
    section10(cases)
    section12_13(cases, subtitles, full)
    section_h(cases)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case id"
    return cases, subtitles


def select_cases(cases, patterns: str | None, exclude: str | None = None):
    """Autobahn-style patterns: '1.*,6.4.*,7.1.1' (comma-separated, '*' wildcard)."""
    import fnmatch

    def match(cid, pats):
        return any(fnmatch.fnmatchcase(cid, pat.strip()) for pat in pats.split(",") if pat.strip())
    out = [c for c in cases if not patterns or match(c.id, patterns)]
    if exclude:
        out = [c for c in out if not match(c.id, exclude)]
    return out
