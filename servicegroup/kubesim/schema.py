"""apiextensions.k8s.io/v1 structural schemas: pruning, defaulting and validation of custom
resources, and validation of CustomResourceDefinitions themselves.

Owns what kube-apiserver does with a CRD's `openAPIV3Schema` when a custom resource is
written (request decoding -> `apply_defaults` -> `prune` -> `validate`) and what it checks
when a CRD is created (`validate_crd`). CEL rules go through `cel.py`.

Invariants:
- `prune` and `apply_defaults` mutate the object in place and never raise; `validate` and
  `validate_crd` never mutate and return causes in a deterministic order.
- Pruning keeps `apiVersion`/`kind` (strings) and `metadata` of the resource root and of every
  `x-kubernetes-embedded-resource`, and reduces that metadata to ObjectMeta's fields (unknown
  and malformed fields dropped, empty ones omitted, times normalised) like a typed round trip;
  under `x-kubernetes-preserve-unknown-fields` unknown fields stay but known ones are pruned.
- Defaulting first drops `null`s of non-nullable fields without a default, then fills absent
  fields (and `null`s) from `default`, recursing into defaults, map values and list items.
- Validation messages and field paths are kube-openapi's and apimachinery's
  (`spec.replicas in body must be of type integer: "string"`; map values `spec.m.key` for
  schema errors, `spec.m[key]` for list-type and CEL errors; root errors on field `<nil>`).
- A CEL rule this subset cannot evaluate is skipped (see `unevaluated_rules`), never guessed.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from servicegroup.kubesim import cel, jsonpath
from servicegroup.kubesim.fielderrors import (
    Cause,
    forbidden,
    format_value,
    go_quote,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
)
from servicegroup.kubesim.fielderrors import duplicate as duplicate_cause
from servicegroup.kubesim.tables import go_float

__all__ = [
    "UnevaluatedRule",
    "apply_defaults",
    "prune",
    "unevaluated_rules",
    "validate",
    "validate_crd",
]

TYPE_INVALID = "FieldValueTypeInvalid"
_NIL = "<nil>"
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_EMBEDDED = "x-kubernetes-embedded-resource"
_INT_OR_STRING = "x-kubernetes-int-or-string"
_VALIDATIONS = "x-kubernetes-validations"
_BLOCKING_MESSAGE = (
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)


@dataclass(frozen=True)
class UnevaluatedRule:
    """A CEL rule kubesim does not evaluate (valid-looking, outside the supported subset)."""

    version: str
    field: str
    rule: str
    reason: str


# ---------------------------------------------------------------------------------------
# small schema accessors


def _props(schema: dict[str, Any] | None) -> dict[str, Any]:
    props = schema.get("properties") if schema else None
    return props if isinstance(props, dict) else {}


def _additional(schema: dict[str, Any] | None) -> dict[str, Any] | bool | None:
    """additionalProperties as a schema, True (anything goes), or None (not set / false)."""
    value = schema.get("additionalProperties") if schema else None
    if isinstance(value, dict):
        return value
    return True if value is True else None


def _items(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    items = schema.get("items") if schema else None
    return items if isinstance(items, dict) else None


def _flag(schema: dict[str, Any] | None, key: str) -> bool:
    return bool(schema) and schema is not None and schema.get(key) is True


# ---------------------------------------------------------------------------------------
# ObjectMeta coercion (a typed round trip through metav1.ObjectMeta)

_DROP = object()


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _coerce_time(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        return _DROP
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _DROP
    if moment.tzinfo is None:
        return _DROP
    # metav1.Time serialises in UTC with second precision.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _coerce_string_map(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return _DROP
    return dict(value)


def _coerce_strings(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return _DROP
    return list(value)


_OWNER_REF_FIELDS = {"apiVersion": str, "kind": str, "name": str, "uid": str}
_OWNER_REF_FLAGS = ("controller", "blockOwnerDeletion")


def _coerce_owner_refs(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        return _DROP
    out = []
    for ref in value:
        if not isinstance(ref, dict):
            return _DROP
        coerced: dict[str, Any] = {}
        for key, kind in _OWNER_REF_FIELDS.items():
            item = ref.get(key, "")
            if item is None:
                item = ""
            if not isinstance(item, kind):
                return _DROP
            coerced[key] = item
        for key in _OWNER_REF_FLAGS:
            item = ref.get(key)
            if item is None:
                continue
            if not isinstance(item, bool):
                return _DROP
            coerced[key] = item
        out.append(coerced)
    return out


_MANAGED_STRINGS = ("manager", "operation", "apiVersion", "fieldsType", "subresource")


def _coerce_managed_fields(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        return _DROP
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            return _DROP
        coerced: dict[str, Any] = {}
        for key in _MANAGED_STRINGS:
            item = entry.get(key)
            if item is None or item == "":
                continue
            if not isinstance(item, str):
                return _DROP
            coerced[key] = item
        if entry.get("time") is not None:
            moment = _coerce_time(entry["time"])
            if moment is _DROP:
                return _DROP
            coerced["time"] = moment
        if entry.get("fieldsV1") is not None:
            if not isinstance(entry["fieldsV1"], dict):
                return _DROP
            coerced["fieldsV1"] = entry["fieldsV1"]
        out.append(coerced)
    return out


def _coerce_str(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else _DROP


def _coerce_int(value: Any) -> Any:
    return value if value is None or _is_int(value) else _DROP


_OBJECT_META: dict[str, Any] = {
    "name": _coerce_str,
    "generateName": _coerce_str,
    "namespace": _coerce_str,
    "selfLink": _coerce_str,
    "uid": _coerce_str,
    "resourceVersion": _coerce_str,
    "generation": _coerce_int,
    "creationTimestamp": _coerce_time,
    "deletionTimestamp": _coerce_time,
    "deletionGracePeriodSeconds": _coerce_int,
    "labels": _coerce_string_map,
    "annotations": _coerce_string_map,
    "ownerReferences": _coerce_owner_refs,
    "finalizers": _coerce_strings,
    "managedFields": _coerce_managed_fields,
}
# Pointers: a zero value is still serialised; every other field is omitempty.
_KEEP_ZERO = frozenset({"deletionGracePeriodSeconds"})


def coerce_object_meta(meta: Any) -> dict[str, Any]:
    """ObjectMeta as a typed decode/encode would leave it (DropMalformedFields semantics)."""
    if not isinstance(meta, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in meta.items():
        coerce = _OBJECT_META.get(key)
        if coerce is None:
            continue
        coerced = coerce(value)
        if coerced is _DROP or coerced is None:
            continue
        if key not in _KEEP_ZERO and coerced in ("", 0, [], {}):
            continue
        out[key] = coerced
    return out


# ---------------------------------------------------------------------------------------
# pruning


def prune(obj: dict[str, Any], schema: dict[str, Any]) -> None:
    """Drop fields the schema does not specify (the resource root is an embedded resource)."""
    _prune(obj, schema, embedded=True)


def _prune(value: Any, schema: dict[str, Any] | None, *, embedded: bool = False) -> None:
    embedded = embedded or _flag(schema, _EMBEDDED)
    if schema is not None and _flag(schema, _PRESERVE):
        _skip_prune(value, schema, embedded=embedded)
        return
    if isinstance(value, dict):
        if schema is None:
            value.clear()
            return
        props = _props(schema)
        additional = _additional(schema)
        for key in list(value):
            child = value[key]
            if embedded and _keep_resource_field(value, key):
                continue
            if key in props:
                _prune(child, props[key])
            elif isinstance(additional, dict):
                _prune(child, additional)
            elif additional is None:
                del value[key]
    elif isinstance(value, list):
        items = _items(schema)
        for item in value:
            _prune(item, items)


def _keep_resource_field(resource: dict[str, Any], key: str) -> bool:
    """apiVersion/kind/metadata of an (embedded) resource: kept, metadata coerced."""
    if key in ("apiVersion", "kind"):
        return isinstance(resource[key], str)
    if key == "metadata":
        resource[key] = coerce_object_meta(resource[key])
        return True
    return False


def _skip_prune(value: Any, schema: dict[str, Any], *, embedded: bool) -> None:
    if isinstance(value, dict):
        props = _props(schema)
        additional = _additional(schema)
        for key in list(value):
            if embedded and key in ("apiVersion", "kind", "metadata"):
                if key == "metadata":
                    value[key] = coerce_object_meta(value[key])
                continue
            if key in props:
                _prune(value[key], props[key])
            elif isinstance(additional, dict):
                _prune(value[key], additional)
    elif isinstance(value, list):
        items = _items(schema)
        if items is not None:
            for item in value:
                _skip_prune(item, items, embedded=_flag(items, _EMBEDDED))


# ---------------------------------------------------------------------------------------
# defaulting


def apply_defaults(obj: dict[str, Any], schema: dict[str, Any]) -> None:
    """Drop non-nullable nulls that have no default, then apply `default`s recursively."""
    _prune_nulls(obj, schema)
    _default(obj, schema)


def _drops_null(value: Any, schema: dict[str, Any]) -> bool:
    return value is None and not _flag(schema, "nullable") and "default" not in schema


def _replaces_null(value: Any, schema: dict[str, Any] | None) -> bool:
    return (
        value is None
        and schema is not None
        and not _flag(schema, "nullable")
        and schema.get("default") is not None
    )


def _prune_nulls(value: Any, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        props = _props(schema)
        additional = _additional(schema)
        for key in list(value):
            child_schema = props.get(key)
            if child_schema is None and isinstance(additional, dict):
                child_schema = additional
            if child_schema is None:
                continue
            if _drops_null(value[key], child_schema):
                del value[key]
            else:
                _prune_nulls(value[key], child_schema)
    elif isinstance(value, list):
        items = _items(schema)
        for item in value:
            _prune_nulls(item, items)


def _default(value: Any, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        props = _props(schema)
        for key, prop in props.items():
            if not isinstance(prop, dict) or prop.get("default") is None:
                continue
            if key not in value or _replaces_null(value[key], prop):
                value[key] = copy.deepcopy(prop["default"])
        additional = _additional(schema)
        for key in list(value):
            if key in props:
                _default(value[key], props[key])
            elif isinstance(additional, dict):
                if _replaces_null(value[key], additional):
                    value[key] = copy.deepcopy(additional["default"])
                _default(value[key], additional)
    elif isinstance(value, list):
        items = _items(schema)
        for index, item in enumerate(value):
            if _replaces_null(item, items):
                assert items is not None
                value[index] = copy.deepcopy(items["default"])
            _default(value[index], items)


# ---------------------------------------------------------------------------------------
# field paths


def _child(path: str, name: str) -> str:
    """field.Path.Child: `a.b`; the nil path renders as `<nil>` only when nothing follows."""
    return name if path == "" else f"{path}.{name}"


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _index(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _field(path: str) -> str:
    return path if path else _NIL


# ---------------------------------------------------------------------------------------
# validation (kube-openapi semantics)


def validate(
    obj: dict[str, Any], schema: dict[str, Any], *, old: dict[str, Any] | None = None
) -> list[Cause]:
    """Validate a (defaulted, pruned) custom resource; `old` enables CEL transition rules."""
    causes = _SchemaValidator().validate(obj, schema, "")
    causes.extend(_list_type_causes(obj, schema, ""))
    if any(c.type in (TYPE_INVALID, "FieldValueNotSupported") for c in causes):
        causes.append(invalid(_NIL, None, _BLOCKING_MESSAGE))
    else:
        causes.extend(_cel_causes(obj, old, schema, "", root=True))
    return causes


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _number(value: Any) -> str:
    return go_float(float(value)) if isinstance(value, float) else str(value)


def _type_invalid(name: str, value: Any, detail: str) -> Cause:
    field = _field(name[1:] if name.startswith(".") else name)
    return Cause(TYPE_INVALID, f"Invalid value: {format_value(value)}: {detail}", field)


def _schema_invalid(name: str, value: Any, detail: str) -> Cause:
    field = _field(name[1:] if name.startswith(".") else name)
    return invalid(field, value, detail)


def _name_field(name: str) -> str:
    return _field(name[1:] if name.startswith(".") else name)


_DATE_TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_HOSTNAME_RE = re.compile(
    r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
_MAC_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def _format_ok(fmt: str, value: str) -> bool:
    """The formats kube-openapi's registry checks; anything else is not checked at all."""
    if fmt in ("date-time", "datetime"):
        return bool(_DATE_TIME_RE.match(value))
    if fmt == "date":
        return bool(_DATE_RE.match(value))
    if fmt in ("uuid", "uuid3", "uuid4", "uuid5"):
        return bool(_UUID_RE.match(value))
    if fmt in ("ipv4", "ipv6", "cidr"):
        try:
            if fmt == "cidr":
                ipaddress.ip_network(value, strict=False)
            else:
                parsed = ipaddress.ip_address(value)
                return parsed.version == (4 if fmt == "ipv4" else 6)
        except ValueError:
            return False
        return True
    if fmt == "hostname":
        return len(value) <= 255 and bool(_HOSTNAME_RE.match(value))
    if fmt == "mac":
        return bool(_MAC_RE.match(value))
    if fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            return False
        return True
    return True


