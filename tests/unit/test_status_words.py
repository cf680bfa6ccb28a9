"""The words Lua writes for statuses and reasons are the enums' words: a script that set
``'succeded'`` or dead-lettered with a reason no enum names would fail here, not in a
user's listing. Read from the scripts' text (comments left out)."""

from __future__ import annotations

import re
from importlib.resources import files

from jobkit.status import PURGED, DeadReason, EventReason, OnFailure, Status

STATUSES = {s.value for s in Status} - {Status.UNKNOWN.value}
REASONS = {r.value for r in DeadReason} | {r.value for r in EventReason}
ON_FAILURE = {o.value for o in OnFailure}
# other words the scripts compare a field with: Redis key types, the worker script's
# modes, flags and codes
OTHER_WORDS = {
    "hash",
    "zset",
    "list",
    "set",
    "stream",
    "string",
    "none",
    "pause",
    "resume",
    "prune",
    "beat",
    "gone",
    "0",
    "1",
    "",
    "invalid",
    "number",
    "table",
    "=",
    "{}",
}  # fmt: skip  (= marks a dependency's success in inputs:<id>)


def scripts() -> dict[str, str]:
    folder = files("jobkit.backend.scripts")
    return {
        entry.name: re.sub(r"--[^\n]*", "", entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".lua")
    }


def event_args(text: str) -> list[list[str]]:
    """The arguments of every ``event(...)`` call (the definition's own names left out)."""
    calls = []
    for m in re.finditer(r"(?<!function )\bevent\(", text):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        args, depth, cur = [], 0, ""
        for ch in text[m.end() : i - 1]:
            if ch == "," and depth == 0:
                args.append(cur.strip())
                cur = ""
                continue
            depth += {"(": 1, ")": -1}.get(ch, 0)
            cur += ch
        calls.append([*args, cur.strip()])
    return calls


def literals(expr: str) -> set[str]:
    """The string literals ``expr`` may give (those it only compares with left out)."""
    given = re.sub(r"[=~]=\s*'[^']*'", "", expr)
    return set(re.findall(r"'([^']*)'", given))


def test_every_status_a_script_writes_is_a_status() -> None:
    found: dict[str, set[str]] = {}
    for name, text in scripts().items():
        for word in re.findall(r"'HSET',\s*\w+,\s*'status',\s*'(\w+)'", text):
            found.setdefault(word, set()).add(name)
        for args in event_args(text):
            if len(args) >= 5:  # from and to
                for word in literals(args[3]) | literals(args[4]):
                    if word:
                        found.setdefault(word, set()).add(name)
        for table in re.findall(r"\{((?:\s*\w+\s*=\s*true\s*,?)+)\}", text):  # ACTIVE = {...}
            for word in re.findall(r"(\w+)\s*=", table):
                found.setdefault(word, set()).add(name)
    assert {"queued", "running", "succeeded", "dead", "cancelled", "retrying"} <= set(found)
    wrong = {w: sorted(s) for w, s in found.items() if w not in STATUSES | {PURGED}}
    assert not wrong, f"status words that are no Status: {wrong}"


def test_every_reason_a_script_writes_is_a_reason() -> None:
    found: dict[str, set[str]] = {}
    for name, text in scripts().items():
        for word in re.findall(r"'HSET',[^)]*?'reason',\s*'(\w+)'", text):
            found.setdefault(word, set()).add(name)
        for args in event_args(text):
            if len(args) >= 9:
                for word in literals(args[8]):
                    if word:
                        found.setdefault(word, set()).add(name)
        for word in re.findall(r"invalid_record\([^)]*'(\w+)'", text):
            found.setdefault(word, set()).add(name)
    assert {"crashed", "unstarted", "handed_back", "revived"} <= set(found)
    wrong = {w: sorted(s) for w, s in found.items() if w not in REASONS}
    assert not wrong, f"reason words that no enum names: {wrong}"


def test_every_word_a_script_compares_a_field_with_is_known() -> None:
    known = STATUSES | REASONS | ON_FAILURE | {PURGED} | OTHER_WORDS
    wrong = {}
    for name, text in scripts().items():
        for word in re.findall(r"[=~]=\s*'([^']*)'", text):
            if word not in known:
                wrong.setdefault(word, []).append(name)
    assert not wrong, f"words compared with that no enum names (add them, or fix them): {wrong}"
