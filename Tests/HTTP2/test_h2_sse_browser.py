"""Headless Chromium (Tests/browser.py) loads a page from our server over HTTPS with HTTP/2 (ALPN h2) and reads
Server-Sent Events with `EventSource`, which the browser sends as a stream on its HTTP/2 connection. The server
side proves it: ws-echo's /stats counts event streams answered over HTTP/2 streams, and its log says so."""

import json
import re

from browser import Chromium, spki_hash

PAGE = b"""<!doctype html><meta charset="utf-8"><title>h2 EventSource</title>
<script>
function read(url, count) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(url);
    const events = [];
    source.onmessage = e => {
      events.push({id: e.lastEventId, data: e.data});
      if (events.length === count) { source.close(); resolve(events); }
    };
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) reject(new Error("failed")); };
  });
}
</script>"""

SCRIPT = """
(async () => {
  // /events?drop=3 ends each stream after 3 events: EventSource reconnects (on the same HTTP/2 connection) with
  // Last-Event-ID and the ticker resumes after it.
  const [ticker, broadcast] = await Promise.all([read("/events?drop=3", 7), read("/broadcast", 3)]);
  const nav = performance.getEntriesByType("navigation")[0];
  const stream = performance.getEntriesByType("resource").find(e => e.name.endsWith("/events"));
  return JSON.stringify({ticker, broadcast, protocol: nav.nextHopProtocol,
                         streamProtocol: stream ? stream.nextHopProtocol : null});
})()
"""


def test_chromium_event_source_over_http2_stream(start_echo, certificate, tmp_path):
    cert, key = certificate
    page_file = tmp_path / "page.html"
    page_file.write_bytes(PAGE)
    process = start_echo("--http2", "--tls-cert", cert, "--tls-key", key, "--page", str(page_file),
                         "--event-interval", "50", "--event-retry", "100")
    args = [f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"]
    with Chromium.launch_or_skip(extra_args=args) as browser:
        page = browser.new_page()
        page.navigate(f"https://127.0.0.1:{process.port}/page")
        outcome = json.loads(page.evaluate(SCRIPT, await_promise=True, timeout=60))
        stats = page.evaluate("fetch('/stats').then(r => r.json()).then(JSON.stringify)", await_promise=True)
    assert outcome["protocol"] == "h2"
    expected = [str(n) for n in range(1, 8)]
    assert [event["id"] for event in outcome["ticker"]] == expected
    assert [event["data"] for event in outcome["ticker"]] == expected
    ids = [int(event["id"]) for event in outcome["broadcast"]]
    assert ids == list(range(ids[0], ids[0] + 3))
    # Server side: every event stream (3 for /events: two reconnections with Last-Event-ID 3 and 6; 1 for
    # /broadcast) was answered on an HTTP/2 stream, all on one connection.
    counters = json.loads(stats)
    assert counters["eventStreamsOpened"] == 4
    process.stop()
    log = (tmp_path / "ws-echo-0.log").read_text().splitlines()
    lines = [line for line in log if "event stream over HTTP/2 stream" in line]
    assert len(lines) == 4
    assert len({re.search(r"peer=(\S+)", line).group(1) for line in lines}) == 1
    starts = [line for line in log if "event stream from" in line]
    assert [re.search(r"event stream from (\d+)", line).group(1) for line in starts] == ["1", "4", "7"]
