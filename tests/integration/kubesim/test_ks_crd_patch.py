"""CustomResourceDefinitions and custom resources; the four patch types."""

from __future__ import annotations

from typing import Any

import pytest
from ks_support import Cluster, wait_for
from kubernetes_asyncio import client

pytestmark = pytest.mark.asyncio

GROUP = "kubesim.example.com"
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gizmos.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": "gizmos",
            "singular": "gizmo",
            "kind": "Gizmo",
            "shortNames": ["gz"],
            "categories": ["all"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "integer", "default": 1},
                                    "color": {"type": "string"},
                                    "free": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"ready": {"type": "boolean"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


async def _install_crd(cluster: Cluster) -> None:
    try:
        await cluster.crds.create_custom_resource_definition(CRD)
    except client.ApiException as err:
        if err.status != 409:
            raise

    async def established() -> bool:
        crd = await cluster.crds.read_custom_resource_definition(CRD["metadata"]["name"])
        conditions = (crd.status.conditions or []) if crd.status else []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    await wait_for(established)


def _gizmo(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "metadata": {"name": name}, "spec": spec}


async def test_crd_is_established_and_discoverable(cluster: Cluster) -> None:
    await _install_crd(cluster)
    crd = await cluster.crds.read_custom_resource_definition(CRD["metadata"]["name"])
    assert crd.status.accepted_names.kind == "Gizmo"
    assert crd.status.stored_versions == ["v1"]
    status, body, _ = await cluster.raw("GET", f"/apis/{GROUP}/v1")
    assert status == 200
    gizmos = next(r for r in body["resources"] if r["name"] == "gizmos")
    assert gizmos["shortNames"] == ["gz"]
    assert gizmos["categories"] == ["all"]
    assert gizmos["namespaced"] is True
    assert any(r["name"] == "gizmos/status" for r in body["resources"])


async def test_custom_resource_defaults_pruning_and_status(cluster: Cluster) -> None:
    await _install_crd(cluster)
    ns = cluster.namespace
    created = await cluster.custom.create_namespaced_custom_object(
        GROUP, "v1", ns, "gizmos", _gizmo("g1", color="red", bogus=True, free={"any": [1]})
    )
    assert created["spec"]["size"] == 1  # schema default
    assert "bogus" not in created["spec"]  # pruned
    assert created["spec"]["free"] == {"any": [1]}  # preserved
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["uid"]
    # A custom resource needs a resourceVersion to be updated.
    unconditional = _gizmo("g1", color="blue")
    status, body, _ = await cluster.raw(
        "PUT", f"/apis/{GROUP}/v1/namespaces/{ns}/gizmos/g1", body=unconditional
    )
    assert status == 422
    assert "must be specified for an update" in body["message"]
    # The status subresource: the main endpoint ignores status...
    patched = await cluster.custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        ns,
        "gizmos",
        "g1",
        {"status": {"ready": True}, "spec": {"size": 2}},
        _content_type="application/merge-patch+json",
    )
    assert "status" not in patched
    assert patched["metadata"]["generation"] == 2
    # ... and /status ignores the rest; neither bumps generation for status.
    status_patched = await cluster.custom.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        ns,
        "gizmos",
        "g1",
        {"status": {"ready": True}, "spec": {"size": 5}},
        _content_type="application/merge-patch+json",
    )
    assert status_patched["status"] == {"ready": True}
    assert status_patched["spec"]["size"] == 2
    assert status_patched["metadata"]["generation"] == 2
    listed = await cluster.custom.list_namespaced_custom_object(GROUP, "v1", ns, "gizmos")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["g1"]
    assert listed["items"][0]["kind"] == "Gizmo"


async def test_strict_field_validation_rejects_unknown_fields(cluster: Cluster) -> None:
    await _install_crd(cluster)
    status, body, _ = await cluster.raw(
        "POST",
        f"/apis/{GROUP}/v1/namespaces/{cluster.namespace}/gizmos",
        body=_gizmo("strict", bogus=1),
        query=[("fieldValidation", "Strict")],
    )
    assert status == 400
    assert 'unknown field "spec.bogus"' in body["message"]


