#!/usr/bin/env python3
"""Render CONFORMANCE.md from one or more JSON reports written by run.py or pytest.

    python3 Tests/Conformance/render.py Tests/Conformance/reports/*.json -o CONFORMANCE.md

Reports whose label is "reference" (run.py --reference, pytest --ws-reference) go to the
"Harness reference run" section; all others are results for our implementation. When several
reports exist for the same direction and kind, the newest wins.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import subprocess
import sys
from collections import Counter, OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from wsharness.catalog import SECTION_TITLES, build_catalog  # noqa: E402
from wsharness.cases import id_key  # noqa: E402

BEHAVIOURS = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED"]

# Why the reference implementation (python-websockets) gets each verdict that is not OK.
# Every such verdict in a reference report must match one of these, or render.py flags it.
REFERENCE_NOTES = [
    (["3.2", "3.3", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5", "5.15"], "NON-STRICT",
     "websockets processes all frames that arrived together before the echo application gets to run, "
     "so it fails the connection on the bad frame before it has echoed the valid message that preceded "
     "it. Timing-dependent (frames sent in separate chops can leave time for the echo), and listed by "
     "websockets' own compliance notes for Autobahn (3.2, 3.3, 4.1.3, 4.1.4, 4.2.3, 4.2.4, 5.15)."),
    (["6.4.1", "6.4.2", "6.4.3", "6.4.4"], "NON-STRICT",
     "websockets 17 (asyncio API) decodes a text message's UTF-8 when the whole message has arrived "
     "(asyncio/messages.py), so the invalid octet sent in part 2 is only reported after part 3, with "
     "'invalid continuation byte at position 11' (1007). Autobahn calls late failure NON-STRICT. "
     "(websockets' compliance notes, written for its earlier implementation, list 6.4.3 and 6.4.4.)"),
    (["7.1.5"], "FAILED",
     "websockets answers a close frame that arrives in the middle of a fragmented message with 1002 "
     "'incomplete fragmented message' (protocol.py). RFC 6455 §5.4 allows control frames between "
     "fragments, and Autobahn 7.1.5 expects a clean close with 1000; a wrong close code is a FAILED "
     "verdict in the 7.x cases (Autobahn turns WRONG CODE into FAILED there)."),
    (["7.1.6", "7.13.1", "7.13.2"], "INFORMATIONAL",
     "Informational by definition (implementation-defined close behaviour / close codes outside the "
     "ranges defined by RFC 6455)."),
    (["13.3.*", "13.5.*"], "UNIMPLEMENTED",
     "The harness (client) offers server_max_window_bits=8. websockets cannot compress with an 8-bit "
     "window (zlib's deflateInit2 rejects raw deflate with wbits=8) and declines such an offer "
     "(ServerPerMessageDeflateFactory: 'unsupported server_max_window_bits = 8, use 9'), so the server "
     "accepts no extension; RFC 7692 §7.1.2.1 allows declining, and Autobahn calls a case without "
     "permessage-deflate UNIMPLEMENTED. In 13.7 the same server declines the first offer and accepts "
     "the second (server_no_context_takeover), which is OK.", "server"),
    (["13.3.*", "13.5.*", "13.7.*"], "FAILED",
     "The harness (server) answers websockets' offer 'permessage-deflate; client_max_window_bits' with "
     "client_max_window_bits=8, as Autobahn's fuzzing server does in 13.3, 13.5 and 13.7. By offering "
     "client_max_window_bits without a value the client says it can limit its window to any value "
     "8..15 (RFC 7692 §7.1.2.2), but websockets cannot compress with an 8-bit window (zlib) and "
     "aborts the connection right after the 101 response (client log: 'NegotiationError: Unsupported "
     "extension: name = permessage-deflate, params = [('client_max_window_bits', '8')]'), so no echo "
     "arrives. A limitation websockets documents (ClientPerMessageDeflateFactory).", "client"),
]


def reference_note(case_id: str, behaviour: str, direction: str | None = None):
    for note in REFERENCE_NOTES:
        ids, beh, text = note[:3]
        where = note[3] if len(note) > 3 else None
        if where is not None and direction is not None and where != direction:
            continue
        if beh == behaviour and any(fnmatch.fnmatchcase(case_id, pat) for pat in ids):
            return text
    return None


def compact_ids(items) -> str:
    """[('13.3.1', x), ('13.3.2', x), ('13.3.3', x), ('7.1.5', y)] -> '13.3.1–13.3.3 x, 7.1.5 y'
    (runs of three or more consecutive cases of one subsection with the same close note)."""
    out, run = [], []

    def flush():
        if len(run) >= 3:
            out.append(f"{run[0][0]}–{run[-1][0]}{run[0][1]}")
        else:
            out.extend(cid + extra for cid, extra in run)
        run.clear()
    for cid, extra in items:
        if run:
            prev, pextra = run[-1]
            pp, cp = prev.rsplit(".", 1), cid.rsplit(".", 1)
            if not (pp[0] == cp[0] and extra == pextra and pp[1].isdigit() and cp[1].isdigit()
                    and int(cp[1]) == int(pp[1]) + 1):
                flush()
        run.append((cid, extra))
    flush()
    return ", ".join(out)


def load(paths):
    reports = []
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        doc["_path"] = p
        reports.append(doc)
    # newest per (kind, direction)
    chosen = OrderedDict()
    for doc in sorted(reports, key=lambda d: d.get("started", "")):
        label = doc.get("label") or ""
        kind = "reference" if label == "reference" else ("http2" if "HTTP/2" in label else "ours")
        chosen[(kind, doc["direction"])] = doc
    return chosen


def cell(res: dict | None) -> str:
    if res is None:
        return "—"
    beh = res["behaviour"]
    parts = [f"**{beh}**" if beh == "FAILED" else beh]
    close = res.get("close") or {}
    code = close.get("peer_close_code")
    cb = res["close_behaviour"]
    if cb not in ("OK", "INFORMATIONAL"):
        parts.append(f"close {cb}" + (f" {code}" if code is not None else ""))
    elif code is not None:
        parts.append(str(code))
    elif close.get("tcp_closed_by") == "peer" and close.get("first_close_by") is None:
        parts.append("TCP drop")
    m = res.get("metrics") or {}
    ratio = (res.get("deflate") or {}).get("rx_ratio")
    if ratio is not None:
        parts.append(f"ratio {ratio:.2f}")
    if "roundtrip_total_ms" in m:
        parts.append(f"{m['roundtrip_total_ms'] / 1000:.2f} ms/rt")
    elif "echo_ms" in m:
        parts.append(f"echo {m['echo_ms']:.0f} ms")
    parts.append(f"{res['duration_ms']:.0f} ms")
    return " · ".join(parts)


def summary_line(doc: dict) -> str:
    results = doc["results"]
    by = Counter(r["behaviour"] for r in results)
    close = Counter(r["close_behaviour"] for r in results)
    beh = ", ".join(f"{by[b]} {b}" for b in BEHAVIOURS if by.get(b))
    cl = ", ".join(f"{n} {k}" for k, n in sorted(close.items()))
    passed = sum(r["passed"] for r in results)
    who = "server under test" if doc["direction"] == "server" else "client under test"
    sized = ("full sizes (section 9 up to 16 MiB, 1000 messages per case in 12/13)" if doc.get("full")
             else "default run (section 9 capped at 1 MiB, 12/13 at most 256 KiB of payload per case)")
    deflate = ""
    if doc.get("deflate_command"):
        n = sum(r["section"] in ("12", "13") for r in results)
        deflate = f" 12.\\*/13.\\* ({n} cases) with permessage-deflate enabled (`--deflate`)."
    return (f"- **{who}** (`{doc['agent']}`): {len(results)} cases, {passed} passed — {beh}; "
            f"close behaviour: {cl}. Run {doc['started']}, {doc['duration_s']:.0f} s, commit "
            f"`{doc.get('commit') or '?'}`, {sized}.{deflate}")


def section_scores(docs: list[dict]) -> list[str]:
    secs = []
    for d in docs:
        for r in d["results"]:
            if r["section"] not in secs:
                secs.append(r["section"])
    secs.sort(key=lambda s: (s == "H", int(s) if s.isdigit() else 99))
    head = "| Section | " + " | ".join(
        f"{'Server' if d['direction'] == 'server' else 'Client'} (`{d['agent']}`)" for d in docs) + " |"
    lines = [head, "|---|" + "---|" * len(docs)]
    for s in secs:
        row = [f"{s} {SECTION_TITLES.get(s, '')}"]
        for d in docs:
            rs = [r for r in d["results"] if r["section"] == s]
            c = Counter(r["behaviour"] for r in rs)
            row.append(", ".join(f"{c[b]} {b}" for b in BEHAVIOURS if c.get(b)) or "—")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def case_tables(docs: list[dict], subtitles: dict, catalog_desc: dict) -> list[str]:
    by_dir = {d["direction"]: {r["id"]: r for r in d["results"]} for d in docs}
    ids = sorted({cid for m in by_dir.values() for cid in m}, key=id_key)
    out = []
    current_section = current_sub = None
    dirs = [d for d in ("server", "client") if d in by_dir]
    header = "| Case | Description | " + " | ".join("Server under test" if d == "server" else "Client under test"
                                                  for d in dirs) + " |"
    sep = "|---|---|" + "---|" * len(dirs)
    for cid in ids:
        sec = cid.split(".")[0]
        sub = ".".join(cid.split(".")[:2])
        if sec != current_section:
            current_section, current_sub = sec, None
            out += ["", f"#### {sec} {SECTION_TITLES.get(sec, '')}", ""]
            if sec not in ("6", "12", "13"):
                out += [header, sep]
        if sec in ("6", "12", "13") and sub != current_sub:
            current_sub = sub
            title = subtitles.get(sub, {"6.1": "Valid UTF-8 with zero payload fragments",
                                        "6.2": "Valid UTF-8 unfragmented, fragmented on code points and within "
                                               "code points",
                                        "6.3": "Invalid UTF-8 text (unfragmented, octet-wise fragments)",
                                        "6.4": "Fail-fast on invalid UTF-8"}.get(sub, ""))
            out += ["", f"**{sub} {title}**", "", header, sep]
        any_res = next(m[cid] for m in by_dir.values() if cid in m)
        desc = catalog_desc.get(cid, any_res["description"]).replace("|", "\\|")
        if len(desc) > 110:
            desc = desc[:107] + "…"
        row = [cid, desc] + [cell(by_dir[d].get(cid)) for d in dirs]
        out.append("| " + " | ".join(row) + " |")
    return out


def git_head():
    try:
        return subprocess.run(["git", "-C", HERE, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def render(chosen) -> str:
    _, subtitles = build_catalog()
    catalog, _ = build_catalog(full=True)
    catalog_desc = {c.id: c.description for c in catalog}
    ours = [chosen[k] for k in (("ours", "server"), ("ours", "client")) if k in chosen]
    ref = [chosen[k] for k in (("reference", "server"), ("reference", "client")) if k in chosen]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    L += ["# Conformance: RFC 6455 (Autobahn|Testsuite case catalog)", "",
          f"<!-- Generated by Tests/Conformance/render.py on {now} at commit {git_head()}. Do not edit by hand. -->", "",
          f"Generated {now} from commit `{git_head()}` by `Tests/Conformance/render.py`.", "",
          "The suite in `Tests/Conformance/` replays Autobahn|Testsuite's cases 1.\\*–7.\\*, 9.\\*, 10.\\* and "
          "the permessage-deflate cases 12.\\* and 13.\\* (RFC 7692) "
          "(numbering, payloads, fragmentations, chop sizes, offers, expectations and verdict rules of Autobahn) with a "
          "harness of its own that speaks raw RFC 6455 over standard-library sockets, so it can put any "
          "malformed frame on the wire. It tests a **server** (the harness is the client and masks its frames) "
          "and, with roles swapped, a **client** (the harness is an Autobahn-compatible fuzzing server that sends "
          "unmasked frames). Section H holds three harness-only cases for RFC rules Autobahn does not exercise.",
          "", "## How to run", "", "```sh",
          "# our implementation (after `swift build`; binaries in .build/debug or .build/release)",
          "python3 Tests/Conformance/run.py \\",
          "    --server-cmd \".build/debug/ws-echo --port {port}\" \\",
          "    --client-cmd \".build/debug/ws-conformance-client --url {url} --agent {agent}\" \\",
          "    --server-deflate-cmd \".build/debug/ws-echo --port {port} --deflate\" \\",
          "    --client-deflate-cmd \".build/debug/ws-conformance-client --url {url} --agent {agent} --deflate\" \\",
          "    --agent WebSocketEngine            # add --full for Autobahn's full sizes, --cases '6.*,7.*' to select",
          "",
          "# the same through pytest (one test id per case: test_server[6.4.1], test_client[12.1.1], ...)",
          "WS_SERVER_CMD=\".build/debug/ws-echo --port {port}\" \\",
          "WS_CLIENT_CMD=\".build/debug/ws-conformance-client --url {url} --agent {agent}\" \\",
          "WS_SERVER_DEFLATE_CMD=\".build/debug/ws-echo --port {port} --deflate\" \\",
          "WS_CLIENT_DEFLATE_CMD=\".build/debug/ws-conformance-client --url {url} --agent {agent} --deflate\" \\",
          "    pytest Tests/Conformance -q        # 12.*/13.* skip without the two *_DEFLATE_CMD",
          "",
          "# the harness reference run (python-websockets), then this file",
          "pip install websockets pytest",
          "python3 Tests/Conformance/run.py --reference",
          "python3 Tests/Conformance/render.py Tests/Conformance/reports/*.json -o CONFORMANCE.md",
          "```", "",
          "Details (options, timeouts, report format, deviations from Autobahn): `Tests/Conformance/README.md`.",
          "", "## Reading the results", "",
          "- **OK**: the peer behaved as the case expects. **NON-STRICT**: conforming, but not the strict, "
          "canonical behaviour Autobahn prefers (e.g. failing on invalid UTF-8 only when the message is complete "
          "instead of at the first invalid octet). **INFORMATIONAL**: behaviour the RFC leaves open; recorded, "
          "never a failure. **UNIMPLEMENTED** (12/13): permessage-deflate was not negotiated for the case's "
          "parameters; a test failure. **FAILED**: a MUST of RFC 6455 / RFC 7692 is broken (in sections 9, "
          "12 and 13 it can also mean a limit or time-out was hit).",
          "- Close behaviour (Autobahn's): OK, WRONG CODE (peer close code not among the expected ones; a "
          "failure in 7.x), UNCLEAN (no full closing handshake where one is required), FAILED (the wrong side "
          "closed first, or the peer never failed a connection it had to fail), FAILED BY CLIENT (the harness, "
          "as client, had to drop TCP because the server did not).",
          "- A cell reads `behaviour · peer close code (or close verdict) · duration`; in 12/13 also the "
          "compression ratio of the peer's messages (octets on the wire / octets inflated). A test fails on a "
          "FAILED or UNIMPLEMENTED behaviour or a FAILED/UNCLEAN close.",
          "- Sections 12/13: the harness implements permessage-deflate itself (Python's zlib). As a client it "
          "offers the case's parameters (13.x: server_no_context_takeover / server_max_window_bits 8 or 15, "
          "always with client_max_window_bits) and fails the case on an answer outside the offer; as a server "
          "it answers the client's offer with the case's client_no_context_takeover / client_max_window_bits "
          "(8 or 15), as Autobahn's fuzzing server does. Every echo is compared octet for octet.", ""]

    L += ["## Results: WebSocketEngine", ""]
    if ours:
        for d in ours:
            L.append(summary_line(d))
        L += [""] + section_scores(ours) + [""]
        L += case_tables(ours, subtitles, catalog_desc)
    else:
        L += ["_Not run yet._ `ws-echo` and `ws-conformance-client` are being written; the lead re-runs the "
              "suite against them with the commands above and regenerates this file. Until then the only "
              "results here are the harness reference run below.", ""]

    if ("http2", "server") in chosen:
        L += [""] + http2_section(chosen[("http2", "server")])
    L += ["", "## Harness reference run", ""]
    if not ref:
        L += ["_No reference report given._"]
        return "\n".join(L) + "\n"
    import_ver = ref[0]["agent"]
    L += [f"To show that the harness judges correctly, the full catalog runs against an independent "
          f"implementation, python-websockets (`{import_ver}`), known to be close to fully conformant: "
          "`Tests/Conformance/reference/echo_server.py` (server under test) and "
          "`Tests/Conformance/reference/autobahn_client.py` (client under test); for 12.\\*/13.\\* both run "
          "with `--deflate` (server: `ServerPerMessageDeflateFactory()` at its defaults, which follows the "
          "client's offer; client: `compression=\"deflate\"`, which offers "
          "`permessage-deflate; client_max_window_bits`). Every verdict other than OK "
          "is explained below; none is unexplained.", ""]
    for d in ref:
        L.append(summary_line(d))
    L += ["", "Scores per section:", ""] + section_scores(ref) + [""]
    L += ["### Verdicts other than OK, explained", ""]
    groups = OrderedDict()
    unexplained = []
    for d in ref:
        for r in d["results"]:
            if r["behaviour"] == "OK" and r["close_behaviour"] == "OK":
                continue
            note = reference_note(r["id"], r["behaviour"], d["direction"])
            if note is None:
                unexplained.append(r["id"])
                note = "**not explained**"
            g = groups.setdefault((r["behaviour"], note), {"server": [], "client": []})
            extra = f" (close {r['close_behaviour']})" if r["close_behaviour"] not in ("OK", "INFORMATIONAL") else ""
            g[d["direction"]].append((r["id"], extra))
    for (beh, note), dirs in groups.items():
        where = "; ".join(f"{'server' if k == 'server' else 'client'}: {compact_ids(v)}" for k, v in dirs.items() if v)
        L.append(f"- **{beh}** — {where}. {note}")
    L += ["",
          "- websockets' default of at most 4096 fragments per message (`WEBSOCKETS_MAX_FRAGMENTS`) would fail "
          "9.3.1/9.4.1 (and 9.3.2/9.4.2 at full size) with 1009 'too many fragments'; the reference scripts raise "
          "it to 2^17 as an application configured for those cases would.",
          "- Timing-dependent NON-STRICT verdicts (first row above) can differ between runs and between "
          "directions: whether the echo of the valid message leaves before the bad frame is processed depends "
          "on how the frames are split into TCP reads.", ""]
    L += ["### Reference run, every case"]
    L += case_tables(ref, subtitles, catalog_desc)
    if unexplained:
        print(f"warning: unexplained reference verdicts: {', '.join(unexplained)}", file=sys.stderr)
    return "\n".join(L) + "\n"


def http2_section(doc: dict) -> list[str]:
    """The server's results with the WebSocket on an HTTP/2 stream (run.py --transport h2c)."""
    L = ["## Results over HTTP/2 (RFC 8441)", "",
         "The same catalog against the server with every WebSocket opened by an extended CONNECT on an h2c "
         "connection (`run.py --transport h2c`, server `ws-echo --h2c`): the harness's frames travel in the "
         "stream's DATA frames through the `h2` package (`Tests/Conformance/wsharness/h2transport.py`); the "
         "server's END_STREAM counts as its TCP close and the harness closing its side as END_STREAM, so the "
         "close verdicts mean the same as over HTTP/1.1.", "",
         "```sh",
         "python3 Tests/Conformance/run.py --transport h2c \\",
         "    --server-cmd \".build/debug/ws-echo --port {port} --h2c\" \\",
         "    --server-deflate-cmd \".build/debug/ws-echo --port {port} --h2c --deflate\" \\",
         "    --agent WebSocketEngine-h2c --label \"server over HTTP/2 (h2c, RFC 8441)\"",
         "```", "", summary_line(doc), "", "Scores per section (beside HTTP/1.1 above):", ""]
    L += section_scores([doc])
    failing = [r["id"] for r in doc["results"] if not r["passed"]]
    L += ["", f"Cases not passed: {compact_ids([(i, '') for i in failing])}." if failing else
          "Every case passed."]
    return L


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", help="JSON reports (run.py / pytest)")
    ap.add_argument("-o", "--output", default=os.path.join(HERE, "..", "..", "CONFORMANCE.md"))
    ap.add_argument("--http2-section-only", action="store_true",
                    help="print only the HTTP/2 section of the given report (to insert it without the others)")
    a = ap.parse_args(argv)
    if a.http2_section_only:
        chosen = load(a.reports)
        if ("http2", "server") not in chosen:
            print("no HTTP/2 server report given", file=sys.stderr)
            return 1
        print("\n".join(http2_section(chosen[("http2", "server")])))
        return 0
    text = render(load(a.reports))
    with open(a.output, "w") as f:
        f.write(text)
    print(f"wrote {os.path.abspath(a.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
