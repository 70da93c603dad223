"""SharedInformer and InformerFactory against kubesim over HTTP with the real KubeClient.

The cache equals a direct list after a burst of concurrent mixed writes with watches
dropped mid-burst; a relist after expired history hands tombstones to handlers; handlers
see store-then-notify; the factory shares informers and waits through list errors.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from rt_support import (
    CapturedLogs,
    RecordingHandler,
    capture_logger,
    cm,
    eventually,
    running,
    sample,
)

from servicegroup.clock import RealClock
from servicegroup.informers.factory import InformerFactory
from servicegroup.informers.informer import SharedInformer
from servicegroup.informers.transforms import strip_managed_fields
from servicegroup.kube.client import KubeClient
from servicegroup.kube.errors import ApiError, is_not_found
from servicegroup.kube.resources import CONFIGMAPS, PODS
from servicegroup.kubesim.app import KubeSim
from servicegroup.metrics import Metrics

WORKERS = 8
OPS_PER_WORKER = 63  # 504 writes in all


def make_factory(client: KubeClient, metrics: Metrics, logs: CapturedLogs) -> InformerFactory:
    return InformerFactory(
        client=client,
        metrics=metrics,
        clock=RealClock(),
        logger=capture_logger(logs),
        page_size=7,
        rng=random.Random(11),
    )


def content(informer: SharedInformer) -> dict[str, int]:
    return {
        f"{obj['metadata']['namespace']}/{obj['metadata']['name']}": int(
            obj["metadata"]["resourceVersion"]
        )
        for obj in informer.store.list()
    }


async def direct(client: KubeClient, namespace: str, **selectors: Any) -> dict[str, int]:
    listed = await client.list(CONFIGMAPS, namespace=namespace, **selectors)
    return {
        f"{namespace}/{item['metadata']['name']}": int(item["metadata"]["resourceVersion"])
        for item in listed["items"]
    }


def relists(metrics: Metrics, resource: str = "configmaps") -> float:
    return sample(metrics, "servicegroup_informer_relists_total", resource=resource)


async def mixed_writes(
    client: KubeClient, sim: KubeSim, namespace: str, worker: int, *, seed: int
) -> int:
    """One worker's share of the burst, on names only it touches (so no write races)."""
    rng = random.Random(seed)
    live: set[str] = set()
    writes = 0
    for op in range(OPS_PER_WORKER):
        if worker == 0 and op in (20, 40):
            sim.store.close_all_watches()
        name = f"w{worker}-{rng.randrange(12)}"
        tier = rng.choice("ab")
        choice = rng.random()
        if name not in live:
            body = cm(name, namespace, labels={"tier": tier}, n=str(op))
            if choice < 0.5:
                await client.create(CONFIGMAPS, body)
            else:
                await client.apply(CONFIGMAPS, body, field_manager=f"worker-{worker}")
            live.add(name)
        elif choice < 0.35:
            await client.patch(
                CONFIGMAPS, name, {"data": {"n": str(op)}}, patch_type="merge", namespace=namespace
            )
        elif choice < 0.55:
            ops = [{"op": "add", "path": "/metadata/labels/tier", "value": tier}]
            await client.patch(CONFIGMAPS, name, ops, patch_type="json", namespace=namespace)
        elif choice < 0.7:
            await client.patch(
                CONFIGMAPS,
                name,
                {"data": {"blob": orjson.dumps(list(range(op))).decode()}},
                patch_type="strategic",
                namespace=namespace,
            )
        else:
            await client.delete(CONFIGMAPS, name, namespace=namespace)
            live.discard(name)
        writes += 1
    return writes


