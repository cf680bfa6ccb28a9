"""What dispatch accepts, a worker reads; what it refuses, it refuses with a clear error and
writes nothing: ids, names, queues and tags in their alphabets, options in range, unknown
keywords, params a worker's JSON parser could not read, and payloads over the size limit."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import jobkit
from jobkit import BaseJob, DeadReason, Status, registry
from jobkit.errors import (
    ConfigurationError,
    DispatchError,
    InvalidName,
    JobkitError,
    PayloadTooLarge,
    RegistryError,
    SerializationError,
)
from jobkit.settings import load_settings
from tests.conftest import HEARTBEAT, LEASE, REPO_ROOT, Env, StartWorker, clean_env
from tests.support import jobs

MiB = 1024 * 1024


@pytest.fixture
def nothing_written(env: Env) -> Iterator[Callable[[], None]]:
    """Call it after refused dispatches: Redis holds exactly what it held before."""
    jobs.Add.dispatch(a=1, b=2)  # something is there already
    before = {key: env.client.dump(key) for key in env.client.keys("*")}

    def check() -> None:
        assert {key: env.client.dump(key) for key in env.client.keys("*")} == before

    return check


def nest(depth: int) -> Any:
    """``depth`` lists, one in the other, around a 1: [[...[1]...]]. In params (a JSON
    object) that is ``depth + 1`` levels; a worker's JSON parser reads up to 200."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def stored_params(env: Env, job_id: str) -> str:
    return str(env.client.hget(env.keys.job(job_id), "params"))


# -- job ids (item 5) ----------------------------------------------------------------------


def test_job_id_up_to_128_ascii_bytes_is_stored_and_read(env: Env) -> None:
    longest = "a" * 128
    handle = jobs.Add.dispatch(a=1, b=2, job_id=longest)
    assert handle.id == "default:" + longest  # an id names its queue
    assert jobkit.get_job(handle.id).status is Status.QUEUED
    alphabet = "AZaz09_.:@+=-"
    assert jobs.Add.dispatch(a=1, b=2, job_id=alphabet).status is Status.QUEUED


@pytest.mark.parametrize(
    "bad",
    [
        "a" * 129,  # one byte over
        "€" * 43,  # 43 characters, 129 bytes: the id that overflowed the worker's slot
        "é",  # any non-ASCII character
        "",
        "has space",
        "new\nline",
        "tab\t",
        "nul\x00",
        "a/b",  # a path segment of the HTTP API
        "{tag}",  # Redis Cluster hash tags are reserved
        "a|b",
        "a,b",
    ],
)
def test_job_id_outside_the_alphabet_is_refused(
    bad: str, nothing_written: Callable[[], None]
) -> None:
    with pytest.raises(InvalidName, match="job_id") as caught:
        jobs.Add.dispatch(a=1, b=2, job_id=bad)
    assert "128" in str(caught.value)
    with pytest.raises(InvalidName):
        jobs.Add.dispatch_params({"a": 1, "b": 2}, job_id=bad)
    nothing_written()


def test_job_id_must_be_a_string(nothing_written: Callable[[], None]) -> None:
    with pytest.raises(InvalidName):
        jobs.Add.dispatch(a=1, b=2, job_id=42)  # type: ignore[arg-type]
    nothing_written()


# -- job names (item 6) --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["tests.bad\nname", "tests.bad\tname", "tests.bad\x1bname",
                                 "tests.bad name", "tests.{bad}", "tests/bad", "x" * 129, "9lives",
                                 "tests.bäd"])  # fmt: skip
def test_a_job_name_outside_the_alphabet_fails_the_class_definition(bad: str) -> None:
    with pytest.raises(InvalidName, match=r"\.name .* is not valid"):

        class BadName(BaseJob):
            name = bad

    assert bad not in registry.registered()
    with pytest.raises(InvalidName):  # nor can it be registered by hand
        registry.register(bad, jobs.Add)


