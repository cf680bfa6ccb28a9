"""The Lua scripts: one atomic state transition per file, each with its contract in a header.

``_lib.lua`` holds helpers shared by all of them and is prepended at load time, so a
helper (say, how a ready job is scored) is written once; ``_checks.lua`` (validating
what a job's record holds) follows it in every script. ``_flows.lua`` (telling waiting
jobs what their dependencies did) follows it in :data:`WITH_FLOWS` only: the prelude
runs at every call, and a function it defines costs every call of every script.
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
    "cancelled",
    "worker",
    "pause",
    "drain",
    "cron_fire",
    "cron_pause",
    "cron_run",
    "mark",
    "recount",
    "trim",
    "progress",
    "depend",
    "wait",
    "release",
    "repair",
    "register",
)

# Scripts whose call is refused a blind re-send when its reply is lost (the connection
# dropped or timed out after the call went out): run twice, the second reports a refusal
# or a count that hides the first, so their caller gets the error and decides. Every
# other script may be sent again, because running it twice has the effect of running it
# once: each one's header says how (an id that exists is not created again, a claim
# answers with what the same request leased, a fencing token says the outcome is recorded
# already, a pause or resume found done is left so, a run-now finds the job it created,
# a progress report writes the same fields again, a repair adds only what is absent,
# ...). tests/integration/test_resend.py runs them twice against these claims.
UNREPEATABLE = frozenset({"revive", "purge", "cancel", "drain"})

# the scripts that tell waiting jobs (or drop what they were told): _flows.lua is theirs
WITH_FLOWS = frozenset({"wait", "release", "purge"})
REPEATABLE = frozenset(NAMES) - UNREPEATABLE


# Entries each queue's event stream keeps, about (JOBKIT_EVENTS_MAXLEN's default).
EVENTS_MAXLEN = 100_000


@cache
def source(name: str, events_maxlen: int = EVENTS_MAXLEN) -> str:
    """Full text of script ``name``, prelude included, with the event streams' cap."""
    body = files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return _prelude(int(events_maxlen), name in WITH_FLOWS) + "\n" + body


@cache
def _prelude(events_maxlen: int, flows: bool) -> str:
    """What every script starts with (with ``flows``: ``_flows.lua`` too), read once for
    them all: a store's first start reads each script, about 5 ms more when every one
    read the prelude again (measured)."""
    folder = files(__name__)
    prelude = folder.joinpath("_lib.lua").read_text(encoding="utf-8")
    prelude += "\n" + folder.joinpath("_checks.lua").read_text(encoding="utf-8")
    prelude = prelude.replace("@EVENTS_MAXLEN@", str(events_maxlen))
    if flows:
        prelude += "\n" + folder.joinpath("_flows.lua").read_text(encoding="utf-8")
    return prelude
