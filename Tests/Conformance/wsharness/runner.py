"""Process management and the two directions of a run.

* Server under test: start `--server-cmd` with a free port, wait until it listens, then for each
  case connect as a client (masked frames), play the case, judge it. A server that dies is
  restarted for the next case (and the case it died in says so).
* Client under test: listen on 127.0.0.1 (free port) speaking Autobahn's fuzzing-server URLs
  (`/getCaseCount`, `/runCase?case=N&agent=A`, `/updateReports?agent=A`), start `--client-cmd`
  and play each case on the connection the client opens for it (unmasked frames). A client that
  stalls or exits is killed and restarted on the cases it has not run yet; the case it was
  stuck on fails.

Processes are started in their own session and stopped by their PID (process group = PID).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import select
import shlex
import signal
import socket
import subprocess
import sys
import time

from . import deflate as D
from . import frames as F
from .cases import CaseRun, short_events
from .engine import FAILED, OPEN, Peer

HOST = "127.0.0.1"
HANDSHAKE_TIMEOUT = 5.0
START_TIMEOUT = 30.0
CLIENT_CONNECT_TIMEOUT = 15.0   # time the client under test has to open the next connection
# The server direction's transport: "http1" (the RFC 6455 upgrade) or "h2c" (RFC 8441 extended CONNECT on an h2c
# connection, see h2transport.py).
TRANSPORT = os.environ.get("WS_CONFORMANCE_TRANSPORT", "http1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_process(cmd: str, log_path: str | None):
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(shlex.split(cmd), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        if out is not subprocess.DEVNULL:
            out.close()
        raise RuntimeError(f"cannot start {cmd!r}: {e}") from e
    proc._log_handle = out  # type: ignore[attr-defined]
    return proc


def stop_process(proc, grace: float = 3.0) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)     # the group we created for this PID
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(5)
    h = getattr(proc, "_log_handle", None)
    if h not in (None, subprocess.DEVNULL):
        h.close()


def read_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    """Read an HTTP head; return (head, bytes after it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete HTTP head in time")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed during the opening handshake")
        buf += chunk
        if len(buf) > 65536:
            raise ConnectionError("HTTP head too large")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


# ------------------------------------------------------------------------------ result record
def make_result(spec, run: CaseRun | None, p: Peer | None, duration: float, error: str | None = None,
                http: tuple[bytes, bytes] | None = None, deflate_info: dict | None = None) -> dict:
    res = {
        "id": spec.id,
        "section": spec.section,
        "description": spec.description,
        "expectation": spec.expectation,
        "duration_ms": round(duration * 1000, 1),
        "performance": spec.performance,
        "capped_from": spec.capped_from,
    }
    if http is not None:
        res["http_request"] = http[0].decode("latin-1")[:1000]
        res["http_response"] = http[1].decode("latin-1")[:1000]
    if getattr(spec, "deflate", None) is not None:
        info = dict(deflate_info if deflate_info is not None else (p.deflate_info if p is not None else {}))
        if p is not None:
            st = p.deflate_stats
            info["stats"] = dict(st)
            if st.get("rx_payload_octets"):
                info["rx_ratio"] = round(st["rx_wire_octets"] / st["rx_payload_octets"], 4)
            if st.get("tx_payload_octets"):
                info["tx_ratio"] = round(st["tx_wire_octets"] / st["tx_payload_octets"], 4)
        res["deflate"] = info
    if run is None or p is None:
        res.update({"behaviour": FAILED, "behaviour_detail": error or "case did not run",
                    "close_behaviour": FAILED, "close_detail": error or "case did not run",
                    "passed": False, "expected": {}, "received": "[]", "close": {},
                    "wirelog": [], "violations": [], "metrics": {}, "notes": []})
        return res
    first = None
    if p.close_sent or p.close_received:
        first = "harness" if p.closed_by_me else "peer"
    reason = p.remote_close_reason
    res.update({
        "behaviour": run.behaviour,
        "behaviour_detail": run.result,
        "close_behaviour": run.close_behaviour,
        "close_detail": run.close_result,
        "passed": run.passed,
        "expected": {k: short_events(v) for k, v in run.expected.items()},
        "received": short_events(run.received),
        "close": {
            "first_close_by": first,
            "harness_close_code": p.local_close_code,
            "peer_close_code": p.remote_close_code,
            "peer_close_reason": None if reason is None else reason.decode("utf-8", "replace")[:123],
            "clean": p.was_clean,
            "tcp_closed_by": "harness" if p.dropped_by_me else ("peer" if p.peer_dropped_tcp else None),
            "not_clean_reason": None if p.was_clean else p.not_clean_reason,
            "killed_by_timer": p.killed_by_timer,
        },
        "wirelog": p.wirelog,
        "violations": list(dict.fromkeys(p.violations)),
        "metrics": run.metrics,
        "notes": run.notes + ([error] if error else []),
    })
    return res


