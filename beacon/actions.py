"""The one door every state-changing action goes through: who may do it, and the audit trail.

A service function that changes state is declared with `@state_changing(action, needs)` and
takes a required keyword `actor: Actor`. The wrapper checks that the actor holds the permission
`needs`, runs the function, and writes an audit row (who, kind, action, parameters, outcome
ok / refused / failed, error text, when). A refused call is audited, then raises
PermissionDenied. Pages, the CLI, the HTTP API and tests all pass the actor they act for.

Same transaction: a service whose change commits in one transaction calls `audit_row()` and
writes that row inside it (data_access/audit.insert), so the change and its record commit
together. Otherwise (several transactions, or none) the wrapper writes the row right after.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import os
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Callable, TypeVar

from beacon.errors import BeaconError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable)

ROLES = ("viewer", "operator", "admin")
PERMISSIONS = ("operate", "administer", "ingest")
ACTOR_KINDS = ("operator", "cli", "api_key", "system")
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(),
    "operator": frozenset({"operate"}),
    "admin": frozenset({"operate", "administer", "ingest"}),
}
#: API key scopes: "recommend" only reads, so it grants no state-changing permission
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "recommend": frozenset(),
    "ingest": frozenset({"ingest"}),
    "admin": frozenset({"operate", "administer"}),
}

#: action name -> the service function that performs it (the console and tests list them)
REGISTRY: dict[str, Callable] = {}
#: action name -> the permission it needs
NEEDS: dict[str, str] = {}


@dataclass(frozen=True)
class Actor:
    """Who acts. `name` is what the audit shows: "alice@example.org", "cli:root",
    "api:<key name>", "system:first-start"."""

    name: str
    kind: str = "operator"
    role: str | None = None  # operators, the CLI and the system
    scopes: frozenset[str] = frozenset()  # API keys
    # an API key's public start ("bk_0123456789"): a revoked key's name may pass to another
    # key, so the audit names which of the two acted
    key: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an actor needs a name")
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"unknown actor kind {self.kind!r} (expected one of {ACTOR_KINDS})")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r} (expected one of {', '.join(ROLES)})")
        unknown = set(self.scopes) - set(SCOPE_PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown API key scope(s) {sorted(unknown)}")
        object.__setattr__(self, "scopes", frozenset(self.scopes))

    def permissions(self) -> frozenset[str]:
        if self.kind == "api_key":
            granted: set[str] = set()
            for scope in self.scopes:
                granted |= SCOPE_PERMISSIONS[scope]
            return frozenset(granted)
        return ROLE_PERMISSIONS.get(self.role or "", frozenset())

    def may(self, permission: str) -> bool:
        return permission in self.permissions()

    @property
    def label(self) -> str:
        """The actor with what it holds: 'alice@example.org (operator)'."""
        held = ", ".join(sorted(self.scopes)) if self.kind == "api_key" else (self.role or "none")
        return f"{self.name} ({held})"


def cli_actor() -> Actor:
    """The command line acts for whoever holds the database URL: `cli:<os user>`, admin. The
    user is the process's own (its effective uid), not $LOGNAME or $USER, which the caller
    sets at will: the audit must say which account ran the command."""
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # no pwd (Windows), or no passwd entry (some containers)
        user = f"uid{os.geteuid()}"  # not getpass: it reads $LOGNAME first
    return Actor(f"cli:{user}", kind="cli", role="admin")


#: the console's first start on the embedded default (demo data and the first training)
SYSTEM = Actor("system:first-start", kind="system", role="admin")


def _granted_by(permission: str) -> str:
    roles = [r for r in ROLES if permission in ROLE_PERMISSIONS[r]]
    scopes = [s for s in SCOPE_PERMISSIONS if permission in SCOPE_PERMISSIONS[s]]
    return f"role {' or '.join(roles)}; API key scope {' or '.join(scopes) or 'none'}"


class PermissionDenied(BeaconError):
    """An actor asked for an action its role (or key scopes) does not allow."""

    def __init__(self, actor: Actor, action: str, needs: str, why: str | None = None):
        holds = (f"API key scopes {', '.join(sorted(actor.scopes)) or 'none'}"
                 if actor.kind == "api_key" else f"role {actor.role or 'none'}")
        super().__init__(f"{actor.name} may not {action}: " + (why or (
            f"it needs the {needs!r} permission ({_granted_by(needs)}), and {actor.name} has "
            f"{holds}")))
        self.actor = actor
        self.action = action
        self.needs = needs


# --- the audit row of the running action ----------------------------------------------------

@dataclass
class _Pending:
    actor: Actor
    action: str
    params: dict[str, Any]
    written: bool = False


_pending: ContextVar[_Pending | None] = ContextVar("beacon_pending_audit", default=None)


def audit_row(**outcome: Any):
    """The 'ok' audit row of the action running in this context, for the service to insert in
    the transaction that makes its change (then the wrapper writes none); `outcome` adds what
    the change made (e.g. model_version). None outside an action, or once taken."""
    from data_access.audit import AuditRow

    pending = _pending.get()
    if pending is None or pending.written:
        return None
    pending.written = True
    params = {**pending.params, **{k: _plain(v) for k, v in outcome.items()}}
    return AuditRow(who=pending.actor.name, kind=pending.actor.kind, action=pending.action,
                    outcome="ok", params=_with_key(pending.actor, params))


def record(actor: Actor, action: str, outcome: str, params: dict[str, Any] | None = None,
           error: str | None = None) -> None:
    """Write an audit row on its own (sign-ins, and actions without one transaction)."""
    from data_access.audit import AuditRow, record as write

    try:
        write(AuditRow(who=actor.name, kind=actor.kind, action=action, outcome=outcome,
                       params=_with_key(actor, params or {}), error=error))
    except Exception:  # noqa: BLE001 - the action's own outcome must not be hidden by this
        # An action that failed or was refused already reports why, and its audit row usually
        # fails for the same reason (database busy, read-only, gone): one line for the person,
        # the audit failure in the log. An action that succeeded without its row is a warning.
        level = logging.WARNING if outcome == "ok" else logging.INFO
        log.log(level, "could not write the audit row for %s by %s (%s)", action, actor.name,
                outcome, exc_info=True)


def _with_key(actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "api_key": actor.key} if actor.key else params


# --- parameters as JSON ---------------------------------------------------------------------

#: never in the audit trail: who acts is recorded apart, callbacks mean nothing, secrets stay out
_NOT_RECORDED = ("actor", "progress", "progress_callback", "password")


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    return repr(value)


def _params(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments the caller gave (not the defaults), JSON-safe; callbacks left out."""
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        bound = None
    given = dict(bound.arguments) if bound is not None else {**dict(enumerate(args)), **kwargs}
    out = {}
    for name, value in given.items():
        if str(name) in _NOT_RECORDED or callable(value):
            continue
        out[str(name)] = _plain(value)
    json.dumps(out)  # fails loudly here rather than inside the database driver
    return out


