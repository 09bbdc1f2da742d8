"""``CloudHelper``: the original mock cloud's helpers, backed by a real local server.

Like the original fake, objects made with the ``quick_add_*`` helpers or ``add_data`` are open to
every helper-made user: each such user is an owner (``a0``) of each such org. Everything else
(permissions, pagination, value conversion) is the real server's behaviour.
"""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from iotile_cloud.server import catalog, db, model
from iotile_cloud.server.routes.auth import create_user
from iotile_cloud.server.routes.data import insert_event
from iotile_cloud.server.routes.orgs import slugify
from iotile_cloud.server.run import LiveServer
from iotile_cloud.utils.basic import str_to_datetime
from iotile_cloud.utils.gid import IOTileDeviceSlug, IOTileFleetSlug, IOTileProjectSlug, IOTileStreamerSlug

DEFAULT_ORG_NAME = "Quick Test Org"
DEFAULT_ORG_SLUG = "quick-test-org"
DEFAULT_SELECTORS = {0: 0xD7FF, 1: 0x5FFF}


class CloudHelper:
    DEFAULT_ORG_NAME = DEFAULT_ORG_NAME
    DEFAULT_ORG_SLUG = DEFAULT_ORG_SLUG

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self._stream_folder: Path | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def engine(self) -> sa.Engine:
        return self.server.engine

    @property
    def request_count(self) -> int:
        return int(self.server.app.state.iotile.requests.value)

    @request_count.setter
    def request_count(self, value: int) -> None:
        self.server.app.state.iotile.requests.reset(value)

    def reset(self) -> None:
        """Empty every table (as if the server were new) and zero the request count."""
        with self.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(sa.delete(table))
        self.request_count = 0
        self._stream_folder = None

    # -- helpers used by the quick_add_* functions ----------------------------------------------

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
            name = username or slugify(email.split("@")[0]).replace("-", "_") or "user"
            base, n = name, 1
            while conn.execute(sa.select(db.users.c.id).where(db.users.c.slug == name.lower())).first():
                n += 1
                name = f"{base}{n}"
            create_user(conn, email=email, username=name, password=password, is_staff=is_staff)
            for (org_id,) in conn.execute(sa.select(db.orgs.c.id)).all():
                self._share_org(conn, org_id)
        return name

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
        sg: str = "water-meter-v1-1-0",
    ) -> str:
        """Add a device claimed into a project (its sensor graph's streams are made)."""
        with self.engine.begin() as conn:
            project = conn.execute(sa.select(db.projects).where(db.projects.c.id == project_id)).first()
            if project is None:
                raise ValueError(f"Unknown project id: {project_id}")
            if device_id is None:
                number = (conn.execute(sa.select(sa.func.max(db.devices.c.id))).scalar() or 0) + 1
            else:
                number = IOTileDeviceSlug(device_id).get_id()
            if conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == number)).first():
                raise ValueError(f"Attempted to add a duplicate device slug: {IOTileDeviceSlug(number)}")
            count = conn.execute(sa.select(sa.func.count()).select_from(db.devices)).scalar_one()
            user_id = self._system_user(conn)
            conn.execute(
                sa.insert(db.devices).values(
                    id=number,
                    label=f"Unnamed device {count + 1}",
                    active=True,
                    sg=sg,
                    template="internaltestingtemplate-v1-0-0",
                    org_id=project.org_id,
                    project_id=project.id,
                    created_on=db.now_us(),
                    claimed_by=user_id,
                    claimed_on=db.now_us(),
                )
            )
            device = conn.execute(sa.select(db.devices).where(db.devices.c.id == number)).one()
            model.apply_sensor_graph(conn, device, project, user_id)
        slug = str(IOTileDeviceSlug(number))
        for index, ack in enumerate(streamers or []):
            self.quick_add_streamer(slug, index, ack)
        return slug

    def quick_add_streamer(
        self, device_id: int | str, streamer_index: int, streamer_ack: int, selector: int | None = None
    ) -> str:
        slug = IOTileStreamerSlug(device_id, int(streamer_index))
        number = IOTileDeviceSlug(slug.get_device()).get_id()
        if selector is None:
            selector = DEFAULT_SELECTORS.get(int(streamer_index), 0xFFFF)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == number)).first() is None:
                conn.execute(
                    sa.insert(db.devices).values(
                        id=number, label="", template="internaltestingtemplate-v1-0-0", created_on=db.now_us()
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
                        last_reboot_ts=db.now_us(),
                        created_on=db.now_us(),
                    )
                )
        return str(slug)

    def quick_add_fleet(
        self, devices: list[Any], is_network: bool = False, fleet_slug: Any = None, org_slug: str | None = None
    ) -> str:
        """``devices``: ids, slugs, or ``(id, is_access_point[, always_on])`` tuples."""
        with self.engine.begin() as conn:
            org_id = self._ensure_org(conn, org_slug or DEFAULT_ORG_SLUG, None if org_slug else DEFAULT_ORG_NAME)
            values: dict[str, Any] = {
                "name": "Quick Fleet",
                "org_id": org_id,
                "is_network": is_network,
                "created_on": db.now_us(),
                "created_by": self._system_user(conn),
            }
            if fleet_slug is not None:
                values["id"] = IOTileFleetSlug(fleet_slug).get_id()
            fleet_id = db.new_id(conn.execute(sa.insert(db.fleets).values(**values)))
            for entry in devices:
                access, always_on = False, True
                if isinstance(entry, tuple):
                    entry, access, *rest = entry
                    always_on = rest[0] if rest else True
                number = IOTileDeviceSlug(entry).get_id()
                conn.execute(
                    sa.insert(db.fleet_members).values(
                        fleet_id=fleet_id, device_id=number, always_on=always_on, is_access_point=access
                    )
                )
        return str(IOTileFleetSlug(int(fleet_id)))

    def quick_add_sg(self, slug: str = "water-meter-v1-1-0", app_tag: int = 1027) -> str:
        if slug not in catalog.SENSOR_GRAPHS:
            raise ValueError(f"The local server knows the built-in sensor graphs only: {list(catalog.SENSOR_GRAPHS)}")
        return slug

    def quick_add_dt(self, slug: str = "internaltestingtemplate-v1-0-0", os_tag: int = 0) -> str:
        return slug

    # -- fixtures in the original JSON format -----------------------------------------------------

    def add_data(self, path: str | Path) -> None:
        """Load the original mock cloud's JSON fixture format (users, projects, devices, streams, ...)."""
        data = json.loads(Path(path).read_text())
        with self.engine.begin() as conn:
            for email, password in (data.get("users") or {}).items():
                if not conn.execute(sa.select(db.users.c.id).where(db.users.c.email == email.lower())).first():
                    create_user(
                        conn, email=email, username=slugify(email.split("@")[0]).replace("-", "_"), password=password
                    )
            for (org_id,) in conn.execute(sa.select(db.orgs.c.id)).all():
                self._share_org(conn, org_id)
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
        if self._stream_folder is not None:
            self._load_folder(self._stream_folder)

    @property
    def stream_folder(self) -> Path | None:
        return self._stream_folder

    @stream_folder.setter
    def stream_folder(self, folder: str | Path | None) -> None:
        """Setting it loads ``<stream slug>.json|.csv`` data and ``event_<id>.json`` files from it."""
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
        conn.execute(
            sa.insert(db.devices).values(
                id=number,
                label=item.get("label", ""),
                active=item.get("active", True),
                external_id=item.get("external_id", ""),
                sg=item.get("sg"),
                template=item.get("template") or "",
                org_id=project.org_id if project else None,
                project_id=project.id if project else None,
                lat=item.get("lat"),
                lon=item.get("lon"),
                created_on=_us(item.get("created_on")),
                claimed_by=self._system_user(conn) if project else None,
                claimed_on=_us(item.get("claimed_on")) if project else None,
            )
        )

    def _load_stream(self, conn: Connection, item: dict[str, Any]) -> None:
        if conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == item["slug"])).first():
            return
        project = conn.execute(sa.select(db.projects).where(db.projects.c.id == item["project_id"])).first()
        if project is None:
            return
        lid = int(item.get("var_lid") or int(item["variable"].rsplit("--", 1)[1], 16))
        unit_in = (item.get("input_unit") or {}).get("slug")
        unit_out = (item.get("output_unit") or {}).get("slug")
        variable = conn.execute(
            sa.select(db.variables).where(db.variables.c.project_id == project.id, db.variables.c.lid == lid)
        ).first()
        if variable is None:
            variable = model.create_variable(
                conn,
                project,
                lid,
                item.get("var_name") or f"Stream {lid:04x}",
                var_type=item.get("var_type"),
                input_unit=unit_in if catalog.input_unit(unit_in) else None,
                output_unit=unit_out if catalog.output_unit(unit_out) else None,
            )
        device = item.get("device")
        stream = model.create_stream(
            conn, project, variable, IOTileDeviceSlug(device).get_id() if device else None, item.get("data_label", "")
        )
        conn.execute(
            sa.update(db.streams)
            .where(db.streams.c.pk == stream.pk)
            .values(
                slug=item["slug"],
                mdo_type=item.get("mdo_type") or "S",
                multiplication_factor=item.get("multiplication_factor"),
                division_factor=item.get("division_factor"),
                offset=item.get("offset"),
                raw_value_format=item.get("raw_value_format") or "<L",
                input_unit=unit_in if catalog.input_unit(unit_in) else None,
                output_unit=unit_out if catalog.output_unit(unit_out) else None,
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
        stream = conn.execute(sa.select(db.streams).where(db.streams.c.slug == item["stream"])).first()
        if stream is None or conn.execute(sa.select(db.events.c.id).where(db.events.c.id == item["id"])).first():
            return
        conn.execute(
            sa.insert(db.events).values(
                id=item["id"],
                stream_pk=stream.pk,
                ts=_us(item.get("timestamp")),
                device_timestamp=item.get("device_timestamp"),
                streamer_local_id=item.get("streamer_local_id") or 0,
                extra_data=json.dumps(item.get("extra_data") or {}),
            )
        )

    def _load_folder(self, folder: Path) -> None:
        with self.engine.begin() as conn:
            for stream in conn.execute(sa.select(db.streams)).all():
                if conn.execute(sa.select(db.data.c.id).where(db.data.c.stream_pk == stream.pk).limit(1)).first():
                    continue
                conv = model.converter(conn, stream)
                rows = []
                json_path, csv_path = folder / f"{stream.slug}.json", folder / f"{stream.slug}.csv"
                if json_path.is_file():
                    for point in json.loads(json_path.read_text()):
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
                elif csv_path.is_file():
                    with csv_path.open() as fp:
                        for record in csv.reader(fp, skipinitialspace=True):
                            if len(record) < 2:
                                continue
                            raw = int(float(record[1]))
                            value, kind = conv.value(raw)
                            rows.append(
                                {
                                    "stream_pk": stream.pk,
                                    "ts": _us(record[0]),
                                    "int_value": raw,
                                    "value": value,
                                    "type": kind,
                                }
                            )
                if rows:
                    conn.execute(sa.insert(db.data), rows)
            events_dir = self.server.data_dir / "events"
            events_dir.mkdir(exist_ok=True)
            for event in conn.execute(sa.select(db.events).where(db.events.c.data_path.is_(None))).all():
                source = folder / f"event_{event.id}.json"
                if source.is_file():
                    (events_dir / f"{event.id}.json").write_bytes(source.read_bytes())
                    conn.execute(
                        sa.update(db.events)
                        .where(db.events.c.id == event.id)
                        .values(data_path=f"events/{event.id}.json")
                    )


def _us(text: str | None) -> int:
    return db.to_us(str_to_datetime(text)) if text else db.now_us()


__all__ = ["CloudHelper", "insert_event"]
