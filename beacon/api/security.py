"""The API key check, as a dependency: 401 without a valid key, 403 without the scope."""
from __future__ import annotations

import time
from typing import Callable

import anyio.to_thread
from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from beacon.api import lanes
from beacon.api.errors import ApiError
from beacon.api_keys import KeyInfo, authenticate, checked_recently

HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=HEADER, auto_error=False,
                              description="an API key made with `python -m beacon api-keys create`")


#: requests that read whatever their method (a JSON body asks for a ranking or a filter view)
READ_ROUTES = {("POST", "/v1/recommend"), ("POST", "/v1/debug/filter")}
#: one refusal row per key and route per this many seconds and process: a client misconfigured
#: with the wrong key repeats its refused change at its own rate, and the trail needs it once
REFUSAL_AUDIT_EVERY_S = 60.0
_refusals_recorded: dict[tuple[str, str], float] = {}  # (key prefix, "METHOD route") -> when


def _is_change(request: Request, route: str) -> bool:
    return request.method not in ("GET", "HEAD", "OPTIONS") and \
        (request.method, route) not in READ_ROUTES


def _audit_refusal(info: KeyInfo, request: Request, route: str, scope: str,
                   message: str) -> None:
    """A key refused at its scope never reaches the service's door (beacon.actions), which
    audits every other refusal: the row names the key, the route and the scope it lacked."""
    from beacon.actions import record

    action, now = f"{request.method} {route}", time.monotonic()
    last = _refusals_recorded.get((info.prefix, action))
    if last is not None and now - last < REFUSAL_AUDIT_EVERY_S:
        return
    _refusals_recorded[(info.prefix, action)] = now
    record(info.actor(), action, "refused",
           {"path": request.url.path, "needs_scope": scope}, message)


def require(scope: str) -> Callable[..., KeyInfo]:
    # async: a key checked within the last second is answered from memory on the event loop;
    # a sync dependency would cost every request a trip through the endpoint threads. The
    # check itself (once a second per key and process) runs on the serving lane, so that a
    # recommendation never waits for the other endpoints' threads
    async def check(request: Request, key: str | None = Security(api_key_header)) -> KeyInfo:
        info = checked_recently(key)  # never logged, not even when refused
        if info is None:
            info = await lanes.serving(authenticate, key)
        if info is None:
            raise ApiError(401, "missing or unknown API key (send it in the X-API-Key header)",
                           HEADER)
        if scope not in info.scopes:
            message = f"this API key lacks the {scope!r} scope"
            route = getattr(request.scope.get("route"), "path", None) or request.url.path
            if _is_change(request, route):
                await anyio.to_thread.run_sync(_audit_refusal, info, request, route, scope,
                                               message)
            raise ApiError(403, message, HEADER)
        return info

    check.__name__ = f"require_{scope}"
    return check

