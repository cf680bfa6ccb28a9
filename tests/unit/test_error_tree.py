"""The one exception tree: every error jobkit defines is a JobkitError, is drawn in
errors.py's docstring, and is exported from ``jobkit`` (a user catches what they can
import)."""

from __future__ import annotations

import inspect

import redis

import jobkit
from jobkit import errors
from jobkit.backend.socket_link import ReplyLost


def test_every_error_is_in_the_tree_drawn_and_exported() -> None:
    defined = {
        name for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == errors.__name__
    }  # fmt: skip
    assert "ReplyLost" in defined
    for name in defined:
        assert issubclass(getattr(errors, name), errors.JobkitError), name
        drawn = f"── {name} " in (errors.__doc__ or "") or name == "JobkitError"
        assert drawn, f"{name} is not drawn in errors.py"
        assert name in jobkit.__all__ and getattr(jobkit, name) is getattr(errors, name), name


def test_a_lost_reply_is_both_a_jobkit_error_and_a_connection_error() -> None:
    lost = ReplyLost("the command may or may not have run")
    assert isinstance(lost, jobkit.ReplyLost) and isinstance(lost, jobkit.JobkitError)
    assert isinstance(lost, redis.ConnectionError)
