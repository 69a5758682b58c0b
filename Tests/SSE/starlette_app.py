"""A third-party SSE server for our client: sse-starlette under uvicorn.

GET /numbers streams ids and data N+1, N+2, N+3 (N from Last-Event-ID, else 0) with retry 100 ms, then ends
the response, so that a client must reconnect with Last-Event-ID to go on; at 9 it answers 204 No Content
(stop reconnecting). Each request's Last-Event-ID is printed (flushed) as `LAST-EVENT-ID <value|None>`.
GET /log returns those values as JSON."""

import asyncio

from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOTAL = 9
PER_CONNECTION = 3
seen: list[str | None] = []


async def numbers(request):
    last = request.headers.get("last-event-id")
    seen.append(last)
    start = int(last) if last and last.isdigit() else 0
    if start >= TOTAL:
        return Response(status_code=204)

    async def events():
        for number in range(start + 1, min(start + PER_CONNECTION, TOTAL) + 1):
            yield ServerSentEvent(data=f"n{number}\nline 2", id=str(number), event="number", retry=100)
            await asyncio.sleep(0.01)

    return EventSourceResponse(events())


async def log(request):
    return JSONResponse(seen)


app = Starlette(routes=[Route("/numbers", numbers), Route("/log", log)])
