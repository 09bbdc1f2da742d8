"""``iotile-cloud login``, ``logout`` and ``whoami``."""

from __future__ import annotations

import contextlib

import click

from iotile_cloud.api.exceptions import RestBaseException
from iotile_cloud.cli.common import domain_option, friendly_errors, logged_in_client
from iotile_cloud.client import Client
from iotile_cloud.client import config as credentials


@click.command()
@click.option("--domain", default="https://iotile.cloud", show_default=True, help="Server to log in to")
@click.option("--email", prompt=True, help="Account email")
@click.option("--password", prompt=True, hide_input=True, help="Account password (prompted when left out)")
def login(domain: str, email: str, password: str) -> None:
    """Log in and keep the token (owner-only) in the user config directory."""
    with friendly_errors(), Client(domain) as client:
        account = client.login(email, password)
        path = credentials.save_credentials(domain, str(client.token), "jwt", account.get("username"))
    click.echo(f"Logged in to {domain.rstrip('/')} as {account.get('username')} (token saved in {path})")


@click.command()
@domain_option
def logout(domain: str | None) -> None:
    """Log out and forget the stored token."""
    domain = (domain or credentials.default_domain()).rstrip("/")
    client = logged_in_client(domain)
    with contextlib.suppress(RestBaseException):
        client.logout()  # the token is forgotten either way
    credentials.forget_credentials(domain)
    click.echo(f"Logged out of {domain}")


@click.command()
@domain_option
def whoami(domain: str | None) -> None:
    """Show the account the stored token belongs to."""
    with friendly_errors():
        client = logged_in_client(domain)
        info = client.get("auth/user-info/")
    click.echo(f"{info['username']} <{info['email']}> on {client.domain}")
