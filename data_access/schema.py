"""The tables. ORM classes never leave data_access/: store functions return plain data.

Times are stored in UTC and come back timezone-aware (UTCDateTime), on SQLite as on Postgres.
Changing a table here means writing an Alembic revision in data_access/migrations/versions.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

INTERACTION_TYPES = (
    "impression", "click", "view", "favorite", "share",
    "register", "unregister", "attend", "reject",
)
MODEL_STATUSES = ("active", "inactive", "failed")
RUN_STATUSES = ("queued", "running", "succeeded", "skipped", "failed", "abandoned", "cancelled")
RUN_TRIGGERS = ("button", "force", "schedule", "cli")
SCOPES = ("global", "user")

# Postgres gets 64-bit keys; SQLite needs INTEGER PRIMARY KEY for its rowid alias.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware in, UTC stored, timezone-aware (UTC) out on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Beacon stores only timezone-aware times")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    city: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    __table_args__ = (
        # one account per address: see data_access/emails.py
        CheckConstraint("email = lower(trim(email))", name="ck_users_email_normalized"),
        Index("ix_users_name", "name"),
        Index("ix_users_updated_at", "updated_at"),
    )


class UserInterest(Base):
    __tablename__ = "user_interests"
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(80), primary_key=True)


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    category: Mapped[str | None] = mapped_column(String(80))
    organizer: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(120))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    price: Mapped[float | None] = mapped_column(Float)
    capacity: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    __table_args__ = (
        Index("ix_events_start_time", "start_time"),
        Index("ix_events_updated_at", "updated_at"),
    )


class EventTag(Base):
    __tablename__ = "event_tags"
    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(80), primary_key=True)


class Interaction(Base):
    __tablename__ = "interactions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    model_version: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str | None] = mapped_column(String(32))
    position: Mapped[int | None] = mapped_column(Integer)
    # The platform's id for one reported interaction (HTTP API): a retried batch inserts nothing twice.
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    __table_args__ = (
        CheckConstraint(_in("type", INTERACTION_TYPES), name="ck_interactions_type"),
        # Re-importing the same file must not duplicate rows.
        UniqueConstraint("user_id", "event_id", "type", "occurred_at", name="uq_interactions_row"),
        Index("ix_interactions_user_time", "user_id", "occurred_at"),
        Index("ix_interactions_event", "event_id", "type"),
        Index("ix_interactions_type_time", "type", "occurred_at"),
        Index("ix_interactions_model_version", "model_version", "type"),
        Index("ix_interactions_occurred_at", "occurred_at"),
        Index("uq_interactions_idempotency_key", "idempotency_key", unique=True),
        # ids only grow (the rollup and the fingerprint read max(id)), on SQLite too
        {"sqlite_autoincrement": True},
    )


class ModelVersion(Base):
    """A trained model: global, or a per-user fold-in built on a global version."""

    __tablename__ = "beacon_models"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    base_model_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("beacon_models.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="inactive")
    model_type: Mapped[str] = mapped_column(String(32), nullable=False, default="hybrid")
    fingerprint: Mapped[str | None] = mapped_column(String(128))
    hyperparameters: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    counts: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    training_seconds: Mapped[float | None] = mapped_column(Float)
    loss_history: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    metrics: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    # what each component chose on validation (training's `components` report); {}: not recorded
    components: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict,
                                             server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the data fingerprint (settings left out) when an operator last activated this version: a
    # rollback holds smart retraining off while the data stays as it was then
    activated_data: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Weights, id mappings and feature vocabulary, serialized together (see beacon/serialize.py).
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)
    __table_args__ = (
        CheckConstraint(_in("scope", SCOPES), name="ck_beacon_models_scope"),
        CheckConstraint(_in("status", MODEL_STATUSES), name="ck_beacon_models_status"),
        Index("ix_beacon_models_scope_status", "scope", "status"),
        Index("ix_beacon_models_user", "user_id", "created_at"),
        # a deleted version's id is never handed out again (impressions still name it)
        {"sqlite_autoincrement": True},
    )


class TrainingRun(Base):
    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    hyperparameters: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    epoch: Mapped[int | None] = mapped_column(Integer)
    total_epochs: Mapped[int | None] = mapped_column(Integer)
    last_loss: Mapped[float | None] = mapped_column(Float)
    # One entry per finished epoch: {"epoch", "loss", "val_metric"}; the console draws it live.
    progress: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    host: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)
    model_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("beacon_models.id", ondelete="SET NULL")
    )
    error: Mapped[str | None] = mapped_column(Text)
    # Consecutive identical skips fold into one row: how many, the newest one's time, and what
    # made them identical (the decision and the active version).
    repeats: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    skip_key: Mapped[str | None] = mapped_column(String(200))
    # A skip folded into a newer identical one keeps its row, so its id still answers, and
    # names the run that now counts it; lists leave such rows out.
    folded_into: Mapped[int | None] = mapped_column(BigId)
    # The cancel flag lives here, so a cancel from any process stops the run wherever it runs.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(200))
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="ck_training_runs_status"),
        CheckConstraint(_in("trigger", RUN_TRIGGERS), name="ck_training_runs_trigger"),
        Index("ix_training_runs_created", "created_at"),
        Index("ix_training_runs_status", "status"),
        Index("ix_training_runs_folded_into", "folded_into"),
        {"sqlite_autoincrement": True},
    )


class TrainingLock(Base):
    """One row per scope being trained ("global" or "user:<id>"): the primary key is the lock,
    so the rule is the same on SQLite and Postgres and across any number of processes."""

    __tablename__ = "training_locks"
    scope_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("training_runs.id", ondelete="CASCADE")
    )
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class UserRecommendation(Base):
    __tablename__ = "user_recommendations"
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    score: Mapped[float] = mapped_column(Float, nullable=False)
    model_version: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class MetricsRollupState(Base):
    """One row (id 1): how far the daily metrics rollup has read. Interactions with an id up to
    interactions_max_id are in it; users and events are summarised by (count, max id,
    max updated_at) so that a deletion or an event's changed category is noticed. Writers that
    insert interactions lock this row FOR SHARE on Postgres (see data_access/metrics_rollup)."""

    __tablename__ = "metrics_rollup_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interactions_max_id: Mapped[int | None] = mapped_column(BigInteger)
    users_count: Mapped[int | None] = mapped_column(BigInteger)
    users_max_id: Mapped[int | None] = mapped_column(BigInteger)
    events_count: Mapped[int | None] = mapped_column(BigInteger)
    events_max_id: Mapped[int | None] = mapped_column(BigInteger)
    events_max_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    click_window_seconds: Mapped[int | None] = mapped_column(Integer)
    registration_window_seconds: Mapped[int | None] = mapped_column(Integer)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MetricsDailyCount(Base):
    """Counted interactions per UTC day of their own time and event category."""

    __tablename__ = "metrics_daily_counts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    category: Mapped[str | None] = mapped_column(String(80))
    impressions: Mapped[int] = mapped_column(BigInteger, nullable=False)
    clicks: Mapped[int] = mapped_column(BigInteger, nullable=False)
    registrations: Mapped[int] = mapped_column(BigInteger, nullable=False)
    unregistrations: Mapped[int] = mapped_column(BigInteger, nullable=False)
    __table_args__ = (Index("ix_metrics_daily_counts_day", "day"),)


class MetricsDailyAttributed(Base):
    """Impressions per UTC day of the impression, and clicks and registrations per UTC day of
    the conversion, in the (model_version, strategy, position) group of the attributing
    impression (attributed 0: no impression explains the conversion)."""

    __tablename__ = "metrics_daily_attributed"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    attributed: Mapped[int] = mapped_column(Integer, nullable=False)
    model_version: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str | None] = mapped_column(String(32))
    position: Mapped[int | None] = mapped_column(Integer)
    impressions: Mapped[int] = mapped_column(BigInteger, nullable=False)
    clicks: Mapped[int] = mapped_column(BigInteger, nullable=False)
    registrations: Mapped[int] = mapped_column(BigInteger, nullable=False)
    __table_args__ = (Index("ix_metrics_daily_attributed_day", "day"),)


class ApiKey(Base):
    """A key the platform's backend presents to the HTTP API. Only a SHA-256 of the secret is
    stored; `prefix` (public, part of the key) finds the row, the hash is compared in constant
    time. A name is unique among active keys: a revoked key keeps its name, which its
    replacement may take."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[str] = mapped_column(String(64), nullable=False)  # "admin,ingest,recommend"
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (
        Index("uq_api_keys_active_name", "name", unique=True,
              sqlite_where=text("revoked_at IS NULL"), postgresql_where=text("revoked_at IS NULL")),
    )


