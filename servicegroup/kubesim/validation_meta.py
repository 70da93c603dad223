"""ObjectMeta, labels, annotations and label-selector validation (apimachinery rules).

Owns `validate_object_meta` / `validate_object_meta_update` (apimachinery's
`ValidateObjectMetaAccessor[Update]`, plus core's extra check that unqualified finalizers
are standard ones), label/annotation/owner-reference/finalizer checks, the per-kind name
rules (`validate_object_name`), label-selector validation, and `selector_matcher` (what
`metav1.LabelSelectorAsSelector` accepts, and how it matches).

Invariants:
- Paths and messages are apimachinery's: label errors are reported on the map's path
  (`metadata.labels`), owner-reference errors on `metadata.ownerReferences`.
- Go iterates maps in random order; here errors follow the dict's order, which is stable.
- `semantic_equal` is apimachinery's `Semantic.DeepEqual` on decoded objects: absent, null
  and Go zero values (`""`, `0`, `false`, `[]`, `{}`) are equal.
- Label and annotation checks are pure functions of the map and the path (an update
  validates the same maps up to three times): their answers are remembered, by the map's
  JSON (bounded; every call returns a fresh list).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from servicegroup.kubesim import names
from servicegroup.kubesim.fielderrors import Cause, forbidden, invalid, required, too_long
from servicegroup.kubesim.objpath import child, dicts, get_dict, get_list, get_str, index

NameErrors = Callable[[str], list[str]]
Matcher = Callable[[dict[str, str]], bool]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def path_segment_name_errors(name: str) -> list[str]:
    """`path.IsValidPathSegmentName`, the generic name rule of every registry."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# Names per kind; anything not listed (most kinds, and custom resources) is a subdomain.
# RBAC roles and bindings only need valid path segments (`system:controller:x`).
_NAME_RULES: dict[str, NameErrors] = {
    "Namespace": names.dns1123_label_errors,
    "Service": names.dns1035_label_errors,
    "StatefulSet": names.dns1123_label_errors,
    "Role": path_segment_name_errors,
    "ClusterRole": path_segment_name_errors,
    "RoleBinding": path_segment_name_errors,
    "ClusterRoleBinding": path_segment_name_errors,
}


def name_rule(kind: str) -> NameErrors:
    return _NAME_RULES.get(kind, names.dns1123_subdomain_errors)


def validate_object_name(kind: str, name: str) -> list[Cause]:
    """`metadata.name` of a `kind` object (the final name, after generateName)."""
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    return [invalid("metadata.name", name, msg) for msg in name_rule(kind)(name)]


def _is_zero(value: Any) -> bool:
    if isinstance(value, (list, dict)):
        return not value
    return value is None or (isinstance(value, (bool, int, float, str)) and not value)


def semantic_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return all(semantic_equal(a.get(k), b.get(k)) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(semantic_equal(x, y) for x, y in zip(a, b, strict=True))
    if _is_zero(a) and _is_zero(b):
        return True
    return bool(a == b and type(a) is type(b))


def validate_nonnegative(value: Any, field: str) -> list[Cause]:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(field, value, NEGATIVE)]
    return []


def validate_label_name(key: str, field: str) -> list[Cause]:
    return [invalid(field, key, msg) for msg in names.qualified_name_errors(key)]


_MEMO_SIZE = 1024
_MapCheck = Callable[[dict[Any, Any], str], list[Cause]]
_MAP_CHECKS: dict[tuple[_MapCheck, str, bytes], tuple[Cause, ...]] = {}


_MEMO_MAX_BYTES = 2048  # large maps (annotations up to 256 KiB) are checked every time


def _remembered(check: _MapCheck, values: dict[Any, Any], field: str) -> list[Cause]:
    try:
        text = orjson.dumps(values)
    except TypeError:  # keys that are not strings (YAML): no JSON to key the answer by
        return check(values, field)
    if len(text) > _MEMO_MAX_BYTES:
        return check(values, field)
    memo_key = (check, field, text)
    found = _MAP_CHECKS.get(memo_key)
    if found is None:
        result = check(values, field)
        if len(_MAP_CHECKS) >= _MEMO_SIZE:
            _MAP_CHECKS.clear()  # bounded: start over, the maps in use come back at once
        # A right-sized copy of the key: orjson's output keeps its whole write buffer.
        _MAP_CHECKS[(check, field, memoryview(text).tobytes())] = tuple(result)
        return result
    return list(found)


def validate_labels(labels: Any, field: str) -> list[Cause]:
    if not isinstance(labels, dict):
        return []
    return _remembered(_validate_labels, labels, field)


