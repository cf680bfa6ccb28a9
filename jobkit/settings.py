"""Settings: ``JOBKIT_*`` environment variables, overridable in code and on the CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobkit.errors import ConfigurationError

ENV_PREFIX = "JOBKIT_"


class Settings(BaseModel):
    """Every knob jobkit has, each also read from ``JOBKIT_<NAME>`` (see
    :func:`load_settings`). A misspelled ``JOBKIT_`` variable is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = Field(
        default=None, description="redis://, rediss://, unix://; unset: embedded Redis"
    )
    prefix: str = Field(default="jobkit", pattern=r"^[A-Za-z0-9_.:-]+$")
    data_dir: Path = Field(default=Path(".jobkit"), description="embedded Redis lives here")
    lease: float = Field(default=30.0, gt=0, description="seconds a claim is valid unrenewed")
    heartbeat: float = Field(default=5.0, gt=0, description="seconds between lease renewals")
    result_ttl: int = Field(default=86_400, ge=1, description="seconds a result is kept")
    max_crashes: int = Field(default=2, ge=1, description="crashes before a job is dead")
    max_payload: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,  # a Redis string holds no more
        description="bytes: the largest params or result JSON, refused above",
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.heartbeat >= self.lease:
            raise ValueError(f"heartbeat ({self.heartbeat}s) must be shorter than lease")
        return self


def _from_environment() -> dict[str, str]:
    """The ``JOBKIT_*`` variables, by field name; an unknown one is an error."""
    known = {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return {name: os.environ[var] for var, name in known.items() if var in os.environ}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, apply ``overrides`` (None values are ignored), validate.

    Values from the environment are strings; pydantic converts them (``JOBKIT_LEASE=2.5``)
    and names the variable's field in its message when it cannot."""
    given = _from_environment()
    given.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(given)
    except ValidationError as exc:
        raise ConfigurationError(str(exc)) from exc
