"""``/auth/...`` and ``/account/...``."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from iotile_cloud.server import db, serialize, throttle
from iotile_cloud.server.context import Principal, current_user, state, user_only
from iotile_cloud.server.http import (
    JSON,
    STANDARD,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    json_body,
    not_found,
)
from iotile_cloud.server.security import (
    TokenError,
    api_token_for,
    check_password,
    hash_password,
    new_api_token,
    token_digest,
)

router = APIRouter()
Body = Any


def find_login(conn: sa.Connection, login: str) -> Any:
    return conn.execute(
        sa.select(db.users).where(sa.or_(db.users.c.email == login.lower(), db.users.c.username == login))
    ).first()


@router.post(
    "/auth/login/",
    openapi_extra=body_doc(["email", "password"], email="string", password="string"),
    summary="Log in with email and password: account, API token and JWT",
)
async def login(request: Request, body: Body = Depends(json_body)) -> Response:
    fields = Fields(as_object(body))
    email = fields.text("email", required=True, allow_blank=False)
    password = fields.text("password", required=True)
    fields.check()
    app = state(request)
    user = await _password_login(request, str(email), str(password))
    if user is None:
        return JSON("Username/password combination invalid.", status_code=401)
    if not user.is_active:
        return JSON("This account is not Active.", status_code=401)
    fixed = app.fixed_token_for(user.email)
    if fixed is not None:
        # A test fixture's user: the original mock cloud's very answer (downstream tests compare it).
        return JSON({"username": user.email, "jwt": fixed})
    token = await run_in_threadpool(shown_api_token, request, user)
    return JSON({**serialize.account(user), "token": token, "jwt": app.jwt.issue(user)})


async def _password_login(request: Request, login: str, password: str) -> Any:
    """The user if ``password`` is theirs, else None; 429 once the account or client failed too often."""
    app = state(request)
    login_keys = throttle.keys(request, login)

    def find() -> Any:
        with app.read() as conn:
            throttle.check(conn, login_keys, db.now_us())
            return find_login(conn, login)

    user = await run_in_threadpool(find)
    async with app.kdf_queue:
        ok = await run_in_threadpool(check_password, user.password_hash if user else None, password)

    def record() -> None:
        with app.write() as conn:
            throttle.record(conn, login_keys, ok and user is not None, db.now_us())

    await run_in_threadpool(record)
    return user if ok else None


async def hashed(request: Request, password: str) -> str:
    """The password's argon2 hash, made as logins check theirs: waiting for a KDF slot as a coroutine
    (a flood of signups queues cheaply instead of holding the thread pool every route shares)."""
    async with state(request).kdf_queue:
        return await run_in_threadpool(hash_password, password)


def shown_api_token(request: Request, user: Any) -> str:
    """The user's API token, its digest stored the first time (accounts made before hashing get a new one)."""
    token = api_token_for(state(request).jwt.secret, int(user.id))
    if user.api_token != token_digest(token):
        with state(request).write() as conn:
            conn.execute(sa.update(db.users).where(db.users.c.id == user.id).values(api_token=token_digest(token)))
    return token


@router.post(
    "/auth/api-jwt-auth/",
    openapi_extra=body_doc(["username", "password"], username="string", password="string"),
    summary="Obtain a JWT from username (or email) and password",
)
async def jwt_auth(request: Request, body: Body = Depends(json_body)) -> Response:
    fields = Fields(as_object(body))
    username = fields.text("username", required=True, allow_blank=False)
    password = fields.text("password", required=True)
    fields.check()
    app = state(request)
    user = await _password_login(request, str(username), str(password))
    if user is None or not user.is_active:
        raise APIError(400, {"non_field_errors": ["Unable to log in with provided credentials."]})
    return JSON({"token": app.jwt.issue(user)})


