"""Unit tests of settings: environment, overrides, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobkit import ConfigurationError
from jobkit.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def no_jobkit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JOBKIT_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s.redis_url is None
    assert s.prefix == "jobkit"
    assert s.data_dir == Path(".jobkit")
    assert s.lease == 30.0
    assert s.heartbeat == 5.0
    assert s.max_crashes == 2


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKIT_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("JOBKIT_LEASE", "12.5")
    monkeypatch.setenv("JOBKIT_HEARTBEAT", "3")
    monkeypatch.setenv("JOBKIT_PREFIX", "app")
    s = load_settings()
    assert s.redis_url == "redis://example:6380/2"
    assert (s.lease, s.heartbeat, s.prefix) == (12.5, 3.0, "app")


def test_overrides_win_and_none_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKIT_LEASE", "12")
    s = load_settings(lease=None, heartbeat=1.0, redis_url="redis://h/0")
    assert s.lease == 12.0
    assert s.heartbeat == 1.0
    assert s.redis_url == "redis://h/0"


def test_unknown_jobkit_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKIT_LEASES", "10")
    with pytest.raises(ConfigurationError, match="JOBKIT_LEASES"):
        load_settings()


def test_other_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKITX_WHATEVER", "1")
    monkeypatch.setenv("MY_JOBKIT_THING", "1")
    assert load_settings().lease == 30.0


@pytest.mark.parametrize(("lease", "heartbeat"), [(5.0, 5.0), (1.0, 2.0)])
def test_heartbeat_must_be_shorter_than_lease(lease: float, heartbeat: float) -> None:
    with pytest.raises(ConfigurationError, match="heartbeat"):
        load_settings(lease=lease, heartbeat=heartbeat)


def test_heartbeat_from_env_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKIT_LEASE", "2")
    with pytest.raises(ConfigurationError):
        load_settings()  # default heartbeat 5 s >= lease 2 s


@pytest.mark.parametrize(
    "overrides",
    [{"lease": 0}, {"lease": -1}, {"prefix": "has space"}, {"prefix": ""}, {"max_crashes": 0}],
)
def test_invalid_values_are_configuration_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        load_settings(**overrides)


def test_invalid_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKIT_LEASE", "soon")
    with pytest.raises(ConfigurationError, match="lease"):
        load_settings()


def test_settings_are_frozen() -> None:
    s = load_settings()
    assert isinstance(s, Settings)
    with pytest.raises(ValueError):
        s.lease = 1.0  # type: ignore[misc]


def test_durable_replicas_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBKIT_REDIS_URL", "redis+sentinel://h:26379,h:26380/jobkit")
    monkeypatch.setenv("JOBKIT_DURABLE_REPLICAS", "2")
    monkeypatch.setenv("JOBKIT_DURABLE_TIMEOUT", "250")
    s = load_settings()
    assert (s.durable_replicas, s.durable_timeout) == (2, 250)
    assert load_settings(durable_replicas=0).durable_replicas == 0
    assert Settings().durable_replicas == 0  # off unless asked


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"durable_replicas": -1}, "JOBKIT_DURABLE_REPLICAS"),
        ({"durable_replicas": "one"}, "JOBKIT_DURABLE_REPLICAS"),
        ({"durable_replicas": 1, "durable_timeout": 0}, "JOBKIT_DURABLE_TIMEOUT"),
        ({"durable_replicas": 1, "durable_timeout": 4500}, "1 s shorter than JOBKIT_SOCKET"),
        ({"durable_replicas": 1, "redis_url": None}, "the embedded one has none"),
        (
            {"durable_replicas": 1, "redis_url": "redis+cluster://h:7000,h:7001"},
            "not supported on Redis Cluster",
        ),
    ],
)
def test_durable_dispatch_settings_are_checked(overrides: dict[str, object], message: str) -> None:
    given = {"redis_url": "redis://h:6379/0", **overrides}
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**given)


def test_durable_timeout_fits_a_longer_socket_timeout() -> None:
    s = load_settings(
        redis_url="redis://h/0", durable_replicas=1, durable_timeout=4500, socket_timeout=6
    )
    assert s.durable_timeout == 4500
