"""The simulated StatefulSet controller: ordering policies, revisions, updates, status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wl_support import SimEnv, pod_ready, service, statefulset

from servicegroup.kubesim.store import DELETED, StoreEvent
from servicegroup.kubesim.workloads.index import PODS

Obj = dict[str, Any]


def _sts(env: SimEnv, name: str = "db") -> Obj:
    found = env.get("statefulsets.apps", name)
    assert found is not None
    return found


def _revisions(env: SimEnv) -> list[Obj]:
    return sorted(
        env.client.list("controllerrevisions.apps", namespace="default"),
        key=lambda r: r["revision"],
    )


def _settled(env: SimEnv, replicas: int, name: str = "db") -> Callable[[], Obj | None]:
    def check() -> Obj | None:
        sts = _sts(env, name)
        status = sts.get("status") or {}
        ok = (
            status.get("observedGeneration") == sts["metadata"]["generation"]
            and status.get("readyReplicas", 0) == replicas
            and status.get("replicas") == replicas
            and status.get("updatedReplicas", 0) == replicas
            and status.get("currentRevision") == status.get("updateRevision")
            and len(env.pods(f"app={name}")) == replicas
        )
        return sts if ok else None

    return check


def _set_image(env: SimEnv, image: str, name: str = "db") -> None:
    env.client.patch(
        "statefulsets.apps",
        name,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
        namespace="default",
        patch_type="strategic",
    )


def _record(
    env: SimEnv, kinds: tuple[str, ...]
) -> tuple[list[tuple[str, str]], Callable[[StoreEvent], None]]:
    seen: list[tuple[str, str]] = []

    def on_event(event: StoreEvent) -> None:
        if event.key == PODS and event.type in kinds:
            seen.append((event.type, event.obj["metadata"]["name"]))

    env.sim.store.add_listener(on_event)
    return seen, on_event


async def test_parallel_creates_every_pod_at_once(env: SimEnv) -> None:
    ready_at_creation: list[int] = []

    def on_event(event: StoreEvent) -> None:
        if event.key == PODS and event.type == "ADDED":
            ready_at_creation.append(
                sum(1 for p in env.sim.store.items(PODS, "default") if pod_ready(p))
            )

    env.sim.store.add_listener(on_event)
    try:
        env.create(
            "statefulsets.apps", statefulset("db", replicas=4, service="db", policy="Parallel")
        )
        await env.eventually(_settled(env, 4))
    finally:
        env.sim.store.remove_listener(on_event)
    assert ready_at_creation == [0, 0, 0, 0]

    seen, listener = _record(env, (DELETED,))
    try:
        env.client.patch("statefulsets.apps", "db", {"spec": {"replicas": 1}}, namespace="default")
        await env.eventually(_settled(env, 1))
    finally:
        env.sim.store.remove_listener(listener)
    assert sorted(name for _, name in seen) == ["db-1", "db-2", "db-3"]
    assert [p["metadata"]["name"] for p in env.pods("app=db")] == ["db-0"]


async def test_revisions_record_the_template(env: SimEnv) -> None:
    env.create("services", service("db", selector={"app": "db"}, headless=True))
    env.create("statefulsets.apps", statefulset("db", replicas=2, service="db"))
    sts = await env.eventually(_settled(env, 2))
    (revision,) = _revisions(env)
    assert revision["revision"] == 1
    assert revision["metadata"]["name"] == sts["status"]["currentRevision"]
    hash_ = revision["metadata"]["labels"]["controller.kubernetes.io/hash"]
    assert revision["metadata"]["name"] == f"db-{hash_}"
    assert revision["metadata"]["labels"]["app"] == "db"
    owner = revision["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "StatefulSet",
        sts["metadata"]["uid"],
        True,
    )
    template = revision["data"]["spec"]["template"]
    assert template["$patch"] == "replace"
    assert template["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.9"
    status = sts["status"]
    assert status == {
        "observedGeneration": 1,
        "replicas": 2,
        "readyReplicas": 2,
        "currentReplicas": 2,
        "updatedReplicas": 2,
        "currentRevision": revision["metadata"]["name"],
        "updateRevision": revision["metadata"]["name"],
        "availableReplicas": 2,
    }


async def test_rolling_update_replaces_pods_from_the_highest_ordinal(env: SimEnv) -> None:
    env.create("statefulsets.apps", statefulset("db", replicas=3, service="db"))
    await env.eventually(_settled(env, 3))
    (first,) = _revisions(env)
    seen, listener = _record(env, (DELETED,))
    try:
        _set_image(env, "registry.k8s.io/pause:3.10")
        sts = await env.eventually(_settled(env, 3))
    finally:
        env.sim.store.remove_listener(listener)
    assert [name for _, name in seen] == ["db-2", "db-1", "db-0"]
    revisions = _revisions(env)
    assert [r["revision"] for r in revisions] == [1, 2]
    assert sts["status"]["updateRevision"] == revisions[1]["metadata"]["name"]
    assert sts["status"]["currentRevision"] == revisions[1]["metadata"]["name"]
    for pod in env.pods("app=db"):
        assert (
            pod["metadata"]["labels"]["controller-revision-hash"]
            == revisions[1]["metadata"]["name"]
        )
        assert pod["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10"

    # Going back reuses the first revision under a new number.
    _set_image(env, "registry.k8s.io/pause:3.9")
    sts = await env.eventually(_settled(env, 3))
    back = {r["metadata"]["name"]: r["revision"] for r in _revisions(env)}
    assert back[first["metadata"]["name"]] == 3
    assert sts["status"]["updateRevision"] == first["metadata"]["name"]


async def test_a_partition_holds_lower_ordinals_back(env: SimEnv) -> None:
    sts = statefulset("db", replicas=3, service="db")
    sts["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    env.create("statefulsets.apps", sts)
    await env.eventually(_settled(env, 3))
    _set_image(env, "registry.k8s.io/pause:3.10")

    def partial() -> Obj | None:
        status = _sts(env).get("status") or {}
        ok = status.get("updatedReplicas") == 1 and status.get("readyReplicas") == 3
        return status if ok else None

    status = await env.eventually(partial)
    await env.workloads.settle()
    assert status["currentReplicas"] == 2
    assert status["currentRevision"] != status["updateRevision"]
    images = {
        p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in env.pods("app=db")
    }
    assert images == {
        "db-0": "registry.k8s.io/pause:3.9",
        "db-1": "registry.k8s.io/pause:3.9",
        "db-2": "registry.k8s.io/pause:3.10",
    }


async def test_on_delete_waits_for_pods_to_be_deleted(env: SimEnv) -> None:
    sts = statefulset("db", replicas=2, service="db")
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    env.create("statefulsets.apps", sts)
    await env.eventually(lambda: len([p for p in env.pods("app=db") if pod_ready(p)]) == 2)
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in env.pods("app=db")}
    _set_image(env, "registry.k8s.io/pause:3.10")
    await env.eventually(lambda: (_sts(env).get("status") or {}).get("observedGeneration") == 2)
    await env.workloads.settle()
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in env.pods("app=db")} == before

    env.client.delete("pods", "db-1", namespace="default")

    def replaced() -> Obj | None:
        pod = env.get("pods", "db-1")
        if pod is None or pod["metadata"]["uid"] == before["db-1"] or not pod_ready(pod):
            return None
        return pod

    pod = await env.eventually(replaced)
    assert pod["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10"
    assert env.get("pods", "db-0")["metadata"]["uid"] == before["db-0"]  # type: ignore[index]


async def test_a_failed_pod_is_replaced_under_the_same_name(env: SimEnv) -> None:
    env.create("statefulsets.apps", statefulset("db", replicas=2, service="db"))
    await env.eventually(_settled(env, 2))
    pod = env.client.get("pods", "db-0", namespace="default")
    old_uid = pod["metadata"]["uid"]
    pod["status"]["phase"] = "Failed"
    env.client.update_status("pods", pod)

    def recreated() -> Obj | None:
        found = env.get("pods", "db-0")
        ok = found is not None and found["metadata"]["uid"] != old_uid and pod_ready(found)
        return found if ok else None

    await env.eventually(recreated)
    await env.eventually(_settled(env, 2))
