"""Field paths and field sets, as sigs.k8s.io/structured-merge-diff defines them.

Owns `PathElement` (a field name, a list-map key, a set value or an index), `FieldSet` (a
trie of paths: `members` are paths ending at this node, `children` lead deeper), the set
algebra server-side apply needs (union, the non-recursive `difference`, `intersection`,
`recursive_difference`, `with_prefix`, `ensure_named_fields_are_members` lives in
`typed.py` because it needs the schema), the `fieldsV1` wire format
(`{"f:spec":{"f:containers":{"k:{\\"name\\":\\"a\\"}":{".":{},"f:image":{}}}}}`) and the
`.spec.containers[name="a"].image` rendering kube-apiserver prints in conflicts.

Invariants: a FieldSet never holds an empty child; values inside path elements are
frozen (hashable, with booleans, numbers and strings kept apart); elements sort as SMD
sorts them (field < key < value < index; values: numbers < strings < booleans < lists <
maps < null), which fixes the key order of a serialized fieldsV1 object.

A FieldSet is immutable once built (`insert` is for building a fresh set only): the set
operations share unchanged nodes with their operands (and return an operand itself when
the result equals it), and `to_fields_v1` caches its result on each node, so the dict it
returns is shared and must not be mutated.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

FIELD, KEY, VALUE, INDEX = 0, 1, 2, 3


class PathElement(NamedTuple):
    """One step of a path; `value` is a str (field), frozen key pairs, frozen value or int."""

    kind: int
    value: Any


Path = tuple[PathElement, ...]


_FIELDS: dict[str, PathElement] = {}
_CACHE_LIMIT = 4096
_CACHE_MAX_LEN = 256  # longer names and keys are not remembered


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Bounded memo: a full cache starts over (the common names come back at once)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def field(name: str) -> PathElement:
    pe = _FIELDS.get(name) if type(name) is str else None
    if pe is None:
        pe = PathElement(FIELD, name)
        if type(name) is str and len(name) <= _CACHE_MAX_LEN:
            _remember(_FIELDS, name, pe)
    return pe


def key(fields: Mapping[str, Any]) -> PathElement:
    """A list-map key; fields are kept sorted by name, as SMD keeps them."""
    return PathElement(KEY, tuple(sorted((k, freeze(v)) for k, v in fields.items())))


def value(v: Any) -> PathElement:
    return PathElement(VALUE, freeze(v))


def index(i: int) -> PathElement:
    return PathElement(INDEX, i)


# ---- frozen JSON values -------------------------------------------------------------------

_NUM, _STR, _BOOL, _LIST, _MAP, _NULL = 0, 1, 2, 3, 4, 5


def freeze(v: Any) -> tuple[Any, ...]:
    """A hashable, type-tagged copy of a JSON value (so True and 1 stay distinct)."""
    if v is None:
        return (_NULL,)
    if isinstance(v, bool):
        return (_BOOL, v)
    if isinstance(v, (int, float)):
        return (_NUM, v)
    if isinstance(v, str):
        return (_STR, v)
    if isinstance(v, list):
        return (_LIST, tuple(freeze(x) for x in v))
    if isinstance(v, dict):
        return (_MAP, tuple(sorted((k, freeze(x)) for k, x in v.items())))
    raise TypeError(f"not a JSON value: {v!r}")


def thaw(f: tuple[Any, ...]) -> Any:
    tag = f[0]
    if tag == _NULL:
        return None
    if tag == _LIST:
        return [thaw(x) for x in f[1]]
    if tag == _MAP:
        return {k: thaw(x) for k, x in f[1]}
    return f[1]


def _cmp(a: Any, b: Any) -> int:
    return int((a > b) - (a < b))


def compare_values(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
    """SMD's total order on values: numbers < strings < booleans < lists < maps < null."""
    if a[0] != b[0]:
        return _cmp(a[0], b[0])
    tag = a[0]
    if tag == _NULL:
        return 0
    if tag in (_NUM, _STR, _BOOL):
        return _cmp(a[1], b[1])
    if tag == _LIST:
        for x, y in zip(a[1], b[1], strict=False):
            c = compare_values(x, y)
            if c:
                return c
        return _cmp(len(a[1]), len(b[1]))
    for (ka, va), (kb, vb) in zip(a[1], b[1], strict=False):
        c = _cmp(ka, kb) or compare_values(va, vb)
        if c:
            return c
    return _cmp(len(a[1]), len(b[1]))


def compare_elements(a: PathElement, b: PathElement) -> int:
    if a.kind != b.kind:
        return _cmp(a.kind, b.kind)
    if a.kind in (FIELD, INDEX):
        return _cmp(a.value, b.value)
    if a.kind == VALUE:
        return compare_values(a.value, b.value)
    for (na, va), (nb, vb) in zip(a.value, b.value, strict=False):
        c = _cmp(na, nb) or compare_values(va, vb)
        if c:
            return c
    return _cmp(len(a.value), len(b.value))


