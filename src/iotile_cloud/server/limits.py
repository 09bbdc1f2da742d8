"""Limits on what one request may cost: body sizes (ASGI middleware), JSON shape, id ranges, inflation."""

from __future__ import annotations

import asyncio
import contextlib
import re
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iotile_cloud.server.http import APIError

MB = 1024 * 1024
DEFAULT_MAX_JSON_BYTES = 4 * MB
DEFAULT_MAX_UPLOAD_BYTES = 32 * MB
# Event files are small JSON documents; a bound on their inflated size stops gzip bombs.
MAX_INFLATED_BYTES = 16 * MB
# orjson refuses to write deeper than 255 levels; refuse such bodies at the door instead.
MAX_JSON_DEPTH = 128
# Objects and arrays in one JSON body. Each costs 2 bytes on the wire and ~60-100 bytes parsed (and
# a few hundred more as a field error in the answer): 4 MiB of ``{},`` was ~1 GiB and a 100 MiB
# answer. The CLI posts 2,000 points at a time; 100,000 leaves room for any real list.
MAX_JSON_CONTAINERS = 100_000
# A body that stops arriving for this long is abandoned (slow clients hold no worker for ever).
BODY_IDLE_TIMEOUT = 30.0
# ... and one that trickles in must still average this many bytes a second once BODY_GRACE seconds
# have passed: a byte every 10 s reset the idle timer for ever, so 511 such bodies held every
# connection the server admits (512), without logging in. (A 16 MiB report at 1 KiB/s: 4.5 hours.)
BODY_GRACE = 30.0
MIN_BODY_RATE = 1024


@dataclass(frozen=True)
class BodyLimits:
    """Per-request body caps: JSON routes get ``json``, routes taking multipart files get ``upload``."""

    json: int = DEFAULT_MAX_JSON_BYTES
    upload: int = DEFAULT_MAX_UPLOAD_BYTES


def _too_large(limit: int) -> APIError:
    return APIError(413, {"detail": f"Request body too large: this route accepts at most {limit} bytes."})


