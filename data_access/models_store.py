"""Model versions (table beacon_models): insert, read, list, activate, mark failed, delete.

Metadata and the blob are read separately: listing never touches the weights. Every function
opens one managed session and returns plain frozen dataclasses.

At most one version is active per scope (global) and per user (user scope). `activate` keeps
that true under concurrency: it serializes activations (a transaction-level advisory lock on
Postgres, the database write lock on SQLite, taken by its first statement) and then, in the
same transaction, deactivates the scope's active version and activates the new one.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, insert, select, text, update

from data_access import audit as audit_log
from data_access.audit import AuditRow
from data_access.db import is_postgres, session_scope
from data_access.schema import ModelVersion, User, utcnow

# Any constant: the key of the Postgres advisory lock that serializes activations.
_ACTIVATE_LOCK_KEY = 0x6265_6163  # "beac"

_META_COLUMNS = (
    ModelVersion.id, ModelVersion.scope, ModelVersion.user_id, ModelVersion.base_model_id,
    ModelVersion.status, ModelVersion.model_type, ModelVersion.fingerprint,
    ModelVersion.hyperparameters, ModelVersion.counts, ModelVersion.training_seconds,
    ModelVersion.loss_history, ModelVersion.metrics, ModelVersion.components,
    ModelVersion.created_at,
    ModelVersion.created_by, ModelVersion.activated_at, ModelVersion.size_bytes,
    ModelVersion.activated_data,
)


@dataclass(frozen=True)
class VersionMeta:
    id: int
    scope: str
    user_id: int | None
    user_email: str | None
    base_model_id: int | None
    status: str
    model_type: str
    fingerprint: str | None
    hyperparameters: dict
    counts: dict
    training_seconds: float | None
    loss_history: list
    metrics: dict
    created_at: datetime
    created_by: str | None
    activated_at: datetime | None
    size_bytes: int | None
    components: dict = field(default_factory=dict)  # what each component chose; {}: none kept
    activated_data: str | None = None  # the data digest at an operator's activation


class VersionNotFound(LookupError):
    pass


class VersionFailed(ValueError):
    """A failed version cannot be activated."""


class VersionWouldServeNobody(ValueError):
    """A personal version is served only on top of the global version it was built on."""


def _meta_query():
    return select(*_META_COLUMNS, User.email).outerjoin(User, User.id == ModelVersion.user_id)


def _meta(row) -> VersionMeta:
    m = row._mapping
    return VersionMeta(
        id=m["id"], scope=m["scope"], user_id=m["user_id"], user_email=m["email"],
        base_model_id=m["base_model_id"], status=m["status"], model_type=m["model_type"],
        fingerprint=m["fingerprint"], hyperparameters=dict(m["hyperparameters"] or {}),
        counts=dict(m["counts"] or {}), training_seconds=m["training_seconds"],
        loss_history=list(m["loss_history"] or []), metrics=dict(m["metrics"] or {}),
        created_at=m["created_at"], created_by=m["created_by"],
        activated_at=m["activated_at"], size_bytes=m["size_bytes"],
        components=dict(m["components"] or {}), activated_data=m["activated_data"],
    )


def insert_version(
    *,
    scope: str,
    blob: bytes,
    user_id: int | None = None,
    base_model_id: int | None = None,
    model_type: str = "hybrid",
    fingerprint: str | None = None,
    hyperparameters: dict | None = None,
    counts: dict | None = None,
    training_seconds: float | None = None,
    loss_history: list | None = None,
    metrics: dict | None = None,
    components: dict | None = None,
    created_by: str | None = None,
    created_at: datetime | None = None,
    status: str = "inactive",
) -> int:
    """Store a complete version (metadata + blob) and return its id. Inactive unless told."""
    if scope == "user" and user_id is None:
        raise ValueError("a user-scope version needs user_id")
    with session_scope() as session:
        return _insert(session, scope=scope, blob=blob, user_id=user_id,
                       base_model_id=base_model_id, model_type=model_type,
                       fingerprint=fingerprint, hyperparameters=hyperparameters, counts=counts,
                       training_seconds=training_seconds, loss_history=loss_history,
                       metrics=metrics, components=components, created_by=created_by,
                       created_at=created_at, status=status)


def _insert(session, *, blob: bytes, hyperparameters: dict | None, counts: dict | None,
            loss_history: list | None, metrics: dict | None, created_at: datetime | None,
            components: dict | None = None, **columns) -> int:
    return int(session.execute(insert(ModelVersion).values(
        hyperparameters=hyperparameters or {}, counts=counts or {},
        loss_history=list(loss_history or []), metrics=metrics or {},
        components=components or {},
        created_at=created_at or utcnow(), size_bytes=len(blob), blob=blob, **columns,
    ).returning(ModelVersion.id)).scalar_one())


def insert_active_user_version(session, *, user_id: int, base_model_id: int, blob: bytes,
                               model_type: str, fingerprint: str | None,
                               hyperparameters: dict, counts: dict, training_seconds: float,
                               created_by: str | None) -> int:
    """Store a user-scope version already active, in the caller's transaction (a fold-in: the
    version, its activation and the run's end commit together or not at all). The user's
    previously active version becomes inactive; activations are serialized as in activate()."""
    _serialize_activations(session)
    session.execute(update(ModelVersion).where(
        ModelVersion.scope == "user", ModelVersion.user_id == user_id,
        ModelVersion.status == "active").values(status="inactive"))
    now = utcnow()
    return _insert(session, scope="user", user_id=user_id, base_model_id=base_model_id,
                   status="active", activated_at=now, created_at=now, model_type=model_type,
                   fingerprint=fingerprint, hyperparameters=hyperparameters, counts=counts,
                   training_seconds=training_seconds, loss_history=None, metrics=None,
                   created_by=created_by, blob=blob)


def _serialize_activations(session) -> None:
    """Postgres: the transaction-level advisory lock every activation takes. SQLite: nothing
    here; the transaction's first statement must be a write (it takes the write lock)."""
    if is_postgres(session.get_bind()):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ACTIVATE_LOCK_KEY})


