#!/usr/bin/env python3
"""Run the WebSocket conformance catalog against a server and/or a client under test.

    python3 Tests/Conformance/run.py --server-cmd "ws-echo --port {port}" \\
        --client-cmd "ws-conformance-client --url {url} --agent {agent}" \\
        [--cases 1.*,2.*] [--exclude 9.*] [--full] [--report DIR] [--agent NAME]

    python3 Tests/Conformance/run.py --reference      # the python-websockets reference pair

Sections 12 and 13 (permessage-deflate) run only against the commands given with
--server-deflate-cmd / --client-deflate-cmd (WS_SERVER_DEFLATE_CMD / WS_CLIENT_DEFLATE_CMD),
e.g. "ws-echo --port {port} --deflate"; without them those cases are left out of that direction.

Placeholders: {port} (server command), {url} {agent} {port} (client command). Commands run
without a shell on 127.0.0.1. One JSON report per direction is written to --report
(default Tests/Conformance/reports/). Exit status 1 if any case FAILED.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wsharness.catalog import DEFAULT_CAP, build_catalog, select_cases  # noqa: E402
from wsharness import runner as wsrunner  # noqa: E402
from wsharness.runner import (reference_commands, reference_deflate_commands,  # noqa: E402
                              run_client_direction, run_server_direction, summarize, write_report)

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_REPORTS = os.path.join(HERE, "reports")


def progress(res: dict) -> None:
    mark = "ok " if res["passed"] else "FAIL"
    extra = "" if res["passed"] else f"  <- {res['behaviour_detail'][:90]} / {res['close_detail'][:60]}"
    print(f"  {mark} {res['id']:<8} {res['behaviour']:<13} close={res['close_behaviour']:<16} "
          f"{res['duration_ms']:>8.0f} ms{extra}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-cmd", help="command starting the server under test; {port} is replaced")
    ap.add_argument("--client-cmd", help="command starting the client under test; {url} and {agent} are replaced")
    ap.add_argument("--server-deflate-cmd", default=os.environ.get("WS_SERVER_DEFLATE_CMD"),
                    help="server under test for sections 12/13 (permessage-deflate enabled), e.g. "
                         "'ws-echo --port {port} --deflate'; without it 12.*/13.* are left out")
    ap.add_argument("--client-deflate-cmd", default=os.environ.get("WS_CLIENT_DEFLATE_CMD"),
                    help="client under test for sections 12/13 (offers permessage-deflate), e.g. "
                         "'ws-conformance-client --url {url} --agent {agent} --deflate'")
    ap.add_argument("--reference", action="store_true", help="use the python-websockets reference server and client")
    ap.add_argument("--agent", help="agent name for the report (default: derived from the command)")
    ap.add_argument("--label", help="free text stored in the report (e.g. 'reference')")
    ap.add_argument("--cases", default=os.environ.get("WS_CONFORMANCE_CASES"),
                    help="comma-separated case patterns, e.g. '1.*,6.4.*' (default: all)")
    ap.add_argument("--exclude", default=os.environ.get("WS_CONFORMANCE_EXCLUDE"), help="patterns to leave out")
    ap.add_argument("--full", action="store_true", default=os.environ.get("WS_CONFORMANCE_FULL") == "1",
                    help="section 9 at Autobahn's full sizes (up to 16 MiB; default caps at 1 MiB) and "
                         "sections 12/13 with Autobahn's 1000 messages per case (default: at most 256 KiB "
                         "of payload per case)")
    ap.add_argument("--report", default=os.environ.get("WS_CONFORMANCE_REPORT_DIR", DEFAULT_REPORTS),
                    help="directory for JSON reports")
    ap.add_argument("--log-dir", help="where to write the stdout/stderr of the process under test "
                                      "(default: the report directory)")
    ap.add_argument("--budget", type=float, default=float(os.environ.get("WS_CONFORMANCE_BUDGET", 1200)),
                    help="time budget per direction in seconds (default 1200); cases left after it fail unrun")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--transport", choices=["http1", "h2c"],
                    default=os.environ.get("WS_CONFORMANCE_TRANSPORT", "http1"),
                    help="server direction: the HTTP/1.1 upgrade (default) or WebSockets over HTTP/2 (RFC 8441, h2c "
                         "prior knowledge: the server command must accept it, e.g. ws-echo --h2c)")
    a = ap.parse_args(argv)
    wsrunner.TRANSPORT = a.transport

    server_cmd, client_cmd, agent = a.server_cmd, a.client_cmd, a.agent
    deflate_cmds = {"server": a.server_deflate_cmd, "client": a.client_deflate_cmd}
    label = a.label
    if a.reference:
        server_cmd, client_cmd, ref_agent = reference_commands()
        deflate_cmds = dict(zip(("server", "client"), reference_deflate_commands()))
        agent = agent or ref_agent
        label = label or "reference"
    if not server_cmd and not client_cmd and not any(deflate_cmds.values()):
        ap.error("give --server-cmd and/or --client-cmd (or --reference)")

    cases, _ = build_catalog(full=a.full)
    specs = select_cases(cases, a.cases, a.exclude)
    if not specs:
        ap.error(f"no case matches {a.cases!r}")
    log_dir = a.log_dir or a.report
    os.makedirs(log_dir, exist_ok=True)
    any_failed = False
    on_result = None if a.quiet else progress

    for direction, cmd in (("server", server_cmd), ("client", client_cmd)):
        dcmd = deflate_cmds[direction]
        if not cmd and not dcmd:
            continue
        these = specs if dcmd else [s for s in specs if s.deflate is None]
        if not cmd:
            these = [s for s in these if s.deflate is not None]
            cmd = dcmd
        elif len(these) < len(specs):
            print(f"== {direction}: {len(specs) - len(these)} permessage-deflate cases (12.*, 13.*) left out: "
                  f"give --{direction}-deflate-cmd / WS_{direction.upper()}_DEFLATE_CMD", flush=True)
        if not these:
            continue
        name = agent or os.path.basename(cmd.split()[0])
        print(f"== {direction} under test: {cmd}  ({len(these)} cases{', full' if a.full else ''})", flush=True)
        if dcmd and len(these) > len([s for s in these if s.deflate is None]):
            print(f"   12.*/13.* (permessage-deflate): {dcmd}", flush=True)
        started = time.time()
        log_path = os.path.join(log_dir, f"{direction}-under-test.log")
        try:
            if direction == "server":
                results = run_server_direction(cmd, these, log_path=log_path, on_result=on_result,
                                               budget=a.budget, deflate_cmd=dcmd)
            else:
                results = run_client_direction(cmd, name, these, log_path=log_path, on_result=on_result,
                                               budget=a.budget, deflate_cmd=dcmd)
        except RuntimeError as e:
            print(f"== {direction}: {e}", flush=True)
            any_failed = True
            continue
        path = write_report(a.report, direction, name, cmd, results, started, a.full, DEFAULT_CAP, REPO, label,
                            deflate_command=dcmd)
        s = summarize(results)
        print(f"== {direction}: {s['passed']}/{s['cases']} passed; behaviour {s['behaviour']}; "
              f"close {s['close_behaviour']}; {time.time() - started:.1f}s; report {path}", flush=True)
        any_failed |= s["failed"] > 0
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
