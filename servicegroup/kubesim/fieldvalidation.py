"""Unknown fields: what kube-apiserver's decoders drop, and how each request reports them.

Owns:
- `drop_unknown_builtin`: prune a built-in object (in its request version) against the
  OpenAPI definitions `openapi.py` derives from kubernetes_asyncio's models, as the typed
  JSON decoder does (a field no Go struct declares is dropped; maps keep every key; free-form
  values such as RawExtension, FieldsV1 or JSONSchemaProps' `default` keep everything).
- `removed_steps`: the unknown-field paths of a custom resource, from its schema pruning.
- The messages: `unknown_field_messages` (`unknown field "spec.template.spec.containers[0].x"`,
  sigs.k8s.io/json's paths), `decode_error` (400 for create/update bodies: `Deployment in
  version "v1" cannot be handled as a Deployment: strict decoding error: ...`),
  `patch_error` (the patch handlers' 422 on the `patch` field) and `apply_error` (server-side
  apply's typed conversion: `.spec.foo: field not declared in schema`, a 500 as upstream,
  one error per object level, with structured-merge-diff paths).

A step path is a tuple of map keys (str) and list indexes (int).

Invariants: functions never mutate anything but the object `drop_unknown_builtin` is given;
definitions are compiled once per process into a small tree of `_Node`s; duplicate JSON
fields are not detected (the JSON parser keeps the last one).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from servicegroup.kubesim import errors
from servicegroup.kubesim import fieldpath as fp
from servicegroup.kubesim.fielderrors import go_json, go_quote, invalid
from servicegroup.kubesim.listtypes import ITEM, FieldPath, ListTypes

Step = str | int
Steps = tuple[Step, ...]


@dataclass(eq=False)
class _Node:
    """A compiled schema node: struct (known fields), map, list, or free-form."""

    kind: str  # struct | map | list | free
    fields: dict[str, _Node] = field(default_factory=dict)
    elem: _Node | None = None


_FREE = _Node("free")


def _compile(definitions: dict[str, dict[str, Any]]) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}

    def of_schema(schema: Any) -> _Node:
        if not isinstance(schema, dict):
            return _FREE
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return of_name(ref)
        properties = schema.get("properties")
        if isinstance(properties, dict):
            node = _Node("struct")
            node.fields = {name: of_schema(sub) for name, sub in properties.items()}
            return node
        if schema.get("type") == "array":
            return _Node("list", elem=of_schema(schema.get("items")))
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            return _Node("map", elem=of_schema(additional))
        return _FREE

    def of_name(name: str) -> _Node:
        found = nodes.get(name)
        if found is not None:
            return found
        definition = definitions.get(name)
        if definition is None or not isinstance(definition.get("properties"), dict):
            nodes[name] = _FREE
            return _FREE
        node = _Node("struct")
        nodes[name] = node  # before the fields: definitions are recursive
        node.fields = {key: of_schema(sub) for key, sub in definition["properties"].items()}
        return node

    for name in definitions:
        of_name(name)
    return nodes


@functools.cache
def _compiled() -> dict[str, _Node]:
    from servicegroup.kubesim.openapi import builtin_definitions

    return _compile(builtin_definitions())


@functools.cache
def _builtin_root(group: str, version: str, kind: str) -> _Node | None:
    from servicegroup.kubesim.openapi import builtin_definition_name

    name = builtin_definition_name(group, version, kind)
    return _compiled().get(name) if name is not None else None


def drop_unknown_builtin(
    obj: dict[str, Any], group: str, version: str, kind: str, *, drop: bool = True
) -> list[Steps]:
    """The paths of the fields of `obj` its built-in type does not declare, in document
    order; with `drop` they are also removed from `obj`.

    A kind without a model (none today) keeps everything.
    """
    root = _builtin_root(group, version, kind)
    if root is None or root.kind != "struct":
        return []
    found: list[Steps] = []
    _walk(obj, root, (), found, drop)
    return found


def _walk(value: Any, node: _Node, path: Steps, found: list[Steps], drop: bool) -> None:
    if node.kind == "struct":
        if not isinstance(value, dict):
            return
        for key in list(value):
            child = node.fields.get(key)
            if child is None:
                found.append((*path, key))
                if drop:
                    del value[key]
            elif child is not _FREE:
                _walk(value[key], child, (*path, key), found, drop)
    elif node.elem is None or node.elem.kind == "free":
        return
    elif node.kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            _walk(item, node.elem, (*path, key), found, drop)
    elif node.kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, node.elem, (*path, i), found, drop)


def removed_steps(before: Any, after: Any, path: Steps = ()) -> list[Steps]:
    """Paths present in `before` and gone from `after` (what a schema pruning removed)."""
    found: list[Steps] = []
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            if key not in after:
                found.append((*path, key))
            else:
                found.extend(removed_steps(value, after[key], (*path, key)))
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            found.extend(removed_steps(b, a, (*path, i)))
    return found


# ---- messages ---------------------------------------------------------------------------


def json_path(steps: Steps) -> str:
    """sigs.k8s.io/json's field path: `spec.containers[0].foo`."""
    out = ""
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out = f"{out}.{step}" if out else step
    return out


