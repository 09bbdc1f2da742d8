"""``iotile-cloud demo``: the whole journey on an embedded local cloud, in a few seconds.

A server starts on SQLite (a temporary folder unless ``--data-dir``), a demo account gets an org,
a project, two water meters and an environmental pod with a week of simulated streamer reports
(``iotile_cloud.simulate``), and then the client does what a user would: log in, list devices,
download a stream and sum the water used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli.common import data_dir_option, friendly_errors, needs_extra
from iotile_cloud.utils.gid import IOTileStreamSlug

EMAIL = "demo@example.com"
TEMPLATE = "1d1p2bt101es-v2-0-0"


@click.command()
@data_dir_option
@click.option("--serve", "keep_serving", is_flag=True, help="Keep the server running afterwards (Ctrl+C stops it)")
def demo(data_dir: Path | None, keep_serving: bool) -> None:
    """Run a local cloud with a week of readings and tour it."""
    with needs_extra("server"):
        import iotile_cloud.server.run  # noqa: F401  (fails early and clearly without the [server] extra)

    with friendly_errors():
        run_demo(data_dir, keep_serving=keep_serving)


def _demo_account(conn: Any, password: str) -> None:
    """The demo account owns the server (it registers devices); a second run reuses it with a new password."""
    import sqlalchemy as sa

    from iotile_cloud.server import db
    from iotile_cloud.server.routes.auth import create_user
    from iotile_cloud.server.security import hash_password

    found = conn.execute(sa.select(db.users.c.id).where(db.users.c.email == EMAIL)).first()
    if found is None:
        create_user(conn, email=EMAIL, username=f"demo{secrets.randbelow(10**6)}", password=password, is_owner=True)
    else:
        conn.execute(
            sa.update(db.users)
            .where(db.users.c.id == found.id)
            .values(password_hash=hash_password(password), is_owner=True, is_active=True)
        )


def run_demo(data_dir: Path | None = None, *, keep_serving: bool = False) -> None:
    """The tour; without ``data_dir`` everything lives in a temporary folder that is removed at the end."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="iotile-cloud-demo-")))
        else:
            folder = Path(data_dir)
        _tour(folder, keep_serving)


def _tour(folder: Path, keep_serving: bool) -> None:
    from iotile_cloud.api.connection import Api
    from iotile_cloud.server.run import LiveServer
    from iotile_cloud.simulate import backfill
    from iotile_cloud.stream.data import StreamData
    from iotile_cloud.stream.report import AccumulationReportGenerator

    started = time.perf_counter()
    password = secrets.token_urlsafe(12)
    with LiveServer(folder) as server:
        click.echo(f"Local IOTile Cloud running at {server.url} (data in {folder})")
        with server.engine.begin() as conn:
            _demo_account(conn, password)
        kinds = [
            ("water-meter-v1-1-0", "Well pump"),
            ("water-meter-v1-1-0", "Irrigation line"),
            ("environmental-v1-0-0", "Greenhouse pod"),
        ]

        # -- the user's journey, all through the client ------------------------------------------
        api = Api(server.url)
        assert api.login(email=EMAIL, password=password)
        click.echo(f"Logged in as {api.username}")
        org = api.org.post({"name": f"Demo Farm {secrets.token_hex(2)}", "about": "iotile-cloud demo"})
        project = api.project.post({"name": "North Field", "org": org["slug"]})
        # Variables belong to a project: a pod measuring temperature on 5001 needs its own.
        greenhouse = api.project.post({"name": "Greenhouse", "org": org["slug"]})
        # The demo account owns this server, so it registers its devices itself (no staff steps).
        devices = [api.device.post({"label": label, "sg": sg, "template": TEMPLATE})["slug"] for sg, label in kinds]
        for device, target in zip(devices, (project, project, greenhouse), strict=True):
            api.device.claim.post({"device": device, "project": target["id"]})

        now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        start = now - dt.timedelta(days=7)
        # Simulated devices upload streamer reports as a gateway would (reboots, late and repeated uploads).
        sim = backfill(api.client, [(d, sg) for d, (sg, _) in zip(devices, kinds, strict=True)], start, now, seed=42)
        click.echo(
            f"Uploaded {sim.stats.readings_sent} readings in {sim.stats.uploads} streamer reports for one week "
            f"({start:%Y-%m-%d} to {now:%Y-%m-%d})\n"
        )
        pod = devices[2]

        click.echo("Devices:")
        for row in api.device.iterate(org__slug=org["slug"]):
            click.echo(f"  {row['slug']}  {row['label']:<16} sensor graph {row['sg']}")

        temperature = str(IOTileStreamSlug.build(greenhouse["slug"], pod, "5001"))
        data = StreamData(temperature, api)
        data.initialize_from_server(start=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
        values = [item["output_value"] for item in data.data]
        click.echo(
            f"\nGreenhouse temperature ({temperature}): {len(values)} readings, "
            f"min {min(values):.1f} C, mean {sum(values) / len(values):.1f} C, max {max(values):.1f} C"
        )

        try:
            from iotile_cloud.stream.frames import fetch_dataframe
        except ImportError:  # the [pandas] extra is not installed
            fetch_dataframe = None  # type: ignore[assignment]
        if fetch_dataframe is not None:
            pump = str(IOTileStreamSlug.build(project["slug"], devices[0], "5001"))
            frame = fetch_dataframe(api, pump, start=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
            daily = frame["output_value"].resample("1D").sum()
            click.echo(f"\nWell pump, gallons per day (fetch_dataframe, {len(frame)} rows, Arrow columnar path):")
            for day, gallons in daily.items():
                click.echo(f"  {day:%a %Y-%m-%d}  {gallons:8.1f}")

        report = AccumulationReportGenerator(api).compute_sum(sources=devices[:2], start=start, end=now)
        click.echo("\nWater used this week (accumulation report):")
        for slug, row in sorted(report["streams"].items()):
            click.echo(f"  {slug}  {row['sum']:10.1f} {row['units']}")
        click.echo(f"  {'total':<41}{report['total']:10.1f}")
        click.echo(f"\nDemo finished in {time.perf_counter() - started:.1f} s.")
        click.echo(f"Console: {server.url}/  (log in as {EMAIL}, password {password})")
        if not keep_serving:
            click.echo("This server stops now; `iotile-cloud demo --serve` keeps it running for the console.")
        if keep_serving:
            click.echo("Serving until Ctrl+C ...")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        api.logout()
        api.client.close()  # Api itself has no close() yet
