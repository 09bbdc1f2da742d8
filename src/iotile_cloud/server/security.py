"""Passwords (argon2id), JWTs (HS256) and API tokens."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

JWT_LIFETIME = 7 * 24 * 3600
JWT_REFRESH_WINDOW = 180 * 24 * 3600
DEVICE_TOKEN_LIFETIME = 30 * 24 * 3600

_hasher = PasswordHasher()
# argon2 is memory-hard (64 MiB a hash): at most this many run at once in a process, whatever the load.
KDF_CONCURRENCY = 2
_kdf_slots = threading.BoundedSemaphore(KDF_CONCURRENCY)


def hash_password(password: str) -> str:
    with _kdf_slots:
        return _hasher.hash(password)


_DUMMY_HASH = _hasher.hash("not a password")


def check_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the account exists (``stored`` None), so timing tells nothing."""
    try:
        with _kdf_slots:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """A placeholder nobody knows, until ``api_token_for`` shows the user's real token."""
    return token_digest(secrets.token_hex(20))


def api_token_for(secret: str, user_id: int) -> str:
    """A user's DRF-style API token: derived from the server secret, so it can be shown again while the
    database keeps only its digest (a copy of the database holds no usable credential)."""
    return hmac.new(secret.encode(), f"api-token:{user_id}".encode(), hashlib.sha256).hexdigest()[:40]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def private_dir(path: Path) -> Path:
    """Create (or tighten) a directory only its owner may enter: the data directory and those in it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only (0600), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fp:
        os.fchmod(fp.fileno(), 0o600)
        fp.write(data)


def private_sqlite(url: str) -> None:
    """Make a SQLite database file owner-only before SQLite opens it.

    SQLite gives its -wal, -shm and -journal files the mode of the database file, so a 0600
    database keeps them 0600 too; files left by an older version are tightened here.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    if not path.parent.exists():
        private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def load_or_create_secret(data_dir: Path) -> str:
    """The JWT signing secret: made on first start, kept owner-only in the data directory.

    Every worker of ``serve --workers N`` must sign with the same secret, and they may start at the
    same moment: the secret is written whole to a private temporary file and then hard-linked into
    place, which succeeds for exactly one writer; the others read the winner's file.
    """
    path = data_dir / "jwt-secret"
    try:
        os.chmod(path, 0o600)
        return _read_secret(path)
    except FileNotFoundError:
        pass
    private_dir(data_dir)
    fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".jwt-secret-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fp:
            fp.write(secrets.token_urlsafe(48))
            fp.flush()
            os.fsync(fp.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty: delete it to make a new JWT secret (logs everyone out)")
    return secret


def _is_id(value: Any) -> bool:
    """A row id as stored: a 64-bit integer (not a bool, a string or a container)."""
    return isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value < 1 << 63


class TokenError(Exception):
    """A JWT could not be accepted; the message is the one DRF-JWT gives."""


class JwtCodec:
    def __init__(self, secret: str, lifetime: int = JWT_LIFETIME, refresh_window: int = JWT_REFRESH_WINDOW):
        self.secret = secret
        self.lifetime = lifetime
        self.refresh_window = refresh_window

    def issue(self, user: Any, orig_iat: int | None = None) -> str:
        now = int(time.time())
        payload = {
            "user_id": user.id,
            "username": user.username,
            "email": user.email,
            "exp": now + self.lifetime,
            "orig_iat": orig_iat if orig_iat is not None else now,
        }
        return jwt.encode(payload, self.secret, algorithm="HS256")

    def issue_device(self, device_id: int, user_id: int) -> str:
        now = int(time.time())
        payload = {
            "device": device_id,
            "user_id": user_id,
            "type": "a-jwt",
            "iat": now,
            "exp": now + DEVICE_TOKEN_LIFETIME,
        }
        return jwt.encode(payload, self.secret, algorithm="HS256")

    def decode(self, token: str, verify_exp: bool = True) -> dict[str, Any]:
        """The claims of a token this server signed: every one expires (``exp`` is required) and
        names its user by an integer id (a device token, its device too)."""
        try:
            payload: dict[str, Any] = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"verify_exp": verify_exp, "require": ["exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("Signature has expired.") from None
        except jwt.PyJWTError:
            raise TokenError("Error decoding signature.") from None
        for claim in ("user_id", "device") if payload.get("type") == "a-jwt" else ("user_id",):
            if not _is_id(payload.get(claim)):
                raise TokenError("Error decoding signature.")
        return payload

    def refresh(self, token: str, user: Any) -> str:
        payload = self.decode(token)
        orig_iat = int(payload.get("orig_iat") or 0)
        if not orig_iat or time.time() > orig_iat + self.refresh_window:
            raise TokenError("Refresh has expired.")
        return self.issue(user, orig_iat=orig_iat)
