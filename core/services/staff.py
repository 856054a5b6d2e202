"""Staff accounts: agents, managers and admins who work in the console; logins and sessions.

Passwords are argon2 hashes (re-hashed at login when the parameters change). A login is refused
with one message whatever went wrong (unknown name, wrong password, disabled account), so the
form does not tell which names exist; only a lock is announced, with its end:

* an account is locked for ``login_lock_minutes`` after ``login_max_failures`` wrong passwords
  in a row (its ``failed_logins``); the count restarts when the lock is set and after a success;
* an IP address with ``login_max_failures`` failed attempts within ``login_lock_minutes`` is
  refused, whatever name it tries, until the oldest of those leaves the window (refused attempts
  are failures too, so an address that keeps trying stays locked);
* an unknown name is treated like an account, from its recent failures in ``login_attempts``,
  so a lock does not betray that a name exists.

Every attempt is a row of ``login_attempts``. Failures are written in a transaction of their own
(``record_independently``): they stand although the login raises and its caller rolls back.

A session is a random token in the browser's cookie; only its SHA-256 is stored, with a CSRF
token for the forms. It ends at logout, when the account is disabled or its password changed,
and after ``session_idle_minutes`` without a request (``last_seen_at`` is refreshed at most once a
minute, to spare writes).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, case, literal, select, update
from sqlalchemy.exc import IntegrityError

from config.settings import SupportSettings
from core.adapters.tables import login_attempts, staff, staff_sessions
from core.adapters.uow import UnitOfWork
from core.domain.errors import DomainError
from core.services import audit

ROLES = ("agent", "manager", "admin")
PRESENCES = ("online", "away")
NAME_PATTERN = re.compile(r"[a-z0-9_.-]{2,64}")
MIN_PASSWORD_LENGTH = 10
TOUCH_EVERY = timedelta(minutes=1)


class StaffError(DomainError):
    code = "staff_error"


class InvalidStaffName(StaffError):
    code = "invalid_staff_name"


class DuplicateStaffName(StaffError):
    code = "duplicate_staff_name"


class WeakPassword(StaffError):
    """``params['min_length']``: the shortest password accepted."""

    code = "weak_password"


class UnknownRole(StaffError):
    code = "unknown_role"


class UnknownStaff(StaffError):
    code = "unknown_staff"


class InvalidPresence(StaffError):
    code = "invalid_presence"


class LoginRefused(StaffError):
    """One message for every refusal; ``params['locked_until']`` (aware UTC) when locked."""

    code = "login_refused"


@dataclass(frozen=True, slots=True)
class Staff:
    id: int
    name: str
    display_name: str
    role: str
    active: bool
    presence: str
    capacity: int | None
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None


def _staff(row: Any) -> Staff:
    return Staff(row.id, row.name, row.display_name, row.role, row.active, row.presence,
                 row.capacity, row.created_at, row.last_login_at, row.locked_until)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaffService:
    def __init__(self, settings: SupportSettings, hasher: PasswordHasher | None = None) -> None:
        self.settings = settings
        self.hasher = hasher or PasswordHasher()

    @property
    def lock_period(self) -> timedelta:
        return timedelta(minutes=self.settings.login_lock_minutes)

    @cached_property
    def _dummy_hash(self) -> str:
        """What an unknown name's password is checked against, to take the usual time."""
        return self.hasher.hash(secrets.token_urlsafe(16))

    # Accounts -------------------------------------------------------------------------------

    async def add(self, uow: UnitOfWork, name: str, password: str, role: str,
                  display_name: str | None = None, *, actor_id: int | None = None) -> Staff:
        """A new active account (``actor_id``: the admin who adds it; none from the CLI)."""
        if not NAME_PATTERN.fullmatch(name):
            raise InvalidStaffName(
                "a name is 2-64 characters: lowercase letters, digits, '_', '.', '-'", name=name)
        if role not in ROLES:
            raise UnknownRole(f"unknown role {role!r} (one of {', '.join(ROLES)})", role=role)
        self._check_password(password)
        display = (display_name or "").strip()[:64] or name
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        try:
            async with uow.savepoint():
                result = await uow.conn.execute(staff.insert().values(
                    name=name, display_name=display, role=role, password_hash=password_hash,
                    active=True, failed_logins=0, presence="away", created_at=uow.clock.now()))
        except IntegrityError:
            raise DuplicateStaffName(f"a staff member named {name!r} already exists",
                                     name=name) from None
        staff_id = int(result.inserted_primary_key[0])
        await self._audit(uow, "staff_added", staff_id, actor_id, {"name": name, "role": role})
        return await self._get(uow, staff.c.id == staff_id)

    async def list(self, uow: UnitOfWork) -> list[Staff]:
        rows = await uow.conn.execute(select(staff).order_by(staff.c.name))
        return [_staff(row) for row in rows]

    async def get(self, uow: UnitOfWork, name: str) -> Staff | None:
        row = (await uow.conn.execute(select(staff).where(staff.c.name == name))).first()
        return None if row is None else _staff(row)

    async def disable(self, uow: UnitOfWork, name: str, *, actor_id: int | None = None) -> Staff:
        """The account can no longer log in and its open sessions end now."""
        member = await self._get(uow, staff.c.name == name, name)
        await uow.conn.execute(update(staff).where(staff.c.id == member.id).values(active=False))
        await self._revoke_all(uow, member.id)
        await self._audit(uow, "staff_disabled", member.id, actor_id, {"name": name})
        return await self._get(uow, staff.c.id == member.id)

    async def set_password(self, uow: UnitOfWork, name: str, password: str, *,
                           actor_id: int | None = None) -> None:
        """A new password also lifts a lock and ends the account's sessions."""
        self._check_password(password)
        member = await self._get(uow, staff.c.name == name, name)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        await uow.conn.execute(update(staff).where(staff.c.id == member.id).values(
            password_hash=password_hash, failed_logins=0, locked_until=None))
        await self._revoke_all(uow, member.id)
        await self._audit(uow, "staff_password_set", member.id, actor_id, {"name": name})

    async def set_presence(self, uow: UnitOfWork, staff_id: int, presence: str) -> None:
        if presence not in PRESENCES:
            raise InvalidPresence(f"presence is one of {', '.join(PRESENCES)}",
                                  presence=presence)
        result = await uow.conn.execute(
            update(staff).where(staff.c.id == staff_id).values(presence=presence))
        if result.rowcount == 0:
            raise UnknownStaff("no such staff member", staff_id=staff_id)

    # Logins and sessions ----------------------------------------------------------------------

    async def login(self, uow: UnitOfWork, name: str, password: str,
                    ip: str) -> tuple[Staff, str, str]:
        """Check a password and open a session: ``(staff, session token, csrf token)``.

        Raises ``LoginRefused``; the caller commits on success."""
        name, ip = name.strip().lower()[:64], ip[:64]
        now = uow.clock.now()
        ip_until = await self._locked_by_attempts(uow, login_attempts.c.ip == ip, now)
        if ip_until is not None:
            self._refuse(uow, name, ip, "ip_locked", None, locked_until=ip_until)
        row = (await uow.conn.execute(select(staff).where(staff.c.name == name))).first()
        if row is None:
            name_until = await self._locked_by_attempts(uow, login_attempts.c.name == name, now)
            if name_until is not None:
                self._refuse(uow, name, ip, "locked", None, locked_until=name_until)
            await self._verify(self._dummy_hash, password)
            self._refuse(uow, name, ip, "unknown_name", None)
        if row.locked_until is not None and row.locked_until > now:
            self._refuse(uow, name, ip, "locked", row.id, locked_until=row.locked_until)
        if not await self._verify(row.password_hash, password):
            locks = row.failed_logins + 1 >= self.settings.login_max_failures
            self._refuse(uow, name, ip, "wrong_password", row.id, counts=True,
                         locked_until=now + self.lock_period if locks else None)
        if not row.active:
            self._refuse(uow, name, ip, "disabled", row.id)
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
        if self.hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = await asyncio.to_thread(self.hasher.hash, password)
        await uow.conn.execute(update(staff).where(staff.c.id == row.id).values(**values))
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        await uow.conn.execute(staff_sessions.insert().values(
            token_hash=token_hash(token), staff_id=row.id, csrf_token=csrf, created_at=now,
            last_seen_at=now, ip=ip))
        await uow.conn.execute(login_attempts.insert().values(
            name=name, ip=ip, succeeded=True, at=now))
        await self._audit(uow, "staff_login", row.id, row.id, {"ip": ip})
        return await self._get(uow, staff.c.id == row.id), token, csrf

    async def peek(self, uow: UnitOfWork, token: str) -> tuple[Staff, str] | bool | None:
        """A session read without writing: (staff, csrf) when it is live and was seen within
        the last minute; None when it is unknown, revoked or disabled; True when ``session``
        must run in a writing unit of work (to refresh ``last_seen_at`` or revoke when idle).
        Most staff requests then never take the database's writer lock."""
        s = staff_sessions.c
        row = (await uow.conn.execute(
            select(staff, s.csrf_token, s.last_seen_at, s.revoked_at)
            .join(staff_sessions, s.staff_id == staff.c.id)
            .where(s.token_hash == token_hash(token)))).first()
        if row is None or row.revoked_at is not None or not row.active:
            return None
        if uow.clock.now() - row.last_seen_at >= TOUCH_EVERY:
            return True
        return _staff(row), row.csrf_token

    async def session(self, uow: UnitOfWork, token: str, ip: str) -> tuple[Staff, str] | None:
        """The staff member and CSRF token of a live session, or None. Needs a writing unit of
        work (it refreshes ``last_seen_at`` and revokes an idle session); commit after."""
        s = staff_sessions.c
        this = s.token_hash == token_hash(token)
        row = (await uow.conn.execute(
            select(staff, s.csrf_token, s.last_seen_at, s.revoked_at)
            .join(staff_sessions, s.staff_id == staff.c.id).where(this))).first()
        if row is None or row.revoked_at is not None or not row.active:
            return None
        now = uow.clock.now()
        if now - row.last_seen_at > timedelta(minutes=self.settings.session_idle_minutes):
            await uow.conn.execute(update(staff_sessions).where(this).values(revoked_at=now))
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            await uow.conn.execute(
                update(staff_sessions).where(this).values(last_seen_at=now, ip=ip[:64]))
        return _staff(row), row.csrf_token

    async def logout(self, uow: UnitOfWork, token: str) -> None:
        s = staff_sessions.c
        await uow.conn.execute(update(staff_sessions).where(
            s.token_hash == token_hash(token), s.revoked_at.is_(None))
            .values(revoked_at=uow.clock.now()))

    # Helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
            raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters",
                               min_length=MIN_PASSWORD_LENGTH)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _get(self, uow: UnitOfWork, where: ColumnElement[bool],
                   name: str | None = None) -> Staff:
        row = (await uow.conn.execute(select(staff).where(where))).first()
        if row is None:
            raise UnknownStaff(f"no staff member named {name!r}" if name else "no such staff",
                               name=name)
        return _staff(row)

    async def _revoke_all(self, uow: UnitOfWork, staff_id: int) -> None:
        s = staff_sessions.c
        await uow.conn.execute(update(staff_sessions).where(
            s.staff_id == staff_id, s.revoked_at.is_(None)).values(revoked_at=uow.clock.now()))

    async def _locked_by_attempts(self, uow: UnitOfWork, who: ColumnElement[bool],
                                  now: datetime) -> datetime | None:
        """When ``who`` (an IP, an unknown name) may try again, if its recent failures lock it."""
        a = login_attempts.c
        failures = (await uow.conn.execute(
            select(a.at).where(who, a.succeeded.is_(False), a.at > now - self.lock_period)
            .order_by(a.at.desc()).limit(self.settings.login_max_failures))).scalars().all()
        if len(failures) < self.settings.login_max_failures:
            return None
        return failures[-1] + self.lock_period

    def _refuse(self, uow: UnitOfWork, name: str, ip: str, reason: str, staff_id: int | None,
                *, counts: bool = False, locked_until: datetime | None = None) -> NoReturn:
        """Record the failed attempt in a transaction of its own, then refuse."""
        now = uow.clock.now()
        max_failures, lock_ends = self.settings.login_max_failures, now + self.lock_period

        async def write(independent: UnitOfWork) -> None:
            await independent.conn.execute(login_attempts.insert().values(
                name=name, ip=ip, succeeded=False, at=now))
            if counts and staff_id is not None:
                locks = staff.c.failed_logins + 1 >= max_failures
                await independent.conn.execute(update(staff).where(staff.c.id == staff_id).values(
                    failed_logins=case((locks, 0), else_=staff.c.failed_logins + 1),
                    locked_until=case((locks, literal(lock_ends, staff.c.locked_until.type)),
                                      else_=staff.c.locked_until)))
            details = {"ip": ip, "reason": reason}
            if staff_id is None:
                await audit.record(independent, "staff_login_failed", "login_name", name,
                                   details=details)
            else:
                await audit.record(independent, "staff_login_failed", "staff", staff_id,
                                   actor_kind="staff", actor_id=staff_id, details=details)

        uow.record_independently(write)
        params = {} if locked_until is None else {"locked_until": locked_until}
        raise LoginRefused("wrong name or password", **params)

    @staticmethod
    async def _audit(uow: UnitOfWork, action: str, staff_id: int, actor_id: int | None,
                     details: dict[str, Any]) -> None:
        await audit.record(uow, action, "staff", staff_id,
                           actor_kind="system" if actor_id is None else "staff",
                           actor_id=actor_id, details=details)
