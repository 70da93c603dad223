"""Validation of the non-workload kinds kubesim serves: Pod, Namespace, Node, ConfigMap,
Secret, Lease (coordination.k8s.io) and CustomResourceDefinition names.

Owns the spec/data rules and update rules of those kinds; `validation` composes them with
the ObjectMeta checks.

Invariants:
- Messages and paths are upstream's, quirks included (Node taints are reported under
  `metadata.taints`, an oversized ConfigMap on the empty path).
- Secret `data` values are base64 as on the wire; sizes count decoded bytes.
- Not validated: Node status beyond quantities and addresses, Event fields, CRD specs
  (only the `<plural>.<group>` name rule).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from servicegroup.kubesim import names, quantity
from servicegroup.kubesim.fielderrors import (
    Cause,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)
from servicegroup.kubesim.objpath import (
    child,
    dicts,
    get_dict,
    get_int,
    get_list,
    get_str,
    index,
    key,
)
from servicegroup.kubesim.validation_meta import (
    IMMUTABLE,
    semantic_equal,
    validate_finalizers,
    validate_label_name,
)
from servicegroup.kubesim.validation_pod import (
    TAINT_EFFECTS,
    validate_pod_create,
    validate_pod_only,
    validate_pod_spec,
    validate_pod_update,
)

MAX_SECRET_SIZE = 1024 * 1024
CRD_NAME_RULE = 'must be spec.names.plural+"."+spec.group'
_IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
_PODCIDR_FORBIDDEN = 'node updates may not change podCIDR except from "" to valid'


def validate_pod(obj: dict[str, Any]) -> list[Cause]:
    spec = get_dict(obj, "spec")
    return validate_pod_spec(spec, "spec", is_pod=True) + validate_pod_only(spec)


def validate_pod_create_only(obj: dict[str, Any]) -> list[Cause]:
    return validate_pod_create(get_dict(obj, "spec"))


def pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    return validate_pod_update(get_dict(new, "spec"), get_dict(old, "spec"))


def validate_namespace(obj: dict[str, Any]) -> list[Cause]:
    finalizers = get_list(get_dict(obj, "spec"), "finalizers")
    causes: list[Cause] = []
    for value in finalizers:
        # validateFinalizerName: qualified name, then the standard-name rule, same path.
        causes += validate_finalizers([value], "spec.finalizers", kube=False)
        if (
            isinstance(value, str)
            and "/" not in value
            and value
            not in (
                "kubernetes",
                "orphan",
                "foregroundDeletion",
            )
        ):
            causes.append(
                invalid(
                    "spec.finalizers",
                    value,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return causes


def _validate_taints(taints: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    seen: dict[str, set[str]] = {}
    for i, taint in dicts(taints):
        path = index("metadata.taints", i)
        taint_key, effect = get_str(taint, "key"), get_str(taint, "effect")
        causes += validate_label_name(taint_key, child(path, "key"))
        errors = names.label_value_errors(get_str(taint, "value"))
        if errors:
            causes.append(invalid(child(path, "value"), get_str(taint, "value"), ";".join(errors)))
        if not effect:
            causes.append(required(child(path, "effect")))
        elif effect not in TAINT_EFFECTS:
            causes.append(not_supported(child(path, "effect"), effect, TAINT_EFFECTS))
        if taint_key in seen.get(effect, set()):
            dup = duplicate(path, taint)
            causes.append(
                Cause(
                    dup.type, f"{dup.message}: taints must be unique by key and effect pair", path
                )
            )
            continue
        seen.setdefault(effect, set()).add(taint_key)
    return causes


def _node_resources(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    status = get_dict(obj, "status")
    for field in ("capacity", "allocatable"):
        for name, raw in (get_dict(status, field) or {}).items():
            path = child("status", field, str(name))
            try:
                value = quantity.round_up_milli(quantity.parse_quantity(raw))
            except ValueError:
                causes.append(invalid(path, raw, quantity.PARSE_ERROR))
                continue
            if value.value < 0:
                causes.append(
                    invalid(path, quantity.canonical(value), "must be greater than or equal to 0")
                )
    return causes


def validate_node(obj: dict[str, Any]) -> list[Cause]:
    spec = get_dict(obj, "spec")
    causes = _validate_taints(get_list(spec, "taints"))
    causes += _node_resources(obj)
    cidrs = get_list(spec, "podCIDRs")
    seen: set[str] = set()
    for i, cidr in enumerate(cidrs):
        if cidr in seen:
            causes.append(duplicate(index("spec.podCIDRs", i), cidr))
        seen.add(cidr)
    return causes


def node_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """`ValidateNodeUpdate` (it does not re-run create validation, only these)."""
    new_spec, old_spec = get_dict(new, "spec") or {}, get_dict(old, "spec") or {}
    causes = _node_resources(new)
    addresses: list[Any] = []
    for i, address in dicts(get_list(get_dict(new, "status"), "addresses")):
        if address in addresses:
            causes.append(duplicate(index("status.addresses", i), address))
        addresses.append(address)
    old_cidrs, new_cidrs = get_list(old_spec, "podCIDRs"), get_list(new_spec, "podCIDRs")
    if old_cidrs:
        if len(old_cidrs) != len(new_cidrs):
            causes.append(forbidden("spec.podCIDRs", _PODCIDR_FORBIDDEN))
        else:
            causes += [
                forbidden("spec.podCIDRs", _PODCIDR_FORBIDDEN)
                for a, b in zip(old_cidrs, new_cidrs, strict=True)
                if a != b
            ]
    old_provider = get_str(old_spec, "providerID")
    if old_provider and old_provider != get_str(new_spec, "providerID"):
        causes.append(
            forbidden(
                "spec.providerID", 'node updates may not change providerID except from "" to valid'
            )
        )
    causes += _validate_taints(get_list(new_spec, "taints"))
    if get_str(new_spec, "externalID") != get_str(old_spec, "externalID"):
        causes.append(forbidden("spec.externalID", "may not be updated"))
    return causes


def validate_config_map(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    data, binary = get_dict(obj, "data") or {}, get_dict(obj, "binaryData") or {}
    total = 0
    for name, value in data.items():
        path = key("data", str(name))
        causes += [invalid(path, name, msg) for msg in names.config_map_key_errors(str(name))]
        if name in binary:
            causes.append(invalid(path, name, "duplicate of key present in binaryData"))
        total += len(str(value).encode())
    for name, value in binary.items():
        path = key("binaryData", str(name))
        causes += [invalid(path, name, msg) for msg in names.config_map_key_errors(str(name))]
        total += _decoded_size(value)
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("", MAX_SECRET_SIZE))
    return causes


def _decoded_size(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return len(value)


def _immutable_data(
    new: dict[str, Any], old: dict[str, Any], fields: tuple[str, ...]
) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    causes: list[Cause] = []
    if new.get("immutable") is not True:
        causes.append(forbidden("immutable", _IMMUTABLE_WHEN_SET))
    causes += [
        forbidden(field, _IMMUTABLE_WHEN_SET)
        for field in fields
        if not semantic_equal(new.get(field), old.get(field))
    ]
    return causes


def config_map_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    return _immutable_data(new, old, ("data", "binaryData"))


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def validate_secret(obj: dict[str, Any]) -> list[Cause]:
    data = get_dict(obj, "data") or {}
    causes: list[Cause] = []
    total = 0
    for name, value in data.items():
        path = key("data", str(name))
        causes += [invalid(path, name, msg) for msg in names.config_map_key_errors(str(name))]
        total += _decoded_size(value)
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    secret_type = get_str(obj, "type")
    if secret_type == "kubernetes.io/service-account-token":
        annotations = get_dict(get_dict(obj, "metadata"), "annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            causes.append(
                required(key("metadata.annotations", "kubernetes.io/service-account.name"))
            )
    elif secret_type == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            causes.append(required(key("data", "username")))
            causes.append(required(key("data", "password")))
    elif secret_type == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            causes.append(required(key("data", "ssh-privatekey")))
    else:
        for required_key in _SECRET_REQUIRED_KEYS.get(secret_type, ()):
            if required_key not in data:
                causes.append(required(key("data", required_key)))
    return causes


def secret_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if get_str(new, "type") != get_str(old, "type"):
        causes.append(invalid("type", get_str(new, "type"), IMMUTABLE))
    return causes + _immutable_data(new, old, ("data",))


def validate_lease(obj: dict[str, Any]) -> list[Cause]:
    spec = get_dict(obj, "spec") or {}
    causes: list[Cause] = []
    duration = get_int(spec, "leaseDurationSeconds")
    if duration is not None and duration <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = get_int(spec, "leaseTransitions")
    if transitions is not None and transitions < 0:
        causes.append(
            invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
        )
    if get_str(spec, "preferredHolder") and not get_str(spec, "strategy"):
        causes.append(
            forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined")
        )
    return causes


def crd_name_errors(obj: dict[str, Any]) -> list[str]:
    """The extra `metadata.name` rule of CustomResourceDefinitions."""
    spec = get_dict(obj, "spec") or {}
    expected = f"{get_str(get_dict(spec, 'names'), 'plural')}.{get_str(spec, 'group')}"
    name = get_str(get_dict(obj, "metadata"), "name")
    return [CRD_NAME_RULE] if name and name != expected else []
