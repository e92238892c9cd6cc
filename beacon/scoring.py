"""How recommend() scores the candidates that passed the filters, per strategy: the hybrid model
with its components and its fallback chain (personal -> global -> features -> popularity), the
popularity level alone, or the content strategy. Also the order of a ranking (`ranked`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from beacon import filters as F
from beacon.candidate_snapshot import Snapshot, content_index, event_matrix, popularity_counts
from beacon.errors import BeaconError
from beacon.filters import FilterOutcome
from data_access import catalog
from data_access.catalog import UserRow
from data_access.serving_read import ServingRead

if TYPE_CHECKING:
    from beacon.recommend import Prepared

log = logging.getLogger(__name__)

SOURCES = ("personal", "global", "features", "popularity", "content")
STRATEGIES = ("beacon", "popularity", "content")
NEARBY_KM = 25.0
#: distance (km) at which the fallbacks' preference for near events halves the popularity score
DECAY_KM = NEARBY_KM


@dataclass
class Scoring:
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


def user_context(user: UserRow):
    from beacon.features import UserContext

    return UserContext(
        user_id=user.id, tags=tuple(user.tags), latitude=user.latitude,
        longitude=user.longitude, city=user.city,
    )


def load_active(active_id: int | None):
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


def _popularity_scoring(snapshot: Snapshot, outcome: FilterOutcome, now: datetime) -> Scoring:
    counts = popularity_counts(snapshot, now) if snapshot.arrays.n else np.zeros(0)
    rows = outcome.passed_rows
    values = _popularity_values(counts[rows], _distance_km(outcome, rows))
    return Scoring("popularity", None, rows, values, popularity=counts)


def _content_scoring(user: UserRow, snapshot: Snapshot, outcome: FilterOutcome,
                     now: datetime) -> Scoring:
    """Cosine of the user's profile with each passed candidate, times a place factor (far
    events count less); the popularity prior (tiny) orders equal matches. No profile at all
    (no usable history, no interests): popularity."""
    from beacon.content import PRIOR_WEIGHT, history_items, place_factor

    index = content_index(snapshot)
    profile = index.profile(history_items(catalog.user_event_interactions(user.id)), user.tags)
    base = _popularity_scoring(snapshot, outcome, now)
    if profile is None:
        return base
    rows = base.rows
    cosine = np.zeros(snapshot.arrays.n, dtype=np.float64)
    cosine[rows] = index.similarity(profile, rows)
    prior = base.values / (1.0 + base.values)  # in [0, 1)
    values = cosine[rows] * place_factor(_distance_km(outcome, rows)) + PRIOR_WEIGHT * prior
    return Scoring("content", None, rows, values, popularity=base.popularity,
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


def score(user: UserRow, snapshot: Snapshot, outcome: FilterOutcome, now: datetime,
           read: ServingRead | None, strategy: str = "beacon",
           prepared: Prepared | None = None,
           registered: tuple[int, ...] = ()) -> Scoring:
    """`read` (this request's one read) or `prepared` (what a refresh batch read ahead)."""
    if strategy == "popularity":
        return _popularity_scoring(snapshot, outcome, now)
    if strategy == "content":
        return _content_scoring(user, snapshot, outcome, now)
    arrays = snapshot.arrays
    if prepared is None:
        versions, loaded = load_active(read.active_model_id)
    else:
        from beacon import versions

        loaded = prepared.loaded
    if loaded is not None:
        try:
            model = loaded.model
            context = user_context(user)
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
                matrix = event_matrix(snapshot, loaded)
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
            scoring = Scoring(source, model_version, rows, values, model, context, override,
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


def ranked(values: np.ndarray, rows: np.ndarray, start_epoch: np.ndarray, pk: np.ndarray,
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
