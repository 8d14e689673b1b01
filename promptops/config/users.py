"""People who may write: a users file mapping hashed tokens to a name, an email and roles.

The file (default ``~/.config/promptops/users.json``, 0600, outside any work tree and never
served) holds only SHA-256 digests of tokens: tokens are 256 random bits, so a fast hash is
enough and a leaked file reveals no credential. A token is shown once, when it is created.

Roles: ``editor`` (save prompts), ``approver`` (approve, revoke), ``deployer`` (promote,
rollback, store refresh). The local owner that `promptops serve` signs in has all three.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from promptops.errors import Forbidden, PromptOpsError
from promptops.files import atomic_write

ROLES = ("editor", "approver", "deployer")
TOKEN_PREFIX = "po_"
_NAME = re.compile(r"[^\s<>\x00-\x1f\x7f][^<>\x00-\x1f\x7f]{0,63}")  # what git accepts as an author name
_EMAIL = re.compile(r"[^\s<>@]+@[^\s<>@]+")


def config_dir() -> Path:
    """Where promptops keeps per-user secrets: $XDG_CONFIG_HOME/promptops or ~/.config/promptops."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "promptops"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class User:
    """A signed-in person: what commits and approvals record, and what they may do."""

    name: str
    email: str
    roles: frozenset[str]

    def can(self, role: str) -> bool:
        return role in self.roles

    def require(self, role: str, action: str) -> None:
        """Forbidden unless this person holds `role`."""
        if role not in self.roles:
            roles = " ".join(f"--role {r}" for r in sorted({*self.roles, role}))
            raise Forbidden(f"{self.name} may not {action}: that needs the {role} role",
                            fix=f"ask an admin to run `promptops users add {shlex.quote(self.name)} --email "
                                f"{self.email} {roles}` (it issues them a new token)")

    @property
    def identity(self) -> tuple[str, str]:
        """(name, email) as git records it."""
        return self.name, self.email


class Users:
    """The users file; re-read when it changes on disk, written atomically with 0600 permissions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: list[dict[str, object]] = []

    def _load(self) -> list[dict[str, object]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._entries = None, []
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                entries = json.loads(self.path.read_bytes())["users"]
                assert isinstance(entries, list)
            except (OSError, ValueError, KeyError, TypeError, AssertionError):
                raise PromptOpsError(f"the users file {self.path} is damaged",
                                     fix="restore it from a backup or remove it and add the users again") from None
            self._stamp, self._entries = stamp, entries
        return self._entries

    def _save(self, entries: list[dict[str, object]]) -> None:
        atomic_write(self.path, (json.dumps({"users": entries}, indent=2) + "\n").encode(), mode=0o600)
        self._stamp = None

    def list(self) -> list[User]:
        """Every user, in the order added."""
        return [_user(e) for e in self._load()]

    def add(self, name: str, email: str, roles: list[str]) -> tuple[User, str]:
        """Add a person (or replace their token and roles); returns the user and the new token, shown once."""
        if not _NAME.fullmatch(name):
            raise PromptOpsError(f"invalid user name {name!r}", fix="use 1-64 printable characters, no '<' or '>'")
        if not _EMAIL.fullmatch(email):
            raise PromptOpsError(f"invalid email {email!r}", fix="write it like ada@example.com")
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or not roles:
            raise PromptOpsError(f"unknown role {unknown[0]!r}" if unknown else "give at least one role",
                                 fix=f"use --role with one of {', '.join(ROLES)} (repeat it for several)")
        token = new_token()
        entries = [e for e in self._load() if e.get("name") != name]
        entries.append({"name": name, "email": email, "roles": sorted(set(roles)), "token_sha256": digest(token),
                        "created": datetime.now(UTC).isoformat(timespec="seconds")})
        self._save(entries)
        return User(name, email, frozenset(roles)), token

    def remove(self, name: str) -> bool:
        """Remove a person; their token stops working at once. False when there was no such user."""
        entries = self._load()
        kept = [e for e in entries if e.get("name") != name]
        if len(kept) != len(entries):
            self._save(kept)
        return len(kept) != len(entries)

    def authenticate(self, token: str | None) -> User | None:
        """The person this token belongs to (constant-time comparison against every entry), or None."""
        if not token:
            return None
        wanted = digest(token)
        found = None
        for entry in self._load():
            if hmac.compare_digest(str(entry.get("token_sha256", "")), wanted):
                found = _user(entry)
        return found


def _user(entry: dict[str, object]) -> User:
    roles = entry.get("roles", [])
    return User(str(entry["name"]), str(entry["email"]), frozenset(str(r) for r in roles)  # type: ignore[union-attr]
                if isinstance(roles, list) else frozenset())


def local_token(users: Users, name: str, email: str, directory: Path | None = None) -> str:
    """The local owner's token for `promptops serve`: created once (0600, outside the work tree), then reused.

    The owner is added to the users file with every role, so the sign-in link works like
    Jupyter's: one command, then the browser holds a session.
    """
    path = (directory or config_dir()) / "local-token"
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    user = users.authenticate(token) if token else None
    if user is None or set(user.roles) != set(ROLES):
        token = users.add(name if _NAME.fullmatch(name) else "owner", email, list(ROLES))[1]
        atomic_write(path, token.encode() + b"\n", mode=0o600)
    return token
