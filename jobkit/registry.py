"""Job classes by stable name, filled at import time. A worker never imports a module
because a payload named it: it only looks names up here."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from jobkit import names
from jobkit.errors import RegistryError, UnknownJobError
from jobkit.imports import no_collection

if TYPE_CHECKING:
    from jobkit.job import BaseJob

_jobs: dict[str, type[BaseJob]] = {}


def default_name(cls: type) -> str:
    """``module.Class``; a class in a script run as ``__main__`` uses the script's import name."""
    module = cls.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None or not spec.name:
            raise RegistryError(
                f"{cls.__qualname__} is defined in a script run directly, so workers could "
                "not find it under the same name: give it a name (`name = ...` on a class, "
                "`name=` on a task) or run "
                "the script with `python -m`"
            )
        module = spec.name.removesuffix(".__main__")
    return f"{module}.{cls.__qualname__}"


def register(name: str, cls: type[BaseJob]) -> None:
    """Add ``cls`` under ``name``; a different class under a taken name is an error, and
    so is a name outside :data:`jobkit.names.JOB_NAME_RULE` (raises ``InvalidName``)."""
    names.job_name(name)
    existing = _jobs.get(name)
    if existing is not None and existing is not cls:
        same_origin = (existing.__module__, existing.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if not same_origin:  # a module reloaded re-registers its own classes; fine
            raise RegistryError(
                f"job name {name!r} is taken by {existing.__module__}.{existing.__qualname__}"
            )
    _jobs[name] = cls


def lookup(name: str) -> type[BaseJob]:
    try:
        return _jobs[name]
    except KeyError:
        raise UnknownJobError(f"no job class registered as {name!r}") from None


def registered() -> dict[str, type[BaseJob]]:
    """A copy of the registry."""
    return dict(_jobs)


def import_apps(modules: list[str]) -> None:
    """Import the user's job modules (``-A``), which registers their classes."""
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules of the current folder import
    with no_collection():  # see jobkit/imports.py
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise RegistryError(f"cannot import job module {module!r}: {exc}") from exc
