"""Self-tests of the harness: it must be able to say FAILED, and survive broken peers.

These run without any implementation under test (deliberately broken peers from
selftest/bad_peer.py) and take about 20 seconds.
"""

import os
import sys

import pytest

from wsharness import frames as F
from wsharness.catalog import build_catalog, select_cases, utf8_test_sequences
from wsharness.runner import run_client_direction, run_server_direction

BAD = f"{sys.executable} {os.path.join(os.path.dirname(os.path.abspath(__file__)), 'selftest', 'bad_peer.py')}"
CATALOG, _ = build_catalog()


def by_id(results):
    return {r["id"]: r for r in results}


def specs(patterns):
    return select_cases(CATALOG, patterns)


def test_catalog_matches_autobahn_case_counts():
    from collections import Counter
    count = Counter(c.section for c in CATALOG)
    assert dict(count) == {"1": 16, "2": 11, "3": 7, "4": 10, "5": 20, "6": 145, "7": 37, "9": 54,
                           "10": 1, "12": 90, "13": 126, "H": 3}
    assert sum(len(items) for _, items in utf8_test_sequences()) == 132   # 6.5.* .. 6.23.*


@pytest.mark.parametrize("mask", [None, b"\x11\x22\x33\x44"])
@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536])
def test_frame_round_trip(n, mask):
    payload = bytes(i & 0xFF for i in range(n))
    data = F.encode_frame(F.OP_BINARY, payload, fin=False, rsv=5, mask_key=mask)
    r = F.FrameReader()
    for i in range(0, len(data), 7):          # any split
        r.feed(data[i:i + 7])
    fr = r.next_frame()
    assert (fr.opcode, fr.fin, fr.rsv, fr.masked, fr.payload) == (F.OP_BINARY, False, 5, mask is not None, payload)
    assert r.next_frame() is None


def test_lenient_server_fails_where_it_must():
    res = by_id(run_server_direction(f"{BAD} server --port {{port}} --mode lenient",
                                     specs("1.1.1,3.1,5.1,6.3.1,7.9.1,H.1.1")))
    assert res["1.1.1"]["passed"]
    for cid in ("3.1", "5.1", "6.3.1", "7.9.1", "H.1.1"):
        assert res[cid]["behaviour"] == "FAILED", cid
        assert not res[cid]["passed"], cid


def test_silent_server_fails_instead_of_hanging():
    res = by_id(run_server_direction(f"{BAD} server --port {{port}} --mode silent", specs("1.1.1,2.5,7.3.2")))
    for cid in ("1.1.1", "2.5", "7.3.2"):
        assert res[cid]["close_behaviour"] == "FAILED", cid
        assert res[cid]["duration_ms"] < 5000, cid


def test_crashing_server_is_restarted_and_blamed():
    res = by_id(run_server_direction(f"{BAD} server --port {{port}} --mode crash", specs("1.1.1,1.1.2")))
    for cid in ("1.1.1", "1.1.2"):
        assert not res[cid]["passed"]
        assert any("exited" in n for n in res[cid]["notes"]), res[cid]["notes"]


def test_client_that_exits_is_restarted():
    res = by_id(run_client_direction(f"{BAD} client --url {{url}} --agent {{agent}} --mode exit-after-3",
                                     "bad", specs("1.1.1,1.1.2,1.1.3,1.1.4,1.1.5,3.1")))
    assert [res[c]["passed"] for c in ("1.1.1", "1.1.2", "1.1.3")] == [True, True, True]
    assert "never ran" in res["1.1.4"]["behaviour_detail"]
    assert res["1.1.5"]["passed"]
    assert res["3.1"]["behaviour"] == "FAILED"