def test_job_names_take_dotted_python_names_dashes_and_colons() -> None:
    class Good(BaseJob):
        name = "tests.input.good-name:v2"

    class Longest(BaseJob):
        name = "t" * 128

    assert registry.lookup("tests.input.good-name:v2") is Good
    assert registry.lookup("t" * 128) is Longest


def test_a_default_name_outside_the_alphabet_says_to_set_one() -> None:
    with pytest.raises(InvalidName, match=re.escape("set `name = ...`")):

        class Größe(BaseJob):
            pass


# -- queues and tags (item 13) -------------------------------------------------------------

BAD_QUEUES = ["zz|gpu", "a,b", "high:5", "{q}", "new\nline", "with space", "", "q" * 65, "é"]


@pytest.mark.parametrize("bad", BAD_QUEUES)
def test_a_queue_outside_the_alphabet_is_refused_at_dispatch(
    bad: str, nothing_written: Callable[[], None]
) -> None:
    with pytest.raises(InvalidName, match="queue"):
        jobs.Add.dispatch(a=1, b=2, queue=bad)
    with pytest.raises(InvalidName, match="queue"):
        jobs.Add.dispatch_many([{"a": 1, "b": 2}], queue=bad)
    nothing_written()


def test_a_queue_of_64_safe_characters_is_used(env: Env) -> None:
    queue = "Aa0_.-" + "q" * 58
    handle = jobs.Add.dispatch(a=1, b=2, queue=queue)
    assert handle.record is not None and handle.record.queue == queue


@pytest.mark.parametrize("bad", BAD_QUEUES)
def test_a_class_queue_outside_the_alphabet_fails_the_class_definition(bad: str) -> None:
    with pytest.raises(InvalidName, match=r"BadQueue\.queue"):

        class BadQueue(BaseJob):
            name = "tests.input.bad-queue"
            queue = bad

    with pytest.raises(RegistryError):
        registry.lookup("tests.input.bad-queue")


@pytest.mark.parametrize("bad", ["a|b", "a,b", "a:b", "{a}", "a b", "tab\t", "", "t" * 65, "ü"])
def test_a_class_tag_outside_the_alphabet_fails_the_class_definition(bad: str) -> None:
    with pytest.raises(InvalidName, match=r"BadTags\.tag"):

        class BadTags(BaseJob):
            name = "tests.input.bad-tags"
            tags = frozenset({"gpu", bad})

    with pytest.raises(InvalidName, match="set of names"):

        class StringTags(BaseJob):
            name = "tests.input.string-tags"
            tags = "gpu"  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-q", "high:0,low:1"), "a weight is a whole number from 1 up"),
        (("-q", "high:x,low:1"), "a weight is a whole number from 1 up"),
        (("-q", "high:5,low"), "give every queue a weight"),
        (("-q", "zz|gpu"), "queue 'zz|gpu' is not valid"),
        (("-q", "ok", "--tags", "gpu,a|b"), "tag 'a|b' is not valid"),
        (("-q", ","), "give at least one queue"),
    ],
)
def test_worker_refuses_bad_queues_and_tags_and_does_not_start(
    env: Env, args: tuple[str, ...], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobkit", "worker", "-A", "tests.support.jobs", *args],
        cwd=REPO_ROOT,
        env=clean_env(JOBKIT_REDIS_URL=env.url, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", done.stderr).split())  # rich's box, unwrapped
    assert message in said
    assert env.client.zcard(env.keys.workers) == 0  # it never registered


# -- options: delay, at, priority (item 10) -------------------------------------------------


@pytest.mark.parametrize(
    "delay",
    [1e30, math.inf, -math.inf, math.nan, -1, -0.001, 10**400, timedelta.max, timedelta(-1),
     "60", True],
)  # fmt: skip
def test_a_delay_out_of_range_is_refused(delay: Any, nothing_written: Callable[[], None]) -> None:
    with pytest.raises(DispatchError, match="delay"):
        jobs.Add.dispatch(a=1, b=2, delay=delay)
    with pytest.raises(DispatchError, match="delay"):
        jobs.Add.dispatch_many([{"a": 1, "b": 2}], delay=delay)
    nothing_written()


UTC_MINUS_5 = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "at",
    [
        datetime(9999, 12, 31, 23, tzinfo=UTC_MINUS_5),  # 04:00 on 10000-01-01 UTC
        datetime.max.replace(tzinfo=UTC_MINUS_5),
        "2030-01-01T00:00:00Z",
        1_900_000_000,
    ],
)
def test_an_at_python_cannot_represent_is_refused(
    at: Any, nothing_written: Callable[[], None]
) -> None:
    with pytest.raises(DispatchError, match="at"):
        jobs.Add.dispatch(a=1, b=2, at=at)
    with pytest.raises(DispatchError, match="at"):
        jobs.Add.dispatch_many([{"a": 1, "b": 2}], at=at)
    nothing_written()


@pytest.mark.parametrize(
    "at",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
        datetime.max.replace(tzinfo=timezone.utc),
        datetime(9999, 12, 31, 18, 59, tzinfo=UTC_MINUS_5),
    ],
)
def test_an_at_in_year_9999_is_stored_and_the_job_read_back(env: Env, at: datetime) -> None:
    handle = jobs.Add.dispatch(a=1, b=2, at=at)
    job = jobkit.get_job(handle.id)  # raised ValueError for due times past datetime.max
    assert job.status is Status.SCHEDULED
    assert job.record is not None and job.record.due_at is not None
    assert abs(job.record.due_at - at) < timedelta(milliseconds=2)
    [many] = jobs.Add.dispatch_many([{"a": 1, "b": 2}], at=at)
    assert jobkit.get_job(many.id).status is Status.SCHEDULED