class RecommendationRequest(Base):
    """What one API recommendation answered, so impressions reported with its request_id are
    attributed to the model version, strategy and position that produced them."""

    __tablename__ = "recommendation_requests"
    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    model_version: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    event_ids: Mapped[list] = mapped_column(JSON, nullable=False, default=list)  # in rank order
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    __table_args__ = (
        Index("ix_recommendation_requests_user", "user_id", "created_at"),
        Index("ix_recommendation_requests_created", "created_at"),
    )


class RefreshQueue(Base):
    """One row per user ever marked for a near-real-time refresh (fold-in + cached list).

    pending_since is set by the first mark after a refresh; mark_seq counts every mark, so a
    refresh finishing while a new mark arrived leaves the row pending (no mark is lost).
    due_at throttles: never before next_allowed_at (the last refresh + the interval). A worker
    claims due rows (SELECT ... FOR UPDATE SKIP LOCKED on Postgres) by setting claimed_until."""

    __tablename__ = "refresh_queue"
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    mark_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_allowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_lag_seconds: Mapped[float | None] = mapped_column(Float)
    refreshes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    __table_args__ = (
        Index("ix_refresh_queue_due", "due_at"),
        Index("ix_refresh_queue_refreshed", "refreshed_at"),
    )


class CatalogStamp(Base):
    """One row (id 1) whose version moves with every catalogue write made through the API, so
    every process drops its candidate snapshot on its next request (a cancelled event is gone
    at once, not after a cache's time to live)."""

    __tablename__ = "catalog_stamp"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