class _SchemaValidator:
    """One pass of kube-openapi's SchemaValidator over a value (errors in its order)."""

    def validate(self, value: Any, schema: dict[str, Any] | None, name: str) -> list[Cause]:
        if not isinstance(schema, dict):
            return []
        causes: list[Cause] = []
        types = self._types(schema)
        if value is None:
            if types and "null" not in types and not _flag(schema, "nullable"):
                causes.append(self._type_error(name, ",".join(types), "null"))
            return causes
        actual = _json_type(value)
        if types and not self._type_matches(value, actual, types):
            causes.append(self._type_error(name, ",".join(types), actual))
        causes.extend(self._junctions(value, schema, name))
        if isinstance(value, str):
            causes.extend(self._string(value, schema, name))
        if isinstance(value, int | float) and not isinstance(value, bool):
            causes.extend(self._numeric(value, schema, name))
        if isinstance(value, list):
            causes.extend(self._array(value, schema, name))
        causes.extend(self._enum(value, schema, name))
        if isinstance(value, dict):
            causes.extend(self._object(value, schema, name))
        return causes

    @staticmethod
    def _types(schema: dict[str, Any]) -> list[str]:
        if _flag(schema, _INT_OR_STRING):
            return ["integer", "string"]
        kind = schema.get("type")
        if isinstance(kind, str) and kind:
            return [kind]
        if isinstance(kind, list):
            return [str(k) for k in kind]
        return []

    @staticmethod
    def _type_matches(value: Any, actual: str, types: list[str]) -> bool:
        if actual in types:
            return True
        if actual == "number" and "integer" in types and float(value).is_integer():
            return True
        return actual == "integer" and "number" in types

    @staticmethod
    def _type_error(name: str, expected: str, actual: str) -> Cause:
        detail = f"{name} in body must be of type {expected}: {go_quote(actual)}"
        return _type_invalid(name, actual, detail)

    def _junctions(self, value: Any, schema: dict[str, Any], name: str) -> list[Cause]:
        causes: list[Cause] = []
        quoted = go_quote(name)
        any_of = [s for s in schema.get("anyOf") or [] if isinstance(s, dict)]
        if any_of:
            results = [self.validate(value, sub, name) for sub in any_of]
            if not any(not r for r in results):
                causes.append(internal_like(f"{quoted} must validate at least one schema (anyOf)"))
                causes.extend(_fewest(results))
        one_of = [s for s in schema.get("oneOf") or [] if isinstance(s, dict)]
        if one_of:
            results = [self.validate(value, sub, name) for sub in one_of]
            valid = sum(1 for r in results if not r)
            if valid != 1:
                extra = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                message = f"{quoted} must validate one and only one schema (oneOf). {extra}"
                causes.append(internal_like(message))
                if valid == 0:
                    causes.extend(_fewest(results))
        all_of = [s for s in schema.get("allOf") or [] if isinstance(s, dict)]
        if all_of:
            results = [self.validate(value, sub, name) for sub in all_of]
            for result in results:
                causes.extend(result)
            passed = sum(1 for r in results if not r)
            if passed != len(all_of):
                extra = ". None validated" if passed == 0 else ""
                causes.append(
                    internal_like(f"{quoted} must validate all the schemas (allOf){extra}")
                )
        not_schema = schema.get("not")
        if isinstance(not_schema, dict) and not self.validate(value, not_schema, name):
            causes.append(internal_like(f"{quoted} must not validate the schema (not)"))
        return causes

    @staticmethod
    def _string(value: str, schema: dict[str, Any], name: str) -> list[Cause]:
        causes: list[Cause] = []
        length = len(value)
        max_length = schema.get("maxLength")
        if _is_int(max_length) and length > max_length:
            causes.append(too_long(_name_field(name), max_length))
        min_length = schema.get("minLength")
        if _is_int(min_length) and length < min_length:
            detail = f"{name} in body should be at least {min_length} chars long"
            causes.append(_schema_invalid(name, value, detail))
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern:
            try:
                matched = re.search(pattern, value) is not None
            except re.error:
                matched = True
            if not matched:
                detail = f"{name} in body should match '{pattern}'"
                causes.append(_schema_invalid(name, value, detail))
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt and not _format_ok(fmt, value):
            causes.append(
                _type_invalid(
                    name, value, f"{name} in body must be of type {fmt}: {go_quote(value)}"
                )
            )
        return causes

    @staticmethod
    def _numeric(value: float, schema: dict[str, Any], name: str) -> list[Cause]:
        causes: list[Cause] = []
        number = float(value)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and not isinstance(multiple, bool) and multiple > 0:
            quotient = number / float(multiple)
            if abs(quotient - round(quotient)) > 1e-9:
                detail = f"{name} in body should be a multiple of {_number(multiple)}"
                causes.append(_schema_invalid(name, number, detail))
        maximum = schema.get("maximum")
        if isinstance(maximum, int | float) and not isinstance(maximum, bool):
            exclusive = _flag(schema, "exclusiveMaximum")
            if number > maximum or (exclusive and number == maximum):
                op = "less than" if exclusive else "less than or equal to"
                detail = f"{name} in body should be {op} {go_float(float(maximum))}"
                causes.append(_schema_invalid(name, number, detail))
        minimum = schema.get("minimum")
        if isinstance(minimum, int | float) and not isinstance(minimum, bool):
            exclusive = _flag(schema, "exclusiveMinimum")
            if number < minimum or (exclusive and number == minimum):
                op = "greater than" if exclusive else "greater than or equal to"
                detail = f"{name} in body should be {op} {go_float(float(minimum))}"
                causes.append(_schema_invalid(name, number, detail))
        return causes

    def _array(self, value: list[Any], schema: dict[str, Any], name: str) -> list[Cause]:
        causes: list[Cause] = []
        items = _items(schema)
        if items is not None:
            for index, item in enumerate(value):
                causes.extend(self.validate(item, items, f"{name}[{index}]"))
        min_items = schema.get("minItems")
        if _is_int(min_items) and len(value) < min_items:
            detail = f"{name} in body should have at least {min_items} items"
            causes.append(_schema_invalid(name, len(value), detail))
        max_items = schema.get("maxItems")
        if _is_int(max_items) and len(value) > max_items:
            causes.append(too_many(_name_field(name), len(value), max_items))
        if _flag(schema, "uniqueItems"):
            seen: list[Any] = []
            for item in value:
                if any(_json_equal(item, other) for other in seen):
                    detail = f"{name} in body shouldn't contain duplicates"
                    causes.append(_schema_invalid(name, "", detail))
                    break
                seen.append(item)
        return causes

    @staticmethod
    def _enum(value: Any, schema: dict[str, Any], name: str) -> list[Cause]:
        allowed = schema.get("enum")
        if not isinstance(allowed, list) or not allowed:
            return []
        if any(_json_equal(value, option) for option in allowed):
            return []
        shown = [o if isinstance(o, str) else format_value(o) for o in allowed]
        return [not_supported(_name_field(name), value, shown)]

    def _object(self, value: dict[str, Any], schema: dict[str, Any], name: str) -> list[Cause]:
        count = len(value)
        min_props = schema.get("minProperties")
        if _is_int(min_props) and count < min_props:
            detail = f"{name} in body should have at least {min_props} properties"
            return [_schema_invalid(name, count, detail)]
        max_props = schema.get("maxProperties")
        if _is_int(max_props) and count > max_props:
            return [too_many(_name_field(name), count, max_props)]
        causes: list[Cause] = []
        props = _props(schema)
        raw_additional = schema.get("additionalProperties")
        for key, child in value.items():
            if key in props:
                continue
            if raw_additional is False:
                causes.append(
                    _schema_invalid(name, key, f"{name}.{key} in body is a forbidden property")
                )
            elif isinstance(raw_additional, dict):
                causes.extend(self.validate(child, raw_additional, f"{name}.{key}"))
        for key, prop in props.items():
            if key in value:
                causes.extend(self.validate(value[key], prop, _child(name, key)))
        for key in schema.get("required") or []:
            if key not in value:
                causes.append(required(_name_field(f"{name}.{key}")))
        return causes


