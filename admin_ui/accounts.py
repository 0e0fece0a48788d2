"""User accounts: argon2 password hashes, roles, login throttling and lockout."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from admin_ui.errors import N_, AccountError

ROLES = ("admin", "teacher", "viewer")
NAME_RE = re.compile(r"^[A-Za-z0-9._@-]{2,64}$")
MIN_PASSWORD = 10

# Lockout: this many failures for one account (or 4x for one address) inside the
# window lock further attempts until the window has passed since the last failure.
MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-for-timing")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str
    groups: tuple[str, ...]
    disabled: bool

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise AccountError(N_("unknown role %(role)s"), role=self.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_act_for(self, group: str) -> bool:
        """Admins act for every group; teachers only for the groups they teach."""
        return self.is_admin or (self.role == "teacher" and group in self.groups)


def _row_to_user(row: dict) -> User:
    groups = tuple(g for g in (row["groups"] or "").split(",") if g)
    return User(id=row["id"], name=row["name"], role=row["role"], groups=groups,
                disabled=bool(row["disabled"]))


def parse_groups(text: str) -> tuple[str, ...]:
    return tuple(sorted({g.strip() for g in re.split(r"[,\s]+", text or "") if g.strip()}))


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(N_("The password must have at least %(n)s characters."), n=MIN_PASSWORD)
    if password.strip() != password:
        raise AccountError(N_("The password must not start or end with a space."))


def user_count(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM users").fetchone()[0]


def create_user(db: sqlite_utils.Database, name: str, password: str, role: str,
                groups: tuple[str, ...] = ()) -> User:
    if not NAME_RE.match(name or ""):
        raise AccountError(N_("User name: 2 to 64 letters, digits or . _ @ -"))
    if role not in ROLES:
        raise AccountError(N_("Role must be admin, teacher or viewer."))
    validate_password(password)
    if db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
        raise AccountError(N_("User %(name)s already exists."), name=name)
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO users (name, password_hash, role, groups, created_at) VALUES (?,?,?,?,?)",
            [name, _hasher.hash(password), role, ",".join(groups), time.time()])
    return get_user(db, cur.lastrowid)  # type: ignore[return-value]


def create_first_admin(db: sqlite_utils.Database, name: str, password: str) -> User:
    """Create the first admin, only while no account exists (checked inside the transaction)."""
    if not NAME_RE.match(name or ""):
        raise AccountError(N_("User name: 2 to 64 letters, digits or . _ @ -"))
    validate_password(password)
    pw_hash = _hasher.hash(password)
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")  # two browsers racing: only one wins
        if db.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
            raise AccountError(N_("An account already exists; sign in instead."))
        cur = db.conn.execute(
            "INSERT INTO users (name, password_hash, role, groups, created_at) "
            "VALUES (?,?,'admin','',?)", [name, pw_hash, time.time()])
    return get_user(db, cur.lastrowid)  # type: ignore[return-value]


def get_user(db: sqlite_utils.Database, user_id: int | None) -> User | None:
    if user_id is None:
        return None
    cur = db.execute("SELECT * FROM users WHERE id = ?", [user_id])
    cols = [c[0] for c in cur.description]
    row = cur.fetchone()
    return _row_to_user(dict(zip(cols, row, strict=True))) if row else None


def list_users(db: sqlite_utils.Database) -> list[User]:
    return [_row_to_user(r) for r in db.query("SELECT * FROM users ORDER BY name")]


def update_user(db: sqlite_utils.Database, user_id: int, *, role: str | None = None,
                groups: tuple[str, ...] | None = None, disabled: bool | None = None,
                password: str | None = None) -> None:
    sets: list[str] = []
    args: list[object] = []
    if role is not None:
        if role not in ROLES:
            raise AccountError(N_("Role must be admin, teacher or viewer."))
        sets.append("role = ?")
        args.append(role)
    if groups is not None:
        sets.append("groups = ?")
        args.append(",".join(groups))
    if disabled is not None:
        sets.append("disabled = ?")
        args.append(int(disabled))
    if password is not None:
        validate_password(password)
        sets.append("password_hash = ?")
        args.append(_hasher.hash(password))
    if not sets:
        return
    with db.conn:
        db.conn.execute(f"UPDATE users SET {', '.join(sets)} WHERE id = ?", [*args, user_id])


def active_admins(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM users WHERE role='admin' AND disabled=0").fetchone()[0]


class LockedOut(AccountError):
    """Too many failed logins for this account or address; try again later."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(N_("Too many failed sign-ins. Try again in %(n)s minutes."),
                         n=retry_after // 60 + 1)


def _failures(db: sqlite_utils.Database, column: str, value: str, now: float) -> tuple[int, float]:
    row = db.execute(
        f"SELECT COUNT(*), COALESCE(MAX(ts), 0) FROM login_failures WHERE {column} = ? AND ts > ?",
        [value, now - WINDOW_SECONDS]).fetchone()
    return row[0], row[1]


def check_lockout(db: sqlite_utils.Database, name: str, remote: str,
                  now: float | None = None) -> None:
    now = time.time() if now is None else now
    for column, value, limit in (("username", name.lower(), MAX_FAILURES),
                                 ("remote", remote, MAX_FAILURES * 4)):
        count, last = _failures(db, column, value, now)
        if count >= limit:
            raise LockedOut(int(last + WINDOW_SECONDS - now))


def authenticate(db: sqlite_utils.Database, name: str, password: str, remote: str,
                 now: float | None = None) -> User | None:
    """The user if name and password match an enabled account; records failures.

    Raises LockedOut before checking the password when the account or the address
    has failed too often, so a locked account cannot be probed further.
    """
    now = time.time() if now is None else now
    check_lockout(db, name, remote, now)
    cur = db.execute("SELECT * FROM users WHERE name = ?", [name])
    cols = [c[0] for c in cur.description]
    row = cur.fetchone()
    ok = False
    if row is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password + "x")
    else:
        data = dict(zip(cols, row, strict=True))
        try:
            ok = _hasher.verify(data["password_hash"], password) and not data["disabled"]
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    with db.conn:
        if not ok:
            db.conn.execute("INSERT INTO login_failures (ts, username, remote) VALUES (?,?,?)",
                            [now, name.lower(), remote])
            db.conn.execute("DELETE FROM login_failures WHERE ts < ?", [now - 24 * 3600])
            return None
        db.conn.execute("DELETE FROM login_failures WHERE username = ?", [name.lower()])
        db.conn.execute("UPDATE users SET last_login = ? WHERE id = ?", [now, data["id"]])
        if _hasher.check_needs_rehash(data["password_hash"]):
            db.conn.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                            [_hasher.hash(password), data["id"]])
    return _row_to_user(data)
