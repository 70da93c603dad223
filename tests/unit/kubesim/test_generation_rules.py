"""metadata.generation per kind, as kube's registry strategies set it (PrepareForCreate/Update)."""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.local import LocalClient

TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


def generation(obj: dict[str, Any]) -> int | None:
    value = obj["metadata"].get("generation")
    return None if value is None else int(value)


def slice_(name: str = "s1") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default", "labels": {"a": "1"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }


def test_endpointslice_generation_counts_changes_outside_metadata_and_labels(
    local: LocalClient,
) -> None:
    created = local.create("endpointslices", slice_())
    assert generation(created) == 1
    # Annotations alone: metadata, not counted.
    patched = local.patch(
        "endpointslices", "s1", {"metadata": {"annotations": {"x": "y"}}}, namespace="default"
    )
    assert generation(patched) == 1
    # Labels are counted for EndpointSlices.
    patched = local.patch(
        "endpointslices", "s1", {"metadata": {"labels": {"a": "2"}}}, namespace="default"
    )
    assert generation(patched) == 2
    # So is any top-level field (an EndpointSlice has no spec).
    patched = local.patch(
        "endpointslices",
        "s1",
        {"endpoints": [{"addresses": ["10.0.0.2"]}]},
        namespace="default",
    )
    assert generation(patched) == 3
    # A no-op write changes nothing.
    again = local.patch(
        "endpointslices", "s1", {"metadata": {"labels": {"a": "2"}}}, namespace="default"
    )
    assert generation(again) == 3
    assert again["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


def test_kinds_without_a_generation_rule_never_get_one(local: LocalClient) -> None:
    service = local.create(
        "services",
        {"metadata": {"name": "svc", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}},
    )
    assert generation(service) is None
    service = local.patch(
        "services", "svc", {"spec": {"ports": [{"port": 81}]}}, namespace="default"
    )
    assert generation(service) is None
    cm = local.create("configmaps", {"metadata": {"name": "cm", "namespace": "default"}})
    cm = local.patch("configmaps", "cm", {"data": {"a": "b"}}, namespace="default")
    assert generation(cm) is None
    role = local.create(
        "roles.rbac.authorization.k8s.io",
        {"metadata": {"name": "r", "namespace": "default"}, "rules": []},
    )
    assert generation(role) is None


def test_requests_cannot_set_the_generation_on_update(local: LocalClient) -> None:
    created = local.create("endpointslices", slice_())
    body = {**created, "metadata": {**created["metadata"], "generation": 7}}
    updated = local.update("endpointslices", body)
    assert generation(updated) == 1


def daemonset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "ds", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "ds"}},
            "template": {
                "metadata": {"labels": {"app": "ds"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }


def test_daemonset_generation_and_template_generation(local: LocalClient) -> None:
    created = local.create("daemonsets", daemonset())
    assert generation(created) == 1
    assert created["metadata"]["annotations"][TEMPLATE_GENERATION] == "1"
    assert created["status"] == {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    }
    # A spec change outside the template bumps the generation only.
    ds = local.patch("daemonsets", "ds", {"spec": {"minReadySeconds": 5}}, namespace="default")
    assert generation(ds) == 2
    assert ds["metadata"]["annotations"][TEMPLATE_GENERATION] == "1"
    # A template change bumps both.
    ds = local.patch(
        "daemonsets",
        "ds",
        {"spec": {"template": {"metadata": {"annotations": {"r": "1"}}}}},
        namespace="default",
    )
    assert generation(ds) == 3
    assert ds["metadata"]["annotations"][TEMPLATE_GENERATION] == "2"
    # Requests cannot set the template generation.
    ds = local.patch(
        "daemonsets",
        "ds",
        {"metadata": {"annotations": {TEMPLATE_GENERATION: "9"}}},
        namespace="default",
    )
    assert ds["metadata"]["annotations"][TEMPLATE_GENERATION] == "2"
    assert generation(ds) == 3
    # Status writes never bump it.
    ds = local.update_status(
        "daemonsets", {**ds, "status": {**ds["status"], "desiredNumberScheduled": 3}}
    )
    assert ds["status"]["desiredNumberScheduled"] == 3
    assert generation(ds) == 3


def crd(*, status: bool) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "data": {"type": "string"},
                },
            }
        },
    }
    plural = "withstatuses" if status else "nostatuses"
    kind = "WithStatus" if status else "NoStatus"
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.gen.example.com"},
        "spec": {
            "group": "gen.example.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [version],
        },
    }


def test_custom_resources_count_everything_but_metadata(local: LocalClient) -> None:
    local.create("customresourcedefinitions", crd(status=False))
    resource = "nostatuses.gen.example.com"
    obj = local.create(
        resource,
        {
            "apiVersion": "gen.example.com/v1",
            "kind": "NoStatus",
            "metadata": {"name": "a", "namespace": "default"},
            "spec": {"x": 1},
        },
    )
    assert generation(obj) == 1
    obj = local.patch(resource, "a", {"metadata": {"labels": {"l": "1"}}}, namespace="default")
    assert generation(obj) == 1
    obj = local.patch(resource, "a", {"data": "d"}, namespace="default")
    assert generation(obj) == 2
    # Without a status subresource, status is like any other field.
    obj = local.patch(resource, "a", {"status": {"ok": True}}, namespace="default")
    assert generation(obj) == 3


def test_custom_resource_status_writes_do_not_count(local: LocalClient) -> None:
    local.create("customresourcedefinitions", crd(status=True))
    resource = "withstatuses.gen.example.com"
    obj = local.create(
        resource,
        {
            "apiVersion": "gen.example.com/v1",
            "kind": "WithStatus",
            "metadata": {"name": "a", "namespace": "default"},
            "spec": {"x": 1},
        },
    )
    assert generation(obj) == 1
    obj = local.patch(
        resource, "a", {"status": {"ok": True}}, namespace="default", subresource="status"
    )
    assert obj["status"] == {"ok": True}
    assert generation(obj) == 1
    # Status sent to the main endpoint is ignored, so it does not count either.
    obj = local.patch(resource, "a", {"status": {"ok": False}}, namespace="default")
    assert obj["status"] == {"ok": True}
    assert generation(obj) == 1
    obj = local.patch(resource, "a", {"spec": {"x": 2}}, namespace="default")
    assert generation(obj) == 2
