"""Wiring: informers declared, handlers mapping events to keys, resync, children gauges."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from servicegroup.clock import FakeClock
from servicegroup.controller import Controller, Request, Result
from servicegroup.informers.informer import HandlerFuncs
from servicegroup.informers.store import DeletedFinalStateUnknown, Indexer, ReadOnlyStore
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.children import CHILD_TRANSFORM
from servicegroup.reconcilers.gridindex import NamespacedStores
from servicegroup.reconcilers.nodeunit import NODE_TRANSFORM
from servicegroup.reconcilers.wiring import GridController, Wiring, wire_controllers


class FakeInformer:
    def __init__(self, ref: ResourceRef, namespace: str | None, transform: Any, indexers: Any):
        self.ref = ref
        self.namespace = namespace
        self.transform = transform
        self.indexer = Indexer(indexers=indexers)
        self.store = ReadOnlyStore(self.indexer)
        self.handlers: list[HandlerFuncs] = []

    def add_event_handler(self, handler: HandlerFuncs, *, name: str | None = None) -> object:
        self.handlers.append(handler)
        return handler

    def add(self, obj: dict[str, Any]) -> None:
        obj = self.transform(obj) if self.transform else obj
        old = self.indexer.get(f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}")
        self.indexer.add(obj)
        for h in self.handlers:
            if old is None and h.on_add:
                h.on_add(obj, False)
            elif old is not None and h.on_update:
                h.on_update(old, obj)

    def delete(self, obj: dict[str, Any], *, tombstone: bool = False) -> None:
        self.indexer.delete(obj)
        for h in self.handlers:
            if h.on_delete:
                h.on_delete(DeletedFinalStateUnknown("k", obj) if tombstone else obj)


class FakeFactory:
    def __init__(self) -> None:
        self.informers: dict[tuple[str, str | None], FakeInformer] = {}

    def informer(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Any = None,
        indexers: Any = None,
    ) -> FakeInformer:
        key = (ref.key, namespace)
        if key not in self.informers:
            self.informers[key] = FakeInformer(ref, namespace, transform, indexers)
        return self.informers[key]


def wire(clock: FakeClock, metrics: Metrics, **options: Any) -> tuple[FakeFactory, Wiring]:
    factory = FakeFactory()
    wiring = wire_controllers(
        factory=factory,
        client=None,  # type: ignore[arg-type]  # nothing reconciles in these tests
        recorder=None,  # type: ignore[arg-type]
        metrics=metrics,
        clock=clock,
        logger=structlog.get_logger(),
        **options,
    )
    return factory, wiring


async def queued(wiring: Wiring) -> dict[str, list[Request]]:
    """Take everything waiting in each controller's queue."""
    result = {}
    for gc in wiring.controllers:
        queue = gc.controller.queue
        items = []
        while len(queue):
            item = await queue.get()
            queue.done(item)
            items.append(item)
        result[gc.name] = sorted(items)
    return result


def owned_by(kind: str, grid: str, name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "superedge.io/v1",
                    "kind": kind,
                    "name": grid,
                    "uid": "u1",
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 1, "updatedReplicas": 1},
    }


def test_informers_declared_per_namespace_with_transforms(
    clock: FakeClock, metrics: Metrics
) -> None:
    factory, wiring = wire(clock, metrics, namespaces=("a", "b"))
    keys = set(factory.informers)
    for resource in (
        "deploymentgrids.superedge.io",
        "statefulsetgrids.superedge.io",
        "servicegrids.superedge.io",
        "deployments.apps",
        "statefulsets.apps",
        "services",
    ):
        assert {(resource, "a"), (resource, "b")} <= keys
        assert (resource, None) not in keys
    assert ("nodes", None) in keys
    assert factory.informers[("nodes", None)].transform is NODE_TRANSFORM
    assert factory.informers[("deployments.apps", "a")].transform == CHILD_TRANSFORM
    assert [c.name for c in wiring.controllers] == [
        "deploymentgrid",
        "statefulsetgrid",
        "servicegrid",
    ]

    factory, _ = wire(clock, metrics=Metrics())
    assert ("deployments.apps", None) in factory.informers


