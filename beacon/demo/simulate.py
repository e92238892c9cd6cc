"""Interactions: simulated user by user from the hidden truth, streamed chunk by chunk."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from beacon.demo.cities import (
    CHUNK_USERS, CITIES, DEMO_VERSION_TAG, FEED_SIZE, MAX_CANDIDATES, MS_PER_DAY, MS_PER_HOUR,
    MS_PER_MINUTE, W_DISTANCE, W_LOYALTY, W_PRICE, W_TIME_OF_DAY,
)
from beacon.demo.platform import Events, Platform, seeded_rng, to_datetime

Row = tuple[int, int, str, datetime, int | None, str | None, int | None]


@dataclass
class _UserState:
    loyal: np.ndarray | None = None  # bool per organizer: registered with before
    registered: dict[int, int] = field(default_factory=dict)  # event -> register ms
    rejected: set[int] = field(default_factory=set)
    seen: set[tuple[int, str, int]] = field(default_factory=set)


@dataclass
class _CityEvents:
    """One city's events as contiguous arrays: sessions scan these thousands of times."""

    idx: np.ndarray  # global event index
    tag_slots: np.ndarray
    tag_weight: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    bucket: np.ndarray
    price_term: np.ndarray
    appeal: np.ndarray
    created_ms: np.ndarray
    start_ms: np.ndarray
    organizer: np.ndarray

    @classmethod
    def of(cls, ev: Events, idx: np.ndarray) -> "_CityEvents":
        return cls(idx, ev.tag_slots[idx], ev.tag_weight[idx], ev.lat[idx], ev.lon[idx],
                   ev.bucket[idx], np.log1p(ev.price[idx] / 10), ev.appeal[idx],
                   ev.created_ms[idx], ev.start_ms[idx], ev.organizer[idx])


