"""Job classes for the search tests (``-A tests.support.search_jobs``): params of any shape the
test chooses, and a failure with the message it chooses, so every qualifier has known
jobs to find."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from jobkit import BaseJob, Retry

# what ``kind`` names: the exception a failing job raises (its type is the error's type)
ERRORS: dict[str, type[Exception]] = {
    "timeout": TimeoutError,
    "connection": ConnectionError,
    "value": ValueError,
}


class Params(BaseModel):
    """Any params at all (extra fields kept); ``fail`` makes the job raise."""

    model_config = ConfigDict(extra="allow")
    fail: str | None = None  # the message of the exception raised
    kind: str = "value"  # which exception: a key of ERRORS


def _perform(params: Params) -> None:
    if params.fail is not None:
        raise ERRORS[params.kind](params.fail)


class SyncAccount(BaseJob):
    """Succeeds, or with ``fail`` dies at its first attempt (no retry: one attempt)."""

    retry = Retry(max_attempts=1)
    Params = Params

    def perform(self) -> None:
        _perform(self.params)


class ReportDaily(BaseJob):
    """The same as :class:`SyncAccount`, under another class name (for ``class:``)."""

    retry = Retry(max_attempts=1)
    Params = Params

    def perform(self) -> None:
        _perform(self.params)
