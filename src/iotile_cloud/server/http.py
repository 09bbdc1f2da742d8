"""HTTP plumbing shared by every route: JSON responses, DRF-style errors, bodies, pagination."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import Request
from fastapi.responses import Response

from iotile_cloud.utils.basic import str_to_datetime
from iotile_cloud.utils.gid import IOTileDeviceSlug, IOTileProjectSlug


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class APIError(Exception):
    """Raised anywhere in a route; becomes ``status`` with ``body`` (a DRF-shaped error)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers


REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def int64_or_none(text: str) -> int | None:
    """The integer in ``text`` if it fits a 64-bit signed column (every id and counter we store), else None."""
    text = text.strip()
    if not text or len(text) > 20:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def database_id(raw: str, malformed: APIError | None = None) -> int:
    """A row id from the path: ``malformed`` (default 404) when not an integer; 404 when out of range."""
    try:
        int(raw.strip()[:30])
    except ValueError:
        raise (malformed or not_found()) from None
    value = int64_or_none(raw)
    if value is None:
        raise not_found()
    return value


def query_int64(request: Request, name: str) -> int | None:
    """An integer query argument (None when absent); 400 naming it when not a 64-bit integer."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = int64_or_none(raw)
    if value is None:
        raise APIError(400, {"detail": f"{name} must be an integer between {INT64_MIN} and {INT64_MAX}"})
    return value


def not_found() -> APIError:
    return APIError(404, {"detail": "Not found."})


def forbidden(detail: str = "You do not have permission to perform this action.") -> APIError:
    return APIError(403, {"detail": detail})


def restricted() -> APIError:
    return APIError(403, {"error": "Restricted Access. Contact Arch"})


def not_authenticated() -> APIError:
    return APIError(
        401, {"detail": "Authentication credentials were not provided."}, {"WWW-Authenticate": 'JWT realm="api"'}
    )


# -- request bodies: documented for OpenAPI (handlers parse them, to give DRF's exact errors) ----

_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "object": {"type": "object"},
    "datetime": {"type": "string", "format": "date-time"},
    "strings": {"type": "array", "items": {"type": "string"}},
    "binary": {"type": "string", "format": "binary"},
}


def body_doc(
    required: Sequence[str] = (), many: bool = False, multipart: bool = False, **fields: str
) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON (or multipart) body with these fields."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _TYPES[kind] for name, kind in fields.items()},
        "required": list(required),
    }
    if many:
        schema = {"oneOf": [schema, {"type": "array", "items": schema}]}
    media = "multipart/form-data" if multipart else "application/json"
    return {"requestBody": {"required": bool(required), "content": {media: {"schema": schema}}}}


# -- request bodies -----------------------------------------------------------------------------


async def json_body(request: Request) -> Any:
    """The JSON body (None when empty); 400 ``JSON parse error - ...`` when it is not JSON.

    Multipart and form bodies are returned as a plain dict of their fields.
    """
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form(max_files=0, max_fields=100)
        except APIError:
            raise
        except Exception as error:  # a malformed form body, or one with too many parts
            raise APIError(400, {"detail": f"Form parse error - {error}"}) from None
        return {k: v for k, v in form.items()}
    from iotile_cloud.server.limits import loads_json  # limits builds on this module's APIError

    raw = await request.body()
    if not raw.strip():
        return None
    return loads_json(raw)


def as_object(body: Any) -> dict[str, Any]:
    """A JSON object body (an empty body counts as ``{}``)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise APIError(
            400,
            {
                "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
                if isinstance(body, list)
                else ["Invalid data. Expected a dictionary."]
            },
        )
    return body


