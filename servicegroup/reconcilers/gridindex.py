"""Cache lookups across the watched namespaces, and the grids-by-gridUniqKey index.

Owns: `GRID_UNIQ_KEY_INDEX` with its index function, `NamespacedStores` (one read-only view
over the informer stores of one resource: a single all-namespaces store, or one store per
watched namespace when `--namespace` is given), and `grid_request`.

Invariants:
- Read-only: objects returned are the informers' cached dicts; callers never mutate them.
- `get(namespace, name)` consults only the store that can hold that namespace; a namespace
  that is not watched simply has nothing in it.
- The index function is a module-level function, so every caller registering it registers
  the same function (the informer factory rejects two functions under one index name).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from servicegroup.controller import Request
from servicegroup.informers.store import object_key

GRID_UNIQ_KEY_INDEX = "grid-uniq-key"
# Inside `Store`, `list` names its method, not the builtin.
_Objects = list[dict[str, Any]]


def index_by_grid_uniq_key(obj: dict[str, Any]) -> list[str]:
    """A grid's `spec.gridUniqKey` (nothing when absent, empty or not a string)."""
    spec = obj.get("spec")
    key = spec.get("gridUniqKey") if isinstance(spec, Mapping) else None
    return [key] if isinstance(key, str) and key else []


def grid_request(obj: Mapping[str, Any]) -> Request:
    """The work-queue key of a (namespaced) object."""
    metadata = obj.get("metadata") or {}
    return Request(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


class Store(Protocol):
    """The part of an informer store (`ReadOnlyStore`) used here."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def list(self) -> _Objects: ...

    def by_index(self, index_name: str, value: str) -> _Objects: ...


class NamespacedStores:
    """One resource's informer stores, addressed by namespace.

    `stores` maps a namespace to the store holding it; the key None names a store that holds
    every namespace (the default, when no `--namespace` is given).
    """

    def __init__(self, stores: Mapping[str | None, Store]) -> None:
        if not stores:
            raise ValueError("at least one store is needed")
        self._stores = dict(stores)
        self._all = self._stores.get(None)

    def _store_for(self, namespace: str) -> Store | None:
        store = self._stores.get(namespace)
        return store if store is not None else self._all

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        store = self._store_for(namespace)
        return store.get(f"{namespace}/{name}") if store is not None else None

    def by_index(
        self, index_name: str, value: str, *, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects filed under `value`, in `namespace` only when given."""
        if namespace is not None:
            store = self._store_for(namespace)
            if store is None:
                return []
            return [
                obj
                for obj in store.by_index(index_name, value)
                if (obj.get("metadata") or {}).get("namespace") == namespace
            ]
        return [obj for store in self._stores.values() for obj in store.by_index(index_name, value)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for store in self._stores.values():
            yield from store.list()

    def keys(self) -> list[str]:
        return [object_key(obj) for obj in self]
