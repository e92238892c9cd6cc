"""The FastAPI application: routers, the error shape, metrics, and the in-process refresh
worker when asked for (serve starts one on the embedded SQLite default)."""
from __future__ import annotations

import gc
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from beacon import blas_threads
from data_access import pinned
from beacon.api import errors, telemetry
from beacon.api.routers import admin, catalogue, health, interactions, recommendations, stats

log = logging.getLogger(__name__)
#: "1": run a refresh worker thread inside this process (set by `serve`)
IN_PROCESS_WORKER = "BEACON_API_WORKER"
#: "1": freeze the garbage collector's long-lived objects after loads (`serve` sets it unless
#: it is set already; "0" turns it off)
FREEZE_GC = "BEACON_API_FREEZE_GC"
#: "0": the serving statements take pooled connections like every other statement, instead of
#: one pinned Postgres connection per endpoint thread (data_access.pinned)
PINNED = "BEACON_API_PINNED"


#: threads that run the other (synchronous) endpoints of one process: ingest, catalogue, admin,
#: stats; the recommendations have a lane of their own (beacon/api/lanes.py). CPU-bound under
#: the GIL, so more threads only share the same core, while requests beyond them wait in
#: arrival order. BEACON_API_THREADS overrides it.
API_THREADS = int(os.environ.get("BEACON_API_THREADS", "") or 2)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    import anyio.to_thread
    from starlette.concurrency import run_in_threadpool

    anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS
    blas_threads.limit_for_serving()
    if os.environ.get(PINNED, "1") != "0":
        pinned.enable()

    from beacon import recommend

    try:
        await run_in_threadpool(recommend.warm)  # the model and candidates load before traffic
    except Exception:  # noqa: BLE001 - an empty or unready database still serves health
        log.warning("warm-up failed; the first request loads the model", exc_info=True)
    # The model, the candidates and the imported modules are a few hundred thousand long-lived
    # objects; a full collection walked them all (about 170 ms at the benchmark's scale, the
    # whole process stalled). Frozen, the collector skips them; a snapshot or model loaded
    # later is frozen as it arrives (memory is still freed by reference counting).
    if os.environ.get(FREEZE_GC) == "1":
        gc.freeze()
        if gc.freeze not in recommend.load_observers:
            recommend.load_observers.append(gc.freeze)
    worker = None
    if os.environ.get(IN_PROCESS_WORKER) == "1":
        from beacon.refresh import Worker

        worker = Worker().start()
        log.info("in-process refresh worker started")
    try:
        yield
    finally:
        if worker is not None:
            worker.stop()
        pinned.disable()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Beacon API",
        version="1",
        summary="Event recommendations for the platform's backend",
        description="Keys: send `X-API-Key`. Scopes: recommend (reads, stats), ingest "
                    "(interactions, catalogue), admin (training, models, debug filter, cleanup). "
                    "Errors: `{\"error\": {\"status\", \"message\", \"field\", \"errors\"}}`.",
        lifespan=_lifespan,
    )
    errors.install(app)
    telemetry.install(app)
    for module in (recommendations, interactions, catalogue, admin, stats, health):
        app.include_router(module.router)
    return app
