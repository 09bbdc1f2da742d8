"""``python -m iotile_cloud.cli``: the same as the ``iotile-cloud`` command."""

from iotile_cloud.cli.app import main

main()
