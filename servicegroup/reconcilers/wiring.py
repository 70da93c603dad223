"""Wiring: the informers the grid controllers need, their handlers, and the controllers.

Owns: `wire_controllers` (declares every informer on the factory, builds NodeUnit discovery,
the three reconcilers and their `Controller`s, and registers the handlers), `GridController`
(a Controller plus its periodic resync, as the manager runs it), `ChildrenGauge` (the
`servicegroup_grid_children{kind}` / `servicegroup_grid_children_ready{kind}` gauges).

Informers (DESIGN.md sections 3-4), one per watched namespace, or one for all namespaces:
- DeploymentGrids, StatefulSetGrids, ServiceGrids: managedFields stripped; index
  `grid-uniq-key` (grids by `spec.gridUniqKey`, for NodeUnit discovery).
- Deployments, StatefulSets, Services: every object of those kinds (so a name taken by an
  object we do not control is seen), whole objects only for children a grid controls,
  metadata only for the rest; index `controller-uid` (a grid's children).
- Nodes (cluster-wide): labels only.

Handlers only map objects to keys (DESIGN.md 3.3); they never block or write:
- a grid -> itself (and its gridUniqKey is tracked by NodeUnit discovery);
- a child -> its controlling grid (group superedge.io, the kind that owns that child kind,
  and the uid of the grid in the cache; both the old and the new owner on an update), plus
  the grid waiting for a foreign object of that name to go away (ChildConflict);
- a node -> NodeUnit discovery -> the grids whose key's unit set changed.

Invariants: every handler is synchronous and O(1) in the number of cached objects (except
NodeUnit discovery's enqueue of the grids using a changed key); every task is named and owned
by a TaskGroup; a resync only enqueues (it makes no request by itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.controller import Controller, Reconciler, Request
from servicegroup.grid.status import unit_ready
from servicegroup.informers.informer import HandlerFuncs
from servicegroup.informers.store import (
    CONTROLLER_UID_INDEX,
    DeletedFinalStateUnknown,
    index_by_controller_uid,
    object_key,
)
from servicegroup.informers.transforms import Transform, strip_managed_fields
from servicegroup.kube.resources import (
    DEPLOYMENTGRIDS,
    NODES,
    SERVICEGRIDS,
    SERVICES,
    STATEFULSETGRIDS,
    ResourceRef,
)
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.children import (
    CHILD_TRANSFORM,
    ConflictWaiters,
    EventSink,
    WriteClient,
    grid_controller_of,
)
from servicegroup.reconcilers.deploymentgrid import DEPLOYMENT_GRID
from servicegroup.reconcilers.federation_render import NOT_COPY_SELECTOR
from servicegroup.reconcilers.gridindex import (
    GRID_UNIQ_KEY_INDEX,
    NamespacedStores,
    Store,
    grid_request,
    index_by_grid_uniq_key,
)
from servicegroup.reconcilers.nodeunit import NODE_TRANSFORM, GridTarget, NodeUnitDiscovery
from servicegroup.reconcilers.servicegrid import CONTROLLER_NAME as SERVICEGRID_CONTROLLER
from servicegroup.reconcilers.servicegrid import ServiceGridReconciler
from servicegroup.reconcilers.statefulsetgrid import STATEFULSET_GRID
from servicegroup.reconcilers.workloadgrid import (
    DEFAULT_RETRY_REJECTED_AFTER,
    WorkloadGridReconciler,
    WorkloadKind,
)

# controller-runtime's default SyncPeriod.
DEFAULT_SYNC_PERIOD = 10 * 3600.0

Obj = dict[str, Any]


class InformerLike(Protocol):
    """servicegroup.informers.informer.SharedInformer, as used here."""

    @property
    def store(self) -> Store: ...

    def add_event_handler(self, handler: HandlerFuncs, *, name: str | None = None) -> object: ...


class InformerSource(Protocol):
    """servicegroup.informers.factory.InformerFactory, as used here."""

    def informer(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Transform | None = None,
        indexers: Mapping[str, Callable[[Obj], list[str]]] | None = None,
    ) -> InformerLike: ...


def _unwrap(obj: Obj | DeletedFinalStateUnknown) -> Obj:
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


class GridController:
    """A grid kind's Controller, plus the periodic resync that enqueues every grid of it."""

    def __init__(
        self,
        *,
        controller: Controller,
        grids: NamespacedStores,
        clock: Clock,
        sync_period: float,
    ) -> None:
        self.controller = controller
        self._grids = grids
        self._clock = clock
        self._sync_period = sync_period

    @property
    def name(self) -> str:
        return self.controller.name

    def resync(self) -> int:
        """Enqueue every cached grid; how many were enqueued."""
        count = 0
        for obj in self._grids:
            self.controller.enqueue(grid_request(obj))
            count += 1
        return count

    async def _resync_loop(self) -> None:
        while True:
            await self._clock.sleep(self._sync_period)
            self.resync()

    async def run(self) -> None:
        """Serve the queue until cancelled (the controller drains its reconciles first)."""
        if self._sync_period <= 0:
            await self.controller.run()
            return
        async with asyncio.TaskGroup() as group:
            resync = group.create_task(self._resync_loop(), name=f"resync-{self.name}")
            try:
                await self.controller.run()
            finally:
                resync.cancel()


