"""The demo's fixed world: six cities, the tag vocabulary and how events look in each category,
names per city, and the weights of the hidden ground truth. No randomness here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

#: Past impressions name the demo's own history versions -1, -2, -3: model version ids are
#: positive, so a real version trained today is never credited with them (the Metrics page
#: labels them "demo history N").
DEMO_VERSION_TAG = -1

UPCOMING_DAYS = 28
CHUNK_USERS = 500  # part of the determinism contract: the interaction RNG is seeded per chunk
MAX_CANDIDATES = 250
FEED_SIZE = 10
MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
MS_PER_MINUTE = 60_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
