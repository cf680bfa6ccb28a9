"""Unit tests of the key layout and lanes."""

from __future__ import annotations

import pytest

from jobkit.backend.keys import Keys, lane_name, split_lane, worker_lanes


def test_keys_share_one_hash_tag() -> None:
    k = Keys("app")
    assert k.base == "{app}"
    assert k.running == "{app}:running"
    assert k.scheduled == "{app}:scheduled"
    assert k.dead == "{app}:dead"
    assert k.seq == "{app}:seq"
    assert k.lanes == "{app}:lanes"
    assert k.workers == "{app}:workers"
    assert k.stats == "{app}:stats"
    assert k.job("abc") == "{app}:job:abc"
    assert k.queue("default") == "{app}:queue:default"
    assert k.queue("gpu|a,b") == "{app}:queue:gpu|a,b"
    assert k.wake("default") == "{app}:wake:default"
    assert k.done("abc") == "{app}:done:abc"
    assert k.worker("host.1") == "{app}:worker:host.1"


def test_default_prefix_and_job_id_of() -> None:
    k = Keys()
    assert k.base == "{jobkit}"
    assert k.job_id_of(k.job("x:y")) == "x:y"


def test_keys_match_the_lua_prelude() -> None:
    """The scripts build keys with the same suffixes (jobkit/backend/scripts/_lib.lua)."""
    from jobkit.backend import scripts

    lib = scripts.source("enqueue")
    for suffix in ("':job:'", "':queue:'", "':wake:'", "':done:'", "':waiter:'", "':seq'"):
        assert suffix in lib
    assert "':scheduled'" in lib and "':lanes'" in lib


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
