"""Schema-aware walks over JSON objects with structured-merge-diff semantics.

Owns the value operations server-side apply is built from, each a pure function of a
`TypeNode` and raw JSON values:

- `to_field_set`: the fields a value sets (scalars, atomic lists/maps, list items, keys of
  maps that are not struct fields) - what an applier comes to own.
- `merge`: an applied config over the live object (scalars and atomics from the config,
  maps key by key, list-maps by key, sets by value; list order as SMD orders it: live
  order kept, shared items in config order, new items where the config puts them).
- `compare`: added / removed / modified paths between two values (a map or list that
  appears or disappears is itself added or removed, after its contents);
  `compare_with_zero_fields` compares two objects as `with_zero_fields` renders them,
  without copying them and skipping identical subtrees (the write path's comparison).
- `remove_items`: a value without the given members (a map emptied by removal becomes
  null, as SMD leaves it; callers drop such nulls when producing the stored object).
- `ensure_named_fields_are_members`: struct fields with owned children count as owned.
- `with_zero_fields`: a value with the fields its Go zero value always carries.

`MISSING` marks an absent value (distinct from JSON null). Invariant: inputs are never
mutated; results may share unchanged sub-values with the inputs (copy before mutating).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from servicegroup.kubesim import fieldpath as fp
from servicegroup.kubesim.fieldpath import FieldSet, Path, PathElement
from servicegroup.kubesim.typenode import DEDUCED, TypeNode


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_SCALAR, _ATOMIC, _MAP, _LIST = "scalar", "atomic", "map", "list"


class SchemaError(ValueError):
    """A value does not fit the schema (a list item without its key, a duplicate key...)."""

    def __init__(self, path: Path, message: str) -> None:
        where = fp.path_to_string(path)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality as SMD's value.Equals: numbers by value, booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def identical(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same in every respect (types and key order too).

    Fast (C equality, then the serialized forms to tell `True` from `1` and `1.0`); False
    when in doubt, which callers treat as "look closer"."""
    if a is b:
        return True
    if type(a) is not type(b) or a != b:
        return False
    if not isinstance(a, (dict, list)):
        return True
    try:
        return orjson.dumps(a) == orjson.dumps(b)
    except TypeError:  # not JSON (YAML can produce non-string keys): compare the slow way
        return False


def reuse_identical(new: Any, old: Any) -> Any:
    """`new`, with every subtree identical to the same place in `old` replaced by `old`'s.

    Neither argument is mutated: maps and lists above a replaced subtree are copied. Used
    to store a new version of an object sharing what did not change with the previous one
    (stored objects are immutable), which saves memory and garbage-collector work."""
    if identical(new, old):
        return old
    if isinstance(new, dict) and isinstance(old, dict):
        out: dict[str, Any] | None = None
        for k, v in new.items():
            if k not in old:
                continue
            shared = reuse_identical(v, old[k])
            if shared is not v:
                if out is None:
                    out = dict(new)
                out[k] = shared
        return new if out is None else out
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        items: list[Any] | None = None
        for i, (v, was) in enumerate(zip(new, old, strict=True)):
            shared = reuse_identical(v, was)
            if shared is not v:
                if items is None:
                    items = list(new)
                items[i] = shared
        return new if items is None else items
    return new


def _grain(node: TypeNode, v: Any) -> str:
    kind = node.kind
    if kind in ("open", "deduced"):
        if isinstance(v, dict):
            return _ATOMIC if node.atomic else _MAP
        return _ATOMIC if isinstance(v, list) else _SCALAR
    if kind == "scalar":
        return _SCALAR
    if kind in ("struct", "map"):
        if v is None or isinstance(v, dict):
            return _ATOMIC if node.atomic else _MAP
        return _SCALAR
    if v is None or isinstance(v, list):
        return _ATOMIC if node.atomic else _LIST
    return _SCALAR


