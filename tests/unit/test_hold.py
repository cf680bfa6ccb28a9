"""Unit tests of a worker child's hold: how much a claim asks for, and the signal that
the last of ``--max-jobs-per-child`` jobs ended."""

from __future__ import annotations

from jobkit.worker.hold import Hold

FAILED = "failed"  # an outcome recorded already (not a success waiting for its batch)


def test_a_claim_asks_for_a_full_prefetch_without_a_job_limit() -> None:
    assert Hold(threads=1, prefetch=16, max_jobs=0).wanted() == 16


def test_a_claim_asks_for_no_more_jobs_than_the_child_has_left_to_run() -> None:
    hold = Hold(threads=1, prefetch=16, max_jobs=3)
    assert hold.wanted() == 3
    hold.ended(FAILED, 0, 1)
    assert hold.wanted() == 2
    hold.ended(FAILED, 0, 2)
    assert hold.wanted() == 1


def test_the_last_job_ending_closes_the_hold_and_says_so() -> None:
    hold = Hold(threads=1, prefetch=4, max_jobs=2)
    hold.ended(FAILED, 0, 1)
    assert not hold.closing and not hold.last_ended.is_set()
    hold.ended(FAILED, 0, 2)
    assert hold.closing and hold.last_ended.is_set()
    assert hold.wanted() == 1  # a refill still carries results: it asks for one at least
