#!/usr/bin/env python3
"""Reference server under test: an echo server built on python-websockets (asyncio API).

    python3 echo_server.py --port PORT [--deflate]

Echoes text as text and binary as binary on 127.0.0.1, messages up to 16 MiB, no keepalive
pings (they would add unexpected frames to the cases). No compression, unless --deflate: then
permessage-deflate (RFC 7692) with websockets' ServerPerMessageDeflateFactory at its defaults
(no limit of its own on either window, context takeover allowed), so the client's offer decides
the parameters (sections 12/13). websockets cannot compress with an 8-bit window (a zlib
limitation) and declines an offer of server_max_window_bits=8.
"""
import argparse
import asyncio
import os

# websockets refuses messages of more than 4096 fragments by default (a DoS guard, read from
# this variable at import time). Autobahn 9.3.1/9.4.1 send 4 MiB in 64-byte fragments (65536
# fragments), so a server configured for those cases must allow more; we allow 2**17.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(1 << 17))

from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(host: str, port: int, deflate: bool) -> None:
    extensions = [ServerPerMessageDeflateFactory()] if deflate else None
    async with serve(echo, host, port, max_size=16 * 1024 * 1024, compression=None, extensions=extensions,
                     ping_interval=None, close_timeout=2) as server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--deflate", action="store_true", help="enable permessage-deflate")
    a = ap.parse_args()
    asyncio.run(main(a.host, a.port, a.deflate))
