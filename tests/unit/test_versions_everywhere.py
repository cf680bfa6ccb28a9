"""A class's payload version travels with every job it makes: the cron slots'
(cron_fire.lua) and a run-now's (cron_run.lua) as well as dispatch()'s; and a function
task declares one, with its upgrade, as a class does. On the testing mode's scripts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import jobkit
from jobkit.cron import bind_schedules
from jobkit.ops.schedules import run_schedule_now
from jobkit.testing import JobkitTest


class ReportParams(BaseModel):
    region: str


class Report(jobkit.BaseJob[ReportParams]):
    name = "tests.unit.versions.Report"
    version = 2
    schedule = jobkit.cron("0 * * * *", params={"region": "eu"})

    def perform(self) -> str:
        return self.params.region


def _rename(params: dict[str, Any], old: int) -> dict[str, Any]:
    return {"amount": params.pop("cents", 0) / 100, **params} if old < 2 else params


@jobkit.task(name="tests.unit.versions.charge", version=2, upgrade=_rename)
def charge(amount: float) -> float:
    return amount


def test_cron_slots_and_run_now_carry_the_version() -> None:
    with JobkitTest(start="2030-01-01 00:30:00+00:00", schedules=[Report]) as jt:
        jt.advance(minutes=30)  # 01:00: the slot fires
        (slot,) = jt.dispatched(Report)
        assert slot.record.version == 2
        [bound] = bind_schedules(Report)
        now = jobkit.get_job(run_schedule_now(jt.store, bound))
        assert now.record is not None and now.record.version == 2
        assert jt.run_until_idle().succeeded == 2  # same version: no upgrade, run as is


def test_a_function_task_declares_a_version_and_its_upgrade() -> None:
    assert charge.job.version == 2
    assert charge.job.upgrade({"cents": 250}, 1) == {"amount": 2.5}
    assert charge.job.upgrade({"amount": 1.0}, 2) == {"amount": 1.0}
    with JobkitTest(schedules=()) as jt:
        job = charge(3.5)
        assert job.record is not None and job.record.version == 2
        jt.run_until_idle()
        assert job.result() == 3.5
