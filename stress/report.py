"""The summary a run prints: rich tables for people, or one JSON document (``--json``)."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from stress.checker import CHECKS, summary
from stress.faults import KINDS, FaultEvent, script_sha
from stress.run import Outcome

EXAMPLES = 3


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)}


def _script_names() -> dict[str, str]:
    names = ("enqueue", "claim", "complete", "fail", "heartbeat", "reap", "promote", "requeue")
    return {script_sha(n).decode(): f"{n}.lua" for n in names}


def dropped_replies(outcome: Outcome) -> Counter[str]:
    """Which commands lost their reply, scripts by name."""
    names = _script_names()
    counts: Counter[str] = Counter()
    for command in outcome.proxy.dropped:
        name, _, arg = command.partition(" ")
        counts[names.get(arg, name) if name.upper() == "EVALSHA" else name] += 1
    return counts


def fault_rows(events: list[FaultEvent]) -> list[dict[str, Any]]:
    """Per fault kind: how many, how long it lasted, and recovery times."""
    rows = []
    for kind in KINDS:
        mine = [e for e in events if e.kind == kind]
        if not mine:
            continue
        recoveries = [e.recovery for e in mine if e.recovery is not None]
        released = [e.released for e in mine if e.released is not None]
        rows.append(
            {
                "kind": kind,
                "injected": len(mine),
                "duration_max": max((e.duration for e in mine), default=0.0),
                "recovery": _spread(recoveries),
                "not_recovered": sum(1 for e in mine if e.recovery is None),
                "held_jobs": sum(e.held for e in mine),
                "released": _spread(released),
            }
        )
    return rows


def as_json(outcome: Outcome) -> dict[str, Any]:
    v = outcome.verdict
    return {
        "passed": outcome.passed,
        "config": {
            "jobs": outcome.config.jobs,
            "faults": list(outcome.config.faults),
            "fsync": outcome.config.fsync,
            "seed": outcome.config.seed,
            "supervisors": outcome.config.topo.supervisors,
            "children": outcome.config.topo.children,
            "schedulers": outcome.config.topo.schedulers,
            "producers": outcome.config.topo.producers,
            "lease": outcome.config.topo.lease,
            "socket_timeout": outcome.config.topo.socket_timeout,
            "max_crashes": outcome.config.topo.max_crashes,
            "cluster": outcome.config.cluster,
            "queues": list(outcome.queues),
        },
        "dispatched": v.accepted,
        "dispatched_by_kind": outcome.kinds,
        "unacknowledged_calls": v.unacked_calls,
        "unacknowledged_jobs": v.unacked_jobs,
        "lost": v.lost,
        "missing": v.missing,
        "stuck": v.stuck,
        "duplicate_successes": v.duplicate_successes,
        "surplus_successes_in_stats": v.surplus_successes,
        "executions_per_job": {"max": v.executions_max, "mean": v.executions_mean},
        "crashes": {
            "total": v.crashes,
            "killed_runs": v.crashes_by_kill,
            "unrun_claims_of_killed_supervisors": v.crashes_by_holder_kill,
            "unrun_claims_during_other_faults": v.crashes_by_fault_window,
        },
        "outcomes": dict(v.outcomes),
        "drained": outcome.drained,
        "drain_seconds": outcome.drain_seconds,
        "run_seconds": outcome.run_seconds,
        "redis_starts": outcome.redis_starts,
        "master_kills": [
            {
                "master": k.address,
                "queues": k.queues,
                "at_ms": k.at_ms,
                "failover": k.failover,
                "rejoined": k.rejoined,
                "error": k.error,
            }
            for k in outcome.master_kills
        ],
        "faults": fault_rows(outcome.events),
        "replies_dropped": dict(dropped_replies(outcome)),
        "proxy": {
            "connections": outcome.proxy.connections,
            "stalls": outcome.proxy.stalls,
            "connections_reset": outcome.proxy.connections_reset,
            "upstream_refused": outcome.proxy.upstream_refused,
        },
        "events": [
            {
                "kind": e.kind,
                "at": e.at,
                "at_ms": e.at_ms,
                "victim": e.victim,
                "duration": e.duration,
                "recovery": e.recovery,
                "released": e.released,
                "held": e.held,
                "detail": e.detail or (e.drop.command if e.drop else ""),
            }
            for e in outcome.events
        ],
        "checks": summary(v),
        "findings": [{"check": f.check, "job": f.job, "detail": f.detail} for f in v.findings],
        "workdir": str(outcome.workdir) if not outcome.passed or outcome.config.keep else None,
    }


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _redis_row(outcome: Outcome) -> tuple[str, str]:
    if not outcome.config.cluster:
        return (
            "redis-server",
            f"started {outcome.redis_starts}x, appendfsync {outcome.config.fsync}",
        )
    kills = outcome.master_kills
    failovers = [k.failover for k in kills if k.failover is not None]
    healed = sum(1 for k in kills if k.rejoined is not None)
    spread = _spread(failovers)
    return "Redis Cluster", (
        f"3 masters + 3 replicas, queues {', '.join(outcome.queues)}; {len(kills)} masters "
        f"killed, failover p50 {_s(spread['p50'])} max {_s(spread['max'])}, "
        f"{healed} rejoined as replicas"
    )


def print_tables(outcome: Outcome, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: room for the examples
            console = Console(width=140)
    data = as_json(outcome)
    v = outcome.verdict

    summary_table = Table(title="jobkit stress run", show_header=False)
    summary_table.add_column("", style="bold")
    summary_table.add_column("")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(outcome.kinds.items()))
    rows = [
        ("dispatched", f"{v.accepted} ({kinds})"),
        ("unacknowledged dispatch calls", f"{v.unacked_calls} (jobs they created anyway: "
                                           f"{v.unacked_jobs})"),
        ("lost", f"{v.lost} (missing {v.missing}, stuck {v.stuck})"),
        ("duplicate successes", f"{v.duplicate_successes} (stats surplus {v.surplus_successes})"),
        ("executions per job", f"max {v.executions_max}, mean {v.executions_mean}"),
        ("crashes (each explained)", f"{v.crashes}: {v.crashes_by_kill} runs killed, "
                    f"{v.crashes_by_holder_kill} unrun claims of killed supervisors, "
                    f"{v.crashes_by_fault_window} unrun claims during other faults"),
        ("outcomes", ", ".join(f"{k} {n}" for k, n in sorted(v.outcomes.items()))),
        ("time to drain after the last fault",
         _s(outcome.drain_seconds) if outcome.drained else "NOT DRAINED"),
        ("run time", f"{outcome.run_seconds:.0f}s"),
        _redis_row(outcome),
        ("result", "[green]PASSED[/]" if outcome.passed else "[red]FAILED[/]"),
    ]  # fmt: skip
    for name, value in rows:
        summary_table.add_row(name, value)
    console.print(summary_table)

    faults = Table(title="faults and recovery")
    for column in ("fault", "n", "down", "recovery p50", "max", "unrecovered",
                   "held jobs", "released p50", "max"):  # fmt: skip
        faults.add_column(column, justify="left" if column == "fault" else "right")
    for row in data["faults"]:
        faults.add_row(
            row["kind"],
            str(row["injected"]),
            _s(row["duration_max"]) if row["duration_max"] else "-",
            _s(row["recovery"]["p50"]),
            _s(row["recovery"]["max"]),
            str(row["not_recovered"]),
            str(row["held_jobs"]),
            _s(row["released"]["p50"]),
            _s(row["released"]["max"]),
        )
    console.print(faults)
    if data["replies_dropped"]:
        drops = ", ".join(f"{k} x{n}" for k, n in sorted(data["replies_dropped"].items()))
        console.print(f"replies dropped: {drops}")

    checks = Table(title="checks")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("findings", justify="right")
    checks.add_column("examples")
    for name in CHECKS:
        found = [f for f in v.findings if f.check == name]
        examples = "\n".join(f"{f.job}: {f.detail}" for f in found[:EXAMPLES])
        result = "[green]ok[/]" if not found else "[red]FAIL[/]"
        checks.add_row(name, result, str(len(found)), examples)
    console.print(checks)
    if not outcome.passed:
        console.print(f"logs and AOF kept in {outcome.workdir}")
