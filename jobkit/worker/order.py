"""The order a worker asks its queues for jobs in, claim by claim.

Strict (``-q high,default,low``): always as given, so a later queue gets work only while
the earlier ones have none. Weighted (``-q high:5,default:3,low:1``): each claim draws
the order at random, a queue's chance to come first proportional to its weight, then the
next among the rest the same way. With every queue full, each queue's share of the
claims is its weight over the sum, and a low-weight queue is never starved: it comes
first in ``weight / sum`` of the claims whatever the others hold.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence


class QueueOrder:
    """Arranges a worker's lane groups (one per queue, its name first) for one claim."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self.weights = dict(weights or {})  # empty: strict order
        self._random = random.Random()

    def arrange(self, groups: Sequence[Sequence[str]]) -> list[list[str]]:
        """``groups`` in the order to ask them this time (as given when not weighted)."""
        left = [list(g) for g in groups]
        if not self.weights or len(left) < 2:
            return left
        ordered: list[list[str]] = []
        while left:
            chances = [self.weights.get(g[0], 1.0) for g in left]
            ordered.append(left.pop(self._random.choices(range(len(left)), chances)[0]))
        return ordered
