"""The console's HTML pages. Every lookup goes through the API's own permission helpers
(``visible_org``, ``visible_project``, ``readable_device``, ``stream_by_slug``, ``org_filter``) and
every write through the API's route functions, so a page shows and does exactly what the API
would let the signed-in user see and do."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.engine import Connection

from iotile_cloud import __version__
from iotile_cloud.server import catalog, db, serialize, throttle
from iotile_cloud.server.console import session as sessions
from iotile_cloud.server.context import ROLE_NAMES, Principal, state
from iotile_cloud.server.http import APIError, Pager
from iotile_cloud.server.routes import auth, devices, notes, orgs, reports
from iotile_cloud.server.routes.streams import stream_by_slug
from iotile_cloud.server.security import token_digest
from iotile_cloud.utils.gid import int2did, int2pid

PAGE = (25, 100)
_SIGNIN_CSRF = "iotile_console_signin"
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _when(us: int | None) -> str:
    text = db.iso(us)
    return text.replace("T", " ").replace("Z", " UTC") if text else "—"


_templates.filters["when"] = _when
# Scripts come only from this server; no inline code, no frames.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SignInNeeded(Exception):
    pass


@dataclass
class Viewer:
    """The signed-in user of a console request."""

    session: sessions.Session
    principal: Principal

    @property
    def user(self) -> Any:
        return self.session.user


def render(request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(
        request=request, viewer=viewer, csrf=viewer.session.csrf if viewer else "", version=__version__, **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


class ConsoleRoute(APIRoute):
    """API errors raised by the shared helpers become HTML error pages with the same status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)
            except APIError as error:
                detail = error.body.get("detail") if isinstance(error.body, dict) else None
                return render(
                    request,
                    "error.html",
                    _viewer_or_none(request),
                    status=error.status,
                    status_code=error.status,
                    detail=detail or "This request could not be answered.",
                )

        return guarded


router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _viewer_or_none(request: Request) -> Viewer | None:
    with state(request).read() as conn:
        found = sessions.find_session(conn, request)
    return Viewer(found, Principal(user=found.user)) if found else None


def viewer(request: Request) -> Viewer:
    found = _viewer_or_none(request)
    if found is None:
        raise SignInNeeded()
    return found


async def checked_form(request: Request, who: Viewer) -> dict[str, Any]:
    """The posted form, after its CSRF token matched the session's (403 otherwise)."""
    form = await request.form()
    if not sessions.csrf_matches(who.session, form.get(sessions.CSRF_FIELD)):
        raise APIError(403, {"detail": "The form's security token is missing or out of date: reload the page."})
    return dict(form)


def api_answer(response: Response) -> Any:
    return orjson.loads(bytes(response.body))


def error_text(error: APIError) -> str:
    """An API error body as one line for a form."""
    body = error.body
    if isinstance(body, dict):
        parts = []
        for key, value in body.items():
            text = "; ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            parts.append(text if key in ("detail", "non_field_errors", "error") else f"{key}: {text}")
        return " ".join(parts)
    if isinstance(body, list):
        return "; ".join(str(v) for v in body)
    return str(body)