class ChildrenGauge:
    """Counts grid-controlled children of one child kind, and the ready ones, per grid kind."""

    def __init__(self, *, metrics: Metrics, grid_kind: str, child_kind: str) -> None:
        self._total = metrics.grid_children.labels(grid_kind)
        self._ready = metrics.grid_children_ready.labels(grid_kind)
        self._grid_kind = grid_kind
        self._child_kind = child_kind
        self._seen: dict[str, bool] = {}  # key -> ready

    def _ready_of(self, obj: Obj) -> bool:
        if self._child_kind == "Service":
            return True
        return unit_ready(obj, kind=self._child_kind)

    def upsert(self, obj: Obj) -> None:
        key = object_key(obj)
        self.remove(key)
        if grid_controller_of(obj, kind=self._grid_kind):
            ready = self._ready_of(obj)
            self._seen[key] = ready
            self._total.inc()
            if ready:
                self._ready.inc()

    def remove(self, key: str) -> None:
        ready = self._seen.pop(key, None)
        if ready is None:
            return
        self._total.dec()
        if ready:
            self._ready.dec()


@dataclass(frozen=True)
class Wiring:
    """What `wire_controllers` built: give `controllers` to the Manager."""

    controllers: tuple[GridController, ...]
    discovery: NodeUnitDiscovery
    deployment_grids: WorkloadGridReconciler
    statefulset_grids: WorkloadGridReconciler
    service_grids: ServiceGridReconciler

    def resync(self) -> int:
        """Enqueue every grid of every kind now (what the periodic resync does)."""
        return sum(controller.resync() for controller in self.controllers)


class _Wirer:
    """The builder behind `wire_controllers` (one use)."""

    def __init__(
        self,
        *,
        factory: InformerSource,
        metrics: Metrics,
        clock: Clock,
        logger: FilteringBoundLogger,
        namespaces: Sequence[str],
    ) -> None:
        self.factory = factory
        self.metrics = metrics
        self.clock = clock
        self.logger = logger
        # None: one informer for all namespaces.
        self.scopes: tuple[str | None, ...] = tuple(namespaces) or (None,)

    def stores(
        self,
        ref: ResourceRef,
        *,
        transform: Transform,
        indexers: Mapping[str, Callable[[Obj], list[str]]],
        handlers: Sequence[HandlerFuncs],
        label_selector: str | None = None,
    ) -> NamespacedStores:
        """Declare `ref`'s informers (one per scope), register `handlers`, return the stores."""
        informers = {
            scope: self.factory.informer(
                ref,
                namespace=scope,
                label_selector=label_selector,
                transform=transform,
                indexers=indexers,
            )
            for scope in self.scopes
        }
        for informer in informers.values():
            for index, handler in enumerate(handlers):
                informer.add_event_handler(handler, name=f"{ref.key}-{index}")
        return NamespacedStores({scope: i.store for scope, i in informers.items()})

    def controller(self, *, name: str, reconciler: Reconciler, workers: int) -> Controller:
        return Controller(
            name=name,
            reconciler=reconciler,
            workers=workers,
            metrics=self.metrics,
            clock=self.clock,
            logger=self.logger,
        )


