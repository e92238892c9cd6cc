"""GET /v1/stats/users/{email} and GET /v1/stats/global."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from beacon import stats
from beacon.api.errors import AUTH_RESPONSES, NOT_FOUND
from beacon.api.schemas import Document, EmailPath
from beacon.api.security import require
from beacon.api_keys import KeyInfo

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=AUTH_RESPONSES)
Reader = Annotated[KeyInfo, Depends(require("recommend"))]
Days = Annotated[int, Query(ge=1, le=stats.MAX_DAYS)]


@router.get("/users/{email}", response_model=Document, responses=NOT_FOUND)
def user_stats(key: Reader, email: EmailPath,
               days: Days = 30) -> dict:
    """Over the last `days`: answers served, impressions, clicks, registrations, CTR, the top
    categories of what the user showed interest in."""
    return stats.user_stats(email, days=days)


@router.get("/global", response_model=Document)
def global_stats(key: Reader, days: Days = 30) -> dict:
    """Over the last `days`: CTR and conversion, the split by strategy, per day, and the most
    registered events (the Metrics page's numbers)."""
    return stats.global_stats(days=days)
