"""Signing operators in: password check with throttling and lockout, single sign-on mapping,
the settings of a console session. Every try is audited (action "sign_in").

Throttling, per account and per client address, counted over the lock window:
- after SLOW_AFTER failures each further try waits (1 s, 2 s, 4 s, at most MAX_DELAY);
- after MAX_FAILURES failures for one account (or CLIENT_MAX_FAILURES from one client) every
  try is refused without looking at the password until LOCK_MINUTES after the last failure.
A successful sign-in clears the account's count. Settings: BEACON_SIGNIN_* variables below.
"""
from __future__ import annotations

import functools
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import bcrypt

from beacon.actions import Actor
from beacon.errors import BeaconError
from beacon.operators import check_password
from data_access import operators as store
from data_access.audit import AuditRow

COOKIE_KEY_MIN_BYTES = 32


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of a random secret: an unknown account costs the same bcrypt check as a real one."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt()).decode()


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BeaconError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise BeaconError(f"{name} must be >= 0, got {raw}")
    return value


@dataclass(frozen=True)
class Policy:
    max_failures: int = 5
    client_max_failures: int = 20
    lock_minutes: float = 15.0
    slow_after: int = 2
    max_delay: float = 4.0

    @classmethod
    def from_env(cls) -> "Policy":
        return cls(max_failures=int(_number("BEACON_SIGNIN_MAX_FAILURES", 5)),
                   client_max_failures=int(_number("BEACON_SIGNIN_CLIENT_MAX_FAILURES", 20)),
                   lock_minutes=_number("BEACON_SIGNIN_LOCK_MINUTES", 15.0),
                   slow_after=int(_number("BEACON_SIGNIN_SLOW_AFTER", 2)),
                   max_delay=_number("BEACON_SIGNIN_MAX_DELAY_SECONDS", 4.0))

    def delay(self, failures: int) -> float:
        if failures < self.slow_after:
            return 0.0
        return min(self.max_delay, float(2 ** (failures - self.slow_after)))


def idle_timeout() -> timedelta:
    """How long a console session may sit idle before it ends (BEACON_IDLE_TIMEOUT_HOURS, 12)."""
    hours = _number("BEACON_IDLE_TIMEOUT_HOURS", 12.0)
    if hours == 0:
        raise BeaconError("BEACON_IDLE_TIMEOUT_HOURS must be > 0")
    return timedelta(hours=hours)


class SignInRefused(BeaconError):
    """Wrong credentials, or too many failures: the message is safe to show."""


def _row(email: str, outcome: str, error: str | None, client: str | None,
         method: str = "password") -> AuditRow:
    params = {"method": method}
    if client:
        params["client"] = client[:120]
    return AuditRow(who=email[:320] or "(empty)", kind="operator", action="sign_in",
                    outcome=outcome, params=params, error=error)


def actor_for(email: str) -> Actor | None:
    """The actor an enabled operator acts as (None: unknown or disabled)."""
    found = store.get(email)
    if found is None or found.disabled:
        return None
    return Actor(found.email, kind="operator", role=found.role)


def sign_in(email: str, password: str, client: str | None = None,
            policy: Policy | None = None, sleep: Callable[[float], None] = time.sleep,
            now: datetime | None = None) -> Actor:
    """Check a password sign-in; the actor on success, SignInRefused otherwise."""
    policy = policy or Policy.from_env()
    email = (email or "").strip().lower()[:320]
    now = now or datetime.now(timezone.utc)
    lock = timedelta(minutes=policy.lock_minutes)
    seen = store.failures(email, client, since=now - lock)
    for count, last, limit, what in (
            (seen.account, seen.account_last, policy.max_failures, "this account"),
            (seen.client, seen.client_last, policy.client_max_failures, "this address")):
        if limit and count >= limit and last is not None and last + lock > now:
            minutes = max(1, round((last + lock - now).total_seconds() / 60))
            message = (f"too many failed sign-ins for {what}: locked, try again in "
                       f"{minutes} min")
            store.record_attempt(email, client, False, _row(email, "refused", message, client))
            raise SignInRefused(message)
    wait = policy.delay(max(seen.account, seen.client))
    if wait:
        sleep(wait)
    hashed = store.password_hash(email) if email else None
    matches = check_password(password or "", hashed or _dummy_hash())
    if hashed is None or not matches:
        message = "wrong email or password"
        store.record_attempt(email, client, False, _row(email, "refused", message, client))
        raise SignInRefused(message)
    actor = actor_for(email)
    if actor is None:  # disabled between the two reads
        store.record_attempt(email, client, False, _row(email, "refused", "disabled", client))
        raise SignInRefused("wrong email or password")
    store.record_attempt(email, client, True, _row(email, "ok", None, client))
    return actor


def single_sign_on(claims: dict, client: str | None = None) -> Actor:
    """Map an identity from the OIDC provider to an operator by email. An unknown, disabled or
    unverified email gets no access (not even viewer). Audited either way."""
    email = str(claims.get("email") or "").strip().lower()
    refusal = None
    if not email:
        refusal = "the identity provider sent no email"
    elif claims.get("email_verified") is False:
        refusal = f"the identity provider has not verified {email}"
    actor = actor_for(email) if refusal is None else None
    if refusal is None and actor is None:
        refusal = f"{email} is not an enabled Beacon operator: ask an administrator to add it"
    if refusal is not None:
        store.record_attempt(email or "(none)", client, False,
                             _row(email or "(none)", "refused", refusal, client, "sso"))
        raise SignInRefused(refusal)
    store.record_attempt(email, client, True, _row(email, "ok", None, client, "sso"))
    return actor


def record_sign_out(actor: Actor, reason: str = "signed out") -> None:
    from beacon.actions import record

    record(actor, "sign_out", "ok", {"reason": reason})


def cookie_key() -> str:
    """The key that signs session cookies: BEACON_COOKIE_KEY when set (at least 32 bytes),
    otherwise a random key made once and kept in the database (console_secrets), so every
    console replica on the same database accepts the same cookies."""
    configured = os.environ.get("BEACON_COOKIE_KEY", "")
    if configured:
        if len(configured.encode()) < COOKIE_KEY_MIN_BYTES:
            raise BeaconError(f"BEACON_COOKIE_KEY must have at least {COOKIE_KEY_MIN_BYTES} "
                              "bytes")
        return configured
    return store.secret("cookie_key", lambda: secrets.token_urlsafe(48))
