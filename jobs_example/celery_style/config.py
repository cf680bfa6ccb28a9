"""The brief's ``config.py``: its four settings, read from the environment.

``BROKER_URL`` is the Redis jobkit stores jobs in; jobkit keeps results and statuses in
the same Redis, so ``RESULT_BACKEND`` names it too unless set (the brief's "Redis,
PostgreSQL": for a history that outlives Redis, run ``jobkit archiver`` with
``JOBKIT_HISTORY_URL``). Unset, both fall back to ``JOBKIT_REDIS_URL``, and to the
embedded Redis when that is unset too.
"""

from __future__ import annotations

import os

BROKER_URL = os.environ.get("BROKER_URL") or os.environ.get("JOBKIT_REDIS_URL") or None
RESULT_BACKEND = os.environ.get("RESULT_BACKEND") or BROKER_URL
MAX_RETRIES = int(os.environ.get("MAX_RETRIES", "3"))  # retries after the first attempt
TASK_TIMEOUT = float(os.environ.get("TASK_TIMEOUT", "300"))  # seconds per attempt
