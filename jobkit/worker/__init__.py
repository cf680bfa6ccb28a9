"""The prefork worker: a supervisor (``supervisor.py``) owning N long-lived children
(``child.py``, with its housekeeping thread in ``keeper.py``) that claim and run jobs
(``execute.py``).

The supervisor's periodic Redis work is in ``chores.py``; its kill policy and what
becomes of a dead child's jobs in ``settle.py``, the limits it enforces in ``child_limits.py``.
Children talk to it over a pipe (``protocol.py``, the child's end in ``link.py``) and
shared-memory slots (``slot.py``), and die with it (``lifeline.py``). ``jobkit/outage.py``
says how all of them, the scheduler and the archiver, ride out Redis trouble without
flooding the log."""
