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
    "mark",
)

# Scripts whose call may be sent again when its reply is lost (the connection dropped or
# timed out after the call went out), because running it twice has the effect of running
# it once: each script's header says how (an id that exists is not created again, a
# claim answers with what the same request leased, a fencing token says the outcome is
# recorded already, ...). The others are refused a blind re-send: their caller gets the
# error and decides. Tests run every script twice against these claims.
REPEATABLE = frozenset(
    {
        "enqueue",
        "claim",
        "complete",
        "fail",
        "heartbeat",
        "reap",
        "promote",
        "requeue",
        "worker",
        "cron_fire",
        "mark",
    }
)
UNREPEATABLE = frozenset(NAMES) - REPEATABLE  # revive, purge, cancel: a second run says no


@cache
def source(name: str) -> str:
    """Full text of script ``name``, prelude included."""
    folder = files(__name__)
    prelude = folder.joinpath("_lib.lua").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return prelude + "\n" + body
