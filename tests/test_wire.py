"""The wire-format module is the one definition both sides use, and the server never imports the
client-side packages."""

from __future__ import annotations

import ast
from pathlib import Path

import iotile_cloud
from iotile_cloud import wire

SERVER = Path(iotile_cloud.__file__).parent / "server"
CLIENT_SIDE = ("iotile_cloud.stream", "iotile_cloud.api", "iotile_cloud.client")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_server_imports_no_client_side_module() -> None:
    offending = {
        f"{path.relative_to(SERVER)}: {name}"
        for path in SERVER.rglob("*.py")
        for name in imported_modules(path)
        if name.startswith(CLIENT_SIDE)
    }
    assert offending == set()
    assert "iotile_cloud.wire" in imported_modules(SERVER / "columnar.py")


def test_both_sides_share_the_schema() -> None:
    from iotile_cloud.server import columnar
    from iotile_cloud.stream import frames

    assert wire.table_schema() == frames.SCHEMA and frames.ARROW_MEDIA_TYPE == wire.ARROW_MEDIA_TYPE
    assert wire.stream_schema() == columnar.SCHEMA and columnar.ARROW_MEDIA_TYPE == wire.ARROW_MEDIA_TYPE
    # The server's stream is the published table with its text columns dictionary-encoded, plus type.
    assert columnar.SCHEMA.names == [*wire.COLUMNS, wire.TYPE_COLUMN] == [*frames.SCHEMA.names, "type"]
