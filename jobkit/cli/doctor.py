"""`jobkit doctor` (what is wrong with each queue's keys) and `jobkit repair` (rebuild
each queue's indexes from its job records)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobkit import registry
from jobkit.cli.common import (
    AsJson,
    Prefix,
    RedisUrl,
    Table,
    connect,
    console,
    print_json,
    typer_app,
)
from jobkit.connection import get_settings, get_store
from jobkit.cron import collect
from jobkit.ops.doctor import DEFAULT_SAMPLE, KINDS, Report, diagnose
from jobkit.ops.repair import RepairReport, repair

app = typer_app()

Queues = Annotated[
    list[str] | None, typer.Option("--queue", "-q", help="a queue to check (default: all)")
]
Modules = Annotated[
    list[str] | None,
    typer.Option("-A", "--app", help="module(s) defining your jobs: checks the schedules"),
]


@app.command()
def doctor(
    queue: Queues = None,
    full: Annotated[bool, typer.Option("--full", help="check every record, not a sample")] = False,
    sample: Annotated[int, typer.Option("--sample", help="records checked per queue")] = (
        DEFAULT_SAMPLE
    ),
    app_modules: Modules = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Check each queue's keys: types, keys set aside, records no index holds, index
    entries with no record, running jobs with no lease, schedules of unknown classes,
    and Redis settings that can lose jobs. Reads only, in bounded pages. Exit code 0:
    healthy, 1: something found, 2: Redis out of reach."""
    connect(redis_url, prefix)
    known = declared = None
    if app_modules:
        registry.import_apps(app_modules)
        classes = list(registry.registered().values())
        known = [cls.name for cls in classes]
        declared = [b.key for b in collect(classes)]
    report = diagnose(
        get_store(), queue, full=full, sample=sample, known_classes=known, declared=declared
    )
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)
    raise typer.Exit(0 if report.healthy else 1)


GLOBAL = "(global)"  # the table's label of the global slot's rows (no queue's name)


def _print_report(report: Report) -> None:
    table = Table("queue", "finding", "where", "count", title="jobkit doctor")
    g = report.global_keys
    for f in g.findings:
        table.add_row(GLOBAL, KINDS[f.kind], f.where, f"{f.count:,}")
    if not g.findings:
        table.add_row(GLOBAL, "healthy", "", "")
    for q in report.queues:
        for f in q.findings:
            table.add_row(q.queue, KINDS[f.kind], f.where, f"{f.count:,}")
        if not q.findings:
            table.add_row(q.queue, "healthy", "", "")
    console.print(table)
    for f in g.findings:  # keys and names whole, one a line
        if f.kind in ("wrong_type", "unregistered"):
            console.print(f"{GLOBAL} {KINDS[f.kind]}: {f.where}", soft_wrap=True)
            for example in f.examples:
                console.print(f"  {example}", soft_wrap=True)
    for a in g.asides:
        console.print(f"{GLOBAL} {a['key']} held a {a['found']}, kept as {a['kept']}: "
                      f"{a['note']}", soft_wrap=True)  # fmt: skip
    if g.registered is None:
        console.print("the queue registry is unreadable: its queues were found otherwise")
    if g.scanned is not None:
        console.print(f"queues found by live workers' hashes and a scan of {g.scanned:,} keys")
    for q in report.queues:  # ids whole, one a line: never cut to fit a column
        for f in q.findings:
            if f.kind != "set_aside":
                console.print(f"{q.queue}, {KINDS[f.kind]} ({f.where}), for example:")
                for example in f.examples:
                    console.print(f"  {example}", soft_wrap=True)
        for a in q.asides:
            console.print(f"{q.queue}: {a['key']} held a {a['found']}, kept as {a['kept']}: "
                          f"{a['note']}", soft_wrap=True)  # fmt: skip
    for q in report.queues:
        what = "every" if q.complete else "a sample of the"
        console.print(
            f"queue {q.queue}: scanned {what} {q.records:,} records and {q.entries:,} index "
            "entries" + ("" if q.complete else " (--full: all)")
        )
    risky = [s for s in report.settings if s.risk]
    if risky:
        settings = Table("node", "setting", "value", "risk", title="Redis settings")
        for s in risky:
            settings.add_row(s.node or "redis", s.name, s.value, s.risk)
        console.print(settings)
    if not report.schedules_checked:
        console.print("schedules not checked: name your job modules with -A")
    sick = not (g.healthy and all(q.healthy for q in report.queues))
    verdict = "healthy" if report.healthy else "problems found"
    verdict += ": jobkit repair rebuilds the indexes" if sick else ""
    console.print(f"{verdict} ({report.calls:,} Redis calls)")


@app.command("repair")
def repair_command(
    queue: Queues = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what it would do")] = False,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Rebuild each queue's indexes from its job records: add what a record's status
    calls for, drop entries no record backs, set seq past every job's. Safe while
    workers run; a second run finds nothing to do. A running job with no lease gets one
    of JOBKIT_LEASE: its worker renews it, or the reaper settles it once it lapses."""
    connect(redis_url, prefix)
    lease_ms = int(get_settings().lease * 1000)
    report = repair(get_store(), queue, lease_ms=lease_ms, dry_run=dry_run)
    if as_json:
        print_json(report.as_dict())
        return
    _print_repair(report)


def _print_repair(report: RepairReport) -> None:
    title = "jobkit repair --dry-run" if report.dry_run else "jobkit repair"
    table = Table("queue", "index", "what", "count", title=title)
    g = report.global_keys
    if g.found:
        what = "would set aside" if report.dry_run else "set aside"
        table.add_row(GLOBAL, "queues", f"{what}: held a {g.found}", "1")
    if g.added:
        table.add_row(GLOBAL, "queues", "would add" if report.dry_run else "added", f"{g.added:,}")
    for q in report.queues:
        for (index, state), n in sorted(q.counts.items()):
            table.add_row(q.queue, index, _STATES.get(state, state), f"{n:,}")
    if g.changes or any(q.counts for q in report.queues):
        console.print(table)
    if g.kept:
        console.print(f"{GLOBAL} the registry was kept as {g.kept}", soft_wrap=True)
    if g.unregistered:
        done = "would put" if report.dry_run else "put"
        console.print(f"{GLOBAL} {done} back in the registry: {', '.join(g.unregistered)}",
                      soft_wrap=True)  # fmt: skip
    for key in g.left:
        console.print(f"{GLOBAL} not repaired: {key} holds the wrong type (jobkit doctor)",
                      soft_wrap=True)  # fmt: skip
    console.print(f"{GLOBAL} scanned {g.scanned:,} keys for queues")
    for q in report.queues:
        console.print(
            f"queue {q.queue}: scanned {q.records:,} records and {q.entries:,} index entries"
        )
    if not report.changes:
        console.print(f"nothing to repair ({report.calls:,} Redis calls)")
    else:
        done = "would change" if report.dry_run else "changed"
        console.print(f"{done} {report.changes:,} entries ({report.calls:,} Redis calls)")


_STATES = {
    "added": "added",
    "removed": "removed: no record",
    "missing": "would add",
    "stray": "would remove: no record",
    "blocked": "not written: wrong type",
    "invalid": "record says no index",
}
