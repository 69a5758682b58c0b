"""Headless Chromium's EventSource against sse-ticker: events arrive, the server drops the connection, the
browser reconnects by itself with Last-Event-ID and receives exactly the events it missed (no gap, no
duplicate)."""

import pytest
from browser import Chromium

COLLECT = """
new Promise((resolve) => {
  const got = [];
  let opens = 0;
  const source = new EventSource(PATH);
  const finish = (timedOut) => { source.close(); resolve({got, opens, timedOut}); };
  source.onopen = () => { opens += 1; };
  source.onmessage = (e) => {
    got.push([e.lastEventId, e.data]);
    if (got.length >= WANT) finish(false);
  };
  setTimeout(() => finish(true), 20000);
})
"""


def collect(port: int, path: str, want: int) -> dict:
    with Chromium.launch_or_skip() as browser:
        page = browser.new_page()
        page.navigate(f"http://127.0.0.1:{port}/")  # any page of the same origin (this one is a 404)
        script = COLLECT.replace("PATH", repr(path)).replace("WANT", str(want))
        return page.evaluate(script, await_promise=True, timeout=30)


def test_chromium_resumes_per_client_ticker(start_ticker):
    # Each connection carries 3 events; the browser reconnects (retry 100 ms) with Last-Event-ID 3, then 6.
    server = start_ticker("--interval", "20", "--count", "9", "--drop-after", "3", "--retry", "100")
    result = collect(server.port, "/ticker", 9)
    assert not result["timedOut"], result
    assert result["got"] == [[str(n), str(n)] for n in range(1, 10)]
    assert result["opens"] == 3
    log = server.output
    assert "last-event-id=3" in log and "last-event-id=6" in log, log


def test_chromium_gets_missed_broadcast_events_from_history(start_ticker):
    # One shared ticker every 30 ms; each connection is dropped after 10 ticks' time and the browser waits
    # 300 ms before reconnecting, missing about 10 ticks each time: the replay history must fill every gap.
    server = start_ticker("--interval", "30", "--drop-after", "10", "--retry", "300")
    result = collect(server.port, "/broadcast", 45)
    assert not result["timedOut"], result
    ids = [int(last_event_id) for last_event_id, _ in result["got"]]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # consecutive: nothing lost, nothing twice
    assert [data for _, data in result["got"]] == [str(n) for n in ids]
    assert result["opens"] >= 2, result
