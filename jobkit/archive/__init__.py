"""The history archive: job rows and attempt rows in a SQL database (SQLAlchemy Core),
written by ``jobkit archiver`` from the queues' event streams, kept after Redis forgets
the jobs. :mod:`jobkit.archive.schema` holds the tables users may query."""

DEFAULT_FILE = "history.db"  # in JOBKIT_DATA_DIR, when JOBKIT_HISTORY_URL is unset
