"""Payload corpora for sections 12 and 13 (permessage-deflate).

Autobahn|Testsuite sends slices of five files: a JSON report (utf8, 194056 bytes), a 512x512
8-bit greyscale BMP (binary, 263222 bytes), Goethe's Faust I from Project Gutenberg (sent as
binary, 222218 bytes), an HTML report (utf8, 263527 bytes) and a PDF (binary, 1042328 bytes).
Those files are not part of this repository; the harness generates, deterministically (fixed
seeds), corpora of the same kind and size that compress alike: structured JSON and HTML text with a
few non-ASCII characters, a smooth noisy greyscale bitmap, German verse with umlauts and CRLF line
ends, and a PDF-like file that is mostly incompressible stream data. Generated on first use
(about 0.3 s) and cached.
"""

from __future__ import annotations

import functools
import math
import random
import struct

# key -> (description, binary, size in octets); the order is Autobahn's (12.1 .. 12.5).
CORPORA = {
    "json": ("Large JSON data file", False, 194056),
    "bitmap": ("Bitmap 512x512 greyscale (stands in for Autobahn's 'Lena' picture)", True, 263222),
    "verse": ("Human readable text, German verse (stands in for Goethe's Faust I)", True, 222218),
    "html": ("Large HTML file", False, 263527),
    "pdf": ("A larger PDF-like file (mostly compressed streams)", True, 1042328),
}
ORDER = ["json", "bitmap", "verse", "html", "pdf"]

_AGENTS = ["AutobahnPython/0.6.0", "Chrome/29.0.1531.1", "Firefox/24.0", "WebSocketEngine/0.1",
           "Größenwahn/1.0", "κόσμε-ws/2.3", "websockets/17.4", "Ωmega/0.9"]
_BEHAVIOURS = ["OK"] * 12 + ["NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED"]
_GERMAN = ("der die das und nicht ich du er sie es wir ihr mit dem den des ein eine einen zu im "
           "auf ist war sein Welt Geist Herz Nacht Licht Himmel Erde Mensch Leben Zeit Wort Tat "
           "Seele Natur Liebe Gott Teufel Kraft Wissen Schein Traum Glück Lust Schmerz Augenblick "
           "schön süß grün müde über für hören können möchte Mädchen Brüder Straße Grüße "
           "verweile doch du bist so schön Bücher Wälder Täler Flüsse Fräulein Gretchen heiß").split()
_SPEAKERS = ["FAUST.", "MEPHISTOPHELES.", "WAGNER.", "MARGARETE.", "MARTHE.", "CHOR DER ENGEL.",
             "DER HERR.", "SCHÜLER.", "HEXE.", "VALENTIN."]


def _fit_text(parts, size: int) -> bytes:
    data = "".join(parts).encode("utf-8")
    cut = data[:size]
    # never cut a multi-byte character: back off to a boundary, pad with spaces
    while True:
        try:
            cut.decode("utf-8")
            break
        except UnicodeDecodeError:
            cut = cut[:-1]
    return cut + b" " * (size - len(cut))


def _json(size: int, rnd: random.Random) -> bytes:
    parts = ["{\n"]
    n = 0
    total = 0
    while total < size:
        agent = rnd.choice(_AGENTS)
        parts.append(f'   "{agent}": {{\n')
        for sec, count in ((1, 16), (2, 11), (5, 20), (6, 40), (7, 30), (9, 30), (12, 40)):
            for k in range(1, count + 1):
                case = f"{sec}.{rnd.randint(1, 9)}.{k}"
                beh = rnd.choice(_BEHAVIOURS)
                entry = (f'      "{case}": {{\n'
                         f'         "behavior": "{beh}",\n'
                         f'         "behaviorClose": "{"OK" if beh != "FAILED" else "UNCLEAN"}",\n'
                         f'         "duration": {rnd.randint(1, 20000)},\n'
                         f'         "remoteCloseCode": {rnd.choice([1000, 1000, 1000, 1002, 1007, "null"])},\n'
                         f'         "reportfile": "{agent.lower().replace("/", "_").replace(".", "_")}'
                         f'_case_{case.replace(".", "_")}.json"\n'
                         "      },\n")
                parts.append(entry)
                total += len(entry) + 8
        parts.append("   },\n")
        n += 1
    parts.append("}\n")
    return _fit_text(parts, size)


