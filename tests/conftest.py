"""Shared test set-up. The live-server fixtures come from the package's own pytest plugin."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.testing.cloud import CloudHelper

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = Path(os.environ.get("IOTILE_TESTDATA", ROOT.parent / "shared" / "testdata"))
if not TESTDATA.is_dir():
    raise RuntimeError(f"Test data not found at {TESTDATA}: set IOTILE_TESTDATA to shared/testdata")

USER = ("test@arch-iot.com", "test")
OTHER = ("other@arch-iot.com", "other-pass")


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the real user's credentials."""
    monkeypatch.setenv("IOTILE_CLOUD_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("IOTILE_CLOUD_TOKEN", raising=False)
    monkeypatch.delenv("IOTILE_CLOUD_DOMAIN", raising=False)


@pytest.fixture
def migrations_alone(request: pytest.FixtureRequest) -> Iterator[None]:
    """For tests that migrate the test database down and up: on PostgreSQL it is also the session
    server's database, whose background compaction then waits (SQLite tests use their own file)."""
    if not os.environ.get("IOTILE_CLOUD_TEST_DATABASE_URL"):
        yield
        return
    with request.getfixturevalue("_iotile_cloud_session").compaction_paused():
        yield


@pytest.fixture
def testdata() -> Path:
    return TESTDATA


@pytest.fixture
def cloud(iotile_cloud: CloudHelper) -> CloudHelper:
    """An empty live server with the default user."""
    iotile_cloud.quick_add_user(*USER)
    return iotile_cloud


@pytest.fixture
def api(cloud: CloudHelper) -> Api:
    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    return api
