"""Cron schedules declared on job classes: parsing, time zones, slots and misfire plans.

A *slot* is one instant a schedule fires at, as whole epoch seconds. Slots are computed by
croniter on aware datetimes in the schedule's zoneinfo time zone, so "02:00 in Berlin"
follows daylight saving time; the scheduler then only ever compares epoch seconds.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import ValidationError

from jobkit.backend.keys import job_id

if TYPE_CHECKING:
    from croniter import croniter

    from jobkit.job import BaseJob

# croniter is imported where a schedule is first used, not with jobkit: at import it runs
# `file` in a subprocess (platform.architecture()), which an app without schedules need
# not pay for.

Misfire = Literal["once", "all", "skip"]
MISFIRE_POLICIES: tuple[str, ...] = get_args(Misfire)

# "all" enqueues at most this many missed slots after downtime: a schedule that fires every
# second must not bury the queues under a day of backlog.
MAX_CATCHUP = 100
# How many past slots one plan looks at; bounds the work after a long outage (croniter
# takes ~0.1 ms per step). Slots older than this window are counted as missed, not fired.
MAX_SCAN = 1000
DEFAULT_GRACE = 60.0
_STEP_TRIES = 3
MIN_GRACE = 1.0

_NAME = re.compile(r"[^\s:]{1,64}")


@dataclass(frozen=True)
class Cron:
    """One recurring schedule; build it with :func:`cron`."""

    expr: str
    tz: str = "UTC"
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    misfire: Misfire = "once"
    grace: float = DEFAULT_GRACE
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.grace, timedelta):
            object.__setattr__(self, "grace", self.grace.total_seconds())
        if self.grace < MIN_GRACE:
            # a slot is always fired a little after its time; below this, healthy
            # schedulers would see their own slots as missed
            raise ValueError(f"cron grace must be at least {MIN_GRACE:g} second")
        if self.misfire not in MISFIRE_POLICIES:
            raise ValueError(
                f"cron misfire must be one of {', '.join(MISFIRE_POLICIES)}, not {self.misfire!r}"
            )
        if self.name and not _NAME.fullmatch(self.name):
            raise ValueError("cron name must be 1-64 characters without whitespace or ':'")
        if not isinstance(self.params, Mapping):
            raise TypeError("cron params must be a mapping")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.tz!r}") from exc
        from croniter import CroniterBadDateError, CroniterError

        try:
            self.next_after(time.time())
        except CroniterBadDateError as exc:
            raise ValueError(f"cron {self.expr!r} never fires") from exc
        except (CroniterError, ValueError, TypeError) as exc:
            raise ValueError(f"invalid cron expression {self.expr!r}: {exc}") from exc

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)  # ZoneInfo caches instances, so this is cheap

    def _at(self, t: float) -> datetime:
        # fromutc sets `fold` on the repeated hour of a fall-back day
        utc = datetime.fromtimestamp(t, timezone.utc)
        return self.zone.fromutc(utc.replace(tzinfo=self.zone))

    @cached_property
    def _parsed(self) -> croniter:
        # parsing costs ~0.5 ms; copies of this template only differ in their position
        from croniter import croniter

        return croniter(self.expr, self._at(0))

    def _iter(self, t: float) -> croniter:
        # croniter keeps the zone of the datetime it was given and steps in epoch seconds;
        # handing it the epoch directly means no local wall time (ambiguous in the hour a
        # fall-back repeats) is ever built on our side. A copy, so threads never share one.
        it = copy.copy(self._parsed)
        it.set_current(t, force=True)
        return it

    def next_after(self, t: float) -> int:
        """The first slot strictly after epoch time ``t``."""
        # slots are whole seconds, so "after floor(t)" is "after t"
        start = math.floor(t)
        it = self._iter(start)
        for _ in range(_STEP_TRIES):
            slot = int(it.get_next(float))
            if slot > start:  # never trust a step that does not move forward
                return slot
        raise RuntimeError(f"croniter does not advance {self.expr!r} past {start}")

    def slots_back(self, t: float) -> Iterator[int]:
        """Slots at or before ``t``, newest first (ends if croniter finds no earlier one)."""
        from croniter import CroniterBadDateError

        it = self._iter(math.floor(t) + 1)
        last = math.floor(t) + 1
        stuck = 0
        while stuck < _STEP_TRIES:
            try:
                slot = int(it.get_prev(float))
            except CroniterBadDateError:
                return
            if slot < last:  # never trust a step that does not move backward
                last, stuck = slot, 0
                yield slot
            else:
                stuck += 1

    def next_runs(self, count: int = 3, after: float | None = None) -> list[datetime]:
        """The next ``count`` fire times after ``after`` (default: now), in the schedule's zone."""
        t = time.time() if after is None else after
        out: list[datetime] = []
        for _ in range(count):
            t = self.next_after(t)
            out.append(self._at(t))
        return out

    def describe(self) -> str:
        extra = f" params={dict(self.params)}" if self.params else ""
        return f"{self.expr!r} {self.tz} misfire={self.misfire} grace={self.grace:g}s{extra}"


