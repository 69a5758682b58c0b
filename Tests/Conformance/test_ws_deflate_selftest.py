"""Self-tests of the harness's permessage-deflate (RFC 7692) support, sections 12 and 13.

Unit tests of the extension grammar, the negotiation in both roles and the zlib codec, then
deliberately broken deflate peers (selftest/bad_peer.py) that must get FAILED verdicts. About 5 s,
no implementation under test needed.
"""

import os
import random
import sys
import zlib

import pytest

from wsharness import deflate as D
from wsharness import testdata
from wsharness.catalog import DEFLATE_PARAMS, build_catalog, deflate_case_for, select_cases
from wsharness.runner import run_client_direction, run_server_direction

BAD = f"{sys.executable} {os.path.join(os.path.dirname(os.path.abspath(__file__)), 'selftest', 'bad_peer.py')}"
CATALOG, _ = build_catalog()
BROWSER_OFFER = "permessage-deflate; client_max_window_bits"


def by_id(results):
    return {r["id"]: r for r in results}


def specs(patterns):
    return select_cases(CATALOG, patterns)


# ------------------------------------------------------------------------------------ grammar
def test_extension_grammar():
    assert D.parse_extensions('permessage-deflate; client_max_window_bits, x-y; a="10" ;b') == [
        ("permessage-deflate", [("client_max_window_bits", None)]), ("x-y", [("a", "10"), ("b", None)])]
    assert D.parse_extensions("") == []
    for bad in ("permessage-deflate;", "a b", 'a; b="1', 'a; b="x y"', ", a"):
        with pytest.raises(D.ExtensionSyntaxError):
            D.parse_extensions(bad)


# ----------------------------------------------------------- harness as client: the offers
def test_offers_of_section_13_as_sent():
    headers = [D.offers_header(deflate_case_for(o, a).offers) for o, a in DEFLATE_PARAMS]
    assert headers == [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=15; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits, "
        "permessage-deflate; server_no_context_takeover; client_max_window_bits, "
        "permessage-deflate; client_max_window_bits",
    ]


