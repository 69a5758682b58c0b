"""Each catalog case is one test per direction: test_server[<case id>], test_client[<case id>].

Sections 12 and 13 (permessage-deflate) use the deflate commands of their direction
(WS_SERVER_DEFLATE_CMD / WS_CLIENT_DEFLATE_CMD) and skip without them.
"""

from wsharness import runner
from wsharness.runner import explain


def test_server(case_id, ws_state, request):
    spec = ws_state.by_id[case_id]
    sut = request.getfixturevalue("deflate_server_under_test" if spec.deflate is not None else "server_under_test")
    res = runner.run_server_case(spec, sut)
    ws_state.results["server"].append(res)
    assert res["passed"], explain(res)


def test_client(case_id, ws_state, request):
    spec = ws_state.by_id[case_id]
    results = request.getfixturevalue("client_deflate_results" if spec.deflate is not None else "client_results")
    res = results.get(case_id)
    assert res is not None, f"case {case_id} produced no result"
    assert res["passed"], explain(res)
