"""pytest integration: one test id per catalog case and direction.

    WS_SERVER_CMD="ws-echo --port {port}" \
    WS_CLIENT_CMD="ws-conformance-client --url {url} --agent {agent}" \
    pytest Tests/Conformance                      # -> test_server[1.1.1] ... test_client[H.1.3]

Environment (or the equivalent --ws-* options):
  WS_SERVER_CMD / --ws-server-cmd        server under test, {port} replaced
  WS_CLIENT_CMD / --ws-client-cmd        client under test, {url} {agent} replaced
  WS_SERVER_DEFLATE_CMD / --ws-server-deflate-cmd   server under test for 12.*/13.* (permessage-deflate
                                         enabled), e.g. "ws-echo --port {port} --deflate"
  WS_CLIENT_DEFLATE_CMD / --ws-client-deflate-cmd   client under test for 12.*/13.* (offers
                                         permessage-deflate), e.g. "... --agent {agent} --deflate"
  WS_CONFORMANCE_REFERENCE=1 / --ws-reference   use the python-websockets reference pair
  WS_CONFORMANCE_FULL=1 / --ws-full      section 9 at full Autobahn sizes (default: capped at 1 MiB)
  WS_CONFORMANCE_CASES / --ws-cases      case patterns, e.g. "1.*,6.4.*" (default: all)
  WS_CONFORMANCE_EXCLUDE / --ws-exclude  patterns to leave out
  WS_CONFORMANCE_REPORT_DIR / --ws-report-dir   JSON reports (default Tests/Conformance/reports)
  WS_AGENT / --ws-agent                  agent name in the reports
A direction without a command is skipped with the reason; so are 12.*/13.* without the deflate
command of their direction. FAILED behaviour (or a FAILED /
UNCLEAN close) fails the test; NON-STRICT and INFORMATIONAL pass.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from wsharness.catalog import DEFAULT_CAP, build_catalog, select_cases  # noqa: E402
from wsharness import runner  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def pytest_addoption(parser):
    env = os.environ.get
    g = parser.getgroup("ws-conformance", "WebSocket conformance suite")
    g.addoption("--ws-server-cmd", default=env("WS_SERVER_CMD"), help="server under test; {port} is replaced")
    g.addoption("--ws-client-cmd", default=env("WS_CLIENT_CMD"), help="client under test; {url} {agent} replaced")
    g.addoption("--ws-server-deflate-cmd", default=env("WS_SERVER_DEFLATE_CMD"),
                help="server under test for sections 12/13 (permessage-deflate enabled); {port} replaced")
    g.addoption("--ws-client-deflate-cmd", default=env("WS_CLIENT_DEFLATE_CMD"),
                help="client under test for sections 12/13 (offers permessage-deflate); {url} {agent} replaced")
    g.addoption("--ws-reference", action="store_true", default=env("WS_CONFORMANCE_REFERENCE") == "1",
                help="run against the python-websockets reference server and client")
    g.addoption("--ws-full", action="store_true", default=env("WS_CONFORMANCE_FULL") == "1",
                help="section 9 at Autobahn's full sizes, sections 12/13 with 1000 messages per case")
    g.addoption("--ws-cases", default=env("WS_CONFORMANCE_CASES"), help="case patterns, e.g. '1.*,6.4.*'")
    g.addoption("--ws-exclude", default=env("WS_CONFORMANCE_EXCLUDE"), help="case patterns to leave out")
    g.addoption("--ws-report-dir", default=env("WS_CONFORMANCE_REPORT_DIR", os.path.join(HERE, "reports")))
    g.addoption("--ws-agent", default=env("WS_AGENT"), help="agent name for the reports")
    g.addoption("--ws-budget", type=float, default=float(env("WS_CONFORMANCE_BUDGET", "1200")),
                help="time budget per direction (s); cases left after it fail unrun")


class _State:
    def __init__(self, config):
        opt = config.getoption
        self.full = opt("--ws-full")
        cases, _ = build_catalog(full=self.full)
        self.specs = select_cases(cases, opt("--ws-cases"), opt("--ws-exclude"))
        self.by_id = {s.id: s for s in self.specs}
        self.server_cmd = opt("--ws-server-cmd")
        self.client_cmd = opt("--ws-client-cmd")
        self.server_deflate_cmd = opt("--ws-server-deflate-cmd")
        self.client_deflate_cmd = opt("--ws-client-deflate-cmd")
        self.agent = opt("--ws-agent")
        self.label = None
        if opt("--ws-reference"):
            s, c, a = runner.reference_commands()
            sd, cd = runner.reference_deflate_commands()
            self.server_cmd = self.server_cmd or s
            self.client_cmd = self.client_cmd or c
            self.server_deflate_cmd = self.server_deflate_cmd or sd
            self.client_deflate_cmd = self.client_deflate_cmd or cd
            self.agent = self.agent or a
            self.label = "reference"
        self.report_dir = opt("--ws-report-dir")
        self.budget = opt("--ws-budget")
        self.results = {"server": [], "client": []}
        self.started = {"server": None, "client": None}


def pytest_configure(config):
    config._ws_state = _State(config)


def pytest_generate_tests(metafunc):
    if "case_id" in metafunc.fixturenames:
        ids = [s.id for s in metafunc.config._ws_state.specs]
        metafunc.parametrize("case_id", ids, ids=ids)


@pytest.fixture(scope="session")
def ws_state(request):
    return request.config._ws_state


@pytest.fixture(scope="session")
def server_under_test(ws_state):
    if not ws_state.server_cmd:
        pytest.skip("no server under test: set WS_SERVER_CMD (e.g. 'ws-echo --port {port}') "
                    "or pass --ws-server-cmd / --ws-reference")
    os.makedirs(ws_state.report_dir, exist_ok=True)
    sut = runner.ServerUnderTest(ws_state.server_cmd, os.path.join(ws_state.report_dir, "server-under-test.log"),
                                 ws_state.budget)
    ws_state.started["server"] = time.time()
    sut.start()
    yield sut
    sut.stop()


@pytest.fixture(scope="session")
def deflate_server_under_test(ws_state):
    """The server for 12.*/13.* (a second process, started with permessage-deflate enabled)."""
    if not ws_state.server_deflate_cmd:
        pytest.skip("no server under test for permessage-deflate (12.*, 13.*): set WS_SERVER_DEFLATE_CMD "
                    "(e.g. 'ws-echo --port {port} --deflate') or pass --ws-server-deflate-cmd / --ws-reference")
    os.makedirs(ws_state.report_dir, exist_ok=True)
    sut = runner.ServerUnderTest(ws_state.server_deflate_cmd,
                                 os.path.join(ws_state.report_dir, "server-under-test.log"), ws_state.budget)
    ws_state.started["server"] = ws_state.started["server"] or time.time()
    sut.start()
    yield sut
    sut.stop()


def _client_run(ws_state, cmd, specs):
    os.makedirs(ws_state.report_dir, exist_ok=True)
    agent = ws_state.agent or os.path.basename((ws_state.client_cmd or cmd).split()[0])
    ws_state.started["client"] = ws_state.started["client"] or time.time()
    results = runner.run_client_direction(cmd, agent, specs,
                                          log_path=os.path.join(ws_state.report_dir, "client-under-test.log"),
                                          budget=ws_state.budget, deflate_cmd=cmd)
    ws_state.results["client"] += results
    return {r["id"]: r for r in results}


@pytest.fixture(scope="session")
def client_results(ws_state):
    if not ws_state.client_cmd:
        pytest.skip("no client under test: set WS_CLIENT_CMD (e.g. 'ws-conformance-client --url {url} "
                    "--agent {agent}') or pass --ws-client-cmd / --ws-reference")
    return _client_run(ws_state, ws_state.client_cmd, [s for s in ws_state.specs if s.deflate is None])


@pytest.fixture(scope="session")
def client_deflate_results(ws_state):
    """12.*/13.*: the client under test started with WS_CLIENT_DEFLATE_CMD, all such cases in one go."""
    if not ws_state.client_deflate_cmd:
        pytest.skip("no client under test for permessage-deflate (12.*, 13.*): set WS_CLIENT_DEFLATE_CMD "
                    "(e.g. 'ws-conformance-client --url {url} --agent {agent} --deflate') or pass "
                    "--ws-client-deflate-cmd / --ws-reference")
    return _client_run(ws_state, ws_state.client_deflate_cmd, [s for s in ws_state.specs if s.deflate is not None])


def pytest_sessionfinish(session, exitstatus):
    st = getattr(session.config, "_ws_state", None)
    if st is None:
        return
    for direction in ("server", "client"):
        results = st.results[direction]
        if not results:
            continue
        from wsharness.cases import id_key
        results = sorted(results, key=lambda r: id_key(r["id"]))
        cmd = st.server_cmd if direction == "server" else st.client_cmd
        dcmd = st.server_deflate_cmd if direction == "server" else st.client_deflate_cmd
        if not any(r["section"] in ("12", "13") for r in results):
            dcmd = None
        cmd = cmd or dcmd
        agent = st.agent or os.path.basename(cmd.split()[0])
        path = runner.write_report(st.report_dir, direction, agent, cmd, results, st.started[direction] or time.time(),
                                   st.full, DEFAULT_CAP, REPO, st.label, deflate_command=dcmd)
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            s = runner.summarize(results)
            tr.write_line(f"ws-conformance {direction}: {s['passed']}/{s['cases']} passed, "
                          f"behaviour {s['behaviour']}, close {s['close_behaviour']} -> {path}")