# ----------------------------------------------------------------------- server under test
MAX_HANDSHAKE_FAILURES = 5      # consecutive; then the remaining cases fail without trying
DEFAULT_BUDGET = 20 * 60        # seconds per direction; cases left after that fail unrun


class ServerUnderTest:
    def __init__(self, cmd: str, log_path: str | None = None, budget: float = DEFAULT_BUDGET):
        self.cmd = cmd
        self.log_path = log_path
        self.proc = None
        self.port = None
        self.restarts = 0
        self.handshake_failures = 0
        self.deadline = time.monotonic() + budget

    def start(self) -> None:
        self.port = free_port()
        cmd = self.cmd.format(port=self.port, host=HOST)
        self.proc = start_process(cmd, self.log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server command exited with {self.proc.returncode}: {cmd}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        stop_process(self.proc)
        raise RuntimeError(f"server did not listen on {HOST}:{self.port} within {START_TIMEOUT:.0f}s: {cmd}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> str | None:
        """Restart a dead server; return a note if it had died."""
        if self.alive():
            return None
        code = None if self.proc is None else self.proc.returncode
        self.restarts += 1
        self.start()
        return f"server under test had exited (code {code}); restarted"

    def stop(self) -> None:
        stop_process(self.proc)


def run_server_case(spec, sut: ServerUnderTest) -> dict:
    if time.monotonic() > sut.deadline:
        return make_result(spec, None, None, 0.0, "not run: the run's time budget is exhausted")
    if sut.handshake_failures >= MAX_HANDSHAKE_FAILURES:
        return make_result(spec, None, None, 0.0, f"not run: the last {MAX_HANDSHAKE_FAILURES} opening "
                                                  "handshakes with the server under test failed")
    res = _run_server_case(spec, sut)
    if "opening handshake failed" in res["behaviour_detail"] or "cannot connect" in res["behaviour_detail"]:
        sut.handshake_failures += 1
    else:
        sut.handshake_failures = 0
    return res


def _run_server_case(spec, sut: ServerUnderTest) -> dict:
    try:
        note = sut.ensure_running()
    except RuntimeError as e:
        return make_result(spec, None, None, 0.0, f"cannot connect to server: restart failed: {e}")
    t0 = time.monotonic()
    run = CaseRun(spec)
    if TRANSPORT == "h2c":
        return _run_server_case_h2c(spec, sut, run, t0, note)
    try:
        sock = socket.create_connection((HOST, sut.port), timeout=HANDSHAKE_TIMEOUT)
    except OSError as e:
        return make_result(spec, None, None, time.monotonic() - t0, f"cannot connect to server: {e}")
    dcase = getattr(spec, "deflate", None)
    extra, info = None, None
    if dcase is not None:
        offer = D.offers_header(dcase.offers)
        extra = {"Sec-WebSocket-Extensions": offer}
        info = {"offer": offer}
    try:
        req, key = F.client_request(HOST, sut.port, "/", extra)
        sock.sendall(req)
        head, rest = read_head(sock, time.monotonic() + HANDSHAKE_TIMEOUT)
        http = (req, head)
        parsed = F.parse_head(head)
        problem = F.check_server_response(parsed, key, extensions_offered=dcase is not None)
        if problem:
            sock.close()
            return make_result(spec, None, None, time.monotonic() - t0, f"opening handshake failed: {problem}",
                               http=http, deflate_info=info)
    except (OSError, TimeoutError, ConnectionError) as e:
        sock.close()
        return make_result(spec, None, None, time.monotonic() - t0, f"opening handshake failed: {e}",
                           deflate_info=info)
    codec = None
    if dcase is not None:
        answer = parsed.headers.get("sec-websocket-extensions")
        info["response"] = answer
        params, err = D.check_response(dcase.offers, answer)
        if err:
            # RFC 7692 §7.1 / RFC 6455 §9.1: the client must fail the connection.
            sock.close()
            return make_result(spec, None, None, time.monotonic() - t0,
                               f"permessage-deflate negotiation: {err}", http=http, deflate_info=info)
        if params is None:
            info["note"] = "the server accepted no extension"
        else:
            info["agreed"] = params.as_dict()
            codec = D.Codec(params, is_server=False)
    p = Peer(sock, is_server=False, leftover=rest, deflate=codec, deflate_info=info)
    p.run(run, spec.timeout)
    run.evaluate(p)
    res = make_result(spec, run, p, time.monotonic() - t0, http=http)
    # Give a crashing server a moment to be noticed, so the crash is attributed to this case.
    time.sleep(0.005)
    if not sut.alive():
        res["notes"].append(f"server under test exited during this case (code {sut.proc.returncode})")
        res["behaviour"] = FAILED
        res["passed"] = False
    if note:
        res["notes"].append(note)
    return res


def _run_server_case_h2c(spec, sut: ServerUnderTest, run: CaseRun, t0: float, note: str | None) -> dict:
    """The server direction over HTTP/2 (RFC 8441): the same case on one stream of an h2c connection."""
    from . import h2transport
    dcase = getattr(spec, "deflate", None)
    extra, info = None, None
    if dcase is not None:
        offer = D.offers_header(dcase.offers)
        extra = {"Sec-WebSocket-Extensions": offer}
        info = {"offer": offer}
    try:
        bridge = h2transport.open_websocket(HOST, sut.port, "/", extra, HANDSHAKE_TIMEOUT)
    except (OSError, TimeoutError, ConnectionError, ValueError) as e:
        return make_result(spec, None, None, time.monotonic() - t0, f"opening handshake failed (h2c): {e}",
                           deflate_info=info)
    http = ("\r\n".join(bridge.request_lines).encode(),
            "\r\n".join(f"{k}: {v}" for k, v in (bridge.response or {}).items()).encode())
    if bridge.status != "200":
        bridge.harness_end.close()
        return make_result(spec, None, None, time.monotonic() - t0,
                           f"opening handshake failed (h2c): status {bridge.status}", http=http, deflate_info=info)
    codec = None
    if dcase is not None:
        answer = (bridge.response or {}).get("sec-websocket-extensions")
        info["response"] = answer
        params, err = D.check_response(dcase.offers, answer)
        if err:
            bridge.harness_end.close()
            return make_result(spec, None, None, time.monotonic() - t0,
                               f"permessage-deflate negotiation: {err}", http=http, deflate_info=info)
        if params is None:
            info["note"] = "the server accepted no extension"
        else:
            info["agreed"] = params.as_dict()
            codec = D.Codec(params, is_server=False)
    p = Peer(bridge.harness_end, is_server=False, deflate=codec, deflate_info=info)
    p.run(run, spec.timeout)
    run.evaluate(p)
    res = make_result(spec, run, p, time.monotonic() - t0, http=http)
    time.sleep(0.005)
    if not sut.alive():
        res["notes"].append(f"server under test exited during this case (code {sut.proc.returncode})")
        res["behaviour"] = FAILED
        res["passed"] = False
    if note:
        res["notes"].append(note)
    return res


def run_server_direction(cmd: str, specs, log_path=None, on_result=None, budget=DEFAULT_BUDGET,
                         deflate_cmd: str | None = None) -> list[dict]:
    """Cases with permessage-deflate (sections 12/13) run against `deflate_cmd` (a second server
    process, started when the first such case comes); the caller leaves them out without it."""
    results = []
    suts: dict = {}
    started = time.monotonic()
    try:
        for spec in specs:
            which = "deflate" if getattr(spec, "deflate", None) is not None else "plain"
            if which not in suts:
                this_cmd = deflate_cmd if which == "deflate" else cmd
                if not this_cmd:
                    raise RuntimeError("no server command for the permessage-deflate cases "
                                       "(--server-deflate-cmd / WS_SERVER_DEFLATE_CMD)")
                sut = ServerUnderTest(this_cmd, log_path, max(1.0, budget - (time.monotonic() - started)))
                sut.start()
                suts[which] = sut
            res = run_server_case(spec, suts[which])
            results.append(res)
            if on_result:
                on_result(res)
    finally:
        for sut in suts.values():
            sut.stop()
    return results


# ----------------------------------------------------------------------- client under test
class _Control:
    """Tiny case object for the control URLs (/getCaseCount, /updateReports)."""

    def __init__(self, text: bytes | None):
        self.text = text

    def on_open(self, p):
        if self.text is not None:
            p.send_frame(F.OP_TEXT, self.text)
        p.send_close(1000)
        p.kill_after(3)

    def on_message(self, p, data, binary):
        pass

    def on_ping(self, p, payload):
        pass

    def on_pong(self, p, payload):
        pass


class ClientHarness:
    """The harness as an Autobahn-compatible fuzzing server for a client under test."""

    def __init__(self, cmd: str, agent: str, log_path: str | None = None, max_restarts: int = 25,
                 budget: float = DEFAULT_BUDGET):
        self.deadline = time.monotonic() + budget
        self.cmd = cmd
        self.agent = agent
        self.log_path = log_path
        self.max_restarts = max_restarts
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.url = f"ws://{HOST}:{self.port}"
        self.proc = None

    def _accept(self, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.listener], [], [], min(left, 0.2))
            if r:
                conn, _ = self.listener.accept()
                return conn
            if self.proc is not None and self.proc.poll() is not None:
                # Process gone: drain one last queued connection, if any.
                r, _, _ = select.select([self.listener], [], [], 0.05)
                if r:
                    conn, _ = self.listener.accept()
                    return conn
                return None

    def _handshake(self, conn, batch=None, pending=None):
        """Answer the opening handshake. For a /runCase connection of a permessage-deflate case,
        answer the client's offer with the case's parameters. Returns (request, path, query,
        leftover bytes, problem, codec or None, deflate info or None)."""
        head, rest = read_head(conn, time.monotonic() + HANDSHAKE_TIMEOUT)
        request = F.parse_head(head)
        path, query = F.parse_request_target(request.start_line)
        spec = None
        if path == "/runCase" and batch is not None and query.get("case", "").isdigit():
            index = int(query["case"])
            if 1 <= index <= len(batch) and batch[index - 1] in pending:
                spec = batch[index - 1]
        dcase = getattr(spec, "deflate", None)
        answer, codec, info = None, None, None
        if dcase is not None:
            offer = request.headers.get("sec-websocket-extensions")
            answer, params, note = D.negotiate(offer, dcase.accepts)
            info = {"offer": offer, "response": answer, "note": note}
            if params is not None:
                info["agreed"] = params.as_dict()
                codec = D.Codec(params, is_server=True)
        response, problem = F.server_response(request, answer)
        conn.sendall(response)
        request.response = response
        return request, path, query, rest, problem, (codec if problem is None else None), info

    def run(self, specs, on_result=None) -> list[dict]:
        pending = list(specs)
        results: dict[str, dict] = {}
        restarts = 0
        try:
            while pending:
                batch = list(pending)
                try:
                    self.proc = start_process(self.cmd.format(url=self.url, agent=self.agent, port=self.port),
                                              self.log_path)
                except RuntimeError as e:
                    for spec in pending:
                        res = make_result(spec, None, None, 0.0, f"not run: {e}")
                        results[spec.id] = res
                        if on_result:
                            on_result(res)
                    pending.clear()
                    break
                stuck_note = self._serve_batch(batch, pending, results, on_result)
                stop_process(self.proc)
                self.proc = None
                if pending and time.monotonic() > self.deadline:
                    for spec in pending:
                        res = make_result(spec, None, None, 0.0, "not run: the run's time budget is exhausted")
                        results[spec.id] = res
                        if on_result:
                            on_result(res)
                    pending.clear()
                if pending:
                    restarts += 1
                    victim = pending.pop(0)
                    res = make_result(victim, None, None, 0.0,
                                      f"client under test never ran this case ({stuck_note}); client restarted")
                    results[victim.id] = res
                    if on_result:
                        on_result(res)
                    if restarts > self.max_restarts:
                        for spec in pending:
                            res = make_result(spec, None, None, 0.0, "not run: client under test kept failing")
                            results[spec.id] = res
                            if on_result:
                                on_result(res)
                        pending.clear()
        finally:
            stop_process(self.proc)
            self.listener.close()
        return [results[s.id] for s in specs if s.id in results]

    def _serve_batch(self, batch, pending, results, on_result) -> str:
        first = True
        while True:
            if time.monotonic() > self.deadline:
                return "time budget exhausted"
            conn = self._accept(START_TIMEOUT if first else CLIENT_CONNECT_TIMEOUT)
            first = False
            if conn is None:
                if self.proc.poll() is not None:
                    return f"client exited with code {self.proc.returncode}"
                return f"client opened no connection within {CLIENT_CONNECT_TIMEOUT:.0f}s"
            try:
                request, path, query, rest, problem, codec, dinfo = self._handshake(conn, batch, pending)
            except (OSError, TimeoutError, ConnectionError):
                conn.close()
                continue
            if problem:
                conn.close()
                index = int(query.get("case", "0")) if query.get("case", "").isdigit() else 0
                if path == "/runCase" and 1 <= index <= len(batch) and batch[index - 1] in pending:
                    spec = batch[index - 1]
                    res = make_result(spec, None, None, 0.0, f"harness rejected the client's opening "
                                      f"handshake: {problem}", http=(request.raw, request.response),
                                      deflate_info=dinfo)
                    pending.remove(spec)
                    results[spec.id] = res
                    if on_result:
                        on_result(res)
                continue
            if path == "/getCaseCount":
                self._control(conn, rest, str(len(batch)).encode())
            elif path == "/updateReports":
                self._control(conn, rest, None)
                if not pending:
                    try:
                        self.proc.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
                    return "done"
            elif path == "/runCase":
                try:
                    index = int(query.get("case", "0"))
                except ValueError:
                    index = 0
                if not 1 <= index <= len(batch) or batch[index - 1] not in pending:
                    self._control(conn, rest, None)
                    continue
                spec = batch[index - 1]
                t0 = time.monotonic()
                run = CaseRun(spec)
                p = Peer(conn, is_server=True, leftover=rest, deflate=codec, deflate_info=dinfo)
                p.run(run, spec.timeout)
                run.evaluate(p)
                res = make_result(spec, run, p, time.monotonic() - t0, http=(request.raw, request.response))
                res["agent"] = query.get("agent", self.agent)
                pending.remove(spec)
                results[spec.id] = res
                if on_result:
                    on_result(res)
                if not pending:
                    # Let the client ask for /updateReports, but do not wait long for it.
                    conn2 = self._accept(3.0)
                    if conn2 is not None:
                        try:
                            _, path2, _, rest2, _, _, _ = self._handshake(conn2)
                            self._control(conn2, rest2, None)
                        except (OSError, TimeoutError, ConnectionError):
                            conn2.close()
                    try:
                        self.proc.wait(3)
                    except subprocess.TimeoutExpired:
                        pass
                    return "done"
            else:
                self._control(conn, rest, None)

    @staticmethod
    def _control(conn, rest, text):
        p = Peer(conn, is_server=True, leftover=rest)
        p.run(_Control(text), 5.0)


def run_client_direction(cmd: str, agent: str, specs, log_path=None, on_result=None,
                         budget=DEFAULT_BUDGET, deflate_cmd: str | None = None) -> list[dict]:
    """The cases with permessage-deflate (sections 12/13) run in a second session of the client
    started with `deflate_cmd` (a client that offers permessage-deflate); the case count it is
    told is the number of those cases."""
    plain = [s for s in specs if getattr(s, "deflate", None) is None]
    with_deflate = [s for s in specs if getattr(s, "deflate", None) is not None]
    if with_deflate and not deflate_cmd:
        raise RuntimeError("no client command for the permessage-deflate cases "
                           "(--client-deflate-cmd / WS_CLIENT_DEFLATE_CMD)")
    started = time.monotonic()
    by_id = {}
    if plain:
        for r in ClientHarness(cmd, agent, log_path, budget=budget).run(plain, on_result):
            by_id[r["id"]] = r
    if with_deflate:
        left = max(1.0, budget - (time.monotonic() - started))
        for r in ClientHarness(deflate_cmd, agent, log_path, budget=left).run(with_deflate, on_result):
            by_id[r["id"]] = r
    return [by_id[s.id] for s in specs if s.id in by_id]


# ----------------------------------------------------------------------------------- reports
def git_commit(repo_dir: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", repo_dir, "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def summarize(results: list[dict]) -> dict:
    from collections import Counter
    by = Counter(r["behaviour"] for r in results)
    close = Counter(r["close_behaviour"] for r in results)
    return {"cases": len(results), "passed": sum(r["passed"] for r in results),
            "failed": sum(not r["passed"] for r in results),
            "behaviour": dict(by), "close_behaviour": dict(close)}


def write_report(report_dir: str, direction: str, agent: str, command: str, results: list[dict],
                 started: float, full: bool, cap: int, repo_dir: str, label: str | None = None,
                 deflate_command: str | None = None) -> str:
    os.makedirs(report_dir, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(started, dt.timezone.utc)
    doc = {
        "format": "ws-conformance-report/1",
        "direction": direction,                       # "server" (server under test) or "client"
        "agent": agent,
        "label": label,
        "command": command,
        "deflate_command": deflate_command,           # sections 12/13 (permessage-deflate)
        "started": stamp.isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "commit": git_commit(repo_dir),
        "full": full,
        "cap_bytes": None if full else cap,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "summary": summarize(results),
        "results": results,
    }
    safe_agent = "".join(c if c.isalnum() or c in "-_." else "_" for c in agent)
    path = os.path.join(report_dir, f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-{direction}-{safe_agent}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return path


def reference_deflate_commands():
    """The reference server and client with permessage-deflate enabled (sections 12/13)."""
    server, client, _ = reference_commands()
    return server + " --deflate", client + " --deflate"


def reference_commands():
    """Commands for the python-websockets reference server and client, and their agent name."""
    import websockets
    ref = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference")
    py = sys.executable
    return (f"{py} {ref}/echo_server.py --port {{port}}",
            f"{py} {ref}/autobahn_client.py --url {{url}} --agent {{agent}}",
            f"websockets-{websockets.__version__}")


def explain(res: dict) -> str:
    lines = [f"case {res['id']}: {res['description']}",
             f"expected: {res['expectation']}",
             f"behaviour: {res['behaviour']} - {res['behaviour_detail']}",
             f"close: {res['close_behaviour']} - {res['close_detail']}  {res.get('close')}",
             f"expected events: {res.get('expected')}",
             f"received events: {res.get('received')}"]
    if res.get("deflate"):
        lines.append(f"permessage-deflate: {res['deflate']}")
    if res.get("violations"):
        lines.append(f"peer violations: {res['violations']}")
    if res.get("notes"):
        lines.append(f"notes: {res['notes']}")
    lines.append("wire log:")
    lines += ["  " + w for w in res.get("wirelog", [])]
    return "\n".join(lines)
