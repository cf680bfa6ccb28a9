"""The newer side of payload versions, for tests/integration/test_payload_versions.py: a
worker imports this module (``-A tests.support.version_jobs``); the test process never
does. It holds the older classes under the same names, and dispatches with them, as an
older release of an application would."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobkit import BaseJob

QUEUE = "versions"


class Size(BaseModel):
    width: int
    height: int


class Resize(BaseJob[Size]):
    """Version 1 took one ``size``; version 2 takes ``width`` and ``height``."""

    name = "versions.resize"
    queue = QUEUE
    version = 2

    @classmethod
    def upgrade(cls, params: dict[str, Any], from_version: int) -> dict[str, Any]:
        size = params.pop("size")
        return {**params, "width": size, "height": size}

    def perform(self) -> dict[str, int]:
        return {"width": self.params.width, "height": self.params.height}


class Crop(BaseJob[Size]):
    """Version 3, whose upgrade() reads a key no version-1 payload has."""

    name = "versions.crop"
    queue = QUEUE
    version = 3

    @classmethod
    def upgrade(cls, params: dict[str, Any], from_version: int) -> dict[str, Any]:
        return {"width": params["w"], "height": params["h"]}

    def perform(self) -> None:
        raise AssertionError("a payload that cannot be upgraded must not run")


class Strict(BaseJob[Size]):
    """Version 2 with the default upgrade() (no change): a version-1 payload that lacks
    the new fields does not validate."""

    name = "versions.strict"
    queue = QUEUE
    version = 2

    def perform(self) -> None:
        raise AssertionError("params that do not validate must not run")


class Rotate(BaseJob):
    """Still version 1 here: the test dispatches a version-2 payload, as a newer
    release would while this worker still runs."""

    name = "versions.rotate"
    queue = QUEUE

    def perform(self) -> None:
        raise AssertionError("a newer payload must not run")


class Same(BaseJob[Size]):
    """Version 2 on both sides: upgrade() is never called."""

    name = "versions.same"
    queue = QUEUE
    version = 2

    @classmethod
    def upgrade(cls, params: dict[str, Any], from_version: int) -> dict[str, Any]:
        raise AssertionError("a payload of the class's own version is not upgraded")

    def perform(self) -> int:
        return self.params.width * self.params.height
