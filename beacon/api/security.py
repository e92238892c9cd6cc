"""The API key check, as a dependency: 401 without a valid key, 403 without the scope."""
from __future__ import annotations

from typing import Callable

from fastapi import Security
from fastapi.security import APIKeyHeader

from beacon.api import lanes
from beacon.api.errors import ApiError
from beacon.api_keys import KeyInfo, authenticate, checked_recently

HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=HEADER, auto_error=False,
                              description="an API key made with `python -m beacon api-keys create`")


def require(scope: str) -> Callable[..., KeyInfo]:
    # async: a key checked within the last second is answered from memory on the event loop;
    # a sync dependency would cost every request a trip through the endpoint threads. The
    # check itself (once a second per key and process) runs on the serving lane, so that a
    # recommendation never waits for the other endpoints' threads
    async def check(key: str | None = Security(api_key_header)) -> KeyInfo:
        info = checked_recently(key)  # never logged, not even when refused
        if info is None:
            info = await lanes.serving(authenticate, key)
        if info is None:
            raise ApiError(401, "missing or unknown API key (send it in the X-API-Key header)",
                           HEADER)
        if scope not in info.scopes:
            raise ApiError(403, f"this API key lacks the {scope!r} scope", HEADER)
        return info

    check.__name__ = f"require_{scope}"
    return check