def cron(
    expr: str,
    *,
    tz: str = "UTC",
    params: Mapping[str, Any] | None = None,
    misfire: Misfire = "once",
    grace: float | timedelta = DEFAULT_GRACE,
    name: str = "",
) -> Cron:
    """A cron schedule to set as ``schedule = cron(...)`` (or in ``schedules = [...]``).

    ``expr`` is anything croniter parses: five fields, ``@daily`` style aliases, or six
    fields where the sixth is *seconds* (croniter's convention: ``"* * * * * */5"`` is
    every five seconds, ``"0 2 * * * 30"`` is 02:00:30). ``tz`` is an IANA zone; slots
    follow its daylight saving time as croniter does with zoneinfo:

    - spring forward (Europe/Berlin, last Sunday of March, 02:00 -> 03:00): a slot in the
      missing hour such as 02:30 fires once, at 03:00 local time; every-minute slots of
      the missing hour collapse into that single 03:00 run;
    - fall back (last Sunday of October, 03:00 -> 02:00): 02:30 exists twice and fires
      twice, an hour apart (they are distinct instants). Use ``tz="UTC"`` for work that
      must run exactly once a day whatever the clocks do.

    ``params`` are the job's params, validated against the class's ``Params`` when the
    class is defined. ``misfire`` says what happens to slots missed by more than
    ``grace`` seconds (no scheduler was running): ``"once"`` enqueues one catch-up run for
    the latest missed slot, ``"all"`` enqueues each missed slot (at most 100, newest), and
    ``"skip"`` enqueues none. Slots late by less than ``grace`` always run. ``name``
    identifies the schedule in Redis when a class declares several; name them so editing
    one does not reset its state.
    """
    seconds = grace.total_seconds() if isinstance(grace, timedelta) else float(grace)
    return Cron(expr, tz=tz, params=params or {}, misfire=misfire, grace=seconds, name=name)


@dataclass(frozen=True)
class Plan:
    """What to do for one schedule at one moment.

    ``fire``: slots to enqueue, oldest first. ``skip_to``: a missed slot the cursor moves
    to without enqueuing (policy "skip"). ``missed``: missed slots that are not enqueued
    (a lower bound after very long outages). ``next``: the first slot after now.
    """

    fire: tuple[int, ...]
    skip_to: int
    missed: int
    next: int


