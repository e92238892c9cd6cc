"""Services behind the console's Users, Recommendations and Debug-filter pages.

Each page calls one function here and draws what comes back: plain dataclasses and lists of dicts
ready for a table, a chart or a map. Loops over rows and every read live here (or further down in
data_access/), never in a page.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from beacon import console
from beacon.errors import BeaconError, UnknownUser
from beacon.filters import WINDOW as WINDOW_STAGE
from data_access import catalog, user_activity

UTC = timezone.utc
SEARCH_LIMIT = 25


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# Users


def find_users(query: str, limit: int = SEARCH_LIMIT) -> list[dict]:
    """Users whose email or name starts with (then contains) `query`, as table rows."""
    query = (query or "").strip()
    if not query:
        return []
    return [
        {
            "email": u.email,
            "name": u.name or "",
            "city": u.city or "",
            "interest tags": ", ".join(u.tags),
        }
        for u in catalog.search_users(query, limit=limit)
    ]


def user_or_raise(email: str) -> catalog.UserRow:
    email = (email or "").strip()
    if not email:
        raise BeaconError("enter a user's email")
    user = catalog.user_by_email(email)
    if user is None:
        raise UnknownUser(email)
    return user


def age_text(age: timedelta | None) -> str:
    """How old the serving model is; a level with no stored model is computed live."""
    return console.age_text(age, missing="computed live")

@dataclass(frozen=True)
class Serving:
    """Which level of the fallback chain serves a user, and how old that level's model is."""

    level: str  # personal, global, features, popularity
    model_version: int | None
    trained_at: datetime | None
    age: timedelta | None
    explanation: str

    @property
    def age_text(self) -> str:
        return age_text(self.age)


