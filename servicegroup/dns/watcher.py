"""The daemon's view of the cluster: the informers it needs, and its records (SPEC A6).

Owns: six informers (transforms in transforms.py) - the node's own Node (field selector
`metadata.name`), StatefulSetGrids, ServiceGrids, ServiceGrid Services (label
`superedge.io/grid-selector`), and two whose selectors follow the cluster (see selectors.py
for the memory trade-off): the local units' StatefulSets and the pods they want. Also the
`changed` event the syncer waits on, and `records()`.

Switching a selector (the node moved to another unit, a StatefulSet scaled) is slot.py's job:
the old cache serves until the new one has synced. `records()` answers None ("not settled")
while any cache is unsynced or any selector differs from the one the current caches call for,
so a unit switch replaces all the node's lines in one write instead of blanking them first.

Invariants:
- Caches hold only what the records need, never whole objects.
- Handlers only signal (`changed`, and the watcher's own wake-up), and so does each informer
  once synced (an empty list calls no handler); the selector switching runs
  in `run()`'s task, the records are computed by the caller of `records()`. Updates that leave
  the transformed object unchanged (pod status heartbeats, StatefulSet status) signal nothing.
- Every informer runs as a named task of `run()`'s TaskGroup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.dns.records import HostRecord, compute_records
from servicegroup.dns.selectors import (
    SERVICE_SELECTOR,
    local_units,
    pod_selector,
    statefulset_selector,
    wanted_pod_names,
)
from servicegroup.dns.slot import SelectorSlot
from servicegroup.dns.transforms import (
    change_handler,
    grid_transform,
    node_transform,
    pod_transform,
    service_transform,
    statefulset_transform,
)
from servicegroup.informers.informer import SharedInformer
from servicegroup.informers.reflector import ListWatchClient
from servicegroup.informers.transforms import Transform
from servicegroup.kube.resources import (
    NODES,
    PODS,
    SERVICEGRIDS,
    SERVICES,
    STATEFULSETGRIDS,
    STATEFULSETS,
    ResourceRef,
)
from servicegroup.metrics import Metrics


class ClusterView:
    """What one node's daemon knows about the cluster, kept current by `run()`."""

    def __init__(
        self,
        *,
        client: ListWatchClient,
        node_name: str,
        cluster_domain: str,
        publish_not_ready: bool,
        metrics: Metrics,
        clock: Clock,
        logger: FilteringBoundLogger,
    ) -> None:
        self.node_name = node_name
        self._cluster_domain = cluster_domain
        self._publish_not_ready = publish_not_ready
        self._client = client
        self._metrics = metrics
        self._clock = clock
        self._log = logger
        self.changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._node = self._informer(NODES, None, f"metadata.name={node_name}", node_transform)
        self._ssgs = self._informer(STATEFULSETGRIDS, None, None, grid_transform)
        self._sgs = self._informer(SERVICEGRIDS, None, None, grid_transform)
        self._services = self._informer(SERVICES, SERVICE_SELECTOR, None, service_transform)
        self._static = (self._node, self._ssgs, self._sgs, self._services)
        for informer in self._static:
            informer.add_event_handler(change_handler(self._signal), name="dns-watcher")
        self.statefulsets = SelectorSlot(
            ref=STATEFULSETS,
            transform=statefulset_transform,
            make=self._informer,
            on_change=self._signal,
            metrics=metrics,
            logger=logger,
        )
        self.pods = SelectorSlot(
            ref=PODS,
            transform=pod_transform,
            make=self._informer,
            on_change=self._signal,
            metrics=metrics,
            logger=logger,
        )

    def _informer(
        self,
        ref: ResourceRef,
        label_selector: str | None,
        field_selector: str | None,
        transform: Transform,
    ) -> SharedInformer:
        return SharedInformer(
            client=self._client,
            ref=ref,
            clock=self._clock,
            metrics=self._metrics,
            logger=self._log,
            label_selector=label_selector,
            field_selector=field_selector,
            transform=transform,
        )

    def _signal(self) -> None:
        self.changed.set()
        self._wake.set()

    # --- state

    def synced(self) -> bool:
        """Every fixed cache has synced (readiness)."""
        return all(informer.has_synced() for informer in self._static)

    def node_labels(self) -> Mapping[str, str] | None:
        """The node's labels; None while unsynced or when the node does not exist."""
        if not self._node.has_synced():
            return None
        node = self._node.store.get(self.node_name)
        if node is None:
            return None
        labels = (node.get("metadata") or {}).get("labels")
        return labels if isinstance(labels, Mapping) else {}

    def node_found(self) -> bool:
        """The node exists (a readiness check: a wrong --node-name publishes nothing)."""
        return self.node_labels() is not None

    def _wanted_statefulsets(self) -> str | None:
        return statefulset_selector(local_units(self.node_labels(), self._ssgs.store.list()))

    def _wanted_pods(self) -> str | None:
        return pod_selector(wanted_pod_names(self.statefulsets.store.list()))

    def settled(self) -> bool:
        """Synced, and every selector is the one the current caches call for."""
        return (
            self.synced()
            and self.statefulsets.selector == self._wanted_statefulsets()
            and self.pods.selector == self._wanted_pods()
        )

    def records(self) -> frozenset[HostRecord] | None:
        """The node's records, or None while not `settled()`."""
        if not self.settled():
            return None
        return compute_records(
            node_labels=self.node_labels(),
            statefulset_grids=self._ssgs.store.list(),
            service_grids=self._sgs.store.list(),
            statefulsets=self.statefulsets.store.list(),
            services=self._services.store,
            pods=self.pods.store,
            cluster_domain=self._cluster_domain,
            publish_not_ready=self._publish_not_ready,
        )

    # --- running

    async def run(self) -> None:
        """Run the informers and follow the selectors until cancelled."""
        async with asyncio.TaskGroup() as group:
            for informer in self._static:
                group.create_task(informer.run(), name=f"dns-informer:{informer.description}")
                group.create_task(
                    self._signal_synced(informer), name=f"dns-sync:{informer.description}"
                )
            try:
                while True:
                    self._wake.clear()
                    self._follow_selectors(group)
                    await self._wake.wait()
            finally:
                self.statefulsets.stop()
                self.pods.stop()

    async def _signal_synced(self, informer: SharedInformer) -> None:
        # An empty list calls no handler, yet "synced" is news to whoever waits on us.
        await informer.wait_synced()
        self._signal()

    def _follow_selectors(self, group: asyncio.TaskGroup) -> None:
        if not self.synced():
            return
        wanted = self._wanted_statefulsets()
        self.statefulsets.want(wanted, group)
        if self.statefulsets.selector != wanted:
            return  # pods follow the StatefulSets once those are settled
        self.pods.want(self._wanted_pods(), group)