_sort_key = functools.cmp_to_key(compare_elements)


def sorted_elements(elements: Any) -> list[PathElement]:
    # Elements are (kind, value) tuples and frozen values (tag, ...) tuples, so the native
    # tuple order is SMD's order (`compare_elements`), only much faster.
    try:
        return sorted(elements)
    except TypeError:
        return sorted(elements, key=_sort_key)


# ---- rendering ------------------------------------------------------------------------------


def _go_json(v: Any) -> str:
    """Compact JSON as Go's encoder writes it (HTML-safe escapes, no spaces)."""
    text = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


_TO_KEY: dict[PathElement, str] = {}
_FROM_KEY: dict[str, PathElement] = {}


def element_to_fields_key(pe: PathElement) -> str:
    """The fieldsV1 key of an element: `f:name`, `k:{...}`, `v:<json>`, `i:<n>`."""
    if pe.kind == FIELD:
        return "f:" + str(pe.value)
    text = _TO_KEY.get(pe)
    if text is None:
        if pe.kind == KEY:
            text = "k:" + _go_json({k: thaw(v) for k, v in pe.value})
        elif pe.kind == VALUE:
            text = "v:" + _go_json(thaw(pe.value))
        else:
            text = f"i:{pe.value}"
        if len(text) <= _CACHE_MAX_LEN:
            _remember(_TO_KEY, pe, text)
    return text


def element_from_fields_key(text: str) -> PathElement:
    pe = _FROM_KEY.get(text)
    if pe is None:
        pe = _element_from_fields_key(text)
        if len(text) <= _CACHE_MAX_LEN:
            _remember(_FROM_KEY, text, pe)
    return pe


def _element_from_fields_key(text: str) -> PathElement:
    prefix, sep, rest = text.partition(":")
    if not sep:
        raise ValueError(f"invalid fieldsV1 key {text!r}")
    if prefix == "f":
        return field(rest)
    if prefix == "i":
        return index(int(rest))
    try:
        decoded = json.loads(rest)
    except ValueError as err:
        raise ValueError(f"invalid fieldsV1 key {text!r}: {err}") from None
    if prefix == "v":
        return value(decoded)
    if prefix == "k":
        if not isinstance(decoded, dict):
            raise ValueError(f"invalid fieldsV1 key {text!r}: key is not an object")
        return key(decoded)
    raise ValueError(f"invalid fieldsV1 key {text!r}")


def _value_to_string(f: tuple[Any, ...]) -> str:
    """SMD's value.ToString: strings quoted, numbers and booleans bare."""
    tag = f[0]
    if tag == _NULL:
        return "null"
    if tag == _STR:
        return json.dumps(f[1], ensure_ascii=False)
    if tag == _BOOL:
        return "true" if f[1] else "false"
    if tag == _NUM:
        return repr(f[1]) if isinstance(f[1], float) else str(f[1])
    if tag == _LIST:
        return "[" + ", ".join(_value_to_string(x) for x in f[1]) + "]"
    return "{" + ", ".join(f"{k}={_value_to_string(x)}" for k, x in f[1]) + "}"


def element_to_string(pe: PathElement) -> str:
    if pe.kind == FIELD:
        return "." + str(pe.value)
    if pe.kind == KEY:
        return "[" + ",".join(f"{k}={_value_to_string(v)}" for k, v in pe.value) + "]"
    if pe.kind == VALUE:
        return f"[={_value_to_string(pe.value)}]"
    return f"[{pe.value}]"


def path_to_string(path: Sequence[PathElement]) -> str:
    """`.spec.template.spec.containers[name="nginx"].image`, as kube-apiserver prints it."""
    return "".join(element_to_string(pe) for pe in path)


# ---- sets -----------------------------------------------------------------------------------


