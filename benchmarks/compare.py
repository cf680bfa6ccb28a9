"""Compare jobkit with other Python job libraries on the same Redis.

Installs nothing: the peers come from the ``bench`` extra (``pip install -e '.[bench]'``,
best in a venv of its own). Starts one redis-server (127.0.0.1, a free port, no
persistence) and measures jobkit and each peer on it, one library after another, with
FLUSHALL between libraries (and between phases). Every worker runs as a subprocess in a
process group of its own, killed when its phase ends (also on Ctrl-C, SIGTERM or an error).

Run from the repository root::

    python benchmarks/compare.py                        # 10,000 jobs, median of 3 runs
    python benchmarks/compare.py --runs 1 --jobs 3000 --only jobkit,rq --json

Every job does one Redis INCR on a counter key. Per library:

- dispatch/s: N jobs enqueued one call each; bulk/s: N jobs through the library's bulk
  enqueue, 1,000 per call, where it has one (jobkit ``dispatch_many``, rq, ArdiQ and streaq
  ``enqueue_many``);
- process/s with 1 and 2 worker processes: N jobs enqueued first, then the worker spawned;
  timed from the spawn until the job that brings the counter to N has run;
- worker CPU µs/job: user+sys CPU time of the worker process tree(s) over that span / N;
- peak RSS: the sum of each worker process's high-water RSS (1-process run), and the largest;
- pickup p50/p99: with an idle 1-process worker, jobs sent one after another, each pushing
  the ``time.time()`` it started: dispatch to job start.

arq and saq pin an older redis-py than jobkit needs, and ArdiQ needs Python >= 3.12, so they
cannot share its environment: ``--peer-venv VENV`` runs arq and saq from another venv
(``VENV/bin/python`` with arq, saq, psutil and redis installed), ``--ardiq-venv VENV`` runs
ArdiQ from one with ardiq, psutil and redis; each on the same redis-server, their figures
merged into the table. streaq (on coredis, not redis-py) comes with the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/compare.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.peers import PEERS, VENV_PEERS, Peer, load  # noqa: E402
from benchmarks.peers.common import COUNTER_KEY, DONE_KEY, STAMP_KEY, URL_ENV  # noqa: E402
from benchmarks.procs import (  # noqa: E402
    log,
    peak_rss_bytes,
    percentile,
    prepare,
    timed,
)

BATCH = 1000  # jobs per bulk call
WARMUP = 100  # enqueue calls before the timed ones
LATENCY_JOBS = 300
LATENCY_WARMUP = 20
IDLE_GAP = 0.005  # pause before each latency job, so the worker is back waiting
START_TIMEOUT = 60.0
JOB_TIMEOUT = 10.0
LOG_TAIL = 30

# the bench extra's libraries, in the order of the table's columns
LOCAL_PEERS = (*PEERS, "streaq")


@dataclass(frozen=True)
class VenvGroup:
    """Libraries that cannot share jobkit's environment, run from a venv named by ``option``."""

    option: str
    names: tuple[str, ...]
    why: str

    @property
    def dest(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")


VENV_GROUPS = (
    VenvGroup("--peer-venv", VENV_PEERS, "it pins an older redis-py (arq: redis<6, saq: redis<8)"),
    VenvGroup("--ardiq-venv", ("ardiq",), "it needs Python >= 3.12"),
)
VENV_GROUP_OF = {name: group for group in VENV_GROUPS for name in group.names}


class BenchError(RuntimeError):
    """One library's measurement failed; the others go on."""


# -- processes ------------------------------------------------------------------------------


def kill_group(proc: subprocess.Popen[bytes], grace: float = 0.0) -> None:
    """Signal the process group ``proc`` leads: SIGTERM first if ``grace``, then SIGKILL;
    return once every process of its tree has exited. A process still tearing down its
    memory keeps its sockets open, and Redis would hand a job of the next phase to its
    pending blocking pop: a library without acknowledgements then loses that job."""
    members = tree(proc.pid)
    if grace and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10.0
    for member in members:
        while time.monotonic() < deadline:
            try:
                if member.status() == psutil.STATUS_ZOMBIE:  # exited: its files are closed
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.005)