def test_the_longest_delay_is_still_readable(env: Env) -> None:
    with pytest.raises(DispatchError, match="before the year 10000"):
        jobs.Add.dispatch(a=1, b=2, delay=timedelta(days=365 * 8000))
    handle = jobs.Add.dispatch(a=1, b=2, delay=timedelta(days=365 * 7900))
    record = jobkit.get_job(handle.id).record
    assert record is not None and record.due_at is not None and record.due_at.year > 9800


def test_a_naive_at_is_local_time(env: Env) -> None:
    local = datetime.now() + timedelta(hours=2)
    naive = jobs.Add.dispatch(a=1, b=2, at=local)
    aware = jobs.Add.dispatch(a=1, b=2, at=local.astimezone())
    due = [jobkit.get_job(h.id).record.due_at for h in (naive, aware)]  # type: ignore[union-attr]
    assert due[0] == due[1]
    assert due[0] is not None and abs(due[0] - local.astimezone()) < timedelta(milliseconds=2)


def test_zero_delay_and_a_past_at_queue_at_once(env: Env) -> None:
    assert jobs.Add.dispatch(a=1, b=2, delay=0).status is Status.QUEUED
    assert jobs.Add.dispatch(a=1, b=2, delay=timedelta(0)).status is Status.QUEUED
    past = datetime(1, 1, 1, tzinfo=timezone.utc)
    assert jobs.Add.dispatch(a=1, b=2, at=past).status is Status.QUEUED


@pytest.mark.parametrize("priority", [1001, -1001, 10**100, 1.5, True, "5"])
def test_a_priority_out_of_range_is_refused(
    priority: Any, nothing_written: Callable[[], None]
) -> None:
    with pytest.raises(DispatchError, match="priority"):
        jobs.Add.dispatch(a=1, b=2, priority=priority)
    with pytest.raises(DispatchError, match="priority"):
        jobs.Add.dispatch_many([{"a": 1, "b": 2}], priority=priority)
    nothing_written()


# -- unknown keywords (item 12) --------------------------------------------------------------


