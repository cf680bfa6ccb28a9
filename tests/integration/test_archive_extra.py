"""The history archive is an extra: without SQLAlchemy (``pip install jobkit`` alone),
jobkit works as it does without an archive, and a history URL or ``jobkit archiver``
fails in one line that names the extra. SQLAlchemy's absence is made by blocking its
import in the subprocess (``sys.modules[...] = None``), the same as not installed."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT, Env, clean_env

BLOCK = "import sys; sys.modules['sqlalchemy'] = None; sys.modules['psycopg'] = None\n"


def without_sqlalchemy(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code],
        cwd=REPO_ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli(args: str) -> str:
    return f"import sys; sys.argv = ['jobkit', {args}]\nfrom jobkit.cli import main\nmain()"


def test_without_the_extra_jobkit_works_and_the_archive_says_what_to_install(env: Env) -> None:
    plain = without_sqlalchemy(
        "from tests.support import jobs\nimport jobkit\n"
        "h = jobs.Add.dispatch(a=1, b=2)\n"
        "assert jobkit.get_job('default:no-such-job').status.value == 'unknown'\n"
        "print(h.status.value)",
        JOBKIT_REDIS_URL=env.url,
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "queued"
    for code, env_extra in (
        (cli("'archiver'"), {}),
        (cli("'jobs', '--archived'"), {"JOBKIT_HISTORY_URL": "sqlite:////tmp/none.db"}),
        (cli("'job', 'default:gone'"), {"JOBKIT_HISTORY_URL": "postgresql+psycopg://u:secret@h/db"}),
    ):  # fmt: skip
        out = without_sqlalchemy(code, JOBKIT_REDIS_URL=env.url, **env_extra)
        said = out.stdout + out.stderr
        assert out.returncode == 2, said
        assert "pip install 'jobkit[archive]'" in said and "Traceback" not in said
        assert len(said.strip().splitlines()) == 1 and "secret" not in said
