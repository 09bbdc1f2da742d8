"""Passwords (argon2id), JWTs (HS256) and API tokens."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
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


def hash_password(password: str) -> str:
    return _hasher.hash(password)


_DUMMY_HASH = _hasher.hash("not a password")


def check_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the account exists (``stored`` None), so timing tells nothing."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    return secrets.token_hex(20)


def load_or_create_secret(data_dir: Path) -> str:
    """The JWT signing secret: made on first start, kept owner-only in the data directory.

    Every worker of ``serve --workers N`` must sign with the same secret, and they may start at the
    same moment: the secret is written whole to a private temporary file and then hard-linked into
    place, which succeeds for exactly one writer; the others read the winner's file.
    """
    path = data_dir / "jwt-secret"
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
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
        try:
            payload: dict[str, Any] = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"verify_exp": verify_exp}
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("Signature has expired.") from None
        except jwt.PyJWTError:
            raise TokenError("Error decoding signature.") from None
        return payload

    def refresh(self, token: str, user: Any) -> str:
        payload = self.decode(token)
        orig_iat = int(payload.get("orig_iat") or 0)
        if not orig_iat or time.time() > orig_iat + self.refresh_window:
            raise TokenError("Refresh has expired.")
        return self.issue(user, orig_iat=orig_iat)
