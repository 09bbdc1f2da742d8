"""The ``iotile-cloud`` command line: one module per command group, assembled in ``app``.

Every command prints one line of explanation and exits non-zero on failure; ``--help`` works
everywhere. Tokens are kept owner-only in the user config directory (``iotile-cloud login``).
"""

from iotile_cloud.cli.app import main

__all__ = ["main"]
