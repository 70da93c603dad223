"""From the API server to the served caches: informers, and the re-filter logic.

Owns: `Refilter` (the upstream state the filter depends on - node labels, Service policies,
raw Endpoints and EndpointSlices, the Service -> slices index - and the rule deciding which
served objects to recompute on each upstream change), `Upstream` (the informers feeding a
`Refilter`, started nodes and Services first so endpoints are filtered right from their first
appearance) and `CountingClient` (counts the wrapper's full upstream lists).

Invariants:
- After every handler call, each served cache holds exactly `filter(upstream state)`: the
  Services as they are, and every Endpoints / EndpointSlice in its filtered form for the
  local node. The caches themselves suppress unchanged forms, so the recompute rule may be
  generous but never misses an object whose form can have changed:
  - a slice or Endpoints change recomputes that object, plus every slice of its Service
    when the Service has the fallback on (readiness is a Service-wide question);
  - a Service whose policy (keys, fallback) changes recomputes its Endpoints and slices;
  - a node whose labels change (added and removed included) recomputes every NodeUnit-local
    Service when it is the local node, else those with an endpoint on that node.
- A slice belongs to the Service named by its `kubernetes.io/service-name` label (never
  guessed from its name); slices without it are served unchanged.
- Informer objects are read-only: filtered forms are new dicts sharing unchanged parts.
- `servicegroup_wrapper_endpoints_kept` / `_dropped` are the totals over the EndpointSlices of
  NodeUnit-local Services, kept current on every change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

import structlog

from servicegroup.clock import Clock
from servicegroup.informers.factory import InformerFactory
from servicegroup.informers.informer import HandlerFuncs, SharedInformer
from servicegroup.informers.reflector import ListWatchClient, WatchEvents
from servicegroup.informers.store import object_key
from servicegroup.informers.transforms import strip_managed_fields
from servicegroup.kube.resources import ENDPOINTS, ENDPOINTSLICES, NODES, SERVICES, ResourceRef
from servicegroup.metrics import Metrics
from servicegroup.wrapper.cache import WatchCache
from servicegroup.wrapper.filter import (
    IsLocal,
    Policy,
    endpoints_have_local_ready,
    endpoints_nodes,
    filter_endpoints,
    filter_slice,
    locality,
    service_policy,
    slice_has_local_ready,
    slice_nodes,
    slice_service,
)

Obj = dict[str, Any]


def _never_local(_: Any) -> bool:
    return False


class ServedCaches(NamedTuple):
    """The three resources the wrapper serves from its own cache."""

    services: WatchCache
    endpoints: WatchCache
    endpointslices: WatchCache

    def by_ref(self) -> dict[ResourceRef, WatchCache]:
        return {
            SERVICES: self.services,
            ENDPOINTS: self.endpoints,
            ENDPOINTSLICES: self.endpointslices,
        }


class Refilter:
    """Keeps the served caches equal to the filtered upstream state, for one node."""

    def __init__(
        self,
        *,
        node_name: str,
        caches: ServedCaches,
        metrics: Metrics,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.node_name = node_name
        self._caches = caches
        self._log = logger
        self._nodes: dict[str, Mapping[str, str]] = {}
        self._services: dict[str, Obj] = {}
        self._policies: dict[str, Policy] = {}
        self._endpoints: dict[str, Obj] = {}
        self._slices: dict[str, Obj] = {}
        self._slices_of: dict[str, set[str]] = {}
        self._service_of: dict[str, str] = {}
        self._counts: dict[str, tuple[int, int]] = {}
        self._kept = 0
        self._dropped = 0
        self._kept_gauge = metrics.wrapper_endpoints_kept
        self._dropped_gauge = metrics.wrapper_endpoints_dropped

    # --- what tests and readiness look at

    @property
    def local_node_known(self) -> bool:
        return self.node_name in self._nodes

    @property
    def endpoint_counts(self) -> tuple[int, int]:
        """(kept, dropped) over the slices of NodeUnit-local Services."""
        return self._kept, self._dropped

    # --- upstream changes (obj None = deleted)

    def node_changed(self, name: str, labels: Mapping[str, str] | None) -> None:
        old = self._nodes.get(name)
        if labels is None:
            if old is None:
                return
            del self._nodes[name]
        else:
            if old is not None and old == labels:
                return
            self._nodes[name] = dict(labels)
        if name == self.node_name:
            affected = list(self._policies)
        else:
            affected = [key for key in self._policies if self._uses_node(key, name)]
        for service in affected:
            self._refilter_service(service)

    def service_changed(self, key: str, obj: Obj | None) -> None:
        if obj is None:
            self._services.pop(key, None)
            self._caches.services.delete(key)
        else:
            self._services[key] = obj
            self._caches.services.upsert(key, obj)
        policy = service_policy(obj)
        if policy == self._policies.get(key):
            return
        if policy is None:
            del self._policies[key]
        else:
            self._policies[key] = policy
        self._refilter_service(key)

    def endpoints_changed(self, key: str, obj: Obj | None) -> None:
        if obj is None:
            self._endpoints.pop(key, None)
            self._caches.endpoints.delete(key)
            return
        self._endpoints[key] = obj
        self._serve_endpoints(key, obj, self._policies.get(key))

    def slice_changed(self, key: str, obj: Obj | None) -> None:
        old_service = self._service_of.get(key)
        new_service: str | None = None
        if obj is not None:
            owner = slice_service(obj)
            new_service = f"{owner[0]}/{owner[1]}" if owner else None
        if old_service != new_service:
            if old_service is not None:
                del self._service_of[key]
                siblings = self._slices_of[old_service]
                siblings.discard(key)
                if not siblings:
                    del self._slices_of[old_service]
            if new_service is not None:
                self._service_of[key] = new_service
                self._slices_of.setdefault(new_service, set()).add(key)
        if obj is None:
            self._slices.pop(key, None)
            self._caches.endpointslices.delete(key)
            self._count(key, None)
        else:
            self._slices[key] = obj
        # Fallback is decided over every slice of a Service: recompute the siblings too.
        for service in {old_service, new_service}:
            if service is None:
                continue
            policy = self._policies.get(service)
            if policy is not None and policy.fallback:
                self._refilter_service(service, endpoints=False)
        if obj is not None and (new_service is None or not self._fallback(new_service)):
            policy = self._policies.get(new_service) if new_service else None
            self._serve_slice(key, obj, policy, self._is_local(policy), fallback_active=False)

    # --- recomputation

    def _fallback(self, service: str) -> bool:
        policy = self._policies.get(service)
        return policy is not None and policy.fallback

    def _is_local(self, policy: Policy | None) -> IsLocal:
        if policy is None:
            return _never_local
        return locality(local_node=self.node_name, nodes=self._nodes, keys=policy.keys)

    def _uses_node(self, service: str, node: str) -> bool:
        endpoints = self._endpoints.get(service)
        if endpoints is not None and node in endpoints_nodes(endpoints):
            return True
        return any(
            node in slice_nodes(self._slices[key]) for key in self._slices_of.get(service, ())
        )

    def _refilter_service(self, service: str, *, endpoints: bool = True) -> None:
        policy = self._policies.get(service)
        is_local = self._is_local(policy)
        if endpoints:
            raw = self._endpoints.get(service)
            if raw is not None:
                self._serve_endpoints(service, raw, policy)
        keys = self._slices_of.get(service, ())
        fallback_active = False
        if policy is not None and policy.fallback:
            fallback_active = not any(
                slice_has_local_ready(self._slices[key], is_local) for key in keys
            )
        for key in keys:
            self._serve_slice(key, self._slices[key], policy, is_local, fallback_active)

    def _serve_slice(
        self, key: str, obj: Obj, policy: Policy | None, is_local: IsLocal, fallback_active: bool
    ) -> None:
        filtered = filter_slice(
            obj, policy=policy, is_local=is_local, fallback_active=fallback_active
        )
        self._caches.endpointslices.upsert(key, filtered.obj)
        self._count(key, (filtered.kept, filtered.dropped) if policy is not None else None)

    def _serve_endpoints(self, key: str, obj: Obj, policy: Policy | None) -> None:
        is_local = self._is_local(policy)
        fallback_active = (
            policy is not None and policy.fallback and not endpoints_have_local_ready(obj, is_local)
        )
        filtered = filter_endpoints(
            obj, policy=policy, is_local=is_local, fallback_active=fallback_active
        )
        self._caches.endpoints.upsert(key, filtered.obj)

    def _count(self, key: str, counts: tuple[int, int] | None) -> None:
        old = self._counts.pop(key, (0, 0))
        if counts is not None and counts != (0, 0):
            self._counts[key] = counts
        new = counts or (0, 0)
        if new == old:
            return
        self._kept += new[0] - old[0]
        self._dropped += new[1] - old[1]
        self._kept_gauge.set(self._kept)
        self._dropped_gauge.set(self._dropped)


# ----------------------------------------------------------------------- informers


def node_labels_only(obj: Obj) -> Obj:
    """Nodes are needed for their labels only: keep name, labels and resourceVersion."""
    metadata = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": obj.get("kind", "Node"),
        "metadata": {
            k: metadata[k] for k in ("name", "uid", "resourceVersion", "labels") if k in metadata
        },
    }


def _labels(obj: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


class CountingClient:
    """A `ListWatchClient` that counts full lists (first pages) per resource."""

    def __init__(self, client: ListWatchClient, *, metrics: Metrics) -> None:
        self._client = client
        self._relists = metrics.wrapper_upstream_relists

    async def list(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> dict[str, Any]:
        if continue_token is None:
            self._relists.labels(resource=ref.key).inc()
        return await self._client.list(
            ref,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            continue_token=continue_token,
            resource_version=resource_version,
            resource_version_match=resource_version_match,
        )

    def watch(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AbstractAsyncContextManager[WatchEvents]:
        return self._client.watch(
            ref,
            namespace=namespace,
            resource_version=resource_version,
            label_selector=label_selector,
            field_selector=field_selector,
            allow_bookmarks=allow_bookmarks,
            timeout_seconds=timeout_seconds,
        )


class Upstream:
    """Informers on the API server feeding a `Refilter`."""

    def __init__(
        self,
        *,
        client: ListWatchClient,
        refilter: Refilter,
        clock: Clock,
        metrics: Metrics,
        logger: structlog.typing.FilteringBoundLogger,
        min_watch_timeout: int = 300,
        max_watch_timeout: int = 600,
    ) -> None:
        self._refilter = refilter
        self._log = logger
        self._factory = InformerFactory(
            client=CountingClient(client, metrics=metrics),
            metrics=metrics,
            clock=clock,
            logger=logger,
            min_watch_timeout=min_watch_timeout,
            max_watch_timeout=max_watch_timeout,
        )
        self._synced = asyncio.Event()

    def synced(self) -> bool:
        """Every informer has listed once and its content reached the caches."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    async def run(self) -> None:
        """Run the informers until cancelled."""
        refilter = self._refilter
        nodes = self._factory.informer(NODES, transform=node_labels_only)
        nodes.add_event_handler(
            HandlerFuncs(
                on_add=lambda obj, _: refilter.node_changed(object_key(obj), _labels(obj)),
                on_update=lambda old, new: refilter.node_changed(object_key(new), _labels(new)),
                on_delete=lambda obj: refilter.node_changed(object_key(obj), None),
            ),
            name="wrapper-nodes",
        )
        services = self._watch(SERVICES, refilter.service_changed)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._factory.run(), name="wrapper-informers")
            # Nodes and policies first: endpoints are then filtered right when they appear.
            await nodes.wait_synced()
            await services.wait_synced()
            endpoints = self._watch(ENDPOINTS, refilter.endpoints_changed)
            slices = self._watch(ENDPOINTSLICES, refilter.slice_changed)
            await endpoints.wait_synced()
            await slices.wait_synced()
            if not refilter.local_node_known:
                self._log.warning(
                    "local node not found; NodeUnit-local Services get no endpoints",
                    node=refilter.node_name,
                )
            self._synced.set()
            self._log.info("upstream caches synced")

    def _watch(
        self, ref: ResourceRef, changed: Callable[[str, Obj | None], None]
    ) -> SharedInformer:
        informer = self._factory.informer(ref, transform=strip_managed_fields)
        informer.add_event_handler(
            HandlerFuncs(
                on_add=lambda obj, _: changed(object_key(obj), obj),
                on_update=lambda _, new: changed(object_key(new), new),
                on_delete=lambda obj: changed(object_key(obj), None),
            ),
            name=f"wrapper-{ref.key}",
        )
        return informer
