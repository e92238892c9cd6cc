"""Model versions as a service: list, show, activate (rollback), cleanup, and the serving cache.

Serving cache. `active_global()` asks the database for the active global version's id on every
call (one indexed probe; recommend reads it in the same statement as the user and passes it to
`serving_model`) and deserializes a blob only when that id differs from the one held in
memory. An activation made by any other process or replica is therefore served from the next
request on, and a process never holds more than the model it serves.

Serving is a read and never changes state. A blob that fails to load (a dropped connection,
corrupt bytes) is logged once per process and version, this process serves the newest good
inactive global version instead and tries the failed one again after LOAD_RETRY_SECONDS; the
version's status is left alone. Nothing crashes: with no loadable version, `active_global()`
returns None and recommend falls back to features/popularity. Only a deliberate check marks a
version failed: `verify(id)` (`python -m beacon models verify ID`), or a training whose new
version could not be activated; `clear_failed(id)` (or a verify that succeeds) lifts the mark.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np

from beacon.actions import Actor, audit_row, state_changing
from beacon.convergence import Convergence, fit_convergence
from beacon.errors import BeaconError, UnknownUser
from data_access import models_store as store

log = logging.getLogger(__name__)

MAX_KEEP_DAYS = 36_500  # a century: a larger cutoff date does not exist


@dataclass(frozen=True)
class VersionInfo:
    id: int
    scope: str
    status: str
    created_at: datetime
    user_id: int | None
    user: str | None  # the user's email for user-scope versions
    base_model_id: int | None
    model_type: str
    fingerprint: str | None
    hyperparameters: dict
    counts: dict
    training_seconds: float | None
    loss_history: list
    metrics: dict
    created_by: str | None
    activated_at: datetime | None
    size_bytes: int | None
    components: dict = dataclasses.field(default_factory=dict)  # what each component chose

    @property
    def metrics_summary(self) -> dict[str, Any]:
        """The headline numbers: beacon and popularity NDCG/hit rate at k, when evaluated."""
        return metrics_summary(self.metrics)

    @property
    def convergence(self) -> Convergence | None:
        """Whether early stopping or the epoch cap ended the fit (None: no validation curve)."""
        return fit_convergence(self.loss_history or [], self.hyperparameters or {})

    def to_dict(self, full: bool = True) -> dict[str, Any]:
        out = asdict(self)
        out["metrics_summary"] = self.metrics_summary
        if full:
            convergence = self.convergence
            out["convergence"] = convergence.to_dict() if convergence is not None else None
        else:
            for key in ("hyperparameters", "loss_history", "metrics", "counts", "components"):
                out.pop(key)
        return out


def metrics_summary(metrics: dict) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if not metrics:
        return summary
    if "k" in metrics:
        summary["k"] = metrics["k"]
    for strategy in ("beacon", "popularity"):
        block = metrics.get(strategy)
        if isinstance(block, dict):
            summary[strategy] = {key: block.get(key) for key in ("ndcg", "hit_rate")
                                 if key in block}
    if "comparison" in metrics:
        summary["comparison"] = metrics["comparison"]
    if "evaluation_error" in metrics:
        summary["evaluation_error"] = metrics["evaluation_error"]
    if "failure" in metrics:
        summary["failure"] = metrics["failure"]
    return summary


def _info(meta: store.VersionMeta) -> VersionInfo:
    return VersionInfo(
        id=meta.id, scope=meta.scope, status=meta.status, created_at=meta.created_at,
        user_id=meta.user_id, user=meta.user_email, base_model_id=meta.base_model_id,
        model_type=meta.model_type, fingerprint=meta.fingerprint,
        hyperparameters=meta.hyperparameters, counts=meta.counts,
        training_seconds=meta.training_seconds, loss_history=meta.loss_history,
        metrics=meta.metrics, created_by=meta.created_by, activated_at=meta.activated_at,
        size_bytes=meta.size_bytes, components=meta.components,
    )


def _user_id(email: str) -> int:
    from data_access.catalog import user_by_email

    user = user_by_email(email)
    if user is None:
        raise UnknownUser(email)
    return user.id


# --- list / show / activate / cleanup -------------------------------------------------------

def list_versions(scope: str | None = None, user: str | None = None,
                  limit: int | None = None) -> list[VersionInfo]:
    """Newest first. `scope` global/user; `user` an email (implies the user's versions)."""
    if scope not in (None, "global", "user"):
        raise BeaconError(f"unknown scope {scope!r} (expected global or user)")
    if limit is not None and not 1 <= limit <= 1_000_000:
        raise BeaconError(f"limit must be from 1 to 1000000, got {limit!r}")
    user_id = _user_id(user) if user else None
    return [_info(m) for m in store.list_versions(scope=scope, user_id=user_id, limit=limit)]


def _checked_id(version_id: int) -> int:
    """A version id the database can hold (ids are 64-bit): anything else names no version."""
    if not isinstance(version_id, int) or isinstance(version_id, bool) \
            or not 1 <= version_id < 2**63:
        raise BeaconError(f"no model version {version_id}")
    return version_id


def show(version_id: int) -> VersionInfo:
    meta = store.get_version(_checked_id(version_id))
    if meta is None:
        raise BeaconError(f"no model version {version_id}")
    return _info(meta)


@state_changing("activate_model", needs="administer")
def activate(version_id: int, *, actor: Actor) -> VersionInfo:
    """Make a version the active one of its scope: rollback is activating an older version.
    Every process serves it from its next request on. The data's state goes with it: a rollback
    holds smart retraining off only while the data stays as it was (beacon.training.decide)."""
    from beacon.fingerprint import training_fingerprint

    try:
        meta = store.activate(_checked_id(version_id), audit=audit_row(),
                              data_digest=training_fingerprint().data_digest)
    except store.VersionNotFound as error:
        raise BeaconError(str(error)) from error
    except (store.VersionFailed, store.VersionWouldServeNobody) as error:
        raise BeaconError(str(error)) from error
    log.info("model version %s activated by %s", meta.id, actor.name)
    return _info(meta)


@dataclass(frozen=True)
class CleanupResult:
    dry_run: bool
    keep_days: float
    keep_newest: int
    deleted: list[VersionInfo]

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "keep_days": self.keep_days,
                "keep_newest": self.keep_newest, "count": len(self.deleted),
                "deleted": [v.to_dict(full=False) for v in self.deleted]}


