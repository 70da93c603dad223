"""Work queues: every client-go guarantee, with delays stepped on a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.clock import FakeClock
from servicegroup.metrics import Metrics
from servicegroup.ratelimiters import ItemExponentialFailureRateLimiter
from servicegroup.workqueue import (
    DelayingQueue,
    RateLimitingQueue,
    ShutDown,
    WorkQueue,
)

NAME = "testqueue"
LABELS = {"name": NAME, "controller": NAME}


async def eventually(predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:
    """Poll `predicate` between event-loop iterations until it holds or `timeout` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0)


async def settle(iterations: int = 20) -> None:
    """Let every ready callback run (used only before asserting that something did NOT happen,
    where the test's determinism comes from the FakeClock, not from this)."""
    for _ in range(iterations):
        await asyncio.sleep(0)


async def get_soon(queue: WorkQueue[str]) -> str:
    return await asyncio.wait_for(queue.get(), timeout=5.0)


@asynccontextmanager
async def running(queue: DelayingQueue[str]) -> AsyncIterator[asyncio.Task[None]]:
    """Run the queue's delay loop for the duration of the block, then shut it down."""
    async with asyncio.TaskGroup() as group:
        task = group.create_task(queue.run(), name="test-delay-loop")
        try:
            yield task
        finally:
            queue.shut_down()


def sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, LABELS)


# --- WorkQueue: the dirty/processing guarantees