class Simulator:
    def __init__(self, platform: Platform, user_ids: list[int], event_ids: list[int]):
        self.p = platform
        self.cities = [_CityEvents.of(platform.events, idx) for idx in platform.by_city]
        self.user_ids = user_ids
        self.event_ids = event_ids
        self.window_start_ms = platform.now_ms - platform.days * MS_PER_DAY
        self.registrations = np.zeros(len(event_ids), np.int64)
        self.counts: Counter[str] = Counter()

    def chunks(self) -> Iterator[tuple[int, list[Row]]]:
        n = len(self.user_ids)
        for chunk, first in enumerate(range(0, n, CHUNK_USERS)):
            rng = seeded_rng(self.p.seed, 4, chunk)
            rows: list[Row] = []
            for u in range(first, min(n, first + CHUNK_USERS)):
                rows.extend(self._user(rng, u))
            yield min(n, first + CHUNK_USERS), rows

    def _user(self, rng: np.random.Generator, u: int) -> list[Row]:
        users, out = self.p.users, []
        state = _UserState(loyal=np.zeros(len(self.p.organizers), bool))
        begin = max(self.window_start_ms, int(users.created_ms[u]))
        span = self.p.now_ms - MS_PER_HOUR - begin
        if span <= 0:
            return out
        home = int(users.city[u])
        home_pool = self.cities[home]
        home_base = self._base_utility(u, home_pool)
        n_sessions = rng.poisson(users.sessions_per_day[u] * span / MS_PER_DAY)
        for t in np.sort(rng.integers(begin, begin + span, n_sessions)):
            t = int(t)
            pool, base = home_pool, home_base
            if rng.random() < 0.03:  # a trip: the feed shows another city
                city = int(rng.integers(len(CITIES)))
                if city != home:
                    pool = self.cities[city]
                    base = self._base_utility(u, pool)
            cand, utility = self._candidates(rng, t, pool, base, state)
            if len(cand) == 0:
                continue
            if rng.random() < 0.7:
                self._feed(rng, u, t, cand, utility, state, out)
            else:
                self._browse(rng, u, t, cand, utility, state, out)
        self._after(rng, u, state, out)
        return out

    def _base_utility(self, u: int, pool: _CityEvents) -> np.ndarray:
        """What the user gets from each event of a city, before organizer loyalty (computed
        once per user and city: taste, distance, time of day, price, the event's appeal)."""
        users = self.p.users
        km = _haversine_km(users.lat[u], users.lon[u], pool.lat, pool.lon)
        # Sum of the user's affinities for the event's tags (a gather: tags are sparse).
        affinity = np.append(users.affinity[u].astype(np.float64), 0.0)
        utility = affinity[pool.tag_slots].sum(axis=1) * pool.tag_weight
        utility = utility + W_DISTANCE * np.exp(-km / users.distance_km[u])
        utility += W_TIME_OF_DAY * (pool.bucket == users.preferred_bucket[u])
        utility -= W_PRICE * users.price_sensitivity[u] * pool.price_term
        return utility + pool.appeal

    def _candidates(self, rng, t: int, pool: _CityEvents, base: np.ndarray,
                    state: _UserState) -> tuple[np.ndarray, np.ndarray]:
        """Events of the city published and not starting within the hour at t, minus those the
        user rejected; a random subset of at most MAX_CANDIDATES when there are more."""
        local = np.flatnonzero((pool.created_ms <= t) & (pool.start_ms > t + MS_PER_HOUR))
        if len(local) > MAX_CANDIDATES:
            local = np.unique(local[rng.integers(0, len(local), MAX_CANDIDATES)])
        cand = pool.idx[local]
        if state.rejected:
            keep = np.array([e not in state.rejected for e in cand.tolist()], bool)
            cand, local = cand[keep], local[keep]
        return cand, base[local] + W_LOYALTY * state.loyal[pool.organizer[local]]

    def _feed(self, rng, u, t, cand, utility, state, out) -> None:
        beacon = bool(self.p.users.arm_beacon[u])
        version = self._model_version(rng, t)
        if beacon:  # the served model: the truth seen through noise that shrinks per version
            score = utility + rng.normal(0, 1.4 - 0.3 * version, len(cand))
        else:
            score = self.p.events.appeal[cand] + rng.normal(0, 0.3, len(cand))
        order = np.argsort(-score, kind="stable")[:FEED_SIZE]
        strategy = "beacon" if beacon else "popularity"
        shown = utility[order]
        position_bias = np.arange(1, len(order) + 1) ** -0.8
        draws = rng.random((len(order), 2))
        clicks = draws[:, 0] < position_bias / (1 + np.exp(2.6 - shown))
        rejects = ~clicks & (draws[:, 1] < 0.06 / (1 + np.exp(shown - 0.5)))
        events = cand[order].tolist()
        for position, (e, util, click, reject) in enumerate(
            zip(events, shown.tolist(), clicks.tolist(), rejects.tolist()), start=1
        ):
            self._emit(u, e, "impression", t, state, out,
                       (DEMO_VERSION_TAG * version, strategy, position))
            if click:
                at = t + int(rng.integers(2_000, 90_000))
                self._emit(u, e, "click", at, state, out)
                self._engage(rng, u, e, at, util, state, out, register_bias=0.0)
            elif reject:
                at = t + int(rng.integers(1_000, 30_000))
                if self._emit(u, e, "reject", at, state, out):
                    state.rejected.add(e)

    def _browse(self, rng, u, t, cand, utility, state, out) -> None:
        """Search and browse: events found by taste alone, no impression logged."""
        weights = np.exp(1.5 * (utility - utility.max()))
        count = min(len(cand), 1 + int(rng.poisson(0.8)))
        picks = rng.choice(len(cand), size=count, replace=False, p=weights / weights.sum())
        for k in picks:
            at = t + int(rng.integers(5_000, 600_000))
            self._engage(rng, u, int(cand[k]), at, float(utility[k]), state, out,
                         register_bias=0.8)

    def _engage(self, rng, u, e, at, util, state, out, register_bias: float) -> None:
        ev = self.p.events
        draws = rng.random(4)
        if draws[0] < 0.9:
            at += int(rng.integers(1_000, 5_000))
            self._emit(u, e, "view", at, state, out)
        if draws[1] < _sigmoid(util - 3.3):
            self._emit(u, e, "favorite", at + int(rng.integers(5_000, 120_000)), state, out)
        if draws[2] < 0.3 * _sigmoid(util - 3.5):
            self._emit(u, e, "share", at + int(rng.integers(5_000, 120_000)), state, out)
        full = 0 <= ev.capacity[e] <= self.registrations[e]
        if e in state.registered or full:
            return
        if draws[3] < _sigmoid(util - 2.8 + register_bias):
            at += int(rng.integers(10_000, 300_000))
            if self._emit(u, e, "register", at, state, out):
                state.registered[e] = at
                state.loyal[ev.organizer[e]] = True
                self.registrations[e] += 1

    def _after(self, rng, u, state: _UserState, out) -> None:
        """Unregistrations before the event; attendance after it for those still registered."""
        ev = self.p.events
        for e, registered_at in state.registered.items():
            start = int(ev.start_ms[e])
            limit = min(start, self.p.now_ms)
            if rng.random() < 0.07 and limit - registered_at > 2:
                at = int(rng.integers(registered_at + 1, limit))
                self._emit(u, e, "unregister", at, state, out)
                self.registrations[e] -= 1
            elif start < self.p.now_ms and rng.random() < 0.8:
                self._emit(u, e, "attend", start + int(rng.integers(0, 30 * MS_PER_MINUTE)),
                           state, out)

    def _model_version(self, rng, t: int) -> int:
        share = (t - self.window_start_ms) / (self.p.days * MS_PER_DAY)
        share += rng.uniform(-0.03, 0.03)  # a rollout takes a day or two
        return 1 + int(share > 1 / 3) + int(share > 2 / 3)

    def _emit(self, u, e, kind, at, state, out, impression=(None, None, None)) -> bool:
        """Append one row if it respects time (before now; before the start unless attending)
        and has not been written for this user already (the unique constraint)."""
        limit = self.p.now_ms if kind == "attend" else min(self.p.now_ms,
                                                            int(self.p.events.start_ms[e]))
        key = (e, kind, at)
        if at >= limit or key in state.seen:
            return False
        state.seen.add(key)
        out.append((self.user_ids[u], self.event_ids[e], kind, to_datetime(at), *impression))
        self.counts[kind] += 1
        return True


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _haversine_km(lat, lon, lats, lons) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 6371.0 * 2 * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
