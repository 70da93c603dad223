"""The informer cache: objects by key, plus named secondary indices (client-go `Indexer`).

Owns: `Indexer`, `object_key`, `DeletedFinalStateUnknown`, the stock index functions and
the read-only `StoreView` handed to consumers.

Invariants:
- Keys are `namespace/name`, or `name` for cluster-scoped objects.
- Every index is consistent with the objects after each call returns: an object is listed
  under exactly the values its index function returned when it was stored (the values are
  remembered, so removal never re-runs the function on a stale object).
- All mutation is synchronous: callers on one event loop never observe a half-applied
  change.
- **Cached objects are read-only.** `get`, `list` and `by_index` return the cached dicts
  themselves, not copies (copying every read would dominate a controller's CPU). A consumer
  that wants to change an object must `copy.deepcopy` it first; mutating a cached object
  corrupts the cache and the indices for everyone sharing the informer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

IndexFunc = Callable[[dict[str, Any]], list[str]]
# Aliases: inside the classes below, `list` names their method, not the builtin.
_Objects = list[dict[str, Any]]
_Keys = list[str]

NAMESPACE_INDEX = "namespace"
CONTROLLER_UID_INDEX = "controller-uid"


class DeletedFinalStateUnknown(NamedTuple):
    """An object deleted while we were not watching; `obj` is its last known state."""

    key: str
    obj: dict[str, Any]


_Tombstones = list[DeletedFinalStateUnknown]


def object_key(obj: dict[str, Any] | DeletedFinalStateUnknown) -> str:
    """`namespace/name` (or `name`); a tombstone's own key."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.key
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise ValueError("object has no metadata.name")
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else str(name)


def split_key(key: str) -> tuple[str | None, str]:
    """`(namespace, name)` from a key; namespace None for cluster-scoped keys."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


def index_by_namespace(obj: dict[str, Any]) -> list[str]:
    """The object's namespace (nothing for cluster-scoped objects)."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


def index_by_controller_uid(obj: dict[str, Any]) -> list[str]:
    """The uid of the ownerReference with `controller: true`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid"):
            return [str(ref["uid"])]
    return []


@dataclass(frozen=True)
class _LabelIndex:
    key: str

    def __call__(self, obj: dict[str, Any]) -> list[str]:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        value = labels.get(self.key)
        return [str(value)] if value is not None else []


def index_by_label(key: str) -> IndexFunc:
    """The value of label `key` (nothing when absent); equal for equal keys."""
    return _LabelIndex(key)


class StoreView(Protocol):
    """What consumers of an informer may do with its cache: read."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def list(self) -> _Objects: ...

    def keys(self) -> _Keys: ...

    def by_index(self, index_name: str, value: str) -> _Objects: ...

    def index_keys(self, index_name: str, value: str) -> _Keys: ...

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...


class Indexer:
    """Thread-unsafe, loop-safe object cache with named indices."""

    def __init__(self, *, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._indexers: dict[str, IndexFunc] = {}
        # index name -> indexed value -> keys
        self._indices: dict[str, dict[str, set[str]]] = {}
        # index name -> key -> values the object was filed under
        self._values: dict[str, dict[str, _Keys]] = {}
        self.resource_version = ""
        if indexers:
            self.add_indexers(indexers)

    # --- indices

    @property
    def indexers(self) -> dict[str, IndexFunc]:
        return dict(self._indexers)

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Register more indices (existing objects are indexed at once).

        Re-registering a name with an equal function is a no-op; with a different one it is
        a `ValueError` (two consumers would disagree on what the index means).
        """
        for name, func in indexers.items():
            existing = self._indexers.get(name)
            if existing is not None:
                if existing != func:
                    raise ValueError(f"index {name!r} is already registered with another function")
                continue
            self._indexers[name] = func
            self._indices[name] = {}
            self._values[name] = {}
            for key, obj in self._items.items():
                self._file(name, func, key, obj)

    def _file(self, name: str, func: IndexFunc, key: str, obj: dict[str, Any]) -> None:
        values = list(dict.fromkeys(func(obj)))
        if not values:
            return
        self._values[name][key] = values
        index = self._indices[name]
        for value in values:
            index.setdefault(value, set()).add(key)

    def _unfile(self, name: str, key: str) -> None:
        values = self._values[name].pop(key, None)
        if not values:
            return
        index = self._indices[name]
        for value in values:
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    def _reindex(self, key: str, obj: dict[str, Any] | None) -> None:
        for name, func in self._indexers.items():
            self._unfile(name, key)
            if obj is not None:
                self._file(name, func, key, obj)

    # --- reads

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached object (read-only: deepcopy before changing it)."""
        return self._items.get(key)

    def list(self) -> _Objects:
        """Every cached object (read-only), in no particular order."""
        return list(self._items.values())

    def keys(self) -> _Keys:
        return list(self._items)

    def by_index(self, index_name: str, value: str) -> _Objects:
        """Objects filed under `value` in index `index_name` (KeyError for unknown indices)."""
        return [self._items[key] for key in self.index_keys(index_name, value)]

    def index_keys(self, index_name: str, value: str) -> _Keys:
        """Keys filed under `value` in index `index_name`, sorted."""
        if index_name not in self._indices:
            raise KeyError(f"no index named {index_name!r}")
        return sorted(self._indices[index_name].get(value, ()))

    def index_values(self, index_name: str) -> _Keys:
        """Every value that index `index_name` currently holds."""
        if index_name not in self._indices:
            raise KeyError(f"no index named {index_name!r}")
        return list(self._indices[index_name])

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    # --- writes

    def add(self, obj: dict[str, Any]) -> None:
        """Store `obj` under its key (replacing any previous object)."""
        key = object_key(obj)
        self._items[key] = obj
        self._reindex(key, obj)

    update = add

    def delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> dict[str, Any] | None:
        """Remove the object with `obj`'s key; the removed object, or None if absent."""
        key = object_key(obj)
        old = self._items.pop(key, None)
        if old is not None:
            self._reindex(key, None)
        return old

    def replace(self, objects: Iterable[dict[str, Any]], resource_version: str) -> _Tombstones:
        """Make `objects` the whole content; tombstones for the keys that vanished."""
        new_items = {object_key(obj): obj for obj in objects}
        tombstones = [
            DeletedFinalStateUnknown(key, old)
            for key, old in self._items.items()
            if key not in new_items
        ]
        self._items = new_items
        for name, func in self._indexers.items():
            self._indices[name] = {}
            self._values[name] = {}
            for key, obj in new_items.items():
                self._file(name, func, key, obj)
        self.resource_version = resource_version
        return tombstones


class ReadOnlyStore:
    """A `StoreView` over an `Indexer`: consumers cannot call its writes by mistake."""

    __slots__ = ("_indexer",)

    def __init__(self, indexer: Indexer) -> None:
        self._indexer = indexer

    def get(self, key: str) -> dict[str, Any] | None:
        return self._indexer.get(key)

    def list(self) -> _Objects:
        return self._indexer.list()

    def keys(self) -> _Keys:
        return self._indexer.keys()

    def by_index(self, index_name: str, value: str) -> _Objects:
        return self._indexer.by_index(index_name, value)

    def index_keys(self, index_name: str, value: str) -> _Keys:
        return self._indexer.index_keys(index_name, value)

    def index_values(self, index_name: str) -> _Keys:
        return self._indexer.index_values(index_name)

    @property
    def resource_version(self) -> str:
        return self._indexer.resource_version

    def __len__(self) -> int:
        return len(self._indexer)

    def __contains__(self, key: object) -> bool:
        return key in self._indexer
