"""The reason shown beside each recommendation, as plain text: from the model's top terms and
its components (a past event like it, people who went to one also went, recent popularity),
the content strategy's shared terms, or the popularity level's counts."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from beacon.filters import CandidateArrays, FilterOutcome
from beacon.scoring import NEARBY_KM, Scoring
from data_access import catalog
from data_access.catalog import UserHistory, UserRow

log = logging.getLogger(__name__)


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


def humanize(token: str, user: UserRow, history: UserHistory, distance: float | None,
              origin_label: str, local_start: datetime | None, now: datetime,
              collaborative: bool = True) -> str | None:
    """A phrase for one scoring term, or None. "people like you" only when `collaborative`
    (the model learned this user from their own history); the features level says nothing
    for a term that neither their interests, history, place nor time explain."""
    kind, _, value = str(token).partition(":")
    crowd = "popular with people like you" if collaborative else None
    interests = _normalized(user.tags)
    if kind in ("tag", "category"):
        if _norm(value) in interests:
            return f"matches your interest: {value}"
        past = history.tags if kind == "tag" else history.categories
        if _norm(value) in _normalized(past):
            return f"like events you registered for: {value}"
        return crowd
    if kind == "organizer":
        if value in history.organizers or _norm(value) in _normalized(history.organizers):
            return f"organizer you registered with before: {value}"
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


def explained(scoring: Scoring, arrays: CandidateArrays,
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


def _model_reason(scoring: Scoring, arrays: CandidateArrays, i: int, user: UserRow,
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
        phrase = humanize(token, user, history, distance, origin_label, local_start, now,
                           collaborative)
        if phrase and phrase not in phrases:
            phrases.append(phrase)
        if len(phrases) == 2:
            break
    if not phrases:
        phrases.append("popular with people like you" if collaborative
                       else _profile_phrase(user, distance))
    return "; ".join(phrases)


def _component_phrases(scoring: Scoring, rows: list[int]) -> dict[int, str]:
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


def _trend_phrases(scoring: Scoring, rows: list[int]) -> dict[int, str]:
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


def _coattendance_sources(scoring: Scoring, rows: list[int]) -> dict[int, int]:
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


def _content_sources(scoring: Scoring, rows: list[int]
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


#: a similar-events answer ranks for a stand-in whose interests are the event's category and
#: tags and whose home is the event's place: its reasons speak of that event, not of "you"
_ABOUT_THE_EVENT = (("matches your interest: ", "like this event: "),
                    ("suggested from your interests: ", "like this event: "),
                    ("near your home", "near this event"),
                    ("suggested from your home area", "near this event"),
                    ("upcoming near you", "upcoming near this event"))


def about_the_event(reason: str | None) -> str | None:
    """A reason written for a user, reworded for the events similar to one event."""
    if reason is None:
        return None
    for for_a_user, for_the_event in _ABOUT_THE_EVENT:
        reason = reason.replace(for_a_user, for_the_event)
    return reason


def _popularity_reason(count: float, distance: float | None) -> str:
    count = int(count)
    near = distance is not None and not math.isnan(distance) and distance <= NEARBY_KM
    if count > 0:
        noun = "registration" if count == 1 else "registrations"
        return f"popular {'nearby' if near else 'now'}: {count} {noun} this week"
    return "upcoming near you" if near else "upcoming event"


def reason(scoring: Scoring, arrays: CandidateArrays, i: int, user: UserRow,
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