@dataclass(frozen=True)
class UserProfile:
    id: int
    email: str
    name: str | None
    city: str | None
    latitude: float | None
    longitude: float | None
    created_at: datetime | None
    interest_tags: tuple[str, ...]
    #: [{day, type, count}] per UTC day and interaction type, oldest first
    timeline: list[dict]
    totals: dict[str, int]
    #: [{event_id, title, event starts (UTC), state (registered/unregistered/attended), at (UTC)}]
    #: newest first
    registrations: list[dict]
    #: [{event_id, title, event starts (UTC), rejected at (UTC)}] newest first
    rejects: list[dict]
    serving: Serving | None = None
    serving_error: str | None = None
    points: list[dict] = field(default_factory=list)

    @property
    def has_home(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def _utc_text(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _registrations_and_rejects(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """One row per event the user registered for (so the count is of events): its state is
    "attended" when they attended, else the newest register/unregister (rows come newest
    first); "at" is when that state was reached."""
    registrations: dict[str, dict] = {}
    rejects: list[dict] = []
    for row in rows:
        kind = row["type"]
        base = {"event_id": row["event_id"], "title": row["title"],
                "event starts (UTC)": _utc_text(row["start_time"])}
        if kind == "reject":
            rejects.append({**base, "rejected at (UTC)": _utc_text(row["occurred_at"])})
            continue
        state = {"attend": "attended", "register": "registered",
                 "unregister": "unregistered"}[kind]
        known = registrations.get(row["event_id"])
        if known is None or (state == "attended" and known["state"] != "attended"):
            registrations[row["event_id"]] = {**base, "state": state,
                                              "at (UTC)": _utc_text(row["occurred_at"])}
    return list(registrations.values()), rejects


def serving_level(email: str, now: datetime | None = None) -> Serving:
    """Ask the recommender itself which level of the chain answers for this user right now."""
    from beacon import recommend as recommender
    from beacon import versions
    from beacon.filters import FilterParams

    now = _now(now)
    result = recommender.recommend(email, FilterParams.parse(), top=1, now=now)
    level = result.source
    version_id = result.model_version
    trained_at = None
    if version_id is not None:
        trained_at = versions.show(version_id).created_at
    explanation = {
        "personal": "a personal fold-in of this user's latest interactions on the active model",
        "global": "the active global model (no personal fold-in newer than it)",
        "features": "the active model from features only: the user has no history it learned",
        "popularity": "popularity among upcoming events near them: no usable model",
    }.get(level, level)
    return Serving(
        level=level,
        model_version=version_id,
        trained_at=trained_at,
        age=(now - trained_at) if trained_at is not None else None,
        explanation=explanation,
    )


def user_profile(email: str, now: datetime | None = None) -> UserProfile:
    """Everything the Users page shows about one user. Raises UnknownUser."""
    user = user_or_raise(email)
    decisions = user_activity.decisions(user.id)
    registrations, rejects = _registrations_and_rejects(decisions)
    serving, serving_error = None, None
    try:
        serving = serving_level(user.email, now)
    except BeaconError as error:
        serving_error = str(error)
    points = []
    if user.has_home:
        points.append({"kind": "home", "label": f"{user.name or user.email} (home)",
                       "lat": user.latitude, "lon": user.longitude})
    located = {row["event_id"]: row for row in decisions if row["latitude"] is not None}
    for kind, rows in (("registered", registrations), ("rejected", rejects)):
        for row in rows:
            where = located.get(row["event_id"])
            if where is not None and row.get("state", "rejected") != "unregistered":
                points.append({"kind": kind, "label": f"{row['title']} ({kind})",
                               "lat": where["latitude"], "lon": where["longitude"]})
    return UserProfile(
        id=user.id,
        email=user.email,
        name=user.name,
        city=user.city,
        latitude=user.latitude,
        longitude=user.longitude,
        created_at=user.created_at,
        interest_tags=tuple(user.tags),
        timeline=user_activity.timeline_counts(user.id),
        totals=user_activity.type_totals(user.id),
        registrations=registrations,
        rejects=rejects,
        serving=serving,
        serving_error=serving_error,
        points=points,
    )


def coming_days(now: datetime | None = None, days: int = 30) -> list[date]:
    """The dates a calendar filter offers: today (UTC) and the days after."""
    today = _now(now).astimezone(UTC).date()
    return [today + timedelta(days=i) for i in range(days)]


def upcoming_categories(now: datetime | None = None) -> list[str]:
    """The categories a category filter offers: those of the upcoming events."""
    return catalog.upcoming_categories(_now(now))


def home_of(email: str) -> tuple[float | None, float | None]:
    """The user's home point, or (None, None) for an unknown user or one without a home."""
    user = catalog.user_by_email((email or "").strip()) if (email or "").strip() else None
    if user is None or not user.has_home:
        return None, None
    return user.latitude, user.longitude




# --------------------------------------------------------------------------------------------
# Debug filter


@dataclass(frozen=True)
class FunnelStep:
    name: str
    remaining: int
    dropped: int  # candidates this stage removed
    enabled: bool

    @property
    def label(self) -> str:
        return self.name if self.enabled else f"{self.name} (off)"


@dataclass(frozen=True)
class DebugView:
    """What the Debug-filter page draws, computed from one debug_filter() call."""

    email: str
    source: str
    model_version: int | None
    params: Any  # FilterParams
    funnel: list[FunnelStep]
    #: the filter stages that were on, in order (the per-stage columns of `rows`)
    stage_columns: list[str]
    #: one row per shown candidate: event, kept, dropped by, reason, a bool per enabled stage, ...
    rows: list[dict]
    #: which candidates `rows` holds ("all", "kept" or a stage name) and how many match it
    show: str
    matched: int
    #: map points: lat, lon, kind (kept/dropped), label
    points: list[dict]
    #: the point distances are measured from, and the max-distance circle when that is on
    origin: dict | None
    circles: list[dict]
    #: one row per candidate with a local start: hours since local midnight of its start day
    timeline: list[dict]
    #: the daily window as hour spans on the same axis (two spans when it crosses midnight)
    window_spans: list[tuple[float, float]]
    window_label: str
    crosses_midnight: bool
    unknown_rejects: tuple[str, ...]

    @property
    def kept(self) -> int:
        return self.funnel[-1].remaining if self.funnel else 0

    @property
    def total(self) -> int:
        return self.funnel[0].remaining if self.funnel else 0

    def dropped_by_choices(self) -> list[str]:
        """Stages that dropped at least one candidate, in order."""
        return [step.name for step in self.funnel[1:] if step.dropped > 0]


TABLE_MAX = 2_000  # candidate rows a page gets; the funnel counts cover every candidate
MAP_MAX = 5_000  # map points: every kept event first, then dropped ones
TIMELINE_MAX = 120  # events drawn against the daily window


def _hours(moment: datetime) -> float:
    return moment.hour + moment.minute / 60 + moment.second / 3600


def window_spans(start, end) -> tuple[list[tuple[float, float]], bool]:
    """The daily window as spans of hours on an axis from 0 to 48 (day of start, next day)."""
    if start is None or end is None:
        return [], False
    ws, we = _hours(start), _hours(end)
    if we > ws:
        return [(ws, we), (ws + 24, we + 24)], False
    return [(0.0, we), (ws, we + 24), (ws + 24, 48.0)], True


def _debug_row(event, stage_columns: list[str]) -> dict:
    row = {
        "event_id": event.event_id,
        "title": event.title,
        "kept": event.passed,
        "dropped by": event.failed_stage or "",
        "reason": event.reason,
    }
    for name in stage_columns:
        row[name] = event.stages.get(name, True)
    row.update({
        "local start": event.local_start.strftime("%a %Y-%m-%d %H:%M") if event.local_start else "",
        "local end": event.local_end.strftime("%a %Y-%m-%d %H:%M") if event.local_end else "",
        "timezone": event.timezone,
        "distance km": None if event.distance_km is None else round(event.distance_km, 1),
        "city": event.city or "",
        "category": event.category or "",
        "rank": event.rank,
        "score": None if event.score is None else round(event.score, 4),
        "all reasons": "; ".join(f"{k}: {v}" for k, v in event.reasons.items()),
    })
    return row


def _timeline_row(event) -> dict:
    end_h = None
    if event.local_end is not None:
        day_shift = (event.local_end.date() - event.local_start.date()).days
        end_h = _hours(event.local_end) + 24 * day_shift
    return {
        "event_id": event.event_id,
        "label": f"{event.local_start:%a %d %b} · {event.title[:40]} ({event.event_id})",
        "start_h": _hours(event.local_start),
        "end_h": end_h,
        "status": "kept" if event.passed else (
            "dropped by the window" if event.failed_stage == WINDOW_STAGE
            else "dropped by another stage"),
        "local": f"{event.local_start:%a %d %b %H:%M}"
                 + (f"–{event.local_end:%H:%M}" if event.local_end else " (no end time)")
                 + f" {event.timezone}",
        "sort": event.local_start.replace(tzinfo=None),
    }


def debug_view(email: str, params, now: datetime | None = None, show: str = "all",
               row_limit: int = TABLE_MAX, point_limit: int = MAP_MAX,
               timeline_limit: int = TIMELINE_MAX) -> DebugView:
    """Run the debug filter for one user and shape the candidates for the page.

    `show`: "all", "kept" or the name of a stage: only the candidates it dropped go to `rows`
    (at most `row_limit`) and `timeline` (the first `timeline_limit`); the funnel counts always
    cover every candidate. The map gets every kept event, then dropped ones up to
    `point_limit`. Raises UnknownUser / BeaconError on impossible input."""
    from beacon import recommend as recommender

    user = user_or_raise(email)
    now = _now(now)
    result = recommender.debug_filter(user, params, now=now)
    funnel: list[FunnelStep] = []
    previous = None
    for stage in result.stages:
        dropped = 0 if previous is None else previous - stage.remaining
        funnel.append(FunnelStep(stage.name, stage.remaining, dropped, stage.enabled))
        previous = stage.remaining
    stage_columns = [step.name for step in funnel[1:] if step.enabled]
    dropping = [step.name for step in funnel[1:] if step.dropped > 0]
    show = show if show in ("all", "kept", *dropping) else "all"
    kept_total = funnel[-1].remaining if funnel else 0
    dropped_budget = max(0, point_limit - kept_total)
    rows, points, timeline, timeline_others = [], [], [], []
    matched = kept_points = 0
    for event in result.events:
        if event.latitude is not None and event.longitude is not None:
            if event.passed and kept_points < point_limit or not event.passed and dropped_budget > 0:
                kept_points += event.passed
                dropped_budget -= not event.passed
                points.append({
                    "lat": event.latitude, "lon": event.longitude,
                    "kind": "kept" if event.passed else "dropped",
                    "label": f"{event.title} ({event.event_id}): " + (
                        "kept" if event.passed else f"dropped by {event.failed_stage}: {event.reason}"),
                })
        wanted = (show == "all" or (show == "kept" and event.passed)
                  or event.failed_stage == show)
        if not wanted:
            continue
        matched += 1
        if len(rows) < row_limit:
            rows.append(_debug_row(event, stage_columns))
        if event.local_start is not None:
            # the events the window decided about come first, so a long candidate list cannot
            # push them past the limit behind events that earlier stages dropped anyway
            reached = event.passed or event.failed_stage == WINDOW_STAGE
            target = timeline if reached else timeline_others
            if len(target) < timeline_limit:
                target.append(_timeline_row(event))
    timeline = (timeline + timeline_others)[:timeline_limit]
    timeline.sort(key=lambda r: r["sort"])
    home = (user.latitude, user.longitude) if user.has_home else (None, None)
    origin = None
    if params is not None and params.has_point:
        origin = {"lat": params.latitude, "lon": params.longitude, "label": "chosen point"}
    elif home[0] is not None:
        origin = {"lat": home[0], "lon": home[1], "label": "home"}
    circles = []
    if origin is not None and params is not None and params.max_km is not None:
        circles.append({"lat": origin["lat"], "lon": origin["lon"], "radius_km": params.max_km,
                        "label": f"{params.max_km:g} km"})
    spans, crosses = window_spans(getattr(params, "window_start", None),
                                  getattr(params, "window_end", None))
    return DebugView(
        email=user.email,
        source=result.source,
        model_version=result.model_version,
        params=result.params,
        funnel=funnel,
        stage_columns=stage_columns,
        rows=rows,
        show=show,
        matched=matched,
        points=points,
        origin=origin,
        circles=circles,
        timeline=timeline,
        window_spans=spans,
        window_label=window_text(getattr(params, "window_start", None),
                                 getattr(params, "window_end", None)),
        crosses_midnight=crosses,
        unknown_rejects=tuple(result.unknown_rejects),
    )


def window_text(start, end) -> str:
    if start is None or end is None:
        return ""
    text = f"{start:%H:%M}–{end:%H:%M}"
    return text + " (across midnight: ends the next day)" if end < start else text


# --------------------------------------------------------------------------------------------
# Recommendations side by side

_matrix_lock = threading.Lock()
_matrix_cache: dict[str, tuple] = {}


def _event_matrix(version_id: int, model, arrays):
    """The candidates' event matrix under one version, kept while the candidate snapshot (the
    recommender's cached arrays object) stays the same."""
    with _matrix_lock:
        hit = _matrix_cache.get("previous")
        if hit is not None and hit[0] == version_id and hit[1] is arrays:
            return hit[2]
    matrix = model.event_matrix(arrays.frame)
    with _matrix_lock:
        _matrix_cache["previous"] = (version_id, arrays, matrix)
    return matrix


def previous_global_version(active_id: int | None) -> int | None:
    """The global version created before the one serving (failed ones skipped)."""
    from beacon import versions

    if active_id is None:
        return None
    found = False
    for info in versions.list_versions(scope="global", limit=200):
        if found and info.status != "failed":
            return info.id
        if info.id == active_id:
            found = True
    return None


#: what the Recommendations page can put beside its main list
PREVIOUS_VERSION = "previous version"
COMPARE_OPTIONS = ("beacon", "popularity", "content", PREVIOUS_VERSION)
DEFAULT_COMPARE = ("popularity", PREVIOUS_VERSION)


@dataclass(frozen=True)
class RankedList:
    """One strategy's top N over the same filtered candidates (rows empty and a note when it
    has nothing to show, e.g. no previous version)."""

    name: str
    version: int | None
    rows: list[dict]  # rank, title, in main list, score or count, ...
    event_ids: list[str]
    overlap: int  # events also in the main list
    note: str = ""
    available: bool = True


@dataclass(frozen=True)
class Comparison:
    email: str
    strategy: str  # of the main list
    source: str
    model_version: int | None
    top: int
    #: the main list as table rows (rank, title, score, reason, source, distance, start, ...)
    rows: list[dict]
    event_ids: list[str]
    #: map: the point distances are measured from, the max-distance circle, the recommended events
    points: list[dict]
    circles: list[dict]
    others: list[RankedList]  # the lists chosen to compare, in the order asked
    stages: list[FunnelStep]
    unknown_rejects: tuple[str, ...]

    def other(self, name: str) -> RankedList | None:
        return next((ranked for ranked in self.others if ranked.name == name), None)

    @property
    def popularity(self) -> RankedList | None:
        return self.other("popularity")

    @property
    def previous(self) -> RankedList | None:
        ranked = self.other(PREVIOUS_VERSION)
        return ranked if ranked is not None and ranked.available else None

    @property
    def previous_note(self) -> str:
        ranked = self.other(PREVIOUS_VERSION)
        return ranked.note if ranked is not None else ""


def _row_of(arrays, frame, i: int, rank: int, distance, in_main: set[str], measure: str,
            value) -> dict:
    """One row of a side-by-side list: what an operator compares first, then the details."""
    start = arrays.local_start(i)
    event_id = str(arrays.event_id[i])
    return {
        "rank": rank,
        "title": str(frame.at[i, "title"]),
        "in main list": event_id in in_main,
        measure: value,
        "local start": start.strftime("%a %Y-%m-%d %H:%M") if start else "",
        "distance km": None if distance is None or distance != distance else round(float(distance), 1),
        "event_id": event_id,
    }


def _top_positions(scores, passed, arrays, top: int):
    import numpy as np

    candidates = np.flatnonzero(passed)
    order = np.lexsort((arrays.pk[candidates], arrays.start_epoch[candidates], -scores[candidates]))
    return candidates[order][:top]


def _main_rows(result) -> tuple[list[dict], list[dict]]:
    rows, points = [], []
    for item in result.items:
        # score and source before the long reason: at 1440 px the reason pushed them off-screen
        rows.append({
            "rank": item.rank, "title": item.title, "score": round(item.score, 4),
            "source": item.source,
            "local start": item.local_start.strftime("%a %Y-%m-%d %H:%M") if item.local_start else "",
            "distance km": None if item.distance_km is None else round(item.distance_km, 1),
            "reason": item.reason,
            "category": item.category or "", "city": item.city or "", "event_id": item.event_id,
        })
        if item.latitude is not None and item.longitude is not None:
            points.append({"lat": item.latitude, "lon": item.longitude, "kind": "recommended",
                           "label": f"#{item.rank} {item.title} ({item.event_id})"})
    return rows, points


_STRATEGY_NOTES = {
    "beacon": "the hybrid model with its fallback chain",
    "popularity": "most registrations in the last {days} days, divided by distance from the "
                  "user's point (an event 25 km away needs twice the registrations)",
    "content": "TF-IDF of title, category, tags and organizer against the user's history and "
               "interests (cosine)",
}


def _strategy_list(name: str, user, params, top: int, now: datetime, in_main: set[str]
                   ) -> RankedList:
    """Another strategy's top `top` through recommend(): the same filters, the same path."""
    from beacon import recommend as recommender

    result = recommender.recommend(user, params, top=top, now=now, strategy=name)
    counts = {}
    if name == "popularity" and result.items:
        counts = catalog.popularity_counts(now - timedelta(days=recommender.POPULARITY_DAYS),
                                           ("register",))
    rows = []
    for item in result.items:
        row = {"rank": item.rank, "title": item.title, "in main list": item.event_id in in_main}
        if name == "popularity":
            row["registrations (7 d)"] = int(counts.get(item.event_pk, 0))
        else:
            row["score"] = round(item.score, 4)
        row.update({
            "source": item.source, "reason": item.reason,
            "local start": item.local_start.strftime("%a %Y-%m-%d %H:%M") if item.local_start else "",
            "distance km": None if item.distance_km is None else round(item.distance_km, 1),
            "event_id": item.event_id,
        })
        rows.append(row)
    ids = [item.event_id for item in result.items]
    note = _STRATEGY_NOTES[name].format(days=recommender.POPULARITY_DAYS)
    if result.source != name and name != "beacon":
        note += f" (no profile to match for this user: served by {result.source})"
    return RankedList(name, result.model_version, rows, ids, len(in_main & set(ids)), note)


def _previous_list(user, params, top: int, now: datetime, in_main: set[str]) -> RankedList:
    """The global version before the active one, scored like it (with this user's fold-in on
    it) over the candidates that pass the same filters."""
    import numpy as np

    from beacon import recommend as recommender
    from beacon import versions
    from beacon.features import UserContext

    loaded = versions.active_global()
    active_id = loaded.version_id if loaded is not None else None
    prev_id = previous_global_version(active_id)
    if active_id is None:
        return RankedList(PREVIOUS_VERSION, None, [], [], 0, "No model serves this user "
                          "(popularity): there is no model list to compare.", available=False)
    if prev_id is None:
        return RankedList(PREVIOUS_VERSION, None, [], [], 0, f"Model version {active_id} is the "
                          "first global version: nothing before it.", available=False)
    # the filters of recommend(); the cheapest strategy, since only the masks are used here
    evaluation = recommender._evaluate(user, params, now, strategy="popularity")
    arrays, outcome, frame = evaluation.arrays, evaluation.outcome, evaluation.arrays.frame
    distances = outcome.distance_km
    model = versions.load_version_model(prev_id)
    context = UserContext(user_id=user.id, tags=tuple(user.tags), latitude=user.latitude,
                          longitude=user.longitude, city=user.city)
    personal = versions.personal_vector(user.id, prev_id)
    override = None if personal is None else (personal.vector, personal.bias)
    scores = np.asarray(model.score(context, _event_matrix(prev_id, model, arrays),
                                    user_override=override),
                        dtype=np.float64) if arrays.n else np.zeros(0)
    rows = []
    for rank, i in enumerate(_top_positions(scores, outcome.passed, arrays, top).tolist(), start=1):
        rows.append(_row_of(arrays, frame, i, rank, None if distances is None else distances[i],
                            in_main, "score", round(float(scores[i]), 4)))
    ids = [r["event_id"] for r in rows]
    level = "personal fold-in on it" if personal is not None else (
        "global" if model.knows_user(user.id) else "features only")
    return RankedList(PREVIOUS_VERSION, prev_id, rows, ids, len(in_main & set(ids)),
                      f"version {prev_id} ({level})")


def compare_recommendations(email: str, params=None, top: int = 10, now: datetime | None = None,
                            strategy: str = "beacon",
                            compare: tuple[str, ...] = DEFAULT_COMPARE) -> Comparison:
    """The `strategy` list for a user next to each of `compare` (COMPARE_OPTIONS), all over
    exactly the candidates that pass the same filters."""
    from beacon import recommend as recommender
    from beacon.filters import FilterParams

    unknown = [name for name in compare if name not in COMPARE_OPTIONS]
    if unknown:
        raise BeaconError(f"cannot compare with {', '.join(map(repr, unknown))}: choose from "
                          f"{', '.join(COMPARE_OPTIONS)}")
    params = params if params is not None else FilterParams()
    user = user_or_raise(email)
    now = _now(now)
    result = recommender.recommend(user, params, top=top, now=now, strategy=strategy)
    rows, points = _main_rows(result)
    main_ids = [item.event_id for item in result.items]
    in_main = set(main_ids)
    others = []
    for name in dict.fromkeys(compare):  # each once, in the order asked
        if name == result.strategy:
            continue
        if name == PREVIOUS_VERSION:
            if result.strategy == "beacon" and result.source == "popularity":
                others.append(RankedList(name, None, [], [], 0, "No model serves this user "
                                         "(popularity): there is no model list to compare.",
                                         available=False))
            else:
                others.append(_previous_list(user, params, top, now, in_main))
        else:
            others.append(_strategy_list(name, user, params, top, now, in_main))

    origin, circles = None, []
    if params.has_point:
        origin = (params.latitude, params.longitude, "chosen point")
    elif user.has_home:
        origin = (user.latitude, user.longitude, "home")
    if origin is not None:
        points.append({"lat": origin[0], "lon": origin[1], "kind": "home",
                       "label": f"{origin[2]} of {user.email}"})
        if params.max_km is not None:
            circles.append({"lat": origin[0], "lon": origin[1], "radius_km": params.max_km,
                            "label": f"{params.max_km:g} km"})
    steps, before = [], None
    for stage in result.stages:
        steps.append(FunnelStep(stage.name, stage.remaining,
                                0 if before is None else before - stage.remaining, stage.enabled))
        before = stage.remaining
    return Comparison(
        email=user.email, strategy=result.strategy, source=result.source,
        model_version=result.model_version, top=top, rows=rows, event_ids=main_ids,
        points=points, circles=circles, others=others, stages=steps,
        unknown_rejects=tuple(result.unknown_rejects),
    )
