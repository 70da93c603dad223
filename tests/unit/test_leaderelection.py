"""Leader election against an in-memory Lease store with resourceVersion semantics.

Time is a FakeClock stepped in small increments; between steps the event loop runs until
every task is blocked again. No test sleeps on the wall clock.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest
import structlog

from servicegroup.clock import FakeClock
from servicegroup.kube.resources import LEASES, ResourceRef
from servicegroup.leaderelection import (
    LeaderElectionRecord,
    LeaderElector,
    LeadershipLost,
    default_identity,
    micro_time,
)
from servicegroup.metrics import Metrics

NS, NAME = "servicegroup-system", "servicegroup-controller"
LD, RD, RP = 15.0, 10.0, 2.0
STEP = 0.25


class ApiError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or f"HTTP {status}")
        self.status = status


class LeaseStore:
    """Leases by (namespace, name); every write bumps a global resourceVersion."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0
        self.conflicts = 0
        self.interfere_next_replace = False

    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def get(self, ns: str, name: str) -> dict[str, Any]:
        if (ns, name) not in self.objects:
            raise ApiError(404, "not found")
        return copy.deepcopy(self.objects[ns, name])

    def create(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (ns, name) in self.objects:
            self.conflicts += 1
            raise ApiError(409, "already exists")
        obj = copy.deepcopy(body)
        obj["metadata"]["namespace"] = ns
        self._bump(obj)
        self.objects[ns, name] = obj
        return copy.deepcopy(obj)

    def replace(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (ns, name) not in self.objects:
            raise ApiError(404, "not found")
        if self.interfere_next_replace:
            # Another writer gets in between our read and our write.
            self.interfere_next_replace = False
            self._bump(self.objects[ns, name])
        current = self.objects[ns, name]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            self.conflicts += 1
            raise ApiError(409, "the object has been modified")
        obj = copy.deepcopy(body)
        self._bump(obj)
        self.objects[ns, name] = obj
        return copy.deepcopy(obj)

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.objects[NS, NAME]["spec"]
        return spec


class StoreClient:
    """One process's view of the store; can hang (frozen) or fail its requests."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.frozen = False
        self.frozen_at: float | None = None
        self.fail_status: int | None = None
        self.failed_at: float | None = None
        self.calls: list[tuple[str, float]] = []

    async def _gate(self, verb: str) -> None:
        now = self.store.clock.monotonic()
        self.calls.append((verb, now))
        if self.frozen:
            if self.frozen_at is None:
                self.frozen_at = now
            await asyncio.get_running_loop().create_future()  # hangs until cancelled
        if self.fail_status is not None:
            if self.failed_at is None:
                self.failed_at = now
            raise ApiError(self.fail_status, "injected failure")

    async def get(
        self, ref: ResourceRef, name: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        assert ref == LEASES and namespace
        await self._gate("get")
        return self.store.get(namespace, name)

    async def create(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        assert ref == LEASES and namespace
        await self._gate("create")
        return self.store.create(namespace, body)

    async def replace(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        assert ref == LEASES and namespace
        await self._gate("replace")
        return self.store.replace(namespace, body)


class Candidate:
    """An elector in its own task, with a callback that records when it runs."""

    def __init__(
        self,
        ident: str,
        store: LeaseStore,
        clock: FakeClock,
        leading: set[str],
        *,
        jitter_factor: float = 0.0,
        release_on_cancel: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.ident = ident
        self.client = StoreClient(store)
        self.metrics = Metrics()
        self.leading = leading
        self.started_at: float | None = None
        self.callback_cancelled = False
        self.elector = LeaderElector(
            client=self.client,
            clock=clock,
            metrics=self.metrics,
            logger=structlog.get_logger(),
            namespace=NS,
            name=NAME,
            identity=ident,
            lease_duration=LD,
            renew_deadline=RD,
            retry_period=RP,
            jitter_factor=jitter_factor,
            release_on_cancel=release_on_cancel,
            rng=rng,
        )
        self.clock = clock
        self.task: asyncio.Task[None] | None = None

    async def _callback(self) -> None:
        self.leading.add(self.ident)
        self.started_at = self.clock.monotonic()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.callback_cancelled = True
            raise
        finally:
            self.leading.discard(self.ident)

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self._callback), name=f"cand-{self.ident}")

    def status(self) -> float | None:
        return self.metrics.registry.get_sample_value(
            "leader_election_master_status", {"name": NAME}
        )

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def settle(rounds: int = 40) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def step_until(
    clock: FakeClock,
    done: Callable[[], bool],
    *,
    limit: float,
    invariant: Callable[[], None] = lambda: None,
) -> float:
    """Step the clock by STEP until `done()`; returns the clock reading when it held."""
    start = clock.monotonic()
    await settle()
    invariant()
    while not done():
        if clock.monotonic() - start > limit:
            raise AssertionError(f"condition not reached within {limit}s of clock time")
        clock.advance(STEP)
        await settle()
        invariant()
    return clock.monotonic()


@pytest.fixture
def store(clock: FakeClock) -> LeaseStore:
    return LeaseStore(clock)


def _at_most_one(leading: set[str]) -> Callable[[], None]:
    def check() -> None:
        assert len(leading) <= 1, f"two leaders at once: {leading}"

    return check


async def _pair(
    clock: FakeClock, store: LeaseStore, **kwargs: Any
) -> tuple[Candidate, Candidate, set[str]]:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading, **kwargs)
    b = Candidate("b", store, clock, leading, **kwargs)
    a.start()
    await settle()  # a creates the Lease first
    b.start()
    await step_until(clock, lambda: bool(leading), limit=1)
    return a, b, leading


async def test_exactly_one_of_two_leads(clock: FakeClock, store: LeaseStore) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    b = Candidate("b", store, clock, leading)
    a.start()
    b.start()  # both find no Lease and race to create it
    try:
        await step_until(clock, lambda: len(leading) == 1, limit=1)
        await step_until(
            clock, lambda: clock.monotonic() >= 1000 + 60, limit=61, invariant=_at_most_one(leading)
        )
        assert len(leading) == 1
        (leader,) = leading
        winner, loser = (a, b) if leader == "a" else (b, a)
        assert store.conflicts >= 1  # the loser's create was refused with 409
        assert store.spec()["holderIdentity"] == leader
        assert store.spec()["leaseDurationSeconds"] == 15
        assert store.spec()["leaseTransitions"] == 0
        assert winner.elector.is_leader() and not loser.elector.is_leader()
        assert loser.elector.observed_leader == leader
        assert (winner.status(), loser.status()) == (1.0, 0.0)
        assert loser.task is not None and not loser.task.done()  # still campaigning
    finally:
        await a.stop()
        await b.stop()


async def test_takeover_after_leader_freezes(clock: FakeClock, store: LeaseStore) -> None:
    a, b, leading = await _pair(clock, store)
    try:
        assert leading == {"a"}
        await step_until(clock, lambda: clock.monotonic() >= 1021.3, limit=30)
        a.client.frozen = True  # its next request never answers
        taken = await step_until(
            clock, lambda: "b" in leading, limit=60, invariant=_at_most_one(leading)
        )
        assert a.client.frozen_at is not None
        # The frozen leader gave up within its renew deadline, before anyone took over...
        assert a.task is not None and a.task.done()
        with pytest.raises(LeadershipLost):
            a.task.result()
        assert a.callback_cancelled
        # ...and the other took over within lease_duration + retry_period of the first
        # renewal that did not happen.
        assert taken - a.client.frozen_at <= LD + RP
        assert taken - a.client.frozen_at > LD - RP  # not before the lease could expire
        assert store.spec()["holderIdentity"] == "b"
        assert store.spec()["leaseTransitions"] == 1
        assert (a.status(), b.status()) == (0.0, 1.0)
    finally:
        await a.stop()
        await b.stop()


async def test_takeover_after_leader_dies_without_release(
    clock: FakeClock, store: LeaseStore
) -> None:
    a, b, leading = await _pair(clock, store, release_on_cancel=False)
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1010, limit=30)
        renewals = [t for verb, t in a.client.calls if verb == "replace"]
        missed = renewals[-1] + RP
        clock.set(missed - STEP)
        calls = len(a.client.calls)
        assert a.task is not None
        a.task.cancel()  # dies just before its next renewal is due
        await settle()
        assert a.task.done() and len(a.client.calls) == calls  # it wrote nothing more
        assert store.spec()["holderIdentity"] == "a"
        taken = await step_until(clock, lambda: "b" in leading, limit=40)
        assert missed + LD - RP < taken <= missed + LD + RP
        assert store.spec()["holderIdentity"] == "b"
        assert (a.status(), b.status()) == (0.0, 1.0)
    finally:
        await a.stop()
        await b.stop()


async def test_release_on_shutdown_hands_over_at_next_retry(
    clock: FakeClock, store: LeaseStore
) -> None:
    a, b, leading = await _pair(clock, store)
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1007, limit=30)
        assert a.status() == 1.0
        released_at = clock.monotonic()
        await a.stop()
        assert a.callback_cancelled
        assert store.spec()["holderIdentity"] == ""
        assert store.spec()["leaseDurationSeconds"] == 1
        assert a.status() == 0.0
        taken = await step_until(clock, lambda: "b" in leading, limit=10)
        assert taken - released_at <= RP
        assert store.spec()["holderIdentity"] == "b"
        assert store.spec()["leaseTransitions"] == 1
        assert b.status() == 1.0
    finally:
        await b.stop()
    assert store.spec()["holderIdentity"] == ""


async def test_callback_return_releases_and_returns(clock: FakeClock, store: LeaseStore) -> None:
    ran: list[str] = []

    async def short_job() -> None:
        ran.append("x")

    elector = LeaderElector(
        client=StoreClient(store),
        clock=clock,
        metrics=Metrics(),
        logger=structlog.get_logger(),
        namespace=NS,
        name=NAME,
        identity="solo",
    )
    await asyncio.wait_for(elector.run(short_job), timeout=5)
    assert ran == ["x"]
    assert store.spec()["holderIdentity"] == ""
    assert not elector.is_leader()


async def test_callback_error_propagates_after_release(clock: FakeClock, store: LeaseStore) -> None:
    async def broken() -> None:
        raise ValueError("boom")

    elector = LeaderElector(
        client=StoreClient(store),
        clock=clock,
        metrics=Metrics(),
        logger=structlog.get_logger(),
        namespace=NS,
        name=NAME,
        identity="solo",
    )
    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(elector.run(broken), timeout=5)
    assert store.spec()["holderIdentity"] == ""


async def test_renew_deadline_exceeded_loses_leadership(
    clock: FakeClock, store: LeaseStore
) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    a.start()
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1005, limit=10)
        assert leading == {"a"}
        a.client.fail_status = 500
        assert a.task is not None
        task = a.task
        lost_at = await step_until(clock, task.done, limit=30)
        with pytest.raises(LeadershipLost, match="renew deadline"):
            task.result()
        assert a.client.failed_at is not None
        assert lost_at - a.client.failed_at == pytest.approx(RD, abs=STEP)
        assert lost_at - a.client.failed_at < LD  # before anyone could take over
        retries = [t for _, t in a.client.calls if t >= a.client.failed_at]
        assert len(retries) >= RD / RP  # it kept retrying every retry_period
        assert a.callback_cancelled and not leading
        assert a.status() == 0.0
        assert not a.elector.is_leader()
    finally:
        await a.stop()


async def test_renew_deadline_bounds_hanging_requests(clock: FakeClock, store: LeaseStore) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    a.start()
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1005, limit=10)
        a.client.frozen = True
        assert a.task is not None
        task = a.task
        lost_at = await step_until(clock, task.done, limit=30)
        assert isinstance(task.exception(), LeadershipLost)
        assert a.client.frozen_at is not None
        assert lost_at - a.client.frozen_at <= RD + STEP
    finally:
        await a.stop()


async def test_conflict_on_renewal_falls_back_to_read(clock: FakeClock, store: LeaseStore) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    a.start()
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1003, limit=10)
        before = store.conflicts
        renew_time = store.spec()["renewTime"]
        store.interfere_next_replace = True
        await step_until(clock, lambda: store.spec()["renewTime"] != renew_time, limit=RP + 1)
        assert store.conflicts == before + 1
        assert a.elector.is_leader() and leading == {"a"}
        assert a.task is not None and not a.task.done()
        assert store.spec()["holderIdentity"] == "a"
        assert store.spec()["leaseTransitions"] == 0  # a renewal, not a new term
    finally:
        await a.stop()


async def test_conflict_on_takeover_retries_next_period(
    clock: FakeClock, store: LeaseStore
) -> None:
    store.objects[NS, NAME] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": NAME, "namespace": NS, "resourceVersion": "7"},
        "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 3},
    }
    store.rv = 7
    store.interfere_next_replace = True
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    start = clock.monotonic()
    a.start()
    try:
        await settle()
        assert not leading and store.conflicts == 1
        taken = await step_until(clock, lambda: bool(leading), limit=10)
        assert taken - start == RP
        assert store.spec()["holderIdentity"] == "a"
        assert store.spec()["leaseTransitions"] == 4
    finally:
        await a.stop()


async def test_other_holder_in_lease_loses_leadership_at_once(
    clock: FakeClock, store: LeaseStore
) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    a.start()
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1003, limit=10)
        lease = store.get(NS, NAME)
        lease["spec"]["holderIdentity"] = "intruder"
        store.replace(NS, lease)
        written = clock.monotonic()
        assert a.task is not None
        task = a.task
        lost_at = await step_until(clock, task.done, limit=10)
        assert lost_at - written <= RP
        with pytest.raises(LeadershipLost, match="intruder"):
            task.result()
        assert store.spec()["holderIdentity"] == "intruder"  # never released over it
    finally:
        await a.stop()


async def test_expiry_uses_local_observation_not_renew_time(
    clock: FakeClock, store: LeaseStore
) -> None:
    # A holder whose renewTime is far in the past by our wall clock (skew) still gets a
    # full lease duration from the moment we first see its record.
    store.objects[NS, NAME] = {
        "metadata": {"name": NAME, "namespace": NS, "resourceVersion": "1"},
        "spec": {
            "holderIdentity": "skewed",
            "leaseDurationSeconds": 15,
            "renewTime": "2000-01-01T00:00:00.000000Z",
            "acquireTime": "2000-01-01T00:00:00.000000Z",
            "leaseTransitions": 0,
        },
    }
    store.rv = 1
    leading: set[str] = set()
    b = Candidate("b", store, clock, leading)
    start = clock.monotonic()
    b.start()
    try:
        taken = await step_until(clock, lambda: bool(leading), limit=30)
        assert LD <= taken - start <= LD + RP
        assert b.elector.observed_leader == "b"
    finally:
        await b.stop()


async def test_acquire_retries_are_jittered(clock: FakeClock, store: LeaseStore) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    b = Candidate("b", store, clock, leading, jitter_factor=1.2, rng=random.Random(7))
    a.start()
    await settle()
    b.start()
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1060, limit=70)
        polls = [t for verb, t in b.client.calls if verb == "get"]
        gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
        assert len(gaps) >= 10
        assert all(RP - 1e-9 <= gap <= RP * 2.2 + STEP for gap in gaps)
        assert len({round(gap, 2) for gap in gaps}) > 3  # not a fixed period
    finally:
        await a.stop()
        await b.stop()


async def test_jittered_takeover_stays_bounded(clock: FakeClock, store: LeaseStore) -> None:
    a, b, leading = await _pair(clock, store, jitter_factor=1.2, rng=random.Random(3))
    try:
        await step_until(clock, lambda: clock.monotonic() >= 1013.7, limit=30)
        a.client.frozen = True
        taken = await step_until(
            clock, lambda: "b" in leading, limit=60, invariant=_at_most_one(leading)
        )
        assert a.client.frozen_at is not None
        longest_wait = RP * (1 + 1.2)
        # One jittered poll to notice the last renewal, the lease, one poll to act.
        assert taken - a.client.frozen_at <= LD + 2 * longest_wait - RP + STEP
    finally:
        await a.stop()
        await b.stop()


async def test_healthz_fails_when_renewals_stall(clock: FakeClock, store: LeaseStore) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    a.start()
    try:
        await step_until(clock, lambda: bool(leading), limit=5)
        assert a.elector.healthy()

        async def wedged(seconds: float) -> None:
            await asyncio.get_running_loop().create_future()

        # The renew loop's timer never fires again (a wedged loop), time moves on.
        clock.sleep = wedged  # type: ignore[method-assign]
        await step_until(clock, lambda: clock.monotonic() >= 1000 + RP + 0.5, limit=5)
        await settle()
        clock.advance(LD + 20 - 1)
        assert a.elector.is_leader() and a.elector.healthy()
        clock.advance(2)
        assert not a.elector.healthy()
    finally:
        await a.stop()


def test_follower_is_always_healthy(clock: FakeClock) -> None:
    elector = LeaderElector(
        client=StoreClient(LeaseStore(clock)),
        clock=clock,
        metrics=Metrics(),
        logger=structlog.get_logger(),
        namespace=NS,
        name=NAME,
        identity="x",
    )
    clock.advance(10_000)
    assert elector.healthy() and not elector.is_leader()


def test_status_series_precreated_at_zero(clock: FakeClock, metrics: Metrics) -> None:
    LeaderElector(
        client=StoreClient(LeaseStore(clock)),
        clock=clock,
        metrics=metrics,
        logger=structlog.get_logger(),
        namespace=NS,
        name="my-lease",
        identity="x",
    )
    value = metrics.registry.get_sample_value("leader_election_master_status", {"name": "my-lease"})
    assert value == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"renew_deadline": 15.0}, "shorter than lease_duration"),
        ({"retry_period": 9.0}, "1.2 x retry_period"),
        ({"lease_duration": 0.5, "renew_deadline": 0.3, "retry_period": 0.1}, "at least 1"),
        ({"identity": ""}, "identity"),
    ],
)
def test_invalid_timings_rejected(clock: FakeClock, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "client": StoreClient(LeaseStore(clock)),
        "clock": clock,
        "metrics": Metrics(),
        "logger": structlog.get_logger(),
        "namespace": NS,
        "name": NAME,
        "identity": "x",
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        LeaderElector(**args)


def test_record_round_trip_and_micro_time(clock: FakeClock) -> None:
    stamp = micro_time(clock.now())
    assert stamp == "2026-01-01T00:00:00.000000Z"
    record = LeaderElectionRecord("me", 15, stamp, stamp, 2)
    spec = record.to_spec()
    assert spec == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": 2,
    }
    assert LeaderElectionRecord.from_lease({"spec": spec}) == record
    assert LeaderElectionRecord.from_lease({}) == LeaderElectionRecord("", 0, None, None, 0)


def test_default_identity_is_unique() -> None:
    first, second = default_identity(), default_identity()
    assert first != second
    assert first.split("_")[0] == second.split("_")[0]


async def test_run_twice_at_once_is_refused(clock: FakeClock, store: LeaseStore) -> None:
    leading: set[str] = set()
    a = Candidate("a", store, clock, leading)
    a.start()
    try:
        await step_until(clock, lambda: bool(leading), limit=5)
        with pytest.raises(RuntimeError, match="already running"):
            await a.elector.run(a._callback)
    finally:
        await a.stop()