def _validate_labels(labels: dict[Any, Any], field: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in labels.items():
        causes.extend(validate_label_name(str(key), field))
        if isinstance(value, str):
            causes.extend(invalid(field, value, msg) for msg in names.label_value_errors(value))
    return causes


def validate_annotations(annotations: Any, field: str) -> list[Cause]:
    if not isinstance(annotations, dict):
        return []
    return _remembered(_validate_annotations, annotations, field)


def _validate_annotations(annotations: dict[Any, Any], field: str) -> list[Cause]:
    causes: list[Cause] = []
    total = 0
    for key, value in annotations.items():
        # Annotation keys are qualified names in which case does not matter.
        causes.extend(
            invalid(field, key, msg) for msg in names.qualified_name_errors(str(key).lower())
        )
        total += len(str(key).encode()) + len(str(value).encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _api_version_has_version(api_version: str) -> bool:
    if not api_version:
        return False
    parts = api_version.split("/")
    if len(parts) == 1:
        return True
    return len(parts) == 2 and bool(parts[1])


def validate_owner_references(refs: Any, field: str) -> list[Cause]:
    if not isinstance(refs, list):
        return []
    causes: list[Cause] = []
    first_controller = ""
    for _, ref in dicts(refs):
        api_version, kind = get_str(ref, "apiVersion"), get_str(ref, "kind")
        if not _api_version_has_version(api_version):
            causes.append(
                invalid(child(field, "apiVersion"), api_version, "version must not be empty")
            )
        if not kind:
            causes.append(invalid(child(field, "kind"), kind, "must not be empty"))
        if not get_str(ref, "name"):
            causes.append(invalid(child(field, "name"), "", "must not be empty"))
        if not get_str(ref, "uid"):
            causes.append(invalid(child(field, "uid"), "", "must not be empty"))
        if api_version == "v1" and kind == "Event":
            causes.append(invalid(field, ref, "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{get_str(ref, 'name')}"
            if first_controller:
                causes.append(
                    invalid(
                        field,
                        refs,
                        'Only one reference can have Controller set to true. Found "true" '
                        f"in references for {first_controller} and {current}",
                    )
                )
            else:
                first_controller = current
    return causes


def validate_finalizers(finalizers: Any, field: str, *, kube: bool) -> list[Cause]:
    """apimachinery's finalizer checks; `kube` adds core's standard-name rule."""
    if not isinstance(finalizers, list):
        return []
    causes: list[Cause] = []
    values = [f for f in finalizers if isinstance(f, str)]
    for value in values:
        causes.extend(invalid(field, value, msg) for msg in names.qualified_name_errors(value))
    if "orphan" in values and "foregroundDeletion" in values:
        causes.append(
            invalid(field, finalizers, "finalizer orphan and foregroundDeletion cannot be both set")
        )
    if kube:
        causes.extend(_kube_finalizer_causes(finalizers, field))
    return causes


def _kube_finalizer_causes(finalizers: list[Any], field: str) -> list[Cause]:
    return [
        invalid(
            index(field, i),
            value,
            "name is neither a standard finalizer name nor is it fully qualified",
        )
        for i, value in enumerate(finalizers)
        if isinstance(value, str) and "/" not in value and value not in STANDARD_FINALIZERS
    ]


def validate_object_meta(
    meta: Any,
    *,
    kind: str,
    namespaced: bool | None,
    kube_finalizers: bool,
    name_errors: NameErrors | None = None,
) -> list[Cause]:
    """`ValidateObjectMeta` on create; `namespaced=None` skips the namespace rule.

    `name_errors` replaces the kind's name rule (the generic registry checks use
    `path_segment_name_errors`).
    """
    meta = meta if isinstance(meta, dict) else {}
    name = get_str(meta, "name")
    if name_errors is None:
        causes = validate_object_name(kind, name)
    elif not name:
        causes = [required("metadata.name", "name or generateName is required")]
    else:
        causes = [invalid("metadata.name", name, msg) for msg in name_errors(name)]
    namespace = get_str(meta, "namespace")
    if namespaced is True:
        if not namespace:
            causes.append(required("metadata.namespace"))
        else:
            causes.extend(
                invalid("metadata.namespace", namespace, msg)
                for msg in names.dns1123_label_errors(namespace)
            )
    elif namespaced is False and namespace:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    return causes + _common_meta(meta, kube_finalizers=kube_finalizers)


def _common_meta(meta: dict[str, Any], *, kube_finalizers: bool) -> list[Cause]:
    causes = validate_nonnegative(meta.get("generation"), "metadata.generation")
    causes += validate_labels(meta.get("labels"), "metadata.labels")
    causes += validate_annotations(meta.get("annotations"), "metadata.annotations")
    causes += validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences")
    causes += validate_finalizers(meta.get("finalizers"), "metadata.finalizers", kube=False)
    if kube_finalizers:
        causes += _kube_finalizer_causes(get_list(meta, "finalizers"), "metadata.finalizers")
    return causes


def validate_object_meta_update(new: Any, old: Any, *, kube_finalizers: bool) -> list[Cause]:
    """`ValidateObjectMetaAccessorUpdate`: immutable identity, then the common checks."""
    new = new if isinstance(new, dict) else {}
    old = old if isinstance(old, dict) else {}
    causes: list[Cause] = []
    if old.get("deletionTimestamp"):
        added = sorted(set(get_list(new, "finalizers")) - set(get_list(old, "finalizers")))
        if added:
            listed = ", ".join(f'"{f}"' for f in added)
            causes.append(
                forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers []string{{{listed}}}",
                )
            )
    new_generation, old_generation = new.get("generation"), old.get("generation")
    if (
        isinstance(new_generation, int)
        and isinstance(old_generation, int)
        and new_generation < old_generation
    ):
        causes.append(invalid("metadata.generation", new_generation, "must not be decremented"))
    for field in (
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ):
        if not semantic_equal(new.get(field), old.get(field)):
            causes.append(invalid(child("metadata", field), new.get(field), IMMUTABLE))
    causes += validate_labels(new.get("labels"), "metadata.labels")
    causes += validate_annotations(new.get("annotations"), "metadata.annotations")
    causes += validate_owner_references(new.get("ownerReferences"), "metadata.ownerReferences")
    causes += validate_finalizers(new.get("finalizers"), "metadata.finalizers", kube=False)
    if kube_finalizers:
        causes += _kube_finalizer_causes(get_list(new, "finalizers"), "metadata.finalizers")
    return causes


def validate_label_selector(selector: Any, field: str) -> list[Cause]:
    """`ValidateLabelSelector` with label values in expressions validated too."""
    if not isinstance(selector, dict):
        return []
    causes = validate_labels(selector.get("matchLabels"), child(field, "matchLabels"))
    for i, expr in dicts(get_list(selector, "matchExpressions")):
        path = index(child(field, "matchExpressions"), i)
        operator, values = expr.get("operator"), get_list(expr, "values")
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(
                    required(
                        child(path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(
                    forbidden(
                        child(path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            causes.append(
                invalid(child(path, "operator"), operator, "not a valid selector operator")
            )
        causes += validate_label_name(get_str(expr, "key"), child(path, "key"))
        for j, value in enumerate(values):
            if isinstance(value, str):
                value_path = index(child(path, "values"), j)
                causes.extend(
                    invalid(value_path, value, m) for m in names.label_value_errors(value)
                )
    return causes


def _requirement_ok(expr: dict[str, Any]) -> bool:
    operator, values = expr.get("operator"), get_list(expr, "values")
    if operator not in _SELECTOR_OPERATORS or not names.is_qualified_name(get_str(expr, "key")):
        return False
    if (operator in ("In", "NotIn")) != bool(values):
        return False
    return all(isinstance(v, str) and names.is_valid_label_value(v) for v in values)


def _requirement_matches(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator, values = get_str(expr, "key"), expr.get("operator"), get_list(expr, "values")
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    return key not in labels


def selector_matcher(selector: Any) -> Matcher | None:
    """`LabelSelectorAsSelector`: None when it errors; null matches nothing, {} everything."""
    if selector is None:
        return lambda labels: False
    if not isinstance(selector, dict):
        return None
    match_labels = get_dict(selector, "matchLabels") or {}
    for key, value in match_labels.items():
        if not (
            names.is_qualified_name(str(key))
            and isinstance(value, str)
            and names.is_valid_label_value(value)
        ):
            return None
    expressions = [e for _, e in dicts(get_list(selector, "matchExpressions"))]
    if not all(_requirement_ok(e) for e in expressions):
        return None

    def matches(labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in match_labels.items()) and all(
            _requirement_matches(e, labels) for e in expressions
        )

    return matches


def selector_is_empty(selector: Any) -> bool:
    """`labels.Selector.Empty()`: true for `{}` (matches everything), false for null."""
    return isinstance(selector, dict) and not (
        get_dict(selector, "matchLabels") or get_list(selector, "matchExpressions")
    )