def _grid_handlers(
    *, kind: str, enqueue: Callable[[Request], None], discovery: NodeUnitDiscovery | None
) -> HandlerFuncs:
    """A grid event -> the grid itself; a workload grid's key is tracked by discovery."""

    def seen(obj: Obj) -> None:
        request = grid_request(obj)
        if discovery is not None:
            keys = index_by_grid_uniq_key(obj)
            holder = f"{kind}/{request.namespace}/{request.name}"
            discovery.grid_seen(holder=holder, key=keys[0] if keys else "")
        enqueue(request)

    def gone(obj: Obj | DeletedFinalStateUnknown) -> None:
        request = grid_request(_unwrap(obj))
        if discovery is not None:
            discovery.grid_gone(holder=f"{kind}/{request.namespace}/{request.name}")
        enqueue(request)

    return HandlerFuncs(
        on_add=lambda obj, _initial: seen(obj),
        on_update=lambda _old, new: seen(new),
        on_delete=gone,
    )


def _child_handlers(
    *,
    grid_kind: str,
    grids: NamespacedStores,
    enqueue: Callable[[Request], None],
    waiters: ConflictWaiters,
    gauge: ChildrenGauge,
) -> HandlerFuncs:
    """A child event -> its controlling grid of `grid_kind`, and any grid waiting for it."""

    def owner(obj: Obj) -> None:
        ref = grid_controller_of(obj, kind=grid_kind)
        if not ref:
            return
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        name = str(ref.get("name") or "")
        grid = grids.get(namespace, name)
        # A grid we have not seen yet is enqueued by its own event; a grid of the same name
        # but another uid is not this child's owner (the child awaits garbage collection).
        if grid is not None and (grid.get("metadata") or {}).get("uid") == ref.get("uid"):
            enqueue(Request(namespace, name))

    def waiter(obj: Obj) -> None:
        request = waiters.waiting(object_key(obj))
        if request is not None:
            enqueue(request)

    def added(obj: Obj, _initial: bool) -> None:
        gauge.upsert(obj)
        owner(obj)
        waiter(obj)

    def updated(old: Obj, new: Obj) -> None:
        gauge.upsert(new)
        owner(new)
        if grid_controller_of(old, kind=grid_kind) != grid_controller_of(new, kind=grid_kind):
            owner(old)
        waiter(new)

    def deleted(obj: Obj | DeletedFinalStateUnknown) -> None:
        last = _unwrap(obj)
        gauge.remove(object_key(obj))
        owner(last)
        waiter(last)

    return HandlerFuncs(on_add=added, on_update=updated, on_delete=deleted)