def _token_user(request: Request, body: Any) -> tuple[str, Any]:
    fields = Fields(as_object(body))
    token = fields.text("token", required=True, max_length=4096)
    fields.check()
    app = state(request)
    fixed_owner = (app.fixed_tokens or {}).get(str(token))
    if fixed_owner is not None:  # test fixtures only: a fixed token stands for its account
        with app.read() as conn:
            user = conn.execute(sa.select(db.users).where(db.users.c.email == fixed_owner)).first()
        if user is None or not user.is_active:
            raise APIError(400, {"non_field_errors": ["User doesn't exist."]})
        return str(token), user
    try:
        payload = app.jwt.decode(str(token))
    except TokenError as error:
        raise APIError(400, {"non_field_errors": [str(error)]}) from None
    if payload.get("type") == "a-jwt":
        raise APIError(400, {"non_field_errors": ["Error decoding signature."]})
    with app.read() as conn:
        user = conn.execute(sa.select(db.users).where(db.users.c.id == payload.get("user_id"))).first()
    if user is None or not user.is_active:
        raise APIError(400, {"non_field_errors": ["User doesn't exist."]})
    return str(token), user


@router.post(
    "/auth/api-jwt-refresh/",
    openapi_extra=body_doc(["token"], token="string"),
    summary="Exchange a valid JWT for a fresh one (within 180 days)",
)
def jwt_refresh(request: Request, body: Body = Depends(json_body)) -> Response:
    token, user = _token_user(request, body)
    if (state(request).fixed_tokens or {}).get(token):
        return JSON({"token": token})  # a test fixture's fixed token stays what it is
    try:
        fresh = state(request).jwt.refresh(token, user)
    except TokenError as error:
        raise APIError(400, {"non_field_errors": [str(error)]}) from None
    return JSON({"token": fresh})


@router.post(
    "/auth/api-jwt-verify/", openapi_extra=body_doc(["token"], token="string"), summary="Check that a JWT is valid"
)
def jwt_verify(request: Request, body: Body = Depends(json_body)) -> Response:
    token, _user = _token_user(request, body)
    return JSON({"token": token})


@router.post("/auth/logout/", status_code=204, summary="Log out (JWTs are stateless and stay valid)")
def logout(principal: Principal = Depends(current_user)) -> Response:
    return Response(status_code=204)


@router.get("/auth/token/", summary="The caller's API token and a fresh JWT")
def token(request: Request, principal: Principal = Depends(user_only)) -> Response:
    assert principal.user is not None
    token = shown_api_token(request, principal.user)
    return JSON({"token": token, "jwt": state(request).jwt.issue(principal.user)})


@router.get("/auth/user-info/", summary="The caller's account and a fresh JWT")
def user_info(request: Request, principal: Principal = Depends(user_only)) -> Response:
    assert principal.user is not None
    return JSON({**serialize.account(principal.user), "jwt": state(request).jwt.issue(principal.user)})


@router.post(
    "/auth/password/reset/",
    openapi_extra=body_doc(["email"], email="string"),
    summary="Ask for a password reset (a local server has no mail)",
)
def password_reset(body: Body = Depends(json_body)) -> Response:
    fields = Fields(as_object(body))
    email = fields.text("email", required=True, allow_blank=False)
    fields.check()
    if "@" not in str(email):
        raise APIError(400, {"email": ["Enter a valid email address."]})
    return JSON({"detail": "Password reset e-mail has been sent."})


# -- accounts -----------------------------------------------------------------------------------

