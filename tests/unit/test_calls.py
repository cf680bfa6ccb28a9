"""Each Lua script's header and its Python face say the same fields in the same order
(``jobkit/backend/calls.py``): a script that gains, loses or reorders an argument or a
reply field without its face (or the other way round) fails here."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from jobkit.backend import scripts
from jobkit.backend.calls import FACES, ClaimReply, Face
from jobkit.models import Claimed

CONTINUED = "--          "


def header(name: str) -> list[str]:
    text = files("jobkit.backend.scripts").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    lines = text.split("\n")
    return lines[: next(i for i, line in enumerate(lines) if not line.startswith("--"))]


def signature(lines: list[str], tag: str) -> str:
    """The signature after ``tag`` (ARGV: over lines while one ends with a comma;
    Returns: up to the first colon)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"-- {tag}"))
    text = lines[start][len(f"-- {tag}") :].strip()
    if tag == "Returns":
        return text.split(":", 1)[0].strip()
    i = start
    while text.endswith(",") and lines[i + 1].startswith(CONTINUED):
        i += 1
        text += " " + lines[i][len(CONTINUED) :].strip()
    return text


def parts(sig: str) -> tuple[list[str], list[str], list[str]]:
    """(fixed names, a repeated group's names, an optional last element's names)."""
    fixed: list[str] = []
    each: list[str] = []
    tail: list[str] = []
    for item in re.findall(r"\*\([^)]*\)|\[[^\]]*\]|[^,\s][^,]*", sig):
        item = item.strip()
        if item.startswith("*("):
            each = [n.strip() for n in item[2:-1].split(",")]
        elif item.startswith("["):
            tail = [n.strip() for n in item[1:-1].split(",")]
        elif item != "none":
            fixed.append(item)
    return fixed, each, tail


def test_every_script_has_a_face() -> None:
    assert set(FACES) == set(scripts.NAMES)


@pytest.mark.parametrize("name", sorted(FACES))
def test_the_header_says_what_the_face_sends_and_reads(name: str) -> None:
    lines = header(name)
    face: Face = FACES[name]
    fixed, each, _ = parts(signature(lines, "ARGV"))
    assert (fixed, each) == (list(face.argv), list(face.each)), f"{name}.lua's ARGV"
    fixed, each, tail = parts(signature(lines, "Returns"))
    assert (fixed, each, tail) == (
        list(face.returns), list(face.returns_each), list(face.returns_tail)
    ), f"{name}.lua's Returns"  # fmt: skip


def test_the_parser_reads_a_signature() -> None:
    assert parts("a, b, *(c, d)") == (["a", "b"], ["c", "d"], [])
    assert parts("*(id, token), [wait, *keys]") == ([], ["id", "token"], ["wait", "*keys"])
    assert parts("none") == ([], [], [])


def test_a_claim_reply_gives_version_and_trace_only_to_the_jobs_its_extras_name() -> None:
    plain = ["q:a", 1, "n", "{}", 1, "0", "q"]
    versioned = ["q:b", 2, "n", "{}", 1, "5", "q"]
    reply = ClaimReply.parse([*plain, *versioned, [0, [2, "3", '{"traceparent": "x"}']]])
    a, b = reply.jobs
    assert (a.version, a.trace) == (1, "")
    assert (b.id, b.token, b.timeout, b.version, b.trace) == ("q:b", "2", 5.0, 3,
                                                             '{"traceparent": "x"}')  # fmt: skip
    assert reply.rate_wait_ms == 0
    held = ClaimReply.parse([*plain, [250, []]])
    assert (held.jobs[0].version, held.rate_wait_ms) == (1, 250)
    assert ClaimReply.parse(plain).jobs[0] == Claimed("q:a", "1", "n", "{}", 1, 0.0, "q")
