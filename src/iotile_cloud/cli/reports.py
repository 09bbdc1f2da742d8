"""``iotile-cloud report ...``: inspect and build streamer reports; accumulation reports."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli.common import Group, friendly_errors, logged_in_client, received_time
from iotile_cloud.reports import (
    DictionaryReport,
    Reading,
    ReportError,
    SignedListReport,
    decode_report,
    password_key,
    to_utc,
)
from iotile_cloud.utils.basic import str_to_datetime, utc_isoformat


def _key(hexkey: str | None, password: str | None) -> bytes | None:
    if hexkey and password:
        raise click.UsageError("give --key or --password, not both")
    if password:
        return password_key(password)
    if hexkey:
        try:
            key = bytes.fromhex(hexkey)
        except ValueError:
            raise click.BadParameter("must be hex digits", param_hint="--key") from None
        if len(key) != 32:
            raise click.BadParameter(f"must be 32 bytes (64 hex digits), got {len(key)}", param_hint="--key")
        return key
    return None


def report_summary(report: Any, received: dt.datetime) -> dict[str, Any]:
    """The ``report inspect --json`` object."""
    sent = report.sent_timestamp

    def stamp(item: Any) -> str | None:
        when = getattr(item, "timestamp", None) or to_utc(item.raw_timestamp, sent, received)
        return utc_isoformat(when) if when else None

    return {
        "format": report.format,
        "device": report.device,
        "report_id": getattr(report, "report_id", 0),
        "sent_timestamp": sent,
        "streamer_index": report.streamer_index if hasattr(report, "streamer_index") else None,
        "streamer_selector": report.streamer_selector if hasattr(report, "streamer_selector") else None,
        "signature_flags": report.signature_flags,
        "verified": report.verified,
        "lowest_id": getattr(report, "lowest_id", 0),
        "highest_id": getattr(report, "highest_id", 0),
        "readings": [
            {
                "stream": r.stream,
                "reading_id": r.reading_id,
                "raw_timestamp": r.raw_timestamp,
                "value": r.value,
                "timestamp": stamp(r),
            }
            for r in report.readings
        ],
        "events": [
            {
                "stream": e.stream,
                "reading_id": e.reading_id,
                "raw_timestamp": e.raw_timestamp,
                "timestamp": stamp(e),
                "extra_data": e.extra_data,
                "data": e.data,
            }
            for e in getattr(report, "events", [])
        ],
    }


@click.group(cls=Group)
def report() -> None:
    """Inspect and build streamer reports; compute accumulation reports."""


@report.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object")
@click.option("--key", "hexkey", default=None, help="32-byte user key (64 hex) for signed reports")
@click.option("--password", default=None, help="Password the user key is derived from")
@click.option("--received", default=None, help="When the report was received (UTC), for uptime readings")
def inspect(file: Path, as_json: bool, hexkey: str | None, password: str | None, received: str | None) -> None:
    """Show a report's header, signature status and readings with UTC times."""
    import orjson

    try:
        decoded = decode_report(file.read_bytes(), file.name, _key(hexkey, password))
    except ReportError as error:
        raise click.ClickException(f"{file}: {error}") from None
    summary = report_summary(decoded, received_time(received))
    if as_json:
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return
    status = {True: "verified", False: "INVALID", None: "not verified (signed: give --key or --password)"}
    click.echo(
        f"{file.name}: format {summary['format']}, device {summary['device']:#x}, "
        f"report id {summary['report_id']}, sent at uptime {summary['sent_timestamp']}"
    )
    if summary["streamer_index"] is not None:
        click.echo(
            f"streamer {summary['streamer_index']} selector {summary['streamer_selector']:#06x}, "
            f"ids {summary['lowest_id']}..{summary['highest_id']}, signature flags "
            f"{summary['signature_flags']}: {status[summary['verified']]}"
        )
    click.echo(f"{len(summary['readings'])} readings, {len(summary['events'])} events")
    for r in summary["readings"]:
        click.echo(
            f"  {r['stream']:04x}  id {r['reading_id']:>10}  {r['timestamp'] or 'unknown time':<27} {r['value']}"
        )
    for e in summary["events"]:
        click.echo(
            f"  {e['stream']:04x}  id {e['reading_id']:>10}  {e['timestamp'] or 'unknown time':<27} "
            f"event {e['extra_data']}"
        )


