"""Prometheus metrics: requests and latency per route, refresh lag, the model version served,
the refresh backlog. With several uvicorn workers, PROMETHEUS_MULTIPROC_DIR (set by `serve`)
makes every scrape see all of them."""
from __future__ import annotations

import os
import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, \
    generate_latest, multiprocess

from beacon import refresh

REQUESTS = Counter("beacon_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "beacon_http_request_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
REFRESH_LAG = Histogram(
    "beacon_refresh_lag_seconds",
    "from a user's first mark to their refreshed list (refreshes this process ran)",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
MODEL_VERSION = Gauge("beacon_model_version_served", "the model version of the last answer",
                      multiprocess_mode="mostrecent")
BACKLOG = Gauge("beacon_refresh_backlog_users", "users marked and not yet refreshed",
                multiprocess_mode="mostrecent")
LAG_5M = Gauge("beacon_refresh_lag_mean_5m_seconds",
               "mean refresh lag over the last 5 minutes, every worker (from the database)",
               multiprocess_mode="mostrecent")
OLDEST = Gauge("beacon_refresh_oldest_pending_seconds", "age of the oldest waiting mark",
               multiprocess_mode="mostrecent")

refresh.lag_observers.append(REFRESH_LAG.observe)


def served(model_version: int | None) -> None:
    if model_version is not None:
        MODEL_VERSION.set(model_version)


class _Measure:
    """Counts and times every HTTP request. A plain ASGI middleware: Starlette's
    BaseHTTPMiddleware (what @app.middleware makes) costs a task and a stream per request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            name = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], name, str(status)).inc()
            LATENCY.labels(scope["method"], name).observe(time.perf_counter() - started)


def install(app: FastAPI) -> None:
    app.add_middleware(_Measure)


def scrape() -> Response:
    """The exposition: the backlog is read from the database at scrape time."""
    try:
        state = refresh.backlog()
        BACKLOG.set(state.pending)
        OLDEST.set(state.oldest_pending_seconds or 0.0)
        LAG_5M.set(state.mean_lag_last_5m or 0.0)
    except Exception:  # noqa: BLE001 - a scrape must answer even when the database does not
        pass
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
