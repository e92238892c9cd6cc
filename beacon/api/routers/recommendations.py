"""GET /v1/users/{email}/recommendations, POST /v1/recommend, GET /v1/events/{id}/similar."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from beacon import serving
from beacon.api import lanes, query, telemetry
from beacon.api.errors import AUTH_RESPONSES, NOT_FOUND, ApiError
from beacon.api.schemas import EmailPath, EventIdPath, FilterQuery, RecommendBody, \
    RecommendationItem, RecommendationsResponse, UserQuery
from beacon.api.security import require
from beacon.api_keys import KeyInfo
from beacon.errors import BeaconError
from beacon.filters import FilterParams

router = APIRouter(prefix="/v1", tags=["recommendations"], responses=AUTH_RESPONSES)
Reader = Annotated[KeyInfo, Depends(require("recommend"))]

#: which field each part of FilterParams.parse checks (its message then names that field)
_PARTS = (("lat", ("lat", "lon")), ("max_km", ("max_km",)), ("dates", ("dates",)),
          ("start", ("start", "end")), ("reject", ("reject",)), ("category", ("category",)))


def filter_params(**given) -> FilterParams:
    """FilterParams.parse, with a failure pinned to the field at fault (the parts are parsed
    one by one only to find that field)."""
    try:
        return FilterParams.parse(**given)
    except BeaconError as failure:
        for field, names in _PARTS:
            try:
                FilterParams.parse(**{name: given.get(name) for name in names})
            except BeaconError as error:
                raise ApiError(422, str(error), field) from None
        raise ApiError(422, str(failure), None) from None


def _items(served: serving.Served, explain: bool) -> list[RecommendationItem]:
    """Built without validation (model_construct): every value is typed here, and validating
    the answer's own items cost a few percent of its CPU."""
    return [
        RecommendationItem.model_construct(
            rank=item.rank, event_id=item.event_id, title=item.title,
            score=round(float(item.score), 6), reason=item.reason if explain else None,
            distance_km=None if item.distance_km is None else round(item.distance_km, 3),
            local_start=item.local_start.isoformat() if item.local_start else None,
            local_end=item.local_end.isoformat() if item.local_end else None,
            timezone=item.timezone, category=item.category, city=item.city,
        )
        for item in served.items
    ]


def respond(served: serving.Served, explain: bool) -> Response:
    """The answer, built and serialized on the serving lane (returned as a model, FastAPI
    would validate it in a second trip through the threads); `response_model` on the routes
    still documents it."""
    telemetry.served(served.model_version)
    answer = RecommendationsResponse.model_construct(
        request_id=served.request_id, email=served.email, known_user=served.known_user,
        model_version=served.model_version, strategy=served.strategy, source=served.source,
        items=_items(served, explain))
    return Response(answer.model_dump_json(), media_type="application/json")


def _answer(explain: bool, call, *args, **kwargs) -> Response:
    """The response of call(*args, explain=explain, **kwargs): runs on the serving lane."""
    try:
        served = call(*args, explain=explain, **kwargs)
    except BeaconError as error:
        if "max distance" in str(error):  # no point given and no home to measure from
            raise ApiError(422, str(error), "max_km") from None
        raise
    return respond(served, explain)


@dataclass(frozen=True)
class _Query:
    n: int
    offset: int
    strategy: str
    explain: bool
    params: FilterParams
    known_only: bool = False


def _as_query(given: FilterQuery, known_only: bool = False) -> _Query:
    params = filter_params(lat=given.lat, lon=given.lon, max_km=given.max_km,
                           dates=given.dates, start=given.start, end=given.end,
                           reject=given.reject, category=given.category)
    return _Query(n=given.n, offset=given.offset, strategy=given.strategy,
                  explain=given.explain, params=params, known_only=known_only)


async def _user_query(request: Request) -> _Query:
    """async: parsing the query is a few microseconds of arithmetic, cheaper on the event loop
    than a trip through the endpoint threads."""
    given = query.parse(UserQuery, request)
    return _as_query(given, known_only=given.known_only)


async def _similar_query(request: Request) -> _Query:
    return _as_query(query.parse(FilterQuery, request))


@router.get("/users/{email}/recommendations", response_model=RecommendationsResponse,
            responses=NOT_FOUND, openapi_extra=query.documented(UserQuery))
async def user_recommendations(
    key: Reader,
    email: EmailPath,
    q: Annotated[_Query, Depends(_user_query)],
) -> Response:
    """The user's top `n` upcoming events after `offset`, filtered, with reasons. A user the
    database does not hold gets the cold-start ranking for the point given (404 with
    known_only=true)."""
    return await lanes.serving(_answer, q.explain, serving.serve, email, q.params, n=q.n,
                               offset=q.offset, strategy=q.strategy, known_only=q.known_only)


@router.post("/recommend", response_model=RecommendationsResponse, responses=NOT_FOUND)
async def recommend_body(key: Reader, body: RecommendBody) -> Response:
    """The same as the GET, as a JSON body; also takes the field names older clients send."""
    params = filter_params(
        lat=body.lat, lon=body.lon, max_km=body.max_km,
        dates=None if body.dates is None else [d.isoformat() for d in body.dates],
        start=body.start, end=body.end, reject=body.reject,
        category=None if body.category is None else list(body.category))
    return await lanes.serving(_answer, body.explain, serving.serve, body.email, params,
                               n=body.n, offset=body.offset, strategy=body.strategy,
                               known_only=body.known_only, interests=tuple(body.interests))


@router.get("/events/{event_id}/similar", response_model=RecommendationsResponse,
            responses=NOT_FOUND, openapi_extra=query.documented(FilterQuery))
async def similar_events(
    key: Reader,
    event_id: EventIdPath,
    q: Annotated[_Query, Depends(_similar_query)],
) -> Response:
    """Upcoming events like this one (its category, tags and place), filters allowed."""
    return await lanes.serving(_answer, q.explain, serving.similar, event_id, q.params, n=q.n,
                               offset=q.offset, strategy=q.strategy)
