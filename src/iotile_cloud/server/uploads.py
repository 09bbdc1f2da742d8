"""Files uploaded to a local server where the original handed out an S3 upload form.

``uploadurl/`` answers the server's own upload route and a ``key`` of ``<folder>/<file name>``; the
client POSTs the multipart fields ``key`` and ``file`` there, then confirms with ``uploadsuccess/``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import Request

from iotile_cloud.server.http import APIError, Fields, is_uuid
from iotile_cloud.server.security import private_dir


def is_plain_name(name: str) -> bool:
    """A file name without folders, safe to join to a directory."""
    return bool(name) and "/" not in name and "\\" not in name and "\0" not in name and name not in (".", "..")


def file_name_field(fields: Fields, field: str = "name") -> str:
    """The required file name of an upload request (400 naming the field otherwise)."""
    name = fields.text(field, required=True, allow_blank=False, max_length=100)
    if name is not None and not is_plain_name(name):
        fields.error(field, "Enter a file name without folders.")
    fields.check()
    return str(name)


async def keyed_upload(
    request: Request, what: str, folder: str | None = None, limit: int | None = None
) -> tuple[str, str, bytes]:
    """(folder, file name, bytes) of a multipart upload whose ``key`` is ``<folder>/<file name>``:
    the given folder, or any UUID when none is given (the one ``uploadurl/`` handed out)."""
    from iotile_cloud.server.routes.reports import _form, _read_file

    form = await _form(request)
    upload = await _read_file(form)
    key = form.get("key") if form else None
    if upload is None or not isinstance(key, str):
        raise APIError(400, {"file": ["Expected a multipart upload with fields `key` and `file`."]})
    key_folder, _, name = key.partition("/")
    expected = key_folder == folder if folder is not None else _canonical_uuid(key_folder)
    if not expected or not is_plain_name(name):
        raise APIError(400, {"key": [f"The key does not belong to this {what}."]})
    data = upload[1]
    if limit is not None and len(data) > limit:
        raise APIError(400, {"file": [f"File too large: at most {limit} bytes."]})
    return key_folder, name, data


def _canonical_uuid(text: str) -> bool:
    return is_uuid(text) and str(uuid.UUID(text)) == text


def private_path(root: Path, *parts: str) -> Path:
    """``root/part/...``, each folder created owner-only (mkdir's mode does not reach parents)."""
    folder = private_dir(root)
    for part in parts:
        folder = private_dir(folder / part)
    return folder
