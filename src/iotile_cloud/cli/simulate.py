"""``iotile-cloud simulate``: simulated devices uploading reports (the logic is in ``iotile_cloud.simulate``)."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import domain_option, friendly_errors, logged_in_client


@click.command()
@click.option("--devices", required=True, type=click.IntRange(1, 10_000), help="How many devices to create and run")
@click.option("--interval", default=60.0, show_default=True, type=click.FloatRange(1), help="Seconds between uploads")
@click.option("--signed", is_flag=True, help="Sign reports with per-device user keys (registered on the server)")
@click.option("--duration", type=click.FloatRange(0), default=None, help="Stop after this many wall-clock seconds")
@click.option("--reports", type=click.IntRange(1), default=None, help="Stop after this many upload rounds")
@click.option("--fast", is_flag=True, help="Do not wait: simulate the rounds back to back, ending about now")
@click.option("--seed", type=int, default=None, help="Repeatable readings and misbehaviour")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64), help="Parallel uploads")
@domain_option
def simulate(
    devices: int,
    interval: float,
    signed: bool,
    duration: float | None,
    reports: int | None,
    fast: bool,
    seed: int | None,
    concurrency: int,
    domain: str | None,
) -> None:
    """Simulate water meters and environmental pods uploading reports (needs a staff or server-owner login)."""
    from iotile_cloud.simulate import simulate as run

    if duration is not None and reports is not None:
        raise click.UsageError("give --duration or --reports, not both")
    with friendly_errors():
        run(
            logged_in_client(domain),
            devices,
            interval,
            signed=signed,
            reports=reports,
            duration=duration,
            fast=fast,
            seed=seed,
            concurrency=concurrency,
            echo=click.echo,
        )