def wire_controllers(
    *,
    factory: InformerSource,
    client: WriteClient,
    recorder: EventSink,
    metrics: Metrics,
    clock: Clock,
    logger: FilteringBoundLogger,
    namespaces: Sequence[str] = (),
    workers: int = 4,
    grace_period: float = 0.0,
    sync_period: float = DEFAULT_SYNC_PERIOD,
    retry_rejected_after: float = DEFAULT_RETRY_REJECTED_AFTER,
) -> Wiring:
    """Declare the informers, build the reconcilers and controllers, register the handlers.

    Call before the factory runs (handlers registered later would still get the cache's
    content, but the manager waits for sync only for informers declared by then).
    """
    wirer = _Wirer(
        factory=factory, metrics=metrics, clock=clock, logger=logger, namespaces=namespaces
    )
    discovery = NodeUnitDiscovery(metrics=metrics, logger=logger)

    # Controllers need their reconcilers, reconcilers need the stores, and the stores'
    # handlers need the controllers' queues: handlers enqueue through these late-bound
    # cells, filled below before any informer runs.
    queues: dict[str, Controller] = {}

    def enqueue_to(name: str) -> Callable[[Request], None]:
        def enqueue(request: Request) -> None:
            queues[name].enqueue(request)

        return enqueue

    grid_indexers = {GRID_UNIQ_KEY_INDEX: index_by_grid_uniq_key}
    child_indexers = {CONTROLLER_UID_INDEX: index_by_controller_uid}

    def workload(
        kind: WorkloadKind, ref: ResourceRef
    ) -> tuple[GridController, WorkloadGridReconciler]:
        enqueue = enqueue_to(kind.controller_name)
        grids = wirer.stores(
            ref,
            # Hub copies of federated grids are distributed, never reconciled where they are.
            label_selector=NOT_COPY_SELECTOR,
            transform=strip_managed_fields,
            indexers=grid_indexers,
            handlers=[_grid_handlers(kind=kind.grid_kind, enqueue=enqueue, discovery=discovery)],
        )
        waiters = ConflictWaiters()
        gauge = ChildrenGauge(metrics=metrics, grid_kind=kind.grid_kind, child_kind=kind.child_kind)
        children = wirer.stores(
            kind.child_ref,
            transform=CHILD_TRANSFORM,
            indexers=child_indexers,
            handlers=[
                _child_handlers(
                    grid_kind=kind.grid_kind,
                    grids=grids,
                    enqueue=enqueue,
                    waiters=waiters,
                    gauge=gauge,
                )
            ],
        )
        reconciler = WorkloadGridReconciler(
            kind=kind,
            grids=grids,
            children=children,
            units=discovery,
            client=client,
            recorder=recorder,
            clock=clock,
            metrics=metrics,
            grace_period=grace_period,
            retry_rejected_after=retry_rejected_after,
            waiters=waiters,
        )
        discovery.add_target(GridTarget(kind.grid_kind, grids, enqueue))
        controller = wirer.controller(
            name=kind.controller_name, reconciler=reconciler, workers=workers
        )
        queues[kind.controller_name] = controller
        grid_controller = GridController(
            controller=controller, grids=grids, clock=clock, sync_period=sync_period
        )
        return grid_controller, reconciler

    deployments, deployment_reconciler = workload(DEPLOYMENT_GRID, DEPLOYMENTGRIDS)
    statefulsets, statefulset_reconciler = workload(STATEFULSET_GRID, STATEFULSETGRIDS)

    enqueue_service = enqueue_to(SERVICEGRID_CONTROLLER)
    service_grids = wirer.stores(
        SERVICEGRIDS,
        label_selector=NOT_COPY_SELECTOR,
        transform=strip_managed_fields,
        indexers=grid_indexers,
        handlers=[_grid_handlers(kind="ServiceGrid", enqueue=enqueue_service, discovery=None)],
    )
    service_waiters = ConflictWaiters()
    service_gauge = ChildrenGauge(metrics=metrics, grid_kind="ServiceGrid", child_kind="Service")
    services = wirer.stores(
        SERVICES,
        transform=CHILD_TRANSFORM,
        indexers=child_indexers,
        handlers=[
            _child_handlers(
                grid_kind="ServiceGrid",
                grids=service_grids,
                enqueue=enqueue_service,
                waiters=service_waiters,
                gauge=service_gauge,
            )
        ],
    )
    service_reconciler = ServiceGridReconciler(
        grids=service_grids,
        services=services,
        client=client,
        recorder=recorder,
        clock=clock,
        metrics=metrics,
        retry_rejected_after=retry_rejected_after,
        waiters=service_waiters,
    )
    service_controller = wirer.controller(
        name=SERVICEGRID_CONTROLLER, reconciler=service_reconciler, workers=workers
    )
    queues[SERVICEGRID_CONTROLLER] = service_controller

    # Nodes last: by the time node events flow, every grid target is registered.
    node_informer = factory.informer(NODES, transform=NODE_TRANSFORM)
    node_informer.add_event_handler(discovery.node_handlers(), name="nodeunit-discovery")

    return Wiring(
        controllers=(
            deployments,
            statefulsets,
            GridController(
                controller=service_controller,
                grids=service_grids,
                clock=clock,
                sync_period=sync_period,
            ),
        ),
        discovery=discovery,
        deployment_grids=deployment_reconciler,
        statefulset_grids=statefulset_reconciler,
        service_grids=service_reconciler,
    )
