"""Read-only built-in templates: project (``/pt/``) and org (``/ot/``) templates, components
(``/component/``), and the write-only variable and widget template routes (``/vartemplate/``,
``/widget/``) whose records the sensor graphs of ``/sg/`` carry.

The original let staff edit these; a local server ships them as data, so writes are refused to
everyone (non-staff with the original's 403, staff with a reason).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from iotile_cloud.server.catalog import ORG_TEMPLATE_RECORDS, PROJECT_TEMPLATE_RECORDS
from iotile_cloud.server.context import Principal, user_only
from iotile_cloud.server.http import JSON, STANDARD, APIError, Pager, not_found
from iotile_cloud.server.routes.configs import method_not_allowed, require_staff

router = APIRouter()

# The original's components are the boards of its hardware catalog; none ship with a local server.
COMPONENTS: list[dict[str, Any]] = []

READ_ONLY = "Built-in templates are read-only on a local server."


def _refuse_write(principal: Principal) -> APIError:
    require_staff(principal)
    return APIError(403, {"detail": READ_ONLY})


def _catalog_routes(prefix: str, items: list[dict[str, Any]], what: str) -> None:
    """List and detail (by slug) of a built-in catalog; writes refused."""

    def page(request: Request, principal: Principal = Depends(user_only)) -> Response:
        pager = Pager(request, STANDARD)
        return pager.respond(len(items), lambda off, lim: items[off : off + lim])

    def detail(slug: str, principal: Principal = Depends(user_only)) -> Response:
        for item in items:
            if item.get("slug") == slug:
                return JSON(item)
        raise not_found()

    def write(principal: Principal = Depends(user_only)) -> Response:
        raise _refuse_write(principal)

    router.add_api_route(f"/{prefix}/", page, methods=["GET"], summary=f"{what} (built in)")
    router.add_api_route(f"/{prefix}/", write, methods=["POST"], include_in_schema=False)
    router.add_api_route(f"/{prefix}/{{slug}}/", detail, methods=["GET"], summary=f"One of the {what.lower()}")
    for method in ("PUT", "PATCH", "DELETE"):
        router.add_api_route(
            f"/{prefix}/{{slug}}/", write, methods=[method], name=f"{prefix}_{method.lower()}", include_in_schema=False
        )


_catalog_routes("pt", PROJECT_TEMPLATE_RECORDS, "Project templates")
_catalog_routes("ot", ORG_TEMPLATE_RECORDS, "Org templates")
_catalog_routes("component", COMPONENTS, "Hardware components")


def _write_only_routes(prefix: str, what: str) -> None:
    """As the original: no reads at all (405), writes for staff only."""

    def read(request: Request, principal: Principal = Depends(user_only)) -> Response:
        raise method_not_allowed(request)

    def write(principal: Principal = Depends(user_only)) -> Response:
        raise _refuse_write(principal)

    def write_item(item_id: str, principal: Principal = Depends(user_only)) -> Response:
        # ``item_id`` is declared so the OpenAPI description names the path parameter.
        raise _refuse_write(principal)

    router.add_api_route(f"/{prefix}/", write, methods=["POST"], summary=f"Create {what} (staff; read-only locally)")
    for method in ("GET", "DELETE"):
        router.add_api_route(
            f"/{prefix}/", read, methods=[method], name=f"{prefix}_{method.lower()}", include_in_schema=False
        )
        router.add_api_route(
            f"/{prefix}/{{item_id}}/",
            read,
            methods=[method],
            name=f"{prefix}_item_{method.lower()}",
            include_in_schema=False,
        )
    for method in ("PUT", "PATCH"):
        router.add_api_route(
            f"/{prefix}/{{item_id}}/",
            write_item,
            methods=[method],
            name=f"{prefix}_item_{method.lower()}",
            summary=f"Change {what} (staff; read-only locally)",
        )


_write_only_routes("vartemplate", "a variable template")
_write_only_routes("widget", "a display widget template")
