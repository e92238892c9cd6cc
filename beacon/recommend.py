"""recommend() and debug_filter(): one code path.

A request: one user lookup (+ their history), then every candidate is scored in one vectorized
pass, the filter stages of beacon.filters are applied as boolean masks, and the top N are taken
with np.argpartition. Candidates (with their local times precomputed) and their EventMatrix per
model version live in a small process cache per database (beacon.candidate_snapshot), reused
while the events are unchanged (a cheap key: highest id + newest updated_at, checked at most
every 2 s; the count every 60 s; and the catalogue stamp, read with the user on every request,
which the API's event writes move, so a cancelled event is gone from the next request of every
process) and the window still covers now; so a warm request costs two statements on one
connection (data_access.serving_read: stamp, active model id, user, personal vector; their
decisions) and one matrix-vector product over the rows that passed the filters.

Strategies (STRATEGIES, scored in beacon.scoring) change only how the rows that passed the
filters are scored; beacon.reasons writes the reason beside each. "beacon" is the hybrid model
with its fallback chain, each recommendation saying which level produced it: personal (a
user-scope vector for this user on the active global version) -> global (the active model
knows the user) -> features (active model, cold user: tags + home) -> popularity (no model, or
the model cannot be loaded / used). "popularity" is that last level on its own; "content" is
beacon.content (TF-IDF of the events against the user's history and interests). The features
and popularity levels decay with distance from the user's home or the given point, so a user
nobody resembles gets what is near, not what is far and popular.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from beacon import filters as F
from beacon.candidate_snapshot import (POPULARITY_DAYS, candidates, clear_caches, event_matrix,
                                       load_observers)
from beacon.errors import BeaconError, UnknownUser
from beacon.filters import CandidateArrays, FilterOutcome, FilterParams
from beacon.reasons import explained, reason
from beacon.scoring import SOURCES, STRATEGIES, Scoring, check_strategy, load_active, ranked, score
from data_access import catalog, models_store
from data_access.catalog import UserHistory, UserRow
from data_access.serving_read import serving_read

__all__ = ["POPULARITY_DAYS", "SOURCES", "STRATEGIES", "DebugEvent", "DebugResult", "Prepared",
           "Recommendation", "RecommendationResult", "Stage", "check_strategy", "clear_caches",
           "debug_filter", "load_observers", "recommend", "warm"]


# --------------------------------------------------------------------------- results


@dataclass
class Recommendation:
    event_id: str
    title: str
    score: float
    reason: str
    source: str
    distance_km: float | None
    local_start: datetime | None  # aware, in the event's own timezone
    category: str | None
    city: str | None
    latitude: float | None
    longitude: float | None
    rank: int
    event_pk: int = 0  # database id (the cache table references it)
    local_end: datetime | None = None
    timezone: str = "UTC"  # the event's IANA zone (local_start is in it)

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "event_id": self.event_id,
            "title": self.title,
            "score": round(float(self.score), 6),
            "reason": self.reason,
            "source": self.source,
            "distance_km": None if self.distance_km is None else round(self.distance_km, 3),
            "local_start": self.local_start.isoformat() if self.local_start else None,
            "local_end": self.local_end.isoformat() if self.local_end else None,
            "timezone": self.timezone,
            "category": self.category,
            "city": self.city,
            "latitude": self.latitude,
            "longitude": self.longitude,
        }


@dataclass
class Stage:
    name: str
    remaining: int
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "remaining": self.remaining, "enabled": self.enabled}


@dataclass(kw_only=True)
class _Answer:
    """What a recommendation and a debug-filter answer share: who, how it was scored, the
    funnel and the filters."""

    user: UserRow
    strategy: str
    source: str
    model_version: int | None
    stages: list[Stage]
    unknown_rejects: tuple[str, ...] = ()
    params: FilterParams = field(default_factory=FilterParams)

    def _json(self, listed: dict[str, list], listed_first: bool) -> dict[str, Any]:
        """The shared fields, with `listed` (the answer's own rows) before the stages or after."""
        head = {"user": self.user.email, "user_id": self.user.id, "strategy": self.strategy,
                "source": self.source, "model_version": self.model_version}
        stages = {"stages": [stage.to_json() for stage in self.stages]}
        middle = {**listed, **stages} if listed_first else {**stages, **listed}
        return {**head, **middle, "unknown_rejects": list(self.unknown_rejects),
                "filters": self.params.as_dict()}


@dataclass(kw_only=True)
class RecommendationResult(_Answer):
    items: list[Recommendation]

    def to_json(self) -> dict[str, Any]:
        return self._json({"recommendations": [item.to_json() for item in self.items]}, True)


@dataclass
class DebugEvent:
    event_id: str
    title: str
    passed: bool
    failed_stage: str | None
    reason: str  # why it failed (first failing stage), "" when it passed
    stages: dict[str, bool]  # per filter stage: passes it?
    reasons: dict[str, str]  # per failed stage: why
    distance_km: float | None
    local_start: datetime | None
    local_end: datetime | None
    latitude: float | None
    longitude: float | None
    category: str | None
    city: str | None
    timezone: str
    score: float | None
    rank: int | None  # rank among the passed events (1 = what recommend() puts first)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "title": self.title,
            "passed": self.passed,
            "failed_stage": self.failed_stage,
            "reason": self.reason,
            "stages": self.stages,
            "reasons": self.reasons,
            "distance_km": None if self.distance_km is None else round(self.distance_km, 3),
            "local_start": self.local_start.isoformat() if self.local_start else None,
            "local_end": self.local_end.isoformat() if self.local_end else None,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "category": self.category,
            "city": self.city,
            "timezone": self.timezone,
            "score": None if self.score is None else round(float(self.score), 6),
            "rank": self.rank,
        }