def _fewest(results: list[list[Cause]]) -> list[Cause]:
    """The failing alternative closest to passing (kube-openapi keeps its errors)."""
    return min(results, key=len)


def internal_like(message: str) -> Cause:
    """A composite (anyOf/oneOf/allOf/not) failure: not a field error, so it lands on <nil>."""
    return invalid(_NIL, "", message)


def _json_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return float(left) == float(right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            _json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


# ---------------------------------------------------------------------------------------
# x-kubernetes-list-type set / map


def _list_type_causes(value: Any, schema: dict[str, Any] | None, path: str) -> list[Cause]:
    if not isinstance(schema, dict):
        return []
    causes: list[Cause] = []
    if isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        items = _items(schema)
        if list_type == "set":
            seen: list[Any] = []
            for index, item in enumerate(value):
                if any(_json_equal(item, other) for other in seen):
                    causes.append(duplicate_cause(_index(path, index), item))
                else:
                    seen.append(item)
        elif list_type == "map":
            causes.extend(_list_map_causes(value, schema, path))
        if items is not None:
            for index, item in enumerate(value):
                causes.extend(_list_type_causes(item, items, _index(path, index)))
    elif isinstance(value, dict):
        props = _props(schema)
        additional = _additional(schema)
        for key, child in value.items():
            if key in props:
                causes.extend(_list_type_causes(child, props[key], _child(path, key)))
            elif isinstance(additional, dict):
                causes.extend(_list_type_causes(child, additional, _key(path, key)))
    return causes


def _list_map_causes(value: list[Any], schema: dict[str, Any], path: str) -> list[Cause]:
    keys = [k for k in schema.get("x-kubernetes-list-map-keys") or [] if isinstance(k, str)]
    item_props = _props(_items(schema))
    causes: list[Cause] = []
    seen: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            continue
        identity: dict[str, Any] = {}
        for key in keys:
            if key in item:
                identity[key] = item[key]
            elif isinstance(item_props.get(key), dict) and "default" in item_props[key]:
                identity[key] = item_props[key]["default"]
            else:
                causes.append(required(_child(_index(path, index), key)))
        if any(_json_equal(identity, other) for other in seen):
            causes.append(duplicate_cause(_index(path, index), identity))
        else:
            seen.append(identity)
    return causes


# ---------------------------------------------------------------------------------------
# CEL x-kubernetes-validations


def _root_self(obj: dict[str, Any]) -> dict[str, Any]:
    """At the resource root CEL sees only metadata.name and metadata.generateName."""
    view = dict(obj)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        view["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return view


def _normalize_field_path(field_path: str) -> str:
    text = field_path.strip()
    text = text[1:] if text.startswith(".") else text
    return re.sub(r"\[['\"]([^'\"]*)['\"]\]", r"[\1]", text)


def _cel_causes(
    value: Any, old: Any, schema: dict[str, Any] | None, path: str, *, root: bool = False
) -> list[Cause]:
    if not isinstance(schema, dict) or value is None:
        return []
    causes = _run_rules(
        _root_self(value) if root and isinstance(value, dict) else value, old, schema, path
    )
    if isinstance(value, dict):
        props = _props(schema)
        additional = _additional(schema)
        old_map = old if isinstance(old, dict) else {}
        for key, child in value.items():
            if key in props:
                causes.extend(_cel_causes(child, old_map.get(key), props[key], _child(path, key)))
            elif isinstance(additional, dict):
                causes.extend(_cel_causes(child, old_map.get(key), additional, _key(path, key)))
    elif isinstance(value, list):
        items = _items(schema)
        old_items = _correlate_list(value, old, schema)
        for index, item in enumerate(value):
            causes.extend(_cel_causes(item, old_items[index], items, _index(path, index)))
    return causes


def _correlate_list(value: list[Any], old: Any, schema: dict[str, Any]) -> list[Any]:
    """Old items are only correlatable for x-kubernetes-list-type=map (by their keys)."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return [None] * len(value)
    keys = [k for k in schema.get("x-kubernetes-list-map-keys") or [] if isinstance(k, str)]

    def identity(item: Any) -> tuple[Any, ...] | None:
        if not isinstance(item, dict):
            return None
        return tuple(repr(item.get(k)) for k in keys)

    by_key = {identity(item): item for item in old if identity(item) is not None}
    return [by_key.get(identity(item)) if identity(item) is not None else None for item in value]


def _rules(schema: dict[str, Any]) -> list[dict[str, Any]]:
    rules = schema.get(_VALIDATIONS)
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def _run_rules(value: Any, old: Any, schema: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    kind = str(schema.get("type") or ("object" if isinstance(value, dict) else ""))
    for rule in _rules(schema):
        source = str(rule.get("rule") or "")
        try:
            program = cel.compile_rule(source)
        except cel.CELError:
            continue  # reported by validate_crd, or outside the subset (unevaluated_rules)
        if program.uses_old_self and (old is None or rule.get("optionalOldSelf") is not None):
            continue
        message = str(rule.get("message") or "").strip()
        shown = message or source.strip()
        try:
            result = cel.evaluate(program, self_value=value, old_self=old)
        except cel.CELEvalError as exc:
            text = str(exc)
            if text.startswith("no such overload"):
                detail = (
                    f"'{text}': call arguments did not match a supported operator, function or "
                    f"macro signature for rule: {shown}"
                )
            else:
                detail = f"{text} evaluating rule: {shown}"
            causes.append(invalid(_field(path), kind, detail))
            continue
        if result is True:
            continue
        field = path
        if rule.get("fieldPath"):
            field = _child(path, _normalize_field_path(str(rule["fieldPath"])))
        detail = message or f"failed rule: {shown}"
        expression = str(rule.get("messageExpression") or "").strip()
        if expression:
            detail = _message_expression(expression, value, old, fallback=detail)
        causes.append(_rule_cause(_field(field), kind, detail, rule.get("reason")))
    return causes


def _message_expression(expression: str, value: Any, old: Any, *, fallback: str) -> str:
    try:
        program = cel.compile_rule(expression)
        result = cel.evaluate(program, self_value=value, old_self=old)
    except cel.CELError:
        return fallback
    if not isinstance(result, str) or not result.strip() or "\n" in result:
        return fallback
    return result.strip()


def _rule_cause(field: str, kind: str, detail: str, reason: Any) -> Cause:
    if reason == "FieldValueForbidden":
        return forbidden(field, detail)
    if reason == "FieldValueRequired":
        return required(field, detail)
    if reason == "FieldValueDuplicate":
        return duplicate_cause(field, kind)
    return invalid(field, kind, detail)


# ---------------------------------------------------------------------------------------
# CustomResourceDefinition validation

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_OPENAPI_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
_RULE_REASONS = (
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
)
_ROOT_ALLOWED_WITH_STATUS = frozenset(
    {
        "description", "type", "format", "title", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
        "uniqueItems", "multipleOf", "required", "items", "properties", "externalDocs",
        "example", _PRESERVE, _VALIDATIONS,
    }
)  # fmt: skip


def _dns1035_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1035_LABEL.match(value):
        errors.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    return errors


def _dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return errors


def crd_defaults(crd: dict[str, Any]) -> dict[str, Any]:
    """A copy of the CRD with the v1 defaults the apiserver applies before validating it."""
    out = copy.deepcopy(crd)
    spec = out.setdefault("spec", {})
    if not isinstance(spec, dict):
        return out
    names = spec.setdefault("names", {})
    if isinstance(names, dict):
        kind = names.get("kind")
        if isinstance(kind, str) and kind:
            names.setdefault("singular", kind.lower())
            names.setdefault("listKind", kind + "List")
    conversion = spec.get("conversion")
    if conversion is None:
        spec["conversion"] = {"strategy": "None"}
    versions = spec.get("versions")
    storage = [
        v.get("name") for v in versions or [] if isinstance(v, dict) and v.get("storage") is True
    ]
    status = out.setdefault("status", {})
    if isinstance(status, dict) and not status.get("storedVersions") and len(storage) == 1:
        status["storedVersions"] = list(storage)
    return out


def validate_crd(crd: dict[str, Any]) -> list[Cause]:
    """The checks kube-apiserver makes when a CustomResourceDefinition is created."""
    crd = crd_defaults(crd)
    causes: list[Cause] = []
    meta = crd.get("metadata") if isinstance(crd.get("metadata"), dict) else {}
    spec = crd.get("spec") if isinstance(crd.get("spec"), dict) else {}
    assert isinstance(meta, dict) and isinstance(spec, dict)
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    assert isinstance(names, dict)
    group = str(spec.get("group") or "")

    name = str(meta.get("name") or "")
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        problems = _dns1123_subdomain_errors(name)
        if name != f"{names.get('plural', '')}.{group}":
            problems.append('must be spec.names.plural+"."+spec.group')
        causes.extend(invalid("metadata.name", name, problem) for problem in problems)

    if not group:
        causes.append(required("spec.group"))
    elif errors := _dns1123_subdomain_errors(group):
        causes.append(invalid("spec.group", group, ",".join(errors)))
    elif len(group.split(".")) < 2:
        causes.append(invalid("spec.group", group, "should be a domain with at least one dot"))

    scope = spec.get("scope")
    if not scope:
        causes.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))

    if spec.get("preserveUnknownFields") is True:
        causes.append(
            invalid(
                "spec.preserveUnknownFields",
                True,
                "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                "spec.versions[*].schema instead",
            )
        )

    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    causes.extend(_validate_versions(versions))

    for key in ("plural", "singular", "kind", "listKind"):
        if not names.get(key):
            causes.append(required(f"spec.names.{key}"))
    causes.extend(_validate_names(names))
    causes.extend(_validate_conversion(spec.get("conversion")))
    return causes


def _validate_versions(versions: list[dict[str, Any]]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    unique = True
    storage = 0
    for index, version in enumerate(versions):
        path = f"spec.versions[{index}]"
        version_name = str(version.get("name") or "")
        storage += version.get("storage") is True
        if version_name in seen:
            unique = False
        seen.add(version_name)
        if errors := _dns1035_errors(version_name):
            causes.append(invalid(f"{path}.name", version_name, ",".join(errors)))
        schema = _dig(version, "schema", "openAPIV3Schema")
        if not isinstance(schema, dict):
            causes.append(required(f"{path}.schema.openAPIV3Schema", "schemas are required"))
        else:
            status_enabled = _dig(version, "subresources", "status") is not None
            causes.extend(
                _validate_openapi_schema(schema, f"{path}.schema.openAPIV3Schema", status_enabled)
            )
        causes.extend(_validate_subresources(version.get("subresources"), f"{path}.subresources"))
        for col_index, column in enumerate(version.get("additionalPrinterColumns") or []):
            causes.extend(_validate_column(column, f"{path}.additionalPrinterColumns[{col_index}]"))
    shown = versions
    if not unique:
        causes.append(invalid("spec.versions", shown, "must contain unique version names"))
    if storage != 1:
        causes.append(
            invalid(
                "spec.versions", shown, "must have exactly one version marked as storage version"
            )
        )
    return causes


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _validate_names(names: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("plural", "singular"):
        value = str(names.get(key) or "")
        if value and (errors := _dns1035_errors(value)):
            causes.append(invalid(f"spec.names.{key}", value, ",".join(errors)))
    for key in ("kind", "listKind"):
        value = str(names.get(key) or "")
        if value and (errors := _dns1035_errors(value.lower())):
            detail = "may have mixed case, but should otherwise match: " + ",".join(errors)
            causes.append(invalid(f"spec.names.{key}", value, detail))
    for index, short in enumerate(names.get("shortNames") or []):
        if errors := _dns1035_errors(str(short)):
            causes.append(invalid(f"spec.names.shortNames[{index}]", short, ",".join(errors)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        causes.append(
            invalid(
                "spec.names.listKind", names["listKind"], "kind and listKind may not be the same"
            )
        )
    for index, category in enumerate(names.get("categories") or []):
        if errors := _dns1035_errors(str(category)):
            causes.append(invalid(f"spec.names.categories[{index}]", category, ",".join(errors)))
    return causes


def _validate_conversion(conversion: Any) -> list[Cause]:
    if not isinstance(conversion, dict):
        return []
    strategy = conversion.get("strategy")
    if not strategy:
        return [required("spec.conversion.strategy")]
    if strategy not in ("None", "Webhook"):
        return [not_supported("spec.conversion.strategy", strategy, ["None", "Webhook"])]
    if strategy == "Webhook" and not isinstance(conversion.get("webhook"), dict):
        return [
            required(
                "spec.conversion.webhookClientConfig", "required when strategy is set to Webhook"
            )
        ]
    return []


def _validate_subresources(subresources: Any, path: str) -> list[Cause]:
    scale = _dig(subresources, "scale")
    if not isinstance(scale, dict):
        return []
    causes: list[Cause] = []
    for key, prefixes, text in (
        ("specReplicasPath", (".spec.",), "should be a json path under .spec"),
        ("statusReplicasPath", (".status.",), "should be a json path under .status"),
        (
            "labelSelectorPath",
            (".spec.", ".status."),
            "should be a json path under either .spec or .status",
        ),
    ):
        value = scale.get(key)
        if value is None or (key == "labelSelectorPath" and value == ""):
            if key != "labelSelectorPath":
                causes.append(required(f"{path}.scale.{key}"))
            continue
        errors = _simple_json_path(str(value), f"{path}.scale.{key}")
        causes.extend(errors)
        if not errors and not str(value).startswith(prefixes):
            causes.append(invalid(f"{path}.scale.{key}", value, text))
    return causes


def _simple_json_path(value: str, path: str) -> list[Cause]:
    if not value:
        return [invalid(path, value, "must not be empty")]
    if value[0] != ".":
        return [invalid(path, value, "must be a simple json path starting with .")]
    return []


def _validate_column(column: Any, path: str) -> list[Cause]:
    if not isinstance(column, dict):
        return [invalid(path, column, "must be an object")]
    causes: list[Cause] = []
    if not column.get("name"):
        causes.append(required(f"{path}.name"))
    kind = column.get("type")
    types_text = "must be one of " + ",".join(_COLUMN_TYPES)
    if not kind:
        causes.append(required(f"{path}.type", types_text))
    elif kind not in _COLUMN_TYPES:
        causes.append(invalid(f"{path}.type", kind, types_text))
    fmt = column.get("format")
    if fmt and fmt not in _COLUMN_FORMATS:
        causes.append(invalid(f"{path}.format", fmt, "must be one of " + ",".join(_COLUMN_FORMATS)))
    json_path = column.get("jsonPath")
    if not json_path:
        causes.append(required(f"{path}.JSONPath"))
    else:
        causes.extend(_simple_json_path(str(json_path), f"{path}.JSONPath"))
    return causes


# -- the schema itself ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    """Where a schema node sits: kube's root/item/field levels, resource-meta and oldSelf."""

    kind: str  # "root", "item", "field"
    inside_meta: bool = False
    forbid_defaults: str = ""
    uncorrelatable: str = ""


def _validate_openapi_schema(
    schema: dict[str, Any], path: str, status_enabled: bool
) -> list[Cause]:
    causes: list[Cause] = []
    if status_enabled:
        if schema.get("type") not in (None, "object"):
            causes.append(
                invalid(
                    f"{path}.type",
                    schema["type"],
                    'only "object" is allowed as the type at the root of the schema if the status '
                    "subresource is enabled",
                )
            )
        elif any(key not in _ROOT_ALLOWED_WITH_STATUS for key in schema):
            causes.append(
                invalid(
                    path,
                    schema,
                    "only Description, Type, Format, Title, Maximum, ExclusiveMaximum, Minimum, "
                    "ExclusiveMinimum, MaxLength, MinLength, Pattern, MaxItems, MinItems, "
                    "UniqueItems, MultipleOf, Required, Items, Properties, ExternalDocs, Example, "
                    "XPreserveUnknownFields, XValidations fields are allowed at the root of the "
                    "schema if the status subresource is enabled",
                )
            )
    if schema.get("nullable") is True:
        causes.append(forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    schema_causes = list(_walk_schema(schema, path, _Level("root")))
    structural = _structural_causes(schema, path, "root")
    schema_causes.extend(sorted(structural, key=lambda c: c.error()))
    if not schema_causes:
        schema_causes.extend(_default_causes(schema, path))
    causes.extend(schema_causes)
    if not causes:
        causes.extend(_cel_compile_causes(schema, path, _Level("root")))
    return causes


def _walk_schema(schema: dict[str, Any], path: str, level: _Level) -> Iterator[Cause]:
    """specStandardValidatorV3 plus the list/map-type and extension checks, node by node."""
    kind = schema.get("type")
    if kind and kind not in _OPENAPI_TYPES:
        if kind == "null":
            yield forbidden(
                f"{path}.type", "type cannot be set to null, use nullable as an alternative"
            )
        else:
            yield not_supported(f"{path}.type", kind, _OPENAPI_TYPES)
    if "default" in schema and level.forbid_defaults:
        yield forbidden(f"{path}.default", f"must not be set {level.forbid_defaults}")
    for key, message in (
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ):
        if schema.get(key) not in (None, "", {}, []):
            yield forbidden(f"{path}.{key}", message)
    if isinstance(schema.get("items"), list):
        yield forbidden(f"{path}.items", "items must be a schema object and not an array")
    if level.inside_meta and _flag(schema, _EMBEDDED):
        yield forbidden(f"{path}.{_EMBEDDED}", "must not be used inside of resource meta")
    if _flag(schema, "uniqueItems"):
        yield forbidden(
            f"{path}.uniqueItems",
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        )
    props = _props(schema)
    additional = schema.get("additionalProperties")
    if additional is not None:
        if props and (additional is False or isinstance(additional, dict)):
            yield forbidden(
                f"{path}.additionalProperties",
                "additionalProperties and properties are mutual exclusive",
            )
        if isinstance(additional, dict):
            forbid = level.forbid_defaults
            if level.inside_meta:
                forbid = "inside additionalProperties applying to object metadata"
            sub = _Level("field", level.inside_meta, forbid, level.uncorrelatable)
            yield from _walk_schema(additional, f"{path}.additionalProperties", sub)
    for name, prop in props.items():
        if not isinstance(prop, dict):
            continue
        child = _Level("field", level.inside_meta, level.forbid_defaults, level.uncorrelatable)
        if schema.get("x-kubernetes-map-type") == "atomic":
            child = _Level("field", child.inside_meta, child.forbid_defaults, path)
        if (level.kind == "root" or _flag(schema, _EMBEDDED)) and name in (
            "metadata",
            "kind",
            "apiVersion",
        ):
            forbid = f"in top-level {name}" if level.kind == "root" else child.forbid_defaults
            child = _Level("field", True, forbid, child.uncorrelatable)
        yield from _walk_schema(prop, f"{path}.properties[{name}]", child)
    for junction in ("allOf", "anyOf", "oneOf"):
        for index, sub_schema in enumerate(schema.get(junction) or []):
            if isinstance(sub_schema, dict):
                yield from _walk_schema(sub_schema, f"{path}.{junction}[{index}]", level)
    if isinstance(schema.get("not"), dict):
        yield from _walk_schema(schema["not"], f"{path}.not", level)
    items = _items(schema)
    if items is not None:
        uncorrelatable = level.uncorrelatable
        if schema.get("x-kubernetes-list-type") != "map":
            uncorrelatable = uncorrelatable or path
        yield from _walk_schema(
            items,
            f"{path}.items",
            _Level("item", level.inside_meta, level.forbid_defaults, uncorrelatable),
        )
    yield from _extension_causes(schema, path)
    yield from _rule_shape_causes(schema, path)


def _extension_causes(schema: dict[str, Any], path: str) -> Iterator[Cause]:
    kind = schema.get("type")
    if schema.get(_PRESERVE) is False:
        yield invalid(f"{path}.{_PRESERVE}", False, "must be true or undefined")
    map_type = schema.get("x-kubernetes-map-type")
    if map_type is not None:
        if kind != "object":
            text = "must be object if x-kubernetes-map-type is specified"
            yield (
                required(f"{path}.type", text) if not kind else invalid(f"{path}.type", kind, text)
            )
        if map_type not in ("atomic", "granular"):
            yield not_supported(f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"])
    list_type = schema.get("x-kubernetes-list-type")
    items = _items(schema)
    if list_type is not None and kind != "array":
        text = "must be array if x-kubernetes-list-type is specified"
        yield required(f"{path}.type", text) if not kind else invalid(f"{path}.type", kind, text)
    elif list_type == "set" and items is not None:
        if items.get("type") == "array" and items.get("x-kubernetes-list-type") not in (
            None,
            "atomic",
        ):
            yield invalid(
                f"{path}.items.x-kubernetes-list-type",
                items.get("x-kubernetes-list-type"),
                "must be atomic as item of a list with x-kubernetes-list-type=set",
            )
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            yield invalid(
                f"{path}.items.x-kubernetes-map-type",
                items.get("x-kubernetes-map-type"),
                "must be atomic as item of a list with x-kubernetes-list-type=set",
            )
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        yield not_supported(f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"])
    map_keys = schema.get("x-kubernetes-list-map-keys") or []
    if map_keys:
        if list_type is None:
            yield required(
                f"{path}.x-kubernetes-list-type",
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )
        elif list_type != "map":
            yield invalid(
                f"{path}.x-kubernetes-list-type",
                list_type,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )
    if list_type == "map":
        if not map_keys:
            yield required(
                f"{path}.x-kubernetes-list-map-keys",
                "must not be empty if x-kubernetes-list-type is map",
            )
        if items is None:
            yield required(f"{path}.items", "must have a schema if x-kubernetes-list-type is map")
        elif items.get("type") != "object":
            yield invalid(
                f"{path}.items.type",
                items.get("type"),
                "must be object if parent array's x-kubernetes-list-type is map",
            )
        else:
            item_props = _props(items)
            for key in map_keys:
                key_schema = item_props.get(key)
                if not isinstance(key_schema, dict):
                    yield invalid(
                        f"{path}.x-kubernetes-list-map-keys",
                        map_keys,
                        "entries must all be names of item properties",
                    )
                    continue
                if key_schema.get("type") in ("array", "object"):
                    yield invalid(
                        f"{path}.items.properties[{key}].type",
                        items.get("type"),
                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                    )
                if key_schema.get("nullable") is True:
                    yield forbidden(
                        f"{path}.items.properties[{key}].nullable",
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    )
                if key not in (items.get("required") or []) and "default" not in key_schema:
                    yield required(
                        f"{path}.items.required",
                        "this property is in x-kubernetes-list-map-keys, so it must have a default "
                        "or be a required property",
                    )
            if len(set(map_keys)) != len(map_keys):
                yield invalid(
                    f"{path}.x-kubernetes-list-map-keys",
                    map_keys,
                    "must not contain duplicate entries",
                )
    if list_type in ("set", "map") and items is not None and items.get("nullable") is True:
        yield forbidden(
            f"{path}.items.nullable",
            f"cannot be nullable when x-kubernetes-list-type is {list_type}",
        )


def _rule_shape_causes(schema: dict[str, Any], path: str) -> Iterator[Cause]:
    for index, rule in enumerate(_rules(schema)):
        base = f"{path}.{_VALIDATIONS}[{index}]"
        source = str(rule.get("rule") or "").strip()
        message = rule.get("message")
        trimmed = str(message or "").strip()
        if not source:
            yield required(f"{base}.rule", "rule is not specified")
        elif message is not None and message != "" and not trimmed:
            yield invalid(f"{base}.message", message, "message must be non-empty if specified")
        elif "\n" in trimmed or "\r" in trimmed:
            yield invalid(f"{base}.message", message, "message must not contain line breaks")
        elif ("\n" in source or "\r" in source) and not trimmed:
            yield required(
                f"{base}.message", "message must be specified if rule contains line breaks"
            )
        expression = rule.get("messageExpression")
        if expression is not None and expression != "" and not str(expression).strip():
            yield required(
                f"{base}.messageExpression", "messageExpression must be non-empty if specified"
            )
        reason = rule.get("reason")
        if reason is not None and reason not in _RULE_REASONS:
            yield not_supported(f"{base}.reason", reason, _RULE_REASONS)
        field_path = rule.get("fieldPath")
        if field_path is not None and field_path != "":
            if not str(field_path).strip():
                yield invalid(
                    f"{base}.fieldPath", field_path, "fieldPath must be non-empty if specified"
                )
            elif "\n" in str(field_path):
                yield invalid(
                    f"{base}.fieldPath", field_path, "fieldPath must not contain line breaks"
                )
            elif not _field_path_valid(schema, str(field_path)):
                yield invalid(f"{base}.fieldPath", field_path, "fieldPath must be a valid path")


def _field_path_valid(schema: dict[str, Any], field_path: str) -> bool:
    try:
        parsed = jsonpath.parse(field_path)
    except jsonpath.JSONPathError:
        return False
    node: dict[str, Any] | None = schema
    for step in parsed.steps:
        names = getattr(step, "names", None)
        if node is None or not names or len(names) != 1:
            return False
        props = _props(node)
        additional = _additional(node)
        if names[0] in props:
            node = props[names[0]]
        elif isinstance(additional, dict):
            node = additional
        else:
            return False
    return bool(parsed.steps)


def _structural_causes(schema: dict[str, Any], path: str, level: str) -> list[Cause]:
    """validateStructuralInvariants: types everywhere, metadata restrictions, embedded rules."""
    causes: list[Cause] = []
    kind = schema.get("type") or ""
    items = _items(schema)
    if kind == "array" and items is None:
        causes.append(required(f"{path}.items", "must be specified"))
    if items is not None:
        causes.extend(_structural_causes(items, f"{path}.items", "item"))
    for name, prop in _props(schema).items():
        if isinstance(prop, dict):
            causes.extend(_structural_causes(prop, f"{path}.properties[{name}]", "field"))
    additional = schema.get("additionalProperties")
    if additional is not None:
        if level == "root":
            causes.append(forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if isinstance(additional, dict):
            causes.extend(_structural_causes(additional, f"{path}.additionalProperties", "field"))
    int_or_string = _flag(schema, _INT_OR_STRING)
    preserve = _flag(schema, _PRESERVE)
    embedded = _flag(schema, _EMBEDDED)
    if int_or_string and preserve:
        causes.append(
            invalid(
                f"{path}.{_PRESERVE}", True, "must be false if x-kubernetes-int-or-string is true"
            )
        )
    if int_or_string and embedded:
        causes.append(
            invalid(
                f"{path}.{_EMBEDDED}", True, "must be false if x-kubernetes-int-or-string is true"
            )
        )
    causes.extend(_junction_structural_causes(schema, path, skip_int_or_string=int_or_string))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            causes.append(
                invalid(
                    f"{path}.pattern",
                    pattern,
                    f"must be a valid regular expression, but isn't: {exc}",
                )
            )
    if embedded and kind != "object":
        text = "must be object if x-kubernetes-embedded-resource is true"
        causes.append(
            required(f"{path}.type", text) if not kind else invalid(f"{path}.type", kind, text)
        )
    elif not kind and not int_or_string and not preserve:
        text = {
            "root": "must not be empty at the root",
            "item": "must not be empty for specified array items",
            "field": "must not be empty for specified object fields",
        }[level]
        causes.append(required(f"{path}.type", text))
    if embedded and additional is not None:
        causes.append(
            forbidden(
                f"{path}.additionalProperties",
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == "root" and kind and kind != "object":
        causes.append(invalid(f"{path}.type", kind, "must be object at the root"))
    props = _props(schema)
    check_meta = level == "root" or embedded
    for key, expected in (("kind", "string"), ("apiVersion", "string"), ("metadata", "object")):
        prop = props.get(key)
        if check_meta and isinstance(prop, dict) and prop.get("type") != expected:
            causes.append(
                invalid(
                    f"{path}.properties[{key}].type", prop.get("type") or "", f"must be {expected}"
                )
            )
    metadata = props.get("metadata")
    if level == "root" and isinstance(metadata, dict) and not _metadata_schema_allowed(metadata):
        causes.append(
            forbidden(
                f"{path}.properties[metadata]",
                "must not specify anything other than name and generateName, but metadata is "
                "implicitly specified",
            )
        )
    if embedded and not preserve and not props:
        causes.append(
            required(
                f"{path}.properties",
                "must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )
        )
    return causes


def _metadata_schema_allowed(metadata: dict[str, Any]) -> bool:
    props = _props(metadata)
    if set(props) - {"name", "generateName"}:
        return False
    return all(key in ("type", "properties", "default") for key in metadata)


def _junction_structural_causes(
    schema: dict[str, Any], path: str, *, skip_int_or_string: bool
) -> list[Cause]:
    causes: list[Cause] = []
    for junction in ("anyOf", "allOf", "oneOf"):
        for index, sub in enumerate(schema.get(junction) or []):
            if not isinstance(sub, dict):
                continue
            if (
                skip_int_or_string
                and junction == "anyOf"
                and sub.get("type") in ("integer", "string")
                and len(sub) == 1
            ):
                continue
            causes.extend(_nested_value_causes(sub, f"{path}.{junction}[{index}]"))
    if isinstance(schema.get("not"), dict):
        causes.extend(_nested_value_causes(schema["not"], f"{path}.not"))
    return causes


def _nested_value_causes(schema: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, text in (
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        (_PRESERVE, "must be false to be structural"),
        (_EMBEDDED, "must be false to be structural"),
        (_INT_OR_STRING, "must be false to be structural"),
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
    ):
        if schema.get(key) not in (None, "", False, []):
            causes.append(forbidden(f"{path}.{key}", text))
    if schema.get("nullable") is True:
        causes.append(forbidden(f"{path}.nullable", "must be false to be structural"))
    if "metadata" in _props(schema):
        causes.append(
            forbidden(f"{path}.properties[metadata]", "must not be specified in a nested context")
        )
    for name, prop in _props(schema).items():
        if isinstance(prop, dict):
            causes.extend(_nested_value_causes(prop, f"{path}.properties[{name}]"))
    items = _items(schema)
    if items is not None:
        causes.extend(_nested_value_causes(items, f"{path}.items"))
    causes.extend(_junction_structural_causes(schema, path, skip_int_or_string=False))
    return causes


def _default_causes(schema: dict[str, Any], path: str) -> list[Cause]:
    """Defaults must validate against their schema and survive pruning unchanged."""
    causes: list[Cause] = []
    for node, node_path, in_meta in _schema_nodes(schema, path):
        if "default" not in node or node.get("default") is None:
            continue
        default = copy.deepcopy(node["default"])
        wrapper = {"v": default}
        wrapper_schema = {"type": "object", "properties": {"v": node}}
        _default(wrapper, wrapper_schema)
        for cause in _SchemaValidator().validate(wrapper["v"], node, ""):
            field = cause.field if cause.field != _NIL else ""
            causes.append(
                Cause(
                    cause.type,
                    cause.message,
                    _child(f"{node_path}.default", field) if field else f"{node_path}.default",
                )
            )
        if in_meta:
            continue
        pruned = copy.deepcopy(wrapper["v"])
        _prune({"v": pruned}, wrapper_schema)
        if not _json_equal(pruned, wrapper["v"]):
            causes.append(invalid(f"{node_path}.default", default, "must not have unknown fields"))
    return causes


def _schema_nodes(
    schema: dict[str, Any], path: str, in_meta: bool = False
) -> Iterator[tuple[dict[str, Any], str, bool]]:
    yield schema, path, in_meta
    for name, prop in _props(schema).items():
        if isinstance(prop, dict):
            yield from _schema_nodes(
                prop, f"{path}.properties[{name}]", in_meta or name == "metadata"
            )
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        yield from _schema_nodes(additional, f"{path}.additionalProperties", in_meta)
    items = _items(schema)
    if items is not None:
        yield from _schema_nodes(items, f"{path}.items", in_meta)


def _cel_compile_causes(schema: dict[str, Any], path: str, level: _Level) -> list[Cause]:
    causes: list[Cause] = []
    for index, rule in enumerate(_rules(schema)):
        base = f"{path}.{_VALIDATIONS}[{index}]"
        try:
            program = cel.compile_rule(str(rule.get("rule") or ""))
        except cel.CELSyntaxError as exc:
            causes.append(invalid(f"{base}.rule", rule, f"compilation failed: {exc}"))
            continue
        except cel.CELUnsupported:
            continue
        if program.uses_old_self and level.uncorrelatable:
            causes.append(
                invalid(
                    f"{base}.rule",
                    rule.get("rule"),
                    f"oldSelf cannot be used on the uncorrelatable portion of the schema within {level.uncorrelatable}",  # noqa: E501
                )
            )
        elif not program.uses_old_self and rule.get("optionalOldSelf") is not None:
            causes.append(
                invalid(
                    f"{base}.optionalOldSelf",
                    rule["optionalOldSelf"],
                    "may not be set if oldSelf is not used in rule",
                )
            )
        expression = str(rule.get("messageExpression") or "").strip()
        if expression:
            try:
                cel.compile_rule(expression)
            except cel.CELSyntaxError as exc:
                causes.append(
                    invalid(
                        f"{base}.messageExpression",
                        rule,
                        f"messageExpression compilation failed: {exc}",
                    )
                )
            except cel.CELUnsupported:
                pass
    uncorrelatable = level.uncorrelatable
    if schema.get("x-kubernetes-map-type") == "atomic":
        uncorrelatable = uncorrelatable or path
    for name, prop in _props(schema).items():
        if isinstance(prop, dict):
            child = _Level("field", uncorrelatable=uncorrelatable)
            causes.extend(_cel_compile_causes(prop, f"{path}.properties[{name}]", child))
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        causes.extend(
            _cel_compile_causes(
                additional,
                f"{path}.additionalProperties",
                _Level("field", uncorrelatable=level.uncorrelatable),
            )
        )
    items = _items(schema)
    if items is not None:
        uncorrelatable = level.uncorrelatable
        if schema.get("x-kubernetes-list-type") != "map":
            uncorrelatable = uncorrelatable or path
        causes.extend(
            _cel_compile_causes(
                items, f"{path}.items", _Level("item", uncorrelatable=uncorrelatable)
            )
        )
    return causes


def unevaluated_rules(crd: dict[str, Any]) -> list[UnevaluatedRule]:
    """CEL rules of every version that kubesim skips because they are outside its subset."""
    out: list[UnevaluatedRule] = []
    versions = _dig(crd, "spec", "versions")
    for index, version in enumerate(versions if isinstance(versions, list) else []):
        schema = _dig(version, "schema", "openAPIV3Schema")
        if not isinstance(schema, dict):
            continue
        base = f"spec.versions[{index}].schema.openAPIV3Schema"
        for node, node_path, _ in _schema_nodes(schema, base):
            for rule_index, rule in enumerate(_rules(node)):
                for key in ("rule", "messageExpression"):
                    source = str(rule.get(key) or "")
                    if not source.strip():
                        continue
                    try:
                        cel.compile_rule(source)
                    except cel.CELUnsupported as exc:
                        out.append(
                            UnevaluatedRule(
                                version=str(version.get("name") or ""),
                                field=f"{node_path}.{_VALIDATIONS}[{rule_index}].{key}",
                                rule=source,
                                reason=str(exc),
                            )
                        )
                    except cel.CELSyntaxError:
                        pass
    return out
