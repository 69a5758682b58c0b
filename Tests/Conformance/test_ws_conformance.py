"""Each catalog case is one test per direction: test_server[<case id>], test_client[<case id>]."""

from wsharness import runner
from wsharness.runner import explain


def test_server(case_id, ws_state, server_under_test):
    res = runner.run_server_case(ws_state.by_id[case_id], server_under_test)
    ws_state.results["server"].append(res)
    assert res["passed"], explain(res)


def test_client(case_id, client_results):
    res = client_results.get(case_id)
    assert res is not None, f"case {case_id} produced no result"
    assert res["passed"], explain(res)
