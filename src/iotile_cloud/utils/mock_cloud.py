"""Old import path of the mock cloud fixtures; they now run a real local server.

``pytest -p iotile_cloud.utils.mock_cloud`` (or the automatic ``iotile_cloud`` plugin) provides
``mock_cloud``, ``mock_cloud_nossl``, ``mock_cloud_private`` and ``mock_cloud_private_nossl``.
"""

from iotile_cloud.testing.cloud import CloudHelper as MockIOTileCloud
from iotile_cloud.testing.plugin import (
    mock_cloud,
    mock_cloud_nossl,
    mock_cloud_private,
    mock_cloud_private_nossl,
)

__all__ = ["MockIOTileCloud", "mock_cloud", "mock_cloud_nossl", "mock_cloud_private", "mock_cloud_private_nossl"]
