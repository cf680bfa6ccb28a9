"""The shared-memory slots a child posts its running jobs in, read by the supervisor."""

from __future__ import annotations

from jobkit.worker.slot import Slots


def test_posted_jobs_read_back_and_a_cleared_slot_reads_idle() -> None:
    slots = Slots(2)
    try:
        assert slots.read_all() == []
        slots.post(1, 7, 12.5)
        assert slots.read(1) == (7, 12.5)
        assert slots.read(0) is None
        assert slots.read_all() == [(7, 12.5)]
        slots.clear(1)
        assert slots.read(1) is None and slots.read_all() == []
        slots.post(1, 2**40, 13.0)  # a new handle over a cleared slot
        slots.post(0, 1, 14.0)
        assert slots.read_all() == [(1, 14.0), (2**40, 13.0)]
    finally:
        slots.close()
