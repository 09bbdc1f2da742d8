"""pytest plugin (entry point ``iotile_cloud``): a real local IOTile Cloud for your tests.

Fixtures:

- ``iotile_cloud_url``: the domain of a live server on a free loopback port with an empty database
  (hand it to ``Api(domain)`` or ``Client(domain)``); ``iotile_cloud`` gives the ``CloudHelper``.
- ``mock_cloud`` / ``mock_cloud_nossl`` (module scope, HTTPS with a self-signed certificate / HTTP)
  and ``mock_cloud_private`` / ``mock_cloud_private_nossl`` (emptied around each test): the names of
  the original client's fixtures, each yielding ``(domain, cloud)``. As the original fake, these
  servers accept the fixed token ``JWT_USER`` (for the first helper-made user, who also receives it
  at login); ``iotile_cloud`` and ``iotile-cloud serve`` do not.

The database is SQLite in a temporary folder, or the PostgreSQL database named by
``IOTILE_CLOUD_TEST_DATABASE_URL`` (emptied before use).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from iotile_cloud.testing.cloud import CloudHelper

DATABASE_ENV = "IOTILE_CLOUD_TEST_DATABASE_URL"


def _start(factory: pytest.TempPathFactory, ssl: bool, fixed_tokens: bool = False) -> CloudHelper:
    from iotile_cloud.server.run import LiveServer

    server = LiveServer(
        factory.mktemp("iotile-cloud"), os.environ.get(DATABASE_ENV) or None, ssl=ssl, fixed_tokens=fixed_tokens
    ).start()
    cloud = CloudHelper(server)
    cloud.reset()
    return cloud


@pytest.fixture(scope="session")
def _iotile_cloud_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudHelper]:
    cloud = _start(tmp_path_factory, ssl=False)
    yield cloud
    cloud.server.stop()


@pytest.fixture
def iotile_cloud(_iotile_cloud_session: CloudHelper) -> Iterator[CloudHelper]:
    """A live local server, emptied before the test."""
    _iotile_cloud_session.reset()
    yield _iotile_cloud_session


@pytest.fixture
def iotile_cloud_url(iotile_cloud: CloudHelper) -> str:
    return iotile_cloud.url


@pytest.fixture(scope="module")
def mock_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CloudHelper]]:
    """A local IOTile Cloud over HTTPS (self-signed: use ``Api(domain, verify=False)``)."""
    cloud = _start(tmp_path_factory, ssl=True, fixed_tokens=True)
    yield cloud.url, cloud
    cloud.server.stop()


@pytest.fixture(scope="module")
def mock_cloud_nossl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CloudHelper]]:
    """A local IOTile Cloud over plain HTTP."""
    cloud = _start(tmp_path_factory, ssl=False, fixed_tokens=True)
    yield cloud.url, cloud
    cloud.server.stop()


@pytest.fixture
def mock_cloud_private(mock_cloud: tuple[str, CloudHelper]) -> Iterator[tuple[str, CloudHelper]]:
    domain, cloud = mock_cloud
    cloud.reset()
    yield domain, cloud
    cloud.reset()


@pytest.fixture
def mock_cloud_private_nossl(mock_cloud_nossl: tuple[str, CloudHelper]) -> Iterator[tuple[str, CloudHelper]]:
    domain, cloud = mock_cloud_nossl
    cloud.reset()
    yield domain, cloud
    cloud.reset()
