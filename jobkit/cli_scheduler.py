"""`jobkit scheduler` and `jobkit schedules` (filled in with the scheduler)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the scheduler commands to ``app``."""
