"""``benchmarks/cluster.py`` still runs: a tiny run on the one node and the cluster it starts
gives every figure. Speeds are the benchmark's to measure, not asserted here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT + 30)]

POSITIVE = (
    "dispatch_per_s",
    "dispatch_client_cpu_us",
    "bulk_per_s",
    "process_per_s",
    "process_steady_per_s",
    "worker_cpu_all_us",
    "redis_cpu_us",
    "pickup_p50_ms",
    "pickup_p99_ms",
    "pickup3_p50_ms",
    "pickup3_max_ms",
)


def run_benchmark(*args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "benchmarks/cluster.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:  # timed out: SIGTERM lets it kill the servers it started
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    report: dict[str, Any] = json.loads(out)
    return report


def test_cluster_benchmark_reports_every_figure() -> None:
    report = run_benchmark(
        "--jobs", "300", "--runs", "1", "--latency-jobs", "20", "--multi-latency-jobs", "5",
        "--json",
    )  # fmt: skip
    modes = report["modes"]
    assert set(modes) == {"node", "cluster"}
    for mode, result in modes.items():
        figures = result["figures"]
        for key in POSITIVE:
            assert figures[key] > 0, (mode, key, figures)
        assert figures["worker_cpu_us"] >= 0
    cluster, node = modes["cluster"], modes["node"]
    assert len(cluster["shards"]) == 3
    served = sorted(q for s in cluster["shards"] for q in s["queues"])
    assert served == sorted(report["settings"]["queues"])
    for shard in (1, 2, 3):
        assert cluster["figures"][f"shard{shard}_cpu_us"] > 0
    assert cluster["figures"]["replica_cpu_us"] > 0
    assert len(cluster["replicas"]) == 3
    assert len(node["shards"]) == 1 and node["figures"]["shard1_cpu_us"] > 0
    assert "shard2_cpu_us" not in node["figures"] and not node["replicas"]