def test_a_misspelled_option_is_an_error_naming_the_option(
    nothing_written: Callable[[], None],
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        jobs.Label.dispatch(label="x", dealy=30)
    [error] = caught.value.errors()
    assert error["loc"] == ("dealy",)
    assert "did you mean the option 'delay'?" in error["msg"]
    with pytest.raises(jobkit.DispatchError, match="depends_on"):  # an id of no queue
        jobs.Label.dispatch(label="x", depends_on="other-job")
    with pytest.raises(pydantic.ValidationError, match="did you mean the field 'label'"):
        jobs.Label.dispatch(lable="x")
    with pytest.raises(pydantic.ValidationError, match="the option 'delay'") as caught:
        jobs.Label.dispatch_many([{"label": "x"}, {"label": "y", "dealy": 30}])
    assert [e["loc"] for e in caught.value.errors()] == [(1, "dealy")]  # the item, by index
    with pytest.raises(pydantic.ValidationError) as caught:
        jobs.Label.dispatch_many([{"label": "x"}, 42])  # type: ignore[list-item]
    assert caught.value.errors()[0]["loc"] == (1,)
    nothing_written()


def test_params_named_like_options_are_params_in_a_mapping(
    nothing_written: Callable[[], None],
) -> None:
    for option in ("delay", "at", "queue", "priority", "job_id", "store"):
        with pytest.raises(pydantic.ValidationError, match="a dispatch option, not a param"):
            jobs.Label.dispatch_params({"label": "x", option: 1})
    with pytest.raises(DispatchError, match="mapping"):
        jobs.Label.dispatch_params([("label", "x")])  # type: ignore[arg-type]
    nothing_written()


def test_params_that_keep_extra_keys_keep_them_apart_from_options(env: Env) -> None:
    kept = jobs.Loose.dispatch(label="x", colour="red")
    assert '"colour":"red"' in stored_params(env, kept.id)
    as_param = jobs.Loose.dispatch_params({"delay": 60})  # a param here, not an option
    assert as_param.status is Status.QUEUED
    assert stored_params(env, as_param.id) == '{"label":"","delay":60}'


def test_a_params_field_or_alias_named_like_an_option_fails_the_class_definition() -> None:
    with pytest.raises(TypeError, match="delay"):

        class Clash(BaseJob):
            name = "tests.Clash"  # the default, from this module's path, is too long

            class Params(BaseModel):
                delay_s: float = pydantic.Field(alias="delay")


@pytest.mark.parametrize(
    ("params", "message"),
    [({"label": "x", "lable": "y"}, "did you mean the field 'label'"),
     ({"label": "x", "delay": 5}, "a dispatch option, not a param"),
     ({"label": "x", "f": math.nan}, "NaN and infinity")],
)  # fmt: skip
def test_schedule_params_the_scheduler_could_not_dispatch_fail_the_class_definition(
    params: dict[str, Any], message: str
) -> None:
    """Checked at import as dispatch will check them when the schedule fires: the
    scheduler would otherwise meet the error at every slot."""
    with pytest.raises(ValueError, match=re.escape(message)):

        class Nightly(BaseJob):
            name = "tests.input.nightly"
            schedule = jobkit.cron("0 2 * * *", params=params)

            class Params(BaseModel):
                label: str
                f: float = 0.0

    with pytest.raises(RegistryError):
        registry.lookup("tests.input.nightly")


def test_fields_are_accepted_by_their_alias(env: Env) -> None:
    class Aliased(BaseJob):
        name = "tests.input.aliased"

        class Params(BaseModel):
            user_id: int = pydantic.Field(alias="userId")

    # stored under the alias too: the worker's parser reads by alias (it was written by
    # field name, which the worker refused as invalid_payload)
    stored = stored_params(env, Aliased.dispatch(userId=7).id)
    assert Aliased.Params.model_validate_json(stored).user_id == 7
    with pytest.raises(pydantic.ValidationError, match="did you mean the field 'userId'"):
        Aliased.dispatch(user_id=7)  # pydantic would have dropped it: by alias only


# -- params a worker could not read (item 10) -----------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"f": math.nan}, "NaN and infinity"),
        ({"f": math.inf}, "NaN and infinity"),
        ({"o": -math.inf}, "NaN and infinity"),  # would read back as None
        ({"a": {"deep": [1.0, math.nan]}}, "NaN and infinity"),  # likewise, silently
        ({"a": nest(200)}, "recursion limit"),
        ({"a": nest(254)}, "recursion limit"),
        ({"a": nest(255)}, "cannot be written as JSON"),
        ({"a": nest(5000)}, "cannot be written as JSON"),
        ({"i": 10**4300}, "number out of range"),
        ({"i": 10**5000}, "number out of range"),
        ({"a": 10**5000}, "number out of range"),
        ({"s": "lone \ud800 surrogate"}, "cannot be written as JSON"),
    ],
)
def test_params_a_worker_could_not_read_are_refused(
    params: dict[str, Any], message: str, nothing_written: Callable[[], None]
) -> None:
    with pytest.raises(SerializationError, match=message):
        jobs.Measures.dispatch(**params)
    with pytest.raises(SerializationError, match=re.escape("params[1]")):
        jobs.Measures.dispatch_many([{}, params])
    nothing_written()


