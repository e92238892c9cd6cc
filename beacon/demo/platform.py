"""The platform: users, organizers, events and the hidden truth, all as arrays."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from beacon.demo.cities import (
    BUCKET_HOURS, CAPACITIES, CATEGORIES, CATEGORY_BUCKETS, CATEGORY_HOURS_LONG, CATEGORY_TAGS,
    CATEGORY_WEIGHTS, CITIES, EMAIL_DOMAINS, EPOCH, FIRST_NAMES, HIT_BOOST, HIT_SHARE,
    LAST_NAMES, MS_PER_DAY, MS_PER_HOUR, ORGANIZER_NOUNS, TAG_CATEGORY, TAG_INDEX, TAGS,
    TITLE_PATTERNS, UPCOMING_DAYS,
)
from data_access.emails import normalize_email


@dataclass
class Users:
    names: list[str]
    emails: list[str]
    city: np.ndarray  # city index
    lat: np.ndarray
    lon: np.ndarray
    created_ms: np.ndarray
    interests: list[list[str]]
    affinity: np.ndarray  # users x tags, float32: the hidden tag taste
    distance_km: np.ndarray  # how far each is willing to go (decay scale)
    preferred_bucket: np.ndarray
    price_sensitivity: np.ndarray
    sessions_per_day: np.ndarray
    arm_beacon: np.ndarray  # bool: A/B arm for feed impressions


@dataclass
class Events:
    event_ids: list[str]
    titles: list[str]
    category: np.ndarray
    tags: list[list[str]]
    tag_slots: np.ndarray  # events x 4 tag indices, padded with len(TAGS) (a zero column)
    tag_weight: np.ndarray  # 1/sqrt(number of tags): a match counts less in a long tag list
    organizer: np.ndarray
    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray  # -1 = no end time
    created_ms: np.ndarray
    bucket: np.ndarray
    price: np.ndarray
    capacity: np.ndarray  # -1 = unlimited
    appeal: np.ndarray  # hidden per-event quality; a few hits
    across_midnight: np.ndarray
    on_dst_day: np.ndarray


@dataclass
class Platform:
    seed: int
    days: int
    now_ms: int
    users: Users
    events: Events
    organizers: list[str]
    organizer_city: np.ndarray
    dst_days: list[tuple[str, date]]
    by_city: list[np.ndarray]  # event indices per city
    user_db_ids: list[int] = field(default_factory=list)  # filled in as rows are written
    event_db_ids: list[int] = field(default_factory=list)


def seeded_rng(seed: int, *stage: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *stage])))


def build_platform(users: int, events: int, days: int, seed: int, now: datetime) -> Platform:
    """Everything but the interactions (those stream from `simulate_interactions`)."""
    now_ms = to_ms(now)
    dst = dst_change_days(now - timedelta(days=days), now + timedelta(days=UPCOMING_DAYS))
    user_table = _make_users(seeded_rng(seed, 1), users, days, now_ms)
    organizers, org_city, org_category, org_tags = _make_organizers(seeded_rng(seed, 2), events)
    event_table = _make_events(
        seeded_rng(seed, 3), events, days, now, dst, org_city, org_category, org_tags, organizers
    )
    by_city = [np.flatnonzero(event_table.city == c) for c in range(len(CITIES))]
    return Platform(seed, days, now_ms, user_table, event_table, organizers, org_city, dst,
                    by_city)


def dst_change_days(start: datetime, end: datetime) -> list[tuple[str, date]]:
    """(city, local date) for every day in [start, end] on which the city's UTC offset changes."""
    found = []
    for city in CITIES:
        zone = ZoneInfo(city.timezone)
        day = start.astimezone(zone).date()
        last = end.astimezone(zone).date()
        while day <= last:
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
            following = midnight + timedelta(days=1)  # wall-clock arithmetic: next local midnight
            if midnight.utcoffset() != following.utcoffset():
                found.append((city.name, day))
            day += timedelta(days=1)
    return found