def _html(size: int, rnd: random.Random) -> bytes:
    parts = ["<!DOCTYPE html>\n<html>\n   <head>\n      <meta charset=\"utf-8\" />\n"
             "      <title>WebSocket Test Report – Übersicht</title>\n   </head>\n   <body>\n"
             "      <table id=\"agent_case_results\">\n"]
    total = 0
    while total < size:
        sec, sub = rnd.randint(1, 13), rnd.randint(1, 9)
        row = [f"         <tr class=\"agent_case_result_row\">\n"
               f"            <td class=\"case\"><a href=\"#case_desc_{sec}_{sub}_{rnd.randint(1, 20)}\">"
               f"Case {sec}.{sub}.{rnd.randint(1, 20)}</a></td>\n"]
        for agent in rnd.sample(_AGENTS, 3):
            beh = rnd.choice(_BEHAVIOURS)
            cls = "case_ok" if beh == "OK" else "case_failed" if beh == "FAILED" else "case_non_strict"
            slug = agent.lower().replace("/", "_").replace(".", "_")
            row.append(f"            <td class=\"{cls}\"><a href=\"{slug}_case_{sec}_{sub}.html\">"
                       f"{'Pass' if beh == 'OK' else beh.title()}</a><br/><span class=\"case_duration\">"
                       f"{rnd.randint(1, 20000)} ms</span></td><td class=\"close close_hide {cls}\">"
                       f"<span class=\"close_code\">{rnd.choice([1000, 1000, 1002, 'None'])}</span></td>\n")
        row.append("         </tr>\n")
        s = "".join(row)
        parts.append(s)
        total += len(s) + 4
    parts.append("      </table>\n   </body>\n</html>\n")
    return _fit_text(parts, size)


def _verse(size: int, rnd: random.Random) -> bytes:
    parts = []
    total = 0
    while total < size:
        block = [f"{rnd.choice(_SPEAKERS)}\r\n"]
        for _ in range(rnd.randint(2, 12)):
            words = [rnd.choice(_GERMAN) for _ in range(rnd.randint(4, 9))]
            words[0] = words[0].capitalize()
            block.append(" ".join(words) + rnd.choice([",", ";", ".", "!", "?", ""]) + "\r\n")
        block.append("\r\n")
        s = "".join(block)
        parts.append(s)
        total += len(s.encode("utf-8"))
    return _fit_text(parts, size)


def _bitmap(size: int, rnd: random.Random) -> bytes:
    w = h = 512
    header = b"BM" + struct.pack("<IHHI", 14 + 40 + 1024 + w * h, 0, 0, 14 + 40 + 1024)
    header += struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, w * h, 2835, 2835, 256, 256)
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    noise = rnd.randbytes(w * h)
    rows = []
    for y in range(h):
        base = [int(128 + 55 * math.sin(x / 23.0 + y / 37.0) + 35 * math.cos((x - 256) * (y - 200) / 9000.0))
                for x in range(w)]
        off = y * w
        rows.append(bytes(max(0, min(255, v + (noise[off + x] % 13) - 6)) for x, v in enumerate(base)))
    data = header + palette + b"".join(rows)
    assert len(data) == size
    return data


def _pdf(size: int, rnd: random.Random) -> bytes:
    out = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"]
    total = len(out[0])
    obj = 1
    while total < size:
        if rnd.random() < 0.25:
            words = " ".join(rnd.choice(_GERMAN) for _ in range(rnd.randint(40, 200)))
            body = (f"{obj} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    f"/Contents {obj + 1} 0 R /Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n"
                    f"% BT /F1 11 Tf 72 720 Td ({words}) Tj ET\n").encode("utf-8")
        else:
            n = rnd.randint(2000, 24000)
            body = (f"{obj} 0 obj\n<< /Length {n} /Filter /FlateDecode >>\nstream\n".encode()
                    + rnd.randbytes(n) + b"\nendstream\nendobj\n")
        out.append(body)
        total += len(body)
        obj += 1
    data = b"".join(out)[:size - 6] + b"%%EOF\n"
    return data


@functools.lru_cache(maxsize=None)
def corpus(key: str) -> bytes:
    desc, binary, size = CORPORA[key]
    rnd = random.Random(f"ws-conformance-{key}")
    return {"json": _json, "html": _html, "verse": _verse, "bitmap": _bitmap, "pdf": _pdf}[key](size, rnd)


@functools.lru_cache(maxsize=None)
def corpus_text(key: str) -> str:
    return corpus(key).decode("utf-8")


class Slicer:
    """Consecutive slices of `length` units of a corpus, wrapping around at its end, as Autobahn
    does; text corpora are sliced by characters (the message then has at least `length` octets)."""

    def __init__(self, key: str, length: int):
        self.key = key
        self.binary = CORPORA[key][1]
        self.length = length
        self.pos = 0

    def next(self) -> bytes:
        src = corpus(self.key) if self.binary else corpus_text(self.key)
        n = len(src)
        a = self.pos
        b = (a + self.length) % n
        piece = src[a:b] if b > a else src[a:] + src[:b]
        self.pos = b
        return piece if self.binary else piece.encode("utf-8")
