"""The table ``benchmarks/cluster.py`` prints: one node and the cluster side by side."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

SHARDS = 3

# (label, key, format); a key missing from a mode's figures prints "-"
ROWS: tuple[tuple[str, str, str], ...] = (
    ("dispatch()/s, the queues in turn", "dispatch_per_s", ",.0f"),
    ("  client CPU µs per dispatch()", "dispatch_client_cpu_us", ",.0f"),
    ("dispatch_many()/s, 1,000 jobs per call", "bulk_per_s", ",.0f"),
    ("processing jobs/s, spawn to last job", "process_per_s", ",.0f"),
    ("processing jobs/s, first to last job", "process_steady_per_s", ",.0f"),
    ("  worker start, spawn to first job (s)", "startup_s", ".2f"),
    ("  worker CPU µs/job, first to last", "worker_cpu_us", ",.0f"),
    ("  worker CPU µs/job, spawn to last", "worker_cpu_all_us", ",.0f"),
    *(
        (f"  Redis CPU µs per job it serves, master {i}", f"shard{i}_cpu_us", ",.1f")
        for i in range(1, SHARDS + 1)
    ),
    ("  Redis CPU µs/job, all masters", "redis_cpu_us", ",.1f"),
    ("  Redis CPU µs/job, replicas", "replica_cpu_us", ",.1f"),
    ("  other processes' CPU, cores", "other_cores", ".2f"),
    ("pickup p50 ms, idle worker on one queue", "pickup_p50_ms", ".2f"),
    ("pickup p99 ms, idle worker on one queue", "pickup_p99_ms", ".2f"),
    ("pickup p50 ms, worker on 3 queues, in turn", "pickup3_p50_ms", ".2f"),
    ("pickup max ms, worker on 3 queues, in turn", "pickup3_max_ms", ".2f"),
    ("idle servers' CPU, ms per s", "idle_redis_ms_per_s", ".1f"),
)


def _cell(figures: dict[str, Any], key: str, fmt: str) -> str:
    value = figures.get(key)
    if value is None:
        return "-"
    text = format(value, fmt)
    shards = [v for k, v in figures.items() if k.startswith("shard")]
    if key.startswith("shard") and len(shards) > 1:  # its share with the queues loaded evenly
        text += f" ({value / sum(shards):.0%})"
    return text


def _shard_label(label: str, key: str, modes: dict[str, Any]) -> str:
    """A master's row names the queue(s) it serves on the cluster."""
    if not key.startswith("shard") or "cluster" not in modes:
        return label
    index = int(key.removeprefix("shard").split("_")[0]) - 1
    shards = modes["cluster"]["shards"]
    if index >= len(shards):
        return label
    extra = ", global keys" if shards[index].get("global_keys") else ""
    return f"{label} ({','.join(shards[index]['queues'])}{extra})"


def render(report: dict[str, Any], rows: tuple[tuple[str, str, str], ...] = ROWS) -> None:
    """Print the header lines and the table to stdout."""
    machine, settings, modes = report["machine"], report["settings"], report["modes"]
    console = Console(width=110, highlight=False)
    console.print("jobkit on one Redis node against a Redis Cluster (3 masters + 3 replicas)")
    console.print(
        f"  {settings['jobs']:,} jobs per phase over queues {', '.join(settings['queues'])}, "
        f"median of {settings['runs']} interleaved run(s) per mode; pickup over "
        f"{settings['latency_jobs']} jobs (one queue) and {settings['multi_latency_jobs']} "
        "(three queues)"
    )
    console.print(
        f"  {machine['cores']} CPUs, load avg {machine['load_avg']}, Python "
        f"{machine['python']}, redis-server {machine['redis_version']} (127.0.0.1, "
        "no persistence)"
    )
    console.print(f"  processing: {settings['worker']}; job: bench.stamp (a no-op)")
    titles = {"node": "one node", "cluster": "cluster"}
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    table.add_column("")
    for mode in modes:
        table.add_column(titles.get(mode, mode), justify="right")
    both = "node" in modes and "cluster" in modes
    if both:
        table.add_column("cluster / node", justify="right")
    for label, key, fmt in rows:
        figures = [modes[mode]["figures"] for mode in modes]
        cells = [_cell(f, key, fmt) for f in figures]
        if both:
            node, cluster = modes["node"]["figures"].get(key), modes["cluster"]["figures"].get(key)
            cells.append(f"{cluster / node:.2f}" if node and cluster is not None else "")
        table.add_row(_shard_label(label, key, modes), *cells)
    console.print(table)
    for mode, result in modes.items():
        where = "; ".join(
            f"master {i} {s['master']}: {','.join(s['queues'])}"
            for i, s in enumerate(result["shards"], 1)
        )
        replicas = f"; replicas {', '.join(result['replicas'])}" if result["replicas"] else ""
        console.print(f"  {titles.get(mode, mode)}: {where}{replicas}")