def cleanup_candidates(keep_days: float, keep_newest: int = 3) -> list[VersionInfo]:
    """What `cleanup` would delete with these settings (reads only)."""
    if not isinstance(keep_days, (int, float)) or not math.isfinite(keep_days) \
            or not 0 <= keep_days <= MAX_KEEP_DAYS:
        raise BeaconError(f"--keep-days must be a number from 0 to {MAX_KEEP_DAYS}, "
                          f"got {keep_days!r}")
    if keep_newest < 0:
        raise BeaconError(f"keep_newest must be >= 0, got {keep_newest!r}")
    return [_info(m) for m in
            store.cleanup_candidates(keep_days=keep_days, keep_newest=keep_newest)]


@state_changing("cleanup_models", needs="administer")
def cleanup(keep_days: float, keep_newest: int = 3, dry_run: bool = False, *,
            actor: Actor) -> CleanupResult:
    """Delete versions older than keep_days, never an active one, never the `keep_newest`
    newest global versions nor the `keep_newest` newest of each user. `dry_run` only lists."""
    candidates = cleanup_candidates(keep_days, keep_newest)
    if not dry_run and candidates:
        # what is deleted is decided again under the activation lock: a version activated
        # since the preview stays (the audit row names what went)
        gone = set(store.delete_versions([m.id for m in candidates], audit=audit_row()))
        candidates = [m for m in candidates if m.id in gone]
        log.info("cleanup by %s deleted %d model versions", actor.name, len(candidates))
    return CleanupResult(dry_run=dry_run, keep_days=keep_days, keep_newest=keep_newest,
                         deleted=candidates)


# --- the serving cache ----------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedModel:
    version_id: int
    model: Any  # beacon.model.HybridModel
    created_at: datetime
    fingerprint: str | None
    hyperparameters: dict
    counts: dict
    metrics: dict
    activated_at: datetime | None
    is_active: bool  # False while a fallback serves because the active blob failed to load


#: a version this process could not load is tried again after this long (the cause may have
#: been a dropped connection, not the blob)
LOAD_RETRY_SECONDS = 60.0

_cache_lock = threading.Lock()
_loaded: dict[int, LoadedModel] = {}
_load_errors: dict[int, str] = {}
_load_failed_at: dict[int, float] = {}


