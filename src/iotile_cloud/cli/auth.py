"""``iotile-cloud login``, ``logout`` and ``whoami``."""

from __future__ import annotations

import contextlib

import click

from iotile_cloud.api.exceptions import RestBaseException
from iotile_cloud.cli.common import domain_option, friendly_errors, logged_in_client, normalize_domain
from iotile_cloud.client import Client
from iotile_cloud.client import config as credentials


@click.command()
@click.option(
    "--domain",
    default="https://iotile.cloud",
    show_default=True,
    help="Server to log in to (127.0.0.1:8000 means http://127.0.0.1:8000)",
)
@click.option("--email", prompt=True, help="Account email")
@click.option("--password", prompt=True, hide_input=True, help="Account password (prompted when left out)")
def login(domain: str, email: str, password: str) -> None:
    """Log in; the token is kept owner-only in your config directory."""
    domain = normalize_domain(domain)
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


@click.command()
@click.option("--domain", required=True, help="Server to sign up on, e.g. 127.0.0.1:8000")
@click.option("--email", prompt=True, help="Account email")
@click.option("--username", default=None, help="Default: the part of the email before @")
@click.option("--name", default="", help="Your full name")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters (prompted)"
)
def signup(domain: str, email: str, username: str | None, name: str, password: str) -> None:
    """Create an account (a local server allows sign-up)."""
    domain = normalize_domain(domain)
    body = {
        "email": email,
        "username": username or email.split("@")[0],
        "name": name,
        "password": password,
        "confirm_password": password,
    }
    with friendly_errors(), Client(domain) as client:
        account = client.request("POST", "account/", json=body, auth=False)
    click.echo(f"Created account {account['username']} <{account['email']}> on {domain}; now `iotile-cloud login`")