OPERATOR_ROLES = ("viewer", "operator", "admin")
AUDIT_OUTCOMES = ("ok", "refused", "failed")


class Operator(Base):
    """A person who uses the console (not a platform user). password_hash is bcrypt; it is
    empty for an operator who signs in only through single sign-on."""

    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (CheckConstraint(_in("role", OPERATOR_ROLES), name="ck_operators_role"),)


class SignInAttempt(Base):
    """Every password sign-in try, kept for throttling (per account and per client)."""

    __tablename__ = "sign_in_attempts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    client: Mapped[str | None] = mapped_column(String(120))
    succeeded: Mapped[bool] = mapped_column(Boolean, nullable=False)
    __table_args__ = (
        Index("ix_sign_in_attempts_email_at", "email", "at"),
        Index("ix_sign_in_attempts_client_at", "client", "at"),
    )


class ConsoleSecret(Base):
    """Secrets the console generates for itself (the cookie signing key), one row per name."""

    __tablename__ = "console_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class TrainingSettings(Base):
    """The settings every training without settings of its own uses (smart retrains, cron, the
    API), as changes from the built-in defaults: one row per scope ("global")."""

    __tablename__ = "training_settings"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    overrides: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    updated_by: Mapped[str] = mapped_column(String(320), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class AuditEntry(Base):
    """Who did what, when, with which parameters, and how it ended."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    who: Mapped[str] = mapped_column(String(320), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="ck_audit_log_outcome"),
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_who_at", "who", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
    )
