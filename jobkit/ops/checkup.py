"""What ``GET /doctor`` answers: is anything in Redis damaged, in one JSON object.

- ``asides``: the shared keys the scripts found holding the wrong type and set aside
  (each queue's ``asides`` hash, read with the overview's counts: see
  :mod:`jobkit.backend.asides`), oldest first;
- ``problems``: the keys the overview could not read now (one message each, as
  ``jobkit info`` prints them);
- ``findings``: what ``jobkit doctor`` finds (:func:`jobkit.ops.doctor.diagnose` over a
  sample of each queue's records and index entries; the global keys' with queue None),
  informational ones left out (the
  keys set aside are ``asides`` already), and ``settings``: the Redis settings that can
  lose jobs.

``healthy`` is true when all four are empty. The doctor's reads are bounded (SCAN and
ZSCAN pages, :data:`SAMPLE` records and entries per queue), so a monitor may poll this.
"""

from __future__ import annotations

from typing import Any

from jobkit.backend.store import Store
from jobkit.ops.doctor import INFORMATIONAL, diagnose
from jobkit.ops.overview import overview

SAMPLE = 1000  # records (and entries of each index) the doctor checks per queue here


def checkup(store: Store, sample: int = SAMPLE) -> dict[str, Any]:
    """``{"healthy", "asides", "problems", "findings", "settings"}`` (see the module doc;
    the shape: docs/json.md)."""
    seen = overview(store)
    report = diagnose(store, sample=sample)
    findings = [
        {"queue": queue, "kind": f.kind, "where": f.where, "count": f.count,
         "examples": f.examples}
        for queue, found in [(None, report.global_keys.findings),
                             *((q.queue, q.findings) for q in report.queues)]
        for f in found
        if f.kind not in INFORMATIONAL
    ]  # fmt: skip
    settings = [s._asdict() for s in report.settings if s.risk]
    asides = [a.as_dict() for a in seen.asides]
    problems: list[str] = seen.fleet["problems"]
    return {
        "healthy": not (asides or problems or findings or settings),
        "asides": asides,
        "problems": problems,
        "findings": findings,
        "settings": settings,
    }