def versions_stamp(scope: str | None = None) -> tuple:
    """Changes whenever a version (of `scope`, or any) is added, deleted, activated or marked
    failed: (count, max id, max activated_at, failed count). One aggregate over a small table;
    the console keys its cached version lists on it, so a version trained elsewhere shows at
    once."""
    failed = func.sum(case((ModelVersion.status == "failed", 1), else_=0))
    query = select(func.count(), func.max(ModelVersion.id), func.max(ModelVersion.activated_at),
                   failed)
    if scope is not None:
        query = query.where(ModelVersion.scope == scope)
    with session_scope() as session:
        row = session.execute(query).one()
    return (int(row[0]), row[1], row[2].isoformat() if row[2] else None, int(row[3] or 0))


def get_version(version_id: int) -> VersionMeta | None:
    with session_scope() as session:
        row = session.execute(_meta_query().where(ModelVersion.id == version_id)).first()
        return _meta(row) if row is not None else None


def get_blob(version_id: int) -> bytes | None:
    """The serialized model. On Postgres it is fetched in the binary protocol: the default
    text protocol sends bytea hex-encoded, twice the bytes, and decoding it cost 0.7 s for a
    22 MB model (0.2 s in binary) on the shared 2-core machine."""
    with session_scope() as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            driver = connection.connection.driver_connection
            with driver.cursor() as cursor:
                cursor.execute("SELECT blob FROM beacon_models WHERE id = %s",
                               (int(version_id),), binary=True)
                row = cursor.fetchone()
            blob = row[0] if row is not None else None
        else:
            blob = session.execute(
                select(ModelVersion.blob).where(ModelVersion.id == version_id)
            ).scalar_one_or_none()
        return bytes(blob) if blob is not None else None


def list_versions(scope: str | None = None, user_id: int | None = None,
                  status: Iterable[str] | None = None, limit: int | None = None) -> list[VersionMeta]:
    """Newest first, without blobs."""
    query = _meta_query().order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    if scope is not None:
        query = query.where(ModelVersion.scope == scope)
    if user_id is not None:
        query = query.where(ModelVersion.user_id == user_id)
    if status is not None:
        query = query.where(ModelVersion.status.in_(list(status)))
    if limit is not None:
        query = query.limit(limit)
    with session_scope() as session:
        return [_meta(row) for row in session.execute(query).all()]


def active_global_id() -> int | None:
    """The id of the active global version: one probe of ix_beacon_models_scope_status."""
    with session_scope() as session:
        return session.execute(
            select(func.max(ModelVersion.id)).where(
                ModelVersion.scope == "global", ModelVersion.status == "active")
        ).scalar_one_or_none()


def newest_good_global_id() -> int | None:
    """The newest global version that is not failed (active or inactive)."""
    with session_scope() as session:
        return session.execute(
            select(func.max(ModelVersion.id)).where(
                ModelVersion.scope == "global", ModelVersion.status.in_(("active", "inactive")))
        ).scalar_one_or_none()


def active_version(scope: str = "global", user_id: int | None = None) -> VersionMeta | None:
    query = _meta_query().where(ModelVersion.scope == scope, ModelVersion.status == "active")
    if scope == "user":
        query = query.where(ModelVersion.user_id == user_id)
    with session_scope() as session:
        row = session.execute(query.order_by(ModelVersion.id.desc()).limit(1)).first()
        return _meta(row) if row is not None else None


