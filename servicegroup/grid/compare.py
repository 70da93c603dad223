"""Does a live child already match what we would apply? (DESIGN section 4)

Owns: `applied_hash`, `matches`, `controller_of`, `controlled_by`, and the derivative compare.

`matches(live, desired, owner_uid=...)` is True only when all three hold:
1. `live` has a controller ownerReference with uid `owner_uid`;
2. its `superedge.io/applied-hash` annotation equals the hash of `desired` (catches every change
   of what we apply, including list reorders and removed fields);
3. every field `desired` sets has the same value in `live` (catches hand edits of our fields),
   comparing derivatively, like apimachinery's `equality.Semantic.DeepDerivative`:
   - maps: only the keys `desired` sets are compared; extra live keys (defaults such as
     imagePullPolicy, terminationMessagePath, protocol, clusterIP, or fields other managers
     own) are ignored;
   - `None`, `{}` and `[]` in `desired` match anything; a key absent from `live` matches a
     "zero" desired value (None, "", 0, False, empty or all-zero containers), because the API
     server omits empty fields;
   - lists whose items carry a Kubernetes merge key (containers/env/volumes by name, ports by
     (port, protocol), volumeMounts by mountPath, ownerReferences by uid, ...) are matched by
     key, so live items added by others (an injected sidecar) do not count as drift; other
     lists are compared pairwise and must have the same length;
   - scalars must be equal, except resource quantities (under `limits`, `requests`,
     `capacity`, `overhead`, `sizeLimit`), which the API server canonicalizes ("1024Mi" ->
     "1Gi", 0.5 -> "500m") and are compared by value.
`apiVersion`, `kind` and `status` are not compared (list responses may omit the first two).

Invariant: pure and read-only; nothing here mutates its arguments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from servicegroup.grid.labels import APPLIED_HASH

HASH_HEX_LENGTH = 16

# Lists matched by key: field name -> key fields of each item.
_LIST_KEYS: Mapping[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "resourceClaims": ("name",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "ownerReferences": ("uid",),
    "conditions": ("type",),
}
_QUANTITY_MAPS = frozenset({"limits", "requests", "capacity", "overhead"})
_QUANTITY_FIELDS = frozenset({"sizeLimit"})
_NOT_COMPARED = frozenset({"apiVersion", "kind", "status"})

_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)")
_SUFFIXES: Mapping[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace: equal documents give equal bytes."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def applied_hash(desired: Mapping[str, Any]) -> str:
    """Hash of `desired` without its own applied-hash annotation (16 hex characters)."""
    meta = desired.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if APPLIED_HASH in annotations:
        rest = {k: v for k, v in annotations.items() if k != APPLIED_HASH}
        meta = {**meta, "annotations": rest}
        if not rest:
            del meta["annotations"]
        desired = {**desired, "metadata": meta}
    return hashlib.sha256(canonical_json(desired)).hexdigest()[:HASH_HEX_LENGTH]


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with `controller: true`, if any (Kubernetes allows at most one)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return ref
    return None


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    ref = controller_of(obj)
    return ref is not None and bool(uid) and ref.get("uid") == uid


def hash_of(obj: Mapping[str, Any]) -> str | None:
    """The applied-hash annotation of an object, if present."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(APPLIED_HASH)
    return value if isinstance(value, str) else None


def matches(live: Mapping[str, Any], desired: Mapping[str, Any], *, owner_uid: str) -> bool:
    """True when applying `desired` would change nothing we own (see the module docstring)."""
    if not controlled_by(live, owner_uid):
        return False
    wanted = hash_of(desired) or applied_hash(desired)
    if hash_of(live) != wanted:
        return False
    return all(
        _derivative(value, live.get(key), key, present=key in live)
        for key, value in desired.items()
        if key not in _NOT_COMPARED
    )


def is_derivative(desired: Any, live: Any) -> bool:
    """Every field `desired` sets has the same value in `live` (rule 3 alone)."""
    return _derivative(desired, live, "", present=True)


def _derivative(desired: Any, live: Any, key: str, *, present: bool) -> bool:
    if desired is None:
        return True
    if not present:
        return _is_zero(desired)
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return not desired
        quantities = key in _QUANTITY_MAPS
        return all(
            _quantity_equal(v, live.get(k))
            if quantities and k in live
            else _derivative(v, live.get(k), k, present=k in live)
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        if not desired:
            return True
        if not isinstance(live, list):
            return False
        return _list_derivative(desired, live, key)
    if key in _QUANTITY_FIELDS:
        return _quantity_equal(desired, live)
    return _scalar_equal(desired, live)


def _scalar_equal(desired: Any, live: Any) -> bool:
    # bool is an int in Python: True must not equal 1 here.
    if isinstance(desired, bool) or isinstance(live, bool):
        return type(desired) is type(live) and desired == live
    return bool(desired == live)


def _is_zero(value: Any) -> bool:
    if value is None or value is False or value == "":
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, Mapping):
        return all(_is_zero(v) for v in value.values())
    if isinstance(value, list):
        return not value
    return False


def _item_key(item: Any, fields: tuple[str, ...]) -> tuple[Any, ...] | None:
    if not isinstance(item, Mapping):
        return None
    key = tuple(item.get(f) for f in fields)
    return None if any(k is None for k in key) else key


def _port_key(item: Any) -> tuple[Any, ...] | None:
    # Container ports are keyed by (containerPort, protocol), Service ports by (port, protocol);
    # protocol defaults to TCP on the server, so a missing one means TCP.
    if not isinstance(item, Mapping):
        return None
    for field in ("containerPort", "port"):
        if item.get(field) is not None:
            return (field, item[field], item.get("protocol") or "TCP")
    return None


def _list_derivative(desired: Sequence[Any], live: Sequence[Any], key: str) -> bool:
    keyed = _keyed_items(desired, key)
    if keyed is not None:
        live_keyed = _keyed_items(live, key, partial=True) or {}
        return all(
            k in live_keyed and _derivative(item, live_keyed[k], "", present=True)
            for k, item in keyed.items()
        )
    if len(desired) != len(live):
        return False
    return all(_derivative(d, x, "", present=True) for d, x in zip(desired, live, strict=True))


def _keyed_items(
    items: Sequence[Any], key: str, *, partial: bool = False
) -> dict[tuple[Any, ...], Any] | None:
    """Items by merge key, or None when the list is not (fully, uniquely) keyed."""
    if key == "ports":
        keys = [_port_key(item) for item in items]
    elif key in _LIST_KEYS:
        keys = [_item_key(item, _LIST_KEYS[key]) for item in items]
    else:
        return None
    result: dict[tuple[Any, ...], Any] = {}
    for k, item in zip(keys, items, strict=True):
        if k is None or k in result:
            if partial:
                continue
            return None
        result[k] = item
    return result


def parse_quantity(value: Any) -> Decimal | None:
    """The numeric value of a Kubernetes quantity ("500m", "1Gi", "2e3", 0.5), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        base = Decimal(number)
        if suffix[:1] in ("e", "E") and suffix[1:].lstrip("+-").isdigit():
            return base.scaleb(int(suffix[1:]))
    except InvalidOperation:
        return None
    multiplier = _SUFFIXES.get(suffix)
    return None if multiplier is None else base * multiplier


def _quantity_equal(desired: Any, live: Any) -> bool:
    if desired is None:
        return True
    a, b = parse_quantity(desired), parse_quantity(live)
    if a is None or b is None:
        return _scalar_equal(desired, live)
    return a == b
