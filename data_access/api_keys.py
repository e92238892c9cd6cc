"""The API key store: rows of api_keys, never a secret (only its SHA-256)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from data_access.db import session_scope
from data_access.schema import ApiKey


class DuplicateKeyName(ValueError):
    """An active key already has this name."""


@dataclass(frozen=True)
class KeyRow:
    id: int
    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _row(key: ApiKey) -> KeyRow:
    return KeyRow(
        id=key.id, name=key.name, prefix=key.prefix, key_hash=key.key_hash,
        scopes=tuple(s for s in key.scopes.split(",") if s), created_by=key.created_by,
        created_at=key.created_at, last_used_at=key.last_used_at, revoked_at=key.revoked_at,
    )


def insert_key(name: str, prefix: str, key_hash: str, scopes: tuple[str, ...],
               created_by: str | None, now: datetime) -> KeyRow:
    try:
        with session_scope() as session:
            key = ApiKey(name=name, prefix=prefix, key_hash=key_hash,
                         scopes=",".join(sorted(scopes)), created_by=created_by, created_at=now)
            session.add(key)
            session.flush()
            return _row(key)
    except IntegrityError as error:
        raise DuplicateKeyName(name) from error


def key_by_prefix(prefix: str) -> KeyRow | None:
    with session_scope() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        return None if key is None else _row(key)


def key_by_name(name: str) -> KeyRow | None:
    """The active key with this name, else the newest revoked one (names repeat only among
    revoked keys)."""
    with session_scope() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.name == name).order_by(
            ApiKey.revoked_at.is_not(None), ApiKey.id.desc()).limit(1))
        return None if key is None else _row(key)


def list_keys() -> list[KeyRow]:
    with session_scope() as session:
        return [_row(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.created_at,
                                                                          ApiKey.id))]


def revoke(key_id: int, now: datetime) -> KeyRow | None:
    """Marks the key revoked (keeps the row for the record); None when there is no such key."""
    with session_scope() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            return None
        if key.revoked_at is None:
            key.revoked_at = now
        session.flush()
        return _row(key)


def touch(key_id: int, now: datetime) -> None:
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
