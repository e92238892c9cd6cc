"""recommend() and debug_filter(): one code path.

A request: one user lookup (+ their history), then every candidate is scored in one vectorized
pass, the filter stages of beacon.filters are applied as boolean masks, and the top N are taken
with np.argpartition. Candidates (with their local times precomputed) and their EventMatrix per
model version live in a small process cache per database, reused while the events are unchanged
(a cheap key: highest id + newest updated_at, checked at most every 2 s; the count every 60 s;
and the catalogue stamp, read with the user on every request, which the API's event writes
move, so a cancelled event is gone from the next request of every process) and the window
still covers now; so a warm request costs two statements on one connection
(data_access.serving_read: stamp, active model id, user, personal vector; their decisions) and
one matrix-vector product over the rows that passed the filters.

Strategies (STRATEGIES) change only how the rows that passed the filters are scored:
"beacon" is the hybrid model with its fallback chain, each recommendation saying which level
produced it: personal (a user-scope vector for this user on the active global version) ->
global (the active model knows the user) -> features (active model, cold user: tags + home) ->
popularity (no model, or the model cannot be loaded / used). "popularity" is that last level on
its own; "content" is beacon.content (TF-IDF of the events against the user's history and
interests). The features and popularity levels decay with distance from the user's home or the
given point, so a user nobody resembles gets what is near, not what is far and popular.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np

from beacon import filters as F
from beacon.errors import BeaconError, UnknownUser
from beacon.filters import CandidateArrays, FilterOutcome, FilterParams
from data_access import catalog, catalog_sync, models_store
from data_access.catalog import UserHistory, UserRow
from data_access.db import database_url
from data_access.serving_read import ServingRead, serving_read

log = logging.getLogger(__name__)

SOURCES = ("personal", "global", "features", "popularity", "content")
STRATEGIES = ("beacon", "popularity", "content")
POPULARITY_DAYS = 7
#: how long a loaded candidate snapshot is trusted before its key is checked again
SNAPSHOT_TTL_S = float(os.environ.get("BEACON_CANDIDATE_TTL_S", "2"))
#: candidates reach back this far before now, so debug-filter can show what just started
LOOKBACK = timedelta(days=1)
NEARBY_KM = 25.0
#: distance (km) at which the fallbacks' preference for near events halves the popularity score
DECAY_KM = NEARBY_KM


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


@dataclass
class RecommendationResult:
    user: UserRow
    strategy: str
    source: str
    model_version: int | None
    items: list[Recommendation]
    stages: list[Stage]
    unknown_rejects: tuple[str, ...] = ()
    params: FilterParams = field(default_factory=FilterParams)

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user.email,
            "user_id": self.user.id,
            "strategy": self.strategy,
            "source": self.source,
            "model_version": self.model_version,
            "recommendations": [item.to_json() for item in self.items],
            "stages": [stage.to_json() for stage in self.stages],
            "unknown_rejects": list(self.unknown_rejects),
            "filters": self.params.as_dict(),
        }


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


@dataclass
class DebugResult:
    user: UserRow
    strategy: str
    source: str
    model_version: int | None
    stages: list[Stage]
    events: list[DebugEvent]
    unknown_rejects: tuple[str, ...] = ()
    params: FilterParams = field(default_factory=FilterParams)

    @property
    def passed(self) -> list[DebugEvent]:
        return sorted((e for e in self.events if e.passed), key=lambda e: e.rank or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user.email,
            "user_id": self.user.id,
            "strategy": self.strategy,
            "source": self.source,
            "model_version": self.model_version,
            "stages": [stage.to_json() for stage in self.stages],
            "events": [event.to_json() for event in self.events],
            "unknown_rejects": list(self.unknown_rejects),
            "filters": self.params.as_dict(),
        }


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


# --------------------------------------------------------------------------- process cache


@dataclass
class _Snapshot:
    key: tuple  # events_snapshot_key(with_count=True) when loaded
    since: datetime  # the frame holds every event starting after this
    arrays: CandidateArrays
    checked_at: float  # monotonic time of the last cheap key check
    counted_at: float  # ... and of the last full one (with the count)
    stamp: int = 0  # the catalogue stamp it was built under
    matrices: "OrderedDict[int, Any]" = field(default_factory=OrderedDict)
    popularity: dict[str, tuple[float, np.ndarray]] = field(default_factory=dict)
    content: Any = None  # beacon.content.ContentIndex of these candidates, fit on first use


_lock = threading.Lock()
_snapshots: "OrderedDict[str, _Snapshot]" = OrderedDict()
_MAX_SNAPSHOTS = 4  # databases per process (tests switch; a server has one)
_MAX_MATRICES = 3
POPULARITY_TTL_S = 60.0
#: how often the event count (an index scan, catches deletions) joins the cheap key check
COUNT_TTL_S = float(os.environ.get("BEACON_CANDIDATE_COUNT_TTL_S", "60"))


#: called after this process builds a candidate snapshot or an event matrix (the API freezes
#: the garbage collector's view of the long-lived objects then: beacon/api/app.py)
load_observers: list[Callable[[], None]] = []


def _loaded() -> None:
    for observer in load_observers:
        observer()


def clear_caches() -> None:
    """Forget every cached candidate snapshot and event matrix (tests, after bulk loads)."""
    with _lock:
        _snapshots.clear()


def _hour_bucket(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _covers(snapshot: _Snapshot, now: datetime) -> bool:
    """The frame holds every event starting after now - LOOKBACK, and not much older."""
    return now - 2 * LOOKBACK <= snapshot.since <= now - LOOKBACK


def _candidates(now: datetime, stamp: int | None = None) -> _Snapshot:
    """The candidate snapshot for `now`: reused while the events are unchanged (a cheap key
    check at most every SNAPSHOT_TTL_S, the count every COUNT_TTL_S), the catalogue `stamp`
    (read now when not given) is the one it was built under and the time window still covers
    now; rebuilt otherwise."""
    url = database_url()
    clock = _time.monotonic()
    if stamp is None:
        stamp = catalog_sync.catalog_stamp()
    with _lock:
        snapshot = _snapshots.get(url)
    if snapshot is not None and _covers(snapshot, now) and snapshot.stamp == stamp:
        if clock - snapshot.checked_at < SNAPSHOT_TTL_S:
            return snapshot
        full = clock - snapshot.counted_at >= COUNT_TTL_S
        key = catalog.events_snapshot_key(with_count=full)
        if key == snapshot.key[: len(key)]:
            snapshot.checked_at = clock
            if full:
                snapshot.counted_at = clock
            return snapshot
    key = catalog.events_snapshot_key(with_count=True)
    since = _hour_bucket(now) - LOOKBACK
    frame = catalog.candidate_events(since)
    snapshot = _Snapshot(key=key, since=since, arrays=CandidateArrays.from_frame(frame),
                         checked_at=clock, counted_at=clock, stamp=stamp)
    with _lock:
        _snapshots[url] = snapshot
        _snapshots.move_to_end(url)
        while len(_snapshots) > _MAX_SNAPSHOTS:
            _snapshots.popitem(last=False)
    _loaded()
    return snapshot


def _event_matrix(snapshot: _Snapshot, loaded) -> Any:
    version_id = int(loaded.version_id)
    with _lock:
        matrix = snapshot.matrices.get(version_id)
        if matrix is not None:
            snapshot.matrices.move_to_end(version_id)
            return matrix
    matrix = loaded.model.event_matrix(snapshot.arrays.frame)
    ids = getattr(matrix, "event_ids", None)
    if ids is not None and len(ids) == snapshot.arrays.n and snapshot.arrays.n:
        ids = [str(x) for x in ids]
        expected = [str(x) for x in snapshot.arrays.event_id]
        if ids != expected and ids != [str(x) for x in snapshot.arrays.pk]:
            raise RuntimeError("the model's event matrix is not in candidate order")
    with _lock:
        snapshot.matrices[version_id] = matrix
        while len(snapshot.matrices) > _MAX_MATRICES:
            snapshot.matrices.popitem(last=False)
    _loaded()
    return matrix


def _popularity(snapshot: _Snapshot, now: datetime) -> np.ndarray:
    """Registrations in the last POPULARITY_DAYS per candidate (cached for a minute)."""
    day = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0).isoformat()
    with _lock:
        hit = snapshot.popularity.get(day)
        if hit is not None and _time.monotonic() - hit[0] < POPULARITY_TTL_S:
            return hit[1]
    counts = catalog.popularity_counts(now - timedelta(days=POPULARITY_DAYS), ("register",))
    arrays = snapshot.arrays
    values = np.zeros(arrays.n, dtype=np.float64)
    for pk, count in counts.items():
        pos = arrays.pos_by_pk.get(pk)
        if pos is not None:
            values[pos] = count
    with _lock:
        snapshot.popularity = {day: (_time.monotonic(), values)}
    return values


# --------------------------------------------------------------------------- scoring


@dataclass
class _Scoring:
    source: str
    model_version: int | None
    rows: np.ndarray  # positions of the candidates that passed the filters
    values: np.ndarray  # float64 score of each of them
    model: Any = None
    context: Any = None
    override: Any = None
    matrix: Any = None
    popularity: np.ndarray | None = None
    content: Any = None  # (ContentIndex, Profile, cosine per candidate) for "content"
    #: per candidate: how far the co-attendance part of its blended score exceeds the hybrid
    #: part (> 0: co-attendance ranked it up); None without that component
    coattendance: np.ndarray | None = None
    #: per candidate: the content part of its blended score (> 0: its text is closer than
    #: average to the user's past events); None without the content component
    content_blend: np.ndarray | None = None
    #: per candidate: how far the trend part of its blended score exceeds the rest (> 0: what
    #: was registered for lately ranked it up); None without the trend component
    trend: np.ndarray | None = None
    registered: tuple[int, ...] = ()  # newest first

    def item_source(self, i: int) -> str:
        """What produced candidate i's place: a content match, or popularity where the
        profile matched nothing of it."""
        if self.content is not None and self.content[2][i] <= 0:
            return "popularity"
        return self.source


def check_strategy(strategy: str) -> str:
    """The strategy name, or a BeaconError naming the valid ones."""
    name = str(strategy).strip().lower() if strategy is not None else ""
    if name not in STRATEGIES:
        raise BeaconError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    return name


def _user_context(user: UserRow):
    from beacon.features import UserContext

    return UserContext(
        user_id=user.id, tags=tuple(user.tags), latitude=user.latitude,
        longitude=user.longitude, city=user.city,
    )


def _load_active(active_id: int | None):
    try:
        from beacon import versions
    except ImportError:
        return None, None
    try:
        return versions, versions.serving_model(active_id)
    except Exception as error:  # noqa: BLE001 - a broken model must not break serving
        if versions.warn_once(("recommend-load", type(error).__name__)):
            log.warning("active model could not be loaded, serving popularity: %s", error)
        return versions, None


def _distance_km(outcome: FilterOutcome, rows: np.ndarray) -> np.ndarray | None:
    """km from the home / given point per row, for a ranking's distance decay
    (UNKNOWN_PLACE_KM where the event has no place); None without an origin."""
    distances = outcome.ranking_distances(rows)
    return None if distances is None else np.nan_to_num(distances, nan=F.UNKNOWN_PLACE_KM)


def _popularity_values(counts: np.ndarray, distances: np.ndarray | None) -> np.ndarray:
    """More registrations first, divided by a distance decay: an event 25 km away needs about
    twice the score of one next door, one 9,000 km away 360 times."""
    values = 1.0 + np.log1p(counts)
    if distances is not None:
        values = values / (1.0 + distances / DECAY_KM)
    return values


def _popularity_scoring(snapshot: _Snapshot, outcome: FilterOutcome, now: datetime) -> _Scoring:
    counts = _popularity(snapshot, now) if snapshot.arrays.n else np.zeros(0)
    rows = outcome.passed_rows
    values = _popularity_values(counts[rows], _distance_km(outcome, rows))
    return _Scoring("popularity", None, rows, values, popularity=counts)


def _content_index(snapshot: _Snapshot):
    from beacon.content import ContentIndex, frame_terms

    index = snapshot.content
    if index is None:
        index = ContentIndex(frame_terms(snapshot.arrays.frame))
        with _lock:
            snapshot.content = index
    return index


def _content_scoring(user: UserRow, snapshot: _Snapshot, outcome: FilterOutcome,
                     now: datetime) -> _Scoring:
    """Cosine of the user's profile with each passed candidate, times a place factor (far
    events count less); the popularity prior (tiny) orders equal matches. No profile at all
    (no usable history, no interests): popularity."""
    from beacon.content import PRIOR_WEIGHT, history_items, place_factor

    index = _content_index(snapshot)
    profile = index.profile(history_items(catalog.user_event_interactions(user.id)), user.tags)
    base = _popularity_scoring(snapshot, outcome, now)
    if profile is None:
        return base
    rows = base.rows
    cosine = np.zeros(snapshot.arrays.n, dtype=np.float64)
    cosine[rows] = index.similarity(profile, rows)
    prior = base.values / (1.0 + base.values)  # in [0, 1)
    values = cosine[rows] * place_factor(_distance_km(outcome, rows)) + PRIOR_WEIGHT * prior
    return _Scoring("content", None, rows, values, popularity=base.popularity,
                    content=(index, profile, cosine))


def _personal(versions, read: ServingRead, user: UserRow, version_id: int):
    """The user's fold-in vector on the served version: read with the user when that version
    is the active one, asked for separately while a fallback version serves."""
    if version_id == read.active_model_id:
        found = read.personal
        return None if found is None else versions.personal_from_row(
            found.version_id, found.created_at, found.blob, base_version_id=version_id)
    try:
        return versions.personal_vector(user.id, version_id)
    except Exception as error:  # noqa: BLE001
        log.warning("personal vector for user %s unavailable: %s", user.id, error)
        return None


def _score(user: UserRow, snapshot: _Snapshot, outcome: FilterOutcome, now: datetime,
           read: ServingRead | None, strategy: str = "beacon",
           prepared: Prepared | None = None,
           registered: tuple[int, ...] = ()) -> _Scoring:
    """`read` (this request's one read) or `prepared` (what a refresh batch read ahead)."""
    if strategy == "popularity":
        return _popularity_scoring(snapshot, outcome, now)
    if strategy == "content":
        return _content_scoring(user, snapshot, outcome, now)
    arrays = snapshot.arrays
    if prepared is None:
        versions, loaded = _load_active(read.active_model_id)
    else:
        from beacon import versions

        loaded = prepared.loaded
    if loaded is not None:
        try:
            model = loaded.model
            context = _user_context(user)
            override = None
            source = "features"
            model_version = int(loaded.version_id)
            personal = prepared.personal if prepared is not None else \
                _personal(versions, read, user, int(loaded.version_id))
            if personal is not None:
                override = (np.asarray(personal.vector, dtype=np.float32), float(personal.bias))
                source = "personal"
                model_version = int(personal.version_id)
            elif model.knows_user(user.id):
                source = "global"
            if override is None:
                # the same vector model.score would build; computed once for score and reasons
                vec, bias = model.user_vector(context)
                override = (np.asarray(vec, dtype=np.float32), float(bias))
            rows = outcome.passed_rows
            values = np.zeros(0, dtype=np.float64)
            matrix = None
            co_part = content_part = trend_part = None
            if len(rows):
                matrix = _event_matrix(snapshot, loaded)
                values = _model_scores(model, context, override, matrix, rows, arrays.n)
                values, co_part = _with_coattendance(model, values, registered,
                                                     matrix.event_ids[rows], arrays.n, rows)
                values, content_part = _with_content(model, values, registered, matrix,
                                                     arrays.n, rows)
                # as the trend's choice groups users: with history where the model knows
                # them from what they did, or they registered for something
                has_history = bool(registered) or source != "features"
                values, trend_part = _with_trend(model, values, has_history, matrix,
                                                 arrays.n, rows)
                if source == "features":
                    values = _near_first(values, _distance_km(outcome, rows))
            scoring = _Scoring(source, model_version, rows, values, model, context, override,
                               matrix)
            scoring.coattendance = co_part
            scoring.content_blend = content_part
            scoring.trend = trend_part
            scoring.registered = registered
            return scoring
        except Exception as error:  # noqa: BLE001 - fall through to popularity
            from beacon import versions

            if versions.warn_once(("recommend-score", type(error).__name__)):
                log.warning("model scoring failed, serving popularity: %s", error)
    return _popularity_scoring(snapshot, outcome, now)


def _with_coattendance(model, values: np.ndarray, registered: tuple[int, ...],
                       event_ids: np.ndarray, n: int, rows: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """The hybrid scores blended with the model's co-attendance component over these
    candidates, and the co-attendance part of each candidate's blended score ([n], by
    candidate position; None without the component or without history it knows)."""
    co = getattr(model, "coattendance", None)
    if co is None or not registered:
        return values, None
    return _summed(co.parts(values[None, :], [registered], event_ids), values, n, rows, True)


def _with_content(model, values: np.ndarray, registered: tuple[int, ...], matrix, n: int,
                  rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The scores blended with the model's content component on the candidates it has no
    history for, and each candidate's content part ([n], by candidate position; None without
    the component, a cold candidate or a past event it knows)."""
    if getattr(model, "content", None) is None or not registered:
        return values, None
    return _summed(model.content_parts(values[None, :], [registered], matrix, rows), values,
                   n, rows, False)


def _with_trend(model, values: np.ndarray, has_history: bool, matrix, n: int,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The scores blended with the model's trend component, and how far each candidate's
    trend part exceeds the rest of its blended score ([n], by candidate position; > 0: the
    trend ranked it up; None without the component or with weight 0 for this user)."""
    trend = getattr(model, "trend", None)
    if trend is None or not len(values):
        return values, None
    # the model's own event matrix carries the values (looked up once per snapshot)
    return _summed(trend.parts(values[None, :], np.array([has_history]), matrix.trend[rows]),
                   values, n, rows, True)


def _summed(parts: tuple[np.ndarray, np.ndarray] | None, values: np.ndarray, n: int,
            rows: np.ndarray, over_rest: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(the blended scores, the component's part per candidate position [n]) from one
    user's (rest, component) parts; `over_rest`: the part less the rest's. None: unchanged."""
    if parts is None:
        return values, None
    rest, part = parts[0][0], parts[1][0]
    full = np.zeros(n, dtype=np.float64)
    full[rows] = part - rest if over_rest else part
    return rest + part, full


def _near_first(values: np.ndarray, distances: np.ndarray | None) -> np.ndarray:
    """The features level knows nobody like this user: what it learned from their tags and
    home area counts, but a far event must not outrank a near one on that alone (the decay
    of _popularity_values, on the log scale of model scores)."""
    if distances is None:
        return values
    return values - np.log1p(distances / DECAY_KM)


def _model_scores(model, context, override, matrix, rows: np.ndarray, n: int) -> np.ndarray:
    """Scores (float64) of the candidates at `rows`: only those rows (a gather of a few rows
    beats scoring all), unless most rows passed."""
    subset = rows if len(rows) * 2 < n else None
    values = np.asarray(model.score(context, matrix, user_override=override, rows=subset),
                        dtype=np.float64)
    expected = len(rows) if subset is not None else n
    if values.shape != (expected,):
        raise RuntimeError(f"model returned {values.shape} scores for {expected} events")
    return values if subset is not None else values[rows]


def _ranked(values: np.ndarray, rows: np.ndarray, start_epoch: np.ndarray, pk: np.ndarray,
            top: int | None) -> np.ndarray:
    """Order of the passed candidates (`rows`, scored `values`), best first, as indices into
    `rows`: score desc, then sooner, then id. Ties at the cut are kept whole before the final
    sort, so top-N is a prefix of the full ranking."""
    keep = np.arange(len(rows))
    if top is not None and top < len(rows):
        threshold = values[np.argpartition(-values, top - 1)[:top]].min()
        keep = np.flatnonzero(values >= threshold)
    chosen = rows[keep]
    order = keep[np.lexsort((pk[chosen], start_epoch[chosen], -values[keep]))]
    return order if top is None else order[:top]


# --------------------------------------------------------------------------- reasons


def _day_phrase(local_start: datetime, now: datetime) -> str:
    from beacon.features import time_band

    band = time_band(local_start.hour).split(":", 1)[1]
    today = now.astimezone(local_start.tzinfo).date()
    days = (local_start.date() - today).days
    if days == 0:
        return "tonight" if band == "night" else f"this {band}"
    if days == 1:
        return f"tomorrow {band}"
    if 1 < days < 7:
        return f"this {local_start:%A} {band}"
    return f"{local_start:%A %-d %B} {band}"


def _norm(value: Any) -> str:
    return " ".join(str(value).strip().lower().split())


@lru_cache(maxsize=1024)
def _normalized(values: tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """_norm of each value (a user's interests, their history's tags...): once per request,
    not once per scoring term."""
    return frozenset(_norm(v) for v in values)


def _humanize(token: str, user: UserRow, history: UserHistory, distance: float | None,
              origin_label: str, local_start: datetime | None, now: datetime,
              collaborative: bool = True) -> str | None:
    """A phrase for one scoring term, or None. "people like you" only when `collaborative`
    (the model learned this user from their own history); the features level says nothing
    for a term that neither their interests, history, place nor time explain."""
    kind, _, value = str(token).partition(":")
    crowd = "popular with people like you" if collaborative else None
    interests = _normalized(user.tags)
    if kind == "tag":
        if _norm(value) in interests:
            return f"matches your interest: {value}"
        if _norm(value) in _normalized(history.tags):
            return f"like events you registered for: {value}"
        return crowd
    if kind == "organizer":
        if value in history.organizers or _norm(value) in _normalized(history.organizers):
            return f"organizer you registered with before: {value}"
        return crowd
    if kind == "category":
        if _norm(value) in interests:
            return f"matches your interest: {value}"
        if _norm(value) in _normalized(history.categories):
            return f"like events you registered for: {value}"
        return crowd
    if kind == "city":
        if user.city and _norm(user.city) == _norm(value):
            return f"in your city: {user.city}"
        return None
    if kind == "geo":
        # Only a place that is actually close is a reason; a far event scoring on its area says
        # nothing a person would call "near".
        if distance is None or math.isnan(distance) or distance > NEARBY_KM:
            return None
        where = "your home" if origin_label == "home" else "your chosen point"
        return f"near {where} ({distance:.1f} km)"
    if kind == "price":
        return "free" if value == "free" else None
    if kind in ("time", "day"):
        if local_start is not None:
            return _day_phrase(local_start, now)
        return None
    return crowd


def _explained(scoring: _Scoring, arrays: CandidateArrays,
               rows: list[int]) -> dict[int, tuple[list, str | None]]:
    """(the model's top terms, the component phrase) for each of `rows` (a page), in one
    pass; empty for the levels that do not explain with the model, or when explaining fails
    (the reasons then fall back to what the user's profile says)."""
    if scoring.model is None or scoring.source in ("popularity", "content") or not rows:
        return {}
    co_phrases = _component_phrases(scoring, rows)
    try:
        pages = scoring.model.explain_many(scoring.context, [arrays.row(i) for i in rows],
                                           top=4, user_override=scoring.override,
                                           tokens=[arrays.tokens(i) for i in rows])
    except Exception as error:  # noqa: BLE001 - a reason must never fail a request
        log.warning("explain failed: %s", error)
        pages = [[] for _ in rows]
    return {i: (terms, co_phrases.get(i)) for i, terms in zip(rows, pages)}


def _model_reason(scoring: _Scoring, arrays: CandidateArrays, i: int, user: UserRow,
                  history: UserHistory, distance: float | None, origin_label: str,
                  local_start: datetime | None, now: datetime, explained: dict) -> str:
    terms, co_phrase = explained.get(i, ([], None))
    collaborative = scoring.source != "features"
    phrases: list[str] = []
    if co_phrase:
        phrases.append(co_phrase)
    for token, contribution in terms:
        if contribution is not None and float(contribution) <= 0:
            continue
        phrase = _humanize(token, user, history, distance, origin_label, local_start, now,
                           collaborative)
        if phrase and phrase not in phrases:
            phrases.append(phrase)
        if len(phrases) == 2:
            break
    if not phrases:
        phrases.append("popular with people like you" if collaborative
                       else _profile_phrase(user, distance))
    return "; ".join(phrases)


def _component_phrases(scoring: _Scoring, rows: list[int]) -> dict[int, str]:
    """The reasons of the two components for each of `rows` they ranked up, with the titles
    of the past events they name in one read per page: "like <title> you went to (<shared
    terms>)" (content) or, where co-attendance also ranked it up, "people who went to <title>
    also went to this"."""
    content = _content_sources(scoring, rows)
    co = _coattendance_sources(scoring, rows)
    wanted = {source for source, _ in content.values() if source is not None} | set(co.values())
    trending = {**_trend_phrases(scoring, rows),
                **{i: f"events with {terms[0]} drew many registrations lately"
                   for i, (source, terms) in content.items() if source is None}}
    if not wanted:
        return trending
    try:
        titles = catalog.event_titles(list(wanted))
    except Exception as error:  # noqa: BLE001 - a reason must never fail a request
        log.warning("component reasons failed: %s", error)
        return {}
    out = {}
    for i, (source, shared) in content.items():
        if source is not None and titles.get(source):
            terms = f" ({', '.join(shared)})" if shared else ""
            out[i] = f"like {titles[source]} you went to{terms}"
    for i, source in co.items():
        if titles.get(source):
            out[i] = f"people who went to {titles[source]} also went to this"
    return {**trending, **out}


def _trend_phrases(scoring: _Scoring, rows: list[int]) -> dict[int, str]:
    """Per row that the trend part ranked up: how many registered for it lately."""
    if scoring.trend is None:
        return {}
    trend = scoring.model.trend
    out = {}
    for i in rows:
        if scoring.trend[i] > 0:
            recent = trend.recent(int(scoring.matrix.event_ids[i]))
            if recent >= 1:
                # the decayed count: registrations weighted by how recent they are
                out[i] = f"popular lately: about {recent:.0f} recent registrations" \
                    if recent >= 2 else "popular lately"
    return out


def _coattendance_sources(scoring: _Scoring, rows: list[int]) -> dict[int, int]:
    """Per row that the co-attendance part ranked up (its part of the blended score exceeds
    the hybrid's): the event of the user's history that adds most to it."""
    if scoring.coattendance is None:
        return {}
    try:
        sources = {}
        for i in rows:
            if scoring.coattendance[i] > 0:
                found = scoring.model.coattendance.strongest_source(
                    scoring.registered, int(scoring.matrix.event_ids[i]))
                if found is not None:
                    sources[i] = found[0]
        return sources
    except Exception as error:  # noqa: BLE001 - a reason must never fail a request
        log.warning("co-attendance reason failed: %s", error)
        return {}


def _content_sources(scoring: _Scoring, rows: list[int]
                     ) -> dict[int, tuple[int | None, list[str]]]:
    """Per row that the content component ranked up: the past event whose text is closest to
    it and the terms they share, or (None, [its most popular term]) where its terms' recent
    popularity added more to its content score than the user's past events."""
    if scoring.content_blend is None:
        return {}
    try:
        content = scoring.model.content
        candidates = scoring.matrix.content
        lifted = [i for i in rows if scoring.content_blend[i] > 0]
        blended = np.flatnonzero(scoring.content_blend)  # the cold candidates it scored
        led = dict(zip(blended.tolist(), content.popularity_led(scoring.registered,
                                                                candidates[blended])))
        found = content.strongest_sources(scoring.registered, candidates.matrix[lifted]) \
            if lifted else []
        out: dict[int, tuple[int | None, list[str]]] = {}
        for i, source in zip(lifted, found):
            term = content.popular_term(candidates.term_columns(i)) if led.get(i) else None
            if term is not None:
                out[i] = (None, [term])  # its terms' recent popularity lifted it most
            elif source is not None:
                out[i] = (source, content.shared_terms(source, candidates.term_columns(i)))
        return out
    except Exception as error:  # noqa: BLE001 - a reason must never fail a request
        log.warning("content reason failed: %s", error)
        return {}


def _profile_phrase(user: UserRow, distance: float | None) -> str:
    """What the features level went on when no single term explains a pick."""
    if user.tags:
        return "suggested from your interests: " + ", ".join(user.tags[:3])
    if distance is not None:
        return f"suggested from your home area ({distance:.0f} km away)"
    return "upcoming event"


def _popularity_reason(count: float, distance: float | None) -> str:
    count = int(count)
    near = distance is not None and not math.isnan(distance) and distance <= NEARBY_KM
    if count > 0:
        noun = "registration" if count == 1 else "registrations"
        return f"popular {'nearby' if near else 'now'}: {count} {noun} this week"
    return "upcoming near you" if near else "upcoming event"


def _reason(scoring: _Scoring, arrays: CandidateArrays, i: int, user: UserRow,
            history: UserHistory, outcome: FilterOutcome, local_start: datetime | None,
            now: datetime, explained: dict) -> str:
    distance = outcome.distance(i)
    if scoring.source == "content" and scoring.content[2][i] > 0:
        index, profile, _ = scoring.content
        phrases = index.reasons(profile, i)
        if phrases:
            return "; ".join(phrases)
    if scoring.source in ("popularity", "content"):
        return _popularity_reason(scoring.popularity[i], distance)
    return _model_reason(scoring, arrays, i, user, history, distance, outcome.origin_label,
                         local_start, now, explained)


# --------------------------------------------------------------------------- the one code path


@dataclass
class _Evaluation:
    user: UserRow
    history: UserHistory
    params: FilterParams
    now: datetime
    arrays: CandidateArrays
    outcome: FilterOutcome
    scoring: _Scoring
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
    snapshot = _candidates(now, stamp)
    outcome = F.apply_filters(
        snapshot.arrays, params, now=now,
        registered=history.registered, stored_rejects=history.rejected,
        home=(row.latitude, row.longitude), lazy=lazy,
    )
    # the co-attendance component weighs a history by recency: newest first
    scoring = _score(row, snapshot, outcome, now, read, strategy, prepared,
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
    order = _ranked(scoring.values, scoring.rows, arrays.start_epoch, arrays.pk, top)
    ranked = scoring.rows[order].tolist()
    skipped = top if explain_from is None else explain_from
    explained = _explained(scoring, arrays, ranked[skipped:])
    items = []
    for rank, (i, score) in enumerate(zip(ranked, scoring.values[order].tolist()), start=1):
        local_start = arrays.local_start(i)
        items.append(Recommendation(
            event_id=str(arrays.event_id[i]),
            title=str(arrays.value(i, "title")),
            score=score,
            reason="" if rank <= skipped else _reason(
                scoring, arrays, i, ev.user, ev.history, outcome, local_start, ev.now,
                explained),
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
    order = _ranked(scoring.values, scoring.rows, arrays.start_epoch, arrays.pk, None)
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
    snapshot = _candidates(_now(now))
    _, loaded = _load_active(models_store.active_global_id())
    if loaded is not None and snapshot.arrays.n:
        _event_matrix(snapshot, loaded)