@dataclass(kw_only=True)
class DebugResult(_Answer):
    events: list[DebugEvent]

    @property
    def passed(self) -> list[DebugEvent]:
        return sorted((e for e in self.events if e.passed), key=lambda e: e.rank or 0)

    def to_json(self) -> dict[str, Any]:
        return self._json({"events": [event.to_json() for event in self.events]}, False)


@dataclass(frozen=True)
class Prepared:
    """What a batch (the refresh worker) read ahead for one user, so recommend() reads nothing
    per user: the user, their decisions, the catalogue stamp, the global model the batch
    serves (a versions.LoadedModel, or None) and the personal vector to score with (a
    versions.PersonalVector, or None when the user has none on that model)."""

    user: UserRow
    history: UserHistory
    stamp: int
    loaded: Any = None
    personal: Any = None


# --------------------------------------------------------------------------- the one code path


@dataclass
class _Evaluation:
    user: UserRow
    history: UserHistory
    params: FilterParams
    now: datetime
    arrays: CandidateArrays
    outcome: FilterOutcome
    scoring: Scoring
    strategy: str = "beacon"

    def stages(self) -> list[Stage]:
        enabled = {stage.name: stage.enabled for stage in self.outcome.stages}
        return [
            Stage(name, remaining, enabled.get(name, True))
            for name, remaining in self.outcome.remaining()
        ]


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise BeaconError(f"now must be timezone-aware, got {now!r}")
    return now


def _lookup(user: str | UserRow) -> UserRow:
    if isinstance(user, UserRow):
        return user
    row = catalog.user_by_email(user)
    if row is None:
        raise UnknownUser(user)
    return row


def _evaluate(user: str | UserRow | Prepared, params: FilterParams | None,
              now: datetime | None, lazy: bool = False, strategy: str = "beacon") -> _Evaluation:
    """The one code path: user + history, candidates, filter stages, scores. `lazy` evaluates
    each stage only on the rows still alive (recommend); the full form gives every candidate a
    flag and a reason per stage (debug filter). The strategy only scores the rows that passed."""
    strategy = check_strategy(strategy)
    params = params if params is not None else FilterParams()
    now = _now(now)
    prepared = user if isinstance(user, Prepared) else None
    if prepared is not None:
        row, history, stamp = prepared.user, prepared.history, prepared.stamp
        read = None
    else:
        if isinstance(user, UserRow):
            row = user
            read = serving_read(user_id=user.id)
        else:
            read = serving_read(email=user)
            if read.user is None:
                raise UnknownUser(user)
            row = read.user
        history, stamp = read.history, read.stamp
    snapshot = candidates(now, stamp)
    outcome = F.apply_filters(
        snapshot.arrays, params, now=now,
        registered=history.registered, stored_rejects=history.rejected,
        home=(row.latitude, row.longitude), lazy=lazy,
    )
    # the co-attendance component weighs a history by recency: newest first
    scoring = score(row, snapshot, outcome, now, read, strategy, prepared,
                     history.registered_newest_first)
    return _Evaluation(row, history, params, now, snapshot.arrays, outcome, scoring, strategy)