class Fields:
    """Collects DRF-style field errors while reading a body, then raises them all at once."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.errors: dict[str, list[str]] = {}

    def error(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def has(self, field: str) -> bool:
        return self.body.get(field) is not None

    def text(
        self,
        field: str,
        required: bool = False,
        default: str | None = None,
        max_length: int = 255,
        allow_blank: bool = True,
    ) -> str | None:
        value = self.body.get(field)
        if value is None:
            if required:
                self.error(field, REQUIRED)
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(field, "Not a valid string.")
            return default
        text = str(value)
        if not allow_blank and not text.strip():
            self.error(field, "This field may not be blank.")
            return default
        if len(text) > max_length:
            self.error(field, f"Ensure this field has no more than {max_length} characters.")
            return default
        return text

    def integer(
        self,
        field: str,
        required: bool = False,
        default: int | None = None,
        min_value: int | None = None,
        max_value: int | None = None,
    ) -> int | None:
        value = self.body.get(field)
        if value is None:
            if required:
                self.error(field, REQUIRED)
            return default
        if isinstance(value, bool):
            self.error(field, "A valid integer is required.")
            return default
        try:
            number = int(value) if not isinstance(value, float) or value.is_integer() else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            self.error(field, "A valid integer is required.")
            return default
        if min_value is not None and number < min_value:
            self.error(field, f"Ensure this value is greater than or equal to {min_value}.")
            return default
        if max_value is not None and number > max_value:
            self.error(field, f"Ensure this value is less than or equal to {max_value}.")
            return default
        return number

    def number(self, field: str, required: bool = False, default: float | None = None) -> float | None:
        value = self.body.get(field)
        if value is None:
            if required:
                self.error(field, REQUIRED)
            return default
        if isinstance(value, bool):
            self.error(field, "A valid number is required.")
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.error(field, "A valid number is required.")
            return default
        if number != number or number in (float("inf"), float("-inf")):
            self.error(field, "A valid number is required.")
            return default
        return number

    def boolean(self, field: str, default: bool | None = None) -> bool | None:
        value = self.body.get(field)
        if value is None:
            return default
        parsed = parse_bool(value)
        if parsed is None:
            self.error(field, "Must be a valid boolean.")
            return default
        return parsed

    def datetime(self, field: str, required: bool = False) -> int | None:
        """Microseconds since the epoch."""
        value = self.body.get(field)
        if value is None:
            if required:
                self.error(field, REQUIRED)
            return None
        stamp = parse_datetime(value)
        if stamp is None:
            self.error(
                field,
                "Datetime has wrong format. Use one of these formats instead: "
                "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z], YYYY-MM-DDThh:mm:ssZ.",
            )
            return None
        from iotile_cloud.server.db import to_us

        return to_us(stamp)

    def choice(self, field: str, choices: Sequence[str], default: str | None = None) -> str | None:
        value = self.body.get(field)
        if value is None:
            return default
        if value not in choices:
            self.error(field, f'"{value}" is not a valid choice.')
            return default
        return str(value)

    def check(self, table: Any = None, values: dict[str, Any] | None = None) -> None:
        """Raise the collected errors; with ``table``, a null in ``values`` for a NOT NULL column is one too."""
        for name, value in (values or {}).items():
            if value is None and name in table.c and not table.c[name].nullable and name not in self.errors:
                self.error(name, NOT_NULL)
        if self.errors:
            raise APIError(400, self.errors)


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "t", "yes", "y", "on"):
            return True
        if lowered in ("0", "false", "f", "no", "n", "off", ""):
            return False
    return None


def parse_datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = str_to_datetime(value)
    except ValueError:
        return None
    if not dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc) <= stamp <= dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc):
        return None
    return stamp


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def project_slug_or_none(value: str) -> IOTileProjectSlug | None:
    try:
        return IOTileProjectSlug(value) if value.lower().startswith("p--") else None
    except ValueError:
        return None


def device_slug_or_none(value: str) -> IOTileDeviceSlug | None:
    """A device slug whose id can be stored (64-bit signed), else None."""
    try:
        slug = IOTileDeviceSlug(value) if value.lower().startswith("d--") else None
    except ValueError:
        return None
    return slug if slug is not None and slug.get_id() <= INT64_MAX else None


def device_id_or_none(value: str) -> int | None:
    """The id of a device slug (any accepted short form), None when malformed or beyond 64 bits."""
    try:
        device_id = IOTileDeviceSlug(value).get_id()
    except ValueError:
        return None
    return device_id if device_id <= INT64_MAX else None


# -- query parameters ---------------------------------------------------------------------------


def flag(request: Request, name: str) -> bool:
    return parse_bool(request.query_params.get(name, "")) is True


def query_datetime(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    stamp = parse_datetime(raw)
    if stamp is None:
        raise APIError(400, {"detail": f"Invalid {name} argument {raw!r}: expected an ISO 8601 UTC time"})
    from iotile_cloud.server.db import to_us

    return to_us(stamp)


MAX_QUERY_TEXT = 255


def query_text(request: Request, name: str, max_length: int = MAX_QUERY_TEXT) -> str | None:
    """A free-text query argument; 400 past ``max_length`` (no name or slug we store is longer)."""
    raw = request.query_params.get(name)
    if raw is not None and len(raw) > max_length:
        raise APIError(400, {"detail": f"{name} must be at most {max_length} characters"})
    return raw


def contains_text(column: Any, text: str) -> Any:
    """Case-insensitive substring match with ``%`` and ``_`` taken literally (no wildcard backtracking)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


