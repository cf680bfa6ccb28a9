"""The query layer the CLI and the HTTP API share, so neither re-implements the other:
:mod:`~jobkit.ops.jobs` finds and lists jobs, live in Redis or in the history archive."""
