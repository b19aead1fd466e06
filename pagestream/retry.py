"""Backoff: how long to wait before trying again, capped, with jitter.

One vocabulary for every "try again later" in pagestream, so bounds are stated once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Exponential backoff from ``initial`` seconds, multiplied by ``factor`` per failure, capped at
    ``maximum``; ``jitter`` spreads retries of many workers (a fraction of the delay)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1
    failures: int = 0

    def next_delay(self) -> float:
        """The delay before the next try; counts one more failure."""
        self.failures += 1
        base = capped_exponential(
            self.failures, initial=self.initial, factor=self.factor, maximum=self.maximum
        )
        if not self.jitter:
            return base
        return base * (1.0 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        """A success: the next failure starts from ``initial`` again."""
        self.failures = 0


def capped_exponential(attempt: int, *, initial: float, factor: float, maximum: float) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` ≥ 1), without jitter: deterministic schedules."""
    try:
        return float(min(maximum, initial * factor ** max(0, attempt - 1)))
    except OverflowError:  # thousands of failures: long past the cap
        return float(maximum)
