"""The one query and command layer under the CLI and the HTTP API, so neither
re-implements the other, and neither reads Redis's keys itself:

- :mod:`~jobkit.ops.jobs`: one job (find, history, retry, cancel, dispatch) and pages of
  jobs, live or archived; :mod:`~jobkit.ops.listing` and :mod:`~jobkit.ops.cursor` the
  listing itself
- :mod:`~jobkit.ops.overview`, :mod:`~jobkit.ops.queues`: queues at a glance and the
  fleet's figures, pause / resume / purge

Each view a CLI command prints with ``--json`` is built here once, and the matching HTTP
route returns the same object: one shape each, listed in docs/json.md.
- :mod:`~jobkit.ops.workers`: live workers and what each has done
- :mod:`~jobkit.ops.dead`: dead letters
- :mod:`~jobkit.ops.schedules`: cron schedules, pause / resume / run now
- :mod:`~jobkit.ops.bulk`: retry, cancel or purge every job matching a filter
- :mod:`~jobkit.ops.audit`: the log of every write through the API
- :mod:`~jobkit.ops.metrics`: the fleet for Prometheus
"""

from jobkit.backend.store import Store
from jobkit.backend.transport import UNAVAILABLE, RedisError

__all__ = ["UNAVAILABLE", "RedisError", "Store"]
