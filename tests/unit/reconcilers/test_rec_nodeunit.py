"""NodeUnit discovery: node events enqueue exactly the grids whose key's unit set changed."""

from __future__ import annotations

from typing import Any

import structlog

from servicegroup.controller import Request
from servicegroup.informers.store import DeletedFinalStateUnknown, Indexer, ReadOnlyStore
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.gridindex import (
    GRID_UNIQ_KEY_INDEX,
    NamespacedStores,
    index_by_grid_uniq_key,
)
from servicegroup.reconcilers.nodeunit import GridTarget, NodeUnitDiscovery, labels_only


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels, "resourceVersion": "1"}}


def grid(name: str, key: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "kind": "DeploymentGrid",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gridUniqKey": key},
    }


class World:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.discovery = NodeUnitDiscovery(metrics=metrics, logger=structlog.get_logger())
        self.grids = Indexer(indexers={GRID_UNIQ_KEY_INDEX: index_by_grid_uniq_key})
        self.enqueued: list[Request] = []
        self.discovery.add_target(
            GridTarget(
                "DeploymentGrid",
                NamespacedStores({None: ReadOnlyStore(self.grids)}),
                self.enqueued.append,
            )
        )

    def add_grid(self, obj: dict[str, Any]) -> None:
        self.grids.add(obj)
        meta = obj["metadata"]
        self.discovery.grid_seen(
            holder=f"DeploymentGrid/{meta['namespace']}/{meta['name']}",
            key=obj["spec"]["gridUniqKey"],
        )

    def take(self) -> list[Request]:
        taken, self.enqueued[:] = sorted(self.enqueued), []
        return taken

    def gauge(self, key: str) -> float | None:
        return self.metrics.registry.get_sample_value("servicegroup_nodeunits", {"key": key})


def test_only_grids_of_a_key_whose_unit_set_changed_are_enqueued(metrics: Metrics) -> None:
    world = World(metrics)
    world.add_grid(grid("a", "zone"))
    world.add_grid(grid("b", "zone"))
    world.add_grid(grid("c", "region"))
    d = world.discovery

    d.node_changed(node("n1", zone="z1", region="r1"))
    assert world.take() == [
        Request("default", "a"),
        Request("default", "b"),
        Request("default", "c"),
    ]

    # Another node in the same units: no unit set changed.
    d.node_changed(node("n2", zone="z1", region="r1"))
    assert world.take() == []

    # n2 moves to a new zone: only zone's grids.
    d.node_changed(node("n2", zone="z2", region="r1"))
    assert world.take() == [Request("default", "a"), Request("default", "b")]

    # A label no grid uses.
    d.node_changed(node("n2", zone="z2", region="r1", disk="ssd"))
    assert world.take() == []

    # Readiness or other fields are not labels: a relabel to the same values does nothing.
    d.node_changed(node("n2", zone="z2", region="r1", disk="ssd"))
    assert world.take() == []

    # The last node of z2 goes away (deleted, seen as a tombstone after a relist).
    d.node_deleted(DeletedFinalStateUnknown("n2", node("n2", zone="z2", region="r1")))
    assert world.take() == [Request("default", "a"), Request("default", "b")]
    assert d.units("zone") == frozenset({"z1"})

    # Empty values define no unit.
    d.node_changed(node("n3", zone=""))
    assert world.take() == []
    assert d.units("zone") == frozenset({"z1"})


def test_gauge_per_tracked_key(metrics: Metrics) -> None:
    world = World(metrics)
    d = world.discovery
    d.node_changed(node("n1", zone="z1"))
    d.node_changed(node("n2", zone="z2"))
    assert world.gauge("zone") is None  # not tracked yet

    world.add_grid(grid("a", "zone"))
    assert world.gauge("zone") == 2  # answered at once, no rescan
    d.node_deleted(node("n2"))
    assert world.gauge("zone") == 1

    assert world.take() == [Request("default", "a")]
    d.grid_gone(holder="DeploymentGrid/default/a")
    assert world.gauge("zone") is None
    d.node_changed(node("n4", zone="z4"))
    assert world.take() == []


def test_grid_changing_its_key_moves_tracking(metrics: Metrics) -> None:
    world = World(metrics)
    d = world.discovery
    world.add_grid(grid("a", "zone"))
    world.grids.update(grid("a", "region"))
    d.grid_seen(holder="DeploymentGrid/default/a", key="region")
    assert world.gauge("zone") is None
    assert world.gauge("region") == 0
    d.node_changed(node("n1", region="r1"))
    assert world.take() == [Request("default", "a")]


def test_node_transform_keeps_labels_only() -> None:
    full = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "n1",
            "uid": "u",
            "resourceVersion": "5",
            "labels": {"zone": "z"},
            "annotations": {"big": "x" * 1000},
            "managedFields": [{}],
        },
        "spec": {"podCIDR": "10.0.0.0/24"},
        "status": {"conditions": []},
    }
    assert labels_only(full) == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "uid": "u", "resourceVersion": "5", "labels": {"zone": "z"}},
    }
