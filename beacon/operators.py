"""Operators: who may use the console, with which role, and the first administrator.

Passwords are hashed with bcrypt (streamlit-authenticator, which keeps the console's session
cookie, checks bcrypt hashes too); a password is never stored, logged or audited in clear.
Every change is an action (`@state_changing`, needs "administer") and lands in the audit trail.
"""
from __future__ import annotations

import re
import secrets

import bcrypt

from beacon.actions import ROLES, SYSTEM, Actor, audit_row, state_changing
from beacon.errors import BeaconError
from data_access import operators as store
from data_access.audit import AuditRow
from data_access.operators import OperatorInfo

PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_BYTES = 72  # bcrypt reads no further: refuse rather than silently truncate
#: the first administrator the embedded default creates on its first start
FIRST_ADMIN_EMAIL = "admin@localhost"
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,200}@[^@\s\x00-\x1f]{1,200}$")


def check_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email):
        raise BeaconError(f"operator email {email!r} is not an address like name@example.org")
    return email


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BeaconError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    return role


def hash_password(password: str) -> str:
    if len(password) < PASSWORD_MIN_CHARS:
        raise BeaconError(f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    if len(password.encode()) > PASSWORD_MAX_BYTES:
        raise BeaconError(f"a password may have at most {PASSWORD_MAX_BYTES} bytes (bcrypt)")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def check_password(password: str, hashed: str) -> bool:
    encoded = password.encode()
    if len(encoded) > PASSWORD_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(encoded, hashed.encode())
    except ValueError:  # not a bcrypt hash
        return False


def new_password() -> str:
    """A random password shown once (24 URL-safe characters, 144 bits)."""
    return secrets.token_urlsafe(18)


def list_operators() -> list[OperatorInfo]:
    return store.list_all()


def get_operator(email: str) -> OperatorInfo | None:
    return store.get(email)


def _require(email: str) -> OperatorInfo:
    found = store.get(email)
    if found is None:
        raise BeaconError(f"no operator {email.strip().lower()!r} "
                          "(python -m beacon operators list shows them)")
    return found


@state_changing("operators_add", needs="administer")
def add_operator(email: str, role: str = "viewer", name: str | None = None,
                 password: str | None = None, sso_only: bool = False, *,
                 actor: Actor) -> tuple[OperatorInfo, str | None]:
    """Add an operator. Without `password` (and not `sso_only`) a random one is made and
    returned, to be handed over once; an `sso_only` operator signs in only through single
    sign-on. Returns (the operator, the password made or None)."""
    email, role = check_email(email), check_role(role)
    made = None
    if sso_only:
        if password:
            raise BeaconError("an operator who signs in through single sign-on has no password")
        hashed = None
    else:
        made = None if password else new_password()
        hashed = hash_password(password or made)
    try:
        info = store.add(email, role, name, hashed, audit=audit_row())
    except store.OperatorExists as error:
        raise BeaconError(str(error)) from None
    return info, made


def _keep_an_admin(email: str, what: str) -> None:
    current = _require(email)
    if current.role == "admin" and not current.disabled and store.count_admins() <= 1:
        raise BeaconError(f"{email} is the last enabled administrator: {what} would leave "
                          "nobody able to administer the console (add another admin first)")


@state_changing("operators_set_role", needs="administer")
def set_role(email: str, role: str, *, actor: Actor) -> OperatorInfo:
    email, role = check_email(email), check_role(role)
    if role != "admin":
        _keep_an_admin(email, f"making them {role}")
    try:
        return store.change(email, role=role, audit=audit_row())
    except store.OperatorNotFound as error:
        raise BeaconError(str(error)) from None


@state_changing("operators_disable", needs="administer")
def set_disabled(email: str, disabled: bool = True, *, actor: Actor) -> OperatorInfo:
    """Disable (or, with disabled=False, enable again) an operator: a disabled operator's
    sessions end at their next page run and they cannot sign in."""
    email = check_email(email)
    if disabled:
        _keep_an_admin(email, "disabling them")
    try:
        return store.change(email, disabled=bool(disabled), audit=audit_row())
    except store.OperatorNotFound as error:
        raise BeaconError(str(error)) from None


@state_changing("operators_reset_password", needs="administer")
def reset_password(email: str, password: str | None = None, allow_password: bool = False, *,
                   actor: Actor) -> str:
    """Set a new password (a random one when none is given) and return it, to hand over once.
    An operator who signs in only through single sign-on gets one only with `allow_password`:
    a local password would bypass the identity provider (its MFA, its offboarding)."""
    email = check_email(email)
    if not _require(email).has_password and not allow_password:
        raise BeaconError(f"{email} signs in only through single sign-on; giving them a password "
                          "lets them sign in around the identity provider (pass "
                          "--allow-password to do it anyway)")
    made = password or new_password()
    try:
        store.change(email, password_hash=hash_password(made), audit=audit_row())
    except store.OperatorNotFound as error:
        raise BeaconError(str(error)) from None
    return made


def ensure_first_admin() -> str | None:
    """When no operator exists at all, create FIRST_ADMIN_EMAIL as admin with a random password
    and return that password (the caller prints it to the server's terminal, once). None when
    an operator exists already. Only the embedded default calls this on its own."""
    if store.count():
        return None
    password = new_password()
    created = store.add_first(
        FIRST_ADMIN_EMAIL, "admin", hash_password(password),
        AuditRow(who=SYSTEM.name, kind=SYSTEM.kind, action="operators_add", outcome="ok",
                 params={"email": FIRST_ADMIN_EMAIL, "role": "admin", "first": True}))
    return password if created else None