def serving_candidates(exclude: Iterable[int] = (), limit: int = 5) -> list[VersionMeta]:
    """Global versions that may serve, best first: the active one, then the newest inactive.
    Failed versions and ids in `exclude` (blobs this process could not load) are left out."""
    excluded = [int(i) for i in exclude]
    query = _meta_query().where(ModelVersion.scope == "global",
                                ModelVersion.status.in_(("active", "inactive")))
    if excluded:
        query = query.where(ModelVersion.id.not_in(excluded))
    query = query.order_by(
        case((ModelVersion.status == "active", 0), else_=1), ModelVersion.id.desc()
    ).limit(limit)
    with session_scope() as session:
        return [_meta(row) for row in session.execute(query).all()]


def activate(version_id: int, audit: AuditRow | None = None,
             data_digest: str | None = None,
             held_lock: tuple[str, int] | None = None) -> VersionMeta:
    """Make a version the active one of its scope (and user), in one transaction (with its
    `audit` row, when given). `data_digest`: the data's state as the activation saw it
    (an operator's activation records it; a trained version's own does not). `held_lock`:
    (scope key, run id) of the training activating what it made: runs.LockLost, and nothing
    activated, unless that run still holds that lock.

    Raises VersionNotFound / VersionFailed. Activating the active version is a no-op that
    refreshes nothing.
    """
    with session_scope() as session:
        if is_postgres(session.get_bind()):
            _serialize_activations(session)
        else:
            # A write first, so this transaction holds SQLite's write lock before it reads.
            _write_first(session, version_id)
        row = session.execute(
            select(ModelVersion.id, ModelVersion.scope, ModelVersion.user_id, ModelVersion.status,
                   ModelVersion.base_model_id)
            .where(ModelVersion.id == version_id)
        ).first()
        if row is None:
            raise VersionNotFound(f"no model version {version_id}")
        if row.status == "failed":
            raise VersionFailed(f"model version {version_id} failed and cannot be activated")
        if held_lock is not None:
            from data_access.runs import check_holds_lock

            check_holds_lock(session, held_lock[1], held_lock[0])
        if row.scope == "user":
            _check_base_is_active(session, version_id, row.base_model_id)
        if row.status != "active":
            same_scope = [ModelVersion.scope == row.scope, ModelVersion.status == "active",
                          ModelVersion.id != version_id]
            if row.scope == "user":
                same_scope.append(ModelVersion.user_id == row.user_id)
            session.execute(update(ModelVersion).where(*same_scope).values(status="inactive"))
            session.execute(update(ModelVersion).where(ModelVersion.id == version_id)
                            .values(status="active", activated_at=utcnow(),
                                    activated_data=data_digest))
        if audit is not None:
            audit_log.insert(session, audit)
    meta = get_version(version_id)
    assert meta is not None
    return meta


def _check_base_is_active(session, version_id: int, base_id: int | None) -> None:
    active = session.scalar(select(ModelVersion.id).where(
        ModelVersion.scope == "global", ModelVersion.status == "active"))
    if base_id is None or base_id != active:
        built_on = f"global version {base_id}" if base_id is not None else "a deleted version"
        raise VersionWouldServeNobody(
            f"model version {version_id} is a personal vector on {built_on}, and the active "
            f"global version is {active}: it would serve nobody. Activate its global version "
            "first, or refresh the user's personal model")


def _write_first(session, version_id: int) -> None:
    """A no-op write before a read-modify-write: on SQLite the transaction then holds the
    write lock before it reads (see activate)."""
    session.execute(update(ModelVersion).where(ModelVersion.id == version_id)
                    .values(status=ModelVersion.status))


def mark_failed(version_id: int, note: str | None = None) -> None:
    """Failed versions never serve and cannot be activated; `note` lands in metrics.failure."""
    with session_scope() as session:
        _write_first(session, version_id)
        row = session.get(ModelVersion, version_id)
        if row is None:
            return
        row.status = "failed"
        if note:
            row.metrics = {**(row.metrics or {}), "failure": note[:2000]}


def clear_failed(version_id: int) -> None:
    """A failed version becomes inactive again (its failure note is kept as previous_failure)."""
    with session_scope() as session:
        _write_first(session, version_id)
        row = session.get(ModelVersion, version_id)
        if row is None or row.status != "failed":
            return
        row.status = "inactive"
        metrics = dict(row.metrics or {})
        if "failure" in metrics:
            metrics["previous_failure"] = metrics.pop("failure")
        row.metrics = metrics


