"""The synthetic event platform behind `python -m beacon demo-data`.

Users live in six real cities (six timezones) and state a few interest tags; organizers tied to a
city and a handful of tags publish events; interactions over the last `days` days come from a
hidden ground truth that the engine has to discover: per-user tag affinities (mostly the stated
interests, plus some unstated ones), distance decay from home, a preferred time of day, organizer
loyalty and a per-event appeal (a few hits). Feed sessions log impressions (model_version
-1..-3 over time: the demo's own history, never a real version's id; strategy "beacon" or "popularity" per user, position 1..10) and clicks with position
bias; browse sessions find events by taste alone, which is what lands registrations on new,
not-yet-touched events.

Everything is drawn from numpy Generators seeded from (seed, stage[, chunk]) and anchored at
`now`, so the same arguments give the same rows. Users are simulated in fixed chunks and their
interactions streamed to the database: memory grows with users and events, never with
interactions.
"""
from __future__ import annotations

import math
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np

from beacon.actions import Actor, audit_row, state_changing
from beacon.errors import BeaconError
from data_access.emails import normalize_email

#: Past impressions name the demo's own history versions -1, -2, -3: model version ids are
#: positive, so a real version trained today is never credited with them (the Metrics page
#: labels them "demo history N").
DEMO_VERSION_TAG = -1

Progress = Callable[[int, int, str], None]

UPCOMING_DAYS = 28
CHUNK_USERS = 500  # part of the determinism contract: the interaction RNG is seeded per chunk
MAX_CANDIDATES = 250
FEED_SIZE = 10
MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
MS_PER_MINUTE = 60_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

LIMITS = {"users": (1, 1_000_000), "events": (1, 500_000), "days": (1, 3_650)}


@dataclass(frozen=True)
class City:
    name: str
    timezone: str
    latitude: float
    longitude: float
    weight: float
    neighborhoods: tuple[str, ...]


CITIES: tuple[City, ...] = (
    City("New York", "America/New_York", 40.7128, -74.0060, 0.22,
         ("Brooklyn", "Harlem", "SoHo", "Williamsburg", "Astoria")),
    City("London", "Europe/London", 51.5074, -0.1278, 0.20,
         ("Shoreditch", "Camden", "Brixton", "Hackney", "Peckham")),
    City("Berlin", "Europe/Berlin", 52.5200, 13.4050, 0.16,
         ("Kreuzberg", "Neukölln", "Prenzlauer Berg", "Friedrichshain", "Wedding")),
    City("Tokyo", "Asia/Tokyo", 35.6762, 139.6503, 0.16,
         ("Shibuya", "Shimokitazawa", "Kōenji", "Nakameguro", "Asakusa")),
    City("Sydney", "Australia/Sydney", -33.8688, 151.2093, 0.13,
         ("Newtown", "Bondi", "Surry Hills", "Marrickville", "Manly")),
    City("São Paulo", "America/Sao_Paulo", -23.5505, -46.6333, 0.13,
         ("Vila Madalena", "Pinheiros", "Liberdade", "Bela Vista", "Mooca")),
)

CATEGORY_TAGS: dict[str, tuple[str, ...]] = {
    "music": ("jazz", "techno", "indie", "classical", "hip-hop", "live-music", "dj", "opera"),
    "tech": ("python", "ai", "startups", "data-science", "javascript", "devops", "hackathon"),
    "sports": ("running", "cycling", "football", "climbing", "tennis", "basketball"),
    "food": ("wine", "street-food", "vegan", "coffee", "craft-beer", "cooking", "sushi"),
    "arts": ("photography", "theatre", "painting", "film", "museums", "design", "poetry"),
    "wellness": ("yoga", "meditation", "pilates", "breathwork", "mindfulness"),
    "outdoors": ("hiking", "kayaking", "camping", "birdwatching", "gardening"),
}
CATEGORIES = tuple(CATEGORY_TAGS)
CATEGORY_WEIGHTS = np.array([0.22, 0.16, 0.13, 0.15, 0.14, 0.10, 0.10])
TAGS = tuple(tag for tags in CATEGORY_TAGS.values() for tag in tags)
TAG_INDEX = {tag: i for i, tag in enumerate(TAGS)}
TAG_CATEGORY = np.array([CATEGORIES.index(c) for c, tags in CATEGORY_TAGS.items() for _ in tags])

