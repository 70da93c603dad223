"""Create / get / list / update / delete semantics and error Status bodies."""

from __future__ import annotations

import orjson
import pytest
from ks_support import Cluster
from kubernetes_asyncio import client

pytestmark = pytest.mark.asyncio


def _deployment(name: str, *, labels: dict[str, str] | None = None) -> dict[str, object]:
    app = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or app},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": app},
            "template": {
                "metadata": {"labels": app},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }


async def test_configmap_round_trip_sets_server_fields(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.core.create_namespaced_config_map(
        ns, {"metadata": {"name": "cm", "labels": {"a": "b"}}, "data": {"k": "v"}}
    )
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 0
    got = await cluster.core.read_namespaced_config_map("cm", ns)
    assert got.data == {"k": "v"}
    assert got.metadata.resource_version == created.metadata.resource_version
    got.data["k"] = "w"
    updated = await cluster.core.replace_namespaced_config_map("cm", ns, got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    listed = await cluster.core.list_namespaced_config_map(ns)
    assert [item.metadata.name for item in listed.items] == ["cm"]
    assert int(listed.metadata.resource_version) >= int(updated.metadata.resource_version)
    await cluster.core.delete_namespaced_config_map("cm", ns)
    with pytest.raises(client.ApiException) as err:
        await cluster.core.read_namespaced_config_map("cm", ns)
    assert err.value.status == 404


async def test_status_bodies_are_shaped_like_kube_apiserver(cluster: Cluster) -> None:
    ns = cluster.namespace
    path = f"/api/v1/namespaces/{ns}/configmaps"
    status, _, _ = await cluster.raw("POST", path, body={"metadata": {"name": "dup"}})
    assert status == 201
    status, body, headers = await cluster.raw("POST", path, body={"metadata": {"name": "dup"}})
    assert status == 409
    assert headers["Content-Type"].startswith("application/json")
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "dup" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "dup", "kind": "configmaps"},
        "code": 409,
    }
    status, body, _ = await cluster.raw("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/nope")
    assert status == 404
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    status, body, _ = await cluster.raw("GET", "/api/v1/nopes")
    assert status == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == "the server could not find the requested resource"


async def test_create_in_missing_namespace_is_404(cluster: Cluster) -> None:
    with pytest.raises(client.ApiException) as err:
        await cluster.core.create_namespaced_config_map(
            "no-such-namespace", {"metadata": {"name": "x"}}
        )
    assert err.value.status == 404
    assert orjson.loads(err.value.body)["message"] == 'namespaces "no-such-namespace" not found'


async def test_invalid_name_is_422_with_field_causes(cluster: Cluster) -> None:
    status, body, _ = await cluster.raw(
        "POST",
        f"/api/v1/namespaces/{cluster.namespace}/configmaps",
        body={"metadata": {"name": "Bad_Name"}},
    )
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == "ConfigMap"
    assert body["details"]["name"] == "Bad_Name"
    causes = body["details"]["causes"]
    assert any(c["field"] == "metadata.name" and c["reason"] == "FieldValueInvalid" for c in causes)
    assert body["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value'
    )


async def test_immutable_selector_is_422(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.apps.create_namespaced_deployment(ns, _deployment("imm"))
    live = await cluster.raw("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/imm")
    obj = live[1]
    obj["spec"]["selector"] = {"matchLabels": {"app": "imm", "x": "y"}}
    obj["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    status, body, _ = await cluster.raw(
        "PUT", f"/apis/apps/v1/namespaces/{ns}/deployments/imm", body=obj
    )
    assert status == 422
    assert body["details"]["kind"] == "Deployment"
    assert body["details"]["group"] == "apps"
    assert any(c["field"] == "spec.selector" for c in body["details"]["causes"])
    assert "field is immutable" in body["message"]


async def test_stale_resource_version_conflicts(cluster: Cluster) -> None:
    ns = cluster.namespace
    first = await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "occ"}})
    first.data = {"a": "1"}
    await cluster.core.replace_namespaced_config_map("occ", ns, first)
    first.data = {"a": "2"}  # still carries the old resourceVersion
    with pytest.raises(client.ApiException) as err:
        await cluster.core.replace_namespaced_config_map("occ", ns, first)
    assert err.value.status == 409
    status, body, _ = await cluster.raw(
        "PUT",
        f"/api/v1/namespaces/{ns}/configmaps/occ",
        body={
            "metadata": {"name": "occ", "resourceVersion": first.metadata.resource_version},
            "data": {"a": "3"},
        },
    )
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "occ": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    # Built-ins allow an update without resourceVersion (unconditional).
    status, body, _ = await cluster.raw(
        "PUT",
        f"/api/v1/namespaces/{ns}/configmaps/occ",
        body={"metadata": {"name": "occ"}, "data": {"a": "4"}},
    )
    assert status == 200
    assert body["data"] == {"a": "4"}