def _int(text: str, where: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise click.ClickException(f"{where}: {text!r} is not an integer") from None


@report.command()
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", required=True, help="Device id (int, hex or d-- slug)")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Report file: .bin (SignedListReport), .json or .mp (dictionary report)",
)
@click.option("--report-id", type=int, default=None, help="Default: the highest reading id + 1")
@click.option("--sent-timestamp", type=int, default=0, show_default=True, help="Device uptime when sent")
@click.option("--streamer-index", type=int, default=0, show_default=True)
@click.option("--selector", type=str, default="0xd7ff", show_default=True)
@click.option("--key", "hexkey", default=None, help="Sign with this 32-byte user key (64 hex)")
@click.option("--password", default=None, help="Sign with the key derived from this password")
def build(
    csv_file: Path,
    device: str,
    output: Path,
    report_id: int | None,
    sent_timestamp: int,
    streamer_index: int,
    selector: str,
    hexkey: str | None,
    password: str | None,
) -> None:
    """Build a report from a CSV with columns stream,reading_id,raw_timestamp,value (header required).

    \b
    stream         hex (5001) or 0x-prefixed (0x5001)
    raw_timestamp  device uptime in seconds; or give a "timestamp" column of UTC
                   times instead, which become real-time-clock readings
    """
    from iotile_cloud.reports.timestamps import RTC_BIT, Y2K
    from iotile_cloud.utils.gid import IOTileDeviceSlug

    try:
        device_id = IOTileDeviceSlug(device).get_id()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--device") from None
    readings = []
    with csv_file.open(newline="") as fp:
        rows = csv.DictReader(fp)
        missing = {"stream", "reading_id", "value"} - set(rows.fieldnames or [])
        if missing or not {"raw_timestamp", "timestamp"} & set(rows.fieldnames or []):
            raise click.ClickException(
                f"{csv_file}: needs columns stream, reading_id, raw_timestamp (or timestamp), "
                f"value; got {rows.fieldnames}"
            )
        for n, row in enumerate(rows, start=2):
            where = f"{csv_file}:{n}"
            stream = int(row["stream"], 16) if not row["stream"].startswith("0x") else int(row["stream"], 16)
            if row.get("raw_timestamp"):
                raw_ts = _int(row["raw_timestamp"], where)
            else:
                try:
                    when = str_to_datetime(row["timestamp"])
                except ValueError as error:
                    raise click.ClickException(f"{where}: {error}") from None
                raw_ts = RTC_BIT | int((when - Y2K).total_seconds())
            readings.append(Reading(stream, _int(row["reading_id"], where), raw_ts, _int(row["value"], where)))
    key = _key(hexkey, password)
    ids = [r.reading_id for r in readings if r.reading_id]
    rid = report_id if report_id is not None else (max(ids) + 1 if ids else 1)
    suffix = output.suffix.lower()
    try:
        if suffix in (".json", ".mp"):
            if key:
                raise click.UsageError("dictionary reports are not signed: drop --key/--password")
            dreport = DictionaryReport(
                device=device_id,
                streamer_index=streamer_index,
                streamer_selector=int(selector, 0),
                report_id=rid,
                sent_timestamp=sent_timestamp,
                lowest_id=min(ids, default=0),
                highest_id=max(ids, default=0),
            )
            from iotile_cloud.reports.dictionary import DictReading

            dreport.readings = [DictReading(r.stream, r.reading_id, r.raw_timestamp, None, r.value) for r in readings]
            output.write_bytes(dreport.encode_json() if suffix == ".json" else dreport.encode_msgpack())
        else:
            signed = SignedListReport(
                device=device_id,
                report_id=rid,
                sent_timestamp=sent_timestamp,
                readings=readings,
                streamer_index=streamer_index,
                streamer_selector=int(selector, 0),
                signature_flags=1 if key else 0,
            )
            output.write_bytes(signed.encode(key))
    except (ReportError, ValueError, OverflowError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Wrote {output} ({len(readings)} readings, report id {rid}{', signed' if key else ''})")


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
    from iotile_cloud.stream.report import AccumulationReportGenerator

    with friendly_errors():
        client = logged_in_client(domain)
        api = Api(client.domain)
        api.set_token(client.token, client.token_type)
        try:
            result = AccumulationReportGenerator(api).compute_sum(sources=list(sources), start=start, end=end)
        finally:
            api.client.close()  # Api itself has no close() yet
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
