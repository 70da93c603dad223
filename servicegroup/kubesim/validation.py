"""kube-apiserver validation of built-in kinds: the entry points the kubesim server calls.

Owns `validate_create` / `validate_update` (per (group, kind): ObjectMeta checks composed
with the kind's spec and update rules, in upstream's order) and re-exports the record and
helpers other modules and tests use: `Cause`, `status_message`, the name predicates,
`validate_object_name` and `validate_label_selector`.

Invariants:
- Pure: inputs are never mutated; call after `defaults.apply_defaults` (and, for a
  Service update, `defaults.prepare_service_update`), as upstream validates decoded,
  defaulted objects.
- An empty result means kube-apiserver would accept the object; otherwise answer 422 with
  `status_message(qualified_kind, name, causes)` and the causes as `details.causes`.
- Unknown kinds (custom resources included) get ObjectMeta checks only, with DNS-subdomain
  names and no namespace rule (scope is not known here).
- `generateName` is the server's: it validates the generated `metadata.name`.
- `metadata.resourceVersion` on update is not checked here (the server fills it for
  unconditional updates, as upstream does before validation).
- For kinds whose spec check reads nothing but `spec` (`spec_check_reads_only_spec`), an
  update whose caller vouches that the new spec is one that check already accepted
  (`spec_accepted=True`: the stored spec, unchanged) skips it: the result would be empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from servicegroup.kubesim import validation_apps as apps
from servicegroup.kubesim import validation_core as core
from servicegroup.kubesim import validation_network as network
from servicegroup.kubesim import validation_rbac as rbac
from servicegroup.kubesim.fielderrors import Cause, invalid, qualified_kind, status_message
from servicegroup.kubesim.names import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
)
from servicegroup.kubesim.objpath import get_dict, get_str
from servicegroup.kubesim.validation_meta import (
    path_segment_name_errors,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
    validate_object_name,
)

__all__ = [
    "Cause",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_qualified_name",
    "is_valid_label_value",
    "qualified_kind",
    "spec_check_reads_only_spec",
    "status_message",
    "validate_create",
    "validate_label_selector",
    "validate_object_name",
    "validate_update",
]

Check = Callable[[dict[str, Any]], list[Cause]]
UpdateCheck = Callable[[dict[str, Any], dict[str, Any]], list[Cause]]


def _none(_: dict[str, Any]) -> list[Cause]:
    return []


class KindRules(NamedTuple):
    """How upstream validates one kind. Update checks get `(new, old)`."""

    namespaced: bool | None
    spec: Check = _none
    # core/validation's ObjectMeta wrapper also rejects unqualified non-standard finalizers.
    kube_finalizers: bool = True
    create_only: Check = _none
    update_first: UpdateCheck | None = None
    update_last: UpdateCheck | None = None
    # Whether the kind's update validator starts with ValidateObjectMetaUpdate.
    update_meta: bool = True
    # Some update validators re-run the full create validation, ObjectMeta included.
    update_revalidates_meta: bool = False
    update_checks_spec: bool = True
    extra_name_errors: Callable[[dict[str, Any]], list[str]] | None = None
    # Whether `spec` is a pure function of obj["spec"] (the result can be remembered).
    spec_only: bool = False


_RULES: dict[tuple[str, str], KindRules] = {
    ("", "Pod"): KindRules(
        namespaced=True,
        spec=core.validate_pod,
        create_only=core.validate_pod_create_only,
        update_last=core.pod_update,
        update_revalidates_meta=True,
    ),
    ("", "Service"): KindRules(
        namespaced=True,
        spec=network.validate_service,
        update_first=network.service_update_first,
        update_revalidates_meta=True,
    ),
    ("", "Endpoints"): KindRules(
        namespaced=True, spec=network.validate_endpoints, update_revalidates_meta=True
    ),
    ("", "Namespace"): KindRules(
        namespaced=False, spec=core.validate_namespace, update_checks_spec=False
    ),
    ("", "Node"): KindRules(
        namespaced=False,
        spec=core.validate_node,
        update_last=core.node_update,
        update_checks_spec=False,
    ),
    ("", "ConfigMap"): KindRules(
        namespaced=True,
        spec=core.validate_config_map,
        update_first=core.config_map_update,
        update_revalidates_meta=True,
    ),
    ("", "Secret"): KindRules(
        namespaced=True,
        spec=core.validate_secret,
        update_first=core.secret_update,
        update_revalidates_meta=True,
    ),
    ("", "ServiceAccount"): KindRules(namespaced=True, update_revalidates_meta=True),
    ("", "Event"): KindRules(namespaced=True),
    ("", "PersistentVolumeClaim"): KindRules(namespaced=True),
    ("apps", "Deployment"): KindRules(
        namespaced=True,
        spec=apps.validate_deployment,
        update_last=apps.immutable_selector,
        spec_only=True,
    ),
    ("apps", "ReplicaSet"): KindRules(
        namespaced=True,
        spec=apps.validate_replica_set,
        update_last=apps.immutable_selector,
        spec_only=True,
    ),
    ("apps", "DaemonSet"): KindRules(
        namespaced=True,
        spec=apps.validate_daemon_set,
        update_last=apps.immutable_selector,
        spec_only=True,
    ),
    ("apps", "StatefulSet"): KindRules(
        namespaced=True,
        spec=apps.validate_stateful_set,
        update_last=apps.stateful_set_forbidden_update,
        spec_only=True,
    ),
    ("apps", "ControllerRevision"): KindRules(
        namespaced=True,
        spec=apps.validate_controller_revision,
        update_last=apps.controller_revision_update,
        update_revalidates_meta=True,
    ),
    ("discovery.k8s.io", "EndpointSlice"): KindRules(
        namespaced=True,
        spec=network.validate_endpoint_slice,
        update_last=network.endpoint_slice_update,
        update_meta=False,
        update_revalidates_meta=True,
    ),
    # The RBAC validators run ObjectMeta (create rules) first and end with the meta update.
    (rbac.GROUP, "Role"): KindRules(
        namespaced=True,
        spec=rbac.validate_role,
        update_meta=False,
        update_revalidates_meta=True,
        update_last=rbac.meta_update,
    ),
    (rbac.GROUP, "ClusterRole"): KindRules(
        namespaced=False,
        spec=rbac.validate_cluster_role,
        update_meta=False,
        update_revalidates_meta=True,
        update_last=rbac.meta_update,
    ),
    (rbac.GROUP, "RoleBinding"): KindRules(
        namespaced=True,
        spec=rbac.validate_role_binding,
        update_meta=False,
        update_revalidates_meta=True,
        update_last=rbac.binding_update,
    ),
    (rbac.GROUP, "ClusterRoleBinding"): KindRules(
        namespaced=False,
        spec=rbac.validate_cluster_role_binding,
        update_meta=False,
        update_revalidates_meta=True,
        update_last=rbac.binding_update,
    ),
    ("coordination.k8s.io", "Lease"): KindRules(
        namespaced=True, spec=core.validate_lease, kube_finalizers=False
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): KindRules(
        namespaced=False,
        kube_finalizers=False,
        update_checks_spec=False,
        extra_name_errors=core.crd_name_errors,
    ),
}

_UNKNOWN = KindRules(namespaced=None, kube_finalizers=False)


def _rules(group: str, kind: str) -> KindRules:
    return _RULES.get((group, kind), _UNKNOWN)


def _meta_create(kind: str, rules: KindRules, obj: dict[str, Any]) -> list[Cause]:
    metadata = get_dict(obj, "metadata")
    causes = validate_object_meta(
        metadata, kind=kind, namespaced=rules.namespaced, kube_finalizers=rules.kube_finalizers
    )
    if rules.extra_name_errors is not None:
        name = get_str(metadata, "name")
        extra = rules.extra_name_errors(obj)
        # Upstream appends these to the name function's own messages.
        position = sum(1 for c in causes if c.field == "metadata.name")
        causes[position:position] = [invalid("metadata.name", name, msg) for msg in extra]
    return causes


def validate_create(group: str, kind: str, obj: dict[str, Any]) -> list[Cause]:
    """Every cause kube-apiserver would report creating `obj` (empty: accepted)."""
    rules = _rules(group, kind)
    obj = obj if isinstance(obj, dict) else {}
    return _meta_create(kind, rules, obj) + rules.spec(obj) + rules.create_only(obj)


def spec_check_reads_only_spec(group: str, kind: str) -> bool:
    """Whether the kind's spec check depends on nothing but `spec` (and runs on update)."""
    rules = _rules(group, kind)
    return rules.spec_only and rules.update_checks_spec


def validate_update(
    group: str,
    kind: str,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    spec_accepted: bool = False,
) -> list[Cause]:
    """Every cause kube-apiserver would report updating `old` to `new`.

    `spec_accepted`: `new["spec"]` is a spec this kind's spec check returned nothing for."""
    rules = _rules(group, kind)
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    new_meta, old_meta = get_dict(new, "metadata"), get_dict(old, "metadata")
    # rest.BeforeUpdate's common-field checks come first, then the kind's own validator.
    causes = validate_object_meta(
        new_meta,
        kind=kind,
        namespaced=rules.namespaced,
        kube_finalizers=False,
        name_errors=path_segment_name_errors,
    )
    causes += validate_object_meta_update(new_meta, old_meta, kube_finalizers=False)
    if rules.update_meta:
        causes += validate_object_meta_update(
            new_meta, old_meta, kube_finalizers=rules.kube_finalizers
        )
    if rules.update_first is not None:
        causes += rules.update_first(new, old)
    if rules.update_revalidates_meta:
        causes += _meta_create(kind, rules, new)
    if rules.update_checks_spec and not (spec_accepted and rules.spec_only):
        causes += rules.spec(new)
    if rules.update_last is not None:
        causes += rules.update_last(new, old)
    return causes
