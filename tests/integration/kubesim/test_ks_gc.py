"""Garbage collection (background, foreground, orphan), finalizers, namespace deletion."""

from __future__ import annotations

from typing import Any

import pytest
from ks_support import Cluster, wait_for
from kubernetes_asyncio import client

pytestmark = pytest.mark.asyncio


async def _owner_and_dependents(cluster: Cluster, *, block: bool) -> tuple[Any, list[str]]:
    ns = cluster.namespace
    owner = await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": block,
    }
    names = ["dep-1", "dep-2"]
    for name in names:
        await cluster.core.create_namespaced_secret(
            ns, {"metadata": {"name": name, "ownerReferences": [ref]}}
        )
    return owner, names


async def _secret_names(cluster: Cluster) -> list[str]:
    listed = await cluster.core.list_namespaced_secret(cluster.namespace)
    return sorted(
        item.metadata.name for item in listed.items if item.metadata.name.startswith("dep")
    )


async def _exists(cluster: Cluster, name: str) -> bool:
    try:
        await cluster.core.read_namespaced_config_map(name, cluster.namespace)
    except client.ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


async def test_background_deletion_collects_dependents(cluster: Cluster) -> None:
    _, names = await _owner_and_dependents(cluster, block=False)
    assert await _secret_names(cluster) == names
    await cluster.core.delete_namespaced_config_map(
        "owner", cluster.namespace, propagation_policy="Background"
    )
    assert not await _exists(cluster, "owner")
    await wait_for(lambda: _empty(cluster))


async def _empty(cluster: Cluster) -> bool:
    return await _secret_names(cluster) == []


async def test_foreground_deletion_deletes_dependents_first(cluster: Cluster) -> None:
    ns = cluster.namespace
    _, names = await _owner_and_dependents(cluster, block=True)
    # A finalizer on one dependent holds the owner in foreground deletion.
    await cluster.core.patch_namespaced_secret(
        "dep-1", ns, {"metadata": {"finalizers": ["example.com/hold"]}}
    )
    status, body, _ = await cluster.raw(
        "DELETE",
        f"/api/v1/namespaces/{ns}/configmaps/owner",
        body={"propagationPolicy": "Foreground"},
    )
    assert status == 200
    assert body["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in body["metadata"]["finalizers"]
    await wait_for(lambda: _secret_names_are(cluster, ["dep-1"]))
    owner = await cluster.core.read_namespaced_config_map("owner", ns)
    assert owner.metadata.deletion_timestamp is not None
    held = await cluster.core.read_namespaced_secret("dep-1", ns)
    assert held.metadata.deletion_timestamp is not None
    await cluster.core.patch_namespaced_secret("dep-1", ns, {"metadata": {"finalizers": None}})
    await wait_for(lambda: _gone(cluster, "owner"))
    assert await _secret_names(cluster) == []
    del names


async def _secret_names_are(cluster: Cluster, expected: list[str]) -> bool:
    return await _secret_names(cluster) == expected


async def _gone(cluster: Cluster, name: str) -> bool:
    return not await _exists(cluster, name)


async def test_orphan_deletion_keeps_dependents_without_the_reference(cluster: Cluster) -> None:
    ns = cluster.namespace
    _, names = await _owner_and_dependents(cluster, block=True)
    await cluster.core.delete_namespaced_config_map("owner", ns, propagation_policy="Orphan")
    await wait_for(lambda: _gone(cluster, "owner"))
    assert await _secret_names(cluster) == names
    for name in names:
        secret = await cluster.core.read_namespaced_secret(name, ns)
        assert not secret.metadata.owner_references


async def test_dangling_owner_reference_is_collected(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.core.create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": "dep-orphan",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "never-existed",
                        "uid": "00000000-0000-0000-0000-000000000000",
                    }
                ],
            }
        },
    )
    await wait_for(lambda: _empty(cluster), timeout=30)


async def test_finalizers_hold_deletion_until_removed(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.core.create_namespaced_config_map(
        ns, {"metadata": {"name": "fin", "finalizers": ["example.com/keep"]}}
    )
    await cluster.core.delete_namespaced_config_map("fin", ns)
    held = await cluster.core.read_namespaced_config_map("fin", ns)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["example.com/keep"]
    status, body, _ = await cluster.raw(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/fin",
        body={"metadata": {"finalizers": ["example.com/keep", "example.com/new"]}},
        content_type="application/merge-patch+json",
    )
    assert status == 422
    assert "no new finalizers can be added if the object is being deleted" in body["message"]
    await cluster.core.patch_namespaced_config_map("fin", ns, {"metadata": {"finalizers": None}})
    assert not await _exists(cluster, "fin")


async def test_namespace_deletion_removes_contents_then_namespace(cluster: Cluster) -> None:
    name = cluster.fresh_namespace_name()
    await cluster.core.create_namespace({"metadata": {"name": name}})
    await cluster.core.create_namespaced_config_map(name, {"metadata": {"name": "inside"}})
    deleted = await cluster.raw("DELETE", f"/api/v1/namespaces/{name}")
    assert deleted[0] == 200
    assert deleted[1]["status"]["phase"] == "Terminating"

    async def namespace_gone() -> bool:
        try:
            await cluster.core.read_namespace(name)
        except client.ApiException as err:
            return err.status == 404
        return False

    await wait_for(namespace_gone, timeout=30)
    listed = await cluster.core.list_namespaced_config_map(name)
    assert [item.metadata.name for item in listed.items if item.metadata.name == "inside"] == []


async def test_creating_in_a_terminating_namespace_is_forbidden(cluster: Cluster) -> None:
    name = cluster.fresh_namespace_name()
    await cluster.core.create_namespace({"metadata": {"name": name}})
    await cluster.core.create_namespaced_config_map(
        name, {"metadata": {"name": "hold", "finalizers": ["example.com/hold"]}}
    )
    await cluster.core.delete_namespace(name)
    status, body, _ = await cluster.raw(
        "POST", f"/api/v1/namespaces/{name}/configmaps", body={"metadata": {"name": "late"}}
    )
    assert status == 403
    assert body["reason"] == "Forbidden"
    assert "because it is being terminated" in body["message"]
    assert body["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    await cluster.core.patch_namespaced_config_map("hold", name, {"metadata": {"finalizers": None}})


async def test_default_namespace_may_not_be_deleted(cluster: Cluster) -> None:
    status, body, _ = await cluster.raw("DELETE", "/api/v1/namespaces/default")
    assert status == 403
    assert body["message"] == 'namespaces "default" is forbidden: this namespace may not be deleted'
