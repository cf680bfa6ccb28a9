"""The Lua scripts: one atomic state transition per file, each with its contract in a header.

``_lib.lua`` holds helpers shared by all of them and is prepended at load time, so a
helper (say, how a ready job is scored) is written once.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

NAMES = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "heartbeat",
    "reap",
    "promote",
    "requeue",
    "revive",
    "purge",
    "cancel",
    "worker",
    "cron_fire",
)


@cache
def source(name: str) -> str:
    """Full text of script ``name``, prelude included."""
    folder = files(__name__)
    prelude = folder.joinpath("_lib.lua").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return prelude + "\n" + body
