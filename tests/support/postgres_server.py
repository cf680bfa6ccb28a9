"""A real, throwaway PostgreSQL server for the history archive's tests.

Debian's postgresql package (``.ci/run`` installs it): ``initdb`` and ``pg_ctl`` run as
the ``postgres`` OS user (PostgreSQL refuses to run as root) in a temporary folder owned
by it, on a free TCP port with its unix socket in that folder. Stopped and removed when
the context ends; :meth:`stop` and :meth:`start` let a test take the database away and
bring it back.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.managed import Managed
from tests.support.redis_server import free_port

USER = "postgres"
PASSWORD = "pg-Pw_7x"
DATABASE = "jobkit_test"


def find_bin_dir() -> Path | None:
    """The folder of Debian's PostgreSQL binaries (newest version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PostgresServer(Managed):
    """One PostgreSQL server on 127.0.0.1, its data in a temporary folder."""

    def __init__(self) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL: apt-get install postgresql (see .ci/run)")
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="jobkit-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        """A SQLAlchemy URL of the test database (user and password included)."""
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.getuid() == 0:
            command = ["runuser", "-u", USER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def setup(self) -> None:
        """initdb under the temporary folder, start the server, create the database."""
        if os.getuid() == 0:
            owner = pwd.getpwnam(USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        password_file = self.root / "pw"
        password_file.write_text(PASSWORD)
        if os.getuid() == 0:
            os.chown(password_file, pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--auth-local=trust",
            "--auth-host=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.start()
        self._run(
            "psql", "-h", str(self.root), "-p", str(self.port), "-U", USER, "-d", "postgres",
            "-c", f"CREATE DATABASE {DATABASE}",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
            "-o", options,
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def teardown(self) -> None:
        """Stop the server at once (if it runs) and delete the folder."""
        try:
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        except subprocess.CalledProcessError:
            pass  # already stopped
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def reset_database(url: str) -> None:
    """Empty the test server's database: every table, view and index of the public
    schema gone, whoever made them (a test app's view on jobkit's tables, say)."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        engine.dispose()
