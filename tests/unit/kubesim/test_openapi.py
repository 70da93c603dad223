"""OpenAPI v3/v2 documents: index and hashes, built-in schemas from models, CRD schemas, paths."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from servicegroup.kubesim.openapi import (
    OpenAPIBuilder,
    builtin_definition_name,
    builtin_definitions,
    definition_name,
    field_description,
)

BUILTINS = [
    ("", "v1", "Namespace", "namespaces", False),
    ("", "v1", "Node", "nodes", False),
    ("", "v1", "Pod", "pods", True),
    ("", "v1", "Service", "services", True),
    ("", "v1", "Endpoints", "endpoints", True),
    ("", "v1", "Event", "events", True),
    ("", "v1", "ConfigMap", "configmaps", True),
    ("", "v1", "Secret", "secrets", True),
    ("apps", "v1", "Deployment", "deployments", True),
    ("apps", "v1", "ReplicaSet", "replicasets", True),
    ("apps", "v1", "StatefulSet", "statefulsets", True),
    ("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    ("apps", "v1", "DaemonSet", "daemonsets", True),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    ("coordination.k8s.io", "v1", "Lease", "leases", True),
    ("events.k8s.io", "v1", "Event", "events", True),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
]

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "deploymentgrids.superedge.io"},
    "spec": {
        "group": "superedge.io",
        "scope": "Namespaced",
        "names": {"kind": "DeploymentGrid", "plural": "deploymentgrids"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "gridUniqKey": {"type": "string", "description": "Label key."},
                                    "note": {"type": "string", "nullable": True},
                                    "port": {
                                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                                        "x-kubernetes-int-or-string": True,
                                    },
                                },
                            }
                        },
                    }
                },
            },
            {
                "name": "v1alpha1",
                "served": False,
                "storage": False,
                "schema": {"openAPIV3Schema": {"type": "object"}},
            },
        ],
    },
}


@pytest.fixture
def builder() -> OpenAPIBuilder:
    built = OpenAPIBuilder()
    for entry in BUILTINS:
        built.add_builtin(*entry)
    return built


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def schemas(builder: OpenAPIBuilder, path: str) -> dict[str, Any]:
    document = builder.v3_group_version(path)
    assert document is not None
    return document["components"]["schemas"]


def test_index_lists_every_group_version_with_hashed_urls(builder: OpenAPIBuilder) -> None:
    index = builder.v3_index()
    assert sorted(index["paths"]) == [
        "api/v1",
        "apis/apiextensions.k8s.io/v1",
        "apis/apps/v1",
        "apis/coordination.k8s.io/v1",
        "apis/discovery.k8s.io/v1",
        "apis/events.k8s.io/v1",
        "apis/rbac.authorization.k8s.io/v1",
    ]
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    assert len(url.split("hash=")[1]) == 128


def test_hash_changes_only_when_content_changes(builder: OpenAPIBuilder) -> None:
    before = builder.v3_index()["paths"]
    assert builder.v3_index()["paths"] == before
    builder.add_crd(CRD)
    after = builder.v3_index()["paths"]
    assert "apis/superedge.io/v1" in after
    assert after["apis/apps/v1"] == before["apis/apps/v1"]
    changed = copy.deepcopy(CRD)
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "extra"
    ] = {"type": "string"}
    builder.add_crd(changed)
    again = builder.v3_index()["paths"]
    assert again["apis/superedge.io/v1"] != after["apis/superedge.io/v1"]
    builder.remove_crd("deploymentgrids.superedge.io")
    assert builder.v3_index()["paths"] == before
    assert builder.v3_group_version("apis/superedge.io/v1") is None


def test_documents_are_cached_until_a_crd_changes(builder: OpenAPIBuilder) -> None:
    first = builder.v3_group_version("apis/apps/v1")
    assert builder.v3_group_version("/apis/apps/v1/") is first
    assert builder.v2() is builder.v2()
    v2 = builder.v2()
    builder.add_crd(CRD)
    assert builder.v2() is not v2
    assert builder.v3_group_version("apis/apps/v1") is not first


def test_deployment_schema_from_models(builder: OpenAPIBuilder) -> None:
    found = schemas(builder, "apis/apps/v1")
    deployment = found["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    assert deployment["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}
    ]
    spec = found["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["required"] == ["selector", "template"]
    assert spec["properties"]["replicas"]["type"] == "integer"
    assert spec["properties"]["replicas"]["format"] == "int32"
    assert spec["properties"]["replicas"]["description"].startswith("Number of desired pods.")
    containers = found["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert containers["items"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    ]
    surge = found["io.k8s.api.apps.v1.RollingUpdateDeployment"]["properties"]["maxSurge"]
    assert surge["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}
    ]
    assert found["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    meta = found["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["creationTimestamp"] == {
        **meta["creationTimestamp"],
        "type": "string",
        "format": "date-time",
    }
    assert meta["generation"]["format"] == "int64"
    assert found["io.k8s.api.apps.v1.DeploymentList"]["properties"]["items"]["items"]["allOf"][0][
        "$ref"
    ].endswith("apps.v1.Deployment")
    assert found["io.k8s.api.core.v1.Container"]["required"] == ["name"]


@pytest.mark.parametrize(
    "path", ["api/v1", "apis/apps/v1", "apis/events.k8s.io/v1", "apis/apiextensions.k8s.io/v1"]
)
def test_every_reference_resolves_within_its_document(builder: OpenAPIBuilder, path: str) -> None:
    found = schemas(builder, path)
    document = builder.v3_group_version(path)
    missing = {r for r in refs(document) if r.removeprefix("#/components/schemas/") not in found}
    assert missing == set()


def test_patch_operations_declare_field_validation(builder: OpenAPIBuilder) -> None:
    document = builder.v3_group_version("apis/apps/v1")
    assert document is not None
    item = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }
    assert patch["x-kubernetes-action"] == "patch"
    names = {p["name"]: p for p in patch["parameters"]}
    assert set(names) == {"dryRun", "fieldManager", "fieldValidation", "force"}
    assert names["fieldValidation"]["in"] == "query"
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace", "pretty"}
    assert "pretty" in {
        p["name"] for p in document["paths"]["/apis/apps/v1/deployments"]["parameters"]
    }
    assert "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status" in document["paths"]
    core = builder.v3_group_version("api/v1")
    assert core is not None
    assert "/api/v1/nodes/{name}" in core["paths"]
    assert "/api/v1/namespaces/{namespace}/nodes/{name}" not in core["paths"]
    assert "/api/v1/configmaps/{name}/status" not in core["paths"]


def test_crd_schema_appears_in_its_group_version(builder: OpenAPIBuilder) -> None:
    builder.add_crd(CRD)
    found = schemas(builder, "apis/superedge.io/v1")
    name = definition_name("superedge.io", "v1", "DeploymentGrid")
    assert name == "io.superedge.v1.DeploymentGrid"
    grid = found[name]
    assert grid["x-kubernetes-group-version-kind"] == [
        {"group": "superedge.io", "kind": "DeploymentGrid", "version": "v1"}
    ]
    assert grid["properties"]["spec"]["properties"]["gridUniqKey"] == {
        "type": "string",
        "description": "Label key.",
    }
    assert grid["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert grid["properties"]["spec"]["properties"]["note"]["nullable"] is True
    assert "io.superedge.v1.DeploymentGridList" in found
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in found
    document = builder.v3_group_version("apis/superedge.io/v1")
    assert document is not None
    patch = document["paths"][
        "/apis/superedge.io/v1/namespaces/{namespace}/deploymentgrids/{name}"
    ]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert (
        "/apis/superedge.io/v1/namespaces/{namespace}/deploymentgrids/{name}/status"
        in document["paths"]
    )
    assert builder.v3_group_version("apis/superedge.io/v1alpha1") is None
    # The builder keeps its own copy of the CRD.
    assert "apiVersion" not in CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


def test_v2_is_swagger_with_definitions_and_patch_metadata(builder: OpenAPIBuilder) -> None:
    builder.add_crd(CRD)
    v2 = builder.v2()
    assert v2["swagger"] == "2.0"
    definitions = v2["definitions"]
    containers = definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}
    assert (
        definitions["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]["$ref"]
        == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    )
    grid = definitions["io.superedge.v1.DeploymentGrid"]["properties"]["spec"]["properties"]
    assert "nullable" not in grid["note"]
    assert "anyOf" not in grid["port"]
    assert grid["port"]["x-kubernetes-int-or-string"] is True
    patch = v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {p["name"] for p in patch["parameters"]} >= {"body", "fieldValidation", "force"}
    missing = {r for r in refs(v2) if r.removeprefix("#/definitions/") not in definitions}
    assert missing == set()


def test_field_description_and_unknown_kind() -> None:
    assert field_description("V1DeploymentSpec", "replicas").startswith("Number of desired pods")
    assert field_description("V1Nope", "x") == ""
    with pytest.raises(KeyError):
        OpenAPIBuilder().add_builtin("batch", "v1", "Nope", "nopes", True)


def test_generation_is_fast(builder: OpenAPIBuilder) -> None:
    builder.add_crd(CRD)
    started = time.perf_counter()
    builder.v3_index()
    builder.v2()
    elapsed = time.perf_counter() - started
    # Measured ~15 ms on the 2-core CI machine; the bound only guards against regressions.
    assert elapsed < 1.0


def test_rbac_and_service_account_definitions_are_named_like_kube() -> None:
    definitions = builtin_definitions()
    assert builtin_definition_name("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") == (
        "io.k8s.api.rbac.v1.ClusterRoleBinding"
    )
    assert (
        builtin_definition_name("", "v1", "ServiceAccount") == "io.k8s.api.core.v1.ServiceAccount"
    )
    assert builtin_definition_name("apps", "v1", "DaemonSet") == "io.k8s.api.apps.v1.DaemonSet"
    assert builtin_definition_name("example.com", "v1", "Thing") is None
    subjects = definitions["io.k8s.api.rbac.v1.RoleBinding"]["properties"]["subjects"]
    assert subjects["items"] == {"$ref": "io.k8s.api.rbac.v1.Subject"}
    assert subjects["x-kubernetes-list-type"] == "atomic"
    assert "io.k8s.api.rbac.v1.RbacV1Subject" not in definitions
    rules = definitions["io.k8s.api.rbac.v1.ClusterRole"]["properties"]["rules"]
    assert rules["items"] == {"$ref": "io.k8s.api.rbac.v1.PolicyRule"}
    secrets = definitions["io.k8s.api.core.v1.ServiceAccount"]["properties"]["secrets"]
    assert secrets["x-kubernetes-patch-merge-key"] == "name"
