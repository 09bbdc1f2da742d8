"""``iotile-cloud data ...``: stream data to files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli.common import Group, domain_option, friendly_errors, logged_in_client, missing_as, needs_extra

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


@click.group(cls=Group)
def data() -> None:
    """Stream data: download to files, upload points."""


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


KINDS = {"s--": ("stream", "stream/"), "d--": ("device", "device/"), "v--": ("variable", "variable/")}


def iso_utc_strings(stamps: Any) -> Any:
    """ISO 8601 UTC text with microseconds (``2026-11-25T10:42:04.099591Z``) for an Arrow timestamp column.

    numpy formats it the same way on every pyarrow version (pyarrow's strftime changed what ``%S`` means).
    """
    import numpy as np
    import pyarrow as pa

    micros = stamps.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    text = np.char.add(np.datetime_as_string(micros.astype("datetime64[us]"), unit="us"), "Z")
    return pa.array(text, type=pa.string())


def check_exists(client: Any, filter: str) -> None:
    """``s--``/``d--``/``v--`` must name something the account can see: say so rather than write 0 points."""
    kind = KINDS.get(filter[:3].lower())
    if kind is None:
        raise click.BadParameter("give a stream (s--), device (d--) or variable (v--) slug", param_hint="FILTER")
    with missing_as(kind[0], filter):
        client.get(f"{kind[1]}{filter}/")


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
@domain_option
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
        from iotile_cloud.stream.frames import convert_units, fetch_table

    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise click.BadParameter("the file name must end in .csv, .parquet or .json", param_hint="-o")
    folder = output.absolute().parent
    if not folder.is_dir():
        raise click.ClickException(f"The folder {folder} does not exist: create it first or choose another -o")
    bar = _Bar("Downloading")
    with friendly_errors():
        client = logged_in_client(domain)
        check_exists(client, filter)
        try:
            table = fetch_table(client, filter, start=start, end=end, lastn=lastn, progress=bar)
        finally:
            bar.close()
        if unit:
            table = convert_units(table, client, unit)
    try:
        _write(table, output, fmt)
    except OSError as error:
        raise click.ClickException(f"Could not write {output}: {error.strerror or error}") from None
    click.echo(f"Wrote {table.num_rows} points to {output}")


def _write(table: Any, output: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        return
    table = table.set_column(0, "timestamp", iso_utc_strings(table.column("timestamp")))
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, output)
    else:
        table.to_pandas().to_json(output, orient="records")


UPLOAD_BATCH = 2000


def _points(csv_file: Path, stream: str) -> list[dict[str, Any]]:
    """Points from a CSV with a ``timestamp`` column and an ``int_value`` or ``value`` column."""
    import csv

    with csv_file.open(newline="") as fp:
        rows = csv.DictReader(fp)
        names = set(rows.fieldnames or [])
        column = "int_value" if "int_value" in names else "value" if "value" in names else None
        if "timestamp" not in names or column is None:
            raise click.ClickException(
                f"{csv_file}: needs a header with timestamp and int_value (or value) columns; got {rows.fieldnames}"
            )
        points = []
        for line, row in enumerate(rows, start=2):
            text = (row[column] or "").strip()
            try:
                number: int | float = int(text) if column == "int_value" else float(text)
            except ValueError:
                raise click.ClickException(f"{csv_file}:{line}: {column} {text!r} is not a number") from None
            point: dict[str, Any] = {"stream": stream, "timestamp": row["timestamp"], column: number}
            if column == "value":
                point["type"] = "ITR"
            points.append(point)
    return points


@data.command("upload")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stream", required=True, help="The stream (s--<project>--<device>--<variable>)")
@domain_option
def upload_points(csv_file: Path, stream: str, domain: str | None) -> None:
    """Add points to a stream from a CSV with timestamp and int_value (or value) columns."""
    points = _points(csv_file, stream)
    with friendly_errors():
        client = logged_in_client(domain)
        with missing_as("stream", stream):
            client.get(f"stream/{stream}/")
        stored = 0
        for first in range(0, len(points), UPLOAD_BATCH):
            answer = client.post("data/", points[first : first + UPLOAD_BATCH])
            stored += int(answer.get("count", 0)) if isinstance(answer, dict) else len(answer)
    click.echo(f"Stored {stored} points on {stream}")
