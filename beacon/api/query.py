"""Query parameters declared as one Pydantic model per route, validated in one call.

FastAPI validates declared query parameters one by one, with per-parameter introspection on
every request: for the recommendation GETs (thirteen parameters) that was a tenth of an
answer's CPU in the load benchmark. Here the model validates the whole query at once, and its
JSON schema documents the parameters in the OpenAPI document as FastAPI would. A failure
raises FastAPI's own RequestValidationError with the location ("query", name), so the error
shape (422, the field named) is the one every other parameter gets."""
from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose query is `model`: one parameter per field."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise TypeError(f"{model.__name__}: query fields must not refer to other models")
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return {"parameters": parameters}


def parse(model: type[M], request: Request) -> M:
    """The request's query as `model` (a repeated name counts with its last value, as FastAPI
    reads a single-valued parameter; names the model lacks are ignored)."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None
