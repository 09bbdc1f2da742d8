"""``CloudHelper``: the original mock cloud's helpers and attributes, backed by a real local server.

Like the original fake, objects made with the ``quick_add_*`` helpers or ``add_data`` are open to
every helper-made user: each such user is an owner (``a0``) of each such org. The first helper-made
user logs in with the fixed token ``JWT_USER`` (the fixture servers accept it; ``iotile-cloud serve``
does not). The original's dictionaries (``devices``, ``fleets``, ``streamers``, ``raw_report_files``, ...)
are read-only views of the server's database, in the server's own shapes. Everything else
(permissions, pagination, value conversion) is the real server's behaviour.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from iotile_cloud.server import catalog, db, model, points, serialize
from iotile_cloud.server.catalog import registry
from iotile_cloud.server.routes import ota
from iotile_cloud.server.routes.auth import create_user
from iotile_cloud.server.routes.data import insert_event
from iotile_cloud.server.routes.orgs import slugify
from iotile_cloud.server.run import LiveServer
from iotile_cloud.server.serialize import Lookup
from iotile_cloud.utils.basic import str_to_datetime
from iotile_cloud.utils.gid import (
    IOTileDeviceSlug,
    IOTileFleetSlug,
    IOTileProjectSlug,
    IOTileStreamerSlug,
    IOTileStreamSlug,
)

DEFAULT_ORG_NAME = "Quick Test Org"
DEFAULT_ORG_SLUG = "quick-test-org"
DEFAULT_SELECTORS = {0: 0xD7FF, 1: 0x5FFF}
DEFAULT_SG = "water-meter-v1-1-0"
DEFAULT_TEMPLATE = "internaltestingtemplate-v0-1-0"
FIXED_TOKEN = "JWT_USER"
# The original fake's fixed dates for OTA records.
DEPLOYMENT_RELEASED_ON = "2018-10-16T00:00:00Z"
DEPLOYMENT_COMPLETED_ON = "2018-10-15T00:00:00Z"
DEPLOYMENT_SCRIPT = {"name": "foo", "url": "bar.com/zipzap", "key": "baz", "major_version": 1}
DEPLOYMENT_SCRIPT_ID = 2  # z--0000-0002, as the original fake


class CloudHelper:
    DEFAULT_ORG_NAME = DEFAULT_ORG_NAME
    DEFAULT_ORG_SLUG = DEFAULT_ORG_SLUG

    def __init__(self, server: LiveServer, config_file: str | Path | None = None) -> None:
        self.server = server
        self.logger = logging.getLogger(__name__)
        self._config_file = config_file
        self._stream_folder: Path | None = None
        self.users: dict[str, str] = {}
        self.deployment_count = 0
        self._deployments: dict[str, list[int]] = {}

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def engine(self) -> sa.Engine:
        return self.server.engine

    @property
    def _state(self) -> Any:
        return self.server.app.state.iotile

    def compaction_paused(self) -> Any:
        """A context in which the server's background compaction does not run (look at segments)."""
        return self._state.compactor.paused()

    @property
    def request_count(self) -> int:
        return int(self._state.requests.value)

    @request_count.setter
    def request_count(self, value: int) -> None:
        self._state.requests.reset(value)

    @property
    def error_count(self) -> int:
        return int(self._state.errors.value)

    @error_count.setter
    def error_count(self, value: int) -> None:
        self._state.errors.reset(value)

    def reset(self) -> None:
        """Empty every table (as if the server were new), zero the counters, reload ``config_file``."""
        with self.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(sa.delete(table))
        for folder in ("reports", "events"):
            for path in (self.server.data_dir / folder).glob("*"):
                path.unlink()
        self.request_count = 0
        self.error_count = 0
        self.users = {}
        self.deployment_count = 0
        self._deployments = {}
        if self._state.fixed_tokens is not None:
            self._state.fixed_tokens.clear()
        self._stream_folder = None
        if self._config_file is not None:
            self.add_data(self._config_file)

    # -- the original's views of its records (read from the database) ---------------------------

    def _view(
        self, query: Any, key: Callable[[Row[Any]], Any], body: Callable[[Row[Any], Lookup], Any]
    ) -> dict[Any, Any]:
        with self.engine.connect() as conn:
            lk = Lookup(conn)
            return {key(row): body(row, lk) for row in conn.execute(query)}

    @property
    def devices(self) -> dict[str, dict[str, Any]]:
        return self._view(
            sa.select(db.devices).order_by(db.devices.c.id), lambda r: str(IOTileDeviceSlug(r.id)), serialize.device
        )

    @property
    def projects(self) -> dict[str, dict[str, Any]]:
        return self._view(sa.select(db.projects).order_by(db.projects.c.gid), lambda r: r.id, serialize.project)

    @property
    def orgs(self) -> dict[str, dict[str, Any]]:
        return self._view(sa.select(db.orgs).order_by(db.orgs.c.created_on), lambda r: r.slug, serialize.org)

    @property
    def fleets(self) -> dict[str, dict[str, Any]]:
        return self._view(
            sa.select(db.fleets).order_by(db.fleets.c.id), lambda r: str(IOTileFleetSlug(r.id)), serialize.fleet
        )

    @property
    def fleet_members(self) -> dict[str, dict[str, tuple[str, bool, bool]]]:
        """``{fleet slug: {device slug: (device slug, is_access_point, always_on)}}``."""
        members: dict[str, dict[str, tuple[str, bool, bool]]] = {slug: {} for slug in self.fleets}
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(db.fleet_members).order_by(db.fleet_members.c.id)):
                device = str(IOTileDeviceSlug(row.device_id))
                members[str(IOTileFleetSlug(row.fleet_id))][device] = (
                    device,
                    bool(row.is_access_point),
                    bool(row.always_on),
                )
        return members

    @property
    def streamers(self) -> dict[str, dict[str, Any]]:
        return self._view(
            sa.select(db.streamers).order_by(db.streamers.c.id),
            lambda r: str(IOTileStreamerSlug(r.device_id, r._mapping["index"])),
            lambda r, _lk: serialize.streamer(r),
        )

    @property
    def streams(self) -> dict[str, dict[str, Any]]:
        return self._view(
            sa.select(db.streams).where(db.streams.c.implicit.is_(False)).order_by(db.streams.c.pk),
            lambda r: r.slug,
            serialize.stream,
        )

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        return self._view(
            sa.select(db.properties).order_by(db.properties.c.id), lambda r: r.name, lambda r, _lk: serialize.prop(r)
        )

    @property
    def events(self) -> dict[int, dict[str, Any]]:
        query = (
            sa.select(db.events, db.streams.c.slug.label("stream_slug"))
            .join(db.streams, db.streams.c.pk == db.events.c.stream_pk)
            .order_by(db.events.c.id)
        )
        return self._view(query, lambda r: r.id, lambda r, _lk: serialize.event(r, _stream_info(r.stream_slug)))

    @property
    def reports(self) -> dict[str, dict[str, Any]]:
        query = (
            sa.select(db.streamer_reports, db.streamers.c.device_id, db.streamers.c.index)
            .join(db.streamers, db.streamers.c.id == db.streamer_reports.c.streamer_id)
            .order_by(db.streamer_reports.c.created_on)
        )
        return self._view(
            query,
            lambda r: r.id,
            lambda r, lk: serialize.streamer_report(r, str(IOTileStreamerSlug(r.device_id, r._mapping["index"])), lk),
        )

    @property
    def raw_report_files(self) -> dict[str, bytes]:
        """The files of the uploaded reports, as received, by report id."""
        folder = self.server.data_dir / "reports"
        return {path.name: path.read_bytes() for path in folder.glob("*")} if folder.is_dir() else {}

    @property
    def sgs(self) -> dict[str, dict[str, Any]]:
        return self._registered("sg")

    @property
    def dts(self) -> dict[str, dict[str, Any]]:
        return self._registered("dt")

    def _registered(self, kind: str) -> dict[str, dict[str, Any]]:
        table = db.catalog_entries
        return self._view(
            sa.select(table).where(table.c.kind == kind).order_by(table.c.slug),
            lambda r: r.slug,
            lambda r, _lk: json.loads(r.body),
        )

    @property
    def ota_devices(self) -> dict[str, dict[str, Any]]:
        """The OTA view (``/ota/device/<slug>/``) of each claimed device."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.devices).where(db.devices.c.project_id.is_not(None))).all()
            return {str(IOTileDeviceSlug(r.id)): ota.device_info(conn, r) for r in rows}

    @property
    def ota_scripts(self) -> dict[str, dict[str, Any]]:
        return self._view(
            sa.select(db.ota_scripts).order_by(db.ota_scripts.c.id),
            lambda r: ota.script_slug(r.id),
            lambda r, lk: {**ota.script_body(r, lk), "url": r.url, "key": r.key},
        )

    @property
    def deployments(self) -> dict[int, dict[str, Any]]:
        return self._view(
            sa.select(db.ota_deployments).order_by(db.ota_deployments.c.id), lambda r: r.id, ota.deployment_body
        )

    @property
    def datablocks(self) -> dict[str, dict[str, Any]]:
        from iotile_cloud.server.routes.datablocks import datablock_body

        return self._view(sa.select(db.datablocks).order_by(db.datablocks.c.id), lambda r: r.slug, datablock_body)

    @property
    def generated_reports(self) -> dict[str, dict[str, Any]]:
        from iotile_cloud.server.routes.generated import generated_body

        return self._view(
            sa.select(db.generated_reports).order_by(db.generated_reports.c.created_on),
            lambda r: r.id,
            generated_body,
        )

    # -- helpers used by the quick_add_* functions ----------------------------------------------

    def _fixed_utc_timestr(self) -> str:
        """The original's unchanging, timezone-aware time string."""
        return datetime.datetime(2018, 1, 1).isoformat() + "Z"

    def deployment_incrementer(self) -> int:
        self.deployment_count += 1
        return self.deployment_count

    def _find_unique_slug(self, slug_type: str, current_slugs: Iterable[str]) -> tuple[str, int]:
        """A slug of type ``p``, ``d`` or ``g`` not in ``current_slugs`` (and its number)."""
        kinds: dict[str, Any] = {"p": IOTileProjectSlug, "d": IOTileDeviceSlug, "g": IOTileFleetSlug}
        if slug_type not in kinds:
            raise ValueError(f"Unknown slug type: {slug_type}")
        taken = set(current_slugs)
        guess = len(taken)
        while str(kinds[slug_type](guess)) in taken:
            guess += 1
        return str(kinds[slug_type](guess)), guess

    def _ensure_quicktest_org(self) -> str:
        with self.engine.begin() as conn:
            self._ensure_org(conn, DEFAULT_ORG_SLUG, DEFAULT_ORG_NAME)
        return DEFAULT_ORG_SLUG

    def _get_streamer_ack(self, device_id: int | str, index: int) -> int:
        streamer = self.streamers.get(str(IOTileStreamerSlug(device_id, index)))
        return int(streamer["last_id"]) if streamer else 0

    def _raw_stream_counts(self, device_slug: str) -> dict[str, dict[str, Any]]:
        """The ``stream_counts`` of ``/device/<slug>/extra/``."""
        from iotile_cloud.server.routes.devices import stream_counts

        with self.engine.connect() as conn:
            return stream_counts(conn, IOTileDeviceSlug(device_slug).get_id())

    def _helper_users(self, conn: Connection) -> list[int]:
        return [r.id for r in conn.execute(sa.select(db.users.c.id))]

    def _system_user(self, conn: Connection) -> int:
        users = self._helper_users(conn)
        if users:
            return users[0]
        return int(
            create_user(
                conn, email="quick_test_user@localhost", username="quick_test_user", password=uuid.uuid4().hex
            ).id
        )

    def _share_org(self, conn: Connection, org_id: str) -> None:
        for user_id in self._helper_users(conn):
            exists = conn.execute(
                sa.select(db.memberships.c.id).where(
                    db.memberships.c.org_id == org_id, db.memberships.c.user_id == user_id
                )
            ).first()
            if exists is None:
                conn.execute(
                    sa.insert(db.memberships).values(
                        org_id=org_id, user_id=user_id, role="a0", is_active=True, created_on=db.now_us()
                    )
                )

    def _ensure_org(self, conn: Connection, slug: str, name: str | None = None) -> str:
        row = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == slug)).first()
        if row is not None:
            return str(row.id)
        org_id = str(uuid.uuid4())
        conn.execute(
            sa.insert(db.orgs).values(
                id=org_id,
                name=name or slug,
                slug=slug,
                about="",
                created_on=db.now_us(),
                created_by=self._system_user(conn),
            )
        )
        self._share_org(conn, org_id)
        return org_id

    def _add_user(self, conn: Connection, email: str, password: str, username: str | None, is_staff: bool) -> str:
        name = username or slugify(email.split("@")[0]).replace("-", "_") or "user"
        base, n = name, 1
        while conn.execute(sa.select(db.users.c.id).where(db.users.c.slug == name.lower())).first():
            n += 1
            name = f"{base}{n}"
        create_user(conn, email=email, username=name, password=password, is_staff=is_staff)
        for (org_id,) in conn.execute(sa.select(db.orgs.c.id)).all():
            self._share_org(conn, org_id)
        self.users[email] = password
        fixed = self._state.fixed_tokens
        if fixed is not None and FIXED_TOKEN not in fixed:
            fixed[FIXED_TOKEN] = email.lower()
        return name

    # -- the original helpers -------------------------------------------------------------------

    def quick_add_user(
        self,
        email: str = "test@arch-iot.com",
        password: str = "test",
        *,
        username: str | None = None,
        is_staff: bool = False,
    ) -> str:
        """Add a user (an owner of every helper-made org). Returns the username."""
        with self.engine.begin() as conn:
            if conn.execute(sa.select(db.users.c.id).where(db.users.c.email == email.lower())).first():
                raise ValueError(f"User already exists, email: {email}")
            return self._add_user(conn, email, password, username, is_staff)

    def quick_add_org(self, name: str, slug: str | None = None) -> str:
        slug = slug or name.lower().replace(" ", "-")
        with self.engine.begin() as conn:
            if conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == slug)).first():
                raise ValueError("Attempted to add a duplicate organization")
            self._ensure_org(conn, slug, name)
        return slug

    def quick_add_project(self, name: str | None = None, org_slug: str | None = None) -> tuple[str, str]:
        """Add a project (in ``quick-test-org`` unless told). Returns ``(uuid, slug)``."""
        with self.engine.begin() as conn:
            if org_slug is None:
                org_id = self._ensure_org(conn, DEFAULT_ORG_SLUG, DEFAULT_ORG_NAME)
            else:
                row = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org_slug)).first()
                if row is None:
                    raise ValueError(f"Attempted to add a project to an org that does not exist, slug: {org_slug}")
                org_id = row.id
            count = conn.execute(sa.select(sa.func.count()).select_from(db.projects)).scalar_one()
            gid = (conn.execute(sa.select(sa.func.max(db.projects.c.gid))).scalar() or 0) + 1
            project_id = str(uuid.uuid4())
            conn.execute(
                sa.insert(db.projects).values(
                    id=project_id,
                    gid=gid,
                    name=name or f"Autogenerated Project {count + 1}",
                    org_id=org_id,
                    created_on=db.now_us(),
                    created_by=self._system_user(conn),
                )
            )
        return project_id, str(IOTileProjectSlug(gid))

    def quick_add_device(
        self,
        project_id: str,
        device_id: int | str | None = None,
        streamers: list[int] | None = None,
        *,
        sg: str = DEFAULT_SG,
        template: str = DEFAULT_TEMPLATE,
    ) -> str:
        """Add a device claimed into a project (its sensor graph's streams are made).

        A device known only from ``quick_add_streamer`` or an uploaded report is claimed instead.
        """
        with self.engine.begin() as conn:
            project = conn.execute(sa.select(db.projects).where(db.projects.c.id == project_id)).first()
            if project is None:
                raise ValueError(f"Unknown project id: {project_id}")
            if device_id is None:
                number = (conn.execute(sa.select(sa.func.max(db.devices.c.id))).scalar() or 0) + 1
            else:
                number = IOTileDeviceSlug(device_id).get_id()
            existing = conn.execute(sa.select(db.devices).where(db.devices.c.id == number)).first()
            if existing is not None and existing.project_id is not None:
                raise ValueError(f"Attempted to add a duplicate device slug: {IOTileDeviceSlug(number)}")
            count = conn.execute(
                sa.select(sa.func.count()).select_from(db.devices).where(db.devices.c.project_id.is_not(None))
            ).scalar_one()
            user_id = self._system_user(conn)
            values = {
                "label": f"Unnamed device {count + 1}",
                "active": True,
                "sg": sg,
                "template": template,
                "org_id": project.org_id,
                "project_id": project.id,
                "claimed_by": user_id,
                "claimed_on": db.now_us(),
            }
            if existing is None:
                conn.execute(sa.insert(db.devices).values(id=number, created_on=db.now_us(), **values))
            else:
                conn.execute(sa.update(db.devices).where(db.devices.c.id == number).values(**values))
            device = conn.execute(sa.select(db.devices).where(db.devices.c.id == number)).one()
            model.apply_sensor_graph(conn, device, project, user_id)
        slug = str(IOTileDeviceSlug(number))
        for index, ack in enumerate(streamers or []):
            self.quick_add_streamer(slug, index, ack)
        return slug

    def quick_add_streamer(
        self, device_id: int | str, streamer_index: int, streamer_ack: int, selector: int | None = None
    ) -> str:
        """Set a streamer's acknowledged id. A device not added yet is recorded, unclaimed and inactive,
        in ``quick-test-org`` (so reports can be uploaded for it, as with the original fake)."""
        slug = IOTileStreamerSlug(device_id, int(streamer_index))
        number = IOTileDeviceSlug(slug.get_device()).get_id()
        if selector is None:
            selector = DEFAULT_SELECTORS.get(int(streamer_index), 0xFFFF)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == number)).first() is None:
                conn.execute(
                    sa.insert(db.devices).values(
                        id=number,
                        label="",
                        active=False,
                        template=DEFAULT_TEMPLATE,
                        org_id=self._ensure_org(conn, DEFAULT_ORG_SLUG, DEFAULT_ORG_NAME),
                        created_on=db.now_us(),
                    )
                )
            where = (db.streamers.c.device_id == number, db.streamers.c.index == int(streamer_index))
            if conn.execute(sa.select(db.streamers.c.id).where(*where)).first():
                conn.execute(sa.update(db.streamers).where(*where).values(last_id=int(streamer_ack), selector=selector))
            else:
                conn.execute(
                    sa.insert(db.streamers).values(
                        device_id=number,
                        index=int(streamer_index),
                        selector=selector,
                        last_id=int(streamer_ack),
                        last_reboot_ts=_us(self._fixed_utc_timestr()),
                        created_on=db.now_us(),
                    )
                )
        return str(slug)

    def quick_add_fleet(
        self, devices: list[Any], is_network: bool = False, fleet_slug: Any = None, org_slug: str | None = None
    ) -> str:
        """``devices``: ids, slugs, or ``(id, is_access_point[, always_on])`` tuples."""
        with self.engine.begin() as conn:
            if (
                org_slug is not None
                and not conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org_slug)).first()
            ):
                raise ValueError(f"Unkown org slug specified for fleet, slug: {org_slug}")
            org_id = self._ensure_org(conn, org_slug or DEFAULT_ORG_SLUG, None if org_slug else DEFAULT_ORG_NAME)
            entries: list[tuple[int, bool, bool]] = []
            for entry in devices:
                access, always_on = False, True
                if isinstance(entry, tuple):
                    if len(entry) not in (2, 3):
                        raise ValueError("Invalid tuple for device that does not contain 2 or 3 items")
                    entry, access, *rest = entry
                    always_on = rest[0] if rest else True
                number = IOTileDeviceSlug(entry).get_id()
                if conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == number)).first() is None:
                    raise ValueError(f"Unknown device specified in fleet, slug: {IOTileDeviceSlug(number)}")
                entries.append((number, bool(access), bool(always_on)))
            count = conn.execute(sa.select(sa.func.count()).select_from(db.fleets)).scalar_one()
            values: dict[str, Any] = {
                "name": f"Unnamed Fleet {count + 1}",
                "org_id": org_id,
                "is_network": bool(is_network),
                "created_on": _us(self._fixed_utc_timestr()),
                "created_by": self._system_user(conn),
            }
            if fleet_slug is not None:
                values["id"] = IOTileFleetSlug(fleet_slug).get_id()
                if conn.execute(sa.select(db.fleets.c.id).where(db.fleets.c.id == values["id"])).first():
                    raise ValueError(f"Fleet already exists with given slug: {IOTileFleetSlug(fleet_slug)}")
            fleet_id = db.new_id(conn.execute(sa.insert(db.fleets).values(**values)))
            for number, access, always_on in entries:
                conn.execute(
                    sa.insert(db.fleet_members).values(
                        fleet_id=fleet_id, device_id=number, always_on=always_on, is_access_point=access
                    )
                )
        return str(IOTileFleetSlug(int(fleet_id)))

    def quick_add_sg(self, slug: str = DEFAULT_SG, app_tag: int = 1027) -> str:
        """Register a sensor graph (any slug) with this ``app_tag``; ``/sg/<slug>/`` answers it."""
        with self.engine.begin() as conn:
            registry.register(conn, "sg", slug, app_tag=app_tag)
        return slug

    def quick_add_dt(self, slug: str = DEFAULT_TEMPLATE, os_tag: int = 0) -> str:
        """Register a device template (any slug) with this ``os_tag``; ``/dt/<slug>/`` answers it."""
        with self.engine.begin() as conn:
            registry.register(conn, "dt", slug, os_tag=os_tag)
        return slug

    def quick_add_ota_device_info(self, device_slug: int | str) -> None:
        """Make ``/ota/device/<slug>/`` answer for the device (a claimed, active device already does)."""
        number = IOTileDeviceSlug(device_slug).get_id()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(db.devices).where(db.devices.c.id == number)).first()
            if row is None:
                raise ValueError(f"Unknown device: {IOTileDeviceSlug(number)}")
            conn.execute(
                sa.update(db.devices)
                .where(db.devices.c.id == number)
                .values(sg=row.sg or DEFAULT_SG, template=row.template or DEFAULT_TEMPLATE)
            )

    def quick_add_deployment_to_fleet(
        self, fleet_id: Any, deployment_id: Any, criteria: list[str], completed: bool = False
    ) -> None:
        """Add a released deployment request of script ``z--0000-0002`` for each device of the fleet.

        As the original fake, each device gets its own request (numbered by ``deployment_incrementer``).
        """
        fleet = IOTileFleetSlug(fleet_id).get_id()
        with self.engine.begin() as conn:
            fleet_row = conn.execute(sa.select(db.fleets).where(db.fleets.c.id == fleet)).first()
            if fleet_row is None:
                raise ValueError("fleet slug does not exist")
            deployments = self._deployments.setdefault(str(deployment_id), [])
            if deployments:
                raise ValueError("deployment ID already exists")
            if (
                conn.execute(sa.select(db.ota_scripts.c.id).where(db.ota_scripts.c.id == DEPLOYMENT_SCRIPT_ID)).first()
                is None
            ):
                conn.execute(
                    sa.insert(db.ota_scripts).values(
                        id=DEPLOYMENT_SCRIPT_ID,
                        org_id=fleet_row.org_id,
                        released=True,
                        created_on=db.now_us(),
                        **DEPLOYMENT_SCRIPT,
                    )
                )
            members = conn.execute(
                sa.select(db.fleet_members.c.device_id)
                .where(db.fleet_members.c.fleet_id == fleet)
                .order_by(db.fleet_members.c.device_id)
            ).scalars()
            for device in list(members):
                request_id = self.deployment_incrementer()
                conn.execute(
                    sa.insert(db.ota_deployments).values(
                        id=request_id,
                        script_id=DEPLOYMENT_SCRIPT_ID,
                        org_id=fleet_row.org_id,
                        fleet_id=fleet,
                        device_id=device,
                        selection_criteria=json.dumps(list(criteria)),
                        released_on=_us(DEPLOYMENT_RELEASED_ON),
                        completed_on=_us(DEPLOYMENT_COMPLETED_ON) if completed else None,
                        created_on=db.now_us(),
                    )
                )
                deployments.append(request_id)

    # -- fixtures in the original JSON format -----------------------------------------------------

    def add_data(self, path: str | Path) -> None:
        """Load the original mock cloud's JSON fixture file, each record as the file gives it."""
        data = json.loads(Path(path).read_text())
        with self.engine.begin() as conn:
            for email, password in (data.get("users") or {}).items():
                if not conn.execute(sa.select(db.users.c.id).where(db.users.c.email == email.lower())).first():
                    self._add_user(conn, email, password, None, False)
            for item in data.get("projects", []):
                self._load_project(conn, item)
            for item in data.get("devices", []):
                self._load_device(conn, item)
            for item in data.get("streams", []):
                self._load_stream(conn, item)
            for item in data.get("properties", []):
                self._load_property(conn, item)
            for item in data.get("events", []):
                self._load_event(conn, item)
            for item in data.get("datablocks", []):
                self._load_datablock(conn, item)
        if self._stream_folder is not None:
            self._load_folder(self._stream_folder)

    @property
    def stream_folder(self) -> Path | None:
        return self._stream_folder

    @stream_folder.setter
    def stream_folder(self, folder: str | Path | None) -> None:
        """Setting it loads ``<stream slug>.json|.csv`` data, ``event_<id>.json`` files and
        ``variable_types/*.json`` (served in place of the built-in variable types) from it."""
        self._stream_folder = Path(folder) if folder else None
        if self._stream_folder is not None:
            self._load_folder(self._stream_folder)

    def _load_project(self, conn: Connection, item: dict[str, Any]) -> None:
        if conn.execute(sa.select(db.projects.c.id).where(db.projects.c.id == item["id"])).first():
            return
        org_id = self._ensure_org(conn, item.get("org") or DEFAULT_ORG_SLUG)
        conn.execute(
            sa.insert(db.projects).values(
                id=item["id"],
                gid=IOTileProjectSlug(item["slug"]).get_id(),
                name=item.get("name", ""),
                org_id=org_id,
                about=item.get("about", ""),
                project_template=item.get("project_template") or "default-template-v1-0-0",
                created_on=_us(item.get("created_on")),
                created_by=self._system_user(conn),
            )
        )

    def _load_device(self, conn: Connection, item: dict[str, Any]) -> None:
        number = IOTileDeviceSlug(item["slug"]).get_id()
        if conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == number)).first():
            return
        project = conn.execute(sa.select(db.projects).where(db.projects.c.id == item.get("project"))).first()
        # The record's own org wins, even where it differs from its project's.
        org_slug = item.get("org")
        org_id = self._ensure_org(conn, org_slug) if org_slug else (project.org_id if project else None)
        conn.execute(
            sa.insert(db.devices).values(
                id=number,
                label=item.get("label", ""),
                active=item.get("active", True),
                external_id=item.get("external_id", ""),
                sg=item.get("sg"),
                template=item.get("template") or "",
                org_id=org_id,
                project_id=project.id if project else None,
                lat=item.get("lat"),
                lon=item.get("lon"),
                created_on=_us(item.get("created_on")),
                claimed_by=self._system_user(conn) if project else None,
                claimed_on=_us(item["claimed_on"]) if project and item.get("claimed_on") else None,
            )
        )

    def _load_stream(self, conn: Connection, item: dict[str, Any]) -> None:
        existing = conn.execute(sa.select(db.streams).where(db.streams.c.slug == item["slug"])).first()
        if existing is not None and not existing.implicit:
            return
        project = conn.execute(sa.select(db.projects).where(db.projects.c.id == item.get("project_id"))).first()
        if project is None:
            return
        lid = item.get("var_lid")
        if lid is None:
            lid = int(str(item.get("variable") or item["slug"]).rsplit("--", 1)[1], 16)
        unit_in = (item.get("input_unit") or {}).get("slug")
        unit_out = (item.get("output_unit") or {}).get("slug")
        unit_in = unit_in if catalog.input_unit(unit_in) else None
        unit_out = unit_out if catalog.output_unit(unit_out) else None
        variable = conn.execute(
            sa.select(db.variables).where(db.variables.c.project_id == project.id, db.variables.c.lid == int(lid))
        ).first()
        if variable is None:
            variable = model.create_variable(
                conn,
                project,
                int(lid),
                item.get("var_name") or f"Stream {int(lid):04x}",
                var_type=item.get("var_type"),
                input_unit=unit_in,
                output_unit=unit_out,
            )
        device = item.get("device")
        device_id = IOTileDeviceSlug(device).get_id() if device else None
        # The record's own slug wins, even where it disagrees with its variable.
        values = {
            "slug": item["slug"],
            "variable_id": variable.id,
            "device_id": device_id,
            "data_label": item.get("data_label") or "",
            "var_type": item.get("var_type"),
            "mdo_type": item.get("mdo_type") or "S",
            "multiplication_factor": item.get("multiplication_factor"),
            "division_factor": item.get("division_factor"),
            "offset": item.get("offset"),
            "raw_value_format": item.get("raw_value_format") or "<L",
            "input_unit": unit_in,
            "output_unit": unit_out,
            "enabled": item.get("enabled", True),
            "implicit": False,
        }
        if existing is not None:
            conn.execute(sa.update(db.streams).where(db.streams.c.pk == existing.pk).values(**values))
            return
        # The original keyed its streams by slug: a record whose id another stream already has (a copied
        # record in a fixture file) still loads, under a new id.
        stream_id = item.get("id")
        if not stream_id or conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.id == stream_id)).first():
            stream_id = str(uuid.uuid4())
        conn.execute(
            sa.insert(db.streams).values(
                id=stream_id,
                project_id=project.id,
                created_on=_us(item.get("created_on")),
                **values,
            )
        )

    def _load_property(self, conn: Connection, item: dict[str, Any]) -> None:
        kind = item.get("type", "str")
        where = (db.properties.c.target == item["target"], db.properties.c.name == item["name"])
        if conn.execute(sa.select(db.properties.c.id).where(*where)).first():
            return
        conn.execute(
            sa.insert(db.properties).values(
                target=item["target"],
                name=item["name"],
                type=kind,
                is_system=bool(item.get("is_system")),
                created_on=db.now_us(),
                **{f"{kind}_value": item.get("value")},
            )
        )

    def _load_event(self, conn: Connection, item: dict[str, Any]) -> None:
        if conn.execute(sa.select(db.events.c.id).where(db.events.c.id == item["id"])).first():
            return
        stream = self._stream_row(conn, item["stream"])
        if stream is None:
            return
        stamp = item.get("timestamp")
        conn.execute(
            sa.insert(db.events).values(
                id=item["id"],
                stream_pk=stream.pk,
                ts=_us(stamp) if stamp else None,  # a null timestamp stays null
                device_timestamp=item.get("device_timestamp"),
                streamer_local_id=item.get("streamer_local_id") or 0,
                extra_data=json.dumps(item.get("extra_data") or {}),
            )
        )

    def _load_datablock(self, conn: Connection, item: dict[str, Any]) -> None:
        from iotile_cloud.utils.gid import IOTileBlockSlug

        slug = str(item["slug"])
        if conn.execute(sa.select(db.datablocks.c.slug).where(db.datablocks.c.slug == slug)).first():
            return
        parsed = IOTileBlockSlug(slug)
        device = IOTileDeviceSlug(parsed.get_id())
        org_slug = item.get("org")
        conn.execute(
            sa.insert(db.datablocks).values(
                slug=slug,
                id=item.get("id") or 0,
                device_id=device.get_id(),
                block=item.get("block") if item.get("block") is not None else parsed.get_block(),
                title=item.get("title") or "",
                description=item.get("description") or "",
                org_id=self._ensure_org(conn, org_slug) if org_slug else None,
                sg=item.get("sg"),
                created_on=_us(item.get("created_on")),
                created_by=self._system_user(conn),
            )
        )

    def _stream_row(self, conn: Connection, slug: str) -> Row[Any] | None:
        """The stream keyed by ``slug``; for a stream without a record, an implicit (unlisted) row."""
        row = conn.execute(sa.select(db.streams).where(db.streams.c.slug == slug)).first()
        if row is not None:
            return row
        try:
            parts = IOTileStreamSlug(slug).get_parts()
        except ValueError:
            return None
        gid = IOTileProjectSlug(parts["project"]).get_id()
        project = conn.execute(sa.select(db.projects).where(db.projects.c.gid == gid)).first()
        if project is None:
            return None
        lid = int(str(parts["variable"]).rsplit("--", 1)[1], 16)
        variable = model.variable_for(conn, project, lid)
        device = IOTileDeviceSlug(parts["device"]).get_id()
        pk = db.new_id(
            conn.execute(
                sa.insert(db.streams).values(
                    id=str(uuid.uuid4()),
                    slug=slug,
                    project_id=project.id,
                    device_id=device or None,
                    variable_id=variable.id,
                    implicit=True,
                    created_on=db.now_us(),
                )
            )
        )
        return conn.execute(sa.select(db.streams).where(db.streams.c.pk == pk)).one()

    def _load_folder(self, folder: Path) -> None:
        with self.engine.begin() as conn:
            for path in sorted(folder.glob("s--*")):
                if path.suffix not in (".json", ".csv") or path.name.endswith(".raw.json"):
                    continue
                stream = self._stream_row(conn, path.stem)
                if stream is None:
                    continue
                if points.has_points(conn, stream.pk):
                    continue
                rows = _folder_points(conn, stream, path)
                if rows:
                    points.append_rows(conn, rows)
            self._load_event_files(conn, folder)
            vartypes = folder / "variable_types"
            if vartypes.is_dir():
                for path in sorted(vartypes.glob("*.json")):
                    body = json.loads(path.read_text())
                    registry.register_body(conn, "vt", str(body.get("slug") or path.stem), body)

    def _load_event_files(self, conn: Connection, folder: Path) -> None:
        events_dir = self.server.data_dir / "events"
        events_dir.mkdir(exist_ok=True)
        for event in conn.execute(sa.select(db.events).where(db.events.c.data_path.is_(None))).all():
            source = folder / f"event_{event.id}.json"
            if source.is_file():
                (events_dir / f"{event.id}.json").write_bytes(source.read_bytes())
                conn.execute(
                    sa.update(db.events).where(db.events.c.id == event.id).values(data_path=f"events/{event.id}.json")
                )