def upload_operations(openapi: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of every operation whose documented body is multipart (a file upload)."""
    return [
        (method.upper(), re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"))
        for path, operations in openapi.get("paths", {}).items()
        for method, operation in operations.items()
        if "multipart/form-data" in operation.get("requestBody", {}).get("content", {})
    ]


class BodyLimitMiddleware:
    """Refuses bodies over the route's cap with 413, before reading past the cap.

    A declared ``Content-Length`` over the cap is refused without reading anything; chunked (or
    lying) bodies are counted as they stream in and cut off at the cap.
    """

    def __init__(self, app: ASGIApp, api: Any, limits: BodyLimits) -> None:
        self.app = app
        self.api = api
        self.limits = limits
        self._uploads: list[tuple[str, re.Pattern[str]]] | None = None

    def limit_for(self, scope: Scope) -> int:
        if self._uploads is None:  # routes declare uploads in their OpenAPI body, so new ones count too
            self._uploads = upload_operations(self.api.openapi())
        method, path = scope["method"], scope["path"]
        if any(method == m and pattern.match(path) for m, pattern in self._uploads):
            return self.limits.upload
        return self.limits.json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                await _answer(send, APIError(400, {"detail": "Malformed Content-Length header."}))
                return
            if len(text) > 18 or int(text) > limit:  # (a long digit string is too large, and too long for int())
                await _answer(send, _too_large(limit), close=True)
                return
        seen = 0
        complete = False
        failure: APIError | None = None
        started = False
        loop = asyncio.get_running_loop()
        body_started: float | None = None

        async def counted() -> Message:
            # Past the cap (or a stalled body) the app sees a disconnect; ``guarded`` answers for it.
            nonlocal seen, complete, failure, body_started
            if complete or failure is not None:
                return await receive() if failure is None else {"type": "http.disconnect"}
            now = loop.time()
            if body_started is None:
                body_started = now
            # the later of: BODY_GRACE from the start, or when what arrived would be MIN_BODY_RATE
            due = body_started + max(BODY_GRACE, seen / MIN_BODY_RATE)
            wait = min(BODY_IDLE_TIMEOUT, due - now)
            try:
                if wait <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), wait)
            except asyncio.TimeoutError:
                failure = APIError(
                    408,
                    {
                        "detail": f"Request body stalled for {BODY_IDLE_TIMEOUT:.0f} s."
                        if wait >= BODY_IDLE_TIMEOUT
                        else f"Request body too slow: after {BODY_GRACE:.0f} s it must average "
                        f"{MIN_BODY_RATE} bytes a second."
                    },
                )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:
                    failure = _too_large(limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if failure is None or started:
                started = True
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if failure is None:
                raise
        if failure is not None and not started:
            await _answer(send, failure, close=True)


# Answers that stream hold resources until they end. Downloads (/df/, /stream/<slug>/parquet/ and
# csv/) keep one read transaction on one pooled connection: 24 of them left unread exhausted the
# pool (every other request waited 30 s for a connection and failed). Live feeds
# (/stream/<slug>/live/) last minutes each: one user opening 511 of them took every connection
# uvicorn admits (512) and everyone else got 503. So at most MAX_STREAMED_DOWNLOADS downloads and
# MAX_LIVE_FEEDS live feeds run at once per process (more answer 503), MAX_LIVE_FEEDS_PER_USER of
# them for one user (the feed route counts those). An answer left unread is dropped by the
# connection itself (``run.SEND_STALL_TIMEOUT``).
MAX_STREAMED_DOWNLOADS = 8
MAX_LIVE_FEEDS = 128
MAX_LIVE_FEEDS_PER_USER = 8
_STREAMING = {
    "download": re.compile(r"^/api/v1/(df/|stream/[^/]+/(parquet|csv)/)$"),
    "live feed": re.compile(r"^/api/v1/stream/[^/]+/live/$"),
}
# A route that takes a per-user slot puts its release here (in the request's scope); the guard
# calls it when the answer ends, however it ends.
RELEASE_SLOT = "iotile_cloud.release_slot"


def busy(detail: str) -> APIError:
    return APIError(503, {"detail": detail}, {"Retry-After": "5"})


class StreamGuard:
    """Bounds the answers that stream (downloads and live feeds) of a process: see above. Other
    routes pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.running = dict.fromkeys(_STREAMING, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = None
        if scope["type"] == "http":
            kind = next((name for name, path in _STREAMING.items() if path.match(scope["path"])), None)
        if kind is None:
            await self.app(scope, receive, send)
            return
        limit = MAX_STREAMED_DOWNLOADS if kind == "download" else MAX_LIVE_FEEDS  # read now: tests lower them
        if self.running[kind] >= limit:
            refused = busy(f"{limit} {kind}s are running: try again in a few seconds.")
            await _answer(send, refused, extra=refused.headers)
            return
        self.running[kind] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running[kind] -= 1
            release = scope.pop(RELEASE_SLOT, None)
            if release is not None:
                release()


async def _answer(send: Send, error: APIError, close: bool = False, extra: dict[str, str] | None = None) -> None:
    body = orjson.dumps(error.body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (extra or {}).items()]
    if close:  # the unread body stays on the wire: do not reuse the connection
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- uploads being decoded ------------------------------------------------------------------------

# Bytes of uploaded files (reports, event files) decoded at once in a process. Decoding takes 20-25
# times a file's size (a 16 MiB report: 300-400 MiB), so six 16 MiB reports at once took +3.1 GiB;
# with this budget, two at a time (small files pass each other freely), the others wait as coroutines.
UPLOAD_BUDGET = 32 * MB


class ByteBudget:
    """At most ``total`` bytes held at once; a holder of more waits (as a coroutine) until they free."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        size = max(1, min(size, self.total))
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            async with self._changed:
                self.free += size
                self._changed.notify_all()


# -- JSON ---------------------------------------------------------------------------------------


def loads_json(raw: bytes) -> Any:
    """Parse a JSON body; 400 ``JSON parse error - ...`` for anything we will not store.

    orjson decides (so numbers beyond 64 bits, NaN and nesting past its limit are refused); the
    standard library only words the error the way the original server did.
    """
    # Every object or array opens with one of these bytes (strings may hold some: an upper bound),
    # counted before anything is built.
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_CONTAINERS:
        raise APIError(400, {"detail": f"JSON parse error - more than {MAX_JSON_CONTAINERS} objects and arrays"})
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise APIError(400, {"detail": f"JSON parse error - {_stdlib_reason(raw) or error}"}) from None
    check_depth(value)
    return value


def _stdlib_reason(raw: bytes) -> str | None:
    import json

    try:
        json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return str(error)
    except (RecursionError, ValueError):
        return None
    return None


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """400 when containers nest deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise APIError(400, {"detail": f"JSON parse error - nested deeper than {limit} levels"})
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


# -- gzip -----------------------------------------------------------------------------------------


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Gunzip ``data`` (all members); 400 when it is not gzip or inflates past ``limit`` bytes."""
    out = bytearray()
    rest = data
    while rest:
        decoder = zlib.decompressobj(wbits=31)
        try:
            out += decoder.decompress(rest, limit + 1 - len(out))
        except zlib.error:
            raise APIError(400, {"file": ["The file is not valid gzip."]}) from None
        if len(out) > limit or decoder.unconsumed_tail:
            raise APIError(400, {"file": [f"The file inflates past {limit} bytes."]})
        if not decoder.eof:
            raise APIError(400, {"file": ["The file is not valid gzip (truncated)."]})
        rest = decoder.unused_data.lstrip(b"\0")
    return bytes(out)


def inflated_chunks(path: Path, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A stored ``.gz`` file (any number of members), inflated piece by piece, never whole in memory."""
    with path.open("rb") as fp:
        decoder = zlib.decompressobj(wbits=31)
        data = b""
        while True:
            if not data:
                data = fp.read(chunk)
                if not data:
                    return
            out = decoder.decompress(data, chunk)
            if out:
                yield out
            if decoder.eof:
                data = decoder.unused_data.lstrip(b"\0")
                decoder = zlib.decompressobj(wbits=31)
            else:
                data = decoder.unconsumed_tail
