"""The worker registry in Redis: who runs, where, doing what (``jobkit workers``)."""

from __future__ import annotations

from typing import Any, cast

from jobkit.backend.store import Store


class WorkerRegistry:
    """Workers' heartbeats in Redis: who runs, where, doing what."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def beat(self, name: str, ttl: int, fields: dict[str, Any]) -> None:
        flat: list[Any] = []
        for key, value in fields.items():
            flat.extend((key, value))
        self.store.run_script("worker", [self.store.keys.base], (name, "beat", ttl, *flat))

    def gone(self, name: str) -> None:
        self.store.run_script("worker", [self.store.keys.base], (name, "gone", 0))

    def all(self) -> list[dict[str, str]]:
        """Every live worker's hash, most recently seen first (a worker key of another
        type is skipped; a registry key of another type raises ``redis.ResponseError``)."""
        names = cast(list[str], self.store.redis.zrevrange(self.store.keys.workers, 0, -1))
        pipe = self.store.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.store.keys.worker(name))
        replies = pipe.execute(raise_on_error=False)
        return [
            dict(h, name=n)
            for n, h in zip(names, replies, strict=True)
            if isinstance(h, dict) and h
        ]