def _folder_points(conn: Connection, stream: Row[Any], path: Path) -> list[dict[str, Any]]:
    """A stream folder's data file as rows: JSON points as given; CSV ``timestamp, raw value`` lines
    converted as the stream converts."""
    rows: list[dict[str, Any]] = []
    if path.suffix == ".json":
        for point in json.loads(path.read_text()):
            rows.append(
                {
                    "stream_pk": stream.pk,
                    "ts": _us(point["timestamp"]),
                    "int_value": point.get("int_value"),
                    "value": point.get("value"),
                    "type": point.get("type") or "Num",
                    "streamer_local_id": point.get("streamer_local_id") or 0,
                }
            )
        return rows
    conv = model.converter(conn, stream)
    with path.open() as fp:
        for record in csv.reader(fp, skipinitialspace=True):
            if len(record) < 2:
                continue
            raw = int(float(record[1]))
            value, kind = conv.value(raw)
            rows.append({"stream_pk": stream.pk, "ts": _us(record[0]), "int_value": raw, "value": value, "type": kind})
    return rows


def _stream_info(slug: str) -> dict[str, str]:
    parts = IOTileStreamSlug(slug).get_parts()
    return {
        "stream": slug,
        "project": str(parts["project"]),
        "device": str(parts["device"]),
        "variable": str(parts["variable"]),
    }


def _us(text: str | None) -> int:
    return db.to_us(str_to_datetime(text)) if text else db.now_us()


__all__ = ["CloudHelper", "insert_event"]