def _make_users(rng: np.random.Generator, n: int, days: int, now_ms: int) -> Users:
    weights = np.array([c.weight for c in CITIES])
    city = rng.choice(len(CITIES), size=n, p=weights / weights.sum())
    centre_lat = np.array([c.latitude for c in CITIES])[city]
    centre_lon = np.array([c.longitude for c in CITIES])[city]
    lat = np.round(centre_lat + rng.normal(0, 0.06, n), 5)
    lon = np.round(centre_lon + rng.normal(0, 0.08, n), 5)
    # Most joined before the window; about one in ten joined during it.
    joined_days = np.where(rng.random(n) < 0.9, rng.uniform(days, days + 700, n),
                           rng.uniform(1, days, n))
    created_ms = (now_ms - joined_days * MS_PER_DAY).astype(np.int64) // 1000 * 1000

    affinity = rng.normal(0.0, 0.25, (n, len(TAGS))).astype(np.float32)
    interests: list[list[str]] = []
    names: list[str] = []
    emails: list[str] = []
    for i in range(n):
        primary = rng.choice(len(CATEGORIES), p=CATEGORY_WEIGHTS)
        secondary = rng.choice(len(CATEGORIES), p=CATEGORY_WEIGHTS)
        affinity[i, TAG_CATEGORY == primary] += 0.4
        pool = np.concatenate([np.flatnonzero(TAG_CATEGORY == primary),
                               np.flatnonzero(TAG_CATEGORY == secondary)])
        pool = np.unique(pool)
        stated = rng.choice(pool, size=min(len(pool), int(rng.integers(2, 6))), replace=False)
        affinity[i, stated] += rng.uniform(1.0, 1.8, len(stated))
        hidden = rng.choice(len(TAGS), size=int(rng.integers(1, 4)), replace=False)
        affinity[i, hidden] += rng.uniform(0.8, 1.5, len(hidden))
        interests.append(sorted(TAGS[t] for t in stated))
        name, slug = _person_name(rng, CITIES[city[i]].name)
        names.append(name)
        emails.append(normalize_email(f"{slug}.{i + 1}@{EMAIL_DOMAINS[i % len(EMAIL_DOMAINS)]}"))
    return Users(
        names=names,
        emails=emails,
        city=city,
        lat=lat,
        lon=lon,
        created_ms=created_ms,
        interests=interests,
        affinity=affinity,
        distance_km=rng.uniform(3.0, 15.0, n),
        preferred_bucket=rng.choice(4, size=n, p=[0.25, 0.2, 0.4, 0.15]),
        price_sensitivity=rng.uniform(0.0, 2.0, n),
        sessions_per_day=0.16 * rng.lognormal(-0.5, 1.0, n),
        arm_beacon=rng.random(n) < 0.5,
    )


def _person_name(rng: np.random.Generator, city: str) -> tuple[str, str]:
    first = FIRST_NAMES[city][int(rng.integers(len(FIRST_NAMES[city])))]
    last = LAST_NAMES[city][int(rng.integers(len(LAST_NAMES[city])))]
    if isinstance(first, tuple):  # Japanese: family name first, romanized slug
        return f"{last[0]} {first[0]}", f"{first[1]}.{last[1]}"
    return f"{first} {last}", f"{_ascii_slug(first)}.{_ascii_slug(last)}"


def _ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum()) or "user"


def _make_organizers(rng: np.random.Generator, n_events: int):
    """Each organizer: one city, one category, two or three signature tags; several events."""
    n = max(len(CITIES), round(n_events / 6))
    weights = np.array([c.weight for c in CITIES])
    city = rng.choice(len(CITIES), size=n, p=weights / weights.sum())
    city[: len(CITIES)] = np.arange(len(CITIES))  # every city has at least one organizer
    category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_WEIGHTS)
    names, tags, seen = [], [], set()
    for i in range(n):
        cat = CATEGORIES[category[i]]
        pool = CATEGORY_TAGS[cat]
        tags.append(list(rng.choice(pool, size=int(rng.integers(2, 4)), replace=False)))
        hood = CITIES[city[i]].neighborhoods[int(rng.integers(5))]
        noun = ORGANIZER_NOUNS[cat][int(rng.integers(4))]
        name = f"{hood} {noun}"
        if name in seen:
            name = f"{hood} {_tag_title(tags[-1][0])} {noun}"
        if name in seen:
            name = f"{name} {i + 1}"
        seen.add(name)
        names.append(name)
    return names, city, category, tags


def _tag_title(tag: str) -> str:
    special = {"ai": "AI", "dj": "DJ", "devops": "DevOps", "javascript": "JavaScript"}
    return special.get(tag) or tag.replace("-", " ").title()


def _make_events(rng, n, days, now, dst, org_city, org_category, org_tags, org_names) -> Events:
    n_org = len(org_city)
    org_size = rng.lognormal(0.0, 0.8, n_org)
    organizer = rng.choice(n_org, size=n, p=org_size / org_size.sum())
    organizer[: min(n, n_org)] = np.arange(min(n, n_org))  # every organizer runs an event
    city = org_city[organizer]
    category = org_category[organizer]

    tags: list[list[str]] = []
    tag_slots = np.full((n, 4), len(TAGS), dtype=np.int16)
    for i in range(n):
        chosen = _event_tags(rng, CATEGORIES[category[i]], org_tags[organizer[i]])
        tags.append(chosen)
        tag_slots[i, : len(chosen)] = [TAG_INDEX[t] for t in chosen]

    venue_lat = np.array([c.latitude for c in CITIES])[city] + rng.normal(0, 0.05, n)
    venue_lon = np.array([c.longitude for c in CITIES])[city] + rng.normal(0, 0.07, n)
    times = _event_times(rng, n, days, now, dst, city, category)
    free = rng.random(n) < 0.3
    price = np.where(free, 0.0, np.round(np.exp(rng.normal(3.0, 0.7, n)) * 2) / 2)
    capacity = np.where(rng.random(n) < 0.05, -1, rng.choice(CAPACITIES, size=n))
    appeal = rng.normal(0.0, 0.4, n) + HIT_BOOST * (rng.random(n) < HIT_SHARE)
    titles = []
    for i in range(n):
        pattern = TITLE_PATTERNS[CATEGORIES[category[i]]][int(rng.integers(4))]
        hood = org_names[organizer[i]].split(" ")[0]
        titles.append(f"{pattern.format(Tag=_tag_title(tags[i][0]))} · {hood}")
    return Events(
        event_ids=[f"evt-{i + 1:06d}" for i in range(n)],
        titles=titles,
        category=category,
        tags=tags,
        tag_slots=tag_slots,
        tag_weight=1.0 / np.sqrt([len(t) for t in tags]),
        organizer=organizer,
        city=city,
        lat=np.round(venue_lat, 5),
        lon=np.round(venue_lon, 5),
        price=price,
        capacity=capacity,
        appeal=appeal,
        **times,
    )