_USERNAME = re.compile(r"^[\w.@+-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def create_user(
    conn: sa.Connection,
    *,
    email: str,
    username: str,
    password: str,
    name: str = "",
    tagline: str = "",
    is_staff: bool = False,
    is_owner: bool = False,
    password_hash: str | None = None,
) -> Any:
    """Insert a user (shared by signup, ``admin create-user`` and the test fixtures); ``password_hash``
    when the caller hashed ``password`` already (off the request's thread, see :func:`hashed`)."""
    now = db.now_us()
    user_id = db.new_id(
        conn.execute(
            sa.insert(db.users).values(
                username=username,
                slug=username.lower(),
                email=email.lower(),
                name=name,
                tagline=tagline,
                password_hash=password_hash or hash_password(password),
                api_token=new_api_token(),
                is_staff=is_staff,
                is_owner=is_owner,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )
    )
    return conn.execute(sa.select(db.users).where(db.users.c.id == user_id)).one()


@router.post(
    "/account/",
    openapi_extra=body_doc(
        ["username", "email", "password", "confirm_password"],
        username="string",
        email="string",
        password="string",
        confirm_password="string",
        name="string",
        tagline="string",
    ),
    status_code=201,
    summary="Sign up (accounts are active at once on a local server)",
)
async def signup(request: Request, body: Body = Depends(json_body)) -> Response:
    fields = Fields(as_object(body))
    email = fields.text("email", required=True, allow_blank=False, max_length=254)
    username = fields.text("username", required=True, allow_blank=False, max_length=150)
    password = fields.text("password", required=True, allow_blank=False)
    confirm = fields.text("confirm_password", required=True)
    name = fields.text("name", default="") or ""
    tagline = fields.text("tagline", default="") or ""
    fields.check()
    assert email and username and password
    if not _EMAIL.match(email):
        fields.error("email", "Enter a valid email address.")
    if not _USERNAME.match(username):
        fields.error("username", "Enter a valid username. Letters, digits and @/./+/-/_ only.")
    if len(password) < 8:
        fields.error("password", "This password is too short. It must contain at least 8 characters.")
    if password != confirm:
        fields.error("confirm_password", "Passwords do not match")
    fields.check()

    def check_free(conn: sa.Connection) -> None:
        taken = conn.execute(
            sa.select(db.users.c.email, db.users.c.username).where(
                sa.or_(db.users.c.email == email.lower(), db.users.c.slug == username.lower())
            )
        ).first()
        if taken is not None:
            if taken.email == email.lower():
                fields.error("email", "A user with that email already exists.")
            else:
                fields.error("username", "A user with that username already exists.")
            fields.check()

    def check_first() -> None:
        with state(request).read() as conn:
            check_free(conn)

    def store(password_hash: str) -> Any:
        with state(request).write() as conn:
            check_free(conn)  # again: another signup may have taken the name while this one hashed
            return create_user(
                conn,
                email=email,
                username=username,
                password=password,
                name=name,
                tagline=tagline,
                password_hash=password_hash,
            )

    await run_in_threadpool(check_first)
    user = await run_in_threadpool(store, await hashed(request, password))
    out = serialize.account(user)
    return JSON(
        {k: out[k] for k in ("id", "slug", "created_at", "username", "email", "name", "tagline")}, status_code=201
    )


@router.get("/account/", summary="List accounts (yourself only)")
def account_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    user = principal.user
    assert user is not None
    pager = Pager(request, STANDARD)
    return pager.respond(1, lambda offset, limit: [serialize.account(user)][offset : offset + limit])


def _own_account(principal: Principal, slug: str) -> Any:
    assert principal.user is not None
    if slug.lower() != principal.user.slug:
        raise not_found()
    return principal.user


@router.get("/account/{slug}/", summary="Your own account")
def account_detail(slug: str, principal: Principal = Depends(user_only)) -> Response:
    return JSON(serialize.account(_own_account(principal, slug)))


@router.patch(
    "/account/{slug}/", openapi_extra=body_doc(name="string", tagline="string"), summary="Change your name or tagline"
)
def account_patch(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    user = _own_account(principal, slug)
    fields = Fields(as_object(body))
    values = {k: fields.text(k, max_length=255) for k in ("name", "tagline") if fields.has(k)}
    fields.check()
    with state(request).write() as conn:
        if values:
            conn.execute(sa.update(db.users).where(db.users.c.id == user.id).values(**values, updated_at=db.now_us()))
        user = conn.execute(sa.select(db.users).where(db.users.c.id == user.id)).one()
    return JSON(serialize.account(user))
