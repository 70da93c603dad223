"""Unknown fields of built-in kinds: pruned on decode, and fieldValidation=Strict|Warn|Ignore."""

from __future__ import annotations

from typing import Any

import pytest

from servicegroup.kubesim import fieldvalidation
from servicegroup.kubesim.engine import APPLY_PATCH, MERGE_PATCH, STRATEGIC_PATCH, WriteContext
from servicegroup.kubesim.errors import ApiError
from servicegroup.kubesim.local import LocalClient


def deployment(**spec_extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"any/key": "kept"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
            **spec_extra,
        },
    }


def test_unknown_fields_are_found_at_every_depth_and_dropped() -> None:
    obj = deployment(foo=1)
    obj["bogus"] = True
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyx"] = "Always"
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "x": 1}]
    found = fieldvalidation.drop_unknown_builtin(obj, "apps", "v1", "Deployment")
    assert fieldvalidation.unknown_field_messages(found) == [
        'unknown field "spec.template.spec.containers[0].imagePullPolicyx"',
        'unknown field "spec.template.spec.containers[0].ports[0].x"',
        'unknown field "spec.foo"',
        'unknown field "bogus"',
    ]
    assert obj == {
        **deployment(),
        "spec": {
            **deployment()["spec"],
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }


def test_maps_and_free_form_values_keep_everything() -> None:
    revision = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "r", "annotations": {"a": "b"}},
        "data": {"spec": {"anything": {"goes": [1, 2]}}},
        "revision": 1,
    }
    assert fieldvalidation.drop_unknown_builtin(revision, "apps", "v1", "ControllerRevision") == []
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n"},
        "status": {
            "capacity": {"cpu": "4", "example.com/gpu": "1"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }
    assert fieldvalidation.drop_unknown_builtin(node, "", "v1", "Node") == []
    # Decoding is case-sensitive.
    node["status"]["daemonEndpoints"]["kubeletEndpoint"]["port"] = 1
    found = fieldvalidation.drop_unknown_builtin(node, "", "v1", "Node")
    assert fieldvalidation.unknown_field_messages(found) == [
        'unknown field "status.daemonEndpoints.kubeletEndpoint.port"'
    ]


def test_crd_schemas_are_checked_as_json_schema_props() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "a.b.c"},
        "spec": {
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                            "properties": {
                                "spec": {"type": "object", "default": {"free": {"form": 1}}},
                                "x": {"type": "string", "nullabel": True},
                            },
                        }
                    },
                }
            ]
        },
    }
    found = fieldvalidation.drop_unknown_builtin(
        crd, "apiextensions.k8s.io", "v1", "CustomResourceDefinition"
    )
    assert fieldvalidation.unknown_field_messages(found) == [
        'unknown field "spec.versions[0].schema.openAPIV3Schema.properties.x.nullabel"'
    ]


def test_go_print_of_a_strategic_patch() -> None:
    patch = {"spec": {"replicas": 2, "foo": [1.5, "x", None, True]}, "metadata": {}}
    assert (
        fieldvalidation.go_print(patch)
        == "map[metadata:map[] spec:map[foo:[1.5 x <nil> true] replicas:2]]"
    )


def ctx(mode: str) -> WriteContext:
    return WriteContext(manager="test", field_validation=mode)


def test_create_strict_warn_ignore(local: LocalClient) -> None:
    engine = local.engine
    rt = local.resource("deployments")
    body = deployment(foo=1)
    with pytest.raises(ApiError) as raised:
        engine.create(rt, "default", body, ctx("Strict"))
    assert raised.value.code == 400
    assert raised.value.reason == "BadRequest"
    assert raised.value.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.foo"'
    )
    warn = ctx("Warn")
    created = engine.create(rt, "default", body, warn)
    assert warn.warnings == ['unknown field "spec.foo"']
    assert "foo" not in created["spec"]
    assert "foo" not in local.get("deployments", "web", namespace="default")["spec"]
    ignore = ctx("Ignore")
    body["metadata"]["name"] = "web2"
    created = engine.create(rt, "default", body, ignore)
    assert ignore.warnings == []
    assert "foo" not in created["spec"]


