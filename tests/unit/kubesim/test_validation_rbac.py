"""RBAC kinds and ServiceAccounts: defaulting, validation and update rules (pkg/apis/rbac)."""

from __future__ import annotations

from typing import Any

import pytest

from servicegroup.kubesim.errors import ApiError
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.validation import validate_create, validate_update

RBAC = "rbac.authorization.k8s.io"


def messages(causes: list[Any]) -> list[str]:
    return [f"{c.field}: {c.message}" for c in causes]


def role(**extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "default"}, **extra}


def test_policy_rules_need_verbs_groups_and_resources() -> None:
    obj = role(
        rules=[
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"apiGroups": [""], "resources": ["pods", "services"], "resourceNames": ["x"]},
            {"verbs": ["get"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]},
        ]
    )
    assert messages(validate_create(RBAC, "Role", obj)) == [
        "rules[1].verbs: Required value: verbs must contain at least one value",
        "rules[1].resourceNames: Required value: resource names cannot apply to multiple resources",
        "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
        "rules[2].resources: Required value: resource rules must supply at least one resource",
        'rules[3].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply '
        "to non-resource URLs",
        'rules[3].nonResourceURLs: Invalid value: ["/healthz"]: rules cannot apply to both '
        "regular resources and non-resource URLs",
    ]


def test_cluster_roles_may_name_non_resource_urls_and_aggregate() -> None:
    obj = {
        "metadata": {"name": "system:metrics-reader"},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}],
    }
    assert validate_create(RBAC, "ClusterRole", obj) == []
    obj["aggregationRule"] = {"clusterRoleSelectors": []}
    assert messages(validate_create(RBAC, "ClusterRole", obj)) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector "
        "required if aggregationRule is non-nil"
    ]


def test_role_names_only_need_to_be_path_segments() -> None:
    named = {"metadata": {"name": "system:controller:x", "namespace": "default"}, "rules": []}
    assert validate_create(RBAC, "Role", named) == []
    bad = {"metadata": {"name": "a/b", "namespace": "default"}}
    assert messages(validate_create(RBAC, "RoleBinding", bad))[0] == (
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    )


def binding(kind: str = "RoleBinding", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "b"}
    if kind == "RoleBinding":
        meta["namespace"] = "default"
    return {
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "alice"}],
        **extra,
    }


def test_binding_role_refs_and_subjects() -> None:
    assert validate_create(RBAC, "RoleBinding", binding()) == []
    obj = binding(
        roleRef={"apiGroup": "example.com", "kind": "Pod", "name": ""},
        subjects=[
            {"kind": "ServiceAccount", "name": "Bad_Name", "apiGroup": RBAC},
            {"kind": "Group", "name": "", "apiGroup": ""},
            {"kind": "Robot", "name": "r2"},
        ],
    )
    assert messages(validate_create(RBAC, "RoleBinding", obj)) == [
        'roleRef.apiGroup: Unsupported value: "example.com": supported values: '
        '"rbac.authorization.k8s.io"',
        'roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"',
        "roleRef.name: Required value",
        'subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must '
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
        "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        'subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported '
        'values: ""',
        "subjects[1].name: Required value",
        'subjects[1].name: Invalid value: "": group name cannot be empty',
        'subjects[1].apiGroup: Unsupported value: "": supported values: '
        '"rbac.authorization.k8s.io"',
        'subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
        '"User", "Group"',
    ]


def test_cluster_bindings_need_cluster_roles_and_service_account_namespaces() -> None:
    obj = binding("ClusterRoleBinding", subjects=[{"kind": "ServiceAccount", "name": "sa"}])
    assert messages(validate_create(RBAC, "ClusterRoleBinding", obj)) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        "subjects[0].namespace: Required value",
    ]


def test_role_ref_is_immutable() -> None:
    old = binding()
    old["metadata"].update(resourceVersion="1", uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    new = binding(roleRef={"apiGroup": RBAC, "kind": "ClusterRole", "name": "r"})
    new["metadata"] = dict(old["metadata"])
    assert messages(validate_update(RBAC, "RoleBinding", old, new)) == [
        'roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole",'
        '"name":"r"}: cannot change roleRef'
    ]
    same = binding(subjects=[])
    same["metadata"] = dict(old["metadata"])
    assert validate_update(RBAC, "RoleBinding", old, same) == []


def test_rbac_defaults_and_empty_rules_through_the_engine(local: LocalClient) -> None:
    created = local.create(
        "rolebindings.rbac.authorization.k8s.io",
        {
            "metadata": {"name": "b", "namespace": "default"},
            "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "ServiceAccount", "name": "sa", "namespace": "default"},
            ],
        },
    )
    assert created["roleRef"] == {"apiGroup": RBAC, "kind": "Role", "name": "r"}
    assert created["subjects"] == [
        {"kind": "User", "name": "alice", "apiGroup": RBAC},
        {"kind": "ServiceAccount", "name": "sa", "namespace": "default"},
    ]
    assert "generation" not in created["metadata"]
    empty = local.create(
        "clusterroles.rbac.authorization.k8s.io", {"metadata": {"name": "nothing"}}
    )
    assert empty["rules"] is None  # `rules` has no omitempty
    with pytest.raises(ApiError) as raised:
        local.patch(
            "rolebindings.rbac.authorization.k8s.io",
            "b",
            {"roleRef": {"name": "other"}},
            namespace="default",
        )
    assert raised.value.code == 422
    assert raised.value.status["details"]["causes"][0]["field"] == "roleRef"


def test_rbac_put_creates_a_missing_object(local: LocalClient) -> None:
    rt = local.resource("roles.rbac.authorization.k8s.io")
    assert rt.allow_create_on_update
    assert not local.resource("serviceaccounts").allow_create_on_update


def test_service_account_secret_references_keep_only_names(local: LocalClient) -> None:
    created = local.create(
        "serviceaccounts",
        {
            "metadata": {"name": "sa", "namespace": "default"},
            "secrets": [{"name": "token", "namespace": "other", "kind": "Secret", "uid": "x"}],
            "imagePullSecrets": [{"name": "pull"}],
        },
    )
    assert created["secrets"] == [{"name": "token"}]
    assert created["imagePullSecrets"] == [{"name": "pull"}]
    with pytest.raises(ApiError) as raised:
        local.create("serviceaccounts", {"metadata": {"name": "Bad", "namespace": "default"}})
    assert raised.value.code == 422