async def test_deleting_a_crd_deletes_its_custom_resources(cluster: Cluster) -> None:
    await _install_crd(cluster)
    ns = cluster.namespace
    await cluster.custom.create_namespaced_custom_object(GROUP, "v1", ns, "gizmos", _gizmo("d1"))
    await cluster.crds.delete_custom_resource_definition(CRD["metadata"]["name"])

    async def unserved() -> bool:
        status, _, _ = await cluster.raw("GET", f"/apis/{GROUP}/v1/namespaces/{ns}/gizmos")
        return status == 404

    await wait_for(unserved, timeout=30)


async def test_merge_json_and_strategic_patches(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "p"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "p"}},
                "template": {
                    "metadata": {"labels": {"app": "p"}},
                    "spec": {
                        "containers": [
                            {"name": "a", "image": "nginx:1"},
                            {"name": "b", "image": "redis:1"},
                        ]
                    },
                },
            },
        },
    )
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/p"
    # Strategic merge: containers merge by name.
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body={"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "redis:2"}]}}}},
        content_type="application/strategic-merge-patch+json",
    )
    assert status == 200
    images = {c["name"]: c["image"] for c in body["spec"]["template"]["spec"]["containers"]}
    assert images == {"a": "nginx:1", "b": "redis:2"}
    # Merge patch: lists are replaced.
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body={"metadata": {"annotations": {"x": "1"}}, "spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    assert body["spec"]["replicas"] == 3
    assert body["metadata"]["annotations"] == {"x": "1"}
    # JSON patch, with a failing test operation.
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body=[{"op": "replace", "path": "/spec/replicas", "value": 4}],
        content_type="application/json-patch+json",
    )
    assert status == 200
    assert body["spec"]["replicas"] == 4
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body=[{"op": "test", "path": "/spec/replicas", "value": 99}],
        content_type="application/json-patch+json",
    )
    assert status in (409, 422)
    # A patch carrying a stale resourceVersion conflicts.
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body={"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}},
        content_type="application/merge-patch+json",
    )
    assert status == 409


async def test_strategic_merge_patch_on_custom_resource_is_415(cluster: Cluster) -> None:
    await _install_crd(cluster)
    ns = cluster.namespace
    await cluster.custom.create_namespaced_custom_object(GROUP, "v1", ns, "gizmos", _gizmo("s"))
    status, body, _ = await cluster.raw(
        "PATCH",
        f"/apis/{GROUP}/v1/namespaces/{ns}/gizmos/s",
        body={"spec": {"size": 3}},
        content_type="application/strategic-merge-patch+json",
    )
    assert status == 415
    assert body["reason"] == "UnsupportedMediaType"


async def _apply(
    cluster: Cluster, path: str, obj: dict[str, Any], *, manager: str, force: bool = False
) -> tuple[int, Any]:
    query: list[tuple[str, Any]] = [("fieldManager", manager)]
    if force:
        query.append(("force", "true"))
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body=obj,  # JSON is YAML: the apply body as kubectl sends it
        query=query,
        content_type="application/apply-patch+yaml",
    )
    return status, body


async def test_server_side_apply_create_conflict_force_and_removal(cluster: Cluster) -> None:
    ns = cluster.namespace
    path = f"/api/v1/namespaces/{ns}/configmaps/ssa"
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa", "labels": {"owner": "a"}},
        "data": {"x": "1", "y": "2"},
    }
    status, body = await _apply(cluster, path, config, manager="manager-a")
    assert status == 201
    managers = {(e["manager"], e["operation"]) for e in body["metadata"]["managedFields"]}
    assert ("manager-a", "Apply") in managers
    # Another manager setting a field manager-a owns to another value conflicts.
    other = {**config, "metadata": {"name": "ssa"}, "data": {"x": "changed"}}
    status, body = await _apply(cluster, path, other, manager="manager-b")
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["details"]["causes"][0]["field"] == ".data.x"
    assert "manager-a" in body["details"]["causes"][0]["message"]
    status, body = await _apply(cluster, path, other, manager="manager-b", force=True)
    assert status == 200
    assert body["data"] == {"x": "changed", "y": "2"}
    # manager-a stops setting y: nobody else owns it, so it is removed.
    status, body = await _apply(
        cluster,
        path,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {}},
        manager="manager-a",
    )
    assert status == 200
    assert body.get("data") == {"x": "changed"}
    assert "labels" not in body["metadata"]
    # fieldManager is required for apply.
    status, body, _ = await cluster.raw(
        "PATCH",
        path,
        body=config,
        content_type="application/apply-patch+yaml",
    )
    assert status == 422
