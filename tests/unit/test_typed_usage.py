"""The examples users are shown type-check with ``mypy --strict`` and the ``jobkit.mypy``
plugin, and the calls the plugin must refuse fail, each on its line with its error code,
and nothing else does: with the plugin alone, and next to pydantic's."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

TYPED = REPO_ROOT / "tests" / "typed"
USAGE = TYPED / "usage.py"
MUST_FAIL = TYPED / "must_fail.py"
_EXPECTED = re.compile(r"#\s*error:\s*\[([a-z-]+)\]\s*$")
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")
_NOTE = re.compile(r"^[^:]+:\d+: note: ")
Mypy = Callable[[Path], tuple[int, list[str]]]  # a file -> mypy's exit code and lines


@pytest.fixture(scope="module", params=["mypy.ini", "mypy-pydantic.ini"])
def mypy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Mypy:
    """Runs mypy on one file with one config; the cache is shared by the config's runs,
    so the must-fail run reads the usage file's models from it, as a second run does."""
    config = TYPED / request.param
    cache = tmp_path_factory.mktemp("mypy-cache")

    def run(path: Path) -> tuple[int, list[str]]:
        done = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--config-file", str(config),
             "--cache-dir", str(cache), "--no-error-summary", "--no-pretty",
             "--show-error-codes", str(path.relative_to(REPO_ROOT))],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        return done.returncode, (done.stdout + done.stderr).splitlines()

    return run


def expected_errors(path: Path) -> set[tuple[str, int, str]]:
    """The (file, line, code) each ``# error: [code]`` comment of ``path`` announces."""
    found = set()
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECTED.search(text)
        if match:
            found.add((str(path.relative_to(REPO_ROOT)), number, match.group(1)))
    return found


def test_the_usage_file_type_checks(mypy: Mypy) -> None:
    code, lines = mypy(USAGE)
    assert (code, lines) == (0, [])


def test_the_must_fail_file_fails_on_each_marked_line_and_nowhere_else(mypy: Mypy) -> None:
    code, lines = mypy(MUST_FAIL)
    errors = set()
    for line in lines:
        match = _ERROR.match(line)
        if match:
            errors.add((match["file"], int(match["line"]), match["code"]))
        else:  # mypy's notes (where a method is defined) may follow an error
            assert _NOTE.match(line), f"neither an error nor a note: {line}"
    expected = expected_errors(MUST_FAIL)
    assert len(expected) > 5  # a guard against checking nothing
    assert code == 1
    assert errors == expected, "\n".join(lines)


def test_the_usage_file_imports_without_redis() -> None:
    """The calls sit in functions never called: importing only defines the classes."""
    usage = importlib.import_module("tests.typed.usage")
    assert usage.Thumbnail.Params is usage.ResizeParams


def test_nothing_in_jobkit_imports_the_plugin() -> None:
    """``jobkit.mypy`` imports mypy, a development dependency: only mypy loads it."""
    wrong = []
    for path in sorted((REPO_ROOT / "jobkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if "jobkit.mypy" in names:
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not wrong, wrong