def test_params_just_inside_the_parsers_limits_reach_the_worker(
    env: Env, start_worker: StartWorker
) -> None:
    edge = {"a": nest(199), "i": -(10**4299), "o": 1e308, "f": -0.0, "s": "\x00\u2028é€😀"}
    handles = [jobs.Measures.dispatch(**edge), *jobs.Measures.dispatch_many([edge, {"o": None}])]
    for handle in handles:  # what the worker will parse, parsed as it will be
        model = jobs.Measures.Params.model_validate_json(stored_params(env, handle.id))
        assert model == jobs.Measures.Params.model_validate(
            edge if handle is not handles[-1] else {}
        )
    start_worker()
    results = [h.result(timeout=20) for h in handles]
    assert results == [{"o": 1e308, "i_digits": 4300}] * 2 + [{"o": None, "i_digits": 1}]


# -- size (item 11) --------------------------------------------------------------------------


def test_params_over_the_size_limit_are_refused(nothing_written: Callable[[], None]) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        jobs.Label.dispatch(label="x" * (20 * MiB))  # the 20 MB param
    assert caught.value.limit == 4 * MiB
    assert caught.value.size == 20 * MiB + len('{"label":""}')
    assert "20,971,532 bytes" in str(caught.value) and "4,194,304" in str(caught.value)
    assert "JOBKIT_MAX_PAYLOAD" in str(caught.value)
    with pytest.raises(PayloadTooLarge, match=re.escape("params[1] of Label")):
        jobs.Label.dispatch_many([{"label": "x"}, {"label": "x" * (5 * MiB)}])
    nothing_written()


