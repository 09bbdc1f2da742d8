"""``iotile-cloud get``: any API path as JSON."""

from __future__ import annotations

import sys

import click

from iotile_cloud.cli.common import domain_option, echo_json, friendly_errors, logged_in_client


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="-p")
        out[key] = value
    return out


@click.command()
@click.argument("path")
@click.option("-p", "--param", "params", multiple=True, help="Query parameter key=value (repeatable)")
@click.option("--all", "all_pages", is_flag=True, help="Follow `next` links and print every item as one list")
@domain_option
def get(path: str, params: tuple[str, ...], all_pages: bool, domain: str | None) -> None:
    """Print the JSON of any API path, e.g. `iotile-cloud get device/d--0000-0000-0000-0001`."""
    path = path.strip("/") + "/"
    if path.startswith("api/v1/"):
        path = path[len("api/v1/") :]
    with friendly_errors():
        client = logged_in_client(domain)
        query = _params(params)
        result = list(client.paginate(path, **query)) if all_pages else client.get(path, **query)
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
    else:
        echo_json(result)
