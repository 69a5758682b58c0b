"""Case runtime: expectations, event recording and the verdict rules (Autobahn semantics)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .engine import (FAILED, FAILED_BY_CLIENT, INFORMATIONAL, NON_STRICT, OK, UNCLEAN,
                     WRONG_CODE, Peer)

NORMAL, PROTOCOL_ERROR, INVALID_PAYLOAD = 1000, 1002, 1007


def clean_close(codes=(NORMAL,)) -> dict:
    """The harness closes once the expected events arrived; the peer must answer cleanly."""
    return {"closed_by_me": True, "codes": list(codes), "require_clean": True}


def peer_fails(codes=(PROTOCOL_ERROR,)) -> dict:
    """The peer must fail the connection (close frame with one of `codes`, or drop TCP)."""
    return {"closed_by_me": False, "codes": list(codes), "require_clean": False}


@dataclass
class CaseSpec:
    id: str
    description: str
    expectation: str
    setup: Callable            # setup(run, peer) on open
    timeout: float = 10.0      # hard bound for the whole case (seconds)
    on_message: Callable | None = None
    post: Callable | None = None   # post(run, peer) after the generic evaluation
    performance: bool = False      # section 9: report time
    capped_from: int | None = None # section 9 default run: the Autobahn size that was capped
    deflate: object | None = None  # sections 12/13: catalog.DeflateCase (offers / server answer)

    @property
    def section(self) -> str:
        return self.id.split(".")[0]

    @property
    def subsection(self) -> str:
        return ".".join(self.id.split(".")[:2])


def id_key(case_id: str):
    return tuple(int(x) if x.isdigit() else 10 ** 6 for x in case_id.split("."))  # H.* last


class CaseRun:
    """One execution of a CaseSpec; the object the engine calls back."""

    def __init__(self, spec: CaseSpec):
        self.spec = spec
        self.received: list = []
        self.expected: dict = {}
        self.expected_close: dict | None = None
        self.suppress_close = False
        self.behaviour = FAILED
        self.result = "Actual events differ from any expected."
        self.close_behaviour = FAILED
        self.close_result = "TCP connection was dropped without close handshake"
        self.fixed_behaviour = False   # set by cases that judge themselves (section 9)
        self.metrics: dict = {}
        self.started = 0.0
        self.notes: list[str] = []

    # engine callbacks -----------------------------------------------------------------------
    def on_open(self, p: Peer) -> None:
        self.started = time.monotonic()
        self.spec.setup(self, p)

    def on_message(self, p: Peer, data: bytes, binary: bool) -> None:
        if self.spec.on_message:
            self.spec.on_message(self, p, data, binary)
            return
        self.received.append(("message", data, binary))
        self.finish_when_done(p)

    def on_ping(self, p: Peer, payload: bytes) -> None:
        self.received.append(("ping", payload))
        self.finish_when_done(p)

    def on_pong(self, p: Peer, payload: bytes) -> None:
        self.received.append(("pong", payload))
        self.finish_when_done(p)

    def finish_when_done(self, p: Peer) -> None:
        # Like Autobahn: once the received events match *every* expected sequence (in practice:
        # the only one), the harness starts the closing handshake if it is the side to close.
        for exp in self.expected.values():
            if self.received != exp:
                return
        if self.expected_close and self.expected_close["closed_by_me"] and not self.suppress_close:
            p.send_close(self.expected_close["codes"][0])

    # verdict --------------------------------------------------------------------------------
    def evaluate(self, p: Peer) -> None:
        if not self.fixed_behaviour:
            for name, exp in self.expected.items():
                if self.received == exp:
                    self.behaviour = name
                    self.result = "Actual events match at least one expected."
                    break
        ec = self.expected_close or peer_fails()
        if ec["closed_by_me"] != p.closed_by_me:
            self.close_behaviour = FAILED
            self.close_result = "The connection was failed by the wrong endpoint"
        elif ec["require_clean"] and not p.was_clean:
            self.close_behaviour = UNCLEAN
            self.close_result = "The spec requires the connection to be failed cleanly here"
        elif p.remote_close_code is not None and p.remote_close_code not in ec["codes"]:
            self.close_behaviour = WRONG_CODE
            self.close_result = "The close code should have been %s or empty" % ",".join(map(str, ec["codes"]))
        elif not p.is_server and p.dropped_by_me:
            self.close_behaviour = FAILED_BY_CLIENT
            self.close_result = "It is preferred that the server close the TCP connection"
        else:
            self.close_behaviour = OK
            self.close_result = "Connection was properly closed"
        # Stricter than Autobahn (documented in README): a peer that neither sent a close frame
        # nor closed TCP until the harness gave up (kill timer, unanswered close, hard timeout)
        # did not fail / close the connection at all. Autobahn can still call that OK or
        # FAILED BY CLIENT; we call it FAILED.
        if p.dropped_by_me and not p.close_received and not p.peer_dropped_tcp:
            self.close_behaviour = FAILED
            if ec["closed_by_me"]:
                self.close_result = ("The peer never answered the harness's close frame nor closed TCP "
                                     "before the harness gave up")
            else:
                self.close_result = ("The peer never failed the connection: no close frame and no TCP "
                                     "close before the harness gave up")
        if p.hard_timeout_hit:
            self.notes.append("hard case timeout reached")
        if p.violations:
            self.behaviour = FAILED
            self.result = "Peer protocol violation: " + "; ".join(dict.fromkeys(p.violations))
        if self.spec.post:
            self.spec.post(self, p)

    @property
    def passed(self) -> bool:
        return (self.behaviour in (OK, NON_STRICT, INFORMATIONAL)
                and self.close_behaviour not in (FAILED, UNCLEAN))


def wrong_code_is_failure(run: CaseRun, p: Peer) -> None:
    if run.close_behaviour == WRONG_CODE:
        run.behaviour = FAILED
        run.result = run.close_result


def informational(reason: str):
    def post(run: CaseRun, p: Peer) -> None:
        if not p.violations:
            run.result = f"{reason} (observed: {run.behaviour}; events {short_events(run.received)})"
            run.behaviour = INFORMATIONAL
            run.close_behaviour = INFORMATIONAL
    return post


def short_events(events, limit=300) -> str:
    out = []
    for e in events:
        if e[0] == "message":
            data = e[1]
            shown = data[:24]
            more = f"...({len(data)} bytes)" if len(data) > 24 else ""
            out.append(f"({'binary' if e[2] else 'text'} {shown!r}{more})")
        else:
            shown = e[1] if isinstance(e[1], str) else e[1][:24]
            out.append(f"({e[0]} {shown!r})")
    s = "[" + ", ".join(out) + "]"
    return s if len(s) <= limit else s[:limit - 4] + " ...]"