def _pair_grain(node: TypeNode, lhs: Any, rhs: Any) -> str:
    left = _grain(node, lhs) if lhs is not MISSING else None
    right = _grain(node, rhs) if rhs is not MISSING else None
    if left is not None and right is not None and left != right:
        return _SCALAR
    return right or left or _SCALAR


def item_element(node: TypeNode, item: Any, path: Path = ()) -> PathElement:
    """The path element naming a list item: its key (list-map) or its value (set)."""
    if node.list_kind == "map" and node.keys:
        if not isinstance(item, dict):
            raise SchemaError(path, f"expected map, got {item!r}")
        found: dict[str, Any] = {}
        for name in node.keys:
            if name in item:
                found[name] = item[name]
            elif name in node.key_defaults:
                found[name] = node.key_defaults[name]
            else:
                raise SchemaError(
                    path,
                    f'associative list with keys has an element that omits key field "{name}" '
                    "(and doesn't have default value)",
                )
        return fp.key(found)
    if node.list_kind == "atomic":
        raise SchemaError(path, "invalid atomic list: no path elements")
    if isinstance(item, dict):
        raise SchemaError(path, "associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise SchemaError(path, "associative list without keys has an element that's a list type")
    return fp.value(item)


def _index_items(
    node: TypeNode, items: list[Any] | None, path: Path, *, strict: bool
) -> tuple[list[PathElement], dict[PathElement, Any]]:
    order: list[PathElement] = []
    seen: dict[PathElement, Any] = {}
    for item in items or ():
        pe = item_element(node, item, path)
        if pe in seen:
            if strict:
                raise SchemaError(path, f"duplicate entries for key {fp.element_to_string(pe)}")
            continue
        seen[pe] = item
        order.append(pe)
    return order, seen


# ---- field sets ------------------------------------------------------------------------------


def to_field_set(node: TypeNode, value: Any, *, strict: bool = False) -> FieldSet:
    """The set of fields `value` sets; `strict` also rejects duplicate list keys."""
    out = FieldSet()
    if _grain(node, value) not in (_SCALAR, _ATOMIC):  # a scalar root sets no path
        _fields_below(node, value, (), out, strict)
    return out


def _fields_into(
    node: TypeNode, v: Any, path: Path, parent: FieldSet, pe: PathElement, *, strict: bool
) -> None:
    """Add the fields of `v`, the value at `path` (= the parent's path + `pe`), to `parent`."""
    if _grain(node, v) in (_SCALAR, _ATOMIC):
        parent.members.add(pe)
        return
    here = parent.children.get(pe)
    if here is not None:  # a duplicate list item (not strict): add to what is there
        _fields_below(node, v, path, here, strict)
        return
    here = FieldSet()
    _fields_below(node, v, path, here, strict)
    if not here.empty():
        parent.children[pe] = here


def _fields_below(node: TypeNode, v: Any, path: Path, here: FieldSet, strict: bool) -> None:
    """Add the fields below `v` (a granular map or list at `path`) to `here`, its node."""
    if isinstance(v, dict):
        if _grain(node, v) != _MAP:
            return
        for k, child_value in v.items():
            child, declared = node.child(k)
            pe = fp.field(k)
            _fields_into(child, child_value, (*path, pe), here, pe, strict=strict)
            if not declared:
                here.members.add(pe)
        return
    if isinstance(v, list):
        elem = node.item()
        seen: set[PathElement] = set()
        for item in v:
            pe = item_element(node, item, path)
            if strict:
                if pe in seen:
                    raise SchemaError(path, f"duplicate entries for key {fp.element_to_string(pe)}")
                seen.add(pe)
            _fields_into(elem, item, (*path, pe), here, pe, strict=strict)
            here.members.add(pe)


def ensure_named_fields_are_members(fields: FieldSet, node: TypeNode) -> FieldSet:
    """`fields` plus every struct field that has owned children (SMD's helper of prune)."""
    out = FieldSet()
    out.members = set(fields.members)
    for pe, child in fields.children.items():
        if pe.kind == fp.FIELD:
            child_type, declared = node.child(pe.value)
            if declared:
                out.members.add(pe)
        elif pe.kind == fp.KEY and node.kind == "list":
            child_type = node.item()
        else:
            child_type = DEDUCED
        out.children[pe] = ensure_named_fields_are_members(child, child_type)
    return out


# ---- merge ------------------------------------------------------------------------------


def merge(node: TypeNode, lhs: Any, rhs: Any, path: Path = ()) -> Any:
    """`rhs` (an applied config) merged over `lhs` (the live value); MISSING if neither.

    `rhs` must have passed `to_field_set(node, rhs, strict=True)` (apply does that first):
    merging adds no check of its own to a config subtree the live value lacks or has
    identical, so such a subtree is returned as it is."""
    if rhs is not MISSING and (lhs is MISSING or identical(lhs, rhs)):
        return rhs
    grain = _pair_grain(node, lhs, rhs)
    if grain in (_SCALAR, _ATOMIC):
        return rhs if rhs is not MISSING else lhs
    if grain == _MAP:
        left = lhs if isinstance(lhs, dict) else None
        right = rhs if isinstance(rhs, dict) else None
        if not left and not right:
            return rhs if rhs is not MISSING else lhs
        out: dict[str, Any] = {}
        for k, lv in (left or {}).items():
            rv = right.get(k, MISSING) if right is not None else MISSING
            merged = merge(node.child(k)[0], lv, rv, (*path, fp.field(k)))
            if merged is not MISSING:
                out[k] = merged
        for k, rv in (right or {}).items():
            if left is None or k not in left:
                merged = merge(node.child(k)[0], MISSING, rv, (*path, fp.field(k)))
                if merged is not MISSING:
                    out[k] = merged
        return out if out else MISSING
    left_list = lhs if isinstance(lhs, list) else None
    right_list = rhs if isinstance(rhs, list) else None
    if not left_list and not right_list:
        return rhs if rhs is not MISSING else lhs
    items = _merge_items(node, left_list, right_list, path)
    return items if items else MISSING


def _merge_items(
    node: TypeNode, lhs: list[Any] | None, rhs: list[Any] | None, path: Path
) -> list[Any]:
    elem = node.item()
    right_order, right = _index_items(node, rhs, path, strict=True)
    left_order, left = _index_items(node, lhs, path, strict=False)
    shared = [pe for pe in right_order if pe in left]
    next_shared = 0
    out: list[Any] = []

    def take(pe: PathElement, lv: Any, rv: Any) -> None:
        merged = merge(elem, lv, rv, (*path, pe))
        if merged is not MISSING:
            out.append(merged)

    li = ri = 0
    while li < len(left_order) or ri < len(right_order):
        if li < len(left_order) and ri < len(right_order):
            pe = left_order[li]
            if pe == right_order[ri]:
                take(pe, left[pe], right[pe])
                li, ri, next_shared = li + 1, ri + 1, next_shared + 1
                continue
            # A shared item that is not the next one in the config's order waits its turn.
            if pe in right and next_shared < len(shared) and shared[next_shared] != pe:
                li += 1
                continue
        if li < len(left_order) and left_order[li] not in right:
            take(left_order[li], left[left_order[li]], MISSING)
            li += 1
            continue
        if ri < len(right_order):
            pe = right_order[ri]
            take(pe, left.get(pe, MISSING), right[pe])
            ri += 1
            if next_shared < len(shared) and shared[next_shared] == pe:
                next_shared += 1
            continue
        li += 1  # only already-merged shared items remain on the left
    return out


# ---- compare ----------------------------------------------------------------------------


@dataclass
class Comparison:
    """Paths added, removed and modified going from one value to another."""

    added: FieldSet = field(default_factory=FieldSet)
    removed: FieldSet = field(default_factory=FieldSet)
    modified: FieldSet = field(default_factory=FieldSet)

    def changed(self) -> FieldSet:
        return self.modified.union(self.added)


def compare(node: TypeNode, lhs: Any, rhs: Any) -> Comparison:
    out = Comparison()
    _compare(node, lhs, rhs, (), out)
    return out


def _leaf(lhs: Any, rhs: Any, path: Path, out: Comparison) -> None:
    if lhs is MISSING:
        out.added.insert(path)
    elif rhs is MISSING:
        out.removed.insert(path)
    elif not json_equal(lhs, rhs):
        out.modified.insert(path)


def _compare(node: TypeNode, lhs: Any, rhs: Any, path: Path, out: Comparison) -> None:
    grain = _pair_grain(node, lhs, rhs)
    if grain in (_SCALAR, _ATOMIC):
        _leaf(lhs, rhs, path, out)
        return
    if grain == _MAP:
        left = lhs if isinstance(lhs, dict) else None
        right = rhs if isinstance(rhs, dict) else None
        if not left and not right:
            _leaf(lhs, rhs, path, out)
            return
        for k, lv in (left or {}).items():
            rv = right.get(k, MISSING) if right is not None else MISSING
            _compare(node.child(k)[0], lv, rv, (*path, fp.field(k)), out)
        for k, rv in (right or {}).items():
            if left is None or k not in left:
                _compare(node.child(k)[0], MISSING, rv, (*path, fp.field(k)), out)
    else:
        left_list = lhs if isinstance(lhs, list) else None
        right_list = rhs if isinstance(rhs, list) else None
        if not left_list and not right_list:
            _leaf(lhs, rhs, path, out)
            return
        elem = node.item()
        left_order, left_items = _index_items(node, left_list, path, strict=False)
        right_order, right_items = _index_items(node, right_list, path, strict=False)
        for pe in left_order:
            _compare(elem, left_items[pe], right_items.get(pe, MISSING), (*path, pe), out)
        for pe in right_order:
            if pe not in left_items:
                _compare(elem, MISSING, right_items[pe], (*path, pe), out)
    if lhs is MISSING:
        out.added.insert(path)
    elif rhs is MISSING:
        out.removed.insert(path)


def compare_with_zero_fields(node: TypeNode, lhs: Any, rhs: Any) -> Comparison:
    """`compare(node, with_zero_fields(node, lhs), with_zero_fields(node, rhs))`.

    The zero fields are added level by level as the walk reaches them, and a pair of
    identical subtrees is skipped: their zero-filled forms are identical too, so they
    contribute no change."""
    out = Comparison()
    _compare_zero(node, lhs, rhs, (), out)
    return out


def _zero_level(node: TypeNode, value: Any) -> Any:
    """`value` with the zero fields of this level only (children are filled when visited)."""
    if node.kind != "struct" or node.atomic or not isinstance(value, dict):
        return value
    zeros = _ZERO_FIELDS.get(node)
    if zeros is None:
        zeros = tuple((name, child) for name, child in node.fields.items() if child.zero)
        _ZERO_FIELDS[node] = zeros
    out = value
    for name, child in zeros:
        if name not in value:
            if out is value:
                out = dict(value)
            out[name] = with_zero_fields(child, {}) if child.zero == "map" else None
    return out


_ZERO_FIELDS: dict[TypeNode, tuple[tuple[str, TypeNode], ...]] = {}


def _compare_zero(node: TypeNode, lhs: Any, rhs: Any, path: Path, out: Comparison) -> None:
    if lhs is MISSING:
        _one_sided(node, rhs, path, out.added)
        return
    if rhs is MISSING:
        _one_sided(node, lhs, path, out.removed)
        return
    if identical(lhs, rhs):
        return
    lhs = _zero_level(node, lhs)
    rhs = _zero_level(node, rhs)
    grain = _pair_grain(node, lhs, rhs)
    if grain in (_SCALAR, _ATOMIC):
        _leaf_zero(node, lhs, rhs, path, out)
        return
    if grain == _MAP:
        left = lhs if isinstance(lhs, dict) else None
        right = rhs if isinstance(rhs, dict) else None
        if not left and not right:
            _leaf(lhs, rhs, path, out)
            return
        for k, lv in (left or {}).items():
            rv = right.get(k, MISSING) if right is not None else MISSING
            _compare_zero(node.child(k)[0], lv, rv, (*path, fp.field(k)), out)
        for k, rv in (right or {}).items():
            if left is None or k not in left:
                _compare_zero(node.child(k)[0], MISSING, rv, (*path, fp.field(k)), out)
    else:
        left_list = lhs if isinstance(lhs, list) else None
        right_list = rhs if isinstance(rhs, list) else None
        if not left_list and not right_list:
            _leaf(lhs, rhs, path, out)
            return
        elem = node.item()
        left_order, left_items = _index_items(node, left_list, path, strict=False)
        right_order, right_items = _index_items(node, right_list, path, strict=False)
        for pe in left_order:
            _compare_zero(elem, left_items[pe], right_items.get(pe, MISSING), (*path, pe), out)
        for pe in right_order:
            if pe not in left_items:
                _compare_zero(elem, MISSING, right_items[pe], (*path, pe), out)
    if lhs is MISSING:
        out.added.insert(path)
    elif rhs is MISSING:
        out.removed.insert(path)


def _one_sided(node: TypeNode, value: Any, path: Path, into: FieldSet) -> None:
    """What `_compare_zero` records for a value whose counterpart is MISSING: its path and
    every path below it (all added, or all removed), built straight into the trie."""
    if not path:  # the root itself is no path
        value = _zero_level(node, value)
        if _has_members(node, value):
            _whole_below(node, value, path, into)
        return
    parent = into
    parent._v1 = None
    for pe in path[:-1]:
        nxt = parent.children.get(pe)
        if nxt is None:
            nxt = parent.children[pe] = FieldSet()
        parent = nxt
        parent._v1 = None
    _whole_into(node, value, path, parent, path[-1])


def _has_members(node: TypeNode, value: Any) -> bool:
    """Whether a zero-filled value is a non-empty granular map or list (compare descends)."""
    if not value or not isinstance(value, (dict, list)):
        return False
    grain = _grain(node, value)
    return (grain == _MAP and isinstance(value, dict)) or (
        grain == _LIST and isinstance(value, list)
    )


def _whole_into(node: TypeNode, value: Any, path: Path, parent: FieldSet, pe: PathElement) -> None:
    parent.members.add(pe)
    value = _zero_level(node, value)
    if not _has_members(node, value):
        return
    here = parent.children.get(pe)
    if here is None:
        here = parent.children[pe] = FieldSet()
    _whole_below(node, value, path, here)


def _whole_below(node: TypeNode, value: Any, path: Path, here: FieldSet) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            pe = fp.field(k)
            _whole_into(node.child(k)[0], v, (*path, pe), here, pe)
        return
    elem = node.item()
    order, items = _index_items(node, value, path, strict=False)
    for pe in order:
        _whole_into(elem, items[pe], (*path, pe), here, pe)


def _leaf_zero(node: TypeNode, lhs: Any, rhs: Any, path: Path, out: Comparison) -> None:
    """`_leaf` on the zero-filled forms (a leaf's value is compared as a whole)."""
    if lhs is MISSING:
        out.added.insert(path)
    elif rhs is MISSING:
        out.removed.insert(path)
    elif not json_equal(with_zero_fields(node, lhs), with_zero_fields(node, rhs)):
        out.modified.insert(path)


# ---- remove -----------------------------------------------------------------------------


def remove_items(node: TypeNode, value: Any, fields: FieldSet) -> Any:
    """`value` without the members of `fields` (and all below them); MISSING if emptied."""
    grain = _grain(node, value)
    if grain == _SCALAR:
        return value
    if grain == _ATOMIC:
        return MISSING
    if grain == _MAP:
        if not isinstance(value, dict) or not value:
            return MISSING
        out: dict[str, Any] = {}
        for k, v in value.items():
            pe = fp.field(k)
            if pe in fields.members:
                continue
            below = fields.children.get(pe)
            if below is None:
                out[k] = v
                continue
            kept = remove_items(node.child(k)[0], v, below)
            out[k] = None if kept is MISSING else kept
        return out if out else MISSING
    if not isinstance(value, list) or not value:
        return MISSING
    elem = node.item()
    items: list[Any] = []
    for item in value:
        try:
            pe = item_element(node, item)
        except SchemaError:
            items.append(item)
            continue
        if pe in fields.members:
            continue
        below = fields.children.get(pe)
        if below is None:
            items.append(item)
            continue
        kept = remove_items(elem, item, below)
        items.append(({} if isinstance(item, dict) else None) if kept is MISSING else kept)
    return items if items else MISSING


# ---- zero values and nulls ----------------------------------------------------------------


def with_zero_fields(node: TypeNode, value: Any) -> Any:
    """A copy of `value` carrying the fields a zero-valued Go object of this type renders
    (`{}` for non-pointer structs, null for non-omitempty slices), so that comparing a new
    object with an old one marks as added only what the apiserver would."""
    if isinstance(value, dict):
        if node.atomic:
            return value
        out = {k: with_zero_fields(node.child(k)[0], v) for k, v in value.items()}
        if node.kind == "struct":
            for name, child in node.fields.items():
                if name not in out and child.zero is not None:
                    out[name] = with_zero_fields(child, {}) if child.zero == "map" else None
        return out
    if isinstance(value, list) and node.kind == "list" and not node.atomic:
        elem = node.item()
        return [with_zero_fields(elem, item) for item in value]
    return value


def drop_new_nulls(node: TypeNode, value: Any, before: Any) -> Any:
    """`value` without map entries that are null now but were not in `before`: nulls an
    apply leaves behind, which a typed apiserver would not store. Copy on write: maps and
    lists with nothing to drop below them are returned as they are."""
    if isinstance(value, (dict, list)) and not _may_hold_null(value):
        return value
    return _drop_new_nulls(node, value, before)


def _may_hold_null(value: Any) -> bool:
    """False when `value` certainly holds no null (its JSON has no `null` anywhere)."""
    try:
        return b"null" in orjson.dumps(value)
    except TypeError:
        return True


def _drop_new_nulls(node: TypeNode, value: Any, before: Any) -> Any:
    if isinstance(value, dict):
        old = before if isinstance(before, dict) else {}
        out: dict[str, Any] | None = None
        for k, v in value.items():
            was = old.get(k, MISSING)
            if v is None and was is not None:
                if out is None:
                    out = _entries_before(value, k)
                continue
            kept = _drop_new_nulls(node.child(k)[0], v, was) if isinstance(v, (dict, list)) else v
            if out is not None:
                out[k] = kept
            elif kept is not v:
                out = _entries_before(value, k)
                out[k] = kept
        return value if out is None else out
    if isinstance(value, list) and node.kind == "list" and not node.atomic:
        elem = node.item()
        old_items: dict[PathElement, Any] = {}
        if isinstance(before, list):
            for item in before:
                try:
                    old_items.setdefault(item_element(node, item), item)
                except SchemaError:
                    continue
        items: list[Any] | None = None
        for i, item in enumerate(value):
            try:
                was = old_items.get(item_element(node, item), MISSING)
            except SchemaError:
                was = MISSING
            kept_item = _drop_new_nulls(elem, item, was)
            if kept_item is not item:
                if items is None:
                    items = list(value)
                items[i] = kept_item
        return value if items is None else items
    return value


def _entries_before(value: dict[str, Any], key: str) -> dict[str, Any]:
    """A new dict of the entries of `value` that come before `key`."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == key:
            break
        out[k] = v
    return out
