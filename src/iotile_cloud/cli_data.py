"""``iotile-cloud data download`` and ``iotile-cloud report accumulate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli_reports import report

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


@click.group()
def data() -> None:
    """Download stream data."""


class _Bar:
    """A progress bar on a terminal; silent otherwise (pipes, CI)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty() or total <= 0:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@data.command()
@click.argument("filter")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write: .csv, .parquet or .json",
)
@click.option("--start", default=None, help="From this UTC time (inclusive)")
@click.option("--end", default=None, help="Until this UTC time (exclusive)")
@click.option("--lastn", type=click.IntRange(1, 100000), default=None, help="Only the last N points")
@click.option("--unit", default=None, help="Output unit (slug or short name, e.g. L, G, C)")
@click.option("--domain", default=None, help="Server (default: last login)")
def download(
    filter: str,
    output: Path,
    start: str | None,
    end: str | None,
    lastn: int | None,
    unit: str | None,
    domain: str | None,
) -> None:
    """Download a stream (s--), device (d--) or variable (v--) to a file."""
    from iotile_cloud.cli import _client, _friendly_errors, needs_extra

    with needs_extra("pandas"):
        import pyarrow as pa

        from iotile_cloud.stream.frames import convert_units, fetch_table

    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise click.BadParameter("the file name must end in .csv, .parquet or .json", param_hint="-o")
    bar = _Bar("Downloading")
    with _friendly_errors():
        client = _client(domain)
        try:
            table = fetch_table(client, filter, start=start, end=end, lastn=lastn, progress=bar)
        finally:
            bar.close()
        if unit:
            table = convert_units(table, client, unit)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        stamps = table.column("timestamp").cast(pa.timestamp("us", tz="UTC"))
        as_text = pa.compute.strftime(stamps, format="%Y-%m-%dT%H:%M:%S.%fZ")
        pacsv.write_csv(table.set_column(0, "timestamp", as_text), output)
    else:
        frame = table.to_pandas()
        frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        frame.to_json(output, orient="records")
    click.echo(f"Wrote {table.num_rows} points to {output}")


@report.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--start", required=True, help="From this UTC time (inclusive)")
@click.option("--end", default=None, help="Until this UTC time (exclusive; default now)")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON")
@click.option("--domain", default=None, help="Server (default: last login)")
def accumulate(sources: tuple[str, ...], start: str, end: str | None, as_json: bool, domain: str | None) -> None:
    """Sum each stream's output values over a time range, for project (p--), device (d--) or stream
    (s--) sources."""
    import orjson

    from iotile_cloud.api.connection import Api
    from iotile_cloud.cli import _client, _friendly_errors
    from iotile_cloud.stream.report import AccumulationReportGenerator

    with _friendly_errors():
        client = _client(domain)
        api = Api(client.domain)
        api.set_token(client.token, client.token_type)
        result = AccumulationReportGenerator(api).compute_sum(sources=list(sources), start=start, end=end)
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    if "error" in result:
        raise click.ClickException(result["error"])
    width = max((len(s) for s in result["streams"]), default=10)
    click.echo(f"{'stream':<{width}}  {'sum':>14}  units")
    for slug, row in sorted(result["streams"].items()):
        click.echo(f"{slug:<{width}}  {row['sum']:>14.3f}  {row['units']}")
    click.echo(f"{'total':<{width}}  {result['total']:>14.3f}")
