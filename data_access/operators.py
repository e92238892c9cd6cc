"""Operators (people who use the console), their sign-in attempts, and console secrets.

Password hashes are read only by `password_hash` (for checking a sign-in); every other read
returns OperatorInfo, which carries no hash.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from data_access import audit as audit_log
from data_access.audit import AuditRow
from data_access.db import session_scope
from data_access.schema import ConsoleSecret, Operator, SignInAttempt, utcnow


class OperatorExists(ValueError):
    pass


class OperatorNotFound(LookupError):
    pass


@dataclass(frozen=True)
class OperatorInfo:
    id: int
    email: str
    name: str | None
    role: str
    disabled: bool
    has_password: bool
    created_at: datetime
    last_sign_in_at: datetime | None

    def to_dict(self) -> dict:
        return {"email": self.email, "name": self.name, "role": self.role,
                "disabled": self.disabled, "has_password": self.has_password,
                "created_at": self.created_at.isoformat(),
                "last_sign_in_at": self.last_sign_in_at.isoformat()
                if self.last_sign_in_at else None}


def _info(row: Operator) -> OperatorInfo:
    return OperatorInfo(id=row.id, email=row.email, name=row.name, role=row.role,
                        disabled=bool(row.disabled), has_password=bool(row.password_hash),
                        created_at=row.created_at, last_sign_in_at=row.last_sign_in_at)


def _normal(email: str) -> str:
    return email.strip().lower()


def get(email: str) -> OperatorInfo | None:
    with session_scope() as session:
        row = session.scalars(select(Operator).where(Operator.email == _normal(email))).first()
        return _info(row) if row is not None else None


def password_hash(email: str) -> str | None:
    """The stored hash of an enabled operator (None: unknown, disabled or no password)."""
    with session_scope() as session:
        return session.scalars(select(Operator.password_hash).where(
            Operator.email == _normal(email), Operator.disabled.is_(False))).first()


def list_all() -> list[OperatorInfo]:
    with session_scope() as session:
        return [_info(r) for r in session.scalars(select(Operator).order_by(Operator.email))]


def count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Operator)) or 0)


def add(email: str, role: str, name: str | None, password_hash: str | None,
        audit: AuditRow | None = None) -> OperatorInfo:
    now = utcnow()
    try:
        with session_scope() as session:
            session.execute(insert(Operator).values(
                email=_normal(email), name=name, role=role, password_hash=password_hash,
                disabled=False, created_at=now, updated_at=now))
            if audit is not None:
                audit_log.insert(session, audit)
    except IntegrityError as error:
        raise OperatorExists(f"an operator {_normal(email)!r} already exists") from error
    found = get(email)
    assert found is not None
    return found


def add_first(email: str, role: str, password_hash: str, audit: AuditRow) -> bool:
    """Insert this operator only if there is no operator at all; False when one exists (another
    process created the first one)."""
    now = utcnow()
    try:
        with session_scope() as session:
            if session.scalar(select(func.count()).select_from(Operator)):
                return False
            session.execute(insert(Operator).values(
                email=_normal(email), name="First administrator", role=role,
                password_hash=password_hash, disabled=False, created_at=now, updated_at=now))
            audit_log.insert(session, audit)
    except IntegrityError:
        return False
    return True


def change(email: str, audit: AuditRow | None = None, **values) -> OperatorInfo:
    """Set columns (role, disabled, password_hash, name) of one operator."""
    allowed = {"role", "disabled", "password_hash", "name"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")
    with session_scope() as session:
        result = session.execute(update(Operator).where(Operator.email == _normal(email))
                                 .values(**values, updated_at=utcnow()))
        if not result.rowcount:
            raise OperatorNotFound(f"no operator {_normal(email)!r}")
        if audit is not None:
            audit_log.insert(session, audit)
    found = get(email)
    assert found is not None
    return found


def count_admins(enabled_only: bool = True) -> int:
    query = select(func.count()).select_from(Operator).where(Operator.role == "admin")
    if enabled_only:
        query = query.where(Operator.disabled.is_(False))
    with session_scope() as session:
        return int(session.scalar(query) or 0)


# --- sign-in attempts -------------------------------------------------------------------------

@dataclass(frozen=True)
class Failures:
    """Failed attempts since `since` that came after the last success (per account), and from
    one client."""

    account: int
    account_last: datetime | None
    client: int
    client_last: datetime | None


def failures(email: str, client: str | None, since: datetime) -> Failures:
    email = _normal(email)
    with session_scope() as session:
        last_ok = session.scalar(select(func.max(SignInAttempt.at)).where(
            SignInAttempt.email == email, SignInAttempt.succeeded.is_(True)))
        start = max(since, last_ok) if last_ok is not None else since
        account = session.execute(select(func.count(), func.max(SignInAttempt.at)).where(
            SignInAttempt.email == email, SignInAttempt.succeeded.is_(False),
            SignInAttempt.at > start)).one()
        from_client = (0, None)
        if client:
            from_client = session.execute(select(func.count(), func.max(SignInAttempt.at)).where(
                SignInAttempt.client == client, SignInAttempt.succeeded.is_(False),
                SignInAttempt.at > since)).one()
    return Failures(int(account[0] or 0), account[1], int(from_client[0] or 0), from_client[1])


def record_attempt(email: str, client: str | None, succeeded: bool, audit: AuditRow) -> None:
    """One sign-in try and its audit row, together; a success also stamps last_sign_in_at."""
    now = utcnow()
    with session_scope() as session:
        session.execute(insert(SignInAttempt).values(
            at=now, email=_normal(email)[:320], client=(client or None) and client[:120],
            succeeded=succeeded))
        if succeeded:
            session.execute(update(Operator).where(Operator.email == _normal(email))
                            .values(last_sign_in_at=now))
        audit_log.insert(session, audit)


# --- console secrets --------------------------------------------------------------------------

def secret(name: str, make) -> str:
    """The stored secret `name`, created with `make()` the first time (race-safe)."""
    with session_scope() as session:
        value = session.scalar(select(ConsoleSecret.value).where(ConsoleSecret.name == name))
    if value is not None:
        return value
    try:
        with session_scope() as session:
            session.execute(insert(ConsoleSecret).values(name=name, value=make(),
                                                         created_at=utcnow()))
    except IntegrityError:
        pass  # another process stored it first: use theirs
    with session_scope() as session:
        return session.scalar(select(ConsoleSecret.value).where(ConsoleSecret.name == name))
