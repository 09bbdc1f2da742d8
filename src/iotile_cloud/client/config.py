"""Where credentials come from: ``IOTILE_CLOUD_TOKEN`` or the user's config file.

The file (``<user config dir>/iotile-cloud/credentials.json``) maps a domain to its token and is
always written owner-only (0600), atomically, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import platformdirs

from iotile_cloud.client._core import DEFAULT_DOMAIN

__all__ = [
    "config_dir",
    "credentials_path",
    "load_credentials",
    "save_credentials",
    "forget_credentials",
    "default_domain",
]


def config_dir() -> Path:
    override = os.environ.get("IOTILE_CLOUD_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("iotile-cloud"))


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def _read() -> dict[str, Any]:
    path = credentials_path()
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it and log in again") from None
    return data if isinstance(data, dict) else {}


def _write(data: dict[str, Any]) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fp:
            fp.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def default_domain() -> str:
    return os.environ.get("IOTILE_CLOUD_DOMAIN") or _read().get("default_domain") or DEFAULT_DOMAIN


def load_credentials(domain: str | None = None) -> dict[str, Any] | None:
    """``{"token", "token_type", "username"}`` for a domain, or None. The environment wins."""
    token = os.environ.get("IOTILE_CLOUD_TOKEN")
    if token:
        return {"token": token, "token_type": os.environ.get("IOTILE_CLOUD_TOKEN_TYPE", "jwt"), "username": None}
    domain = (domain or default_domain()).rstrip("/")
    entry = _read().get("domains", {}).get(domain)
    return dict(entry) if isinstance(entry, dict) else None


def save_credentials(domain: str, token: str, token_type: str = "jwt", username: str | None = None) -> Path:
    data = _read()
    domain = domain.rstrip("/")
    data.setdefault("domains", {})[domain] = {"token": token, "token_type": token_type, "username": username}
    data["default_domain"] = domain
    _write(data)
    return credentials_path()


def forget_credentials(domain: str) -> bool:
    data = _read()
    removed = data.get("domains", {}).pop(domain.rstrip("/"), None) is not None
    if removed:
        _write(data)
    return removed
