"""rbac.authorization.k8s.io/v1 validation: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Owns the rules of pkg/apis/rbac/validation: every policy rule names its verbs, resource
rules name API groups and resources, non-resource URLs only in cluster roles and never
mixed with resources, an aggregation rule has selectors, a binding's `roleRef` points at a
Role or ClusterRole of this group and never changes, subjects are ServiceAccounts (with a
namespace in cluster bindings), Users or Groups. Names of roles and bindings only need to
be valid path segments (`system:controller:x` is fine).

Invariants:
- Inputs are defaulted objects (`roleRef.apiGroup` and User/Group subjects' `apiGroup` are
  filled); nothing is authorized here: kubesim enforces no RBAC, so escalation checks and
  the cluster-role aggregation controller are not emulated.
- Bad list values print as compact JSON like every structured value in `fielderrors`.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim import names
from servicegroup.kubesim.fielderrors import Cause, invalid, not_supported, required
from servicegroup.kubesim.objpath import dicts, get_dict, get_list, get_str
from servicegroup.kubesim.validation_meta import (
    path_segment_name_errors,
    selector_matcher,
    validate_label_selector,
    validate_object_meta_update,
)

GROUP = "rbac.authorization.k8s.io"
_SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def _policy_rule(rule: dict[str, Any], *, namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not get_list(rule, "verbs"):
        causes.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = get_list(rule, "nonResourceURLs")
    if urls:
        if namespaced:
            causes.append(
                invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if (
            get_list(rule, "apiGroups")
            or get_list(rule, "resources")
            or get_list(rule, "resourceNames")
        ):
            causes.append(
                invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return causes
    if not get_list(rule, "apiGroups"):
        causes.append(
            required(f"{path}.apiGroups", "resource rules must supply at least one api group")
        )
    if not get_list(rule, "resources"):
        causes.append(
            required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    if get_list(rule, "resourceNames") and len(get_list(rule, "resources")) > 1:
        causes.append(
            required(f"{path}.resourceNames", "resource names cannot apply to multiple resources")
        )
    return causes


def _rules(obj: dict[str, Any], *, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in dicts(get_list(obj, "rules")):
        causes += _policy_rule(rule, namespaced=namespaced, path=f"rules[{i}]")
    return causes


def validate_role(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateRole` after ObjectMeta: the policy rules."""
    return _rules(obj, namespaced=True)


def validate_cluster_role(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateClusterRole` after ObjectMeta: rules, then the aggregation rule."""
    causes = _rules(obj, namespaced=False)
    aggregation = obj.get("aggregationRule")
    if isinstance(aggregation, dict):
        selectors = get_list(aggregation, "clusterRoleSelectors")
        if not selectors:
            causes.append(
                required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                )
            )
        for i, selector in enumerate(selectors):
            path = f"aggregationRule.clusterRoleSelectors[{i}]"
            causes += validate_label_selector(selector, path)
            if selector_matcher(selector) is None:
                causes.append(invalid(path, selector, "invalid label selector."))
    return causes


def _subject(subject: dict[str, Any], *, namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = get_str(subject, "name")
    api_group = get_str(subject, "apiGroup")
    if not name:
        causes.append(required(f"{path}.name"))
    kind = get_str(subject, "kind")
    if kind == "ServiceAccount":
        if name:
            causes += [
                invalid(f"{path}.name", name, msg) for msg in names.dns1123_subdomain_errors(name)
            ]
        if api_group:
            causes.append(not_supported(f"{path}.apiGroup", api_group, ("",)))
        if not namespaced and not get_str(subject, "namespace"):
            causes.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if not name:
            word = "user" if kind == "User" else "group"
            causes.append(invalid(f"{path}.name", name, f"{word} name cannot be empty"))
        if api_group != GROUP:
            causes.append(not_supported(f"{path}.apiGroup", api_group, (GROUP,)))
    else:
        causes.append(not_supported(f"{path}.kind", kind, _SUBJECT_KINDS))
    return causes


def _binding(obj: dict[str, Any], *, namespaced: bool) -> list[Cause]:
    role_ref = get_dict(obj, "roleRef") or {}
    causes: list[Cause] = []
    api_group = get_str(role_ref, "apiGroup")
    if api_group != GROUP:
        causes.append(not_supported("roleRef.apiGroup", api_group, (GROUP,)))
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    kind = get_str(role_ref, "kind")
    if kind not in kinds:
        causes.append(not_supported("roleRef.kind", kind, kinds))
    name = get_str(role_ref, "name")
    if not name:
        causes.append(required("roleRef.name"))
    else:
        causes += [invalid("roleRef.name", name, msg) for msg in path_segment_name_errors(name)]
    for i, subject in dicts(get_list(obj, "subjects")):
        causes += _subject(subject, namespaced=namespaced, path=f"subjects[{i}]")
    return causes


def validate_role_binding(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateRoleBinding` after ObjectMeta."""
    return _binding(obj, namespaced=True)


def validate_cluster_role_binding(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateClusterRoleBinding` after ObjectMeta."""
    return _binding(obj, namespaced=False)


def meta_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """The role validators end with `ValidateObjectMetaUpdate` (core's, finalizers checked)."""
    return validate_object_meta_update(
        get_dict(new, "metadata"), get_dict(old, "metadata"), kube_finalizers=True
    )


def binding_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """`ValidateRoleBindingUpdate`'s tail: ObjectMeta update, then the immutable roleRef."""
    causes = meta_update(new, old)
    role_ref = get_dict(new, "roleRef") or {}
    old_ref = get_dict(old, "roleRef") or {}
    fields = ("apiGroup", "kind", "name")
    if any(get_str(role_ref, f) != get_str(old_ref, f) for f in fields):
        value = {f: get_str(role_ref, f) for f in fields}
        causes.append(invalid("roleRef", value, "cannot change roleRef"))
    return causes