async def test_cache_equals_a_direct_list_after_a_burst_of_500_mixed_writes(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    for i in range(20):
        await rt_client.create(CONFIGMAPS, cm(f"pre{i}", rt_ns, labels={"tier": "a"}))
    factory = make_factory(rt_client, metrics, rt_logs)
    everything = factory.informer(CONFIGMAPS, namespace=rt_ns, transform=strip_managed_fields)
    tier_a = factory.informer(CONFIGMAPS, namespace=rt_ns, label_selector="tier=a")
    handlers = {"all": RecordingHandler(store=everything.store), "a": RecordingHandler()}
    handlers["a"].store = tier_a.store
    everything.add_event_handler(handlers["all"], name="all")
    tier_a.add_event_handler(handlers["a"], name="tier-a")

    async with running(factory.run(), name="factory"):
        assert await factory.wait_for_cache_sync(timeout=10)
        assert len(everything.store) == 20
        counts = await asyncio.gather(
            *(
                mixed_writes(rt_client, rt_sim, rt_ns, worker, seed=100 + worker)
                for worker in range(WORKERS)
            )
        )
        assert sum(counts) == WORKERS * OPS_PER_WORKER >= 500
        final_rv = rt_sim.store.resource_version
        expected_all = await direct(rt_client, rt_ns)
        expected_a = await direct(rt_client, rt_ns, label_selector="tier=a")

        await eventually(
            lambda: (
                int(everything.last_sync_resource_version or 0) >= final_rv
                and int(tier_a.last_sync_resource_version or 0) >= final_rv
            ),
            timeout=15,
            what="informers caught up (events or bookmarks)",
        )
        assert content(everything) == expected_all
        assert content(tier_a) == expected_a
        assert handlers["all"].content() == expected_all
        assert handlers["a"].content() == expected_a
        cached = sample(metrics, "servicegroup_informer_cached_objects", resource="configmaps")
        assert cached == len(expected_all) + len(expected_a)
    # Stopped informers no longer count their objects.
    assert sample(metrics, "servicegroup_informer_cached_objects", resource="configmaps") == 0

    for handler in handlers.values():
        assert handler.violations == []
        for key, rvs in handler.rvs_by_key.items():
            assert rvs == sorted(set(rvs)), f"{key}: duplicated or reordered events {rvs}"
        assert not any(tombstone for _, tombstone in handler.deletes)
    assert all("managedFields" not in obj["metadata"] for obj in everything.store.list())
    assert any("managedFields" in obj["metadata"] for obj in tier_a.store.list())
    assert relists(metrics) == 2  # one initial list per informer, no relist


async def test_relist_after_expired_history_hands_tombstones_to_handlers(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    for name in ("a", "b", "c", "d"):
        await rt_client.create(CONFIGMAPS, cm(name, rt_ns, v="1"))
    factory = make_factory(rt_client, metrics, rt_logs)
    informer = factory.informer(CONFIGMAPS, namespace=rt_ns)
    handler = RecordingHandler(store=informer.store)
    informer.add_event_handler(handler, name="recorder")
    async with running(factory.run(), name="factory"):
        assert await factory.wait_for_cache_sync(timeout=10)
        assert sorted(handler.adds) == [(f"{rt_ns}/{n}", True) for n in "abcd"]
        # One event makes the current watch productive, so it is re-opened without backoff.
        await rt_client.patch(
            CONFIGMAPS, "d", {"data": {"v": "2"}}, patch_type="merge", namespace=rt_ns
        )
        await eventually(lambda: handler.updates, what="update of d")
        last_b = informer.store.get(f"{rt_ns}/b")

        # The re-watch is held up on the server while objects change and history is lost.
        rt_sim.faults.add_latency(seconds=0.5, verbs=["watch"], resources=["configmaps"])
        watches = rt_sim.requests.count(verb="watch")
        rt_sim.store.close_all_watches()
        await eventually(lambda: rt_sim.requests.count(verb="watch") > watches, what="re-watch")
        await rt_client.delete(CONFIGMAPS, "b", namespace=rt_ns)
        await rt_client.delete(CONFIGMAPS, "c", namespace=rt_ns)
        await rt_client.create(CONFIGMAPS, cm("e", rt_ns))
        await rt_client.patch(
            CONFIGMAPS, "a", {"data": {"v": "2"}}, patch_type="merge", namespace=rt_ns
        )
        rt_sim.store.expire_history()
        rt_sim.faults.clear()

        await eventually(lambda: len(handler.deletes) >= 2, what="tombstones")
        assert handler.deletes == [(f"{rt_ns}/b", True), (f"{rt_ns}/c", True)]
        assert handler.adds[-1] == (f"{rt_ns}/e", False)
        assert [key for key, _, _ in handler.updates] == [f"{rt_ns}/d", f"{rt_ns}/a"]
        assert content(informer) == await direct(rt_client, rt_ns)
        assert handler.violations == []
    assert relists(metrics) == 2
    restarts = "servicegroup_informer_watch_restarts_total"
    assert sample(metrics, restarts, resource="configmaps", reason="expired") == 1
    # A tombstone carries the last state the cache knew.
    assert handler.tombstones[0].key == f"{rt_ns}/b"
    assert handler.tombstones[0].obj is last_b


async def test_factory_shares_informers_and_waits_through_list_errors(
    rt_client: KubeClient, rt_sim: KubeSim, rt_ns: str, metrics: Metrics, rt_logs: CapturedLogs
) -> None:
    await rt_client.create(CONFIGMAPS, cm("one", rt_ns))
    await rt_client.create(
        PODS,
        {
            "metadata": {"name": "p", "namespace": rt_ns},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx"}]},
        },
    )
    rt_sim.faults.fail(code=500, verbs=["list"], resources=["pods"], count=1)
    factory = make_factory(rt_client, metrics, rt_logs)
    configmaps = factory.informer(CONFIGMAPS, namespace=rt_ns)
    assert factory.informer(CONFIGMAPS, namespace=rt_ns) is configmaps
    pods = factory.informer(PODS, namespace=rt_ns, field_selector="spec.nodeName=node-a")
    async with running(factory.run(), name="factory"):
        assert await factory.wait_for_cache_sync(timeout=10)
        assert factory.synced()
        assert [o["metadata"]["name"] for o in pods.store.list()] == ["p"]

        # A handler added late gets the cache as initial-list adds, at once.
        late = RecordingHandler(store=configmaps.store)
        registration = configmaps.add_event_handler(late, name="late")
        assert late.adds == [(f"{rt_ns}/one", True)]
        assert registration.has_synced()

        # Deleting through the API reaches the cache; a 404 afterwards is classified.
        await rt_client.delete(PODS, "p", namespace=rt_ns, grace_period_seconds=0)
        await eventually(lambda: len(pods.store) == 0, what="pod deletion")
        try:
            await rt_client.get(PODS, "p", namespace=rt_ns)
        except ApiError as err:
            assert is_not_found(err)
        else:
            raise AssertionError("the pod should be gone")
    assert relists(metrics, "pods") == 2
    assert relists(metrics, "configmaps") == 1
    assert [e["status"] for e in rt_logs.events("list failed; backing off")] == [500]
