"""KubeClient against kubesim over HTTP: every verb, patch types, apply, status, errors."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from rt_support import USER_AGENT, cm, eventually, rv, sample

from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.errors import (
    ApiError,
    TransportError,
    is_already_exists,
    is_conflict,
    is_gone,
    is_invalid,
    is_not_found,
    is_retryable,
    is_too_many_requests,
)
from servicegroup.kube.resources import CONFIGMAPS, DEPLOYMENTS, LEASES
from servicegroup.kubesim.app import KubeSim
from servicegroup.metrics import Metrics


def deployment(name: str, namespace: str, *, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
            },
        },
    }


def managers(obj: dict[str, Any]) -> dict[str, str]:
    return {m["manager"]: m["operation"] for m in obj["metadata"].get("managedFields", [])}


async def test_crud_round_trip_and_conflicts(rt_client: KubeClient, rt_ns: str) -> None:
    created = await rt_client.create(CONFIGMAPS, cm("one", rt_ns, k="v"))
    assert created["metadata"]["uid"]
    assert managers(created) == {"servicegroup": "Update"}  # from the User-Agent product

    fetched = await rt_client.get(CONFIGMAPS, "one", namespace=rt_ns)
    assert fetched["data"] == {"k": "v"}
    assert fetched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    listed = await rt_client.list(CONFIGMAPS, namespace=rt_ns)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["one"]
    assert int(listed["metadata"]["resourceVersion"]) >= rv(created)

    fetched["data"] = {"k": "v2"}
    replaced = await rt_client.replace(CONFIGMAPS, fetched)
    assert replaced["data"] == {"k": "v2"}
    assert rv(replaced) > rv(created)

    # A PUT carrying the old resourceVersion loses: 409 Conflict, not AlreadyExists.
    stale = {**fetched, "data": {"k": "stale"}}
    with pytest.raises(ApiError) as conflict:
        await rt_client.replace(CONFIGMAPS, stale)
    assert conflict.value.status == 409
    assert is_conflict(conflict.value)
    assert not is_already_exists(conflict.value)
    assert not is_retryable(conflict.value)

    with pytest.raises(ApiError) as exists:
        await rt_client.create(CONFIGMAPS, cm("one", rt_ns))
    assert exists.value.status == 409
    assert is_already_exists(exists.value)
    assert not is_conflict(exists.value)

    status = await rt_client.delete(CONFIGMAPS, "one", namespace=rt_ns)
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    with pytest.raises(ApiError) as missing:
        await rt_client.get(CONFIGMAPS, "one", namespace=rt_ns)
    assert missing.value.status == 404
    assert is_not_found(missing.value)
    with pytest.raises(ApiError) as missing_delete:
        await rt_client.delete(CONFIGMAPS, "one", namespace=rt_ns)
    assert is_not_found(missing_delete.value)


async def test_create_with_field_manager_and_missing_namespace(
    rt_client: KubeClient, rt_ns: str
) -> None:
    created = await rt_client.create(CONFIGMAPS, cm("fm", rt_ns, a="1"), field_manager="tool-x")
    assert managers(created) == {"tool-x": "Update"}
    with pytest.raises(ApiError) as err:
        await rt_client.create(CONFIGMAPS, cm("orphan", "no-such-namespace"))
    assert err.value.status == 404
    assert is_not_found(err.value)


async def test_invalid_objects_are_422_with_causes(rt_client: KubeClient, rt_ns: str) -> None:
    with pytest.raises(ApiError) as err:
        await rt_client.create(CONFIGMAPS, cm("Not_A_Name", rt_ns))
    assert err.value.status == 422
    assert is_invalid(err.value)
    assert not is_retryable(err.value)
    assert [cause.field for cause in err.value.causes] == ["metadata.name"]

    bad = deployment("bad", rt_ns)
    bad["spec"]["replicas"] = -1
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}  # selector mismatch
    with pytest.raises(ApiError) as err:
        await rt_client.create(DEPLOYMENTS, bad)
    assert is_invalid(err.value)
    fields = {cause.field for cause in err.value.causes}
    assert "spec.replicas" in fields
    assert "spec.template.metadata.labels" in fields


async def test_patch_types(rt_client: KubeClient, rt_ns: str) -> None:
    await rt_client.create(CONFIGMAPS, cm("p", rt_ns, a="1", b="2"))
    change = {"data": {"a": "10", "b": None, "c": "3"}}
    merged = await rt_client.patch(CONFIGMAPS, "p", change, patch_type="merge", namespace=rt_ns)
    assert merged["data"] == {"a": "10", "c": "3"}

    ops = [
        {"op": "test", "path": "/data/a", "value": "10"},
        {"op": "replace", "path": "/data/a", "value": "11"},
        {"op": "remove", "path": "/data/c"},
        {"op": "add", "path": "/metadata/labels", "value": {"tier": "x"}},
    ]
    patched = await rt_client.patch(CONFIGMAPS, "p", ops, patch_type="json", namespace=rt_ns)
    assert patched["data"] == {"a": "11"}
    assert patched["metadata"]["labels"] == {"tier": "x"}

    with pytest.raises(ApiError) as failed_test:
        await rt_client.patch(
            CONFIGMAPS,
            "p",
            [{"op": "test", "path": "/data/a", "value": "nope"}],
            patch_type="json",
            namespace=rt_ns,
        )
    assert failed_test.value.status == 422
    assert is_invalid(failed_test.value)
    with pytest.raises(ApiError) as not_a_list:
        await rt_client.patch(CONFIGMAPS, "p", {"op": "add"}, patch_type="json", namespace=rt_ns)
    assert not_a_list.value.status == 400

    # Strategic merge: containers merge by name; a JSON merge patch replaces the list.
    await rt_client.create(DEPLOYMENTS, deployment("web", rt_ns))
    sidecar = {"name": "sidecar", "image": "busybox:1.36"}
    strategic = await rt_client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [sidecar]}}}},
        patch_type="strategic",
        namespace=rt_ns,
    )
    names = [c["name"] for c in strategic["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["main", "sidecar"]
    replaced = await rt_client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [sidecar]}}}},
        patch_type="merge",
        namespace=rt_ns,
    )
    assert [c["name"] for c in replaced["spec"]["template"]["spec"]["containers"]] == ["sidecar"]
    assert replaced["metadata"]["generation"] == strategic["metadata"]["generation"] + 1

    with pytest.raises(ValueError, match="unknown patch type"):
        await rt_client.patch(CONFIGMAPS, "p", {}, patch_type="bogus", namespace=rt_ns)  # type: ignore[arg-type]


async def test_server_side_apply_managers_conflicts_and_force(
    rt_client: KubeClient, rt_ns: str
) -> None:
    # Apply creates an absent object.
    first = await rt_client.apply(CONFIGMAPS, cm("ssa", rt_ns, a="1", b="2"), field_manager="m1")
    assert first["data"] == {"a": "1", "b": "2"}
    assert managers(first) == {"m1": "Apply"}

    # Another manager adds its own field: both coexist.
    second = await rt_client.apply(CONFIGMAPS, cm("ssa", rt_ns, c="3"), field_manager="m2")
    assert second["data"] == {"a": "1", "b": "2", "c": "3"}
    assert managers(second) == {"m1": "Apply", "m2": "Apply"}

    # Setting a field m1 owns to another value without force: 409 naming the field.
    with pytest.raises(ApiError) as conflict:
        await rt_client.apply(
            CONFIGMAPS, cm("ssa", rt_ns, a="changed", c="3"), field_manager="m2", force=False
        )
    assert conflict.value.status == 409
    assert is_conflict(conflict.value)
    assert [cause.field for cause in conflict.value.causes] == [".data.a"]
    unchanged = await rt_client.get(CONFIGMAPS, "ssa", namespace=rt_ns)
    assert unchanged["data"]["a"] == "1"

    # With force, m2 takes the field over.
    forced = await rt_client.apply(
        CONFIGMAPS, cm("ssa", rt_ns, a="changed", c="3"), field_manager="m2", force=True
    )
    assert forced["data"]["a"] == "changed"
    m1_fields = next(
        m["fieldsV1"] for m in forced["metadata"]["managedFields"] if m["manager"] == "m1"
    )
    assert "f:a" not in m1_fields["f:data"]

    # A field dropped from a manager's apply is removed when nobody else owns it.
    dropped = await rt_client.apply(
        CONFIGMAPS, cm("ssa", rt_ns, d="4"), field_manager="m1", force=False
    )
    assert dropped["data"] == {"a": "changed", "c": "3", "d": "4"}  # b gone; a is m2's now
    idempotent = await rt_client.apply(
        CONFIGMAPS, cm("ssa", rt_ns, d="4"), field_manager="m1", force=False
    )
    assert idempotent["metadata"]["resourceVersion"] == dropped["metadata"]["resourceVersion"]


async def test_status_subresource(rt_client: KubeClient, rt_ns: str) -> None:
    created = await rt_client.apply(DEPLOYMENTS, deployment("st", rt_ns), field_manager="ctl")
    generation = created["metadata"]["generation"]

    status = await rt_client.patch(
        DEPLOYMENTS,
        "st",
        {"status": {"replicas": 1, "observedGeneration": generation}},
        patch_type="merge",
        namespace=rt_ns,
        subresource="status",
    )
    assert status["status"]["replicas"] == 1
    assert status["metadata"]["generation"] == generation  # status writes never bump it

    # The main resource ignores status; the status subresource ignores spec.
    main = await rt_client.patch(
        DEPLOYMENTS,
        "st",
        {"spec": {"replicas": 2}, "status": {"replicas": 99}},
        patch_type="merge",
        namespace=rt_ns,
    )
    assert main["spec"]["replicas"] == 2
    assert main["status"]["replicas"] == 1
    assert main["metadata"]["generation"] == generation + 1

    body = await rt_client.get(DEPLOYMENTS, "st", namespace=rt_ns)
    body["spec"]["replicas"] = 5
    body["status"]["readyReplicas"] = 1
    put = await rt_client.replace(DEPLOYMENTS, body, subresource="status")
    assert put["spec"]["replicas"] == 2
    assert put["status"]["readyReplicas"] == 1

    got = await rt_client.get(DEPLOYMENTS, "st", namespace=rt_ns, subresource="status")
    assert got["status"]["readyReplicas"] == 1


async def test_delete_preconditions_and_propagation(
    rt_client: KubeClient, rt_ns: str, rt_sim: KubeSim
) -> None:
    created = await rt_client.create(DEPLOYMENTS, deployment("gone", rt_ns))
    with pytest.raises(ApiError) as err:
        await rt_client.delete(DEPLOYMENTS, "gone", namespace=rt_ns, preconditions={"uid": "x"})
    assert err.value.status == 409
    assert is_conflict(err.value)
    await rt_client.delete(
        DEPLOYMENTS,
        "gone",
        namespace=rt_ns,
        propagation_policy="Foreground",
        preconditions={"uid": created["metadata"]["uid"]},
    )

    async def absent() -> bool:
        try:
            await rt_client.get(DEPLOYMENTS, "gone", namespace=rt_ns)
        except ApiError as missing:
            return is_not_found(missing)
        return False

    await eventually(absent, what="foreground deletion to finish")

    with pytest.raises(ApiError) as invalid:
        await rt_client.delete(CONFIGMAPS, "x", namespace=rt_ns, propagation_policy="Sideways")
    assert invalid.value.status == 422


async def test_expired_resource_versions_are_gone(
    rt_client: KubeClient, rt_ns: str, rt_sim: KubeSim
) -> None:
    for i in range(5):
        await rt_client.create(CONFIGMAPS, cm(f"c{i}", rt_ns))
    page = await rt_client.list(CONFIGMAPS, namespace=rt_ns, limit=2)
    token = page["metadata"]["continue"]
    old_rv = page["metadata"]["resourceVersion"]
    await rt_client.create(CONFIGMAPS, cm("later", rt_ns))
    rt_sim.store.expire_history()

    with pytest.raises(ApiError) as expired_token:
        await rt_client.list(CONFIGMAPS, namespace=rt_ns, limit=2, continue_token=token)
    assert expired_token.value.status == 410
    assert is_gone(expired_token.value)
    assert expired_token.value.reason == "Expired"

    with pytest.raises(ApiError) as exact:
        await rt_client.list(
            CONFIGMAPS, namespace=rt_ns, resource_version=old_rv, resource_version_match="Exact"
        )
    assert is_gone(exact.value)

    # A watch from an expired RV answers 200 and sends one ERROR event carrying a 410 Status.
    async with rt_client.watch(CONFIGMAPS, namespace=rt_ns, resource_version=old_rv) as stream:
        events = [event async for event in stream]
    assert [event["type"] for event in events] == ["ERROR"]
    error = ApiError.from_status(events[0]["object"])
    assert error.status == 410
    assert is_gone(error)


async def test_watch_stream_events_bookmarks_and_timeout(
    rt_client: KubeClient, rt_ns: str, rt_sim: KubeSim
) -> None:
    listed = await rt_client.list(CONFIGMAPS, namespace=rt_ns)
    start = listed["metadata"]["resourceVersion"]
    await rt_client.create(CONFIGMAPS, cm("w", rt_ns, a="1"))
    await rt_client.patch(
        CONFIGMAPS, "w", {"data": {"a": "2"}}, patch_type="merge", namespace=rt_ns
    )
    deleted = await rt_client.delete(CONFIGMAPS, "w", namespace=rt_ns)
    assert deleted["status"] == "Success"

    seen: list[tuple[str, str]] = []
    async with rt_client.watch(
        CONFIGMAPS, namespace=rt_ns, resource_version=start, timeout_seconds=1
    ) as stream:
        async for event in stream:  # ends by itself when the server's timeout passes
            obj = event["object"]
            seen.append((event["type"], obj["metadata"]["resourceVersion"]))
            if event["type"] != "BOOKMARK":
                assert obj["kind"] == "ConfigMap"
                assert obj["apiVersion"] == "v1"
    kinds = [kind for kind, _ in seen]
    assert kinds[:3] == ["ADDED", "MODIFIED", "DELETED"]
    assert "BOOKMARK" in kinds[3:]  # bookmark_interval=0.2 s, timeout 1 s
    rvs = [int(value) for _, value in seen]
    assert rvs == sorted(rvs)
    assert rt_sim.store.watcher_count() == 0


async def test_injected_429_and_500_are_retryable(
    rt_client: KubeClient, rt_ns: str, rt_sim: KubeSim
) -> None:
    await rt_client.create(CONFIGMAPS, cm("f", rt_ns))
    rt_sim.faults.fail(code=429, verbs=["get"], resources=["configmaps"], count=1, retry_after=3)
    rt_sim.faults.fail(code=500, verbs=["get"], resources=["configmaps"], count=1)
    with pytest.raises(ApiError) as throttled:
        await rt_client.get(CONFIGMAPS, "f", namespace=rt_ns)
    assert throttled.value.status == 429
    assert is_too_many_requests(throttled.value)
    assert throttled.value.retry_after == 3.0
    assert is_retryable(throttled.value)
    with pytest.raises(ApiError) as internal:
        await rt_client.get(CONFIGMAPS, "f", namespace=rt_ns)
    assert internal.value.status == 500
    assert is_retryable(internal.value)
    assert not is_not_found(internal.value)
    assert (await rt_client.get(CONFIGMAPS, "f", namespace=rt_ns))["metadata"]["name"] == "f"


async def test_metrics_and_server_accounting_agree(
    rt_client: KubeClient, rt_ns: str, rt_sim: KubeSim, metrics: Metrics
) -> None:
    host = rt_sim.url.removeprefix("http://")
    rt_sim.requests.reset()
    before = sample(metrics, "rest_client_requests_total", code="201", method="POST", host=host)
    for i in range(3):
        await rt_client.create(CONFIGMAPS, cm(f"m{i}", rt_ns))
    with pytest.raises(ApiError):
        await rt_client.get(CONFIGMAPS, "absent", namespace=rt_ns)
    after = sample(metrics, "rest_client_requests_total", code="201", method="POST", host=host)
    assert after - before == 3
    assert sample(metrics, "rest_client_requests_total", code="404", method="GET", host=host) == 1
    assert (
        rt_sim.requests.count(
            verb="create", resource="configmaps", user_agent_product="servicegroup"
        )
        == 3
    )
    assert rt_sim.requests.writes(user_agent_product="servicegroup") == 3
    assert rt_sim.requests.count(verb="get", resource="configmaps") == 1


async def test_lease_and_cluster_scoped_paths(rt_client: KubeClient, rt_ns: str) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": rt_ns},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 3},
    }
    created = await rt_client.create(LEASES, lease)
    assert created["spec"]["holderIdentity"] == "me"
    version = await rt_client.request("GET", "/version")
    assert version["major"] == "1"
    assert await rt_client.request("GET", "/healthz") == "ok"
    discovery = await rt_client.request("GET", "/apis/coordination.k8s.io/v1")
    assert "leases" in {resource["name"] for resource in discovery["resources"]}


async def test_namespace_errors_before_any_request(
    rt_client: KubeClient, rt_ns: str, rt_sim: KubeSim
) -> None:
    rt_sim.requests.reset()
    with pytest.raises(ValueError, match="namespaced"):
        await rt_client.create(CONFIGMAPS, {"metadata": {"name": "n"}})
    with pytest.raises(ValueError, match="does not match"):
        await rt_client.create(CONFIGMAPS, cm("n", rt_ns), namespace="other")
    assert rt_sim.requests.to_json()["total"] == 0


async def test_transport_error_when_nothing_listens(metrics: Metrics) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with KubeClient(
        config=ClientConfig.for_server(f"http://127.0.0.1:{port}"),
        metrics=metrics,
        user_agent=USER_AGENT,
        connect_timeout=2.0,
    ) as client:
        with pytest.raises(TransportError) as err:
            await client.get(CONFIGMAPS, "x", namespace="default")
    assert err.value.status == 0
    assert is_retryable(err.value)
    assert (
        sample(
            metrics,
            "rest_client_requests_total",
            code="<error>",
            method="GET",
            host=f"127.0.0.1:{port}",
        )
        == 1
    )