# Time-of-day buckets (local start hour): morning, afternoon, evening, night.
BUCKET_HOURS = ((7, 11), (12, 16), (17, 20), (21, 23))
CATEGORY_BUCKETS = {  # probabilities of each bucket per category
    "music": (0.02, 0.08, 0.50, 0.40),
    "tech": (0.20, 0.25, 0.52, 0.03),
    "sports": (0.55, 0.30, 0.15, 0.00),
    "food": (0.10, 0.30, 0.45, 0.15),
    "arts": (0.15, 0.35, 0.40, 0.10),
    "wellness": (0.60, 0.20, 0.20, 0.00),
    "outdoors": (0.70, 0.30, 0.00, 0.00),
}
CATEGORY_HOURS_LONG = {  # typical duration range in hours
    "music": (2.5, 5.0), "tech": (1.5, 3.0), "sports": (1.0, 3.0), "food": (2.0, 4.0),
    "arts": (1.5, 3.0), "wellness": (1.0, 2.0), "outdoors": (3.0, 7.0),
}
TITLE_PATTERNS = {
    "music": ("{Tag} Night", "{Tag} Live", "{Tag} Session", "Late {Tag}"),
    "tech": ("{Tag} Meetup", "{Tag} Workshop", "{Tag} Talks", "{Tag} Hack Day"),
    "sports": ("{Tag} Club", "Sunday {Tag}", "{Tag} for Beginners", "{Tag} Social"),
    "food": ("{Tag} Tasting", "{Tag} Market", "{Tag} Supper Club", "{Tag} Crawl"),
    "arts": ("{Tag} Evening", "{Tag} Walk", "{Tag} Open Studio", "{Tag} Salon"),
    "wellness": ("Morning {Tag}", "{Tag} Circle", "{Tag} Retreat", "{Tag} in the Park"),
    "outdoors": ("{Tag} Day Trip", "{Tag} Weekend", "Guided {Tag}", "{Tag} Meetup"),
}
ORGANIZER_NOUNS = {
    "music": ("Sound Collective", "Records", "Music Club", "Soundsystem"),
    "tech": ("Dev Guild", "Tech Meetup", "Labs", "Builders"),
    "sports": ("Athletic Club", "Runners", "Sports Society", "Crew"),
    "food": ("Supper Club", "Food Collective", "Tasting Room", "Kitchen"),
    "arts": ("Art House", "Gallery", "Arts Society", "Studio"),
    "wellness": ("Yoga Studio", "Wellness Circle", "Mindful Collective", "Studio"),
    "outdoors": ("Trail Club", "Outdoor Society", "Explorers", "Adventure Club"),
}
CAPACITIES = np.array([20, 30, 50, 80, 120, 200, 300, 500, 1000, 3000])

