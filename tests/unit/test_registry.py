"""Unit tests of the job registry and class-level checks."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from jobkit import BaseJob, RegistryError, Retry, UnknownJobError, registry


def test_default_name_is_module_and_class() -> None:
    class Named(BaseJob):
        def perform(self) -> None: ...

    assert Named.name == f"{__name__}.test_default_name_is_module_and_class.<locals>.Named"
    assert registry.lookup(Named.name) is Named


def test_duplicate_name_in_another_class_is_an_error() -> None:
    class First(BaseJob):
        name = "tests.registry.duplicate"

    with pytest.raises(RegistryError, match=r"tests\.registry\.duplicate"):

        class Second(BaseJob):
            name = "tests.registry.duplicate"

    assert registry.lookup("tests.registry.duplicate") is First


def test_same_class_defined_again_replaces_itself() -> None:
    """Re-importing a module (same module and qualname) is not a conflict."""

    def make() -> type[BaseJob]:
        class Reloaded(BaseJob):
            name = "tests.registry.reloaded"

        return Reloaded

    first, second = make(), make()
    assert first is not second
    assert registry.lookup("tests.registry.reloaded") is second


def test_lookup_of_an_unknown_name() -> None:
    with pytest.raises(UnknownJobError, match=r"tests\.registry\.nothing"):
        registry.lookup("tests.registry.nothing")
    assert issubclass(UnknownJobError, RegistryError)


def test_registered_is_a_copy() -> None:
    class Copied(BaseJob):
        name = "tests.registry.copied"

    snapshot = registry.registered()
    assert snapshot["tests.registry.copied"] is Copied
    snapshot.clear()
    assert registry.lookup("tests.registry.copied") is Copied


def test_class_options_are_checked_at_class_creation() -> None:
    with pytest.raises(TypeError, match="Retry"):

        class BadRetry(BaseJob):
            name = "tests.registry.bad-retry"
            retry = 3  # type: ignore[assignment]

    with pytest.raises(ValueError, match="priority"):

        class BadPriority(BaseJob):
            name = "tests.registry.bad-priority"
            priority = 10_000

    with pytest.raises(UnknownJobError):  # neither was registered
        registry.lookup("tests.registry.bad-retry")


def test_tags_become_a_frozenset_and_params_default() -> None:
    class Tagged(BaseJob):
        name = "tests.registry.tagged"
        tags = {"gpu", "cuda"}  # noqa: RUF012 (a set is accepted, frozen on creation)
        retry = Retry(max_attempts=1)

    class WithParams(BaseJob):
        name = "tests.registry.with-params"

        class Params(BaseModel):
            x: int

    assert Tagged.tags == frozenset({"gpu", "cuda"})
    assert Tagged.Params.model_fields == {}
    assert "x" in WithParams.Params.model_fields
