"""The hub reconciler against a fake API server: copies, conflicts, removals, merged status."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from fed_fakes import FakeCluster, FakeStores, Recorder, TwoStores

from servicegroup.clock import FakeClock
from servicegroup.controller import Result
from servicegroup.kube.errors import ApiError, TransportError
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.federation_hub import ClusterNamespaces, HubReconciler
from servicegroup.reconcilers.federation_metrics import FederationMetrics
from servicegroup.reconcilers.federation_render import (
    FED_KINDS,
    FINALIZER,
    ORIGIN_INDEX,
    fed_request,
    index_by_origin,
    is_copy,
    is_original,
)

DG = FED_KINDS[0]
LOG = structlog.get_logger()


def namespace(name: str, cluster_id: str | None = "id", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {}}
    if cluster_id is not None:
        meta["labels"]["clusters.clusternet.io/cluster-id"] = cluster_id
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


class Hub:
    def __init__(self, metrics: Metrics, clock: FakeClock) -> None:
        self.api = FakeCluster("hub")
        self.fed_metrics = FederationMetrics(metrics)
        self.metrics = metrics
        self.changes = 0
        self.clusters = ClusterNamespaces(metrics=self.fed_metrics, changed=self._changed)
        self.stores = TwoStores(
            FakeStores(self.api, keep=is_original),
            FakeStores(self.api, keep=is_copy, indexers={ORIGIN_INDEX: index_by_origin}),
        )
        self.recorder = Recorder()
        self.clock = clock
        self.reconciler = HubReconciler(
            stores=self.stores,
            clusters=self.clusters,
            client=self.api,
            recorder=self.recorder,
            clock=clock,
            metrics=self.fed_metrics,
            retry_rejected_after=60.0,
        )

    def _changed(self) -> None:
        self.changes += 1

    def original(self, **extra_labels: str) -> dict[str, Any]:
        return self.api.put(
            {
                "apiVersion": "superedge.io/v1",
                "kind": "DeploymentGrid",
                "metadata": {
                    "name": "demo",
                    "namespace": "default",
                    "labels": {"superedge.io/fed": "yes", **extra_labels},
                },
                "spec": {"gridUniqKey": "zone", "template": {"replicas": 1}},
            }
        )

    def copy(self, cluster: str) -> dict[str, Any] | None:
        return self.api.get_obj("DeploymentGrid", cluster, "demo")

    async def reconcile(self, *, sync: bool = True) -> Result:
        if sync:
            self.stores.sync()
        return await self.reconciler.reconcile(fed_request("default", DG, "demo"), log=LOG)

    def sample(self, name: str, labels: dict[str, str]) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def hub(metrics: Metrics, clock: FakeClock) -> Hub:
    hub = Hub(metrics, clock)
    hub.clusters.upsert(namespace("clusternet-a"))
    hub.clusters.upsert(namespace("clusternet-b"))
    return hub


def test_cluster_namespaces_follow_labels(metrics: Metrics) -> None:
    hub = Hub(metrics, FakeClock())
    hub.clusters.upsert(namespace("c1"))
    hub.clusters.upsert(namespace("plain", cluster_id=None))
    assert hub.clusters.names() == {"c1"}
    assert hub.changes == 1
    hub.clusters.upsert(namespace("c1"))  # unchanged: no event
    assert hub.changes == 1
    hub.clusters.upsert(namespace("plain", cluster_id="x"))  # a label added later
    hub.clusters.upsert(namespace("c1", deleting=True))  # terminating
    assert hub.clusters.names() == {"plain"}
    hub.clusters.remove(namespace("plain"))
    assert hub.clusters.names() == frozenset()
    assert hub.changes == 4
    assert metrics.registry.get_sample_value("servicegroup_federation_clusters") == 0


async def test_copies_everywhere_then_no_writes(hub: Hub) -> None:
    hub.original()
    assert await hub.reconcile() == Result()
    for cluster in ("clusternet-a", "clusternet-b"):
        made = hub.copy(cluster)
        assert made is not None
        assert made["metadata"]["labels"]["superedge.io/target-namespace"] == "default"
    assert sorted(hub.recorder.reasons()) == ["CopyCreated", "CopyCreated"]
    # The status names both clusters (waiting for their members).
    status = hub.api.get_obj("DeploymentGrid", "default", "demo")["status"]  # type: ignore[index]
    assert [c["reason"] for c in status["conditions"]] == ["WaitingForMember", "WaitingForMember"]
    status_patch = hub.api.writes_of("patch")[-1]
    assert status_patch.subresource == "status"
    assert status_patch.body["metadata"]["resourceVersion"]

    writes = len(hub.api.writes)
    await hub.reconcile()
    assert len(hub.api.writes) == writes  # settled: nothing to write
    assert (
        hub.sample(
            "servicegroup_federation_writes_total",
            {"side": "hub", "kind": "DeploymentGrid", "operation": "apply"},
        )
        == 2
    )


async def test_our_writes_are_remembered_until_the_cache_shows_them(hub: Hub) -> None:
    hub.original()
    hub.stores.sync()
    await hub.reconcile(sync=False)
    applies = len(hub.api.writes_of("apply"))
    await hub.reconcile(sync=False)  # the cache has not caught up: no second apply
    assert len(hub.api.writes_of("apply")) == applies


async def test_hand_edited_copy_is_reverted(hub: Hub) -> None:
    hub.original()
    await hub.reconcile()
    edited = hub.copy("clusternet-a")
    assert edited is not None
    edited["spec"]["template"]["replicas"] = 4
    hub.api.put(edited)
    await hub.reconcile()
    assert hub.copy("clusternet-a")["spec"]["template"]["replicas"] == 1  # type: ignore[index]
    assert "CopyUpdated" in hub.recorder.reasons()


async def test_name_taken_by_something_else(hub: Hub) -> None:
    hub.original()
    hub.api.put(
        {
            "kind": "DeploymentGrid",
            "metadata": {"name": "demo", "namespace": "clusternet-a"},
            "spec": {"gridUniqKey": "other"},
        }
    )
    await hub.reconcile()
    foreign = hub.copy("clusternet-a")
    assert foreign is not None and foreign["spec"]["gridUniqKey"] == "other"  # untouched
    assert ("apply", "clusternet-a") not in [(w.verb, w.namespace) for w in hub.api.writes]
    assert "CopyConflict" in hub.recorder.reasons()
    status = hub.api.get_obj("DeploymentGrid", "default", "demo")["status"]  # type: ignore[index]
    conflict = next(c for c in status["conditions"] if c["type"].endswith("clusternet-a"))
    assert (conflict["status"], conflict["reason"]) == ("False", "CopyConflict")
    assert (
        hub.sample(
            "servicegroup_federation_failures_total", {"side": "hub", "reason": "CopyConflict"}
        )
        >= 1
    )


async def test_rejected_copy_is_not_retried_until_later(hub: Hub, clock: FakeClock) -> None:
    hub.original()
    hub.api.fail("apply", ApiError(422, "Invalid", "bad copy"))
    result = await hub.reconcile()
    assert result.requeue_after == 60.0
    assert "CopyRejected" in hub.recorder.reasons()
    assert hub.copy("clusternet-a") is None
    applies = len(hub.api.writes_of("apply"))
    await hub.reconcile()
    assert len(hub.api.writes_of("apply")) == applies  # remembered: no retry yet
    clock.advance(61)
    await hub.reconcile()
    assert hub.copy("clusternet-a") is not None


async def test_transient_failure_of_one_cluster_does_not_block_the_other(hub: Hub) -> None:
    hub.original()
    hub.api.fail("apply", TransportError("connection refused"))
    with pytest.raises(TransportError):
        await hub.reconcile()
    assert hub.copy("clusternet-b") is not None
    assert hub.copy("clusternet-a") is None


async def test_namespace_losing_its_label_loses_its_copy(hub: Hub) -> None:
    hub.original()
    await hub.reconcile()
    hub.clusters.upsert(namespace("clusternet-b", cluster_id=None))
    await hub.reconcile()
    assert hub.copy("clusternet-b") is None
    assert "CopyDeleted" in hub.recorder.reasons()
    status = hub.api.get_obj("DeploymentGrid", "default", "demo")["status"]  # type: ignore[index]
    assert [c["type"] for c in status["conditions"]] == ["federation.superedge.io/clusternet-a"]


async def test_copy_held_by_a_member_is_released_outside_cluster_namespaces(hub: Hub) -> None:
    hub.original()
    await hub.reconcile()
    held = hub.copy("clusternet-b")
    assert held is not None
    held["metadata"]["finalizers"] = [FINALIZER, "dis"]
    hub.api.put(held)
    hub.clusters.upsert(namespace("clusternet-b", cluster_id=None))
    await hub.reconcile()  # deleted: held by the finalizer
    assert hub.copy("clusternet-b")["metadata"]["deletionTimestamp"]  # type: ignore[index]
    await hub.reconcile()  # no member will release it: the hub does
    assert hub.copy("clusternet-b") is None
    assert "CopyReleased" in hub.recorder.reasons()


async def test_copies_go_with_their_original(hub: Hub) -> None:
    hub.original()
    await hub.reconcile()
    hub.api.objects.pop(("DeploymentGrid", "default", "demo"))
    await hub.reconcile()
    assert hub.copy("clusternet-a") is None and hub.copy("clusternet-b") is None


async def test_label_removed_from_the_original(hub: Hub) -> None:
    grid = hub.original()
    await hub.reconcile()
    grid = hub.api.get_obj("DeploymentGrid", "default", "demo")
    assert grid is not None
    del grid["metadata"]["labels"]["superedge.io/fed"]
    hub.api.put(grid)
    await hub.reconcile()
    assert hub.copy("clusternet-a") is None and hub.copy("clusternet-b") is None


async def test_merged_states_from_member_reports(hub: Hub) -> None:
    hub.original()
    await hub.reconcile()
    for cluster, replicas in (("clusternet-a", 2), ("clusternet-b", 3)):
        reported = hub.copy(cluster)
        assert reported is not None
        reported["status"] = {
            "observedGeneration": reported["metadata"]["generation"],
            "states": {"zone1": {"replicas": replicas}},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllUnitsReady",
                    "message": "1/1 NodeUnits ready",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
        hub.api.put(reported)
    await hub.reconcile()
    status = hub.api.get_obj("DeploymentGrid", "default", "demo")["status"]  # type: ignore[index]
    assert status["states"] == {
        "clusternet-a/zone1": {"replicas": 2},
        "clusternet-b/zone1": {"replicas": 3},
    }
    assert [c["status"] for c in status["conditions"]] == ["True", "True"]


async def test_status_conflict_requeues(hub: Hub) -> None:
    hub.original()
    hub.stores.sync()
    # The grid changes between the cache and the write: the precondition refuses it.
    grid = hub.api.get_obj("DeploymentGrid", "default", "demo")
    hub.api.put(grid)  # type: ignore[arg-type]
    assert await hub.reconcile(sync=False) == Result(requeue=True)
