"""Secondary indexes over kubesim's store for the workload controllers (their informer cache).

Owns: `WorkloadIndex` - kept exact from every committed store event (it is fed first, before
any controller maps the event to keys): pods by node, pods by controlling owner uid, pods by
(namespace, label key, label value), ReplicaSets and ControllerRevisions by controlling owner
uid, selector-bearing Services by one (namespace, key, value) pair of their selector, and our
EndpointSlices by Service, plus a node generation counter.

Invariants:
- The store is the single source of truth: indexes hold keys only, never objects; readers
  fetch the current object from the store, so no cached copy can go stale.
- Every lookup the controllers make per key is O(1) or proportional to the answer (never a
  scan of all pods, all Services or all nodes).
- `node_generation` increases on every Node change, so per-pass caches keyed by it are
  invalidated by any add, relabel, taint, cordon, readiness change or delete.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from servicegroup.kubesim.registry import StorageKey
from servicegroup.kubesim.store import DELETED, ObjectStore, StoreEvent
from servicegroup.kubesim.workloads import objects

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

PODS = StorageKey("", "pods")
NODES = StorageKey("", "nodes")
SERVICES = StorageKey("", "services")
ENDPOINTS = StorageKey("", "endpoints")
DEPLOYMENTS = StorageKey("apps", "deployments")
REPLICASETS = StorageKey("apps", "replicasets")
STATEFULSETS = StorageKey("apps", "statefulsets")
REVISIONS = StorageKey("apps", "controllerrevisions")
SLICES = StorageKey("discovery.k8s.io", "endpointslices")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"

WATCHED = frozenset(
    {PODS, NODES, SERVICES, ENDPOINTS, DEPLOYMENTS, REPLICASETS, STATEFULSETS, REVISIONS, SLICES}
)


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = objects.meta(obj)
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def service_selector(service: Mapping[str, Any]) -> dict[str, str] | None:
    """The selector of a Service the endpoint controllers manage, or None.

    An empty selector reads back from etcd as no selector at all; ExternalName Services
    get no endpoints.
    """
    spec = objects.spec(service)
    if spec.get("type") == "ExternalName":
        return None
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        return None
    return {str(k): str(v) for k, v in selector.items()}


class _MultiIndex:
    """name sets under a hashable index value."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[Any, set[Any]] = defaultdict(set)

    def add(self, value: Any, item: Any) -> None:
        self._data[value].add(item)

    def discard(self, value: Any, item: Any) -> None:
        items = self._data.get(value)
        if items is not None:
            items.discard(item)
            if not items:
                del self._data[value]

    def get(self, value: Any) -> set[Any]:
        return self._data.get(value) or set()

    def count(self, value: Any) -> int:
        items = self._data.get(value)
        return len(items) if items else 0

    def values(self) -> Iterator[Any]:
        return iter(list(self._data))