def _result_failure(result: Any) -> str | None:
    """Services that report failure as a result (a training's `failed` or `busy`)."""
    status = getattr(result, "status", None)
    if status in ("failed", "busy", "cancelled"):
        return f"{status}: {getattr(result, 'reason', '')}".rstrip(": ")
    return None


# --- the decorator and the door ----------------------------------------------------------------

def state_changing(action: str, needs: str) -> Callable[[F], F]:
    """Declare `function` as the action `action`, allowed to actors holding `needs`."""
    if needs not in PERMISSIONS:
        raise ValueError(f"unknown permission {needs!r} (expected one of {PERMISSIONS})")

    def decorate(function: F) -> F:
        if action in REGISTRY:
            raise RuntimeError(f"action {action!r} is declared twice")
        signature = inspect.signature(function)
        if "actor" not in signature.parameters or \
                signature.parameters["actor"].kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{function.__qualname__} must take a keyword-only `actor`")

        @functools.wraps(function)
        def wrapper(*args, actor: Actor | None = None, **kwargs):
            if not isinstance(actor, Actor):
                raise TypeError(f"action {action!r} needs actor=Actor(...), got {actor!r}")
            params = _params(signature, args, kwargs)
            actor, gone = _as_stored_now(actor)
            if gone or not actor.may(needs):
                denied = PermissionDenied(actor, action, needs, gone)
                record(actor, action, "refused", params, str(denied))
                raise denied
            return _audited(actor, action, params,
                            lambda: function(*args, actor=actor, **kwargs))

        REGISTRY[action] = wrapper
        NEEDS[action] = needs
        return wrapper  # type: ignore[return-value]

    return decorate


