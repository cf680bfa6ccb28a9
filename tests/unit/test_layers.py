"""The layers point down: the CLI and the HTTP layer read and act through ``jobkit.ops``,
never through the Redis layer (``jobkit.backend``) or redis itself, so every view and
command exists once, shared by both."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "jobkit"
FORBIDDEN = ("jobkit.backend", "redis")


def modules_of(place: Path) -> list[Path]:
    """The modules of a package folder, or the one module ``place`` is."""
    return sorted(place.rglob("*.py")) if place.is_dir() else [place]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (also inside functions), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("layer", ["cli", "web", "http.py"])
def test_the_cli_and_the_http_layer_import_ops_not_the_redis_layer(layer: str) -> None:
    wrong = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {module}"
        for path in modules_of(PACKAGE / layer)
        for line, module in imports_of(path)
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not wrong, "\n".join(wrong)


def test_only_the_redis_layer_imports_redis() -> None:
    """Everything else reaches Redis through ``jobkit.backend``: one place knows the
    client library, its exceptions and its connection types."""
    wrong = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if PACKAGE / "backend" not in path.parents
        for line, module in imports_of(path)
        if module == "redis" or module.startswith("redis.")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_router_users_mount_is_the_one_jobkit_serve_runs() -> None:
    from jobkit import http
    from jobkit.web import api

    assert http.router is api.router