# -- pagination ---------------------------------------------------------------------------------

STANDARD = (100, 1000)
LARGE = (1000, 10000)
SUPER_LARGE = (5000, 20000)


def _replace_query(url: str, query: str, key: str, value: Any | None) -> str:
    items = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != key]
    if value is not None:
        items.append((key, str(value)))
    items.sort()
    return f"{url}?{urlencode(items)}" if items else url


class Pager:
    """DRF page-number pagination: ``page`` (1-based), ``page_size`` clamped to the class maximum."""

    def __init__(self, request: Request, size_class: tuple[int, int]) -> None:
        default, maximum = size_class
        self.request = request
        raw_size = request.query_params.get("page_size")
        try:
            size = int(raw_size) if raw_size else default
        except ValueError:
            size = default
        self.size = min(size, maximum) if size > 0 else default
        raw_page = request.query_params.get("page", "1") or "1"
        try:
            self.page = int(raw_page)
        except ValueError:
            raise APIError(404, {"detail": "Invalid page."}) from None
        if self.page < 1:
            raise APIError(404, {"detail": "Invalid page."})

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def check(self, count: int) -> None:
        if self.page > 1 and self.offset >= count:
            raise APIError(404, {"detail": "Invalid page."})

    def links(self, count: int, returned: int) -> dict[str, Any]:
        """``count``, ``next`` and ``previous`` of a page holding ``returned`` items."""
        url = self.request.url
        base = str(url.replace(query=None))
        query = url.query
        next_url = _replace_query(base, query, "page", self.page + 1) if self.offset + returned < count else None
        previous = None
        if self.page > 1:
            previous = _replace_query(base, query, "page", None if self.page == 2 else self.page - 1)
        return {"count": count, "next": next_url, "previous": previous}

    def body(self, count: int, results: list[Any]) -> dict[str, Any]:
        return {**self.links(count, len(results)), "results": results}

    def respond_query(self, conn: Any, query: Any, order: Sequence[Any], render: Callable[[Any], Any]) -> JSON:
        """Count ``query``, then answer the requested page of it, ordered, each row rendered."""
        import sqlalchemy as sa

        count = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
        return self.respond(
            count, lambda off, lim: [render(r) for r in conn.execute(query.order_by(*order).offset(off).limit(lim))]
        )

    def respond(self, count: int, fetch: Callable[[int, int], list[Any]]) -> JSON:
        self.check(count)
        results = fetch(self.offset, self.size) if count else []
        return JSON(self.body(count, results))