def _as_stored_now(actor: Actor) -> tuple[Actor, str | None]:
    """An operator acts with the role stored now, not the one a console session signed in
    with: a page part that reruns on its own (a fragment) never passes the sign-in gate again,
    and an admin's demotion or disabling must stop it at once. Returns the actor to check and,
    for a disabled operator, why it may do nothing. An operator with no stored row (an
    in-process caller's own Actor) acts as given."""
    if actor.kind != "operator":
        return actor, None
    from data_access import operators

    stored = operators.get(actor.name)
    if stored is None:
        return actor, None
    if stored.disabled:
        return actor, "this operator was disabled"
    if stored.role != actor.role:
        return dataclasses.replace(actor, role=stored.role), None
    return actor, None


def _audited(actor: Actor, action: str, params: dict[str, Any], work: Callable[[], Any],
             outcome_params: bool = False) -> Any:
    """Run `work` as `actor`'s `action` and audit its outcome, unless `work` wrote the row in
    its own transaction (audit_row). `outcome_params`: the row also names the result's status
    and model version (for work whose row is written after the fact)."""
    pending = _Pending(actor, action, params)
    token = _pending.set(pending)
    try:
        result = work()
    except BaseException as error:
        why = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else \
            f"{type(error).__name__}: {error}"
        record(actor, action, "failed", params, why)
        raise
    finally:
        _pending.reset(token)
    failure = _result_failure(result)
    # a row taken for the change's own transaction (audit_row) is lost when that transaction
    # fails and the service reports the failure as its result: write the failure then
    if not pending.written or failure:
        if outcome_params and getattr(result, "status", None) is not None:
            params = {**params, "result": result.status,
                      "model_version": getattr(result, "model_version", None)}
        record(actor, action, "failed" if failure else "ok", params, failure)
    return result


def finish_in_background(actor: Actor, action: str, params: dict[str, Any],
                         work: Callable[[], Any]) -> Any:
    """The audited outcome of work that an action queued and a worker thread carries out (a
    training the console started): `action` with `actor` behind it, like a direct call; the
    permission was checked when the work was queued."""
    return _audited(actor, action, params, work, outcome_params=True)


def perform(action: str, *, actor: Actor, **params: Any) -> Any:
    """Call the registered action `action` as `actor`."""
    _load_services()
    function = REGISTRY.get(action)
    if function is None:
        raise BeaconError(f"unknown action {action!r} (known: {', '.join(sorted(REGISTRY))})")
    return function(actor=actor, **params)


def require(actor: Actor | None, permission: str, what: str) -> None:
    """For reads that only some may make (the audit trail): raise PermissionDenied otherwise."""
    if actor is None or not actor.may(permission):
        raise PermissionDenied(actor or Actor("anonymous", kind="system"), what, permission)


def allowed(actor: Actor | None, action: str) -> bool:
    """Whether `actor` may perform `action` (pages use it to offer only what is allowed)."""
    _load_services()
    return actor is not None and action in NEEDS and actor.may(NEEDS[action])


#: modules that declare actions; imported on demand so the registry is complete
SERVICE_MODULES = ("beacon.training", "beacon.versions", "beacon.cache", "beacon.demo",
                   "beacon.importer", "beacon.operators", "beacon.api_keys", "beacon.ingest",
                   "beacon.personal", "beacon.refresh", "beacon.training_settings")


def _load_services() -> None:
    import importlib

    for name in SERVICE_MODULES:
        importlib.import_module(name)