async def test_fifo_and_duplicates_collapse(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    for item in ("a", "b", "a", "c", "b"):
        q.add(item)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_item_is_never_handed_to_two_getters(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # re-added while processing: only marked dirty
    assert len(q) == 0
    second = asyncio.create_task(q.get(), name="second-getter")
    await settle()
    assert not second.done(), "a processing item was handed to a second getter"
    q.done("a")
    assert await asyncio.wait_for(second, timeout=5.0) == "a"
    q.done("a")
    assert len(q) == 0 and q.processing == 0


async def test_readded_while_processing_is_processed_again_once(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    q.add("a")
    q.add("b")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    q.add("a")
    q.done("a")
    # "a" goes back to the end of the queue, once.
    assert len(q) == 2
    assert await q.get() == "b"
    assert await q.get() == "a"
    q.done("a")
    q.done("b")
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    q.add("a")
    await q.get()
    q.done("a")
    q.done("a")  # a second done is ignored
    assert len(q) == 0 and q.processing == 0
    q.add("a")
    assert len(q) == 1


async def test_get_waits_for_an_add(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    getter = asyncio.create_task(q.get(), name="getter")
    await settle()
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, timeout=5.0) == "x"


async def test_each_add_wakes_one_waiting_getter(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    getters = [asyncio.create_task(q.get(), name=f"getter-{i}") for i in range(3)]
    await settle()
    q.add("a")
    q.add("b")
    await eventually(lambda: sum(g.done() for g in getters) == 2)
    await settle()
    assert sum(g.done() for g in getters) == 2
    assert sorted(g.result() for g in getters if g.done()) == ["a", "b"]
    q.shut_down()
    leftover = next(g for g in getters if not g.done())
    with pytest.raises(ShutDown):
        await asyncio.wait_for(leftover, timeout=5.0)


async def test_cancelled_getter_passes_its_wakeup_on(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    first = asyncio.create_task(q.get(), name="first")
    await settle()
    second = asyncio.create_task(q.get(), name="second")
    await settle()
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it can take the item
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, timeout=5.0) == "a"


async def test_cancelled_waiting_getter_leaves_no_waiter(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    getter = asyncio.create_task(q.get(), name="getter")
    await settle()
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    q.add("a")
    assert await q.get() == "a"


# --- WorkQueue: shutdown


async def test_get_after_shutdown_raises_once_empty(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    q.add("a")
    q.shut_down()
    assert q.shutting_down
    q.add("b")  # ignored
    assert len(q) == 1
    assert await q.get() == "a"  # what was queued is still handed out
    with pytest.raises(ShutDown):
        await q.get()


async def test_shutdown_wakes_waiting_getters(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    getters = [asyncio.create_task(q.get(), name=f"getter-{i}") for i in range(2)]
    await settle()
    q.shut_down()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), timeout=5.0)
    assert all(isinstance(r, ShutDown) for r in results)


async def test_shutdown_with_drain_waits_for_items_in_flight(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    q.add("a")
    q.add("b")
    assert await q.get() == "a"
    assert await q.get() == "b"
    drain = asyncio.create_task(q.shut_down_with_drain(), name="drain")
    await settle()
    assert q.shutting_down
    assert not drain.done()
    q.done("a")
    await settle()
    assert not drain.done(), "drain returned while 'b' was still processing"
    q.done("b")
    await asyncio.wait_for(drain, timeout=5.0)
    with pytest.raises(ShutDown):
        await q.get()


async def test_shutdown_with_drain_and_nothing_in_flight_returns(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    await asyncio.wait_for(q.shut_down_with_drain(), timeout=5.0)
    assert q.shutting_down


async def test_shutdown_ends_a_drain_early(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    q.add("a")
    await q.get()
    drain = asyncio.create_task(q.shut_down_with_drain(), name="drain")
    await settle()
    assert not drain.done()
    q.shut_down()
    await asyncio.wait_for(drain, timeout=5.0)
    assert q.processing == 1


async def test_item_readded_during_drain_is_still_handed_out(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock)
    q.add("a")
    await q.get()
    q.add("a")  # dirty while processing, before the shutdown
    drain = asyncio.create_task(q.shut_down_with_drain(), name="drain")
    await settle()
    q.done("a")  # client-go re-queues it even while shutting down
    assert await q.get() == "a"
    await settle()
    assert not drain.done()
    q.done("a")
    await asyncio.wait_for(drain, timeout=5.0)


# --- WorkQueue: model-based check of the invariant


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.sampled_from("abcd")),
            st.tuples(st.just("get"), st.just("")),
            st.tuples(st.just("done"), st.sampled_from("abcd")),
        ),
        max_size=60,
    )
)
async def test_queue_matches_the_client_go_model(ops: list[tuple[str, str]]) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=FakeClock())
    queue: list[str] = []
    dirty: set[str] = set()
    processing: set[str] = set()
    for op, item in ops:
        if op == "add":
            q.add(item)
            if item not in dirty:
                dirty.add(item)
                if item not in processing:
                    queue.append(item)
        elif op == "get":
            if not queue:
                continue
            got = await q.get()
            expected = queue.pop(0)
            assert got == expected
            assert got not in processing, "handed out an item already being processed"
            processing.add(got)
            dirty.discard(got)
        elif item in processing:
            q.done(item)
            processing.discard(item)
            if item in dirty:
                queue.append(item)
        assert len(q) == len(queue)
        assert len(set(queue)) == len(queue)
        assert set(queue) == dirty - processing
        assert q.processing == len(processing)


# --- WorkQueue: metrics at client-go's points


async def test_metrics_add_get_done(clock: FakeClock, metrics: Metrics) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock, metrics=metrics)
    assert sample(metrics, "workqueue_depth") == 0
    assert sample(metrics, "workqueue_adds_total") == 0
    assert sample(metrics, "workqueue_retries_total") == 0

    q.add("a")
    q.add("a")
    q.add("b")
    assert sample(metrics, "workqueue_adds_total") == 2
    assert sample(metrics, "workqueue_depth") == 2

    clock.advance(3.0)
    assert await q.get() == "a"
    assert sample(metrics, "workqueue_depth") == 1
    assert sample(metrics, "workqueue_queue_duration_seconds_count") == 1
    assert sample(metrics, "workqueue_queue_duration_seconds_sum") == 3.0

    clock.advance(2.0)
    q.done("a")
    assert sample(metrics, "workqueue_work_duration_seconds_count") == 1
    assert sample(metrics, "workqueue_work_duration_seconds_sum") == 2.0

    assert await q.get() == "b"
    assert sample(metrics, "workqueue_depth") == 0
    assert sample(metrics, "workqueue_queue_duration_seconds_sum") == 3.0 + 5.0


async def test_metrics_add_while_processing(clock: FakeClock, metrics: Metrics) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock, metrics=metrics)
    q.add("a")
    await q.get()
    q.add("a")  # counted as an add and as depth, although not yet in the FIFO
    assert sample(metrics, "workqueue_adds_total") == 2
    assert sample(metrics, "workqueue_depth") == 1
    assert len(q) == 0
    clock.advance(4.0)
    q.done("a")
    await q.get()
    # Its queue time runs from the add, including the wait for the first processing to end.
    assert sample(metrics, "workqueue_queue_duration_seconds_sum") == 4.0


async def test_metrics_unfinished_work_and_longest_processor(
    clock: FakeClock, metrics: Metrics
) -> None:
    q: WorkQueue[str] = WorkQueue(name=NAME, clock=clock, metrics=metrics)
    assert sample(metrics, "workqueue_unfinished_work_seconds") == 0
    assert sample(metrics, "workqueue_longest_running_processor_seconds") == 0
    q.add("a")
    q.add("b")
    await q.get()
    clock.advance(1.0)
    await q.get()
    clock.advance(2.0)
    assert sample(metrics, "workqueue_unfinished_work_seconds") == 3.0 + 2.0
    assert sample(metrics, "workqueue_longest_running_processor_seconds") == 3.0
    q.done("a")
    assert sample(metrics, "workqueue_unfinished_work_seconds") == 2.0
    assert sample(metrics, "workqueue_longest_running_processor_seconds") == 2.0
    clock.advance(10.0)
    assert sample(metrics, "workqueue_longest_running_processor_seconds") == 12.0
    q.done("b")
    assert sample(metrics, "workqueue_unfinished_work_seconds") == 0
    assert sample(metrics, "workqueue_longest_running_processor_seconds") == 0


async def test_metrics_are_optional(clock: FakeClock) -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue(
        name=NAME, clock=clock, rate_limiter=ItemExponentialFailureRateLimiter()
    )
    q.add("a")
    await q.get()
    q.done("a")
    q.add_rate_limited("a")
    assert q.delayed == 1


# --- DelayingQueue


async def test_add_after_released_exactly_at_the_deadline(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    start = clock.monotonic()
    q.add_after("a", 5.0)
    assert len(q) == 0 and q.delayed == 1
    async with running(q):
        await eventually(lambda: clock.next_deadline() == start + 5.0)
        clock.advance(4.999)
        await settle()
        assert len(q) == 0, "released before its deadline"
        assert clock.next_deadline() == start + 5.0
        clock.set(start + 5.0)
        assert await get_soon(q) == "a"
        assert q.delayed == 0


async def test_add_after_without_delay_adds_at_once(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    q.add_after("a", 0)
    q.add_after("b", -1.0)
    assert len(q) == 2 and q.delayed == 0


async def test_heap_keeps_the_earliest_deadline(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    start = clock.monotonic()
    async with running(q):
        q.add_after("a", 10.0)
        q.add_after("a", 20.0)  # later: does not postpone
        await eventually(lambda: clock.next_deadline() == start + 10.0)
        q.add_after("a", 5.0)  # earlier: moves it forward and wakes the loop
        await eventually(lambda: clock.next_deadline() == start + 5.0)
        assert clock.sleepers == 1
        assert q.delayed == 1
        clock.set(start + 5.0)
        assert await get_soon(q) == "a"
        q.done("a")
        # The superseded deadlines release nothing more.
        await eventually(lambda: clock.sleepers == 0)
        clock.set(start + 30.0)
        await settle()
        assert len(q) == 0 and q.delayed == 0


async def test_an_earlier_item_wakes_the_waiting_loop(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    start = clock.monotonic()
    async with running(q):
        q.add_after("late", 10.0)
        await eventually(lambda: clock.next_deadline() == start + 10.0)
        q.add_after("early", 2.0)
        await eventually(lambda: clock.next_deadline() == start + 2.0)
        clock.advance(2.0)
        assert await get_soon(q) == "early"
        await eventually(lambda: clock.next_deadline() == start + 10.0)
        assert len(q) == 0
        clock.advance(8.0)
        assert await get_soon(q) == "late"


async def test_a_wakeup_releases_only_items_that_are_due(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    start = clock.monotonic()
    q.add_after("first", 1.0)
    q.add_after("second", 1.005)
    async with running(q):
        await eventually(lambda: clock.next_deadline() == start + 1.0)
        clock.set(start + 1.0)
        assert await get_soon(q) == "first"
        await eventually(lambda: clock.next_deadline() == start + 1.005)
        assert len(q) == 0 and q.delayed == 1
        clock.set(start + 1.005)
        assert await get_soon(q) == "second"


async def test_items_are_released_in_deadline_order(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    q.add_after("c", 3.0)
    q.add_after("a", 1.0)
    q.add_after("b", 2.0)
    async with running(q):
        await eventually(lambda: clock.next_deadline() is not None)
        clock.advance(3.0)
        await eventually(lambda: len(q) == 3)
        assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_delayed_item_collapses_with_a_queued_one(clock: FakeClock, metrics: Metrics) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock, metrics=metrics)
    q.add("a")
    q.add_after("a", 1.0)
    async with running(q):
        await eventually(lambda: clock.next_deadline() is not None)
        clock.advance(1.0)
        await eventually(lambda: q.delayed == 0)
        assert len(q) == 1
        assert sample(metrics, "workqueue_adds_total") == 1


async def test_shutdown_stops_the_loop_and_discards_delayed_items(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    q.add_after("a", 1.0)
    loop_task = asyncio.create_task(q.run(), name="delay-loop")
    await eventually(lambda: clock.sleepers == 1)
    q.shut_down()
    await asyncio.wait_for(loop_task, timeout=5.0)
    assert clock.sleepers == 0
    assert q.delayed == 0
    q.add_after("b", 1.0)
    q.add_after("c", 0)
    assert q.delayed == 0 and len(q) == 0


async def test_cancelling_the_loop_leaves_no_sleeper(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    q.add_after("a", 1.0)
    loop_task = asyncio.create_task(q.run(), name="delay-loop")
    await eventually(lambda: clock.sleepers == 1)
    loop_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop_task
    assert clock.sleepers == 0
    assert q.delayed == 1  # still there for a restarted loop
    async with running(q):
        await eventually(lambda: clock.sleepers == 1)
        clock.advance(1.0)
        assert await get_soon(q) == "a"


async def test_run_twice_is_refused(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    async with running(q):
        await settle()
        with pytest.raises(RuntimeError):
            await q.run()


@settings(max_examples=25, deadline=None)
@given(
    adds=st.lists(
        st.tuples(st.sampled_from("abcde"), st.integers(min_value=1, max_value=20)),
        min_size=1,
        max_size=15,
    )
)
async def test_every_item_is_released_at_its_earliest_deadline(
    adds: list[tuple[str, int]],
) -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(name=NAME, clock=clock)
    start = clock.monotonic()
    earliest: dict[str, int] = {}
    for item, delay in adds:
        q.add_after(item, float(delay))
        earliest[item] = min(earliest.get(item, delay), delay)
    released: dict[str, int] = {}
    async with running(q):
        for tick in range(1, 21):
            await eventually(lambda: clock.next_deadline() is not None or q.delayed == 0)
            clock.set(start + tick)
            expected = {i for i, d in earliest.items() if d == tick}
            await eventually(lambda: len(q) == len(expected))  # noqa: B023
            while len(q):
                released[await q.get()] = tick
    assert released == earliest


# --- RateLimitingQueue


async def test_add_rate_limited_backs_off_and_counts_retries(
    clock: FakeClock, metrics: Metrics
) -> None:
    limiter = ItemExponentialFailureRateLimiter(base=1.0, max_delay=100.0)
    q: RateLimitingQueue[str] = RateLimitingQueue(
        name=NAME, clock=clock, rate_limiter=limiter, metrics=metrics
    )
    async with running(q):
        for expected_delay in (1.0, 2.0, 4.0):
            before = clock.monotonic()
            q.add_rate_limited("a")
            await eventually(lambda: clock.next_deadline() is not None)
            assert clock.next_deadline() == before + expected_delay
            clock.advance(expected_delay)
            assert await get_soon(q) == "a"
            q.done("a")
        assert q.num_requeues("a") == 3
        assert sample(metrics, "workqueue_retries_total") == 3
        q.forget("a")
        assert q.num_requeues("a") == 0
        q.add_rate_limited("a")
        await eventually(lambda: clock.next_deadline() == clock.monotonic() + 1.0)


async def test_add_rate_limited_after_shutdown_is_ignored(
    clock: FakeClock, metrics: Metrics
) -> None:
    limiter = ItemExponentialFailureRateLimiter()
    q: RateLimitingQueue[str] = RateLimitingQueue(
        name=NAME, clock=clock, rate_limiter=limiter, metrics=metrics
    )
    q.shut_down()
    q.add_rate_limited("a")
    assert q.delayed == 0 and len(q) == 0
    assert sample(metrics, "workqueue_retries_total") == 0