@pytest.mark.parametrize("offer_no, response, agreed", [
    (1, "permessage-deflate", (False, False, 15, 15)),
    (1, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", (True, True, 15, 15)),
    (1, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", (False, False, 10, 9)),
    (2, "permessage-deflate; server_no_context_takeover", (True, False, 15, 15)),
    (3, "permessage-deflate; server_max_window_bits=8", (False, False, 8, 15)),
    (3, 'permessage-deflate; server_max_window_bits="8"', (False, False, 8, 15)),
    (7, "permessage-deflate; server_no_context_takeover", (True, False, 15, 15)),
    (7, "permessage-deflate", (False, False, 15, 15)),
])
def test_valid_responses(offer_no, response, agreed):
    offers = deflate_case_for(*DEFLATE_PARAMS[offer_no - 1]).offers
    params, err = D.check_response(offers, response)
    assert err is None
    assert (params.server_no_context_takeover, params.client_no_context_takeover,
            params.server_max_window_bits, params.client_max_window_bits) == agreed


@pytest.mark.parametrize("offer_no, response, why", [
    (1, "permessage-deflate; client_max_window_bits", "needs a value"),
    (1, "permessage-deflate; server_max_window_bits=16", "8..15"),
    (1, "permessage-deflate; server_max_window_bits=08", "leading zeroes"),
    (1, "permessage-deflate; server_no_context_takeover=1", "takes no value"),
    (1, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", "more than once"),
    (1, "permessage-deflate; foo", "unknown parameter"),
    (1, "permessage-deflate, permessage-deflate", "2 times"),
    (1, "x-webkit-deflate-frame", "did not offer"),
    (2, "permessage-deflate", "accepts none of the offers"),          # server_no_context_takeover dropped
    (3, "permessage-deflate", "accepts none of the offers"),          # server_max_window_bits dropped
    (3, "permessage-deflate; server_max_window_bits=9", "accepts none of the offers"),   # above the offer
    (5, "permessage-deflate; server_max_window_bits=8", "accepts none of the offers"),
])
def test_invalid_responses(offer_no, response, why):
    offers = deflate_case_for(*DEFLATE_PARAMS[offer_no - 1]).offers
    params, err = D.check_response(offers, response)
    assert params is None and why in err


def test_no_extension_is_not_an_error():
    assert D.check_response([D.Offer()], None) == (None, None)


# ----------------------------------------------------------- harness as server: the answers
def test_answers_of_section_13_to_the_browser_offer():
    answers = [D.negotiate(BROWSER_OFFER, deflate_case_for(o, a).accepts)[0] for o, a in DEFLATE_PARAMS]
    assert answers == [
        "permessage-deflate",
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; client_max_window_bits=8",
        "permessage-deflate; client_max_window_bits=15",
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=15",
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
    ]


def test_answers_without_client_max_window_bits_and_with_server_requests():
    acc = lambda n: deflate_case_for(*DEFLATE_PARAMS[n - 1]).accepts   # noqa: E731
    assert D.negotiate("permessage-deflate", acc(3))[0] is None          # Autobahn: UNIMPLEMENTED
    assert D.negotiate("permessage-deflate", acc(7))[0] == "permessage-deflate; client_no_context_takeover"
    header, params, _ = D.negotiate("permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                                    acc(1))
    assert header == "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
    assert (params.server_no_context_takeover, params.server_max_window_bits) == (True, 9)
    # an invalid offer is declined, the next one taken
    header, _, note = D.negotiate("permessage-deflate; server_max_window_bits=7, permessage-deflate", acc(1))
    assert header == "permessage-deflate" and "declined" in note
    assert D.negotiate("x-foo", acc(1))[0] is None
    assert D.negotiate(None, acc(1))[0] is None


# --------------------------------------------------------------------------------- the codec
DATA = testdata.corpus("json")[:200_000]


@pytest.mark.parametrize("sbits", [8, 9, 12, 15])
@pytest.mark.parametrize("cbits", [8, 15])
@pytest.mark.parametrize("snct", [False, True])
@pytest.mark.parametrize("cnct", [False, True])
def test_codec_round_trip(sbits, cbits, snct, cnct):
    p = D.Params(snct, cnct, sbits, cbits)
    server, client = D.Codec(p, is_server=True), D.Codec(p, is_server=False)
    rnd = random.Random(sbits * 100 + cbits)
    for _ in range(6):
        a = rnd.randrange(0, len(DATA) - 40000)
        msg = DATA[a:a + rnd.choice([0, 1, 16, 300, 5000, 40000])]
        c2s = client.compress(msg)
        assert not c2s.endswith(D.TAIL)
        assert server.decompress(c2s) == msg
        assert client.decompress(server.compress(msg)) == msg


def test_window_8_output_fits_a_256_octet_window():
    """zlib refuses raw deflate with wbits=-8; the harness uses Z_RLE (distance 1 only)."""
    p = D.Params(False, False, 8, 15)
    tx, rx = D.Codec(p, is_server=True), D.Codec(p, is_server=False)   # rx inflates in 64-octet slices
    msg = b"a" * 5000 + DATA[:5000]
    wire = tx.compress(msg)
    assert len(wire) < len(msg) * 0.8
    assert rx.decompress(wire) == msg
    assert zlib.decompressobj(-8).decompress(wire + D.TAIL) == msg


def _zlib_stream(msgs, wbits=15, reset=False, final=False):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = []
    for m in msgs:
        if reset:
            c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
        z = c.compress(m) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
        out.append(z if final else z[:-4])
    return out


def test_codec_detects_a_window_larger_than_agreed():
    rx = D.Codec(D.Params(False, False, 9, 15), is_server=False)     # server agreed to 2^9
    msg = DATA[:20000]
    with pytest.raises(D.InflateError, match="too far back"):
        rx.decompress(_zlib_stream([msg + msg])[0])


def test_codec_detects_context_takeover_after_no_context_takeover():
    rx = D.Codec(D.Params(True, False, 15, 15), is_server=False)     # server_no_context_takeover
    a, b = _zlib_stream([DATA[:3000], DATA[:3000]])
    assert rx.decompress(a) == DATA[:3000]
    with pytest.raises(D.InflateError):
        rx.decompress(b)


def test_codec_continues_the_window_after_a_final_block():
    rx = D.Codec(D.Params(False, False, 15, 15), is_server=False)
    first = zlib.compressobj(6, zlib.DEFLATED, -15)
    z1 = first.compress(DATA[:3000]) + first.flush(zlib.Z_FINISH)
    second = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=DATA[:3000])
    z2 = second.compress(DATA[:3000]) + second.flush(zlib.Z_SYNC_FLUSH)
    assert rx.decompress(z1) == DATA[:3000]
    assert rx.decompress(z2[:-4]) == DATA[:3000]


def test_codec_bounds_inflated_size():
    rx = D.Codec(D.Params(), is_server=True, max_message=1 << 20)
    bomb = _zlib_stream([b"\0" * (4 << 20)])[0]
    with pytest.raises(D.InflateError, match="exceeds"):
        rx.decompress(bomb)


def test_corpora_have_autobahns_sizes_and_kinds():
    for key, (_, binary, size) in testdata.CORPORA.items():
        data = testdata.corpus(key)
        assert len(data) == size, key
        if not binary:
            data.decode("utf-8")
    s = testdata.Slicer("html", 131072)
    assert all(len(s.next().decode("utf-8")) == 131072 for _ in range(5))   # wraps around


# ------------------------------------------------------------------------ broken deflate peers
def test_verbatim_deflate_server():
    """Echoes compressed frames untouched: an echo test cannot tell that apart from a conforming
    server while both directions use the same parameters (12.*), but 13.2 (server without
    context takeover) and 13.3 (server window 2^8) must fail."""
    cmd = f"{BAD} server --port {{port}} --mode deflate-verbatim"
    res = by_id(run_server_direction(cmd, specs("12.1.1,13.2.2,13.3.10"), deflate_cmd=cmd))
    assert res["12.1.1"]["passed"]
    for cid in ("13.2.2", "13.3.10"):
        assert res[cid]["behaviour"] == "FAILED", cid
        assert "cannot be inflated" in res[cid]["behaviour_detail"], res[cid]["behaviour_detail"]


def test_sloppy_deflate_server():
    cmd = f"{BAD} server --port {{port}} --mode deflate-sloppy"
    res = by_id(run_server_direction(cmd, specs("12.1.1,13.2.1,13.3.1"), deflate_cmd=cmd))
    # 12.1.1: an unasked server_max_window_bits=10 is a valid answer, but the verbatim echo of the
    # harness's 2^15-window stream then reaches back further than 2^10 octets.
    assert "permessage-deflate negotiation" not in res["12.1.1"]["behaviour_detail"]
    assert "too far back" in res["12.1.1"]["behaviour_detail"]
    for cid in ("13.2.1", "13.3.1"):
        assert not res[cid]["passed"], cid
        assert "permessage-deflate negotiation" in res[cid]["behaviour_detail"], cid


def test_server_without_deflate_is_unimplemented():
    cmd = f"{BAD} server --port {{port}} --mode lenient"
    res = by_id(run_server_direction(cmd, specs("12.1.1"), deflate_cmd=cmd))
    assert res["12.1.1"]["behaviour"] == "UNIMPLEMENTED" and not res["12.1.1"]["passed"]


def test_silent_deflate_server_ends_on_the_echo_idle_timer(monkeypatch):
    from wsharness import catalog
    monkeypatch.setattr(catalog, "DEFLATE_ECHO_IDLE", 2)
    cmd = f"{BAD} server --port {{port}} --mode deflate-silent"
    res = by_id(run_server_direction(cmd, specs("12.1.1"), deflate_cmd=cmd))["12.1.1"]
    assert res["behaviour"] == "FAILED" and "No echo of message #1 within 2 s" in res["behaviour_detail"]
    assert res["close_behaviour"] == "FAILED"           # the peer did not even answer the close
    assert res["duration_ms"] < 6000


def test_verbatim_deflate_client():
    cmd = f"{BAD} client --url {{url}} --agent {{agent}} --mode deflate-verbatim"
    res = by_id(run_client_direction(cmd, "bad", specs("12.1.1,13.2.2,13.3.10"), deflate_cmd=cmd))
    assert res["12.1.1"]["passed"]
    for cid in ("13.2.2", "13.3.10"):
        assert res[cid]["behaviour"] == "FAILED", cid
        assert "cannot be inflated" in res[cid]["behaviour_detail"], res[cid]["behaviour_detail"]