def unknown_field_messages(found: Iterable[Steps]) -> list[str]:
    return [f"unknown field {go_quote(json_path(steps))}" for steps in found]


def strict_decoding_error(messages: Sequence[str]) -> str:
    return "strict decoding error: " + ", ".join(messages)


def decode_error(kind: str, version: str, messages: Sequence[str]) -> errors.ApiError:
    """The create/update handlers' transformDecodeError for a strict decoding error."""
    return errors.bad_request(
        f"{kind} in version {go_quote(version)} cannot be handled as a {kind}: "
        + strict_decoding_error(messages)
    )


def patch_error(patched_text: str, messages: Sequence[str]) -> errors.ApiError:
    """The patch handlers' answer: 422 with the patched object as the `patch` field's value."""
    cause = invalid("patch", patched_text, strict_decoding_error(messages))
    return errors.invalid("", "", "", [cause])


def patched_json_text(patched: Any) -> str:
    """The patched document as the JSON and merge patchers print it (compact, sorted maps)."""
    return go_json(patched, sort_keys=True)


def go_print(value: Any) -> str:
    """Go's `%+v` of a decoded JSON value (the strategic merge patcher prints the patch so)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and math.fabs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{go_print(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def apply_error(
    found: Sequence[Steps],
    config: Any,
    list_types: ListTypes,
    *,
    namespace: str,
    name: str,
    group: str,
    version: str,
    kind: str,
) -> errors.ApiError:
    """Server-side apply of a config with undeclared fields (structured-merge-diff's error)."""
    first_per_level: dict[Steps, Steps] = {}
    for steps in found:
        first_per_level.setdefault(steps[:-1], steps)  # SMD stops at a level's first error
    lines = [
        f"{_smd_path(steps, config, list_types)}: field not declared in schema"
        for steps in first_per_level.values()
    ]
    detail = lines[0] if len(lines) == 1 else "errors:\n" + "\n".join(f"  {x}" for x in lines)
    message = (
        f"failed to create typed patch object ({namespace}/{name}; {group}/{version}, "
        f"Kind={kind}): {detail}"
    )
    status = errors.status_body(500, "", message)
    del status["reason"]  # a plain error: the apiserver sends no reason
    return errors.ApiError(status)


def _smd_path(steps: Steps, config: Any, list_types: ListTypes) -> str:
    elements: list[fp.PathElement] = []
    field_path: FieldPath = ()
    value = config
    for step in steps:
        if isinstance(step, int):
            item = value[step] if isinstance(value, list) and step < len(value) else None
            elements.append(_item_element(list_types, field_path, step, item))
            field_path = (*field_path, ITEM)
            value = item
        else:
            elements.append(fp.field(step))
            field_path = (*field_path, step)
            value = value.get(step) if isinstance(value, dict) else None
    return fp.path_to_string(elements)


def _item_element(list_types: ListTypes, path: FieldPath, index: int, item: Any) -> fp.PathElement:
    list_type = list_types.list_type(path)
    if list_type.kind == "map" and isinstance(item, dict):
        defaults = list_types.node(path).key_defaults
        keys = {k: item.get(k, defaults.get(k)) for k in list_type.keys}
        return fp.key({k: v for k, v in keys.items() if v is not None})
    if list_type.kind == "set":
        return fp.value(item)
    return fp.index(index)
