"""The history archive: job rows and attempt rows in a SQL database (SQLAlchemy Core),
written by ``jobkit archiver`` from the queues' event streams, kept after Redis forgets
the jobs. :mod:`jobkit.archive.schema` holds the tables users may query.

An extra (``pip install 'jobkit[archive]'``: SQLAlchemy and psycopg): without it jobkit
works as it does without an archive, and a history URL or ``jobkit archiver`` says, in
one line, what to install (:func:`require`).
"""

from jobkit.errors import ConfigurationError

DEFAULT_FILE = "history.db"  # in JOBKIT_DATA_DIR, when JOBKIT_HISTORY_URL is unset
EXTRA = "pip install 'jobkit[archive]'"


def require(what: str = "the history archive") -> None:
    """Raise :class:`ConfigurationError`, naming the extra, when SQLAlchemy is missing."""
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            f"{what} needs SQLAlchemy and a database driver: {EXTRA}"
        ) from None
