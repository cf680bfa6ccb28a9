"""The dashboard's overview shows a banner while a queue has a key set aside: a line per
key (the newest few, the rest counted), every word from Redis escaped."""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jobkit.web.dashboard import mount
from jobkit.web.dashboard.views import ASIDES_SHOWN
from tests.conftest import Env
from tests.support import jobs

AT = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


def _set_aside(env: Env, name: str, at_ms: int, found: str = "string") -> str:
    shard = env.keys.shard("default")
    key = f"{shard.base}:{name}"
    kept = shard.aside(key, at_ms)
    note = {"key": key, "found": found, "want": "zset", "kept": kept, "at": at_ms,
            "note": "claim"}  # fmt: skip
    env.client.hset(shard.asides, kept, orjson.dumps(note))
    return kept


def _overview(env: Env) -> str:
    app = FastAPI()
    mount(app, prefix="/")
    page = TestClient(app).get("/")
    assert page.status_code == 200
    return page.text


def test_no_banner_without_asides(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=2)
    assert "set aside" not in _overview(env)


def test_the_overview_names_each_key_set_aside_escaped(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=2)
    hostile = "queue:<script>alert(1)</script>"
    kept = _set_aside(env, hostile, AT)

    html = _overview(env)
    assert "<script>alert(1)</script>" not in html
    key = "{jobkit:default}:queue:&lt;script&gt;alert(1)&lt;/script&gt;"
    kept_html = kept.replace("<", "&lt;").replace(">", "&gt;")
    assert (
        f"A damaged key was set aside: <code>{key}</code> held a string, kept as "
        f"<code>{kept_html}</code> at 2023-11-14 22:13:20 — run <code>jobkit doctor</code>"
    ) in html


def test_a_few_are_named_and_the_rest_counted(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=2)
    for i in range(ASIDES_SHOWN + 2):
        _set_aside(env, f"queue:lane{i}", AT + i * 1000, found="list")
    html = _overview(env)
    assert html.count("A damaged key was set aside") == ASIDES_SHOWN
    assert f"queue:lane{ASIDES_SHOWN + 1}</code> held a list" in html  # the newest first
    assert "queue:lane0</code>" not in html
    assert "and 2 more key(s) set aside" in html
