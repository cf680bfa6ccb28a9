"""The Flask brief's job, in its own words: ``f = Queue(redis=...)`` and ``@f.task()`` on
a function (``jobs_example.flask_app`` dispatches it with ``retrain_model(**body)``).

Retraining a model is the brief's example of work to keep off the request's path. It is
tagged ``gpu``, as the brief's GPU machine: only a worker started with ``--tags gpu``
takes it (``jobkit worker -A jobs_example -q training --tags gpu``), so the API can run
anywhere else. ``f`` takes its Redis from ``JOBKIT_REDIS_URL`` (the embedded Redis when
unset); a deployment would write ``Queue(redis="redis://...")``. This module imports no
web framework.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from pydantic import Field

import jobkit

QUEUE = "training"
TAGS = frozenset({"gpu"})

f = jobkit.Queue()


@f.task(queue=QUEUE, tags=TAGS, timeout=600.0, retry=jobkit.Retry(max_attempts=3, base=2.0))
def retrain_model(
    model: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "default",
    epochs: Annotated[int, Field(ge=1, le=100)] = 3,
    seconds_per_epoch: Annotated[float, Field(ge=0, le=60)] = 0.2,
) -> dict[str, object]:
    """Stands in for retraining ``model``: CPU work per epoch, then its metrics."""
    loss = 1.0
    for _ in range(epochs):
        deadline = time.monotonic() + seconds_per_epoch
        digest = b"seed"
        while time.monotonic() < deadline:
            digest = hashlib.sha256(digest).digest()
        loss *= 0.6
    return {"model": model, "epochs": epochs, "loss": round(loss, 4)}
