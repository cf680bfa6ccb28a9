"""The jobkit command's table of commands (``jobkit.cli.COMMANDS``): each command is
built from the module the table names, only when it is needed."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from jobkit import cli
from tests.conftest import REPO_ROOT

AREAS = sorted(
    path.stem
    for path in (REPO_ROOT / "jobkit" / "cli").glob("*.py")
    if path.stem not in {"__init__", "common"}
)


@pytest.mark.parametrize("module", AREAS)
def test_the_table_names_every_command_of_each_area(module: str) -> None:
    listed = {name for name, where in cli.COMMANDS.items() if where == module}
    assert set(cli.area_commands(module)) == listed


def test_the_help_lists_every_command_in_the_table_order() -> None:
    result = CliRunner().invoke(cli.app, ["--help"])
    assert result.exit_code == 0, result.output
    section = result.output.split("Commands:", 1)[1]
    listed = [line.split()[0] for line in section.splitlines() if line.startswith("  ")]
    assert listed == list(cli.COMMANDS)


def test_a_misspelled_command_is_suggested_its_nearest() -> None:
    result = CliRunner().invoke(cli.app, ["wroker"])
    assert result.exit_code == 2
    assert "Did you mean 'worker'" in result.output


def test_a_command_imports_its_own_area_alone() -> None:
    code = (
        "import sys\n"
        "from jobkit.cli import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['worker', '--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('jobkit.cli.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert ast.literal_eval(done.stdout) == ["jobkit.cli.common", "jobkit.cli.worker"]
