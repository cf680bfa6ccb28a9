"""The child-to-supervisor pipe protocol carries any id or name, and its reader never
raises on what it cannot read."""

from __future__ import annotations

import logging

import pytest

from jobkit.worker import protocol
from jobkit.worker.child_limits import ChildState
from jobkit.worker.slot import Slots

ODD = [
    "plain-3f2a9c0d",
    "line\nbreak",
    "tab\tstop",
    "back\\slash, \\t and \\n as text, trailing \\",
    "\\\n\t\\\\n",
    "界" * 200,
    "é" * 200,
    "nul\x00 cr\r ansi\x1b[0m emoji 🙂 \u2028",
    "lone surrogate \udcff (no codec takes it)",
    "",
]


def _counts() -> dict[str, int]:
    return dict.fromkeys(protocol.OUTCOMES, 0)


def _wire(messages: list[str]) -> bytes:
    return "".join(messages).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("text", ODD)
def test_any_id_and_name_make_the_round_trip(text: str) -> None:
    held: dict[str, str] = {}
    counts = _counts()
    line = protocol.claimed(7, text, "3", 2, 0.5, text + "-name")
    assert line.count("\n") == 1 and line.count("\t") == 6
    protocol.Reader().feed(_wire([line]), held, counts)
    assert protocol.held(held["7"]) == protocol.Held(text, "3", 2, 0.5, text + "-name")


def test_bytes_fed_in_any_pieces_read_the_same() -> None:
    messages = [protocol.claimed(i, text, "1", 1, 0.0, text) for i, text in enumerate(ODD)]
    messages += [protocol.done(1, "succeeded"), protocol.released(2), protocol.done(3, "lost")]
    data = _wire(messages)
    whole: dict[str, str] = {}
    whole_counts = _counts()
    protocol.Reader().feed(data, whole, whole_counts)

    pieces: dict[str, str] = {}
    piece_counts = _counts()
    reader = protocol.Reader()
    for i in range(0, len(data), 7):  # cuts through multi-byte characters
        reader.feed(data[i : i + 7], pieces, piece_counts)
    assert pieces == whole
    assert piece_counts == whole_counts == {**_counts(), "succeeded": 1, "lost": 1}
    assert sorted(whole) == sorted(str(i) for i in range(len(ODD)) if i not in (1, 2, 3))


def test_malformed_lines_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    held: dict[str, str] = {}
    counts = _counts()
    good = protocol.claimed(1, "job-1", "1", 1, 0.0, "tests.support.jobs.Add")
    bad = [
        b"garbage without tabs\n",
        b"X\t5\tan unknown kind\n",
        b"D\t1\tnot-an-outcome\n",
        b"\xff\xfe not UTF-8 at all\n",
        b"\n",
        b"C\t9\ttoo\tfew\n",  # a claim's fields are checked when first parsed
    ]
    with caplog.at_level(logging.ERROR, logger="jobkit.worker"):
        protocol.Reader().feed(b"".join([*bad[:4], good.encode(), *bad[4:]]), held, counts)
    assert counts == _counts()  # the malformed 'D' counted nothing
    assert set(held) == {"1", "9"}  # the claim after the bad lines is read all the same
    malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed) == 5

    state = ChildState(pid=1, fd=-1, slots=Slots(1), held=held)
    try:
        with caplog.at_level(logging.ERROR, logger="jobkit.worker"):
            assert state.job("9") is None  # logged once and dropped: it cannot get better
            assert state.jobs() == [
                ("1", protocol.Held("job-1", "1", 1, 0.0, "tests.support.jobs.Add"))
            ]
        assert "9" not in state.held
    finally:
        state.slots.close()
