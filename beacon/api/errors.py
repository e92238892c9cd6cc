"""One JSON shape for every error: {"error": {"status", "message", "field", "errors"}}."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from beacon.actions import PermissionDenied
from beacon.errors import BeaconError, UnknownEvent, UnknownUser

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class ErrorDetail(BaseModel):
    field: str | None
    message: str


class ErrorBody(BaseModel):
    status: int
    message: str
    field: str | None = None
    errors: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


def responses_for(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "malformed request", 401: "missing or unknown API key",
            403: "the key lacks the scope", 404: "not found", 409: "conflict",
            422: "invalid parameter (the field is named)", 503: "not ready"}
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}


AUTH_RESPONSES = responses_for(400, 401, 403, 422)
NOT_FOUND = responses_for(404)
CONFLICT = responses_for(409)


def error_response(status: int, message: str, field: str | None = None,
                   errors: list[dict] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"status": status, "message": message, "field": field,
            "errors": errors or [{"field": field, "message": message}]}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def field_name(loc: tuple | list) -> str:
    """("body", "interactions", 3, "event_id") -> "interactions[3].event_id";
    ("query", "n") -> "n"."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _detail(error: dict) -> dict:
    """One pydantic error as {field, message}: a check across fields names its own field
    (schemas.FieldError) instead of the whole body."""
    loc, message = tuple(error.get("loc", ())), str(error.get("msg", "invalid"))
    cause = (error.get("ctx") or {}).get("error")
    named = getattr(cause, "field", None)
    if named:
        loc = (*loc, named) if loc != ("body",) else ("body", named)
    message = message.removeprefix("Value error, ")
    return {"field": field_name(loc), "message": message}


async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
    raw = list(error.errors())
    broken = next((e for e in raw if e.get("type") == "json_invalid"), None)
    if broken is not None:
        why = (broken.get("ctx") or {}).get("error", "")
        where = broken.get("loc", ("body", None))[-1]
        message = f"malformed request: the body is not valid JSON ({why} at character {where})"
        return error_response(400, message)
    errors = [_detail(e) for e in raw]
    first = errors[0] if errors else {"field": None, "message": "invalid request"}
    return error_response(422, f"{first['field']}: {first['message']}", first["field"], errors)


async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status, error.message, error.field)


async def _beacon_error(_request: Request, error: BeaconError) -> JSONResponse:
    if isinstance(error, PermissionDenied):
        return error_response(403, str(error), "X-API-Key")
    if isinstance(error, UnknownUser):
        return error_response(404, str(error), "email")
    if isinstance(error, UnknownEvent):
        return error_response(404, str(error), "event_id")
    return error_response(422, str(error), getattr(error, "field", None))


async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    message = error.detail if isinstance(error.detail, str) else "request refused"
    if error.status_code == 400:
        if message == "There was an error parsing the body":  # FastAPI: not decodable as JSON
            message = "the body is not valid JSON (send UTF-8 text with Content-Type: application/json)"
        message = f"malformed request: {message}"
    headers = getattr(error, "headers", None)  # e.g. Allow on a 405
    return error_response(error.status_code, message, headers=headers)


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    from sqlalchemy.exc import OperationalError

    if isinstance(error, OperationalError):
        log.error("database unavailable: %s", type(error).__name__)
        return error_response(503, "the database is unavailable; try again shortly")
    log.exception("unexpected error")
    # the server drops the connection after an unhandled error: say so, or a client's pool
    # reuses it and its next, unrelated request fails with a reset
    return error_response(500, "internal error (logged on the server)",
                          headers={"Connection": "close"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(BeaconError, _beacon_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
