"""Unit tests of the key layout and lanes."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from jobkit.backend.keys import Keys, job_id, lane_name, queue_of, split_lane, worker_lanes


def test_each_queue_is_a_shard_of_its_own_hash_tag() -> None:
    k = Keys("app")
    s = k.shard("images")
    assert s.base == "{app:images}"
    assert s.running == "{app:images}:running"
    assert s.scheduled == "{app:images}:scheduled"
    assert s.dead == "{app:images}:dead"
    assert s.seq == "{app:images}:seq"
    assert s.lanes == "{app:images}:lanes"
    assert s.stats == "{app:images}:stats"
    assert s.sched_wake == "{app:images}:sched:wake"
    assert s.schedule("nightly") == "{app:images}:schedule:nightly"
    assert s.job("images:abc") == "{app:images}:job:images:abc"
    assert s.claim("r.1") == "{app:images}:claim:r.1"
    assert s.corrupt("images:x") == "{app:images}:corrupt:images:x"
    assert s.asides == "{app:images}:asides"
    assert s.aside(s.running, 1700) == "{app:images}:aside:running:1700"
    assert s.aside(s.queue_key("a|b"), 5) == "{app:images}:aside:queue:a|b:5"
    assert k.shard("images") is s  # made once


def test_a_job_id_names_its_shard() -> None:
    k = Keys("app")
    assert job_id("images", "abc") == "images:abc"
    assert queue_of("images:abc") == "images"
    assert queue_of("images:a:b") == "images"  # keys may hold ':', queue names may not
    assert queue_of("abc") is None and queue_of(":abc") is None and queue_of("q:") is None
    assert k.job("images:abc") == "{app:images}:job:images:abc"
    assert k.done("images:abc") == "{app:images}:done:images:abc"
    assert k.waiter("images:abc") == "{app:images}:waiter:images:abc"
    with pytest.raises(ValueError, match="names no queue"):
        k.job("abc")


def test_lanes_live_in_their_queues_shard_and_the_rest_in_the_global_slot() -> None:
    k = Keys("app")
    assert k.queue("default") == "{app:default}:queue:default"
    assert k.queue("gpu|a,b") == "{app:gpu}:queue:gpu|a,b"
    assert k.wake("gpu|a,b") == "{app:gpu}:wake:gpu|a,b"
    assert k.base == "{app}"
    assert k.queues == "{app}:queues"
    assert k.workers == "{app}:workers"
    assert k.worker("host.1") == "{app}:worker:host.1"
    assert k.marker == "{app}:marker"
    assert k.asides == "{app}:asides"
    assert k.sched_wake_pattern == "{app:*}:sched:wake"
    assert Keys().base == "{jobkit}"


def lua_key_helpers() -> dict[str, Callable[..., str]]:
    """The key helpers of the scripts' prelude (_lib.lua), as Python functions: each
    ``local function x_key(base[, arg]) return base .. 'suffix'[ .. arg] end``."""
    from jobkit.backend import scripts

    lib = scripts.source("wait")  # the prelude and _flows.lua
    found: dict[str, Callable[..., str]] = {}
    pattern = (
        r"local function (\w+_key)\(base(?:, (\w+))?\) return base \.\. '([^']*)'(?: \.\. \w+)? end"
    )
    for name, arg, suffix in re.findall(pattern, lib):
        if arg:
            found[name] = lambda base, x, s=suffix: base + s + x
        else:
            found[name] = lambda base, s=suffix: base + s
    return found


def test_the_scripts_build_every_key_as_keys_py_does() -> None:
    """Whole keys, built by each helper of the prelude and by keys.py, are the same."""
    k = Keys("app")
    s = k.shard("images")
    helpers = lua_key_helpers()
    assert len(helpers) >= 20
    for name, build in helpers.items():
        attr = name if name == "queue_key" else name.removesuffix("_key")
        if attr in ("workers", "worker"):  # the global slot's
            want = getattr(k, attr)
            assert build(k.base, *(["host.1"] if attr == "worker" else [])) == (
                want("host.1") if attr == "worker" else want
            ), name
            continue
        python = getattr(s, attr)
        if callable(python):
            assert build(s.base, "images:x|y") == python("images:x|y"), name
        else:
            assert build(s.base) == python, name


def test_no_script_builds_a_key_but_through_the_prelude() -> None:
    """Outside the prelude's key helpers, no script appends a suffix to a key itself."""
    from importlib.resources import files

    for entry in files("jobkit.backend.scripts").iterdir():
        if not entry.name.endswith(".lua"):
            continue
        for line in entry.read_text(encoding="utf-8").splitlines():
            code = line.split("--", 1)[0]
            if re.match(r"\s*local function \w+_key\(", code):  # the prelude's own
                continue
            if re.match(r"\s*local function start_mark\(", code):  # a field, not a key
                continue
            inline = re.findall(r"(\w+(?:\[\d\])?) \.\. ':", code)
            # claim.lua compares a job id's queue part: a prefix of an id, not a key
            assert inline in ([], ["queue"]), f"{entry.name}: {line.strip()}"


@pytest.mark.parametrize(
    ("queue", "tags", "lane"),
    [
        ("default", [], "default"),
        ("gpu", ["cuda"], "gpu|cuda"),
        ("gpu", ["b", "a"], "gpu|a,b"),
        ("gpu", ["a", "b", "a"], "gpu|a,b"),
        ("gpu", frozenset({"z", "y"}), "gpu|y,z"),
    ],
)
def test_lane_name(queue: str, tags: list[str], lane: str) -> None:
    assert lane_name(queue, tags) == lane
    assert split_lane(lane) == (queue, frozenset(tags))


def test_worker_lanes_cover_every_subset_of_its_tags() -> None:
    assert worker_lanes("q", []) == ["q"]
    assert worker_lanes("q", ["b", "a"]) == ["q", "q|a", "q|b", "q|a,b"]
    lanes = worker_lanes("q", ["c", "b", "a", "a"])
    assert lanes[0] == "q"
    assert len(lanes) == 8 == len(set(lanes))
    # a job needing any subset of the worker's tags travels in one of its lanes
    assert lane_name("q", ["c", "a"]) in lanes
    assert lane_name("q", ["a", "b", "c"]) in lanes
    assert lane_name("q", ["d"]) not in lanes


def test_split_lane_without_tags() -> None:
    assert split_lane("default") == ("default", frozenset())