def settle(client: redis.Redis, timeout: float = 5.0) -> bool:
    """Wait until Redis has let go of killed workers' connections; whether it has. One
    still registered as blocked (an idle worker's blocking pop, maybe with a claim
    pipelined behind it) would be served the next phase's first jobs, and a library with
    leases would make them wait out a dead worker's lease."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any("b" in c.get("flags", "") for c in client.client_list()):
            return True
        time.sleep(0.01)
    return False


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """User+sys CPU of ``pid`` and its live descendants, plus the children it reaped."""
    total = 0.0
    for i, proc in enumerate(tree(pid)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
            if i == 0:
                total += times.children_user + times.children_system
    return total


@dataclass
class Workers:
    """The worker processes of one phase, each the leader of its own process group."""

    log_dir: Path
    tag: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, commands: list[list[str]], env: dict[str, str]) -> None:
        for args in commands:
            path = self.log_dir / f"{self.tag}-{len(self.logs) + 1}.log"
            self.logs.append(path)
            with path.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        args,
                        cwd=ROOT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def check(self) -> None:
        for proc, path in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                raise BenchError(f"worker exited with code {proc.returncode}\n{tail(path)}")

    def log_tails(self) -> str:
        return "\n".join(tail(path) for path in self.logs)

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(proc.pid) for proc in self.procs)

    def peak_rss_mb(self) -> tuple[float, float]:
        """(sum, largest) of the worker processes' peak RSS, in MiB."""
        sizes = [peak_rss_bytes(p.pid) for proc in self.procs for p in tree(proc.pid)]
        return sum(sizes) / 2**20, max(sizes, default=0) / 2**20

    def kill(self) -> None:
        for proc in self.procs:
            kill_group(proc)


def tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
    except OSError:
        return f"--- {path.name}: no log"
    return f"--- {path.name}\n" + "\n".join(lines)


# -- phases ---------------------------------------------------------------------------------