def update_metrics(version_id: int, metrics: dict) -> None:
    """Merge `metrics` into the version's stored metrics (e.g. a fresh evaluation)."""
    with session_scope() as session:
        _write_first(session, version_id)
        row = session.get(ModelVersion, version_id)
        if row is None:
            raise VersionNotFound(f"no model version {version_id}")
        row.metrics = {**(row.metrics or {}), **metrics}


def set_created_at(version_id: int, created_at: datetime) -> None:
    """Back-date a version (tests and data repair)."""
    with session_scope() as session:
        session.execute(update(ModelVersion).where(ModelVersion.id == version_id)
                        .values(created_at=created_at))


def cleanup_candidates(keep_days: float, keep_newest: int = 3,
                       now: datetime | None = None) -> list[VersionMeta]:
    """Versions cleanup may delete: created more than keep_days ago, not active, and not among
    the `keep_newest` newest global versions nor the `keep_newest` newest of each user."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    keep: set[int] = set()
    with session_scope() as session:
        rows = session.execute(
            select(ModelVersion.id, ModelVersion.scope, ModelVersion.user_id)
            .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        ).all()
    seen: dict[tuple, int] = {}
    for row in rows:
        group = (row.scope, row.user_id if row.scope == "user" else None)
        seen[group] = seen.get(group, 0) + 1
        if seen[group] <= keep_newest:
            keep.add(int(row.id))
    with session_scope() as session:
        old = session.execute(
            _meta_query().where(ModelVersion.created_at < cutoff,
                                ModelVersion.status != "active")
            .order_by(ModelVersion.created_at, ModelVersion.id)
        ).all()
        going = [meta for meta in map(_meta, old) if meta.id not in keep]
        # a personal version adds a user's vector to one global version: without it, it can
        # never serve again, so it goes with it (and the preview says so)
        bases = [meta.id for meta in going if meta.scope == "global"]
        built_on = session.execute(
            _meta_query().where(ModelVersion.scope == "user",
                                ModelVersion.base_model_id.in_(bases))
            .order_by(ModelVersion.created_at, ModelVersion.id)
        ).all() if bases else []
    listed = {meta.id for meta in going}
    return going + [meta for meta in map(_meta, built_on) if meta.id not in listed]


def delete_versions(version_ids: Iterable[int], audit: AuditRow | None = None) -> list[int]:
    """Delete these versions unless active, with the personal versions built on a deleted
    global one (active or not: they cannot serve without it), and the `audit` row naming what
    was deleted, in one transaction. Returns the ids deleted.

    Activations are held off for the transaction: a rollback to one of these versions between
    the read and the delete would otherwise lose the version it had just made active."""
    ids = [int(i) for i in version_ids]
    if not ids:
        return []
    with session_scope() as session:
        if is_postgres(session.get_bind()):
            _serialize_activations(session)
        else:
            _write_first(session, ids[0])  # SQLite: hold the write lock before reading
        doomed = list(session.scalars(select(ModelVersion.id).where(
            ModelVersion.id.in_(ids), ModelVersion.status != "active")))
        dependents = list(session.scalars(select(ModelVersion.id).where(
            ModelVersion.scope == "user", ModelVersion.base_model_id.in_(doomed),
            ModelVersion.id.not_in(doomed)))) if doomed else []
        # the dependents first: deleting their base would only null their link
        for batch in (dependents, doomed):
            if batch:
                session.execute(delete(ModelVersion).where(
                    ModelVersion.id.in_(batch),
                    (ModelVersion.scope == "user") | (ModelVersion.status != "active")))
        gone = sorted(doomed + dependents)
        if audit is not None:
            audit_log.insert(session, replace(
                audit, params={**audit.params, "deleted": gone}))
        return gone


def personal_vector_row(user_id: int, base_model_id: int) -> tuple[int, datetime, bytes] | None:
    """The active user-scope version of a user built on `base_model_id`: (id, created_at, blob)."""
    with session_scope() as session:
        row = session.execute(
            select(ModelVersion.id, ModelVersion.created_at, ModelVersion.blob).where(
                ModelVersion.scope == "user", ModelVersion.user_id == user_id,
                ModelVersion.status == "active", ModelVersion.base_model_id == base_model_id,
            ).order_by(ModelVersion.id.desc()).limit(1)
        ).first()
        if row is None or row.blob is None:
            return None
        return int(row.id), row.created_at, bytes(row.blob)


def delete_user_versions(user_id: int) -> int:
    """Delete every user-scope version of one user, the active one included (the user is served
    by the global model from the next request on). Returns how many were deleted."""
    with session_scope() as session:
        result = session.execute(delete(ModelVersion).where(
            ModelVersion.scope == "user", ModelVersion.user_id == int(user_id)))
        return int(result.rowcount or 0)
