"""The FastAPI application: routers, the error shape, metrics, and the in-process refresh
worker when asked for (serve starts one on the embedded SQLite default)."""
from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from beacon.api import errors, telemetry
from beacon.api.routers import admin, catalogue, health, interactions, recommendations, stats

log = logging.getLogger(__name__)
#: "1": run a refresh worker thread inside this process (set by `serve`)
IN_PROCESS_WORKER = "BEACON_API_WORKER"


@asynccontextmanager
async def _lifespan(app: FastAPI):
    from starlette.concurrency import run_in_threadpool

    try:
        from beacon.recommend import warm

        await run_in_threadpool(warm)  # the model and candidates load once, before traffic
    except Exception:  # noqa: BLE001 - an empty or unready database still serves health
        log.warning("warm-up failed; the first request loads the model", exc_info=True)
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
