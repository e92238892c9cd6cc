"""Open endpoints: liveness, readiness, Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from beacon.api import telemetry
from beacon.api.errors import responses_for
from beacon.api.schemas import Document

router = APIRouter(tags=["health"])


@router.get("/healthz/live", response_model=Document)
def live() -> dict:
    """The process answers."""
    return {"status": "ok"}


@router.get("/healthz/ready", response_model=Document, responses=responses_for(503))
def ready() -> JSONResponse:
    """Database reachable, schema current, active model loaded; 503 naming what is not."""
    checks: dict[str, str] = {}
    try:
        from data_access.db import get_engine

        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"unreachable: {type(error).__name__}"
    if checks["database"] == "ok":
        checks["schema"] = _schema()
        checks["model"] = _model() if checks["schema"] == "ok" else "not checked"
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "not ready", "checks": checks},
                        status_code=200 if ok else 503)


def _schema() -> str:
    from data_access.migrate import SchemaOutOfDate, check_schema

    try:
        check_schema()
        return "ok"
    except SchemaOutOfDate as error:
        return str(error)


def _model() -> str:
    from beacon.versions import active_global

    loaded = active_global()
    if loaded is None:
        return "no active model loaded (recommendations come from popularity)"
    if not loaded.is_active:
        return f"the active version failed to load; serving version {loaded.version_id}"
    return "ok"


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}})
def metrics() -> Response:
    """Request counts and latency per route, refresh lag and backlog, model version served."""
    return telemetry.scrape()