def _read_model(version_id: int):
    from beacon.model import HybridModel

    blob = store.get_blob(version_id)
    if blob is None:
        raise ValueError("the version has no stored weights")
    return HybridModel.from_bytes(blob)


def _load(meta: store.VersionMeta, is_active: bool) -> LoadedModel | None:
    """Deserialize one version, or remember why not (warned once per process and version; the
    version's status is not touched: this is a read). Caller holds the lock."""
    try:
        model = _read_model(meta.id)
    except Exception as error:  # noqa: BLE001 - any unreadable blob is reported, never raised
        why = f"blob of model version {meta.id} failed to load: {type(error).__name__}: {error}"
        if meta.id not in _load_errors:
            log.warning("%s; serving another version (`python -m beacon models verify %s` "
                        "checks it)", why.splitlines()[0], meta.id)
        _load_errors[meta.id] = why
        _load_failed_at[meta.id] = time.monotonic()
        return None
    _load_errors.pop(meta.id, None)
    _load_failed_at.pop(meta.id, None)
    return LoadedModel(
        version_id=meta.id, model=model, created_at=meta.created_at,
        fingerprint=meta.fingerprint, hyperparameters=meta.hyperparameters, counts=meta.counts,
        metrics=meta.metrics, activated_at=meta.activated_at, is_active=is_active,
    )


def active_global() -> LoadedModel | None:
    """The global model to serve: the active version, loaded once per process per version id.

    Cost per call when the active version is already in memory: one indexed query.
    """
    return serving_model(store.active_global_id())


def serving_model(active_id: int | None) -> LoadedModel | None:
    """active_global() for a caller that read the active version's id itself (recommend reads
    it with the user, in the same statement): no query while that version is in memory."""
    if active_id is not None:
        hit = _loaded.get(active_id)
        if hit is not None and hit.is_active:
            return hit
    with _cache_lock:
        if active_id is not None:
            hit = _loaded.get(active_id)
            if hit is not None and hit.is_active:
                return hit
        # The active version (if any) first, then the newest good inactive ones.
        retry_before = time.monotonic() - LOAD_RETRY_SECONDS
        skip = [v for v, at in _load_failed_at.items() if at > retry_before]
        for meta in store.serving_candidates(exclude=skip):
            is_active = meta.status == "active"
            hit = _loaded.get(meta.id)
            if hit is None or hit.is_active != is_active:
                hit = _load(meta, is_active) if hit is None else \
                    dataclasses.replace(hit, is_active=is_active)
            if hit is not None:
                if not is_active and warn_once(("fallback", meta.id)):
                    log.warning("serving model version %s: no loadable active global version",
                                meta.id)
                _loaded.clear()
                _loaded[meta.id] = hit
                return hit
        _loaded.clear()
        return None


def load_errors() -> dict[int, str]:
    """Versions this process could not load, with why (for the console)."""
    return dict(_load_errors)


_warned: set = set()


def warn_once(key) -> bool:
    """True the first time `key` is seen in this process (a refresh of 1,000 users warns once)."""
    if key in _warned:
        return False
    _warned.add(key)
    return True


def clear_cache() -> None:
    with _cache_lock:
        _loaded.clear()
        _load_errors.clear()
        _load_failed_at.clear()
        _warned.clear()


