"""Scenario 8: the wrapper and the DNS helper under the same upstream faults as the controller
(watches closed and history expired, 10% of requests failing with latency spikes, the API
server unreachable), one of each per NodeUnit, while replicas change and nodes move between
units. After each fault phase, within the deadline: every wrapper serves exactly its unit's
endpoints (listed from it, and as a kube-proxy-like watch on it sees them), every hosts file
maps exactly its unit's Ready pods, and the grids invariant holds - judged both against the
API server's own store and against what a direct watch of the API server shows."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from rel_invariants import (
    DnsProbe,
    Expectations,
    InformerView,
    SimView,
    WrapperProbe,
    converge,
)
from rel_support import (
    NS,
    SCALE,
    RelEnv,
    ScenarioRecord,
    deployment_spec,
    direct_watch,
    grid,
    latency_spikes,
    running_dns,
    running_wrapper,
    service_spec,
    statefulset_spec,
    watch_chaos,
)

AGENT_NODES = {"z-a": "rel-n1", "z-b": "rel-n3", "z-c": "rel-n5"}
ZONES = ("z-a", "z-b", "z-c", "z-d")


def plain_service() -> dict[str, Any]:
    """A Service without topologyKeys: every wrapper passes its endpoints through."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo-all", "namespace": NS},
        "spec": service_spec("echo"),
    }


def churn_step(env: RelEnv, rng: random.Random, ops: Counter[str]) -> None:
    choice = rng.random()
    if choice < 0.4:
        node = rng.choice(sorted(env.node_labels()))
        env.workloads.nodes.relabel_node(node, {"zone": rng.choice(ZONES)})
        ops["node moved to another unit"] += 1
    elif choice < 0.7:
        replicas = rng.choice((1, 2, 3))
        env.api.patch(
            "statefulsetgrids", "db", {"spec": {"template": {"replicas": replicas}}}, namespace=NS
        )
        ops["StatefulSetGrid scaled"] += 1
    else:
        replicas = rng.choice((1, 2))
        env.api.patch(
            "deploymentgrids", "web", {"spec": {"template": {"replicas": replicas}}}, namespace=NS
        )
        ops["DeploymentGrid scaled"] += 1


async def churn(env: RelEnv, rng: random.Random, ops: Counter[str], *, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        churn_step(env, rng, ops)
        await asyncio.sleep(0.3 * (0.5 + rng.random()))


@pytest.mark.timeout(400)
async def test_rel_wrapper_and_dns_under_upstream_faults(
    rel_env: RelEnv, rel_record: ScenarioRecord
) -> None:
    env = rel_env
    rng = random.Random(88)
    ops: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    await env.start_controller()
    env.api.create("servicegrids", grid("servicegrids", "echo", "zone", service_spec("echo")))
    db = statefulset_spec("echo", service="echo-svc", replicas=2)
    env.api.create("statefulsetgrids", grid("statefulsetgrids", "db", "zone", db))
    web = deployment_spec("echo", replicas=1)
    env.api.create("deploymentgrids", grid("deploymentgrids", "web", "zone", web))
    env.api.create("services", plain_service())

    truth = SimView(env.sim)
    grids = {("servicegrids", NS, "echo"), ("statefulsetgrids", NS, "db")}
    grids.add(("deploymentgrids", NS, "web"))

    async with direct_watch(env.sim.url) as direct:
        seen = InformerView(direct.informers)
        wrappers = [
            await env.stack.enter_async_context(running_wrapper(env, n))
            for n in AGENT_NODES.values()
        ]
        dns = [
            await env.stack.enter_async_context(running_dns(env, n)) for n in AGENT_NODES.values()
        ]
        exp = Expectations(
            grids=grids,
            wrappers=[WrapperProbe(w.node, w.url, w.watch) for w in wrappers],
            dns=[DnsProbe(d.node, d.path) for d in dns],
        )

        async def judged(phase: str) -> None:
            """The invariant against the store and against the direct watch."""
            result = await converge(
                truth, exp, deadline=SCALE.converge_deadline, settled=env.settled
            )
            assert result.verdict.lost == 0, phase
            watched = await converge(seen, exp, deadline=SCALE.converge_deadline, truth=truth)
            rel_record.invariant_checks += result.verdict.checks + watched.verdict.checks
            rel_record.invariant_passes += 2
            rel_record.reconverge_seconds.append(max(result.seconds, watched.seconds))
            rel_record.notes.append(f"{phase}: re-converged in {result.seconds:.1f} s")

        await judged("start")

        # Phase 1: watches closed every period, history expired every other time.
        chaos = env.spawn(
            watch_chaos(env.sim, period=SCALE.watch_fault_period, counts=faults),
            name="watch-chaos",
        )
        await churn(env, rng, ops, seconds=SCALE.churn_seconds)
        await env.cancel(chaos)
        env.sim.store.expire_history()
        faults["watch streams closed"] += env.sim.store.close_all_watches()
        await judged("watch faults")

        # Phase 2: 10% of requests fail (reads too: the agents only read), latency spikes.
        env.sim.faults.fail(code=500, fraction=0.05)
        env.sim.faults.fail(code=429, fraction=0.05, retry_after=1)
        faults["request fault rules (500/429, 10%)"] += 2
        spikes = env.spawn(
            latency_spikes(env.sim, seconds=1.5, every=2.0, counts=faults), name="spikes"
        )
        await churn(env, rng, ops, seconds=SCALE.churn_seconds)
        await env.cancel(spikes)
        env.sim.faults.clear()
        await judged("request faults")

        # Phase 3: the API server unreachable for everyone behind the proxy.
        async with env.proxy.outage():
            await churn(env, rng, ops, seconds=SCALE.outage_seconds)
        faults[f"API server unreachable ({SCALE.outage_seconds:g} s)"] += 1
        await judged("outage")

    assert all(c.alive() for c in env.controllers)
    rel_record.add_faults(faults.items())
    rel_record.churn = dict(sorted(ops.items()))
    rel_record.write()
