"""``iotile-cloud data ...``: stream data to files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli.common import friendly_errors, logged_in_client, needs_extra

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
    with needs_extra("pandas"):
        import pyarrow as pa

        from iotile_cloud.stream.frames import convert_units, fetch_table

    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise click.BadParameter("the file name must end in .csv, .parquet or .json", param_hint="-o")
    bar = _Bar("Downloading")
    with friendly_errors():
        client = logged_in_client(domain)
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
