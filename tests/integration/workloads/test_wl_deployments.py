"""The simulated Deployment and ReplicaSet controllers: rollouts, scaling, history, status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from wl_support import SimEnv, condition, deployment, pod_ready

from servicegroup.clock import FakeClock
from servicegroup.kubesim.store import DELETED, StoreEvent
from servicegroup.kubesim.workloads import WorkloadOptions
from servicegroup.kubesim.workloads.index import PODS, REPLICASETS

Obj = dict[str, Any]


def _deployment(env: SimEnv, name: str) -> Obj:
    found = env.get("deployments.apps", name)
    assert found is not None
    return found


def _replicasets(env: SimEnv, app: str) -> list[Obj]:
    return env.client.list("replicasets.apps", namespace="default", label_selector=f"app={app}")


def _complete(env: SimEnv, name: str, replicas: int) -> Callable[[], Obj | None]:
    def check() -> Obj | None:
        d = _deployment(env, name)
        status = d.get("status") or {}
        progressing = condition(d, "Progressing")
        done = (
            status.get("observedGeneration") == d["metadata"]["generation"]
            and status.get("replicas") == replicas
            and status.get("updatedReplicas") == replicas
            and status.get("availableReplicas") == replicas
            and progressing is not None
            and progressing["reason"] == "NewReplicaSetAvailable"
        )
        return d if done else None

    return check


@contextmanager
def observe(env: SimEnv, on_event: Callable[[StoreEvent], None]) -> Iterator[None]:
    env.sim.store.add_listener(on_event)
    try:
        yield
    finally:
        env.sim.store.remove_listener(on_event)


def _new_image(env: SimEnv, name: str, image: str) -> None:
    env.client.patch(
        "deployments.apps",
        name,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
        namespace="default",
        patch_type="strategic",
    )


async def test_a_new_deployment_reports_its_rollout(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=3))
    d = await env.eventually(_complete(env, "web", 3))
    status = d["status"]
    assert status["readyReplicas"] == 3
    assert "unavailableReplicas" not in status
    available = condition(d, "Available")
    progressing = condition(d, "Progressing")
    assert available is not None
    assert progressing is not None
    assert (available["status"], available["reason"], available["message"]) == (
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )
    (rs,) = _replicasets(env, "web")
    assert (
        progressing["message"]
        == f'ReplicaSet "{rs["metadata"]["name"]}" has successfully progressed.'
    )
    assert [c["type"] for c in d["status"]["conditions"]] == ["Available", "Progressing"]
    annotations = rs["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "1"
    assert annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert annotations["deployment.kubernetes.io/max-replicas"] == "4"
    assert (
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"]
        == rs["metadata"]["labels"]["pod-template-hash"]
    )
    rs_status = rs["status"]
    assert rs_status == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
    }
    managers = {(e["manager"], e.get("subresource")) for e in d["metadata"]["managedFields"]}
    assert ("kube-controller-manager", "status") in managers


async def test_an_unavailable_deployment_says_so(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=2, node_selector={"nowhere": "x"}))

    def reported() -> Obj | None:
        d = _deployment(env, "web")
        return d if (d.get("status") or {}).get("replicas") == 2 else None

    d = await env.eventually(reported)
    assert d["status"]["unavailableReplicas"] == 2
    assert "availableReplicas" not in d["status"]
    available = condition(d, "Available")
    assert available is not None
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    progressing = condition(d, "Progressing")
    assert progressing is not None
    assert progressing["status"] == "True"
    assert progressing["reason"] in ("NewReplicaSetCreated", "ReplicaSetUpdated")


@pytest.mark.parametrize(
    ("surge", "unavailable", "max_total", "min_ready"),
    [(1, 0, 5, 4), (0, 2, 4, 2), ("50%", "25%", 6, 3)],
)
async def test_rolling_update_stays_within_surge_and_unavailability(
    env: SimEnv, surge: Any, unavailable: Any, max_total: int, min_ready: int
) -> None:
    strategy = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }
    env.create("deployments.apps", deployment("web", replicas=4, strategy=strategy))
    await env.eventually(_complete(env, "web", 4))
    (old,) = _replicasets(env, "web")
    uid = _deployment(env, "web")["metadata"]["uid"]
    totals: list[int] = []
    ready: list[int] = []

    def on_event(event: StoreEvent) -> None:
        if event.key == REPLICASETS:
            owned = [
                rs
                for rs in env.sim.store.items(REPLICASETS, "default")
                if any(r["uid"] == uid for r in rs["metadata"].get("ownerReferences") or ())
            ]
            totals.append(sum(rs["spec"]["replicas"] for rs in owned))
        elif event.key == PODS:
            ready.append(
                sum(
                    1
                    for p in env.sim.store.items(PODS, "default")
                    if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
                )
            )

    with observe(env, on_event):
        _new_image(env, "web", "registry.k8s.io/pause:3.10")
        d = await env.eventually(_complete(env, "web", 4))

    # The surge is used to the full; availability may dip to the floor, never below it.
    assert max(totals) == max_total
    assert min(ready) >= min_ready
    assert d["status"]["observedGeneration"] == 2
    replicasets = {rs["metadata"]["name"]: rs for rs in _replicasets(env, "web")}
    assert len(replicasets) == 2
    retired = replicasets[old["metadata"]["name"]]
    assert retired["spec"]["replicas"] == 0
    assert retired["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    (new,) = [rs for name, rs in replicasets.items() if name != old["metadata"]["name"]]
    assert new["spec"]["replicas"] == 4
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    # Old pods may still be terminating when the rollout is declared complete.
    pods = await env.eventually(lambda: found if len(found := env.pods("app=web")) == 4 else None)
    assert all(p["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10" for p in pods)


async def test_recreate_removes_every_old_pod_before_starting_new_ones(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=3, strategy={"type": "Recreate"}))
    await env.eventually(_complete(env, "web", 3))
    (old,) = _replicasets(env, "web")
    old_uid = old["metadata"]["uid"]
    timeline: list[str] = []

    def on_event(event: StoreEvent) -> None:
        if event.key != PODS:
            return
        owner = (event.obj["metadata"].get("ownerReferences") or [{}])[0].get("uid")
        if event.type == DELETED and owner == old_uid:
            timeline.append("old-gone")
        elif event.type == "ADDED" and owner != old_uid:
            timeline.append("new-added")

    with observe(env, on_event):
        _new_image(env, "web", "registry.k8s.io/pause:3.10")
        await env.eventually(_complete(env, "web", 3))

    assert timeline == ["old-gone"] * 3 + ["new-added"] * 3


async def test_scaling_up_and_down(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=2))
    await env.eventually(_complete(env, "web", 2))
    for replicas in (5, 1):
        env.client.patch(
            "deployments.apps", "web", {"spec": {"replicas": replicas}}, namespace="default"
        )
        d = await env.eventually(_complete(env, "web", replicas))
        assert d["status"]["readyReplicas"] == replicas
        await env.eventually(lambda r=replicas: len(env.pods("app=web")) == r)
        (rs,) = _replicasets(env, "web")
        assert rs["spec"]["replicas"] == replicas
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == str(
            replicas
        )


async def test_proportional_scaling_during_a_stuck_rollout(env: SimEnv) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    env.create("deployments.apps", deployment("web", replicas=10, strategy=strategy))
    await env.eventually(_complete(env, "web", 10))
    # The new template can never run: the rollout stalls with both ReplicaSets active.
    env.client.patch(
        "deployments.apps",
        "web",
        {"spec": {"template": {"spec": {"nodeSelector": {"nowhere": "x"}}}}},
        namespace="default",
        patch_type="strategic",
    )

    def stalled() -> list[Obj] | None:
        sets = _replicasets(env, "web")
        sizes = sorted(rs["spec"]["replicas"] for rs in sets)
        return sets if len(sets) == 2 and sizes == [5, 8] else None

    await env.eventually(stalled)
    env.client.patch("deployments.apps", "web", {"spec": {"replicas": 20}}, namespace="default")

    def rescaled() -> list[int] | None:
        sizes = sorted(rs["spec"]["replicas"] for rs in _replicasets(env, "web"))
        return sizes if sum(sizes) == 23 else None

    sizes = await env.eventually(rescaled)
    # 13 replicas split 8:5 grow to 23 (20 + surge 3) in the same proportion.
    assert sizes == [9, 14]


async def test_revision_history_limit_trims_old_replicasets(env: SimEnv) -> None:
    d = deployment("web", replicas=1)
    d["spec"]["revisionHistoryLimit"] = 1
    env.create("deployments.apps", d)
    await env.eventually(_complete(env, "web", 1))
    for tag in ("3.10", "3.11", "3.12"):
        _new_image(env, "web", f"registry.k8s.io/pause:{tag}")
        await env.eventually(_complete(env, "web", 1))
    await env.eventually(lambda: len(_replicasets(env, "web")) == 2)
    await env.workloads.settle()
    revisions = sorted(
        int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        for rs in _replicasets(env, "web")
    )
    assert revisions == [3, 4]


async def test_rolling_back_reuses_the_old_replicaset(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=2))
    await env.eventually(_complete(env, "web", 2))
    (first,) = _replicasets(env, "web")
    _new_image(env, "web", "registry.k8s.io/pause:3.10")
    await env.eventually(_complete(env, "web", 2))
    _new_image(env, "web", "registry.k8s.io/pause:3.9")
    await env.eventually(_complete(env, "web", 2))
    back = next(
        rs for rs in _replicasets(env, "web") if rs["metadata"]["name"] == first["metadata"]["name"]
    )
    assert back["spec"]["replicas"] == 2
    annotations = back["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "3"
    assert annotations["deployment.kubernetes.io/revision-history"] == "1"


async def test_a_paused_deployment_scales_but_does_not_roll_out(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=2))
    await env.eventually(_complete(env, "web", 2))
    env.client.patch("deployments.apps", "web", {"spec": {"paused": True}}, namespace="default")

    def paused() -> Obj | None:
        cond = condition(_deployment(env, "web"), "Progressing")
        return cond if cond is not None and cond["reason"] == "DeploymentPaused" else None

    cond = await env.eventually(paused)
    assert (cond["status"], cond["message"]) == ("Unknown", "Deployment is paused")
    _new_image(env, "web", "registry.k8s.io/pause:3.10")
    env.client.patch("deployments.apps", "web", {"spec": {"replicas": 3}}, namespace="default")
    await env.eventually(lambda: len([p for p in env.pods("app=web") if pod_ready(p)]) == 3)
    await env.workloads.settle()
    assert len(_replicasets(env, "web")) == 1

    env.client.patch("deployments.apps", "web", {"spec": {"paused": False}}, namespace="default")
    await env.eventually(_complete(env, "web", 3))
    assert len(_replicasets(env, "web")) == 2


@pytest.mark.parametrize("wl_clock", [FakeClock()])
@pytest.mark.parametrize("wl_options", [WorkloadOptions(pod_start_delay=0, termination_grace=0)])
async def test_a_stuck_rollout_exceeds_its_progress_deadline(
    env: SimEnv, wl_clock: FakeClock
) -> None:
    d = deployment("web", replicas=2, node_selector={"nowhere": "x"})
    d["spec"]["progressDeadlineSeconds"] = 10
    env.create("deployments.apps", d)

    def progressing() -> Obj | None:
        cond = condition(_deployment(env, "web"), "Progressing")
        return cond if cond is not None and cond["status"] == "True" else None

    await env.eventually(progressing)
    await env.workloads.settle()
    wl_clock.advance(12)

    def timed_out() -> Obj | None:
        cond = condition(_deployment(env, "web"), "Progressing")
        return cond if cond is not None and cond["reason"] == "ProgressDeadlineExceeded" else None

    cond = await env.eventually(timed_out)
    (rs,) = _replicasets(env, "web")
    assert cond["status"] == "False"
    assert cond["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.'


async def test_scaling_down_removes_unready_pods_first(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=4))
    await env.eventually(_complete(env, "web", 4))
    assert sorted(p["spec"]["nodeName"] for p in env.pods("app=web")) == [
        "node-0",
        "node-1",
        "node-2",
        "node-3",
    ]
    env.workloads.nodes.set_node_ready("node-0", False)
    await env.eventually(
        lambda: (
            [p["spec"]["nodeName"] for p in env.pods("app=web") if not pod_ready(p)] == ["node-0"]
        )
    )

    env.client.patch("deployments.apps", "web", {"spec": {"replicas": 3}}, namespace="default")

    def deleting() -> list[Obj]:
        return [p for p in env.pods("app=web") if p["metadata"].get("deletionTimestamp")]

    (victim,) = await env.eventually(deleting)
    assert victim["spec"]["nodeName"] == "node-0"
    await env.workloads.settle()
    assert len(deleting()) == 1
