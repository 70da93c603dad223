"""Schema nodes: what kubesim knows about the shape of an object, for patching and apply.

Owns `TypeNode`, the small type model shared by the strategic-merge-patch engine
(`patch.py`) and the server-side-apply engine (`typed.py`, `managedfields.py`). It is the
structured-merge-diff notion of a schema reduced to what those engines consult:

- `struct`: a map with declared fields (a Go struct). Unknown keys are either declared
  too (`open=True`, for built-ins whose schema we only describe partially) or undeclared
  values of type `elem` (CRD `x-kubernetes-preserve-unknown-fields`).
- `map`: a map with arbitrary keys of type `elem` (labels, data, resource lists).
- `list`: `list_type` atomic | set | map (keyed by `keys`, `key_defaults` standing in for
  a key field a list item omits, as the OpenAPI `default` does).
- `scalar`; `open` (anything, maps granular with declared keys, lists atomic: our
  stand-in for the parts of a built-in type not described in the table); `deduced`
  (anything, maps granular with undeclared keys, lists atomic: SMD's
  `__untyped_deduced_`).

Strategic-merge metadata (`patch_strategy`, `merge_key`) and the Go zero value of a
field (`zero`: non-pointer struct fields render as `{}`, non-omitempty slices as `null`,
which decides where apiserver-made managedFields carry a `.` marker) live on the node of
the field they describe. Invariant: nodes are immutable and may be shared between parents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Kind = Literal["struct", "map", "list", "scalar", "open", "deduced"]
ListKind = Literal["atomic", "set", "map"]
Zero = Literal["map", "null"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, eq=False, slots=True)
class TypeNode:
    """One node of a schema; see the module docstring for the meaning of each kind."""

    kind: Kind
    fields: Mapping[str, TypeNode] = field(default_factory=lambda: _EMPTY)
    elem: TypeNode | None = None
    atomic: bool = False
    open: bool = False
    list_kind: ListKind = "atomic"
    keys: tuple[str, ...] = ()
    key_defaults: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    patch_strategy: str | None = None
    merge_key: str | None = None
    zero: Zero | None = None

    def child(self, key: str) -> tuple[TypeNode, bool]:
        """The type of map key `key` and whether it is a declared (struct) field."""
        if self.kind == "struct":
            found = self.fields.get(key)
            if found is not None:
                return found, True
            if self.open:
                return OPEN, True
            return (self.elem or DEDUCED), False
        if self.kind == "map":
            return (self.elem or DEDUCED), False
        if self.kind == "open":
            return OPEN, True
        return DEDUCED, False

    def item(self) -> TypeNode:
        """The type of a list item."""
        return self.elem or DEDUCED

    def with_(self, **changes: Any) -> TypeNode:
        """A copy with some attributes changed (per-field metadata on a shared type)."""
        return dataclasses.replace(self, **changes)


SCALAR = TypeNode("scalar")
OPEN = TypeNode("open")
DEDUCED = TypeNode("deduced")
# SMD's `__untyped_atomic_`: whatever the value, it is replaced and owned as a whole.
ATOMIC_ANY = TypeNode("deduced", atomic=True)


def struct(
    fields: Mapping[str, TypeNode] | None = None,
    *,
    atomic: bool = False,
    open_: bool = True,
    elem: TypeNode | None = None,
    zero: Zero | None = None,
    strategy: str | None = None,
) -> TypeNode:
    """A struct; built-in structs are open (fields not listed are declared, of type OPEN)."""
    return TypeNode(
        "struct",
        fields=MappingProxyType(dict(fields or {})),
        atomic=atomic,
        open=open_,
        elem=elem,
        zero=zero,
        patch_strategy=strategy,
    )


def mapping(elem: TypeNode = SCALAR, *, atomic: bool = False, zero: Zero | None = None) -> TypeNode:
    """A map with arbitrary keys (labels, data, resource lists)."""
    return TypeNode("map", elem=elem, atomic=atomic, zero=zero)


def listing(
    elem: TypeNode = SCALAR,
    kind: ListKind = "atomic",
    *,
    keys: tuple[str, ...] = (),
    key_defaults: Mapping[str, Any] | None = None,
    strategy: str | None = None,
    merge_key: str | None = None,
    zero: Zero | None = None,
) -> TypeNode:
    """A list; `kind` is the SSA list type, `strategy`/`merge_key` the SMP tags."""
    return TypeNode(
        "list",
        elem=elem,
        atomic=kind == "atomic",
        list_kind=kind,
        keys=keys,
        key_defaults=MappingProxyType(dict(key_defaults or {})),
        patch_strategy=strategy,
        merge_key=merge_key,
        zero=zero,
    )


def map_list(
    elem: TypeNode,
    *keys: str,
    merge_key: str | None = None,
    strategy: str | None = "merge",
    defaults: Mapping[str, Any] | None = None,
    zero: Zero | None = None,
) -> TypeNode:
    """A list-map keyed by `keys`; by default SMP-merged by the first key."""
    return listing(
        elem,
        "map",
        keys=keys,
        key_defaults=defaults if defaults is not None else dict.fromkeys(keys, ""),
        strategy=strategy,
        merge_key=(merge_key or keys[0]) if strategy and "merge" in strategy else merge_key,
        zero=zero,
    )


ATOMIC_LIST = listing(OPEN, "atomic")
