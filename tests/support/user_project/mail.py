"""A user's jobs, as the testing-mode docs show them: a task with retries, a delayed
job class, a nightly cron job."""

from __future__ import annotations

from pydantic import BaseModel

import jobkit

outbox: list[str] = []
failures_left = {"count": 0}


@jobkit.task(queue="mail", retry=jobkit.Retry(max_attempts=3, base=60, jitter=False))
def send_welcome(user_id: int, template: str = "welcome") -> str:
    if failures_left["count"] > 0:
        failures_left["count"] -= 1
        raise ConnectionError("smtp down")
    outbox.append(f"{template}:{user_id}")
    return "sent"


class DigestParams(BaseModel):
    user_id: int


class Digest(jobkit.BaseJob[DigestParams]):
    queue = "mail"

    def perform(self) -> int:
        outbox.append(f"digest:{self.params.user_id}")
        return self.params.user_id


@jobkit.task(schedule=jobkit.cron("0 1 * * *"))
def nightly_report() -> str:
    outbox.append("report")
    return "done"