async def test_handlers_map_events_to_grid_keys(clock: FakeClock, metrics: Metrics) -> None:
    factory, wiring = wire(clock, metrics)
    dg = factory.informers[("deploymentgrids.superedge.io", None)]
    deployments = factory.informers[("deployments.apps", None)]
    nodes = factory.informers[("nodes", None)]

    dg.add(
        {
            "kind": "DeploymentGrid",
            "metadata": {"name": "g", "namespace": "ns", "uid": "u1"},
            "spec": {"gridUniqKey": "zone"},
        }
    )
    assert (await queued(wiring))["deploymentgrid"] == [Request("ns", "g")]

    # A child -> its controlling grid of the right kind only.
    deployments.add(owned_by("DeploymentGrid", "g", "g-z1"))
    deployments.add(owned_by("StatefulSetGrid", "s", "s-z1"))
    assert (await queued(wiring)) == {
        "deploymentgrid": [Request("ns", "g")],
        "statefulsetgrid": [],
        "servicegrid": [],
    }

    # Nodes: the first node of a unit enqueues the grids using the key; the second does not.
    nodes.add({"metadata": {"name": "n1", "labels": {"zone": "z1"}}})
    assert (await queued(wiring))["deploymentgrid"] == [Request("ns", "g")]
    nodes.add({"metadata": {"name": "n2", "labels": {"zone": "z1"}}})
    assert (await queued(wiring))["deploymentgrid"] == []
    assert wiring.discovery.units("zone") == frozenset({"z1"})

    # A foreign object on a name a grid waits for: its deletion wakes that grid.
    wiring.deployment_grids.waiters.wait("ns/g-z2", Request("ns", "g"))
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "g-z2", "namespace": "ns"},
    }
    deployments.add(foreign)
    await queued(wiring)
    deployments.delete(foreign, tombstone=True)
    assert (await queued(wiring))["deploymentgrid"] == [Request("ns", "g")]

    # Removing the controller reference: the old owner is told.
    orphan = owned_by("DeploymentGrid", "g", "g-z1")
    orphan["metadata"]["ownerReferences"] = []
    deployments.add(orphan)
    assert (await queued(wiring))["deploymentgrid"] == [Request("ns", "g")]


async def test_resync_enqueues_every_grid(clock: FakeClock, metrics: Metrics) -> None:
    factory, wiring = wire(clock, metrics)
    for resource, kind in (
        ("deploymentgrids.superedge.io", "DeploymentGrid"),
        ("servicegrids.superedge.io", "ServiceGrid"),
    ):
        factory.informers[(resource, None)].add(
            {"kind": kind, "metadata": {"name": "g", "namespace": "ns"}, "spec": {}}
        )
    await queued(wiring)
    assert wiring.resync() == 2
    assert (await queued(wiring)) == {
        "deploymentgrid": [Request("ns", "g")],
        "statefulsetgrid": [],
        "servicegrid": [Request("ns", "g")],
    }


def test_children_gauges(clock: FakeClock, metrics: Metrics) -> None:
    factory, _ = wire(clock, metrics)
    deployments = factory.informers[("deployments.apps", None)]

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"kind": "DeploymentGrid"})

    ready = owned_by("DeploymentGrid", "g", "a")
    not_ready = owned_by("DeploymentGrid", "g", "b")
    not_ready["status"] = {}
    deployments.add(ready)
    deployments.add(not_ready)
    deployments.add(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "x", "namespace": "ns"},
        }
    )
    assert sample("servicegroup_grid_children") == 2
    assert sample("servicegroup_grid_children_ready") == 1
    deployments.add(owned_by("DeploymentGrid", "g", "b"))
    assert sample("servicegroup_grid_children_ready") == 2
    deployments.delete(CHILD_TRANSFORM(ready))
    assert sample("servicegroup_grid_children") == 1
    assert sample("servicegroup_grid_children_ready") == 1


async def test_child_of_another_grid_incarnation_is_not_mapped(
    clock: FakeClock, metrics: Metrics
) -> None:
    factory, wiring = wire(clock, metrics)
    dg = factory.informers[("deploymentgrids.superedge.io", None)]
    deployments = factory.informers[("deployments.apps", None)]
    dg.add(
        {
            "kind": "DeploymentGrid",
            "metadata": {"name": "g", "namespace": "ns", "uid": "new-uid"},
            "spec": {"gridUniqKey": "zone"},
        }
    )
    await queued(wiring)
    deployments.add(owned_by("DeploymentGrid", "g", "g-z1"))  # owned by uid u1
    assert (await queued(wiring))["deploymentgrid"] == []


class Recording:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def reconcile(self, request: Request, *, log: Any) -> Result:
        self.requests.append(request)
        return Result()


async def test_periodic_resync_runs_on_the_clock(clock: FakeClock, metrics: Metrics) -> None:
    grids = Indexer()
    grids.add({"metadata": {"name": "g", "namespace": "ns"}})
    reconciler = Recording()
    controller = Controller(
        name="deploymentgrid",
        reconciler=reconciler,
        workers=1,
        metrics=metrics,
        clock=clock,
        logger=structlog.get_logger(),
    )
    grid_controller = GridController(
        controller=controller,
        grids=NamespacedStores({None: ReadOnlyStore(grids)}),
        clock=clock,
        sync_period=600.0,
    )
    task = asyncio.create_task(grid_controller.run(), name="grid-controller")
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert reconciler.requests == []
        clock.advance(600.0)
        for _ in range(50):
            if reconciler.requests:
                break
            await asyncio.sleep(0)
        assert reconciler.requests == [Request("ns", "g")]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