class WorkloadIndex:
    def __init__(self, *, store: ObjectStore) -> None:
        self.store = store
        self.node_generation = 0
        self._pods_by_node = _MultiIndex()
        self._pods_by_owner = _MultiIndex()
        self._pods_by_label = _MultiIndex()
        self._rs_by_owner = _MultiIndex()
        self._revisions_by_owner = _MultiIndex()
        self._services_by_label = _MultiIndex()
        self._slices_by_service = _MultiIndex()

    # ---- building ----------------------------------------------------------------------

    def rebuild(self) -> None:
        """Index every object currently stored (at start, before events flow)."""
        for storage in (PODS, NODES, SERVICES, REPLICASETS, REVISIONS, SLICES):
            for obj in self.store.items(storage):
                self._add(storage, obj)
        self.node_generation += 1

    def on_event(self, event: StoreEvent) -> None:
        if event.key not in WATCHED:
            return
        if event.old is not None:
            self._remove(event.key, event.old)
        if event.type != DELETED:
            self._add(event.key, event.obj)
        if event.key == NODES:
            self.node_generation += 1

    def _add(self, storage: StorageKey, obj: Obj) -> None:
        namespace, name = key_of(obj)
        if storage == PODS:
            key = (namespace, name)
            node = objects.spec(obj).get("nodeName")
            if node:
                self._pods_by_node.add(node, key)
            owner = objects.controller_ref(obj)
            if owner is not None and owner.get("uid"):
                self._pods_by_owner.add(owner["uid"], key)
            for label, value in objects.labels(obj).items():
                self._pods_by_label.add((namespace, label, value), name)
        elif storage in (REPLICASETS, REVISIONS):
            owner = objects.controller_ref(obj)
            if owner is not None and owner.get("uid"):
                index = self._rs_by_owner if storage == REPLICASETS else self._revisions_by_owner
                index.add(owner["uid"], (namespace, name))
        elif storage == SERVICES:
            selector = service_selector(obj)
            if selector:
                label, value = min(selector.items())
                self._services_by_label.add((namespace, label, value), name)
        elif storage == SLICES:
            labels = objects.labels(obj)
            service = labels.get(SERVICE_NAME_LABEL)
            if service and labels.get(MANAGED_BY_LABEL) == SLICE_CONTROLLER:
                self._slices_by_service.add((namespace, service), name)

    def _remove(self, storage: StorageKey, obj: Obj) -> None:
        namespace, name = key_of(obj)
        if storage == PODS:
            key = (namespace, name)
            node = objects.spec(obj).get("nodeName")
            if node:
                self._pods_by_node.discard(node, key)
            owner = objects.controller_ref(obj)
            if owner is not None and owner.get("uid"):
                self._pods_by_owner.discard(owner["uid"], key)
            for label, value in objects.labels(obj).items():
                self._pods_by_label.discard((namespace, label, value), name)
        elif storage in (REPLICASETS, REVISIONS):
            owner = objects.controller_ref(obj)
            if owner is not None and owner.get("uid"):
                index = self._rs_by_owner if storage == REPLICASETS else self._revisions_by_owner
                index.discard(owner["uid"], (namespace, name))
        elif storage == SERVICES:
            selector = service_selector(obj)
            if selector:
                label, value = min(selector.items())
                self._services_by_label.discard((namespace, label, value), name)
        elif storage == SLICES:
            service = objects.labels(obj).get(SERVICE_NAME_LABEL)
            if service:
                self._slices_by_service.discard((namespace, service), name)

    # ---- lookups -----------------------------------------------------------------------

    def pods_on_node(self, node: str) -> list[Key]:
        return sorted(self._pods_by_node.get(node))

    def pod_count_on_node(self, node: str) -> int:
        return self._pods_by_node.count(node)

    def nodes_with_pods(self) -> list[str]:
        return list(self._pods_by_node.values())

    def pods_owned_by(self, uid: str) -> list[Obj]:
        """The pods whose controlling owner has `uid` (current objects)."""
        return self._fetch(PODS, self._pods_by_owner.get(uid))

    def replicasets_owned_by(self, uid: str) -> list[Obj]:
        return self._fetch(REPLICASETS, self._rs_by_owner.get(uid))

    def revisions_owned_by(self, uid: str) -> list[Obj]:
        return self._fetch(REVISIONS, self._revisions_by_owner.get(uid))

    def pods_matching(self, namespace: str, selector: Mapping[str, str]) -> list[Obj]:
        """Pods of `namespace` whose labels include every pair of an equality selector."""
        if not selector:
            return []
        smallest: set[str] | None = None
        for label, value in selector.items():
            names = self._pods_by_label.get((namespace, label, value))
            if smallest is None or len(names) < len(smallest):
                smallest = names
            if not smallest:
                return []
        result: list[Obj] = []
        for name in sorted(smallest or ()):
            pod = self.store.get(PODS, namespace, name)
            if pod is None:
                continue
            pod_labels = objects.labels(pod)
            if all(pod_labels.get(k) == v for k, v in selector.items()):
                result.append(pod)
        return result

    def services_selecting(self, namespace: str, pod_labels: Mapping[str, str]) -> set[str]:
        """Names of the Services of `namespace` whose selector matches `pod_labels`."""
        found: set[str] = set()
        for label, value in pod_labels.items():
            for name in self._services_by_label.get((namespace, label, value)):
                if name in found:
                    continue
                service = self.store.get(SERVICES, namespace, name)
                selector = service_selector(service) if service is not None else None
                if selector and all(pod_labels.get(k) == v for k, v in selector.items()):
                    found.add(name)
        return found

    def slices_of(self, namespace: str, service: str) -> list[Obj]:
        return self._fetch(
            SLICES, {(namespace, n) for n in self._slices_by_service.get((namespace, service))}
        )

    def _fetch(self, storage: StorageKey, keys: Iterable[Key]) -> list[Obj]:
        result: list[Obj] = []
        for namespace, name in sorted(keys):
            obj = self.store.get(storage, namespace, name)
            if obj is not None:
                result.append(obj)
        return result