def test_update_reports_like_create(local: LocalClient) -> None:
    live = local.create("configmaps", {"metadata": {"name": "cm", "namespace": "default"}})
    body = {**live, "extra": {"x": 1}}
    with pytest.raises(ApiError) as raised:
        local.engine.update(local.resource("configmaps"), "default", "cm", body, ctx("Strict"))
    assert raised.value.message == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "extra"'
    )


def test_patches_report_the_patched_object(local: LocalClient) -> None:
    local.create("configmaps", {"metadata": {"name": "cm", "namespace": "default"}})
    engine, rt = local.engine, local.resource("configmaps")
    with pytest.raises(ApiError) as raised:
        engine.patch(rt, "default", "cm", MERGE_PATCH, {"bogus": 1}, ctx=ctx("Strict"))
    status = raised.value.status
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    cause = status["details"]["causes"][0]
    assert cause["field"] == "patch"
    assert cause["message"].startswith('Invalid value: "{\\"apiVersion\\":\\"v1\\",\\"bogus\\":1,')
    assert cause["message"].endswith('": strict decoding error: unknown field "bogus"')
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: ')
    assert "name" not in status["details"]
    with pytest.raises(ApiError) as raised:
        engine.patch(rt, "default", "cm", STRATEGIC_PATCH, {"bogus": [1]}, ctx=ctx("Strict"))
    assert raised.value.status["details"]["causes"][0]["message"] == (
        'Invalid value: "map[bogus:[1]]": strict decoding error: unknown field "bogus"'
    )
    warn = ctx("Warn")
    patched, _ = engine.patch(rt, "default", "cm", MERGE_PATCH, {"bogus": 1, "data": {}}, ctx=warn)
    assert warn.warnings == ['unknown field "bogus"']
    assert "bogus" not in patched


def test_server_side_apply_refuses_undeclared_fields(local: LocalClient) -> None:
    engine, rt = local.engine, local.resource("deployments")
    config = deployment()
    container = config["spec"]["template"]["spec"]["containers"][0]
    container["bogus"] = 1
    container["ports"] = [{"containerPort": 80, "x": 1}]
    with pytest.raises(ApiError) as raised:
        engine.patch(rt, "default", "web", APPLY_PATCH, config, ctx=ctx("Ignore"))
    status = raised.value.status
    assert status["code"] == 500
    assert "reason" not in status
    assert status["message"] == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): errors:\n"
        '  .spec.template.spec.containers[name="c"].bogus: field not declared in schema\n'
        '  .spec.template.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].x: '
        "field not declared in schema"
    )
    cluster_scoped = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "x": 1}
    with pytest.raises(ApiError) as raised:
        engine.patch(
            local.resource("namespaces"), None, "n", APPLY_PATCH, cluster_scoped, ctx=ctx("Warn")
        )
    assert raised.value.message == (
        "failed to create typed patch object (/n; /v1, Kind=Namespace): .x: field not declared "
        "in schema"
    )


def test_custom_resources_use_the_same_messages(local: LocalClient) -> None:
    local.create(
        "customresourcedefinitions",
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.fv.example.com"},
            "spec": {
                "group": "fv.example.com",
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"size": {"type": "integer"}},
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        },
    )
    rt = local.resource("gadgets.fv.example.com")
    body = {
        "apiVersion": "fv.example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "default"},
        "spec": {"size": 1, "colour": "red"},
    }
    with pytest.raises(ApiError) as raised:
        local.engine.create(rt, "default", body, ctx("Strict"))
    assert raised.value.message == (
        'Gadget in version "v1" cannot be handled as a Gadget: strict decoding error: '
        'unknown field "spec.colour"'
    )
    with pytest.raises(ApiError) as raised:
        local.engine.patch(rt, "default", "g", APPLY_PATCH, body, ctx=ctx("Strict"))
    assert raised.value.code == 500
    assert raised.value.message.endswith(".spec.colour: field not declared in schema")
    warn = ctx("Warn")
    created = local.engine.create(rt, "default", body, warn)
    assert warn.warnings == ['unknown field "spec.colour"']
    assert created["spec"] == {"size": 1}
