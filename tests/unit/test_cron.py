"""Cron schedules: declaration, slots, time zones, DST, misfire plans (pure, with freezegun),
and the scheduler's round against fakeredis, which runs the same Lua scripts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import fakeredis
import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from jobkit import BaseJob, Cron, cron
from jobkit.backend.cron import ScheduleStore
from jobkit.backend.store import Store
from jobkit.cron import MAX_CATCHUP, BoundSchedule, bind_schedules, plan
from jobkit.scheduler import Scheduler

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc


def _ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, tz: Any = UTC) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp())


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


class Region(BaseModel):
    region: str
    size: int = 1


class Nightly(BaseJob):
    schedule = cron("0 2 * * *", tz="Europe/Berlin")

    def perform(self) -> None:
        return None


class Sweep(BaseJob):
    Params = Region
    schedules = [  # noqa: RUF012 - a plain list, as users write it
        cron("*/5 * * * *", params={"region": "eu"}),
        cron("*/5 * * * *", params={"region": "us"}),
        cron("0 * * * *", params={"region": "ap"}, name="hourly"),
    ]

    def perform(self) -> None:
        return None


# -- declaring schedules ---------------------------------------------------------------


def test_cron_defaults_and_fields() -> None:
    c = cron("0 2 * * *", tz="Europe/Berlin", grace=timedelta(minutes=5), misfire="all")
    assert isinstance(c, Cron)
    assert (c.expr, c.tz, c.misfire, c.grace, c.name) == (
        "0 2 * * *",
        "Europe/Berlin",
        "all",
        300.0,
        "",
    )
    assert dict(c.params) == {}
    d = cron("* * * * *")
    assert (d.tz, d.misfire, d.grace) == ("UTC", "once", 60.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expr": "bad"}, "invalid cron expression"),
        ({"expr": "61 * * * *"}, "invalid cron expression"),
        ({"expr": "H * * * *"}, "invalid cron expression"),
        ({"expr": "0 0 30 2 *"}, "never fires"),
        ({"expr": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"expr": "* * * * *", "misfire": "twice"}, "misfire must be one of"),
        ({"expr": "* * * * *", "grace": 0}, "grace must be at least"),
        ({"expr": "* * * * *", "name": "has space"}, "cron name"),
        ({"expr": "* * * * *", "name": "a:b"}, "cron name"),
    ],
)
def test_bad_cron_fails_at_definition(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cron(**kwargs)


def test_schedule_keys() -> None:
    [nightly] = bind_schedules(Nightly)
    assert nightly.key == "tests.unit.test_cron.Nightly"
    assert nightly.job_id(1700000000) == "default:cron:tests.unit.test_cron.Nightly:1700000000"
    eu, us, ap = bind_schedules(Sweep)
    assert ap.key == "tests.unit.test_cron.Sweep#hourly"
    # unnamed among several: a stable hash of expr, tz and params tells them apart
    assert eu.key.startswith("tests.unit.test_cron.Sweep#") and eu.key != us.key
    assert [b.key for b in bind_schedules(Sweep)] == [eu.key, us.key, ap.key]


def test_params_are_validated_when_the_class_is_defined() -> None:
    with pytest.raises(ValueError, match=r"params of schedule '\* \* \* \* \*' do not validate"):

        class Broken(BaseJob):
            Params = Region
            schedule = cron("* * * * *", params={"size": "many"})

    with pytest.raises(ValueError, match="do not validate"):

        class Unexpected(BaseJob):  # NoParams forbids extra fields
            schedule = cron("* * * * *", params={"x": 1})


def test_malformed_declarations() -> None:
    with pytest.raises(TypeError, match=r"schedule must be jobkit\.cron"):

        class NotCron(BaseJob):
            schedule = "0 2 * * *"  # type: ignore[assignment]

    with pytest.raises(TypeError, match="schedules must be a list"):

        class Single(BaseJob):
            schedules = cron("0 2 * * *")  # type: ignore[assignment]

    with pytest.raises(ValueError, match="share the key"):

        class Twice(BaseJob):
            schedules = (cron("0 2 * * *", name="a"), cron("0 3 * * *", name="a"))


def test_schedules_are_not_inherited() -> None:
    class Child(Nightly):
        pass

    assert bind_schedules(Child) == []
    assert len(bind_schedules(Nightly)) == 1


# -- slots ---------------------------------------------------------------------------


def test_next_after_and_slots_back_are_strict_and_inclusive() -> None:
    c = cron("0 * * * *")
    t = _ts(2024, 1, 1, 12, 0)
    assert c.next_after(t) == t + 3600
    assert c.next_after(t - 0.5) == t
    back = c.slots_back(t)
    assert [next(back), next(back)] == [t, t - 3600]
    assert next(c.slots_back(t + 0.9)) == t


def test_six_fields_have_seconds_last() -> None:
    every = cron("* * * * * *")
    fives = cron("* * * * * */5")
    t = _ts(2024, 1, 1, 12, 0)
    assert every.next_after(t) == t + 1
    assert fives.next_after(t) == t + 5
    assert cron("0 2 * * * 30").next_after(t) == _ts(2024, 1, 2, 2, 0, 30)


@freeze_time("2024-01-15 10:00:00")
def test_next_runs_default_to_now() -> None:
    runs = cron("0 2 * * *", tz="Europe/Berlin").next_runs(3)
    assert [r.isoformat() for r in runs] == [
        "2024-01-16T02:00:00+01:00",
        "2024-01-17T02:00:00+01:00",
        "2024-01-18T02:00:00+01:00",
    ]


def test_time_zone_follows_daylight_saving() -> None:
    c = cron("0 2 * * *", tz="Europe/Berlin")
    assert _utc(c.next_after(_ts(2024, 1, 10))) == "2024-01-10 01:00:00"  # CET, +1
    assert _utc(c.next_after(_ts(2024, 7, 9, 12))) == "2024-07-10 00:00:00"  # CEST, +2


@freeze_time("2024-03-30 12:00:00")
def test_spring_forward_0230_runs_once_at_0300() -> None:
    # 2024-03-31 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist
    runs = cron("30 2 * * *", tz="Europe/Berlin").next_runs(3)
    assert [r.isoformat() for r in runs] == [
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
        "2024-04-02T02:30:00+02:00",
    ]
    # every minute of the missing hour collapses into that one 03:00 run
    hourly = cron("* 2 * * *", tz="Europe/Berlin")
    day = [s for s in _forward(hourly, _ts(2024, 3, 31, 0, 0), _ts(2024, 3, 31, 6, 0))]
    assert [_utc(s) for s in day] == ["2024-03-31 01:00:00"]


def test_fall_back_0230_runs_twice() -> None:
    # 2024-10-27 in Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    # No freezegun here: its fake datetime drops `fold`, so croniter cannot step through
    # the repeated hour under it (jobkit raises rather than loop); see sched_clock.
    runs = cron("30 2 * * *", tz="Europe/Berlin").next_runs(3, after=_ts(2024, 10, 26, 12))
    assert [r.isoformat() for r in runs] == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:30:00+01:00",
        "2024-10-28T02:30:00+01:00",
    ]
    assert runs[1].timestamp() - runs[0].timestamp() == 3600
    assert runs[1].fold == 1
    # every minute of both 02:xx hours runs
    minutes = cron("* 2 * * *", tz="Europe/Berlin")
    assert len(list(_forward(minutes, _ts(2024, 10, 26, 22), _ts(2024, 10, 27, 4)))) == 120
    # in UTC there is no ambiguity: exactly once
    utc = cron("30 0 * * *", tz="UTC").next_runs(2, after=_ts(2024, 10, 26, 12))
    assert utc[1] - utc[0] == timedelta(days=1)


def _forward(c: Cron, start: int, end: int) -> Iterator[int]:
    t = c.next_after(start)
    while t <= end:
        yield t
        t = c.next_after(t)


@pytest.mark.parametrize("day", [(2024, 3, 31), (2024, 10, 27)])
@pytest.mark.parametrize("expr", ["30 2 * * *", "*/20 * * * *", "15 1-3 * * *", "* 2 * * * 30"])
def test_slots_agree_forward_and_backward_across_dst(day: tuple[int, int, int], expr: str) -> None:
    # the scheduler walks back from now to plan and forward to sleep: both walks must
    # see the same slots, or a slot could be skipped or fired twice around a transition
    c = cron(expr, tz="Europe/Berlin")
    start = _ts(*day, tz=BERLIN) - 3600
    end = start + 6 * 3600
    slots = list(_forward(c, start, end))
    for t in range(start, end, 173):
        later = [s for s in slots if s > t]
        earlier = [s for s in slots if s <= t]
        if later:
            assert c.next_after(t) == later[0], _utc(t)
        if earlier:
            assert next(c.slots_back(t)) == earlier[-1], _utc(t)


# -- misfire plans -------------------------------------------------------------------


MINUTELY = {p: cron("* * * * *", misfire=p, grace=30) for p in ("once", "all", "skip")}
T0 = _ts(2024, 5, 1, 12, 0)


@pytest.mark.parametrize("policy", ["once", "all", "skip"])
def test_on_time_slot_fires_whatever_the_policy(policy: str) -> None:
    p = plan(MINUTELY[policy], cursor=T0 - 60, now=T0 + 0.004)
    assert (p.fire, p.skip_to, p.missed, p.next) == ((T0,), 0, 0, T0 + 60)


@pytest.mark.parametrize("policy", ["once", "all", "skip"])
def test_late_within_grace_fires_normally(policy: str) -> None:
    p = plan(MINUTELY[policy], cursor=T0 - 60, now=T0 + 29)
    assert p.fire == (T0,) and p.missed == 0


def test_nothing_due() -> None:
    p = plan(MINUTELY["once"], cursor=T0, now=T0 + 59)
    assert (p.fire, p.skip_to, p.missed, p.next) == ((), 0, 0, T0 + 60)


def test_downtime_once_fires_one_catch_up() -> None:
    # down from T0 (last fired) to T0 + 10 min + 40 s: slots T0+60 .. T0+600 were missed
    p = plan(MINUTELY["once"], cursor=T0, now=T0 + 640)
    assert p.fire == (T0 + 600,)
    assert p.missed == 9


def test_downtime_once_with_an_on_time_slot() -> None:
    p = plan(MINUTELY["once"], cursor=T0, now=T0 + 610)
    assert p.fire == (T0 + 540, T0 + 600)  # the latest missed slot, then the on-time one
    assert p.missed == 8


def test_downtime_all_fires_every_missed_slot() -> None:
    p = plan(MINUTELY["all"], cursor=T0, now=T0 + 610)
    assert p.fire == tuple(T0 + 60 * i for i in range(1, 11))
    assert p.missed == 0


def test_downtime_all_is_bounded() -> None:
    p = plan(MINUTELY["all"], cursor=T0, now=T0 + 60 * 500 + 1)
    assert len(p.fire) == MAX_CATCHUP
    assert p.fire[-1] == T0 + 60 * 500  # the newest ones
    assert p.missed == 500 - MAX_CATCHUP


def test_downtime_skip_fires_none_and_moves_the_cursor() -> None:
    p = plan(MINUTELY["skip"], cursor=T0, now=T0 + 640)
    assert (p.fire, p.skip_to, p.missed) == ((), T0 + 600, 10)
    p = plan(MINUTELY["skip"], cursor=T0, now=T0 + 610)
    assert (p.fire, p.skip_to, p.missed) == ((T0 + 600,), T0 + 540, 9)


def test_very_long_downtime_counts_a_lower_bound() -> None:
    every = cron("* * * * * *", misfire="skip", grace=1)
    p = plan(every, cursor=T0, now=T0 + 86_400)
    assert p.fire == (T0 + 86_400,)
    assert p.missed >= 1000


def test_first_run_replays_no_history() -> None:
    c = MINUTELY["all"]
    assert plan(c, cursor=None, now=T0 + 10).fire == (T0,)  # within grace: fired
    assert plan(c, cursor=None, now=T0 + 40).fire == ()  # older: not owed
    assert plan(c, cursor=None, now=T0 + 40).missed == 0


@freeze_time("2024-05-01 12:00:00.250")
def test_plan_defaults_to_now() -> None:
    assert plan(MINUTELY["once"], cursor=T0 - 60).fire == (T0,)


# -- the scheduler's round, on fakeredis (same Lua scripts) ---------------------------


class Tick(BaseJob):
    queue = "sched-unit"
    schedules = (
        cron("* * * * * *", misfire="once", grace=1, name="once"),
        cron("* * * * * *", misfire="all", grace=1, name="all"),
        cron("* * * * * *", misfire="skip", grace=1, name="skip"),
    )

    def perform(self) -> None:
        return None


class Berlin0230(BaseJob):
    queue = "sched-unit"
    schedule = cron("30 2 * * *", tz="Europe/Berlin", grace=120)

    def perform(self) -> None:
        return None


class SchedClock:
    """``time.time`` under test control, for what freezegun cannot do (see above); fakeredis
    takes Redis TIME from ``time.time`` too."""

    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def sched_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], SchedClock]:
    def start(at: float) -> SchedClock:
        clock = SchedClock(at)
        monkeypatch.setattr(time, "time", clock)
        return clock

    return start


@pytest.fixture
def sched_store() -> Iterator[Store]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    try:
        yield Store(client, "sched-unit")
    finally:
        client.close()


def _fired(store: Store, key: str, queue: str = "sched-unit") -> list[int]:
    prefix = store.keys.shard(queue).job(f"{queue}:cron:{key}:")
    return sorted(int(k.removeprefix(prefix)) for k in store.redis.scan_iter(prefix + "*"))


def _bound(cls: type[BaseJob], suffix: str = "") -> BoundSchedule:
    return next(b for b in bind_schedules(cls) if b.key.endswith(suffix))


def test_two_schedulers_fire_each_slot_once(sched_store: Store) -> None:
    schedules = bind_schedules(Tick)
    a, b = Scheduler(sched_store, schedules), Scheduler(sched_store, schedules)
    with freeze_time("2024-05-01 12:00:00.003") as clock:
        for _ in range(10):
            a.step()
            b.step()
            clock.tick(1)
    for bound in schedules:
        assert _fired(sched_store, bound.key) == list(range(T0, T0 + 10)), bound.key
        state = ScheduleStore(sched_store).states([bound]).items[0]
        assert (state.cursor, state.fired, state.last_slot) == (T0 + 9, 10, T0 + 9)
        assert state.next_slot == T0 + 10
    assert sched_store.redis.zcard(sched_store.keys.queue("sched-unit")) == 30


def test_restart_after_downtime_applies_each_policy(sched_store: Store) -> None:
    schedules = bind_schedules(Tick)
    with freeze_time("2024-05-01 12:00:00.003") as clock:
        first = Scheduler(sched_store, schedules)
        for _ in range(3):
            first.step()
            clock.tick(1)
        clock.tick(17)  # killed: nobody runs for a while; now T0 + 20.003
        Scheduler(sched_store, schedules).step()
    assert _fired(sched_store, "tests.unit.test_cron.Tick#all") == list(range(T0, T0 + 21))
    # once: slots T0+3 .. T0+18 missed, one catch-up for T0+19, then T0+20 on time
    assert _fired(sched_store, "tests.unit.test_cron.Tick#once") == [
        T0,
        T0 + 1,
        T0 + 2,
        T0 + 19,
        T0 + 20,
    ]
    assert _fired(sched_store, "tests.unit.test_cron.Tick#skip") == [T0, T0 + 1, T0 + 2, T0 + 20]
    skip, once = (
        ScheduleStore(sched_store).states([_bound(Tick, "#skip"), _bound(Tick, "#once")]).items
    )
    assert (skip.cursor, skip.skipped) == (T0 + 20, 17)
    assert (once.cursor, once.skipped) == (T0 + 20, 16)


def test_a_slot_never_fires_again_after_its_job_expired(sched_store: Store) -> None:
    bound = _bound(Tick, "#all")
    sched = ScheduleStore(sched_store)
    job = Tick.new_job({})
    with freeze_time("2024-05-01 12:00:00.500"):
        p = plan(bound.cron, None, T0 + 0.5)
        assert sched.fire(bound, job, p)[1][0].code == 1
        sched_store.redis.delete(sched_store.keys.job(bound.job_id(T0)))  # result_ttl passed
        advanced, [again] = sched.fire(bound, job, p)
    assert (advanced, again.code, again.detail) == (False, 0, "")
    assert _fired(sched_store, bound.key) == []


def test_a_future_slot_is_refused(sched_store: Store) -> None:
    bound = _bound(Tick, "#all")
    job = Tick.new_job({})
    with freeze_time("2024-05-01 12:00:00.500"):
        early = plan(bound.cron, T0 - 1, T0 + 1.5)  # a plan from a clock 1 s fast
        _, results = ScheduleStore(sched_store).fire(bound, job, early)
    assert [(r.slot, r.code) for r in results] == [(T0, 1), (T0 + 1, -1)]
    assert results[1].detail == "500"


def test_cron_job_hash_matches_a_dispatched_job(sched_store: Store) -> None:
    with freeze_time("2024-05-01 12:00:00.003"):
        Scheduler(sched_store, [_bound(Tick, "#all")]).step()
        handle = Tick.dispatch(store=sched_store)
    fired = sched_store.redis.hgetall(
        sched_store.keys.job(f"sched-unit:cron:tests.unit.test_cron.Tick#all:{T0}")
    )
    dispatched = sched_store.redis.hgetall(sched_store.keys.job(handle.id))
    assert set(dispatched) <= set(fired)  # cron_fire.lua mirrors enqueue.lua
    # a job queued as it is created is due then: only the cron job's hash names its slot
    assert set(fired) - set(dispatched) == {"schedule", "due_at"}
    assert fired["due_at"] == str(T0 * 1000)  # the slot: lateness is started_at - due_at
    record = handle.record
    assert record is not None and record.due_at == record.created_at
    for field in ("name", "lane", "params", "status", "max_attempts", "result_ttl"):
        assert fired[field] == dispatched[field], field


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # spring forward: the 02:30 run happens once, at 03:00 CEST (01:00 UTC)
        ("2024-03-30 23:00:00", "2024-03-31 03:00:00", ["2024-03-31 01:00:00"]),
        # fall back: 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC)
        (
            "2024-10-26 23:00:00",
            "2024-10-27 03:00:00",
            ["2024-10-27 00:30:00", "2024-10-27 01:30:00"],
        ),
    ],
)
def test_scheduler_across_dst(
    sched_store: Store,
    sched_clock: Callable[[float], SchedClock],
    start: str,
    end: str,
    expected: list[str],
) -> None:
    sched = Scheduler(sched_store, bind_schedules(Berlin0230))
    clock = sched_clock(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp())
    stop = datetime.fromisoformat(end).replace(tzinfo=UTC).timestamp()
    while clock() < stop:
        sched.step()
        clock.tick(30)
    assert [_utc(s) for s in _fired(sched_store, "tests.unit.test_cron.Berlin0230")] == expected


def test_step_sleeps_until_the_next_slot_or_delayed_job(sched_store: Store) -> None:
    sched = Scheduler(sched_store, bind_schedules(Berlin0230))
    with freeze_time("2024-05-01 12:00:00"):
        assert sched.step() == 5.0  # the next slot is hours away: capped
        # nothing was owed: the first round records the next slot, but no cursor
        [state] = ScheduleStore(sched_store).states(bind_schedules(Berlin0230)).items
        assert (state.cursor, state.next_slot) == (None, _ts(2024, 5, 2, 0, 30))
        Tick.dispatch(store=sched_store, delay=1.25)
        assert sched.step() == pytest.approx(1.25)


def test_enqueue_wakes_schedulers_only_for_a_new_earliest_entry(sched_store: Store) -> None:
    pubsub = sched_store.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(sched_store.keys.shard("sched-unit").sched_wake)
    pubsub.get_message(timeout=0.1)  # the subscription confirmation

    def wakes() -> list[int]:
        out = []
        while (msg := pubsub.get_message(timeout=0.05)) is not None:
            out.append(int(msg["data"]))
        return out

    def due_ms(job_id: str) -> int:
        return int(str(sched_store.redis.hget(sched_store.keys.job(job_id), "due_at")))

    first = Tick.dispatch(store=sched_store, delay=10)
    assert wakes() == [due_ms(first.id)]
    Tick.dispatch(store=sched_store, delay=20)  # later than the head: no wake-up
    assert wakes() == []
    earlier = Tick.dispatch(store=sched_store, delay=5)
    assert wakes() == [due_ms(earlier.id)]
    Tick.dispatch(store=sched_store)  # queued now: nothing to schedule
    assert wakes() == []
    pubsub.close()
