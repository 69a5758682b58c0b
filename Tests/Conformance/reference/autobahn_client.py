#!/usr/bin/env python3
"""Reference client under test: an Autobahn-style test client built on python-websockets.

    python3 autobahn_client.py --url ws://127.0.0.1:PORT --agent NAME [--deflate]

Asks /getCaseCount, then connects to /runCase?case=N&agent=NAME for N = 1..count, echoing every
message it receives (text as text, binary as binary) until the server closes, and finally
opens /updateReports?agent=NAME. This is the contract our ws-conformance-client implements.
With --deflate it offers permessage-deflate the way websockets does by default
('permessage-deflate; client_max_window_bits', compression="deflate"), for sections 12/13.
"""
import argparse
import asyncio
import os
import sys

# websockets refuses messages of more than 4096 fragments by default (a DoS guard, read from
# this variable at import time). Autobahn 9.3.1/9.4.1 send 4 MiB in 64-byte fragments (65536
# fragments), so a server configured for those cases must allow more; we allow 2**17.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(1 << 17))
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

OPTS = dict(max_size=16 * 1024 * 1024, compression=None, ping_interval=None, close_timeout=2,
            open_timeout=10)


async def run_case(url: str) -> None:
    try:
        async with connect(url, **OPTS) as ws:
            async for message in ws:
                await ws.send(message)
    except (WebSocketException, OSError, asyncio.TimeoutError) as e:
        # Logged to the client log (reports/client-under-test.log), e.g. a refused handshake.
        print(f"{url}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


async def main(base: str, agent: str) -> None:
    async with connect(f"{base}/getCaseCount", **OPTS) as ws:
        count = int(await ws.recv())
    for n in range(1, count + 1):
        await run_case(f"{base}/runCase?case={n}&agent={quote(agent)}")
    try:
        async with connect(f"{base}/updateReports?agent={quote(agent)}", **OPTS) as ws:
            await ws.wait_closed()
    except (WebSocketException, OSError):
        pass


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--agent", default="websockets")
    ap.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    a = ap.parse_args()
    if a.deflate:
        OPTS["compression"] = "deflate"
    asyncio.run(main(a.url.rstrip("/"), a.agent))
