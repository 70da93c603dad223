"""Rate limiters: client-go default_rate_limiters.go semantics, stepped on a FakeClock."""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegroup.clock import FakeClock
from servicegroup.ratelimiters import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)

# --- ItemExponentialFailureRateLimiter


def test_exponential_doubles_per_failure_from_base() -> None:
    limiter = ItemExponentialFailureRateLimiter(base=0.005, max_delay=1000.0)
    delays = [limiter.when("a") for _ in range(6)]
    assert delays == [0.005, 0.01, 0.02, 0.04, 0.08, 0.16]
    assert limiter.num_requeues("a") == 6


def test_exponential_is_capped_at_max_delay() -> None:
    limiter = ItemExponentialFailureRateLimiter(base=0.005, max_delay=1000.0)
    delays = [limiter.when("a") for _ in range(25)]
    # 0.005 * 2**17 = 655.36 is the last value under the cap.
    assert delays[17] == pytest.approx(655.36)
    assert delays[18:] == [1000.0] * 7


def test_exponential_survives_huge_failure_counts() -> None:
    limiter = ItemExponentialFailureRateLimiter(base=0.005, max_delay=1000.0)
    for _ in range(3000):
        delay = limiter.when("a")
    assert delay == 1000.0
    assert limiter.num_requeues("a") == 3000


def test_exponential_forget_resets_only_that_item() -> None:
    limiter = ItemExponentialFailureRateLimiter(base=1.0, max_delay=60.0)
    for _ in range(4):
        limiter.when("a")
        limiter.when("b")
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 1.0
    assert limiter.num_requeues("b") == 4
    assert limiter.when("b") == 16.0
    limiter.forget("never-seen")  # harmless


@given(
    base=st.floats(min_value=1e-6, max_value=10.0),
    cap=st.floats(min_value=1e-6, max_value=1e6),
    failures=st.integers(min_value=1, max_value=1200),
)
def test_exponential_delay_formula(base: float, cap: float, failures: int) -> None:
    limiter = ItemExponentialFailureRateLimiter(base=base, max_delay=cap)
    delays = [limiter.when("x") for _ in range(failures)]
    assert all(0 <= d <= cap for d in delays)
    assert delays == sorted(delays)  # never shrinks while failing
    assert delays[0] == min(base, cap)
    assert limiter.num_requeues("x") == failures


# --- BucketRateLimiter


def test_bucket_allows_burst_then_paces_at_qps(clock: FakeClock) -> None:
    limiter = BucketRateLimiter(qps=10.0, burst=3, clock=clock)
    assert [limiter.when(i) for i in range(3)] == [0.0, 0.0, 0.0]
    # Each further call reserves the next token: 0.1 s, 0.2 s, 0.3 s from now.
    assert [limiter.when(i) for i in range(3, 6)] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_refills_with_time_up_to_burst(clock: FakeClock) -> None:
    limiter = BucketRateLimiter(qps=10.0, burst=3, clock=clock)
    for i in range(5):
        limiter.when(i)  # tokens: 3 -> -2
    clock.advance(0.2)  # +2 tokens -> 0
    assert limiter.when("x") == pytest.approx(0.1)
    clock.advance(100.0)  # refill is capped at the burst
    assert [limiter.when(i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.when("y") == pytest.approx(0.1)


def test_bucket_is_shared_and_tracks_no_item(clock: FakeClock) -> None:
    limiter = BucketRateLimiter(qps=1.0, burst=1, clock=clock)
    assert limiter.when("a") == 0.0
    assert limiter.when("b") == pytest.approx(1.0)  # another item still pays
    limiter.forget("b")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(2.0)


def test_bucket_rejects_nonsense() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError):
        BucketRateLimiter(qps=0.0, burst=1, clock=clock)
    with pytest.raises(ValueError):
        BucketRateLimiter(qps=1.0, burst=0, clock=clock)


# --- MaxOfRateLimiter


class _Recording:
    def __init__(self, delay: float, requeues: int) -> None:
        self.delay = delay
        self.requeues = requeues
        self.calls: list[str] = []

    def when(self, item: Hashable) -> float:
        self.calls.append(f"when {item}")
        return self.delay

    def forget(self, item: Hashable) -> None:
        self.calls.append(f"forget {item}")

    def num_requeues(self, item: Hashable) -> int:
        return self.requeues


def test_max_of_asks_everyone_and_takes_the_longest() -> None:
    short, long = _Recording(0.5, 7), _Recording(2.0, 1)
    limiter: RateLimiter = MaxOfRateLimiter(short, long)
    assert limiter.when("k") == 2.0
    assert short.calls == ["when k"] and long.calls == ["when k"]
    assert limiter.num_requeues("k") == 7
    limiter.forget("k")
    assert short.calls[-1] == "forget k" and long.calls[-1] == "forget k"


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError):
        MaxOfRateLimiter()


def test_default_controller_rate_limiter(clock: FakeClock) -> None:
    limiter = default_controller_rate_limiter(clock)
    # Per-item backoff dominates while the bucket has tokens.
    assert [limiter.when("a") for _ in range(3)] == [0.005, 0.01, 0.02]
    assert limiter.num_requeues("a") == 3
    for i in range(97):
        assert limiter.when(i) == 0.005
    # 100 tokens spent: the 10 qps bucket now dominates a fresh item's 5 ms.
    assert limiter.when("fresh") == pytest.approx(0.1)
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
