"""Headless Chromium (Tests/browser.py) loads a page from our server over HTTPS with HTTP/2 (ALPN h2) and reads
Server-Sent Events with `EventSource`, which the browser sends as a stream on its HTTP/2 connection. The server
side proves it: ws-echo's /stats counts event streams answered over HTTP/2 streams, and its log says so."""

import json

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
  const [ticker, broadcast] = await Promise.all([read("/events", 5), read("/broadcast", 3)]);
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
                         "--event-interval", "50")
    args = [f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"]
    with Chromium.launch_or_skip(extra_args=args) as browser:
        page = browser.new_page()
        page.navigate(f"https://127.0.0.1:{process.port}/page")
        outcome = json.loads(page.evaluate(SCRIPT, await_promise=True, timeout=60))
        stats = page.evaluate("fetch('/stats').then(r => r.json()).then(JSON.stringify)", await_promise=True)
    assert outcome["protocol"] == "h2"
    assert [event["id"] for event in outcome["ticker"]] == ["1", "2", "3", "4", "5"]
    assert [event["data"] for event in outcome["ticker"]] == ["1", "2", "3", "4", "5"]
    ids = [int(event["id"]) for event in outcome["broadcast"]]
    assert ids == list(range(ids[0], ids[0] + 3))
    # Server side: both event streams were answered on HTTP/2 streams.
    counters = json.loads(stats)
    assert counters["eventStreamsOpened"] == 2
    process.stop()
    lines = [line for line in (tmp_path / "ws-echo-0.log").read_text().splitlines()
             if "event stream over HTTP/2 stream" in line]
    assert len(lines) == 2