# (display, ascii for the email): names per city, unicode included on purpose.
FIRST_NAMES = {
    "New York": ("José", "Renée", "Chloé", "Aaliyah", "Michael", "Dmitri", "Maya", "Luis"),
    "London": ("Siobhán", "Niamh", "Oliver", "Amelia", "Zoë", "Rhys", "Priya", "Harry"),
    "Berlin": ("Jürgen", "Jörg", "Anneliese", "Björn", "Lena", "Mehmet", "Sören", "Käthe"),
    "Tokyo": (("結衣", "yui"), ("蓮", "ren"), ("さくら", "sakura"), ("陽翔", "haruto"),
              ("葵", "aoi"), ("湊", "minato"), ("美咲", "misaki"), ("大翔", "hiroto")),
    "Sydney": ("Chloé", "Liam", "Mia", "Noah", "Ngaio", "Isla", "Jack", "Anh"),
    "São Paulo": ("João", "Luíza", "Júlia", "André", "Antônio", "Conceição", "Caio", "Bárbara"),
}
LAST_NAMES = {
    "New York": ("García", "Nguyễn", "Kowalski", "D'Angelo", "Johnson", "Peña", "Cohen", "Kim"),
    "London": ("O'Brien", "Smith", "Ní Bhriain", "Jones", "Brontë", "Patel", "Okafor", "Evans"),
    "Berlin": ("Müller", "Schröder", "Groß", "Weiß", "Köhler", "Yılmaz", "Bäcker", "Schmidt"),
    "Tokyo": (("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"),
              ("伊藤", "ito"), ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura")),
    "Sydney": ("Ng", "Wilson", "Nguyễn", "Papadopoulos", "O'Connor", "Smith", "Te Rangi", "Lee"),
    "São Paulo": ("Gonçalves", "Araújo", "Magalhães", "Simões", "Brandão", "Silva", "Souza",
                  "Conceição"),
}
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

# The hidden ground truth: weights of the utility a user gets from an event.
W_DISTANCE = 1.2  # times exp(-km / user's distance scale)
W_TIME_OF_DAY = 0.6
W_LOYALTY = 1.0
W_PRICE = 0.25  # times log1p(price / 10) times the user's price sensitivity
HIT_SHARE = 0.05
HIT_BOOST = 1.2


@dataclass(frozen=True)
class DemoSummary:
    users: int
    events: int
    organizers: int
    interactions: int
    interactions_by_type: dict[str, int]
    upcoming_events: int
    events_without_end: int
    events_across_midnight: int
    events_on_dst_days: int
    dst_days: list[str]
    seed: int
    days: int
    now: datetime
    replaced: dict[str, int] | None
    seconds: float
    interactions_per_second: float
    cities: list[str] = field(default_factory=lambda: [c.name for c in CITIES])


# ---------------------------------------------------------------------------------------------
# The service


@state_changing("load_demo_data", needs="administer")
def load_demo_data(
    users: int = 1000,
    events: int = 500,
    days: int = 60,
    seed: int = 42,
    now: datetime | str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    url: str | None = None,
    *,
    actor: Actor,
) -> DemoSummary:
    """Generate the demo platform and write it in one transaction; refuse a non-empty database
    unless `replace` (then wipe users, events, interactions and all engine state first)."""
    from data_access.bulk import bulk_writer

    _validate(users=users, events=events, days=days, seed=seed)
    anchor = parse_now(now)
    started = time.perf_counter()
    report = progress or (lambda done, total, stage: None)
    with bulk_writer(url, audit=audit_row()) as writer:
        existing = writer.platform_counts()
        if (existing["users"] or existing["events"]) and not replace:
            raise BeaconError(
                f"the database already holds {existing['users']} users and "
                f"{existing['events']} events; pass --replace to wipe them and load demo data"
            )
        replaced = None
        if replace:  # even with no users: stale models and runs belong to the old data
            report(0, 1, "wiping existing data")
            writer.wipe_platform()
            replaced = existing
            report(1, 1, "wiping existing data")
        platform = build_platform(users, events, days, seed, anchor)
        _write_users(writer, platform, report)
        _write_events(writer, platform, report)
        by_type = _write_interactions(writer, platform, report)
    seconds = time.perf_counter() - started
    report(0, 1, "metrics rollup")
    from beacon.metrics import refresh_after_load
    refresh_after_load(url)
    report(1, 1, "metrics rollup")
    total = sum(by_type.values())
    ev = platform.events
    return DemoSummary(
        users=users,
        events=events,
        organizers=len(platform.organizers),
        interactions=total,
        interactions_by_type=dict(sorted(by_type.items())),
        upcoming_events=int((ev.start_ms > platform.now_ms).sum()),
        events_without_end=int((ev.end_ms < 0).sum()),
        events_across_midnight=int(ev.across_midnight.sum()),
        events_on_dst_days=int(ev.on_dst_day.sum()),
        dst_days=[f"{city} {day.isoformat()}" for city, day in platform.dst_days],
        seed=seed,
        days=days,
        now=anchor,
        replaced=replaced,
        seconds=round(seconds, 2),
        interactions_per_second=round(total / seconds, 1) if seconds > 0 else 0.0,
    )


def parse_now(value: datetime | str | None) -> datetime:
    """The anchor: an aware datetime or ISO 8601 text with an offset; None = this hour (UTC)."""
    if value is None:
        return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BeaconError(
                f"--now: {value!r} is not an ISO 8601 time (e.g. 2026-11-23T12:00:00+00:00)"
            ) from None
    if value.tzinfo is None:
        raise BeaconError(f"--now: {value.isoformat()} has no UTC offset (add +00:00 or Z)")
    return value.astimezone(timezone.utc)


def _validate(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BeaconError(f"--{name} must be a whole number, got {value!r}")
        if name == "seed":
            if not 0 <= value < 2**63:
                raise BeaconError(f"--seed must be between 0 and 2**63-1, got {value}")
            continue
        low, high = LIMITS[name]
        if not low <= value <= high:
            raise BeaconError(f"--{name} must be between {low:,} and {high:,}, got {value:,}")


# ---------------------------------------------------------------------------------------------
# The platform: users, organizers, events and the hidden truth, all as arrays


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


def _rng(seed: int, *stage: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *stage])))


