"""Headless Chromium (Tests/browser.py) loads a page from our server over HTTPS with HTTP/2 (ALPN h2) and opens
wss:// WebSockets with permessage-deflate on it. Chromium multiplexes them onto its HTTP/2 connection with
extended CONNECT (RFC 8441) because the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL; the test proves it
from the server side (ws-echo's /stats counters and its log lines), not from the browser's word."""

import json
import re

import pytest

from browser import Chromium, spki_hash

PAGE = b"""<!doctype html><meta charset="utf-8"><title>h2 WebSockets</title>
<script>
function echo(messages) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${location.host}/`);
    ws.binaryType = "arraybuffer";
    const received = [];
    ws.onopen = () => messages.forEach(m => ws.send(m));
    ws.onmessage = e => {
      received.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data).length);
      if (received.length === messages.length) { ws.close(1000, "done"); }
    };
    ws.onclose = e => resolve({received, code: e.code, extensions: ws.extensions});
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
}
</script>"""

SCRIPT = """
(async () => {
  const big = "compressible text ".repeat(20000);
  const results = await Promise.all([0, 1, 2, 3, 4].map(i =>
    echo([`hello ${i}`, big, new Uint8Array(70000 + i)])));
  const nav = performance.getEntriesByType("navigation")[0];
  return JSON.stringify({results, protocol: nav.nextHopProtocol, bigLength: big.length});
})()
"""


def test_chromium_runs_websockets_over_http2_streams(start_echo, certificate, tmp_path):
    cert, key = certificate
    page_file = tmp_path / "page.html"
    page_file.write_bytes(PAGE)
    process = start_echo("--http2", "--tls-cert", cert, "--tls-key", key, "--deflate", "--page", str(page_file))
    args = [f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"]
    with Chromium.launch_or_skip(extra_args=args) as browser:
        page = browser.new_page()
        page.navigate(f"https://127.0.0.1:{process.port}/page")
        outcome = json.loads(page.evaluate(SCRIPT, await_promise=True, timeout=60))
        stats = page.evaluate("fetch('/stats').then(r => r.json()).then(JSON.stringify)", await_promise=True)
    assert outcome["protocol"] == "h2"
    for result in outcome["results"]:
        assert result["code"] == 1000
        assert result["extensions"].startswith("permessage-deflate")
        assert result["received"][1] == "compressible text " * 20000
    # Server side: five WebSockets over HTTP/2 streams (Chromium may open a spare connection, so the streams, not
    # the connection count, are the proof), all on one HTTP/2 connection: the same peer address in each log line.
    counters = json.loads(stats)
    assert counters["webSocketsOpened"] == 5
    assert counters["connections"] >= 1
    process.stop()
    lines = [line for line in (tmp_path / "ws-echo-0.log").read_text().splitlines()
             if "WebSocket over HTTP/2 stream" in line]
    assert len(lines) == 5
    peers = {re.search(r"peer=(\S+)", line).group(1) for line in lines}
    assert len(peers) == 1