def paged(conn: Connection, request: Request, query: sa.Select[Any], order: list[Any]) -> tuple[list[Any], Any]:
    """One page of ``query`` and its links (the API's pager, so ``page`` and ``page_size`` work alike)."""
    pager = Pager(request, PAGE)
    count = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
    pager.check(count)
    rows = list(conn.execute(query.order_by(*order).offset(pager.offset).limit(pager.size))) if count else []
    links = pager.body(count, rows)
    return rows, {
        "count": count,
        "page": pager.page,
        "pages": max(1, -(-count // pager.size)),
        "next": _local(links["next"]),
        "previous": _local(links["previous"]),
    }


def _local(url: str | None) -> str | None:
    """A pager link without scheme and host (the page is served under whatever name it was asked by)."""
    if url is None:
        return None
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def search_term(request: Request) -> str:
    return (request.query_params.get("q") or "").strip()[:100]


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# -- sign in and out -------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path on this server (no ``//host`` or scheme) may be the place to go after signing in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/orgs/"
    return target


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/orgs/" if _viewer_or_none(request) else "/signin", status_code=303)


def _signin_page(request: Request, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "signin.html",
        None,
        status=status,
        signin_csrf=token,
        error=error,
        next=_safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        _SIGNIN_CSRF, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/signin"
    )
    return response


@router.get("/signin")
def signin_form(request: Request) -> Response:
    return _signin_page(request)


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await request.form()
    expected = request.cookies.get(_SIGNIN_CSRF, "")
    supplied = form.get(sessions.CSRF_FIELD)
    if not expected or not isinstance(supplied, str) or not secrets.compare_digest(expected, supplied):
        return _signin_page(request, "The sign-in form expired: please try again.", status=403)
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    api_token = str(form.get("token") or "").strip()
    app = state(request)
    # The API's own login path: failed attempts counted per account and client (429 past the
    # limits, before any hashing), the password hash checked off the event loop in a KDF slot.
    try:
        if api_token:
            user = await run_in_threadpool(_token_login, request, api_token)
        else:
            user = await auth._password_login(request, email, password) if email else None
    except APIError as error:
        if error.status != 429:
            raise
        response = _signin_page(request, str(error.body.get("detail", "")), status=429)
        response.headers.update(error.headers or {})
        return response
    if user is None or not user.is_active:
        return _signin_page(request, "Those credentials were not accepted.", status=401)

    def open_session() -> str:
        with app.write() as conn:
            return sessions.open_session(conn, int(user.id))

    token = await run_in_threadpool(open_session)
    response = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
    sessions.set_cookie(response, request, token)
    response.delete_cookie(_SIGNIN_CSRF, path="/signin")
    return response


def _token_login(request: Request, api_token: str) -> Any:
    """The user whose API token this is (the database keeps only its digest, which is not a
    credential); failures count against the client address like failed passwords."""
    app = state(request)
    client = throttle.keys(request, "")[1:]
    now = db.now_us()
    with app.read() as conn:
        throttle.check(conn, client, now)
        user = conn.execute(sa.select(db.users).where(db.users.c.api_token == token_digest(api_token))).first()
    if user is None:
        with app.write() as conn:
            throttle.record(conn, client, False, now)
    return user


@router.post("/signout")
async def signout(request: Request) -> Response:
    who = viewer(request)
    await checked_form(request, who)
    with state(request).write() as conn:
        sessions.close_session(conn, request)
    response = RedirectResponse("/signin", status_code=303)
    sessions.clear_cookie(response, request)
    return response


# -- organisations ---------------------------------------------------------------------------------


@router.get("/orgs/")
def org_list(request: Request) -> Response:
    who = viewer(request)
    q = search_term(request)
    query = sa.select(db.orgs).where(who.principal.org_filter(db.orgs.c.id))
    if q:
        query = query.where(db.orgs.c.name.ilike(_like(q), escape="\\"))
    with state(request).read() as conn:
        rows, pages = paged(conn, request, query, [db.orgs.c.name, db.orgs.c.slug])
        items = [{"org": row, "role": ROLE_NAMES.get(who.principal.role(conn, row.id) or "", "Staff")} for row in rows]
    return render(request, "orgs.html", who, items=items, pages=pages, q=q)


def _org_page(request: Request, who: Viewer, slug: str, form_error: str = "", status: int = 200) -> Response:
    q = search_term(request)
    with state(request).read() as conn:
        org = orgs.visible_org(conn, who.principal, slug)
        query = sa.select(db.projects).where(db.projects.c.org_id == org.id)
        if q:
            query = query.where(db.projects.c.name.ilike(_like(q), escape="\\"))
        projects, pages = paged(conn, request, query, [db.projects.c.name, db.projects.c.gid])
        members = conn.execute(
            sa.select(db.users.c.username, db.users.c.email, db.users.c.name, db.memberships.c.role)
            .join(db.users, db.users.c.id == db.memberships.c.user_id)
            .where(db.memberships.c.org_id == org.id, db.memberships.c.is_active.is_(True))
            .order_by(db.users.c.username)
        ).all()
        device_counts: dict[str, int] = dict(
            conn.execute(
                sa.select(db.devices.c.project_id, sa.func.count())
                .where(db.devices.c.project_id.in_([p.id for p in projects]))
                .group_by(db.devices.c.project_id)
            ).all()
        )
        can_admin = who.principal.can_admin(conn, org.id)
    return render(
        request,
        "org.html",
        who,
        status=status,
        org=org,
        projects=[{"row": p, "slug": f"p--{int2pid(p.gid)}", "devices": device_counts.get(p.id, 0)} for p in projects],
        pages=pages,
        q=q,
        members=[{"row": m, "role": ROLE_NAMES.get(m.role, m.role)} for m in members],
        can_admin=can_admin,
        templates=catalog.PROJECT_TEMPLATES,
        form_error=form_error,
    )


@router.get("/orgs/{slug}/")
def org_page(slug: str, request: Request) -> Response:
    return _org_page(request, viewer(request), slug)


@router.post("/orgs/{slug}/projects")
async def project_new(slug: str, request: Request) -> Response:
    who = viewer(request)
    form = await checked_form(request, who)
    body = {"org": slug, "name": form.get("name", ""), "about": form.get("about", "")}
    if form.get("project_template"):
        body["project_template"] = form["project_template"]
    try:
        answer = api_answer(orgs.project_create(request, body=body, principal=who.principal))
    except APIError as error:
        if error.status in (403, 404):
            raise
        return _org_page(request, who, slug, form_error=error_text(error), status=error.status)
    return RedirectResponse(f"/projects/{answer['id']}/", status_code=303)


# -- projects --------------------------------------------------------------------------------------


def _project_page(request: Request, who: Viewer, project_id: str, form_error: str = "", status: int = 200) -> Response:
    q = search_term(request)
    with state(request).read() as conn:
        project = orgs.visible_project(conn, who.principal, project_id)
        org = conn.execute(sa.select(db.orgs).where(db.orgs.c.id == project.org_id)).one()
        query = sa.select(db.devices).where(db.devices.c.project_id == project.id)
        if q:
            query = query.where(sa.or_(db.devices.c.label.ilike(_like(q), escape="\\"), *_device_id_match(q)))
        rows, pages = paged(conn, request, query, [db.devices.c.id])
        can_register = _registrar(who).can_register_devices and who.principal.can_admin(conn, org.id)
    return render(
        request,
        "project.html",
        who,
        status=status,
        project=project,
        project_slug=f"p--{int2pid(project.gid)}",
        org=org,
        devices=[{"row": d, "slug": f"d--{int2did(d.id)}"} for d in rows],
        pages=pages,
        q=q,
        can_register=can_register,
        sensor_graphs=sorted(catalog.SENSOR_GRAPHS),
        device_templates=sorted(catalog.DEVICE_TEMPLATES),
        form_error=form_error,
    )


def _registrar(who: Viewer) -> Principal:
    """The signed-in user acting with the staff flag (the console's forms have no ``?staff=1``)."""
    return Principal(user=who.user, staff_arg=True)


def _device_id_match(q: str) -> list[Any]:
    """A search for ``d--...``, ``0x1a`` or a bare hex id also finds the device with that id."""
    text = q.lower().removeprefix("d--").removeprefix("0x").replace("-", "")
    try:
        return [db.devices.c.id == int(text, 16)] if text and len(text) <= 16 else []
    except ValueError:
        return []


@router.get("/projects/{project_id}/")
def project_page(project_id: str, request: Request) -> Response:
    return _project_page(request, viewer(request), project_id)


@router.post("/projects/{project_id}/devices")
async def device_new(project_id: str, request: Request) -> Response:
    """Register a device: the API's device creation (staff or the server's owner), then its claim
    into this project."""
    who = viewer(request)
    form = await checked_form(request, who)
    with state(request).read() as conn:
        project = orgs.visible_project(conn, who.principal, project_id)
        staff = _registrar(who)
        if not (staff.can_register_devices and who.principal.can_admin(conn, project.org_id)):
            raise APIError(
                403, {"detail": "Only the server's owner or staff, as admins of this organisation, register devices."}
            )
    body = {k: form[k] for k in ("label", "sg", "template") if form.get(k)}
    try:
        created = api_answer(devices.device_create(request, body=body, principal=staff))
        devices.device_claim(request, body={"device": created["slug"], "project": project.id}, principal=staff)
    except APIError as error:
        return _project_page(request, who, project_id, form_error=error_text(error), status=error.status)
    return RedirectResponse(f"/devices/{created['slug']}/", status_code=303)


# -- devices ---------------------------------------------------------------------------------------


def _device_context(conn: Connection, request: Request, who: Viewer, slug: str) -> dict[str, Any]:
    device = devices.readable_device(conn, who.principal, slug)
    device_slug = f"d--{int2did(device.id)}"
    lk = serialize.Lookup(conn)
    project = lk.project(device.project_id)
    org = lk.org(device.org_id)
    q = search_term(request)
    query = (
        sa.select(db.streams, db.variables.c.name.label("variable_name"))
        .join(db.variables, db.variables.c.id == db.streams.c.variable_id)
        .where(db.streams.c.device_id == device.id)
    )
    if q:
        query = query.where(
            sa.or_(
                db.streams.c.slug.ilike(_like(q), escape="\\"),
                db.variables.c.name.ilike(_like(q), escape="\\"),
                db.streams.c.data_label.ilike(_like(q), escape="\\"),
            )
        )
    streams, pages = paged(conn, request, query, [db.streams.c.slug])
    streamer_rows = conn.execute(
        sa.select(db.streamers).where(db.streamers.c.device_id == device.id).order_by(db.streamers.c.index)
    ).all()
    last_report = conn.execute(
        sa.select(db.streamer_reports, db.streamers.c.index)
        .join(db.streamers, db.streamers.c.id == db.streamer_reports.c.streamer_id)
        .where(db.streamers.c.device_id == device.id)
        .order_by(db.streamer_reports.c.created_on.desc())
        .limit(1)
    ).first()
    properties = conn.execute(
        sa.select(db.properties).where(db.properties.c.target == device_slug).order_by(db.properties.c.name)
    ).all()
    recent_notes = conn.execute(
        sa.select(db.notes).where(db.notes.c.target == device_slug).order_by(db.notes.c.ts.desc()).limit(10)
    ).all()
    return {
        "notes": [notes.note_body(n, lk) for n in recent_notes],
        "device": device,
        "device_slug": device_slug,
        "project": project,
        "project_slug": f"p--{int2pid(project.gid)}" if project else None,
        "org": org,
        "sg": catalog.SENSOR_GRAPHS.get(device.sg or ""),
        "streams": streams,
        "pages": pages,
        "q": q,
        "streamers": [serialize.streamer(r) for r in streamer_rows],
        "last_report": last_report,
        "properties": [serialize.prop(p, with_target=False) for p in properties],
        "can_upload": who.principal.can_write_data(conn, device.org_id) and device.project_id is not None,
    }


@router.get("/devices/{slug}/")
def device_page(slug: str, request: Request) -> Response:
    who = viewer(request)
    with state(request).read() as conn:
        context = _device_context(conn, request, who, slug)
    return render(request, "device.html", who, upload=None, **context)


@router.post("/devices/{slug}/upload")
async def device_upload(slug: str, request: Request) -> Response:
    """A streamer report or an event file, stored by the API's own upload routes; the answer is the
    API's, plus the report record it left (which ids were new, which already known)."""
    who = viewer(request)
    form = await checked_form(request, who)
    with state(request).read() as conn:
        devices.readable_device(conn, who.principal, slug)
    kind = "event" if form.get("kind") == "event" else "report"
    status, answer = 201, None
    try:
        if kind == "event":
            response = await reports.upload_event(request, principal=who.principal)
        else:
            response = await reports.receive_report(request, who.principal, db.iso(db.now_us()) or "")
        answer = api_answer(response)
    except APIError as error:
        status, answer = error.status, {"error": error_text(error)}
    record = None
    if status == 201 and kind == "report":
        with state(request).read() as conn:
            record = _device_context(conn, request, who, slug)["last_report"]
    result = {"kind": kind, "status": status, "answer": answer, "record": _record_view(record)}
    if request.headers.get("x-console-fragment"):
        return render(request, "upload_answer.html", who, status=status, upload=result)
    with state(request).read() as conn:
        context = _device_context(conn, request, who, slug)
    return render(request, "device.html", who, status=status, upload=result, **context)


def _record_view(record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "streamer": record.index,
        "report_first_id": record.original_first_id,
        "report_last_id": record.original_last_id,
        "stored_first_id": record.actual_first_id,
        "stored_last_id": record.actual_last_id,
    }


# -- streams ---------------------------------------------------------------------------------------


@router.get("/streams/{slug}/")
def stream_page(slug: str, request: Request) -> Response:
    who = viewer(request)
    with state(request).read() as conn:
        stream = stream_by_slug(conn, who.principal, slug)
        lk = serialize.Lookup(conn)
        variable = lk.variable(stream.variable_id)
        project = lk.project(stream.project_id)
        assert project is not None
        org = lk.org(project.org_id)
    unit = catalog.output_unit(stream.output_unit)
    return render(
        request,
        "stream.html",
        who,
        stream=stream,
        variable=variable,
        project=project,
        org=org,
        device_slug=f"d--{int2did(stream.device_id)}" if stream.device_id else None,
        unit=unit.unit_short if unit else "",
    )
