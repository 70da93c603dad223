"""Rate limiters deciding how long a work-queue item waits before it is retried.

The semantics are those of client-go `util/workqueue/default_rate_limiters.go`:

- `ItemExponentialFailureRateLimiter`: per item, `base * 2**failures`, capped at `max_delay`;
  `forget` resets the item. Overflow-safe: a huge failure count yields `max_delay`.
- `BucketRateLimiter`: one token bucket shared by all items, with the reservation semantics of
  golang.org/x/time/rate: `when()` reserves one token *now* (the bucket may go negative) and
  returns how long the caller must wait for that token. It starts full.
- `MaxOfRateLimiter`: asks every limiter (so each records the attempt) and returns the longest.

Invariants: delays are never negative; `num_requeues(item)` counts `when(item)` calls since the
last `forget(item)` (0 for limiters that do not track items). Limiters are synchronous and
not thread-safe: they are only called from the event loop's thread.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Protocol

from servicegroup.clock import Clock


class RateLimiter(Protocol):
    """Decides the delay before an item is retried (client-go `TypedRateLimiter`)."""

    def when(self, item: Hashable) -> float:
        """Record a retry of `item` and return how many seconds it must wait."""
        ...

    def forget(self, item: Hashable) -> None:
        """Stop tracking `item` (it succeeded): its next failure starts from scratch."""
        ...

    def num_requeues(self, item: Hashable) -> int:
        """How many times `item` has been retried since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter:
    """Per-item exponential backoff: `base * 2**failures`, never more than `max_delay`."""

    def __init__(self, *, base: float = 0.005, max_delay: float = 1000.0) -> None:
        if base < 0 or max_delay < 0:
            raise ValueError("delays cannot be negative")
        self.base = base
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exponent = self._failures.get(item, 0)
        self._failures[item] = exponent + 1
        try:
            backoff = math.ldexp(self.base, exponent)
        except OverflowError:
            # The true value is astronomically large: the cap applies.
            return self.max_delay
        return min(backoff, self.max_delay)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket: `burst` retries at once, then `qps` per second."""

    def __init__(self, *, qps: float = 10.0, burst: int = 100, clock: Clock) -> None:
        if qps <= 0:
            raise ValueError("qps must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.monotonic()

    def when(self, item: Hashable) -> float:
        now = self._clock.monotonic()
        # A reading earlier than the last one (not possible with a monotonic clock, but
        # harmless to guard) must not mint tokens from negative elapsed time.
        elapsed = max(0.0, now - self._last)
        tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
        tokens -= 1.0
        self._tokens = tokens
        self._last = max(now, self._last)
        return -tokens / self.qps if tokens < 0 else 0.0

    def forget(self, item: Hashable) -> None:
        """The bucket is shared by all items: nothing to forget."""

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of `limiters` asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("at least one rate limiter is required")
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        # Every limiter is asked (no short-circuit) so each records the attempt.
        return max([limiter.when(item) for limiter in self.limiters])

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock) -> MaxOfRateLimiter:
    """client-go's `DefaultControllerRateLimiter`: per item 5 ms..1000 s, overall 10 qps / 100."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(base=0.005, max_delay=1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )
