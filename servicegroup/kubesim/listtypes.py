"""What kind of list or map lives at a field path: the schema seam of the patch engines.

Owns `ListTypes` (a root `TypeNode` plus lookups by field path), `builtin_list_types` (from
the table in `builtinschema.py`) and `crd_list_types` (from a CRD's OpenAPI v3 schema:
`x-kubernetes-list-type` / `x-kubernetes-list-map-keys` / `x-kubernetes-map-type`, lists
atomic unless marked, maps granular unless marked, anything under
`x-kubernetes-preserve-unknown-fields` deduced: maps granular, lists atomic).

A field path is a tuple of map keys with `ITEM` standing for "an item of this list", e.g.
`("spec", "template", "spec", "containers", ITEM, "ports")`. Lookups never fail: a path
the schema does not describe resolves to the permissive `open` / `deduced` types.

Invariant: custom resources get no strategic-merge metadata (`supports_smp` is False;
kube-apiserver answers 415 to a strategic merge patch on a custom resource).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple

from servicegroup.kubesim.typenode import (
    DEDUCED,
    SCALAR,
    ListKind,
    TypeNode,
    listing,
    mapping,
    struct,
)


class _ListItem:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ITEM"


ITEM: Final = _ListItem()
FieldPath = tuple[str | _ListItem, ...]


class ListType(NamedTuple):
    """SSA list semantics: atomic, set (of scalars), or map keyed by `keys`."""

    kind: ListKind
    keys: tuple[str, ...] = ()


class ListTypes:
    """Schema facts for one kind, looked up by field path (or walked from `root`)."""

    __slots__ = ("_root", "_supports_smp")

    def __init__(self, root: TypeNode, *, supports_smp: bool) -> None:
        self._root = root
        self._supports_smp = supports_smp

    @property
    def root(self) -> TypeNode:
        return self._root

    @property
    def supports_smp(self) -> bool:
        """Whether strategic merge patch is allowed (built-ins only)."""
        return self._supports_smp

    def node(self, path: FieldPath) -> TypeNode:
        node = self._root
        for step in path:
            node = node.item() if isinstance(step, _ListItem) else node.child(step)[0]
        return node

    def patch_strategy(self, path: FieldPath) -> str | None:
        """SMP `patchStrategy` of the field: merge, replace, retainKeys, merge,retainKeys."""
        return self.node(path).patch_strategy if self._supports_smp else None

    def patch_merge_key(self, path: FieldPath) -> str | None:
        """SMP `patchMergeKey` of a merged list of maps."""
        return self.node(path).merge_key if self._supports_smp else None

    def list_type(self, path: FieldPath) -> ListType:
        node = self.node(path)
        if node.kind != "list":
            return ListType("atomic")
        return ListType(node.list_kind, node.keys)

    def map_type(self, path: FieldPath) -> Literal["granular", "atomic"]:
        return "atomic" if self.node(path).atomic else "granular"


def builtin_list_types(group: str, kind: str) -> ListTypes:
    """Schema facts of a built-in kind; unknown kinds get ObjectMeta plus open fields."""
    from servicegroup.kubesim.builtinschema import BUILTIN_ROOTS, GENERIC

    return ListTypes(BUILTIN_ROOTS.get((group, kind), GENERIC), supports_smp=True)


def crd_list_types(openapi_v3_schema: Mapping[str, Any]) -> ListTypes:
    """Schema facts of a custom resource from its version's `openAPIV3Schema`."""
    from servicegroup.kubesim.builtinschema import OBJECT_META

    node = _from_schema(openapi_v3_schema) if openapi_v3_schema else DEDUCED
    fields: dict[str, TypeNode] = dict(node.fields) if node.kind == "struct" else {}
    # metadata is always ObjectMeta, whatever the CRD says (usually just `type: object`).
    fields.update({"apiVersion": SCALAR, "kind": SCALAR, "metadata": OBJECT_META})
    elem = node.elem if node.kind == "struct" else DEDUCED
    root = struct(fields, open_=False, elem=elem)
    return ListTypes(root, supports_smp=False)


def _from_schema(schema: Any) -> TypeNode:
    if not isinstance(schema, Mapping):
        return DEDUCED
    if schema.get("x-kubernetes-int-or-string"):
        return SCALAR
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    kind = schema.get("type")
    items = schema.get("items")
    if kind == "array" or (kind is None and isinstance(items, Mapping)):
        return _list_from_schema(schema, items)
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    if kind == "object" or properties is not None or additional is not None:
        atomic = schema.get("x-kubernetes-map-type") == "atomic"
        if isinstance(properties, Mapping) and properties:
            fields = {name: _from_schema(sub) for name, sub in properties.items()}
            return struct(fields, atomic=atomic, open_=False, elem=DEDUCED if preserve else None)
        if isinstance(additional, Mapping):
            return mapping(_from_schema(additional), atomic=atomic)
        if additional is True or preserve:
            return mapping(DEDUCED, atomic=atomic)
        return struct(atomic=atomic, open_=False)
    if kind is None:
        return DEDUCED
    return SCALAR


def _list_from_schema(schema: Mapping[str, Any], items: Any) -> TypeNode:
    elem = _from_schema(items) if isinstance(items, Mapping) else DEDUCED
    list_kind = schema.get("x-kubernetes-list-type", "atomic")
    if list_kind == "map":
        keys = tuple(str(k) for k in schema.get("x-kubernetes-list-map-keys") or ())
        props = items.get("properties", {}) if isinstance(items, Mapping) else {}
        defaults = {
            k: props[k]["default"]
            for k in keys
            if isinstance(props.get(k), Mapping) and "default" in props[k]
        }
        return listing(elem, "map", keys=keys, key_defaults=defaults)
    if list_kind == "set":
        return listing(elem, "set")
    return listing(elem, "atomic")