@dataclass(frozen=True)
class VerifyResult:
    version_id: int
    ok: bool
    status: str  # the version's status afterwards
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _database_error(error: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(error, DBAPIError)


@state_changing("verify_model", needs="administer")
def verify(version_id: int, *, actor: Actor) -> VerifyResult:
    """Load a version's weights on purpose. A blob that cannot be read marks the version failed
    (it will never serve or be activated); one that loads lifts an earlier failed mark. A
    database that cannot be reached raises and marks nothing."""
    meta = show(version_id)
    try:
        if meta.scope == "user":
            blob = store.get_blob(meta.id)
            decode_personal_vector(blob or b"")
        else:
            _read_model(meta.id)
    except Exception as error:  # noqa: BLE001 - judged below
        if _database_error(error):
            raise
        why = f"verify by {actor.name}: {type(error).__name__}: {error}"
        store.mark_failed(meta.id, why)
        return VerifyResult(meta.id, False, "failed", why)
    status = meta.status
    if status == "failed":
        store.clear_failed(meta.id)
        status = "inactive"
    with _cache_lock:
        _load_errors.pop(meta.id, None)
        _load_failed_at.pop(meta.id, None)
    return VerifyResult(meta.id, True, status, "the weights load")


@state_changing("clear_failed_model", needs="administer")
def clear_failed(version_id: int, *, actor: Actor) -> VersionInfo:
    """An admin lifts a version's failed mark (it becomes inactive and may be activated)."""
    meta = show(version_id)
    if meta.status != "failed":
        raise BeaconError(f"model version {meta.id} is {meta.status}, not failed")
    store.clear_failed(meta.id)
    log.info("failed mark of model version %s cleared by %s", meta.id, actor.name)
    return show(meta.id)


_by_version_lock = threading.Lock()
_by_version: "OrderedDict[int, Any]" = OrderedDict()
_BY_VERSION_KEEP = 4


def load_version_model(version_id: int):
    """Any version's HybridModel (for comparisons, not serving), deserialized once per process;
    the last few are kept. Raises BeaconError for a version with no stored weights."""
    with _by_version_lock:
        if version_id in _by_version:
            _by_version.move_to_end(version_id)
            return _by_version[version_id]
    from beacon.model import HybridModel

    blob = store.get_blob(version_id)
    if blob is None:
        raise BeaconError(f"model version {version_id} has no stored weights")
    model = HybridModel.from_bytes(blob)
    with _by_version_lock:
        _by_version[version_id] = model
        while len(_by_version) > _BY_VERSION_KEEP:
            _by_version.popitem(last=False)
    return model


# --- personal (fold-in) vectors --------------------------------------------------------------

_PV_MAGIC = b"BPV1"


@dataclass(frozen=True)
class PersonalVector:
    vector: np.ndarray
    bias: float
    version_id: int
    created_at: datetime
    base_version_id: int


def encode_personal_vector(vector: np.ndarray, bias: float) -> bytes:
    """A user-scope version's blob: magic, dim, bias, then the float32 vector."""
    vec = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).ravel())
    return _PV_MAGIC + struct.pack("<If", vec.size, float(bias)) + vec.tobytes()


def decode_personal_vector(blob: bytes) -> tuple[np.ndarray, float]:
    if blob[:4] != _PV_MAGIC:
        raise ValueError("not a personal vector blob")
    size, bias = struct.unpack("<If", blob[4:12])
    vec = np.frombuffer(blob, dtype=np.float32, count=size, offset=12).copy()
    return vec, float(bias)


def personal_vector(user_id: int, base_version_id: int) -> PersonalVector | None:
    """The user's active fold-in vector built on `base_version_id`, or None (no fold-in yet,
    or one built on another global version, which would not fit the served model)."""
    row = store.personal_vector_row(int(user_id), int(base_version_id))
    if row is None:
        return None
    return personal_from_row(*row, base_version_id=base_version_id)


def personal_from_row(version_id: int, created_at: datetime, blob: bytes,
                      base_version_id: int) -> PersonalVector | None:
    """A stored user-scope version's vector, or None (logged) when its blob is unreadable."""
    try:
        vector, bias = decode_personal_vector(blob)
    except (ValueError, struct.error) as error:
        log.error("personal vector of version %s is unreadable: %s", version_id, error)
        return None
    return PersonalVector(vector=vector, bias=bias, version_id=version_id,
                          created_at=created_at, base_version_id=int(base_version_id))


# --- freshness for the console ----------------------------------------------------------------

def fingerprint_state(config=None, digest: str | None = None
                      ) -> Literal["current", "stale", "no-model"]:
    """"no-model" without an active global version; "stale" when the data (or the settings)
    changed since it was trained, or it is older than the maximum age; else "current".
    (A rollback shows as stale: it is, even while smart retraining respects it.) `digest`:
    the data's fingerprint when the caller computed it already (it costs a few queries)."""
    from datetime import timedelta

    from beacon.fingerprint import config_or_default, training_fingerprint
    from data_access.schema import utcnow

    config = config_or_default(config)
    active = store.active_version("global")
    if active is None:
        return "no-model"
    if active.fingerprint != (digest or training_fingerprint(config).digest):
        return "stale"
    if utcnow() - active.created_at > timedelta(hours=config.max_age_hours):
        return "stale"
    return "current"
