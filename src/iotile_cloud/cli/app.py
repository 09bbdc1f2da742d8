"""The root ``iotile-cloud`` group: it only assembles the command groups defined in sibling modules."""

from __future__ import annotations

import click

from iotile_cloud import __version__
from iotile_cloud.cli.admin import admin
from iotile_cloud.cli.api_cmd import api, get
from iotile_cloud.cli.auth import login, logout, signup, whoami
from iotile_cloud.cli.common import Group
from iotile_cloud.cli.data import data
from iotile_cloud.cli.demo import demo
from iotile_cloud.cli.devices import device
from iotile_cloud.cli.fleets import fleet
from iotile_cloud.cli.orgs import org
from iotile_cloud.cli.projects import project
from iotile_cloud.cli.reports import report
from iotile_cloud.cli.serve import serve
from iotile_cloud.cli.simulate import simulate
from iotile_cloud.cli.streams import stream
from iotile_cloud.cli.upload import upload


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iotile-cloud")
def main() -> None:
    """Work with IOTile Cloud: log in, read data, handle streamer reports, run a local server."""


for command in (
    login,
    logout,
    signup,
    whoami,
    org,
    project,
    device,
    stream,
    fleet,
    data,
    upload,
    report,
    api,
    get,
    serve,
    simulate,
    admin,
    demo,
):
    main.add_command(command)
