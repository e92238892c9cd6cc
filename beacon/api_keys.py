"""API keys as a service: create (the secret is returned once), list, revoke, authenticate.

A key reads `bk_<prefix>_<secret>`. The prefix (10 hex characters) is public and finds the
row; only the SHA-256 of the whole key is stored, compared with hmac.compare_digest. A random
256-bit secret needs no slow password hash: nobody can guess it from its digest. Keys and
their digests never reach a log line. A process trusts a key it checked for KEY_CACHE_S (1 s):
a revocation takes effect everywhere within that bound, at once in the revoking process.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from beacon.actions import Actor, state_changing
from beacon.errors import BeaconError
from data_access import api_keys as store
from data_access.db import database_url
from data_access.schema import utcnow

SCOPES = ("recommend", "ingest", "admin")
#: a key that passed its check is trusted this long by the process that checked it, so a
#: request costs no key query. A key revoked anywhere is refused by every process within this
#: bound (by the process that revoked it at once). BEACON_API_KEY_CACHE_S overrides it; 0
#: checks the database on every request.
KEY_CACHE_S = float(os.environ.get("BEACON_API_KEY_CACHE_S", "") or 1.0)
_CACHE_MAX = 1024
KEY_PREFIX = "bk_"
PREFIX_CHARS = 10
#: last_used_at is written at most this often per key and process (not on every request)
TOUCH_EVERY_S = 60.0

_touched: dict[int, float] = {}
_touched_lock = threading.Lock()
#: (database URL, digest of a presented key) -> (monotonic time of its check, the key)
_checked: dict[tuple[str, str], tuple[float, "KeyInfo"]] = {}


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: everything but the secret and its digest."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def actor(self) -> Actor:
        """Who a request made with this key acts as: its scopes are its permissions."""
        return Actor(f"api:{self.name}", kind="api_key", scopes=frozenset(self.scopes),
                     key=f"{KEY_PREFIX}{self.prefix}")

    def to_json(self) -> dict:
        return {
            "id": self.id, "name": self.name, "prefix": self.prefix, "scopes": list(self.scopes),
            "created_by": self.created_by, "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class CreatedKey:
    info: KeyInfo
    secret: str  # the whole key: shown once, stored nowhere


def _info(row: store.KeyRow) -> KeyInfo:
    return KeyInfo(id=row.id, name=row.name, prefix=row.prefix, scopes=row.scopes,
                   created_by=row.created_by, created_at=row.created_at,
                   last_used_at=row.last_used_at, revoked_at=row.revoked_at)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(scopes) -> tuple[str, ...]:
    """Validate a scope list ("recommend,ingest" or an iterable); raises BeaconError."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes or ())
    chosen = tuple(sorted({str(s).strip() for s in items if str(s).strip()}))
    if not chosen:
        raise BeaconError(f"give at least one scope (of {', '.join(SCOPES)})")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise BeaconError(f"unknown scope {unknown[0]!r} (expected {', '.join(SCOPES)})")
    return chosen


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise BeaconError("an API key needs a name (who or what uses it)")
    if len(name) > 100:
        raise BeaconError(f"the key name is {len(name)} characters long (at most 100)")
    return name


@state_changing("create_api_key", needs="administer")
def create_key(name: str, scopes, *, actor: Actor) -> CreatedKey:
    """A new random key with `scopes`; the returned secret is the only copy."""
    name = _check_name(name)
    chosen = parse_scopes(scopes)
    prefix = secrets.token_hex(PREFIX_CHARS // 2)
    secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    try:
        row = store.insert_key(name, prefix, _digest(secret), chosen, actor.name, utcnow())
    except store.DuplicateKeyName:
        raise BeaconError(f"an active API key named {name!r} already exists (revoke it first "
                          "to give its name to a new key)") from None
    return CreatedKey(info=_info(row), secret=secret)


def list_keys() -> list[KeyInfo]:
    return [_info(row) for row in store.list_keys()]


@state_changing("revoke_api_key", needs="administer")
def revoke_key(name: str, *, actor: Actor) -> KeyInfo:
    """Revoke by name (only: a typo must not revoke another key by its id): from the next
    request on, the key is refused."""
    text = str(name).strip()
    row = store.key_by_name(text)
    if row is None:
        raise BeaconError(f"no API key named {text!r} (python -m beacon api-keys list names them)")
    revoked = store.revoke(row.id, utcnow())
    _forget(row.id)
    return _info(revoked)


def _well_formed(presented: str | None) -> bool:
    if not presented or not presented.startswith(KEY_PREFIX):
        return False
    prefix = presented[len(KEY_PREFIX):len(KEY_PREFIX) + PREFIX_CHARS]
    return len(prefix) == PREFIX_CHARS and presented[len(KEY_PREFIX) + PREFIX_CHARS:][:1] == "_"


def checked_recently(presented: str | None) -> KeyInfo | None:
    """The key's info when this process checked it within KEY_CACHE_S and its "last used" is
    not due to be written: memory only, never the database (safe on an event loop). None
    means "ask authenticate()", not "refused"."""
    if not _well_formed(presented):
        return None
    clock = time.monotonic()
    info = _fresh((database_url(), _digest(presented)), clock)
    if info is None:
        return None
    last = _touched.get(info.id)
    if last is None or clock - last >= TOUCH_EVERY_S:
        return None
    return info


def _fresh(cache_key: tuple[str, str], clock: float) -> KeyInfo | None:
    """The cached info of a key this process checked less than KEY_CACHE_S ago."""
    hit = _checked.get(cache_key)
    return hit[1] if hit is not None and clock - hit[0] < KEY_CACHE_S else None


def authenticate(presented: str | None) -> KeyInfo | None:
    """The active key matching `presented`, or None. Constant-time comparison of digests."""
    if not _well_formed(presented):
        return None
    prefix = presented[len(KEY_PREFIX):len(KEY_PREFIX) + PREFIX_CHARS]
    digest = _digest(presented)
    cache_key = (database_url(), digest)
    clock = time.monotonic()
    cached = _fresh(cache_key, clock)
    if cached is not None:
        _touch(cached.id)
        return cached
    row = store.key_by_prefix(prefix)
    if row is None or not hmac.compare_digest(row.key_hash, digest) or \
            row.revoked_at is not None:
        _checked.pop(cache_key, None)
        return None
    info = _info(row)
    if KEY_CACHE_S > 0:
        with _touched_lock:
            if len(_checked) >= _CACHE_MAX:
                _checked.clear()
            _checked[cache_key] = (clock, info)
    _touch(row.id)
    return info


def _forget(key_id: int) -> None:
    """Drop a key from this process's cache of checked keys (it was revoked here)."""
    with _touched_lock:
        for cache_key in [k for k, (_, info) in _checked.items() if info.id == key_id]:
            del _checked[cache_key]


def _touch(key_id: int) -> None:
    clock = time.monotonic()
    with _touched_lock:
        last = _touched.get(key_id)
        if last is not None and clock - last < TOUCH_EVERY_S:
            return
        _touched[key_id] = clock
    store.touch(key_id, utcnow())
