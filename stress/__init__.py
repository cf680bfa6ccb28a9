"""jobkit's fault-injection suite: real redis-server, supervisors, schedulers and
producers, killed and cut off on a schedule, then every dispatched job checked.

``python -m stress --short`` runs the CI setting; ``python -m stress --help`` shows the
rest. :class:`stress.proxy.FaultProxy` is reusable on its own (tests import it).

Kept free of imports: worker processes import ``stress.jobs`` (``-A stress.jobs``) and
pay for whatever this package imports at start-up.
"""
