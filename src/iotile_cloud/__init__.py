"""iotile-cloud: the Python toolkit for IOTile Cloud."""

__version__ = "1.0.0.dev0"