def _float_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _text_or_none(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def recommend(user: str | UserRow | Prepared, params: FilterParams | None = None,
              top: int = 10, now: datetime | None = None, strategy: str = "beacon",
              explain_from: int | None = 0) -> RecommendationResult:
    """The top `top` events for a user (email, row, or what a batch read ahead) that pass
    every filter, best first, with reasons, scored by `strategy` (one of STRATEGIES). Reasons
    are written for the items from index `explain_from` on (a page after an offset), for none
    with None (reason "")."""
    if top < 1:
        raise BeaconError(f"--top must be at least 1, got {top}")
    ev = _evaluate(user, params, now, lazy=True, strategy=strategy)
    arrays, outcome, scoring = ev.arrays, ev.outcome, ev.scoring
    order = ranked(scoring.values, scoring.rows, arrays.start_epoch, arrays.pk, top)
    shown = scoring.rows[order].tolist()
    skipped = top if explain_from is None else explain_from
    explanations = explained(scoring, arrays, shown[skipped:])
    items = []
    for rank, (i, value) in enumerate(zip(shown, scoring.values[order].tolist()), start=1):
        local_start = arrays.local_start(i)
        items.append(Recommendation(
            event_id=str(arrays.event_id[i]),
            title=str(arrays.value(i, "title")),
            score=value,
            reason="" if rank <= skipped else reason(
                scoring, arrays, i, ev.user, ev.history, outcome, local_start, ev.now,
                explanations),
            source=scoring.item_source(i),
            distance_km=outcome.distance(i),
            local_start=local_start,
            category=_text_or_none(arrays.value(i, "category")),
            city=_text_or_none(arrays.value(i, "city")),
            latitude=_float_or_none(arrays.value(i, "latitude")),
            longitude=_float_or_none(arrays.value(i, "longitude")),
            rank=rank,
            event_pk=int(arrays.pk[i]),
            local_end=arrays.local_end(i),
            timezone=str(arrays.value(i, "timezone") or "UTC"),
        ))
    return RecommendationResult(
        user=ev.user,
        strategy=ev.strategy,
        source=scoring.source,
        model_version=scoring.model_version,
        items=items,
        stages=ev.stages(),
        unknown_rejects=outcome.unknown_rejects,
        params=ev.params,
    )


def debug_filter(user: str | UserRow, params: FilterParams | None = None,
                 now: datetime | None = None, strategy: str = "beacon") -> DebugResult:
    """Every candidate with pass/fail per stage and why, plus the funnel; passed events carry
    the score and rank recommend() with the same strategy gives them."""
    ev = _evaluate(user, params, now, strategy=strategy)
    arrays, outcome, scoring = ev.arrays, ev.outcome, ev.scoring
    order = ranked(scoring.values, scoring.rows, arrays.start_epoch, arrays.pk, None)
    rank_of = np.zeros(arrays.n, dtype=np.int64)
    rank_of[scoring.rows[order]] = np.arange(1, len(order) + 1)
    score_of = np.full(arrays.n, np.nan)
    score_of[scoring.rows] = scoring.values
    first = outcome.first_failure()
    stages = outcome.stages
    distances = outcome.distance_km  # the full form measured every candidate
    events = []
    for i in range(arrays.n):
        flags = {stage.name: bool(stage.mask[i]) for stage in stages}
        reasons = {stage.name: stage.explain(i) for stage in stages if not stage.mask[i]}
        failed = stages[first[i]].name if first[i] >= 0 else None
        passed = bool(outcome.passed[i])
        events.append(DebugEvent(
            event_id=str(arrays.event_id[i]),
            title=str(arrays.value(i, "title")),
            passed=passed,
            failed_stage=failed,
            reason=reasons.get(failed, "") if failed else "",
            stages=flags,
            reasons=reasons,
            distance_km=None if distances is None else _float_or_none(distances[i]),
            local_start=arrays.local_start(i),
            local_end=arrays.local_end(i),
            latitude=_float_or_none(arrays.value(i, "latitude")),
            longitude=_float_or_none(arrays.value(i, "longitude")),
            category=_text_or_none(arrays.value(i, "category")),
            city=_text_or_none(arrays.value(i, "city")),
            timezone=str(arrays.value(i, "timezone") or "UTC"),
            score=float(score_of[i]) if passed else None,
            rank=int(rank_of[i]) if passed else None,
        ))
    return DebugResult(
        user=ev.user,
        strategy=ev.strategy,
        source=scoring.source,
        model_version=scoring.model_version,
        stages=ev.stages(),
        events=events,
        unknown_rejects=outcome.unknown_rejects,
        params=ev.params,
    )


def warm(now: datetime | None = None) -> None:
    """Load the candidate snapshot and the active model's event matrix now (a server's start),
    so the first request does not pay for them."""
    snapshot = candidates(_now(now))
    _, loaded = load_active(models_store.active_global_id())
    if loaded is not None and snapshot.arrays.n:
        event_matrix(snapshot, loaded)
