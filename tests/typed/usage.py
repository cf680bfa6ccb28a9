"""The job classes and calls README.md and docs/ show, type-checked with ``mypy --strict``
and the ``jobkit.mypy`` plugin (tests/unit/test_typed_usage.py): what users are shown
must check clean. The calls sit in functions never called, so the module imports
without Redis.

Where a page's example is not strict-clean it is fixed here, and so noted.
"""

# The pages' lines as they are: class attributes set to a set or a list, and expressions
# whose value a reader is shown in a comment.
# ruff: noqa: RUF012, B018

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

import jobkit
from jobkit import BaseJob, Retry, cron

# -- README.md: hello world ------------------------------------------------------------


class Greet(BaseJob):
    class Params(BaseModel):
        who: str

    def perform(self) -> str:
        return f"Hello, {self.params.who}!"


def readme() -> None:
    print(Greet.dispatch(who="world").result(timeout=30))


@jobkit.task(retry=jobkit.Retry(max_attempts=5))
def send_welcome(user_id: int) -> str:
    return f"welcome mail sent to {user_id}"


def readme_tasks() -> None:
    job = send_welcome(42)  # dispatched: job.id, job.status
    send_welcome.apply_async((42,), countdown=60)  # Celery's spelling works too
    job.id, job.status


# -- docs/writing-jobs.md ----------------------------------------------------------------


class ResizeImage(BaseJob):
    queue = "images"  # default "default"
    priority = 5  # higher runs first; default 0
    retry = Retry(
        max_attempts=5,
        base=1.0,
        factor=2.0,
        max_delay=600,
        jitter=True,
        retry_on=(IOError,),
        give_up_on=(ValueError,),
    )
    timeout = timedelta(minutes=2)  # hard limit: the attempt is killed
    tags = {"gpu"}  # only workers carrying these tags take it

    class Params(BaseModel):
        url: str
        width: int = 256

    def perform(self) -> dict[str, object]:  # may also be `async def`
        return {"url": self.params.url, "width": self.params.width}


def writing_jobs() -> None:
    job = ResizeImage.dispatch(url="https://x/y.png", width=128)  # validated now
    job.id, job.status  # "images:3f2a…", Status.QUEUED
    job.result(timeout=30)  # blocks on Redis (no polling) until it finishes
    ResizeImage.dispatch(url="…", delay=timedelta(seconds=60))  # or at=datetime
    ResizeImage.dispatch(url="…", job_id="resize-42")  # idempotent
    ResizeImage.dispatch_params({"url": "…"}, delay=60)  # params as data, apart from options
    ResizeImage.dispatch_many([{"url": "a"}, {"url": "b"}])  # one round trip
    jobkit.get_job("images:3f2a…").status  # Status.UNKNOWN for ids Redis does not hold


class SyncAccount(BaseJob):
    concurrency = 2  # at most 2 running at once, across all workers
    rate_limit = "100/m"  # at most 100 starts a minute, spaced evenly (one per 600 ms)
    unique = True  # or unique_for = timedelta(minutes=5)


# -- docs/scheduling.md ------------------------------------------------------------------


class NightlyReport(BaseJob):
    schedule = cron("0 2 * * *", tz="Europe/Berlin")

    def perform(self) -> None: ...


class SyncRegion(BaseJob):
    class Params(BaseModel):
        region: str

    schedules = [
        cron("*/5 * * * *", params={"region": "eu"}, name="eu"),
        cron("*/5 * * * *", params={"region": "us"}, name="us", misfire="skip"),
    ]

    def perform(self) -> None: ...


# -- docs/tasks.md: Celery's spelling on a class -------------------------------------------


def celery_spelling() -> None:
    ResizeImage.delay("https://x/y.png", 128)  # a class: Params fields in order


# -- docs/typing.md ----------------------------------------------------------------------


class ResizeParams(BaseModel):
    url: str
    width: int = 256
    height: int | None = None


class Resize(BaseJob[ResizeParams]):
    queue = "images"

    def perform(self) -> str:
        return f"{self.params.url} at {self.params.width}"  # self.params: ResizeParams


class Thumbnail(Resize):  # inherits ResizeParams
    pass


class Tag(BaseJob):
    class Params(BaseModel):
        model_config = ConfigDict(extra="allow")  # keeps keywords that are not fields

        label: str = Field(alias="tag")

    def perform(self) -> None: ...


class Ping(BaseJob):  # no params
    def perform(self) -> None: ...


def typing_page() -> None:
    Resize.dispatch(url="https://x/y.png")
    Resize.dispatch(url="https://x/y.png", width=128, height=96, queue="bulk", priority=1)
    Resize.dispatch(url="https://x/y.png", delay=60, job_id="resize-42")
    Resize.delay("https://x/y.png", 128)
    Thumbnail.dispatch(url="https://x/y.png", width=64)
    Tag.dispatch(tag="new", colour="red")
    Ping.dispatch(delay=timedelta(minutes=5))
    Ping.delay()
