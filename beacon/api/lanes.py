"""Where the endpoints' synchronous work runs: recommendations on a lane of their own.

Every other synchronous endpoint (ingest, catalogue, admin, stats) runs on anyio's default
threads (`BEACON_API_THREADS`, default 2, set in the app's lifespan). The recommendation
endpoints (a user's list, the JSON-body recommend, similar events) run on the serving lane:
at most `BEACON_API_SERVING_THREADS` (default 1) at once per process, the rest waiting in
arrival order. One is enough because the work is CPU under the GIL and its database reads take
a fraction of a millisecond: a second serving thread mostly waited for the GIL behind the
first after each statement (py-spy under load: a quarter of the endpoint threads' samples sat
in psycopg's send), which stretched the slow answers. A/B at 8 clients, 2 processes: one thread
against two, p99 0.79x at the same throughput (docs/api.md). Its own lane also means a slow
admin call (a debug filter over the whole catalogue) never holds up the recommendations."""
from __future__ import annotations

import asyncio
import functools
import os
import weakref
from typing import Callable, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
SERVING_THREADS = int(os.environ.get("BEACON_API_SERVING_THREADS", "") or 1)
#: one limiter per event loop (a test may run the app on several loops, one after another)
_serving: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _serving_limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _serving.get(loop)
    if limiter is None:
        limiter = _serving[loop] = anyio.CapacityLimiter(SERVING_THREADS)
    return limiter


async def serving(call: Callable[..., T], *args, **kwargs) -> T:
    """call(*args, **kwargs) on the serving lane, off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs),
                                          limiter=_serving_limiter())
