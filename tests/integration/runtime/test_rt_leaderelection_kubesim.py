"""Two LeaderElectors on the real clock against kubesim's Lease API over HTTP.

Each candidate has its own KubeClient and its own metrics registry, as two processes would.
A Lease informer records every holder the Lease had, so hand-overs are checked from the
sequence of records (released or not) rather than from timings. Waits poll with generous
deadlines; the hand-over times are printed for information only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from rt_support import (
    USER_AGENT,
    CapturedLogs,
    LeadershipLog,
    capture_logger,
    eventually,
    running,
    sample,
)

from servicegroup.clock import RealClock
from servicegroup.informers.informer import HandlerFuncs, SharedInformer
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import LEASES
from servicegroup.kubesim.app import KubeSim
from servicegroup.leaderelection import LeaderElector, LeadershipLost
from servicegroup.metrics import Metrics

LEASE_NAME = "servicegroup-controller"
LEASE, RENEW, RETRY = 1.5, 1.0, 0.2
DEADLINE = 10.0  # generous: expected hand-overs take well under two seconds


@dataclass
class Candidate:
    who: str
    client: KubeClient
    metrics: Metrics
    elector: LeaderElector

    def gauge(self) -> float:
        return sample(self.metrics, "leader_election_master_status", name=LEASE_NAME)


class Candidates:
    """Builds candidates, each with a client and registry of its own; closes the clients."""

    def __init__(self, sim: KubeSim, namespace: str, logs: CapturedLogs) -> None:
        self.sim = sim
        self.namespace = namespace
        self.logs = logs
        self.stack = contextlib.AsyncExitStack()

    async def make(self, who: str, **options: Any) -> Candidate:
        metrics = Metrics()
        client = await self.stack.enter_async_context(
            KubeClient(
                config=ClientConfig.for_server(self.sim.url),
                metrics=metrics,
                user_agent=f"{USER_AGENT} {who}",
                request_timeout=5.0,
            )
        )
        timings = {"lease_duration": LEASE, "renew_deadline": RENEW, "retry_period": RETRY}
        elector = LeaderElector(
            client=client,
            clock=RealClock(),
            metrics=metrics,
            logger=capture_logger(self.logs).bind(candidate=who),
            namespace=self.namespace,
            name=LEASE_NAME,
            identity=who,
            rng=random.Random(who),
            **{**timings, **options},
        )
        return Candidate(who, client, metrics, elector)


@contextlib.asynccontextmanager
async def candidates(sim: KubeSim, namespace: str, logs: CapturedLogs) -> AsyncIterator[Candidates]:
    made = Candidates(sim, namespace, logs)
    async with made.stack:
        yield made


@contextlib.asynccontextmanager
async def lease_holders(
    client: KubeClient, metrics: Metrics, namespace: str, logs: CapturedLogs
) -> AsyncIterator[list[str]]:
    """Every distinct holderIdentity the Lease had, in order, seen through an informer."""
    holders: list[str] = []

    def seen(obj: dict[str, Any]) -> None:
        holder = (obj.get("spec") or {}).get("holderIdentity") or ""
        if not holders or holders[-1] != holder:
            holders.append(holder)

    informer = SharedInformer(
        client=client,
        ref=LEASES,
        clock=RealClock(),
        metrics=metrics,
        logger=capture_logger(logs),
        namespace=namespace,
        field_selector=f"metadata.name={LEASE_NAME}",
    )
    informer.add_event_handler(
        HandlerFuncs(on_add=lambda obj, _: seen(obj), on_update=lambda _, new: seen(new))
    )
    async with running(informer.run(), name="lease-informer"):
        await informer.wait_synced()
        yield holders


async def lease_spec(client: KubeClient, namespace: str) -> dict[str, Any]:
    lease = await client.get(LEASES, LEASE_NAME, namespace=namespace)
    spec: dict[str, Any] = lease["spec"]
    return spec


async def test_exactly_one_leads_and_keeps_renewing(
    rt_sim: KubeSim, rt_client: KubeClient, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    log = LeadershipLog()
    async with (
        candidates(rt_sim, rt_ns, rt_logs) as made,
        lease_holders(rt_client, metrics, rt_ns, rt_logs) as holders,
    ):
        a, b = await made.make("cand-a"), await made.make("cand-b")
        async with (
            running(a.elector.run(log.callback("cand-a")), name="elector-a"),
            running(b.elector.run(log.callback("cand-b")), name="elector-b"),
        ):
            await eventually(lambda: log.current(), timeout=DEADLINE, what="a leader")
            (leader,) = log.current()
            lead, follow = (a, b) if leader == "cand-a" else (b, a)

            renewals: set[str] = set()

            async def renewed_three_times() -> bool:
                spec = await lease_spec(rt_client, rt_ns)
                assert spec["holderIdentity"] == leader
                renewals.add(spec["renewTime"])
                return len(renewals) >= 4

            await eventually(renewed_three_times, timeout=DEADLINE, what="three renewals")
            assert log.leaders() == [leader]  # the follower never led meanwhile
            assert lead.elector.is_leader() and not follow.elector.is_leader()
            assert follow.elector.observed_leader == leader
            assert (lead.gauge(), follow.gauge()) == (1.0, 0.0)
            spec = await lease_spec(rt_client, rt_ns)
            assert spec["leaseDurationSeconds"] == math.ceil(LEASE)
            assert spec["leaseTransitions"] == 0
        # Both stopped at once: the leader released the Lease, nobody took it.
        spec = await lease_spec(rt_client, rt_ns)
        assert spec["holderIdentity"] == ""
        assert (a.gauge(), b.gauge()) == (0.0, 0.0)
        assert holders == [leader, ""]
    assert log.overlaps() == []


async def test_a_crashed_leader_is_replaced_after_the_lease_expires(
    rt_sim: KubeSim, rt_client: KubeClient, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    log = LeadershipLog()
    async with (
        candidates(rt_sim, rt_ns, rt_logs) as made,
        lease_holders(rt_client, metrics, rt_ns, rt_logs) as holders,
    ):
        # release_on_cancel=False: cancelling is a crash, the Lease is left as it was.
        a = await made.make("cand-a", release_on_cancel=False)
        b = await made.make("cand-b")
        async with running(a.elector.run(log.callback("cand-a")), name="elector-a") as a_task:
            await eventually(a.elector.is_leader, timeout=DEADLINE, what="cand-a leads")
            async with running(b.elector.run(log.callback("cand-b")), name="elector-b"):
                await eventually(
                    lambda: b.elector.observed_leader == "cand-a", what="cand-b sees cand-a"
                )
                crashed = time.monotonic()
                a_task.cancel()
                await asyncio.wait({a_task})
                assert a.gauge() == 0.0
                assert (await lease_spec(rt_client, rt_ns))["holderIdentity"] == "cand-a"

                await eventually(
                    lambda: log.current() == ["cand-b"], timeout=DEADLINE, what="take-over"
                )
                took = log.intervals[-1].start - crashed
                print(f"take-over after a crash: {took:.2f}s (lease {LEASE}s, retry {RETRY}s)")
                spec = await lease_spec(rt_client, rt_ns)
                assert spec["holderIdentity"] == "cand-b"
                assert spec["leaseTransitions"] == 1
                assert (a.gauge(), b.gauge()) == (0.0, 1.0)
                assert b.elector.is_leader()
                assert holders == ["cand-a", "cand-b"]  # taken over, never released
    assert log.leaders() == ["cand-a", "cand-b"]
    assert log.overlaps() == []


async def test_release_on_shutdown_hands_over_at_the_next_retry(
    rt_sim: KubeSim, rt_client: KubeClient, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    log = LeadershipLog()
    async with (
        candidates(rt_sim, rt_ns, rt_logs) as made,
        lease_holders(rt_client, metrics, rt_ns, rt_logs) as holders,
    ):
        a, b = await made.make("cand-a"), await made.make("cand-b")
        async with running(a.elector.run(log.callback("cand-a")), name="elector-a") as a_task:
            await eventually(a.elector.is_leader, timeout=DEADLINE, what="cand-a leads")
            async with running(b.elector.run(log.callback("cand-b")), name="elector-b"):
                await eventually(
                    lambda: b.elector.observed_leader == "cand-a", what="cand-b sees cand-a"
                )
                stopped = time.monotonic()
                a_task.cancel()
                await asyncio.wait({a_task})
                assert a.gauge() == 0.0
                await eventually(
                    lambda: log.current() == ["cand-b"], timeout=DEADLINE, what="hand-over"
                )
                took = log.intervals[-1].start - stopped
                print(f"hand-over after a release: {took:.2f}s (retry {RETRY}s)")
                # cand-b took a released Lease: it did not wait for cand-a's lease to expire.
                assert holders == ["cand-a", "", "cand-b"]
                spec = await lease_spec(rt_client, rt_ns)
                assert spec["holderIdentity"] == "cand-b"
                assert spec["leaseDurationSeconds"] == math.ceil(LEASE)
                assert (a.gauge(), b.gauge()) == (0.0, 1.0)
    assert rt_logs.events("lease released")
    assert log.overlaps() == []


async def test_a_partitioned_leader_steps_down_before_another_takes_over(
    rt_sim: KubeSim, rt_client: KubeClient, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    # A 2 s lease: the Lease advertises whole seconds (int(1.5) == 1), and a leader only gives
    # up retry_period + renew_deadline (1.2 s) after its last renewal; the advertised lease
    # must outlast that for "steps down before another takes over" to hold.
    log = LeadershipLog()
    async with candidates(rt_sim, rt_ns, rt_logs) as made:
        a = await made.make("cand-a", lease_duration=2.0)
        b = await made.make("cand-b", lease_duration=2.0)
        a_task = asyncio.create_task(a.elector.run(log.callback("cand-a")), name="elector-a")
        try:
            await eventually(a.elector.is_leader, timeout=DEADLINE, what="cand-a leads")
            async with running(b.elector.run(log.callback("cand-b")), name="elector-b"):
                await eventually(
                    lambda: b.elector.observed_leader == "cand-a", what="cand-b sees cand-a"
                )
                await a.client.close()  # every request of cand-a fails from now on
                await eventually(a_task.done, timeout=DEADLINE, what="cand-a gives up")
                with pytest.raises(LeadershipLost, match="renew deadline"):
                    a_task.result()
                assert a.gauge() == 0.0
                assert log.current() == []
                await eventually(
                    lambda: log.current() == ["cand-b"], timeout=DEADLINE, what="take-over"
                )
                assert (await lease_spec(rt_client, rt_ns))["holderIdentity"] == "cand-b"
                assert b.gauge() == 1.0
        finally:
            a_task.cancel()
            await asyncio.wait({a_task})
    assert rt_logs.events("leader election lost")
    assert log.leaders() == ["cand-a", "cand-b"]
    assert log.overlaps() == []
