"""The fleet as Prometheus metrics (``GET /metrics`` of the HTTP router): what a scrape
every few seconds may read.

Per queue: the jobs in each state now, whether it is paused, how long the job next in line
has waited, the live workers serving it, the attempts finished since the queue began (by
outcome: counters, for ``rate()``), and the history archive's lag (events not archived
yet, and whether events were trimmed before an archiver read them). Fleet-wide: the live
workers. The rates ``jobkit info`` shows are left to Prometheus (``rate()`` of the
counters): reading the event streams on every scrape would cost Redis far more.

Every value comes from the store's fan-out reads, so a cluster is asked per master as one
node is. A key that cannot be read leaves its sample out (never a made-up 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobkit.backend.archive_feed import ArchiveFeed
from jobkit.backend.worker_registry import WorkerInfo, WorkerRegistry
from jobkit.ops.overview import queue_heads
from jobkit.ops.queues import Queues

if TYPE_CHECKING:
    from jobkit.backend.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("ready", "running", "scheduled", "dead")


class FleetCollector(Collector):
    """Reads the fleet from ``store`` on every collection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        store = self.store
        lanes = store.reads.known_lanes()
        sizes = store.reads.queue_sizes(lanes)
        counts = store.reads.counts()
        states = Queues(store).states(sizes, counts)
        now_ms = store.reads.now_ms()
        heads = queue_heads(store, lanes)
        lags = ArchiveFeed(store, "metrics").lag([s.queue for s in states])
        found = WorkerRegistry(store).live()
        # the registry's key of another type: no worker samples (a worker's own: skipped)
        live = None if found.problems and not found.items else found.items

        jobs = GaugeMetricFamily("jobkit_queue_jobs", "Jobs in the queue by state now",
                                 labels=["queue", "state"])  # fmt: skip
        paused = GaugeMetricFamily("jobkit_queue_paused", "1 while the queue is paused",
                                   labels=["queue"])  # fmt: skip
        latency = GaugeMetricFamily(
            "jobkit_queue_latency_seconds",
            "How long the job next in line has waited since it was due (0: none waits)",
            labels=["queue"],
        )
        finished = CounterMetricFamily(
            "jobkit_queue_attempts",
            "Attempts finished since the queue began, by outcome",
            labels=["queue", "outcome"],
        )
        for state in states:
            q = state.queue
            for name in STATES:
                value = getattr(state, name)
                if value is not None:
                    jobs.add_metric([q, name], value)
            paused.add_metric([q], 1 if state.paused else 0)
            head = heads.get(q)
            latency.add_metric([q], 0.0 if head is None else max(0.0, (now_ms - head) / 1000))
            own = counts.by_queue.get(q)
            for outcome, total in sorted(own.totals.items() if own else []):
                finished.add_metric([q, outcome], total)
        yield from (jobs, paused, latency, finished)
        yield from _workers(live, [s.queue for s in states])
        lag = GaugeMetricFamily(
            "jobkit_archive_lag_events",
            "Events not archived yet (queues an archiver reads)",
            labels=["queue"],
        )
        lost = GaugeMetricFamily(
            "jobkit_archive_lost",
            "1 when events were trimmed from the stream before an archiver read them",
            labels=["queue"],
        )
        for q, behind in sorted(lags.items()):
            lag.add_metric([q], behind.behind)
            lost.add_metric([q], 1 if behind.lost else 0)
        yield from (lag, lost)


def _workers(live: list[WorkerInfo] | None, queues: list[str]) -> Iterator[Metric]:
    if live is None:
        return
    fleet = GaugeMetricFamily("jobkit_workers", "Live workers (supervisors)")
    fleet.add_metric([], len(live))
    serving = GaugeMetricFamily("jobkit_queue_workers", "Live workers serving the queue",
                                labels=["queue"])  # fmt: skip
    per_queue = dict.fromkeys(queues, 0)
    for worker in live:
        for queue in {q.split(":", 1)[0] for q in worker.queues}:  # "q:weight" too
            per_queue[queue] = per_queue.get(queue, 0) + 1
    for q, n in sorted(per_queue.items()):
        serving.add_metric([q], n)
    yield from (fleet, serving)


def render(store: Store) -> bytes:
    """The metrics of ``store``'s fleet in Prometheus's text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(store))
    return generate_latest(registry)
