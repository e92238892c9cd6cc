"""POST /v1/interactions: idempotent batches of what users did."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from beacon import ingest
from beacon.api.errors import AUTH_RESPONSES, ApiError
from beacon.api.schemas import IngestResponse, InteractionBatch
from beacon.api.security import require
from beacon.api_keys import KeyInfo
from data_access.ingest import IncomingInteraction
from data_access.schema import utcnow

router = APIRouter(prefix="/v1", tags=["interactions"], responses=AUTH_RESPONSES)


@router.post("/interactions", response_model=IngestResponse)
def report_interactions(key: Annotated[KeyInfo, Depends(require("ingest"))],
                        batch: InteractionBatch) -> IngestResponse:
    """Store a batch all or nothing. Each interaction's `id` is its idempotency id: a retried
    batch inserts nothing twice. An impression with the `request_id` of the answer that showed
    it is attributed to that answer's model version, strategy and position. A reject or
    registration counts from the user's very next request; meaningful interactions mark the
    user for a refresh of their personal model and cached list."""
    now = utcnow()
    items = [IncomingInteraction(
        idempotency_key=i.id, email=i.email, event_id=i.event_id, type=i.type,
        occurred_at=i.occurred_at or now, request_id=i.request_id) for i in batch.interactions]
    try:
        summary = ingest.ingest_interactions(items, now=now, actor=key.actor())
    except ingest.BadItem as error:
        raise ApiError(422, f"interactions[{error.index}].{error.field}: {error}",
                       f"interactions[{error.index}].{error.field}") from None
    return IngestResponse(**summary.to_json())
