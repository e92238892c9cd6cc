"""Everything one recommendation request reads, on one pooled connection in two statements:

1. the catalogue stamp, the active global model's id, the user with their interest tags and
   their active personal (fold-in) vector built on that model: one row per interest tag,
   anchored on a one-row select so the stamp and model id come back for an unknown user too;
2. the user's decisions (register / unregister / reject, latest of each per event) with the
   organizer, category and tags of those events.

Before, the same came from four connection checkouts and six statements (each checkout
with a ping). Reads only: autocommit, retried once on a dropped connection."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, func, literal, select
from sqlalchemy.orm import aliased

from data_access.catalog import UserHistory, UserRow, _as_naive, _decided
from data_access.catalog_sync import STAMP_ID
from data_access import pinned
from data_access.db import get_engine, run_retrying
from data_access.emails import normalize_email
from data_access.schema import CatalogStamp, Event, EventTag, Interaction, ModelVersion, User, \
    UserInterest


@dataclass(frozen=True)
class PersonalRow:
    """A user's active fold-in version on the active global model: (id, created_at, blob)."""

    version_id: int
    created_at: datetime
    blob: bytes


@dataclass(frozen=True)
class ServingRead:
    stamp: int  # the catalogue stamp (see catalog_sync)
    active_model_id: int | None  # the active global version, None without one
    user: UserRow | None  # None: no such user (or the request named a stand-in)
    history: UserHistory
    personal: PersonalRow | None  # built on active_model_id


def _fixed(value):
    """A constant written into the statement's text rather than sent as a parameter. psycopg
    prepares a statement after its fifth run and Postgres may then switch to a generic plan,
    which cannot see a parameter's value: with the scope and status as parameters that plan
    scanned every model version per request (3-5 ms instead of 0.3 ms at 17k versions)."""
    return literal(value, literal_execute=True)


def _active_global_id():
    return (select(func.max(ModelVersion.id))
            .where(ModelVersion.scope == _fixed("global"),
                   ModelVersion.status == _fixed("active"))
            .scalar_subquery())


def _head(by_email: bool):
    """Statement 1: one row per interest tag of the user named by the parameter "email" (or
    "user_id"); one row without such a user."""
    active_id = _active_global_id()
    stamp = (select(CatalogStamp.version).where(CatalogStamp.id == _fixed(STAMP_ID))
             .scalar_subquery())
    personal_id = (select(func.max(ModelVersion.id))
                   .where(ModelVersion.scope == _fixed("user"), ModelVersion.user_id == User.id,
                          ModelVersion.status == _fixed("active"),
                          ModelVersion.base_model_id == active_id)
                   .correlate(User).scalar_subquery())
    personal = aliased(ModelVersion, name="personal")
    anchor = select(_fixed(1).label("one")).subquery("anchor")
    named = User.email == bindparam("email") if by_email else User.id == bindparam("user_id")
    joined = anchor.outerjoin(User, named).outerjoin(
        UserInterest, UserInterest.user_id == User.id).outerjoin(
        personal, and_(User.id.is_not(None), personal.id == personal_id))
    return (select(stamp.label("stamp"), active_id.label("active_id"), User.id, User.email,
                   User.name, User.latitude, User.longitude, User.city, User.created_at,
                   UserInterest.tag, personal.id.label("personal_id"),
                   personal.created_at.label("personal_at"), personal.blob.label("personal_blob"))
            .select_from(joined).order_by(UserInterest.tag))


def _decisions():
    """Statement 2: the latest register / unregister / reject per event of the user
    "user_id", with the event's organizer and category, one row per event tag (or one
    without tags)."""
    return (select(Interaction.event_id, Interaction.type,
                   func.max(Interaction.occurred_at).label("at"), Event.organizer,
                   Event.category, EventTag.tag)
            .join(Event, Event.id == Interaction.event_id)
            .outerjoin(EventTag, EventTag.event_id == Interaction.event_id)
            .where(Interaction.user_id == bindparam("user_id"),
                   Interaction.type.in_([_fixed(kind) for kind in
                                         ("register", "unregister", "reject")]))
            .group_by(Interaction.event_id, Interaction.type, Event.organizer, Event.category,
                      EventTag.tag))


def decisions_from_rows(user_id: int, rows) -> UserHistory:
    """catalog.user_history's answer (without `recent`) from statement 2's rows: (event id,
    type, latest time of that type, organizer, category, one tag of the event or None)."""
    latest: dict[int, dict[str, datetime]] = {}
    features: dict[int, tuple[str | None, str | None]] = {}
    event_tags: dict[int, set[str]] = {}
    for event_id, kind, at, organizer, category, tag in rows:
        known = latest.setdefault(event_id, {})
        if kind not in known or _as_naive(at) > _as_naive(known[kind]):
            known[kind] = at
        features[event_id] = (organizer, category)
        if tag is not None:
            event_tags.setdefault(event_id, set()).add(tag)
    registered, rejected, organizers, categories = _decided(latest, features)
    return UserHistory(
        user_id=user_id, registered_newest_first=registered, rejected=frozenset(rejected),
        organizers=frozenset(organizers), categories=frozenset(categories),
        tags=frozenset(t for e in registered for t in event_tags.get(e, ())))


#: built once: composing these per request cost more than running them
_HEAD_BY_EMAIL = pinned.Statement(_head(by_email=True), "email")
_HEAD_BY_ID = pinned.Statement(_head(by_email=False), "user_id")
_DECISIONS = pinned.Statement(_decisions(), "user_id")


def serving_read(email: str | None = None, user_id: int | None = None) -> ServingRead:
    """What recommend() needs about the user named by `email` (or by `user_id`, for a user row
    the caller holds), with the stamp and the active model id. An unknown user comes back as
    user None with an empty history. In the API on Postgres through this thread's pinned
    connection (data_access.pinned), else on a pooled one."""
    email = normalize_email(email) if email is not None else ""
    if email and "\x00" not in email:  # stored text never holds NUL
        statement, given = _HEAD_BY_EMAIL, {"email": email}
    else:
        statement, given = _HEAD_BY_ID, {"user_id": int(user_id or 0)}  # ids start at 1

    def read(fetch) -> ServingRead:
        rows = fetch(statement, given)
        first = rows[0]
        user = None
        personal = None
        if first.id is not None:
            user = UserRow(id=first.id, email=first.email, name=first.name,
                           latitude=first.latitude, longitude=first.longitude, city=first.city,
                           created_at=first.created_at,
                           tags=tuple(r.tag for r in rows if r.tag is not None))
            if first.personal_id is not None and first.personal_blob is not None:
                personal = PersonalRow(int(first.personal_id), first.personal_at,
                                       bytes(first.personal_blob))
        history = UserHistory(user_id=user_id or 0)
        if user is not None:
            history = decisions_from_rows(user.id, fetch(_DECISIONS, {"user_id": user.id}))
        return ServingRead(stamp=int(first.stamp or 0),
                           active_model_id=None if first.active_id is None
                           else int(first.active_id),
                           user=user, history=history, personal=personal)

    answer = pinned.attempt(get_engine(), read)
    if answer is not pinned.UNAVAILABLE:
        return answer
    return run_retrying(lambda connection: read(
        lambda chosen, values: connection.execute(chosen.statement, values).all()))