@dataclass
class Bench:
    client: redis.Redis
    url: str
    log_dir: Path
    jobs: int
    latency_jobs: int

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
        env[URL_ENV] = env["JOBKIT_REDIS_URL"] = self.url
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def flush(self, peer: Peer) -> None:
        if not settle(self.client):
            log("  note: Redis still holds blocked connections of the last phase's workers")
        self.client.flushall()
        peer.after_flush()

    def wait_value(self, key: str, workers: Workers, timeout: float) -> float:
        """Block until a value is pushed on ``key``; fail fast if a worker died."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            got = self.client.blpop([key], timeout=min(1.0, max(remaining, 0.01)))
            if got is not None:
                return float(got[1])
            workers.check()
        raise BenchError(f"nothing on {key!r} within {timeout:.0f}s\n{workers.log_tails()}")


def bench_enqueue(b: Bench, peer: Peer) -> dict[str, float]:
    n = b.jobs
    b.flush(peer)
    peer.enqueue(WARMUP, 0)  # total 0: no job ever marks itself the last
    if peer.has_bulk:
        peer.enqueue_bulk(min(BATCH, n), 0, BATCH)
    b.flush(peer)
    out = {"dispatch_per_s": n / timed(lambda: peer.enqueue(n, n))}
    if peer.has_bulk:
        b.flush(peer)
        out["bulk_per_s"] = n / timed(lambda: peer.enqueue_bulk(n, n, BATCH))
    return out


def bench_processing(b: Bench, peer: Peer, processes: int) -> dict[str, float]:
    n = b.jobs
    b.flush(peer)
    if peer.has_bulk:
        peer.enqueue_bulk(n, n, BATCH)
    else:
        peer.enqueue(n, n)
    workers = Workers(b.log_dir, f"{peer.name}-p{processes}")
    try:
        spawned = time.perf_counter()
        workers.start(peer.worker_commands(processes), b.env)
        b.wait_value(DONE_KEY, workers, START_TIMEOUT + n / 50)
        elapsed = time.perf_counter() - spawned
        cpu = workers.cpu_seconds()
        rss_sum, rss_max = workers.peak_rss_mb()
    finally:
        workers.kill()
    # above N: some job ran more than once (the counter reached N one job early)
    duplicates = int(b.client.get(COUNTER_KEY) or 0) - n
    if duplicates:
        log(f"  {peer.name}: {duplicates} job(s) ran more than once")
    k = f"p{processes}"
    return {
        f"{k}_per_s": n / elapsed,
        f"{k}_cpu_us": cpu / n * 1e6,
        f"{k}_rss_mb": rss_sum,
        f"{k}_rss_max_mb": rss_max,
        f"{k}_duplicates": duplicates,
    }


def bench_latency(b: Bench, peer: Peer) -> dict[str, float]:
    b.flush(peer)
    workers = Workers(b.log_dir, f"{peer.name}-latency")
    pickup: list[float] = []
    try:
        workers.start(peer.worker_commands(1), b.env)
        peer.stamp()  # waits for the worker to start
        b.wait_value(STAMP_KEY, workers, START_TIMEOUT)
        for i in range(LATENCY_WARMUP + b.latency_jobs):
            time.sleep(IDLE_GAP)
            sent = time.time()
            peer.stamp()
            started = b.wait_value(STAMP_KEY, workers, JOB_TIMEOUT)
            if i >= LATENCY_WARMUP:
                pickup.append((started - sent) * 1000)
    finally:
        workers.kill()
    pickup.sort()
    return {
        "pickup_p50_ms": percentile(pickup, 50),
        "pickup_p99_ms": percentile(pickup, 99),
        "pickup_max_ms": pickup[-1],
    }


def measure(b: Bench, peer: Peer) -> dict[str, float]:
    figures: dict[str, float] = {}
    log(f"  {peer.name}: enqueue x{b.jobs:,} ...")
    figures.update(bench_enqueue(b, peer))
    for processes in (1, 2):
        log(f"  {peer.name}: processing {b.jobs:,} jobs, {processes} worker process(es) ...")
        figures.update(bench_processing(b, peer, processes))
    log(f"  {peer.name}: idle pickup latency, {b.latency_jobs} jobs ...")
    figures.update(bench_latency(b, peer))
    b.client.flushall()
    return figures


# -- libraries run from another venv --------------------------------------------------------


def run_peer_venv(venv: Path, names: list[str], url: str, args: argparse.Namespace) -> Any:
    """This script in ``venv``'s interpreter, on the same server, for ``names``; its JSON."""
    python = venv / "bin" / "python"
    if not python.is_file():
        raise BenchError(f"no interpreter at {python}")
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "--redis-url",
        url,
        "--json",
        "--only",
        ",".join(names),
        "--jobs",
        str(args.jobs),
        "--runs",
        str(args.runs),
        "--latency-jobs",
        str(args.latency_jobs),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate()
    finally:
        kill_group(proc, grace=10.0)  # SIGTERM first: it kills its own workers
    if proc.returncode != 0:
        raise BenchError(f"{python} {Path(__file__).name} exited with code {proc.returncode}")
    return json.loads(out)


# -- output ---------------------------------------------------------------------------------