def plan(schedule: Cron, cursor: int | None, now: float | None = None) -> Plan:
    """The slots owed by ``schedule`` at ``now``, given the last handled slot ``cursor``.

    A schedule never handled before (``cursor`` None) owes only its latest slot, and only
    if that slot is within ``grace``: deploying a schedule does not replay its history.
    """
    t = time.time() if now is None else now
    cutoff = t - schedule.grace
    recent: list[int] = []  # newest first
    complete = False
    for slot in schedule.slots_back(t):
        if cursor is None:
            if slot > cutoff:
                recent.append(slot)
            complete = True
            break
        if slot <= cursor or len(recent) >= MAX_SCAN:
            complete = slot <= cursor
            break
        recent.append(slot)
    else:
        complete = True
    on_time = [s for s in recent if s > cutoff]
    late = [s for s in recent if s <= cutoff]
    # when the scan window ran out, at least one older slot was missed as well
    unseen = 0 if complete else 1
    fire: list[int] = on_time
    skip_to = 0
    if late and schedule.misfire == "all":
        fire = on_time + late
    elif late and schedule.misfire == "once":
        fire = [*on_time, late[0]]
    elif late:
        skip_to = late[0]
    fire = fire[:MAX_CATCHUP]
    missed = len(recent) - len(fire) + unseen
    return Plan(
        fire=tuple(sorted(fire)), skip_to=skip_to, missed=missed, next=schedule.next_after(t)
    )


@dataclass(frozen=True)
class BoundSchedule:
    """A :class:`Cron` attached to its job class, under a stable ``key``.

    The key names the schedule's state in Redis and its jobs' ids,
    ``<queue>:cron:<key>:<slot>`` (a job id names its queue: see
    :mod:`jobkit.backend.keys`): the job's name, plus ``#<name>`` when the schedule has
    one (or ``#<hash of expr, tz and params>`` for unnamed ones among several).
    """

    key: str
    cron: Cron
    job: type[BaseJob]

    @property
    def queue(self) -> str:
        """The queue its jobs go to: the job class's (its state lives in that shard)."""
        return self.job.queue

    def job_id(self, slot: int) -> str:
        """The deterministic id of the job for ``slot``."""
        return job_id(self.job.queue, f"cron:{self.key}:{slot}")


def _content_hash(c: Cron) -> str:
    raw = orjson.dumps([c.expr, c.tz, dict(c.params)], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha1(raw).hexdigest()[:8]


def bind_schedules(cls: type[BaseJob]) -> list[BoundSchedule]:
    """Validate the schedules ``cls`` declares itself and give each its key.

    Schedules are not inherited: a subclass of a scheduled job fires only what it declares,
    so subclassing never silently doubles a cron job. Raises ``TypeError``/``ValueError``
    (when the class is defined) for a malformed declaration or params that do not validate.
    """
    where = cls.__qualname__
    declared: list[Cron] = []
    own = cls.__dict__
    single = own.get("schedule")
    if single is not None:
        if not isinstance(single, Cron):
            raise TypeError(f"{where}.schedule must be jobkit.cron(...), not {single!r}")
        declared.append(single)
    many = own.get("schedules", ())
    if isinstance(many, (str, Cron)) or not isinstance(many, Sequence):
        raise TypeError(f"{where}.schedules must be a list of jobkit.cron(...)")
    for item in many:
        if not isinstance(item, Cron):
            raise TypeError(f"{where}.schedules items must be jobkit.cron(...), not {item!r}")
        declared.append(item)
    unnamed = sum(1 for c in declared if not c.name)
    bound: list[BoundSchedule] = []
    for c in declared:
        try:
            cls.Params.model_validate(dict(c.params))
        except ValidationError as exc:
            raise ValueError(
                f"{where}: params of schedule {c.expr!r} do not validate "
                f"against {where}.Params:\n{exc}"
            ) from exc
        suffix = c.name or ("" if unnamed == 1 else _content_hash(c))
        key = f"{cls.name}#{suffix}" if suffix else cls.name
        if any(b.key == key for b in bound):
            raise ValueError(f"{where}: two schedules share the key {key!r}; give them names")
        bound.append(BoundSchedule(key=key, cron=c, job=cls))
    return bound


def collect(classes: Sequence[type[BaseJob]]) -> list[BoundSchedule]:
    """Every schedule of ``classes``, in a stable order."""
    return [b for cls in classes for b in bind_schedules(cls)]
