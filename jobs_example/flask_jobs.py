"""The Flask brief's job (``jobs_example.flask_app`` dispatches it): retraining a model,
the brief's example of work to keep off the request's path.

It is tagged ``gpu``, as the brief's GPU machine: only a worker started with
``--tags gpu`` takes it (``jobkit worker -A jobs_example -q training --tags gpu``), so the
API can run anywhere else. This module imports no web framework.
"""

from __future__ import annotations

import hashlib
import time

from pydantic import BaseModel, ConfigDict, Field

from jobkit import BaseJob, Retry

QUEUE = "training"
TAGS = frozenset({"gpu"})


class RetrainModel(BaseJob):
    """Stands in for retraining ``model``: CPU work per epoch, then its metrics."""

    queue = QUEUE
    tags = TAGS
    timeout = 600.0
    retry = Retry(max_attempts=3, base=2.0)

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        model: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
        epochs: int = Field(default=3, ge=1, le=100)
        seconds_per_epoch: float = Field(default=0.2, ge=0, le=60)

    params: Params  # BaseJob types it BaseModel: narrowed for the reads below

    def perform(self) -> dict[str, object]:
        loss = 1.0
        for _ in range(self.params.epochs):
            deadline = time.monotonic() + self.params.seconds_per_epoch
            digest = b"seed"
            while time.monotonic() < deadline:
                digest = hashlib.sha256(digest).digest()
            loss *= 0.6
        return {"model": self.params.model, "epochs": self.params.epochs, "loss": round(loss, 4)}
