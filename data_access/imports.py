"""The all-or-nothing CSV import transaction: upserts of users and events, streamed interactions.

Everything an import writes goes through one `ImportWriter` bound to one connection and one
transaction (`import_transaction`): an exception anywhere rolls all of it back.

- Users are upserted by email and events by event_id with ON CONFLICT DO UPDATE ... WHERE a column
  actually differs, so `updated_at` moves only on a real change (the training fingerprint reads it).
  Interest tags / event tags are replaced only when the set differs (and then updated_at moves too).
- Interactions are inserted with ON CONFLICT DO NOTHING on uq_interactions_row. On Postgres a
  worker thread COPYs each batch into a TEMP staging table and moves it with INSERT ... SELECT
  while the caller parses the next batch; on SQLite each batch is an executemany.

Only the columns the caller names (those present in the file's header) are written on update: a
column missing from a file leaves the stored value alone, an empty cell stores NULL.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from data_access import audit as audit_log
from data_access import metrics_rollup
from data_access.audit import AuditRow
from data_access.db import get_engine
from data_access.emails import normalize_email
from data_access.schema import Event, EventTag, Interaction, User, UserInterest, utcnow

USERS: Table = User.__table__  # type: ignore[assignment]
EVENTS: Table = Event.__table__  # type: ignore[assignment]
INTERACTIONS: Table = Interaction.__table__  # type: ignore[assignment]
USER_INTERESTS: Table = UserInterest.__table__  # type: ignore[assignment]
EVENT_TAGS: Table = EventTag.__table__  # type: ignore[assignment]

USER_COLUMNS = ("name", "latitude", "longitude", "city")
EVENT_COLUMNS = (
    "title", "category", "organizer", "city", "latitude", "longitude",
    "start_time", "end_time", "timezone", "price", "capacity",
)
INTERACTION_COLUMNS = (
    "user_id", "event_id", "type", "occurred_at", "model_version", "strategy", "position",
)
UNIQUE_INTERACTION = ("user_id", "event_id", "type", "occurred_at")
STAGING_TABLE = "beacon_import_interactions"
# SQLite's default page cache (2 MB) thrashes on a million-row insert into an indexed table.
SQLITE_IMPORT_CACHE_KIB = 256 * 1024

# Maximum lengths of the text columns, for validation before the database complains.
MAX_LENGTHS: dict[str, int] = {
    "email": 320, "name": 200, "city": 120, "event_id": 120, "title": 300, "category": 80,
    "organizer": 200, "timezone": 64, "tag": 80, "strategy": 32,
}


@dataclass(frozen=True)
class UserRecord:
    email: str
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    interest_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    title: str
    start_time: datetime
    category: str | None = None
    organizer: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    end_time: datetime | None = None
    timezone: str = "UTC"
    price: float | None = None
    capacity: int | None = None
    tags: tuple[str, ...] = ()


class InteractionRow(NamedTuple):
    """One interaction with its references already resolved to database ids."""

    user_id: int
    event_id: int
    type: str
    occurred_at: datetime
    model_version: int | None
    strategy: str | None
    position: int | None


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class _Entity:
    """What differs between the users and the events upsert."""

    table: Table
    key: str
    columns: tuple[str, ...]
    tag_table: Table
    tag_owner: str  # the tag table's foreign key column
    required: tuple[str, ...] = ()  # written on every update, whatever the header


_USER_ENTITY = _Entity(USERS, "email", USER_COLUMNS, USER_INTERESTS, "user_id")
_EVENT_ENTITY = _Entity(
    EVENTS, "event_id", EVENT_COLUMNS, EVENT_TAGS, "event_id", ("title", "start_time")
)


def _dialect_insert(connection: Connection):
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


class ImportWriter:
    """Writes one import inside the caller's transaction. Never commits."""

    def __init__(self, connection: Connection, now: datetime | None = None):
        self.connection = connection
        self.now = now or utcnow()
        self.is_postgres = connection.dialect.name == "postgresql"
        self._copier: _PostgresInteractions | None = None
        self._inserted_interactions = 0

    # -- users and events -------------------------------------------------------------------

    def upsert_users(self, rows: Sequence[UserRecord], columns: Collection[str]) -> UpsertCounts:
        """Upsert by email. `columns`: the optional columns present in the file (incl. tags)."""
        values = [
            {"email": normalize_email(r.email), **{c: getattr(r, c) for c in USER_COLUMNS}}
            for r in rows
        ]
        tags = {normalize_email(r.email): r.interest_tags for r in rows} if "interest_tags" in columns else None
        return self._upsert(_USER_ENTITY, values, columns, tags)

    def upsert_events(self, rows: Sequence[EventRecord], columns: Collection[str]) -> UpsertCounts:
        """Upsert by event_id. `columns`: the optional columns present in the file (incl. tags)."""
        values = [
            {"event_id": r.event_id, **{c: getattr(r, c) for c in EVENT_COLUMNS}} for r in rows
        ]
        tags = {r.event_id: r.tags for r in rows} if "tags" in columns else None
        return self._upsert(_EVENT_ENTITY, values, columns, tags)

    def _upsert(
        self,
        entity: _Entity,
        values: list[dict[str, Any]],
        columns: Collection[str],
        tags: dict[str, tuple[str, ...]] | None,
    ) -> UpsertCounts:
        if not values:
            return UpsertCounts()
        table, key = entity.table, entity.key
        existing = self._ids_for(table, key, [v[key] for v in values])
        for v in values:
            v["created_at"] = v["updated_at"] = self.now
        statement = self._upsert_statement(entity, columns)
        # executemany ("insertmanyvalues"): one statement compiled once and sent in batches;
        # .values(list) compiled a statement the size of the whole batch every time.
        # A row this statement inserted has created_at == updated_at (both self.now); one it
        # updated kept an older created_at. `existing` alone cannot tell: a concurrent request
        # may have inserted the row after that read.
        returned = self.connection.execute(statement.returning(
            table.c[key], table.c.id, (table.c.created_at == table.c.updated_at).label("fresh")),
            values).all()
        changed = {k: row_id for k, row_id, _ in returned}
        new = {k for k, _, fresh in returned if fresh and k not in existing}
        existing.update({k: row_id for k, row_id in changed.items() if k not in new})
        inserted = len(new)
        updated = len(changed) - inserted
        if tags is not None:
            updated += self._sync_tags(entity, tags, existing, changed)
        return UpsertCounts(inserted, updated, len(values) - inserted - updated)

    def _upsert_statement(self, entity: _Entity, columns: Collection[str]):
        """INSERT ... ON CONFLICT (key) DO UPDATE the written columns WHERE one of them differs."""
        table, key = entity.table, entity.key
        statement = _dialect_insert(self.connection)(table)
        written = [c for c in entity.columns if c in columns or c in entity.required]
        if not written:
            return statement.on_conflict_do_nothing(index_elements=[key])
        excluded = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=[key],
            set_={**{c: excluded[c] for c in written}, "updated_at": excluded.updated_at},
            where=or_(*(table.c[c].is_distinct_from(excluded[c]) for c in written)),
        )

    def _sync_tags(self, entity: _Entity, tags: dict[str, tuple[str, ...]],
                   existing: dict[str, int], changed: dict[str, int]) -> int:
        """Replace differing tag sets; an existing row whose only change is its tags gets a new
        updated_at. Returns how many such rows there were."""
        ids = {**existing, **changed}
        unseen = [k for k in tags if k not in ids]
        # inserted by a concurrent transaction after `existing` was read, and identical in its
        # columns (the upsert returned nothing): found now, it counts as an existing row
        reread = self._ids_for(entity.table, entity.key, unseen) if unseen else {}
        ids.update(reread)
        retagged = self._replace_tags(entity, {ids[k]: t for k, t in tags.items()})
        already_updated = {changed[k] for k in changed if k in existing}
        newly_updated = (retagged & (set(existing.values()) | set(reread.values()))) \
            - already_updated
        self._touch(entity.table, newly_updated)
        return len(newly_updated)

    def _ids_for(self, table: Table, key: str, keys: Sequence[str]) -> dict[str, int]:
        query = select(table.c[key], table.c.id).where(table.c[key].in_(keys))
        return dict(self.connection.execute(query).all())

    def _replace_tags(self, entity: _Entity, wanted: dict[int, tuple[str, ...]]) -> set[int]:
        """Make each owner's tags exactly `wanted`; returns the owners whose tags changed."""
        owner = entity.tag_table.c[entity.tag_owner]
        current: dict[int, set[str]] = {i: set() for i in wanted}
        query = select(owner, entity.tag_table.c.tag).where(owner.in_(list(wanted)))
        for owner_id, tag in self.connection.execute(query):
            current[owner_id].add(tag)
        changed = {i for i, t in wanted.items() if set(t) != current[i]}
        if not changed:
            return changed
        self.connection.execute(delete(entity.tag_table).where(owner.in_(list(changed))))
        rows = [{entity.tag_owner: i, "tag": tag} for i in changed for tag in wanted[i]]
        if rows:
            self.connection.execute(entity.tag_table.insert(), rows)
        return changed

    def _touch(self, table: Table, ids: Collection[int]) -> None:
        if ids:
            statement = update(table).where(table.c.id.in_(list(ids))).values(updated_at=self.now)
            self.connection.execute(statement)

    # -- lookups ------------------------------------------------------------------------------

    def user_ids(self) -> dict[str, int]:
        """email -> id of every user in the database (as this transaction sees it)."""
        return dict(self.connection.execute(select(USERS.c.email, USERS.c.id)).all())

    def event_ids(self) -> dict[str, int]:
        """event_id -> id of every event in the database (as this transaction sees it)."""
        return dict(self.connection.execute(select(EVENTS.c.event_id, EVENTS.c.id)).all())

    # -- interactions -------------------------------------------------------------------------

    def add_interactions(self, rows: Sequence[InteractionRow]) -> None:
        """Write a batch (Postgres: handed to the COPY worker; SQLite: inserted right away)."""
        if not rows:
            return
        if self.is_postgres:
            if self._copier is None:
                self._copier = _PostgresInteractions(self.connection.connection.driver_connection)
            self._copier.put(rows)
        else:
            statement = sqlite.insert(INTERACTIONS).on_conflict_do_nothing(
                index_elements=list(UNIQUE_INTERACTION)
            )
            result = self.connection.execute(statement, [r._asdict() for r in rows])
            self._inserted_interactions += max(result.rowcount, 0)

    def finish_interactions(self) -> int:
        """Wait until every batch is written; returns how many rows were new."""
        if self._copier is not None:
            self._inserted_interactions += self._copier.finish()
            self._copier = None
        inserted, self._inserted_interactions = self._inserted_interactions, 0
        return inserted

    def close(self) -> None:
        """Stop the COPY worker, if any, before the transaction ends (commit or rollback)."""
        if self._copier is not None:
            self._copier.stop()
            self._copier = None


