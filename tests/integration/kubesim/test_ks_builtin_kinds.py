"""DaemonSets, ServiceAccounts, RBAC kinds and unknown-field handling, over HTTP.

The same assertions hold for kube-apiserver (SERVICEGROUP_E2E_KUBECONFIG): discovery and
OpenAPI list the kinds, defaulting and validation answer as upstream, and unknown fields of
built-in objects are rejected, warned about or dropped as `fieldValidation` says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from ks_support import Cluster
from kubernetes_asyncio import client

pytestmark = pytest.mark.asyncio

RBAC = "rbac.authorization.k8s.io"


def _daemonset(name: str = "agent", **spec_extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
            **spec_extra,
        },
    }


async def test_discovery_lists_the_kinds(cluster: Cluster) -> None:
    status, body, _ = await cluster.raw("GET", f"/apis/{RBAC}/v1")
    assert status == 200
    resources = {r["name"]: r for r in body["resources"]}
    assert set(resources) >= {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}
    assert resources["roles"]["namespaced"] is True
    assert resources["clusterroles"]["namespaced"] is False
    assert resources["clusterrolebindings"]["kind"] == "ClusterRoleBinding"
    assert set(resources["roles"]["verbs"]) == {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }
    status, body, _ = await cluster.raw("GET", "/apis/apps/v1")
    daemonsets = {r["name"]: r for r in body["resources"]}
    assert daemonsets["daemonsets"]["shortNames"] == ["ds"]
    assert daemonsets["daemonsets"]["categories"] == ["all"]
    assert "daemonsets/status" in daemonsets
    status, body, _ = await cluster.raw("GET", "/api/v1")
    core = {r["name"]: r for r in body["resources"]}
    assert core["serviceaccounts"]["shortNames"] == ["sa"]
    status, body, _ = await cluster.raw("GET", "/openapi/v3")
    assert status == 200
    assert f"apis/{RBAC}/v1" in body["paths"]
    status, body, _ = await cluster.raw("GET", f"/openapi/v3/apis/{RBAC}/v1")
    assert status == 200
    schemas = body["components"]["schemas"]
    assert schemas["io.k8s.api.rbac.v1.RoleBinding"]["x-kubernetes-group-version-kind"] == [
        {"group": RBAC, "kind": "RoleBinding", "version": "v1"}
    ]
    assert "io.k8s.api.rbac.v1.Subject" in schemas


async def test_daemonset_defaults_generation_and_immutable_selector(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.apps.create_namespaced_daemon_set(ns, _daemonset())
    assert created.metadata.generation == 1
    assert created.metadata.annotations["deprecated.daemonset.template.generation"] == "1"
    assert created.spec.revision_history_limit == 10
    strategy = created.spec.update_strategy
    assert strategy.type == "RollingUpdate"
    assert strategy.rolling_update.max_unavailable == 1
    assert strategy.rolling_update.max_surge == 0
    template = created.spec.template.spec
    assert template.restart_policy == "Always"
    assert template.dns_policy == "ClusterFirst"
    assert template.containers[0].termination_message_path == "/dev/termination-log"
    status, body, _ = await cluster.raw(
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent",
        body={"spec": {"selector": {"matchLabels": {"app": "other"}}}},
        content_type="application/merge-patch+json",
    )
    assert status == 422
    causes = body["details"]["causes"]
    assert any(
        c["field"] == "spec.selector" and c["message"].endswith("field is immutable")
        for c in causes
    )
    patched = await cluster.apps.patch_namespaced_daemon_set(
        "agent", ns, {"spec": {"template": {"metadata": {"annotations": {"r": "2"}}}}}
    )
    assert patched.metadata.generation == 2
    assert patched.metadata.annotations["deprecated.daemonset.template.generation"] == "2"


async def test_daemonset_template_must_match_its_selector(cluster: Cluster) -> None:
    body = _daemonset("mismatch")
    body["spec"]["template"]["metadata"]["labels"] = {"app": "else"}
    status, answer, _ = await cluster.raw(
        "POST", f"/apis/apps/v1/namespaces/{cluster.namespace}/daemonsets", body=body
    )
    assert status == 422
    assert answer["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: {"app":"else"}: `selector` does not match template `labels`',
        "field": "spec.template.metadata.labels",
    }


async def test_role_binding_role_ref_is_immutable(cluster: Cluster) -> None:
    ns = cluster.namespace
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    await rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    binding = await rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "read"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
        },
    )
    assert binding.role_ref.name == "reader"
    status, body, _ = await cluster.raw(
        "PATCH",
        f"/apis/{RBAC}/v1/namespaces/{ns}/rolebindings/read",
        body={"roleRef": {"name": "writer"}},
        content_type="application/merge-patch+json",
    )
    assert status == 422
    assert body["details"]["causes"][-1]["field"] == "roleRef"
    assert body["details"]["causes"][-1]["message"].endswith("cannot change roleRef")
    status, body, _ = await cluster.raw(
        "POST",
        f"/apis/{RBAC}/v1/namespaces/{ns}/roles",
        body={"metadata": {"name": "empty-verbs"}, "rules": [{"apiGroups": [""]}]},
    )
    assert status == 422
    assert [c["field"] for c in body["details"]["causes"]] == [
        "rules[0].verbs",
        "rules[0].resources",
    ]


async def test_service_accounts(cluster: Cluster) -> None:
    ns = cluster.namespace
    created = await cluster.core.create_namespaced_service_account(
        ns, {"metadata": {"name": "robot"}, "automountServiceAccountToken": False}
    )
    assert created.automount_service_account_token is False
    listed = await cluster.core.list_namespaced_service_account(ns)
    assert "robot" in [sa.metadata.name for sa in listed.items]


async def test_field_validation_strict_warn_ignore_and_default(cluster: Cluster) -> None:
    path = f"/api/v1/namespaces/{cluster.namespace}/configmaps"

    def configmap(name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "data": {"a": "b"}, "spec": {"x": 1}}

    status, body, _ = await cluster.raw(
        "POST", path, body=configmap("strict"), query=[("fieldValidation", "Strict")]
    )
    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "spec"'
    )
    for name, query in (("warn", [("fieldValidation", "Warn")]), ("default", [])):
        status, body, headers = await cluster.raw("POST", path, body=configmap(name), query=query)
        assert status == 201
        assert "spec" not in body  # dropped on decode
        assert headers.get("Warning") == '299 - "unknown field \\"spec\\""'
    status, body, headers = await cluster.raw(
        "POST", path, body=configmap("ignore"), query=[("fieldValidation", "Ignore")]
    )
    assert status == 201
    assert "spec" not in body
    assert "Warning" not in headers


async def test_every_unknown_field_gets_its_warning(cluster: Cluster) -> None:
    cluster.require_sim()  # a raw HTTP session to the simulator, no credentials
    body = _daemonset("warned")
    body["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    body["spec"]["foo"] = "bar"
    url = f"{cluster.url}/apis/apps/v1/namespaces/{cluster.namespace}/daemonsets"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        assert response.status == 201
        warnings = response.headers.getall("Warning")
        created = await response.json()
    assert warnings == [
        '299 - "unknown field \\"spec.template.spec.containers[0].bogus\\""',
        '299 - "unknown field \\"spec.foo\\""',
    ]
    assert "foo" not in created["spec"]


@pytest.mark.kubectl
@pytest.mark.usefixtures("kubectl_available")
async def test_kubectl_applies_and_prints_the_new_kinds(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.namespace
    docs = [
        {**_daemonset("node-agent"), "metadata": {"name": "node-agent", "namespace": ns}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "bot", "namespace": ns},
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "Role",
            "metadata": {"name": "bot", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "bot", "namespace": ns},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "bot"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "bot", "namespace": ns},
                {"kind": "User", "name": "alice"},
            ],
        },
    ]
    manifest = tmp_path / "kinds.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    result = await cluster.kubectl("apply", "-f", str(manifest))
    assert result.code == 0, result.stderr
    assert "daemonset.apps/node-agent created" in result.stdout
    assert "rolebinding.rbac.authorization.k8s.io/bot created" in result.stdout
    result = await cluster.kubectl("get", "-n", ns, "ds", "-o", "wide")
    assert result.code == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:7] == [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE",
    ]
    assert row.split()[0] == "node-agent"
    result = await cluster.kubectl("get", "-n", ns, "rolebinding", "bot", "-o", "wide")
    assert result.code == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert row.split()[:2] == ["bot", "Role/bot"]
    assert row.split()[-2:] == ["alice", f"{ns}/bot"]
    result = await cluster.kubectl("get", "-n", ns, "sa", "bot")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["NAME", "SECRETS", "AGE"]
    # kubectl asks for strict validation: an unknown field fails the apply, whether it
    # patches the object (the patch handler's 422) or creates it (the decoder's 400).
    docs[0]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyx"] = "Always"
    unknown = (
        'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolicyx"'
    )
    manifest.write_text(yaml.safe_dump(docs[0]))
    result = await cluster.kubectl("apply", "-f", str(manifest))
    assert result.code != 0
    assert result.stderr.startswith("The request is invalid: patch: Invalid value: ")
    assert result.stderr.rstrip().endswith(unknown)
    docs[0]["metadata"]["name"] = "other-agent"
    manifest.write_text(yaml.safe_dump(docs[0]))
    result = await cluster.kubectl("apply", "-f", str(manifest))
    assert result.code != 0
    assert f'DaemonSet in version "v1" cannot be handled as a DaemonSet: {unknown}' in (
        result.stderr
    )
