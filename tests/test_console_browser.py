"""The web console driven through real headless Chromium (Debian's ``chromium``) with Playwright.

Screenshots of the main pages go to ``test-artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from iotile_cloud.reports import Reading, SignedListReport
from iotile_cloud.server import db
from iotile_cloud.server.routes.auth import create_user
from iotile_cloud.testing.cloud import CloudHelper
from iotile_cloud.utils.gid import IOTileDeviceSlug

from .conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "screenshots"
OWNER = ("owner@arch-iot.com", "owner-pass")
OUTSIDER = ("outsider@example.com", "outsider-pass")
POINTS = 40

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not at /usr/bin/chromium (.ci/run installs it)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--headless=new",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, url: str, who: tuple[str, str]) -> None:
    page.goto(url + "/")
    assert page.url.endswith("/signin")
    page.get_by_label("Email or username").fill(who[0])
    page.get_by_label("Password", exact=True).fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/orgs/$"))


def report(device_id: int, first: int, count: int) -> bytes:
    """Water-meter readings (stream 5001) ``first``.. with uptime stamps 10 s apart."""
    readings = [Reading(0x5001, i, 10 * i, 100 + i) for i in range(first, first + count)]
    signed = SignedListReport(device=device_id, report_id=first + count, sent_timestamp=10_000, readings=readings)
    return signed.encode()


def test_owner_walkthrough(iotile_cloud: CloudHelper, page: Any) -> None:
    cloud = iotile_cloud
    cloud.quick_add_user(*OWNER, is_staff=True)
    cloud.quick_add_org("Acme Water", "acme-water")
    url = cloud.url

    sign_in(page, url, OWNER)
    shot(page, "01-orgs")
    page.get_by_role("link", name="Acme Water").click()

    # Create a project.
    page.get_by_label("Name", exact=True).fill("North field")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/projects/[0-9a-f-]+/$"))
    assert page.get_by_role("heading", level=1).inner_text().startswith("North field")

    # Register a device from a sensor graph.
    page.get_by_label("Label", exact=True).fill("Pump 1")
    page.get_by_label("Sensor graph").select_option("water-meter-v1-1-0")
    shot(page, "02-project")
    page.get_by_role("button", name="Register device").click()
    page.wait_for_url(re.compile(r"/devices/d--[0-9a-f-]+/$"))
    device_slug = page.url.rstrip("/").rsplit("/", 1)[1]
    device_id = IOTileDeviceSlug(device_slug).get_id()
    stream_link = page.get_by_role("link", name=re.compile(r"--5001$"))
    stream_path = stream_link.get_attribute("href")
    assert stream_path is not None

    # Upload a report by dropping it on the drop zone.
    data = list(report(device_id, 1, POINTS))
    page.eval_on_selector(
        "[data-drop]",
        """(zone, bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "report.bin"));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        data,
    )
    page.wait_for_selector('form[data-uploaded="201"]')
    answer = page.locator("[data-answer]").inner_text()
    assert f"{POINTS} readings, {POINTS} stored, 0 duplicates" in answer and f"ids 1–{POINTS}" in answer
    shot(page, "03-device")
    # The same report again: accepted, nothing new stored.
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "report.bin", "mimeType": "application/octet-stream", "buffer": bytes(data)}]
    )
    page.get_by_role("button", name="Upload").click()
    playwright_api.expect(page.locator("[data-answer]")).to_contain_text(f"0 stored, {POINTS} duplicates")

    # The stream's plot draws every point.
    page.goto(url + stream_path)
    page.wait_for_selector(f'canvas[data-points="{POINTS}"]')
    assert page.locator("canvas").get_attribute("data-mode") == "raw"
    page.wait_for_selector('table[data-live="open"]')
    assert page.locator("[data-latest] tbody tr").count() == 20
    shot(page, "04-stream")

    # Keyboard: zoom in on the focused plot, then back to everything.
    page.locator("canvas").focus()
    page.keyboard.press("+")
    playwright_api.expect(page.locator("canvas")).not_to_have_attribute("data-points", str(POINTS))
    assert int(page.locator("canvas").get_attribute("data-points") or 0) < POINTS
    page.keyboard.press("0")
    page.wait_for_selector(f'canvas[data-points="{POINTS}"]')

    # A new point, stored by an API client, arrives without a reload.
    token = httpx.post(url + "/api/v1/auth/login/", json={"email": OWNER[0], "password": OWNER[1]}).json()["token"]
    received = dt.datetime.now(dt.timezone.utc).isoformat()
    upload = httpx.post(
        url + "/api/v1/streamer/report/",
        params={"timestamp": received},
        files={"file": ("next.bin", report(device_id, POINTS + 1, 1))},
        headers={"Authorization": f"Token {token}"},
    )
    assert upload.status_code == 201, upload.text
    page.wait_for_selector('table[data-live-count="1"]')
    page.wait_for_selector(f'canvas[data-points="{POINTS + 1}"]')
    newest = page.locator("[data-latest] tbody tr").first.locator("td").nth(3).inner_text()
    assert newest == str(POINTS + 1)

    # Download the CSV.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="CSV").click()
    lines = Path(download_info.value.path()).read_text().splitlines()
    header = lines[0].split(",")
    assert "value" in header and len(lines) == POINTS + 2
    assert float(lines[-1].split(",")[header.index("value")]) == 100 + POINTS + 1  # gallons, the output unit

    # Sign out: the console is closed again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin$"))
    page.goto(url + "/orgs/")
    assert page.url.endswith("/signin?next=/orgs/")


def test_outsider_cannot_open_another_orgs_pages(iotile_cloud: CloudHelper, page: Any) -> None:
    cloud = iotile_cloud
    cloud.quick_add_user(*OWNER)
    org = cloud.quick_add_org("Acme Water", "acme-water")
    project_id, project_slug = cloud.quick_add_project("North field", org)
    device = cloud.quick_add_device(project_id)
    stream = f"s--{project_slug[3:]}--{device[3:]}--5001"
    with cloud.engine.begin() as conn:  # not through quick_add_user, which shares the helper's orgs
        create_user(conn, email=OUTSIDER[0], username="outsider", password=OUTSIDER[1])
        assert conn.execute(sa.select(sa.func.count()).select_from(db.orgs)).scalar_one() == 1

    sign_in(page, cloud.url, OUTSIDER)
    assert "not a member of any organisation" in page.locator("main").inner_text()
    for path, status in (
        (f"/orgs/{org}/", 404),
        (f"/projects/{project_id}/", 404),
        (f"/devices/{device}/", 403),
        (f"/streams/{stream}/", 403),
        (f"/api/v1/stream/{stream}/plot/", 403),
    ):
        response = page.goto(cloud.url + path)
        assert response is not None and response.status == status, path
        assert "Acme Water" not in page.content() and "North field" not in page.content()
    page.goto(cloud.url + f"/orgs/{org}/")
    shot(page, "05-outsider-404")