def test_the_size_limit_is_a_setting(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKIT_MAX_PAYLOAD", "2048")
    assert load_settings().max_payload == 2048
    monkeypatch.setenv("JOBKIT_MAX_PAYLOAD", "4 MB")
    with pytest.raises(ConfigurationError, match="max_payload"):
        load_settings()
    monkeypatch.delenv("JOBKIT_MAX_PAYLOAD")
    assert load_settings().max_payload == 4 * MiB
    jobkit.configure(redis_url=env.url, max_payload=2048)
    try:
        overhead = len('{"label":""}')
        assert jobs.Label.dispatch(label="x" * (2048 - overhead)).status is Status.QUEUED
        with pytest.raises(PayloadTooLarge, match="2,049 bytes"):
            jobs.Label.dispatch(label="x" * (2049 - overhead))
    finally:
        jobkit.get_store().redis.close()
        jobkit.configure(redis_url=env.url, lease=LEASE, heartbeat=HEARTBEAT)


def test_a_result_over_the_size_limit_is_dead_lettered_and_the_worker_serves_on(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker()
    big = jobs.BigResult.dispatch(size=4 * MiB)  # plus its quotes: 2 bytes over
    with pytest.raises(jobkit.JobFailed):
        big.result(timeout=20)
    record = jobkit.get_job(big.id).record
    assert record is not None and record.status is Status.DEAD
    assert record.reason == DeadReason.INVALID_RESULT.value
    assert record.error is not None and record.error.type == "PayloadTooLarge"
    assert "4,194,306 bytes" in record.error.message and "4,194,304" in record.error.message
    assert jobs.Add.dispatch(a=2, b=3).result(timeout=20) == 5  # the same worker, serving on
    assert jobs.BigResult.dispatch(size=4 * MiB - 2).result(timeout=20) == "x" * (4 * MiB - 2)
    assert worker.alive()


# -- properties: whatever dispatch accepts, the worker's parser reads back equal ------------

floats = st.floats(allow_nan=True, allow_infinity=True)
json_like = st.recursive(
    st.none() | st.booleans() | floats | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)
measures = st.fixed_dictionaries(
    {},
    optional={
        "f": floats,
        "o": st.none() | floats,
        "a": json_like | st.builds(nest, st.integers(190, 260)),
        "i": st.integers() | st.integers(10**4290, 10**4310),
        "s": st.text(),
    },
)


PROPERTY: dict[str, Any] = {
    "deadline": None,
    "database": None,  # nothing written into the work tree
    "suppress_health_check": [HealthCheck.too_slow],
}


def _accepted_reads_back(params: dict[str, Any]) -> None:
    try:
        job = jobs.Measures.new_job(params)
    except (pydantic.ValidationError, JobkitError):
        return  # a clear error; never OverflowError, AttributeError and the like
    read = jobs.Measures.Params.model_validate_json(job.params_json)
    assert read == jobs.Measures.Params.model_validate(params)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(measures)
def test_whatever_dispatch_accepts_the_worker_reads_back_equal(params: dict[str, Any]) -> None:
    _accepted_reads_back(params)


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(measures, min_size=1, max_size=5))
def test_whatever_dispatch_many_accepts_the_worker_reads_back_equal(
    items: list[dict[str, Any]],
) -> None:
    codec = jobs.Measures._params()
    try:
        models = codec.validate_many(items)
        raws = codec.encode_many(models, 4 * MiB)
    except (pydantic.ValidationError, JobkitError):
        for item in items:  # then one of them alone is refused too
            try:
                jobs.Measures.new_job(item)
            except (pydantic.ValidationError, JobkitError):
                return
        raise AssertionError("dispatch_many refused what dispatch accepts one by one") from None
    for raw, item in zip(raws, items, strict=True):
        read = jobs.Measures.Params.model_validate_json(raw)
        assert read == jobs.Measures.Params.model_validate(item)


def test_only_models_whose_json_always_reads_back_skip_the_read_back() -> None:
    from pydantic import ConfigDict, Field, SecretStr, field_serializer, field_validator

    from jobkit.payload import round_trips

    class Inner(BaseModel):
        x: list[int] = []

    class Plain(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int = 0
        s: str = Field("a", max_length=5)
        f: float | None = None
        inner: Inner | None = None
        free: Any = None

    class Validated(BaseModel):
        x: int

        @field_validator("x")
        @classmethod
        def check(cls, x: int) -> int:
            return x

    class Serialized(BaseModel):
        x: int

        @field_serializer("x")
        def show(self, x: int) -> str:
            return str(x)

    class Secret(BaseModel):
        s: SecretStr

    class Aliased(BaseModel):
        x: int = Field(alias="y")

    class Extra(BaseModel):
        model_config = ConfigDict(extra="allow")

    class Strict(BaseModel):
        model_config = ConfigDict(strict=True)
        x: int = 0

    class Hidden(BaseModel):
        x: int = Field(exclude=True)

    assert round_trips(Plain) and round_trips(Inner)
    for model in (Validated, Serialized, Secret, Aliased, Extra, Strict, Hidden):
        assert not round_trips(model), model.__name__
