"""The member reconciler against fake hub and member API servers."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from fed_fakes import FakeCluster, FakeLink, FakeSession, FakeStores, Recorder

from servicegroup.clock import FakeClock
from servicegroup.controller import Result
from servicegroup.grid.nodeunits import NodeUnitIndex
from servicegroup.kube.errors import ApiError, TransportError
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.federation_member import MemberReconciler, UnitKeys
from servicegroup.reconcilers.federation_metrics import FederationMetrics
from servicegroup.reconcilers.federation_render import (
    FED_KINDS,
    FINALIZER,
    ORIGIN_ANNOTATION,
    fed_request,
    is_local,
    render_copy,
)

DG = FED_KINDS[0]
HUB_NS = "clusternet-a"
LOG = structlog.get_logger()


class Member:
    def __init__(self, metrics: Metrics, clock: FakeClock) -> None:
        self.hub = FakeCluster("hub")
        self.api = FakeCluster("member")
        self.session = FakeSession(self.hub, namespace=HUB_NS, clock=clock)
        self.link = FakeLink(self.session)
        self.locals = FakeStores(self.api, keep=is_local)
        self.units = NodeUnitIndex()
        self.recorder = Recorder()
        self.reconciler = MemberReconciler(
            link=self.link,
            stores=self.locals,
            units=self.units,
            client=self.api,
            recorder=self.recorder,
            clock=clock,
            metrics=FederationMetrics(metrics),
            retry_rejected_after=60.0,
        )

    def node(self, name: str, **labels: str) -> None:
        self.units.upsert_node({"metadata": {"name": name, "labels": labels}})

    def copy(self, **spec: Any) -> dict[str, Any]:
        original = {
            "apiVersion": "superedge.io/v1",
            "kind": "DeploymentGrid",
            "metadata": {
                "name": "demo",
                "namespace": "default",
                "uid": "original-uid",
                "labels": {"superedge.io/fed": "yes"},
            },
            "spec": {"gridUniqKey": "zone", "template": {"replicas": 1}, **spec},
        }
        return self.hub.put(render_copy(original, kind=DG, namespace=HUB_NS))

    def hub_copy(self) -> dict[str, Any] | None:
        return self.hub.get_obj("DeploymentGrid", HUB_NS, "demo")

    def local(self) -> dict[str, Any] | None:
        return self.api.get_obj("DeploymentGrid", "default", "demo")

    async def reconcile(self) -> Result:
        self.session.sync()
        self.locals.sync()
        return await self.reconciler.reconcile(fed_request("default", DG, "demo"), log=LOG)


@pytest.fixture
def member(metrics: Metrics, clock: FakeClock) -> Member:
    return Member(metrics, clock)


async def test_nothing_without_a_ready_session(member: Member) -> None:
    member.copy()
    member.node("n1", zone="z1")
    member.link.session = None
    assert await member.reconcile() == Result()
    member.link.session = member.session
    member.session.ready = False
    await member.reconcile()
    assert member.api.writes == [] and member.hub.writes == []


async def test_local_grid_made_after_the_finalizer(member: Member) -> None:
    member.copy()
    member.node("n1", zone="z1")
    await member.reconcile()
    verbs = [(w.verb, w.subresource) for w in member.hub.writes]
    assert verbs[0] == ("patch", "")  # the finalizer first
    assert FINALIZER in member.hub_copy()["metadata"]["finalizers"]  # type: ignore[index]
    local = member.local()
    assert local is not None
    assert local["metadata"]["annotations"][ORIGIN_ANNOTATION] == f"{HUB_NS}/demo"
    assert "superedge.io/dis" not in local["metadata"]["labels"]
    assert member.recorder.reasons() == ["LocalGridCreated"]
    # The local grid's status (none yet) goes back to the copy once there is one.
    local["status"] = {"observedGeneration": 1, "states": {"z1": {"replicas": 1}}}
    member.api.put(local)
    await member.reconcile()
    copy_status = member.hub_copy()["status"]  # type: ignore[index]
    assert copy_status["states"] == {"z1": {"replicas": 1}}
    writes = (len(member.hub.writes), len(member.api.writes))
    await member.reconcile()
    assert (len(member.hub.writes), len(member.api.writes)) == writes  # settled


async def test_local_edits_are_reverted(member: Member) -> None:
    member.copy()
    member.node("n1", zone="z1")
    await member.reconcile()
    edited = member.local()
    assert edited is not None
    edited["spec"]["template"]["replicas"] = 9
    member.api.put(edited)
    await member.reconcile()
    assert member.local()["spec"]["template"]["replicas"] == 1  # type: ignore[index]
    assert "LocalGridUpdated" in member.recorder.reasons()


async def test_no_node_with_the_key(member: Member) -> None:
    member.copy()
    member.node("n1", other="x")
    await member.reconcile()
    assert member.local() is None
    status = member.hub_copy()["status"]  # type: ignore[index]
    assert status["conditions"][0]["reason"] == "NoNodeUnits"
    assert status["observedGeneration"] == member.hub_copy()["metadata"]["generation"]  # type: ignore[index]
    # The key appears: the local grid follows; it disappears: the local grid goes.
    member.node("n1", zone="z1")
    await member.reconcile()
    assert member.local() is not None
    member.node("n1")
    await member.reconcile()
    assert member.local() is None


async def test_deleted_copy_deletes_the_local_grid_and_is_released(member: Member) -> None:
    member.copy()
    member.node("n1", zone="z1")
    await member.reconcile()
    await member.hub.delete(DG.ref, "demo", namespace=HUB_NS)
    assert member.hub_copy()["metadata"]["deletionTimestamp"]  # type: ignore[index]
    await member.reconcile()
    assert member.local() is None
    assert member.hub_copy() is None  # released, so gone
    assert "LocalGridDeleted" in member.recorder.reasons()


async def test_orphans_we_made_are_deleted_others_are_not(member: Member) -> None:
    member.copy()
    member.node("n1", zone="z1")
    await member.reconcile()
    member.hub.objects.clear()  # the copy vanished while we were away
    await member.reconcile()
    assert member.local() is None
    # A grid labelled like a local grid but not made by us is never deleted.
    member.api.put(
        {
            "kind": "DeploymentGrid",
            "metadata": {
                "name": "demo",
                "namespace": "default",
                "labels": {"superedge.io/target-namespace": "default"},
            },
            "spec": {},
        }
    )
    await member.reconcile()
    assert member.local() is not None


async def test_name_taken_by_a_grid_we_did_not_make(member: Member) -> None:
    member.api.put({"kind": "DeploymentGrid", "metadata": {"name": "demo"}, "spec": {"x": 1}})
    member.copy()
    member.node("n1", zone="z1")
    await member.reconcile()
    assert member.local()["spec"] == {"x": 1}  # type: ignore[index]
    assert member.api.writes_of("apply") == []
    assert member.recorder.reasons() == ["LocalGridConflict"]
    condition = member.hub_copy()["status"]["conditions"][0]  # type: ignore[index]
    assert condition["reason"] == "LocalGridConflict"


async def test_rejected_local_grid(member: Member, clock: FakeClock) -> None:
    member.copy()
    member.node("n1", zone="z1")
    member.api.fail("apply", ApiError(422, "Invalid", "no"))
    result = await member.reconcile()
    assert result.requeue_after == 60.0
    assert member.recorder.reasons() == ["LocalGridRejected"]
    assert member.hub_copy()["status"]["conditions"][0]["reason"] == "LocalGridRejected"  # type: ignore[index]
    applies = len(member.api.writes_of("apply"))
    await member.reconcile()
    assert len(member.api.writes_of("apply")) == applies
    clock.advance(61)
    await member.reconcile()
    assert member.local() is not None


async def test_hub_without_answers_is_reported(member: Member) -> None:
    member.copy()
    member.node("n1", zone="z1")
    member.hub.fail("patch", TransportError("connection refused"))
    with pytest.raises(TransportError):
        await member.reconcile()
    assert len(member.session.unreachable_errors) == 1
    assert member.local() is None  # no local grid before the finalizer is on the copy


async def test_conflicting_finalizer_patch_is_retried_quietly(member: Member) -> None:
    member.copy()
    member.node("n1", zone="z1")
    member.hub.fail("patch", ApiError(409, "Conflict", "changed"))
    assert await member.reconcile() == Result(requeue=True)
    assert member.session.refused == []


def test_unit_keys_track_what_copies_use() -> None:
    index = NodeUnitIndex()
    keys = UnitKeys(index=index)
    keys.seen(DG, {"metadata": {"name": "a"}, "spec": {"gridUniqKey": "zone"}})
    assert index.upsert_node({"metadata": {"name": "n", "labels": {"zone": "z"}}}) == {"zone"}
    keys.seen(DG, {"metadata": {"name": "a"}, "spec": {"gridUniqKey": "rack"}})
    assert index.tracked() == {"rack"}
    keys.gone(DG, "a")
    assert index.tracked() == frozenset()
    keys.seen(DG, {"metadata": {"name": "b"}, "spec": {"gridUniqKey": "zone"}})
    keys.clear()
    assert index.tracked() == frozenset()