class FieldSet:
    """A set of paths stored as a trie (members at this level, children deeper)."""

    __slots__ = ("_v1", "children", "members")

    def __init__(self) -> None:
        self.members: set[PathElement] = set()
        self.children: dict[PathElement, FieldSet] = {}
        self._v1: dict[str, Any] | None = None

    @classmethod
    def _of(cls, members: set[PathElement], children: dict[PathElement, FieldSet]) -> FieldSet:
        out = cls()
        out.members = members
        out.children = children
        return out

    @classmethod
    def of(cls, *paths: Sequence[PathElement]) -> FieldSet:
        out = cls()
        for p in paths:
            out.insert(p)
        return out

    def insert(self, path: Sequence[PathElement]) -> None:
        if not path:
            return
        node = self
        node._v1 = None
        for pe in path[:-1]:
            nxt = node.children.get(pe)
            if nxt is None:
                nxt = node.children[pe] = FieldSet()
            node = nxt
            node._v1 = None
        node.members.add(path[-1])

    def has(self, path: Sequence[PathElement]) -> bool:
        if not path:
            return False
        node: FieldSet | None = self
        for pe in path[:-1]:
            node = node.children.get(pe) if node is not None else None
            if node is None:
                return False
        return node is not None and path[-1] in node.members

    def empty(self) -> bool:
        return not self.members and not self.children

    def with_prefix(self, pe: PathElement) -> FieldSet:
        return self.children.get(pe) or FieldSet()

    def copy(self) -> FieldSet:
        out = FieldSet()
        out.members = set(self.members)
        out.children = {pe: c.copy() for pe, c in self.children.items()}
        return out

    def union(self, other: FieldSet) -> FieldSet:
        if other is self or other.empty():
            return self
        if self.empty():
            return other
        members = self.members
        if not other.members <= members:
            members = members | other.members
        children = self.children
        copied = False
        for pe, theirs in other.children.items():
            mine = children.get(pe)
            merged = theirs if mine is None else mine.union(theirs)
            if merged is not mine:
                if not copied:
                    children, copied = dict(children), True
                children[pe] = merged
        if members is self.members and not copied:
            return self
        return FieldSet._of(members, children)

    def difference(self, other: FieldSet) -> FieldSet:
        """SMD's Difference: per node; a member of `other` does not remove our children."""
        if other is self:
            return FieldSet()
        if other.empty() or self.empty():
            return self
        members = self.members
        if other.members and not members.isdisjoint(other.members):
            members = members - other.members
        children = self.children
        copied = False
        for pe, theirs in other.children.items():
            mine = children.get(pe)
            if mine is None:
                continue
            diff = mine.difference(theirs)
            if diff is mine:
                continue
            if not copied:
                children, copied = dict(children), True
            if diff.empty():
                del children[pe]
            else:
                children[pe] = diff
        if members is self.members and not copied:
            return self
        return FieldSet._of(members, children)

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Like difference, but a member of `other` also removes everything below it."""
        out = FieldSet()
        out.members = self.members - other.members
        for pe, child in self.children.items():
            if pe in other.members:
                continue
            theirs = other.children.get(pe)
            diff = child.recursive_difference(theirs) if theirs is not None else child
            if not diff.empty():
                out.children[pe] = diff
        return out

    def intersection(self, other: FieldSet) -> FieldSet:
        if other is self:
            return self
        out = FieldSet()
        if self.empty() or other.empty():
            return out
        out.members = self.members & other.members
        small, large = self.children, other.children
        if len(large) < len(small):
            small, large = large, small
        for pe, child in small.items():
            theirs = large.get(pe)
            if theirs is not None:
                both = child.intersection(theirs)
                if not both.empty():
                    out.children[pe] = both
        return out

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every path, in SMD's iteration order: this level's members, then each child."""
        for pe in sorted_elements(self.members):
            yield (*prefix, pe)
        for pe in sorted_elements(self.children):
            yield from self.children[pe].paths((*prefix, pe))

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if not isinstance(other, FieldSet):
            return NotImplemented
        return self.members == other.members and self.children == other.children

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FieldSet({[path_to_string(p) for p in self.paths()]})"

    # ---- fieldsV1 ---------------------------------------------------------------------

    def to_fields_v1(self) -> dict[str, Any]:
        """The fieldsV1 object, keys in SMD's order ("." first where a node is a member).

        Cached on the node: the result is shared and must not be mutated."""
        cached = self._v1
        if cached is not None:
            return cached
        out: dict[str, Any] = {}
        for pe in sorted_elements(self.members | self.children.keys()):
            child = self.children.get(pe)
            if child is None:
                out[element_to_fields_key(pe)] = {}
                continue
            inner = child.to_fields_v1()
            if pe in self.members:
                inner = {".": {}, **inner}
            out[element_to_fields_key(pe)] = inner
        self._v1 = out
        return out

    @classmethod
    def from_fields_v1(cls, fields: Mapping[str, Any]) -> FieldSet:
        if not isinstance(fields, Mapping):
            raise ValueError("fieldsV1 must be an object")
        out = cls()
        for text, sub in fields.items():
            if text == ".":
                continue
            pe = element_from_fields_key(text)
            if not isinstance(sub, Mapping):
                raise ValueError(f"fieldsV1 value at {text!r} must be an object")
            if not sub or "." in sub:
                out.members.add(pe)
            child = cls.from_fields_v1(sub)
            if not child.empty():
                out.children[pe] = child
        return out