def _event_tags(rng: np.random.Generator, category: str, signature: list[str]) -> list[str]:
    """1-4 tags: mostly the organizer's signature, then the category's, rarely any tag."""
    count = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.4, 0.3, 0.1]))
    chosen: list[str] = [signature[int(rng.integers(len(signature)))]]
    while len(chosen) < count:
        draw = rng.random()
        if draw < 0.5:
            tag = signature[int(rng.integers(len(signature)))]
        elif draw < 0.9:
            tag = CATEGORY_TAGS[category][int(rng.integers(len(CATEGORY_TAGS[category])))]
        else:
            tag = TAGS[int(rng.integers(len(TAGS)))]
        if tag not in chosen:
            chosen.append(tag)
        elif rng.random() < 0.3:
            break
    return chosen


def _event_times(rng, n, days, now, dst, city, category) -> dict[str, np.ndarray]:
    """Local wall-clock start and end per event (zoneinfo does the offsets, DST included):
    half upcoming, some late nights across midnight, some with no end, some on DST days."""
    now_ms = to_ms(now)
    upcoming = rng.random(n) < 0.5
    offset_days = np.where(upcoming, rng.uniform(0, UPCOMING_DAYS, n), -rng.uniform(0, days, n))
    minutes = rng.choice([0, 15, 30, 45], size=n)
    durations = rng.random(n)
    no_end = rng.random(n) < 0.1
    leads = rng.uniform(3, 45, n)
    recent = rng.uniform(1, 14 * 24, n)
    buckets = np.array([rng.choice(4, p=CATEGORY_BUCKETS[CATEGORIES[c]]) for c in category])
    hours = np.array([rng.integers(*BUCKET_HOURS[b], endpoint=True) for b in buckets])
    dst_slots = _dst_assignments(rng, dst, city)
    dst_set = set(dst)

    start = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    across = np.zeros(n, bool)
    on_dst = np.zeros(n, bool)
    bucket = np.empty(n, np.int64)
    for i in range(n):
        zone = ZoneInfo(CITIES[city[i]].timezone)
        low, high = CATEGORY_HOURS_LONG[CATEGORIES[category[i]]]
        hours_long = low + (high - low) * durations[i]
        if i in dst_slots:
            day, late = dst_slots[i]
            hour, minute = (0, 30) if late else (19, 0)
            hours_long = 4.0 if late else hours_long
        else:
            day = (now + timedelta(days=float(offset_days[i]))).astimezone(zone).date()
            hour, minute = int(hours[i]), int(minutes[i])
            if buckets[i] == 3:  # late night: starts 21:00-23:45, ends after midnight
                hours_long = max(hours_long, 24 - hour - minute / 60 + 1 + 3 * durations[i])
        local_start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        local_end = local_start + timedelta(hours=float(hours_long))  # wall-clock, as posted
        start[i] = to_ms(local_start)
        end[i] = -1 if no_end[i] else to_ms(local_end.replace(minute=local_end.minute // 15 * 15))
        across[i] = not no_end[i] and local_end.date() > local_start.date()
        on_dst[i] = (CITIES[city[i]].name, local_start.date()) in dst_set
        bucket[i] = _bucket_of(local_start.hour)
    published = np.minimum(start - (leads * MS_PER_DAY).astype(np.int64),
                           now_ms - (recent * MS_PER_HOUR).astype(np.int64))
    return {
        "start_ms": start,
        "end_ms": end,
        "created_ms": published // 1000 * 1000,
        "bucket": bucket,
        "across_midnight": across,
        "on_dst_day": on_dst,
    }


def _dst_assignments(rng, dst, city) -> dict[int, tuple[date, bool]]:
    """Move about 2% of a city's events (at least one) onto each of its DST change days;
    half of them start at 00:30 and run through the changing hour."""
    slots: dict[int, tuple[date, bool]] = {}
    names = [c.name for c in CITIES]
    for city_name, day in dst:
        candidates = [i for i in np.flatnonzero(city == names.index(city_name)) if i not in slots]
        if not candidates:
            continue
        count = max(1, round(0.02 * len(candidates)))
        for k, i in enumerate(rng.choice(candidates, size=min(count, len(candidates)),
                                         replace=False)):
            slots[int(i)] = (day, k % 2 == 0)
    return slots


def _bucket_of(hour: int) -> int:
    if 6 <= hour < 12:
        return 0
    if 12 <= hour < 17:
        return 1
    if 17 <= hour < 21:
        return 2
    return 3


def to_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))

