"""Admin: training, runs, model versions, a user's personal model, cleanup, the debug filter."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from beacon import personal, serving, training, training_settings, versions
from beacon.api.errors import AUTH_RESPONSES, CONFLICT, NOT_FOUND, ApiError
from beacon.api.routers.recommendations import filter_params
from beacon.api.schemas import CleanupBody, DebugFilterBody, Document, EmailPath, \
    TrainAccepted, TrainBody, TrainingSettingsBody
from beacon.api.security import require
from beacon.api_keys import KeyInfo
from beacon.errors import BeaconError, UnknownUser
from beacon.recommend import debug_filter
from data_access import runs

router = APIRouter(prefix="/v1", tags=["admin"], responses=AUTH_RESPONSES)
Admin = Annotated[KeyInfo, Depends(require("admin"))]
VersionId = Annotated[int, Path(ge=1, le=2**62)]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@router.post("/train", status_code=202, response_model=TrainAccepted,
             responses={**CONFLICT, **NOT_FOUND})
def train(key: Admin, body: TrainBody) -> TrainAccepted:
    """Start a training in the background (smart: it may decide to skip; `force` trains
    regardless) and answer at once with the run to follow. 409 while one runs for the scope."""
    try:
        run_id = training.start_training_in_background(
            scope=body.scope, force=body.force, user=body.user,
            trigger="force" if body.force else "button", actor=key.actor())
    except training.TrainingBusy as error:
        raise ApiError(409, str(error), "scope") from None
    except UnknownUser as error:
        raise ApiError(404, str(error), "user") from None
    return TrainAccepted(run_id=run_id, status_url=f"/v1/runs/{run_id}")


def _settings_document() -> dict:
    return _plain(training_settings.document())


@router.get("/training/settings", response_model=Document)
def get_training_settings(key: Admin) -> dict:
    """What smart retrains train with (`settings`), and what of it is saved over the built-in
    defaults (`saved`, with who saved it when): `training-settings show --json`."""
    return _settings_document()


@router.patch("/training/settings", response_model=Document)
def change_training_settings(key: Admin, body: TrainingSettingsBody) -> dict:
    """Clear saved settings back to their built-in defaults (`reset`: names; `reset_all`), then
    save `set` (by name) over the rest, in one transaction: a bad name or value is refused as a
    whole and nothing is saved. Answers like GET."""
    try:
        training_settings.save_training_settings(body.set, reset=body.reset,
                                                 reset_all=body.reset_all, actor=key.actor())
    except training_settings.BadSettings as error:
        raise ApiError(422, str(error), error.part) from None
    return _settings_document()


@router.get("/runs/{run_id}", response_model=Document, responses=NOT_FOUND)
def get_run(key: Admin, run_id: VersionId) -> dict:
    """A training run: status (queued and running while live; succeeded, skipped, failed,
    cancelled or abandoned once final), progress, result."""
    run = runs.get_run(run_id)
    if run is None:
        raise ApiError(404, f"no training run {run_id}", "run_id")
    return _plain(run)


@router.get("/models", response_model=Document)
def list_models(key: Admin, scope: Literal["global", "user"] | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """Model versions, newest first, under `versions` (each with `metrics_summary`; `models show`
    and GET /v1/models/{id} give the full metrics)."""
    return {"versions": [_plain(v.to_dict(full=False))
                         for v in versions.list_versions(scope=scope, limit=limit)]}


@router.get("/models/{version_id}", response_model=Document, responses=NOT_FOUND)
def show_model(key: Admin, version_id: VersionId) -> dict:
    try:
        return _plain(versions.show(version_id).to_dict())
    except BeaconError as error:
        raise ApiError(404, str(error), "version_id") from None


@router.post("/models/{version_id}/activate", response_model=Document, responses=NOT_FOUND)
def activate_model(key: Admin, version_id: VersionId) -> dict:
    """Make a version active (a rollback is activating an older one); every process serves it
    from its next request on."""
    try:
        versions.show(version_id)
    except BeaconError as error:
        raise ApiError(404, str(error), "version_id") from None
    return _plain(versions.activate(version_id, actor=key.actor()).to_dict(full=False))


@router.delete("/users/{email}/model", response_model=Document, responses=NOT_FOUND)
def delete_user_model(key: Admin, email: EmailPath) -> dict:
    """Forget the user's personal (fold-in) model; the global model serves them next."""
    deleted = personal.delete_user_model(email, actor=key.actor())
    return {"email": email, "deleted_versions": deleted}


@router.post("/models/cleanup", response_model=Document)
def cleanup(key: Admin, body: CleanupBody) -> dict:
    """Delete versions older than keep_days (never an active one, never the keep_newest newest)."""
    result = versions.cleanup(body.keep_days, keep_newest=body.keep_newest,
                              dry_run=body.dry_run, actor=key.actor())
    return _plain(result.to_dict())


@router.post("/debug/filter", response_model=Document, responses=NOT_FOUND)
def debug(key: Admin, body: DebugFilterBody) -> dict:
    """Every candidate with pass/fail per stage and why, and the funnel: the same document as
    `python -m beacon debug-filter --json`."""
    params = filter_params(
        lat=body.lat, lon=body.lon, max_km=body.max_km,
        dates=None if body.dates is None else [d.isoformat() for d in body.dates],
        start=body.start, end=body.end, reject=body.reject,
        category=None if body.category is None else list(body.category))
    try:
        try:
            return debug_filter(body.email, params).to_json() | {"known_user": True}
        except UnknownUser:
            if body.known_only:
                raise
            user = serving.stand_in(body.email, params.latitude, params.longitude,
                                    tuple(body.interests))
            return debug_filter(user, params).to_json() | {"known_user": False}
    except BeaconError as error:
        if "max distance" in str(error):
            raise ApiError(422, str(error), "max_km") from None
        raise