async def test_generate_name_and_dry_run(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.core.create_namespaced_config_map(
        ns, {"metadata": {"generateName": "gen-"}}
    )
    assert created.metadata.name.startswith("gen-")
    assert len(created.metadata.name) == len("gen-") + 5
    dry = await cluster.core.create_namespaced_config_map(
        ns, {"metadata": {"name": "dry"}}, dry_run="All"
    )
    assert dry.metadata.name == "dry"
    with pytest.raises(client.ApiException) as err:
        await cluster.core.read_namespaced_config_map("dry", ns)
    assert err.value.status == 404


async def test_generation_bumps_on_spec_changes_only(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.apps.create_namespaced_stateful_set(
        ns,
        {
            "metadata": {"name": "gen"},
            "spec": {
                "serviceName": "gen",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "gen"}},
                "template": {
                    "metadata": {"labels": {"app": "gen"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        },
    )
    assert created.metadata.generation == 1
    labelled = await cluster.apps.patch_namespaced_stateful_set(
        "gen", ns, {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled.metadata.generation == 1
    scaled = await cluster.apps.patch_namespaced_stateful_set("gen", ns, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    assert int(scaled.metadata.resource_version) > int(labelled.metadata.resource_version)


async def test_status_subresource_split(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.apps.create_namespaced_deployment(ns, _deployment("split"))
    # The main endpoint ignores status.
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/split"
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body={"status": {"replicas": 7}, "metadata": {"labels": {"app": "split", "t": "1"}}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    assert body["status"].get("replicas") is None
    assert body["metadata"]["labels"]["t"] == "1"
    # /status ignores everything but status.
    status, body, _ = await cluster.raw(
        "PATCH",
        path + "/status",
        body={"status": {"replicas": 7}, "spec": {"replicas": 9}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    assert body["status"]["replicas"] == 7
    assert body["spec"]["replicas"] == 1
    got = await cluster.apps.read_namespaced_deployment_status("split", ns)
    assert got.status.replicas == 7
    assert got.metadata.generation == 1


async def test_defaults_are_applied_like_kube_apiserver(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.apps.create_namespaced_deployment(ns, _deployment("def"))
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    container = created.spec.template.spec.containers[0]
    assert container.termination_message_path == "/dev/termination-log"
    assert created.spec.template.spec.restart_policy == "Always"
    service = await cluster.core.create_namespaced_service(
        ns, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert service.spec.type == "ClusterIP"
    assert service.spec.cluster_ip and service.spec.cluster_ip != "None"
    assert service.spec.cluster_ips == [service.spec.cluster_ip]
    assert service.spec.ports[0].protocol == "TCP"
    assert service.spec.ports[0].target_port == 80


async def test_delete_returns_status_or_object(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "gone"}})
    status, body, _ = await cluster.raw("DELETE", f"/api/v1/namespaces/{ns}/configmaps/gone")
    assert status == 200
    assert body["kind"] == "Status"
    assert body["status"] == "Success"
    assert body["details"]["name"] == "gone"
    status, body, _ = await cluster.raw("DELETE", f"/api/v1/namespaces/{ns}/configmaps/gone")
    assert status == 404
    # Preconditions.
    cm = await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "pre"}})
    status, body, _ = await cluster.raw(
        "DELETE",
        f"/api/v1/namespaces/{ns}/configmaps/pre",
        body={"preconditions": {"uid": "not-" + cm.metadata.uid}},
    )
    assert status == 409
    assert "the UID in the precondition" in body["message"]


async def test_unscheduled_pod_is_deleted_at_once(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "image": "nginx"}],
                "nodeName": None,
                "schedulerName": "no-such-scheduler",
            },
        },
    )
    pod = await cluster.core.read_namespaced_pod("p", ns)
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "BestEffort"
    await cluster.core.delete_namespaced_pod("p", ns)
    with pytest.raises(client.ApiException) as err:
        await cluster.core.read_namespaced_pod("p", ns)
    assert err.value.status == 404


async def test_deletecollection_by_label(cluster: Cluster) -> None:
    ns = cluster.namespace
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        await cluster.core.create_namespaced_config_map(
            ns, {"metadata": {"name": name, "labels": {"team": team}}}
        )
    await cluster.core.delete_collection_namespaced_config_map(ns, label_selector="team=x")
    left = await cluster.core.list_namespaced_config_map(ns)
    assert sorted(item.metadata.name for item in left.items) == ["c"]


async def test_scheduled_pod_deletion_is_graceful(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "bound"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx"}]},
        },
    )
    await cluster.core.delete_namespaced_pod("bound", ns, grace_period_seconds=30)
    terminating = await cluster.core.read_namespaced_pod("bound", ns)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 30
    await cluster.core.delete_namespaced_pod("bound", ns, grace_period_seconds=0)
    with pytest.raises(client.ApiException) as err:
        await cluster.core.read_namespaced_pod("bound", ns)
    assert err.value.status == 404
