"""``iotile-cloud api``: any route of the API, in the manner of ``gh api`` (``get`` is its read-only alias)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from iotile_cloud.cli.common import domain_option, friendly_errors, logged_in_client, parse_fields

# Asked of every list with --all; servers clamp it to their largest page (20000 on /data/).
ALL_PAGE_SIZE = 20000


def _api_path(path: str) -> str:
    path = path.strip("/") + "/"
    return path[len("api/v1/") :] if path.startswith("api/v1/") else path


def _write_all_pages(client: Any, path: str, query: dict[str, Any]) -> None:
    """Every item of every page as one JSON list, written page by page (memory stays one page)."""
    out = sys.stdout.buffer
    out.write(b"[")
    first = True
    for page in client.pages(path, **{"page_size": ALL_PAGE_SIZE, **query}):
        items = page.get("results") or []
        if not items:
            continue
        chunk = b",\n".join(orjson.dumps(item, option=orjson.OPT_INDENT_2) for item in items)
        out.write((b"\n" if first else b",\n") + chunk)
        first = False
    out.write(b"\n]\n" if not first else b"]\n")
    out.flush()


def _print(result: Any) -> None:
    if result is None:
        return
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
    else:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


def call_api(
    method: str,
    path: str,
    query: dict[str, Any],
    body: Any,
    all_pages: bool,
    domain: str | None,
) -> None:
    path = _api_path(path)
    with friendly_errors():
        client = logged_in_client(domain)
        if all_pages:
            if method != "GET":
                raise click.UsageError("--all follows the pages of a GET list")
            _write_all_pages(client, path, query)
            return
        extra = {} if body is None else {"json": body}
        _print(client.request(method, path, params=query or None, **extra))


@click.command()
@click.argument("path")
@click.option(
    "-X",
    "--method",
    type=click.Choice(["GET", "POST", "PUT", "PATCH", "DELETE"], case_sensitive=False),
    default=None,
    help="HTTP method (default: GET, or POST when fields or --input are given)",
)
@click.option("-f", "--field", "raw", multiple=True, help="key=value: a query parameter for GET, else a body field")
@click.option("-F", "--typed-field", "typed", multiple=True, help="As -f, with the value read as JSON when it can be")
@click.option("-p", "--param", "params", multiple=True, help="Query parameter key=value, whatever the method")
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="JSON request body from a file ('-' reads standard input)",
)
@click.option("--all", "all_pages", is_flag=True, help="Follow `next` links; print every item as one list")
@domain_option
def api(
    path: str,
    method: str | None,
    raw: tuple[str, ...],
    typed: tuple[str, ...],
    params: tuple[str, ...],
    input_file: Path | None,
    all_pages: bool,
    domain: str | None,
) -> None:
    """Call any API route and print its JSON answer.

    PATH is relative to /api/v1/, for example `org/`, `org/<slug>/members/` or
    `device/claim/`; the answer is printed as it comes (JSON indented, other bodies raw).
    """
    fields = parse_fields(raw, typed)
    query = parse_fields(params)
    body: Any = None
    if input_file is not None:
        text = sys.stdin.buffer.read() if str(input_file) == "-" else input_file.read_bytes()
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--input") from None
    method = (method or ("POST" if fields or body is not None else "GET")).upper()
    if method == "GET":
        query.update(fields)
    elif fields:
        if body is not None and not isinstance(body, dict):
            raise click.UsageError("fields can only be added to a JSON object body")
        body = {**(body or {}), **fields}
    call_api(method, path, query, body, all_pages, domain)


@click.command(short_help="Print the JSON of any API path (read-only alias of `api`)")
@click.argument("path")
@click.option("-p", "--param", "params", multiple=True, help="Query parameter key=value (repeatable)")
@click.option("--all", "all_pages", is_flag=True, help="Follow `next` links and print every item as one list")
@domain_option
def get(path: str, params: tuple[str, ...], all_pages: bool, domain: str | None) -> None:
    """Print the JSON of any API path, for example `iotile-cloud get device/d--0000-0000-0000-0001`.

    The same as `iotile-cloud api PATH` with GET.
    """
    call_api("GET", path, parse_fields(params), None, all_pages, domain)
