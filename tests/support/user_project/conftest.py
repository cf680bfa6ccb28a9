"""Every sleep a test makes is recorded: the testing mode must not need any."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

SLEPT: list[float] = []


@pytest.fixture(autouse=True)
def _record_sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = time.sleep

    def sleep(seconds: float) -> None:
        SLEPT.append(seconds)
        real(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    yield
    assert max(SLEPT, default=0) <= 0.1, SLEPT


def pytest_sessionfinish() -> None:
    print(f"\nslept: {len(SLEPT)} call(s), longest {max(SLEPT, default=0):.3f}s")
