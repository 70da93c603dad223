"""The ServiceGrid reconciler: one Service `{grid}-svc`, NodeUnit-local through topologyKeys.

Owns: `ServiceGridReconciler` and its controller name. The sync order is the workload grids'
(workloadgrid.py) with a single child and no units:

1. Grid from the cache (or our own status write not yet in it); absent -> forget, done;
   being deleted -> done (garbage collection removes the Service).
2. Validate; invalid -> InvalidSpec condition, Warning Event, status write when changed,
   `TerminalError` (no retry until the grid changes).
3. Render the Service (grid/render.py: grid labels and annotations plus
   `topologyKeys: '["{gridUniqKey}"]'`, spec = template) and bring it about with
   `ChildSync`: a Service of that name this grid does not control is never touched
   (ChildConflict); a matching Service is skipped; otherwise server-side apply; a rejected
   apply is reported (ApplyFailed) and not repeated until something changes.
4. Status (observedGeneration, conditions) written only when it changed.

ServiceGrids do not depend on NodeUnits (the wrapper filters endpoints per unit), so node
events never enqueue them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from structlog.typing import FilteringBoundLogger

from servicegroup.api.models import ServiceGrid
from servicegroup.clock import Clock
from servicegroup.controller import Request, Result, TerminalError
from servicegroup.events import WARNING
from servicegroup.grid import conditions as cond
from servicegroup.grid.naming import ChildNameError
from servicegroup.grid.render import render_service
from servicegroup.grid.status import build_service_status, status_changed
from servicegroup.grid.validation import validate_grid
from servicegroup.kube.resources import SERVICEGRIDS, SERVICES
from servicegroup.metrics import Metrics
from servicegroup.reconcilers import reasons
from servicegroup.reconcilers.children import (
    ChildSync,
    ConflictWaiters,
    EventSink,
    GridMemory,
    GridWriter,
    WriteClient,
    WriteExpectations,
    deleting,
    update_status,
)
from servicegroup.reconcilers.federation_status import keep_federated
from servicegroup.reconcilers.gridindex import NamespacedStores
from servicegroup.reconcilers.workloadgrid import DEFAULT_RETRY_REJECTED_AFTER, TransientWriteError

CONTROLLER_NAME = "servicegrid"
GRID_KIND = "ServiceGrid"


class ServiceGridReconciler:
    """Reconciles ServiceGrids (see the module docstring)."""

    def __init__(
        self,
        *,
        grids: NamespacedStores,
        services: NamespacedStores,
        client: WriteClient,
        recorder: EventSink,
        clock: Clock,
        metrics: Metrics,
        retry_rejected_after: float = DEFAULT_RETRY_REJECTED_AFTER,
        expectation_ttl: float = 30.0,
        waiters: ConflictWaiters | None = None,
    ) -> None:
        self._grids = grids
        self._services = services
        self._recorder = recorder
        self._clock = clock
        # Shared with the child informer's handler, which wakes a grid waiting on a name.
        self.waiters = waiters if waiters is not None else ConflictWaiters()
        self._grid_writes = WriteExpectations(clock=clock, ttl=expectation_ttl)
        self._service_writes = WriteExpectations(clock=clock, ttl=expectation_ttl)
        self._memory: dict[str, GridMemory] = {}
        self._writer = GridWriter(
            client=client,
            metrics=metrics,
            grid_kind=GRID_KIND,
            grid_ref=SERVICEGRIDS,
            child_ref=SERVICES,
        )
        self._sync = ChildSync(
            writer=self._writer,
            recorder=recorder,
            clock=clock,
            expectations=self._service_writes,
            waiters=self.waiters,
            child_kind="Service",
            retry_rejected_after=retry_rejected_after,
        )

    def _memory_for(self, key: str, uid: str) -> GridMemory:
        memory = self._memory.get(key)
        if memory is None or memory.uid != uid:
            memory = self._memory[key] = GridMemory(uid=uid)
        return memory

    async def reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        key = f"{request.namespace}/{request.name}"
        obj = self._grid_writes.view(key, self._grids.get(request.namespace, request.name))
        if obj is None:
            self._memory.pop(key, None)
            self._grid_writes.forget(key)
            self.waiters.release_all(request)
            return Result()
        if deleting(obj):
            return Result()
        metadata = obj.get("metadata") or {}
        memory = self._memory_for(key, str(metadata.get("uid") or ""))

        validation = validate_grid(obj, kind=GRID_KIND)
        grid = validation.grid
        messages = validation.messages()
        desired: dict[str, Any] | None = None
        if validation.ok and isinstance(grid, ServiceGrid):
            try:
                desired = render_service(grid)
            except ChildNameError as err:
                messages.append(str(err))
        if desired is None or not isinstance(grid, ServiceGrid):
            await self._invalid(obj, "; ".join(messages) or "invalid spec", log=log)
            raise TerminalError("invalid spec: " + "; ".join(messages))

        name = str(desired["metadata"]["name"])
        service_key = f"{request.namespace}/{name}"
        live = self._service_writes.view(service_key, self._services.get(request.namespace, name))
        outcome = await self._sync.sync(
            grid=obj,
            request=request,
            memory=memory,
            unit="",
            desired=desired,
            live=live,
            log=log,
        )
        failures = [outcome.failure] if outcome.failure is not None else []
        status = build_service_status(
            generation=grid.metadata.generation,
            service=outcome.live,
            failures=failures,
            previous=obj.get("status"),
            now=self._clock.now(),
        )
        status = keep_federated(previous=obj.get("status"), status=status)
        if status_changed(obj.get("status"), status):
            written = await update_status(
                writer=self._writer,
                expectations=self._grid_writes,
                recorder=self._recorder,
                grid=obj,
                status=status,
                log=log,
            )
            if not written:
                return Result()
        if outcome.transient is not None:
            raise TransientWriteError(str(outcome.transient))
        return Result(requeue_after=outcome.retry_in)

    async def _invalid(
        self, obj: Mapping[str, Any], message: str, *, log: FilteringBoundLogger
    ) -> None:
        self._recorder.event(obj, type=WARNING, reason=reasons.INVALID_SPEC, message=message)
        log.warning("Invalid spec", error=message)
        generation = (obj.get("metadata") or {}).get("generation")
        previous = obj.get("status")
        status = build_service_status(
            generation=generation if isinstance(generation, int) else None,
            service=None,
            failures=[cond.UnitFailure("", cond.INVALID_SPEC, cond.VALIDATION_FAILED, message)],
            previous=previous if isinstance(previous, Mapping) else None,
            now=self._clock.now(),
        )
        status = keep_federated(previous=obj.get("status"), status=status)
        if status_changed(previous if isinstance(previous, Mapping) else None, status):
            await update_status(
                writer=self._writer,
                expectations=self._grid_writes,
                recorder=self._recorder,
                grid=obj,
                status=status,
                log=log,
            )