class _PostgresInteractions:
    """Writes interaction batches on Postgres in a worker thread, so that the database inserts
    batch N while the caller parses batch N+1: COPY into a TEMP staging table, then
    INSERT ... SELECT ... ON CONFLICT DO NOTHING. The worker alone touches the connection until
    `finish`/`stop` has joined it; the caller never uses the connection meanwhile."""

    QUEUED_BATCHES = 2

    def __init__(self, raw_connection: Any):
        self.raw = raw_connection
        self.queue: queue.Queue = queue.Queue(maxsize=self.QUEUED_BATCHES)
        self.inserted = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="beacon-import-copy", daemon=True)
        self.thread.start()

    def put(self, rows: Sequence[InteractionRow]) -> None:
        self._raise_if_failed()
        self.queue.put(list(rows))  # blocks while the worker is QUEUED_BATCHES behind

    def finish(self) -> int:
        self.stop()
        self._raise_if_failed()
        return self.inserted

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        cols = ", ".join(INTERACTION_COLUMNS)
        try:
            with self.raw.cursor() as cursor:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (user_id bigint, "
                    "event_id bigint, type text, occurred_at timestamptz, model_version integer, "
                    "strategy text, position integer) ON COMMIT DROP"
                )
                while (rows := self.queue.get()) is not None:
                    with cursor.copy(f"COPY {STAGING_TABLE} ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    cursor.execute(
                        f"INSERT INTO interactions ({cols}) SELECT {cols} FROM {STAGING_TABLE} "
                        "ON CONFLICT ON CONSTRAINT uq_interactions_row DO NOTHING"
                    )
                    self.inserted += max(cursor.rowcount, 0)
                    cursor.execute(f"TRUNCATE {STAGING_TABLE}")
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self.error = error
            while self.queue.get() is not None:  # let a blocked put() go on, until stop()
                pass


@contextmanager
def import_transaction(url: str | None = None,
                       audit: AuditRow | None = None) -> Iterator[ImportWriter]:
    """One connection, one transaction: commit when the block ends (with its `audit` row),
    roll back on any error."""
    with get_engine(url).connect() as connection:
        with _sqlite_cache(connection), connection.begin():
            metrics_rollup.hold_for_writer(connection)
            writer = ImportWriter(connection)
            try:
                yield writer
            finally:
                writer.close()
            if audit is not None:
                audit_log.insert(connection, audit)


@contextmanager
def _sqlite_cache(connection: Connection) -> Iterator[None]:
    """A larger page cache for this connection while it imports (SQLite only), then the old."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    previous = raw.execute("PRAGMA cache_size").fetchone()[0]
    raw.execute(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size = {int(previous)}")


def table_counts(url: str | None = None) -> dict[str, int]:
    """Row counts of the tables an import writes."""
    tables = {
        "users": USERS, "user_interests": USER_INTERESTS, "events": EVENTS,
        "event_tags": EVENT_TAGS, "interactions": INTERACTIONS,
    }
    with get_engine(url).connect() as connection:
        return {
            name: connection.execute(select(func.count()).select_from(t)).scalar_one()
            for name, t in tables.items()
        }