def build_platform(users: int, events: int, days: int, seed: int, now: datetime) -> Platform:
    """Everything but the interactions (those stream from `simulate_interactions`)."""
    now_ms = _to_ms(now)
    dst = dst_change_days(now - timedelta(days=days), now + timedelta(days=UPCOMING_DAYS))
    user_table = _make_users(_rng(seed, 1), users, days, now_ms)
    organizers, org_city, org_category, org_tags = _make_organizers(_rng(seed, 2), events)
    event_table = _make_events(
        _rng(seed, 3), events, days, now, dst, org_city, org_category, org_tags, organizers
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
    now_ms = _to_ms(now)
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
        start[i] = _to_ms(local_start)
        end[i] = -1 if no_end[i] else _to_ms(local_end.replace(minute=local_end.minute // 15 * 15))
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


def _to_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def _to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


# ---------------------------------------------------------------------------------------------
# Interactions: simulated user by user from the hidden truth, streamed chunk by chunk

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


class _Simulator:
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
            rng = _rng(self.p.seed, 4, chunk)
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
        out.append((self.user_ids[u], self.event_ids[e], kind, _to_datetime(at), *impression))
        self.counts[kind] += 1
        return True


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _haversine_km(lat, lon, lats, lons) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 6371.0 * 2 * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


# ---------------------------------------------------------------------------------------------
# Writing


def _counter(report: Progress, total: int, what: str) -> Callable[[int], None]:
    """A writer's on_batch callback: reports the running count of `what` written so far."""
    done = [0]

    def tick(count: int) -> None:
        done[0] += count
        report(done[0], total, what)

    return tick


def _write_users(writer, platform: Platform, report: Progress) -> None:
    users, n = platform.users, len(platform.users.emails)
    tick = _counter(report, n, "users")

    def rows():
        for i in range(n):
            created = _to_datetime(users.created_ms[i])
            yield (users.emails[i], users.names[i], float(users.lat[i]), float(users.lon[i]),
                   CITIES[users.city[i]].name, created, created)

    report(0, n, "users")
    writer.insert("users", ("email", "name", "latitude", "longitude", "city", "created_at",
                            "updated_at"), rows(), on_batch=tick)
    ids = writer.id_map("users", "email")
    platform.user_db_ids = [ids[email] for email in users.emails]
    writer.insert("user_interests", ("user_id", "tag"),
                  ((platform.user_db_ids[i], tag)
                   for i in range(n) for tag in users.interests[i]))


def _write_events(writer, platform: Platform, report: Progress) -> None:
    ev, n = platform.events, len(platform.events.event_ids)
    tick = _counter(report, n, "events")

    def rows():
        for i in range(n):
            city = CITIES[ev.city[i]]
            created = _to_datetime(ev.created_ms[i])
            yield (
                ev.event_ids[i], ev.titles[i], CATEGORIES[ev.category[i]],
                platform.organizers[ev.organizer[i]], city.name, float(ev.lat[i]),
                float(ev.lon[i]), _to_datetime(ev.start_ms[i]),
                None if ev.end_ms[i] < 0 else _to_datetime(ev.end_ms[i]), city.timezone,
                float(ev.price[i]), None if ev.capacity[i] < 0 else int(ev.capacity[i]),
                created, created,
            )

    report(0, n, "events")
    writer.insert("events", ("event_id", "title", "category", "organizer", "city", "latitude",
                             "longitude", "start_time", "end_time", "timezone", "price",
                             "capacity", "created_at", "updated_at"), rows(), on_batch=tick)
    ids = writer.id_map("events", "event_id")
    platform.event_db_ids = [ids[event_id] for event_id in ev.event_ids]
    writer.insert("event_tags", ("event_id", "tag"),
                  ((platform.event_db_ids[i], tag) for i in range(n) for tag in ev.tags[i]))


def _write_interactions(writer, platform: Platform, report: Progress) -> Counter[str]:
    simulator = _Simulator(platform, platform.user_db_ids, platform.event_db_ids)
    n = len(platform.user_db_ids)

    def rows():
        for done, chunk in simulator.chunks():
            yield from chunk
            report(done, n, "interactions")

    report(0, n, "interactions")
    with writer.indexes_deferred("interactions"):
        writer.insert("interactions", ("user_id", "event_id", "type", "occurred_at",
                                       "model_version", "strategy", "position"), rows())
        report(0, 1, "building indexes")
    report(1, 1, "building indexes")
    writer.analyze(("users", "user_interests", "events", "event_tags", "interactions"))
    return simulator.counts


def iter_interactions(users: int, events: int, days: int, seed: int,
                      now: datetime) -> Iterator[Row]:
    """The interaction rows with user/event *indices* (1-based) instead of database ids,
    without touching a database: for analysis and tests of the generator itself."""
    platform = build_platform(users, events, days, seed, parse_now(now))
    simulator = _Simulator(platform, list(range(1, users + 1)), list(range(1, events + 1)))
    for _, chunk in simulator.chunks():
        yield from chunk
