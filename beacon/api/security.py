"""The API key check, as a dependency: 401 without a valid key, 403 without the scope."""
from __future__ import annotations

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


#: a refused request with another method asked for a change: the audit trail records it
READ_METHODS = ("GET", "HEAD", "OPTIONS")


def _audit_refusal(info: KeyInfo, request: Request, scope: str, message: str) -> None:
    """A key refused at its scope never reaches the service's door (beacon.actions), which
    audits every other refusal: the row names the key, the route and the scope it lacked."""
    from beacon.actions import record

    route = getattr(request.scope.get("route"), "path", None) or request.url.path
    record(info.actor(), f"{request.method} {route}", "refused",
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
            if request.method not in READ_METHODS:
                await anyio.to_thread.run_sync(_audit_refusal, info, request, scope, message)
            raise ApiError(403, message, HEADER)
        return info

    check.__name__ = f"require_{scope}"
    return check