# (label, key, format, higher is better)
ROWS = (
    ("dispatch/s, one call per job", "dispatch_per_s", ",.0f", True),
    (f"bulk/s, {BATCH:,} jobs per call", "bulk_per_s", ",.0f", True),
    ("process/s, 1 worker process", "p1_per_s", ",.0f", True),
    ("process/s, 2 worker processes", "p2_per_s", ",.0f", True),
    ("pickup p50 ms (idle, 1 process)", "pickup_p50_ms", ".2f", False),
    ("pickup p99 ms (idle, 1 process)", "pickup_p99_ms", ".2f", False),
    ("worker CPU µs/job, 1 process", "p1_cpu_us", ",.0f", False),
    ("worker CPU µs/job, 2 processes", "p2_cpu_us", ",.0f", False),
    ("peak RSS MB, all worker processes", "p1_rss_mb", ",.1f", False),
    ("peak RSS MB, largest one", "p1_rss_max_mb", ",.1f", False),
)
RATIO_KEYS = (
    "dispatch_per_s",
    "bulk_per_s",
    "p1_per_s",
    "p2_per_s",
    "pickup_p50_ms",
    "pickup_p99_ms",
    "p1_cpu_us",
    "p2_cpu_us",
    "p1_rss_mb",
)


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per peer: how many times better jobkit is (> 1: faster, or lower latency/CPU/RSS)."""
    if "jobkit" not in results:
        return {}
    mine = results["jobkit"]["figures"]
    higher = {key: better for _, key, _, better in ROWS}
    out: dict[str, dict[str, float]] = {}
    for name, result in results.items():
        if name == "jobkit":
            continue
        theirs = result["figures"]
        out[name] = {
            key: (mine[key] / theirs[key] if higher[key] else theirs[key] / mine[key])
            for key in RATIO_KEYS
            if mine.get(key) and theirs.get(key)
        }
    return out


def render(report: dict[str, Any]) -> str:
    meta, results = report["machine"], report["results"]
    settings = report["settings"]
    names = list(results)
    w, cw = 36, 11
    lines = [
        "jobkit vs. other job libraries on Redis",
        f"  machine: {meta['cpu']}, {meta['cores']} cores, load avg {meta['load_avg']}",
        f"  Python {meta['python']}, redis-server {meta['redis_version']} (127.0.0.1 TCP, "
        f"no persistence), redis-py {meta['redis_py']}",
        f"  {settings['jobs']:,} jobs per phase (each one Redis INCR), median of "
        f"{settings['runs']} run(s); pickup over {settings['latency_jobs']} jobs",
        "",
        f"{'':<{w}}" + "".join(f"{name:>{cw}}" for name in names),
    ]
    for label, key, fmt, _ in ROWS if names else ():
        cells = []
        for name in names:
            value = results[name]["figures"].get(key)
            cells.append(f"{value:>{cw}{fmt}}" if value is not None else f"{'-':>{cw}}")
        lines.append(f"{label:<{w}}" + "".join(cells))
    if not names:
        lines.append("no library was measured")
    twice = [
        (r["figures"].get("p1_duplicates", 0), r["figures"].get("p2_duplicates", 0))
        for r in results.values()
    ]
    if any(a or b for a, b in twice):
        counts = "".join(f"{f'{a:,.0f} + {b:,.0f}':>{cw}}" for a, b in twice)
        lines.append(f"{'jobs run twice, 1 + 2 processes':<{w}}{counts}")
    table = report["ratios"]
    if table:
        peers = list(table)
        lines += [
            "",
            f"{'jobkit ratio to (> 1: jobkit better)':<{w}}"
            + "".join(f"{name:>{cw}}" for name in peers),
        ]
        for label, key, _, _ in ROWS:
            if key not in RATIO_KEYS:
                continue
            cells = [
                f"{table[p][key]:>{cw - 1}.2f}x" if key in table[p] else f"{'-':>{cw}}"
                for p in peers
            ]
            lines.append(f"{label:<{w}}" + "".join(cells))
    lines += ["", "configurations (recommended fast setup for no-op jobs):"]
    for name in names:
        lines.append(f"  {name} ({results[name]['versions']}): {results[name]['config']}")
    for name, reason in report["skipped"].items():
        lines.append(f"  {name}: skipped: {reason.splitlines()[0]}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000, help="N jobs per phase")
    parser.add_argument("--runs", type=int, default=3, help="report the median of R runs")
    parser.add_argument(
        "--latency-jobs",
        type=int,
        default=LATENCY_JOBS,
        help="jobs sent one at a time for pickup latency",
    )
    known = [*LOCAL_PEERS, *VENV_GROUP_OF]
    parser.add_argument("--only", default="", help=f"comma-separated, of {', '.join(known)}")
    parser.add_argument(
        "--peer-venv",
        type=Path,
        default=None,
        help="a venv with arq and/or saq (+ psutil, redis): run those from it",
    )
    parser.add_argument(
        "--ardiq-venv",
        type=Path,
        default=None,
        help="a Python >= 3.12 venv with ardiq (+ psutil, redis): run ArdiQ from it",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="use this (emptied!) Redis instead of starting redis-server",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    for name in ("jobs", "runs", "latency_jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    # each library run from another venv -> that venv (only those whose option was given)
    args.venv_of = {
        name: getattr(args, group.dest)
        for name, group in VENV_GROUP_OF.items()
        if getattr(args, group.dest) is not None
    }
    args.names = [n.strip() for n in args.only.split(",") if n.strip()] or list(LOCAL_PEERS)
    if not args.only:
        args.names += list(args.venv_of)
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown in --only: {', '.join(unknown)} (known: {', '.join(known)})")
    return args


def load_peers(names: list[str], url: str, skipped: dict[str, str]) -> dict[str, Peer]:
    peers: dict[str, Peer] = {}
    for name in names:
        try:
            peers[name] = load(name)(url)
        except Exception as exc:  # an ImportError, or a library that fails to set up
            skipped[name] = f"{type(exc).__name__}: {exc}"
            if group := VENV_GROUP_OF.get(name):
                skipped[name] += f" ({group.why}: run it with {group.option} VENV)"
            log(f"skipped {name}: {skipped[name]}")
    return peers


def run(args: argparse.Namespace, server_url: str, client: redis.Redis) -> dict[str, Any]:
    os.environ[URL_ENV] = server_url  # the peer modules read it on import
    skipped: dict[str, str] = {}
    notes: list[str] = []
    local = [n for n in args.names if n not in args.venv_of]
    remote: dict[Path, list[str]] = {}  # venv -> the libraries run from it
    for name in args.names:
        if name in args.venv_of:
            remote.setdefault(args.venv_of[name], []).append(name)
    client.flushall()
    log(f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"redis-server {client.info('server')['redis_version']} at {server_url}")  # fmt: skip
    peers = load_peers(local, server_url, skipped)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in peers}
    failed: dict[str, list[str]] = {name: [] for name in peers}
    with tempfile.TemporaryDirectory(prefix="jobkit-compare-") as tmp:
        bench = Bench(client, server_url, Path(tmp), args.jobs, args.latency_jobs)
        try:
            for i in range(args.runs):
                log(f"run {i + 1}/{args.runs}")
                for name, peer in peers.items():
                    client.flushall()
                    try:
                        runs[name].append(measure(bench, peer))
                    except Exception as exc:  # this run of this library failed; go on
                        failed[name].append(f"{type(exc).__name__}: {exc}")
                        log(f"{name}: run {i + 1} failed, its other runs still count: {exc}")
        finally:
            for peer in peers.values():
                with contextlib.suppress(Exception):
                    peer.close()
    results: dict[str, Any] = {}
    for name, peer in list(peers.items()):
        if not runs[name]:  # every run failed
            skipped[name] = f"failed: {failed[name][-1]}"
            del peers[name]
            continue
        if failed[name]:
            notes.append(
                f"{name}: {len(failed[name])} of {args.runs} run(s) failed "
                f"({failed[name][0]}); the median of the other {len(runs[name])}"
            )
        figures = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
        results[name] = {
            "config": peer.config,
            "versions": peer.versions(),
            "figures": {k: round(v, 3) for k, v in figures.items()},
        }
    for venv, names in remote.items():
        log(f"{', '.join(names)}: from {venv}")
        client.flushall()
        try:
            child = run_peer_venv(venv, names, server_url, args)
            python = child["machine"]["python"]
            for result in child["results"].values():
                if python != platform.python_version():  # say so in the table
                    result["versions"] += f", Python {python}"
            results.update(child["results"])
            skipped.update(child["skipped"])
            notes.extend(child.get("notes", []))
        except (BenchError, ValueError, KeyError) as exc:
            for name in names:
                skipped[name] = f"{VENV_GROUP_OF[name].option} run failed: {exc}"
    for name, group in VENV_GROUP_OF.items():
        if name not in results and name not in skipped and not args.only:
            notes.append(f"{name} left out: {group.why}; run it with {group.option} VENV")
    about = client.info("server")
    return {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(),
            "redis_version": about["redis_version"],
            "redis_py": redis.__version__,
            "platform": platform.platform(),
        },
        "settings": {"jobs": args.jobs, "runs": args.runs, "latency_jobs": args.latency_jobs},
        "results": results,
        "skipped": skipped,
        "ratios": ratios(results),
        "notes": notes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare()
    try:
        if args.redis_url:
            client = redis.Redis.from_url(args.redis_url, decode_responses=True)
            report = run(args, args.redis_url, client)
        else:
            from tests.support.redis_server import RedisServer

            with RedisServer() as server:
                client = server.client(decode_responses=True)
                report = run(args, server.url, client)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
