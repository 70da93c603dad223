"""The reconciler shared by DeploymentGrid and StatefulSetGrid (one child per NodeUnit).

Owns: `WorkloadKind` (the static facts of one workload grid kind) and
`WorkloadGridReconciler`, which follows sample-controller's sync order (DESIGN.md 3.5-3.6):

1. Read the grid from the informer cache (or from our own status/spec write the cache has
   not shown yet). Absent -> forget it, done. Being deleted -> done (garbage collection
   removes the children through their controller ownerReference).
2. Validate (grid/validation.py). Invalid -> InvalidSpec condition, Warning Event, status
   write when changed, then `TerminalError`: no retry until the grid changes. Children are
   left as they are: a typo never deletes a site's workload.
3. Units of `gridUniqKey` from the NodeUnit index; render every unit's child (pure).
   A unit that cannot be rendered (missing pool entry, no valid name) fails alone.
4. Each rendered child through `ChildSync`: refuse names we do not control, skip children
   that match, server-side apply the rest; a rejected apply fails its unit only and is not
   repeated until something changes or `retry_rejected_after` passes (no hot loop).
5. Children this grid controls whose `superedge.io/nodeunit` unit vanished are deleted (uid
   precondition) once the unit has been gone for `grace_period` seconds, counted from the
   first reconcile that saw it gone; the remaining wait is a `requeue_after`. A child without
   that label was orphaned by hand and is left alone.
6. autoDeleteUnusedTemplate: one merge patch of the spec removing unused pool entries,
   with a resourceVersion precondition.
7. Status last, from the children as we know them (cache, or our write's answer), written in
   one request only when it changed.

Result: transient API failures (5xx, 429, 409, transport) raise after the status is written, so
the grid is retried with the controller's rate-limited backoff; otherwise the shortest wait
(grace period, rejected apply) is returned as `requeue_after`, or nothing.

Invariants: no API read; cached objects are never mutated; writes only through `GridWriter`;
a reconcile that changes nothing makes no request and emits no Normal Event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.api.models import DeploymentGrid, StatefulSetGrid, grid_type
from servicegroup.clock import Clock
from servicegroup.controller import Request, Result, TerminalError
from servicegroup.events import NORMAL, WARNING
from servicegroup.grid import conditions as cond
from servicegroup.grid.compare import controlled_by
from servicegroup.grid.labels import NODEUNIT
from servicegroup.grid.naming import is_qualified_name
from servicegroup.grid.render import render_units
from servicegroup.grid.status import build_status, status_changed
from servicegroup.grid.templates import unused_pool_entries, unused_pool_patch
from servicegroup.grid.validation import GridValidation, validate_grid
from servicegroup.informers.store import CONTROLLER_UID_INDEX
from servicegroup.kube.errors import (
    ApiError,
    is_conflict,
    is_not_found,
    is_retryable,
    is_retryable_write,
)
from servicegroup.kube.resources import ResourceRef
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

# An apply the API server rejected (422, 400, 403, ...) is tried again after this long even
# if nothing changed (a webhook or quota may have changed meanwhile).
DEFAULT_RETRY_REJECTED_AFTER = 300.0

_FAILURE_REASONS = {
    cond.INVALID_SPEC: reasons.INVALID_SPEC,
    cond.TEMPLATE_NOT_FOUND: reasons.TEMPLATE_NOT_FOUND,
    cond.CHILD_CONFLICT: reasons.CHILD_CONFLICT,
    cond.APPLY_FAILED: reasons.APPLY_FAILED,
}


@dataclass(frozen=True)
class WorkloadKind:
    """One workload grid kind: its controller name, its resource and its children's."""

    controller_name: str  # "deploymentgrid": queue, metrics and log key
    grid_kind: str  # "DeploymentGrid"
    grid_ref: ResourceRef
    child_ref: ResourceRef

    @property
    def child_kind(self) -> str:
        return grid_type(self.grid_kind).child_kind


class UnitSource(Protocol):
    """Where a reconcile gets unit sets (NodeUnitDiscovery fits)."""

    def units(self, key: str) -> frozenset[str]: ...


class TransientWriteError(Exception):
    """Some writes failed in a way that may pass (5xx, 429, transport): retry with backoff."""


def _earliest(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    return candidate if current is None else min(current, candidate)


class WorkloadGridReconciler:
    """Reconciles DeploymentGrids or StatefulSetGrids (see the module docstring)."""

    def __init__(
        self,
        *,
        kind: WorkloadKind,
        grids: NamespacedStores,
        children: NamespacedStores,
        units: UnitSource,
        client: WriteClient,
        recorder: EventSink,
        clock: Clock,
        metrics: Metrics,
        grace_period: float = 0.0,
        retry_rejected_after: float = DEFAULT_RETRY_REJECTED_AFTER,
        expectation_ttl: float = 30.0,
        waiters: ConflictWaiters | None = None,
    ) -> None:
        self.kind = kind
        self._grids = grids
        self._children = children
        self._units = units
        self._recorder = recorder
        self._clock = clock
        self._grace_period = grace_period
        # Shared with the child informer's handler, which wakes a grid waiting on a name.
        self.waiters = waiters if waiters is not None else ConflictWaiters()
        self._grid_writes = WriteExpectations(clock=clock, ttl=expectation_ttl)
        self._child_writes = WriteExpectations(clock=clock, ttl=expectation_ttl)
        self._memory: dict[str, GridMemory] = {}
        self._writer = GridWriter(
            client=client,
            metrics=metrics,
            grid_kind=kind.grid_kind,
            grid_ref=kind.grid_ref,
            child_ref=kind.child_ref,
        )
        self._sync = ChildSync(
            writer=self._writer,
            recorder=recorder,
            clock=clock,
            expectations=self._child_writes,
            waiters=self.waiters,
            child_kind=kind.child_kind,
            retry_rejected_after=retry_rejected_after,
        )

    # ------------------------------------------------------------------ helpers

    def _memory_for(self, key: str, uid: str) -> GridMemory:
        memory = self._memory.get(key)
        if memory is None or memory.uid != uid:
            memory = self._memory[key] = GridMemory(uid=uid)
        return memory

    def _child(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = f"{namespace}/{name}"
        return self._child_writes.view(key, self._children.get(namespace, name))

    def _owned_children(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        """Children this grid controls, as freshly as we know them (deleted ones left out)."""
        owned = []
        for cached in self._children.by_index(CONTROLLER_UID_INDEX, uid, namespace=namespace):
            metadata = cached.get("metadata") or {}
            child = self._child_writes.view(f"{namespace}/{metadata.get('name')}", cached)
            if child is not None and controlled_by(child, uid):
                owned.append(child)
        return owned

    @staticmethod
    def _by_unit(owned: list[dict[str, Any]], units: frozenset[str]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for child in owned:
            unit = ((child.get("metadata") or {}).get("labels") or {}).get(NODEUNIT)
            if unit in units and not deleting(child):
                result.setdefault(unit, child)
        return result

    def _report_failures(self, grid: Mapping[str, Any], failures: list[cond.UnitFailure]) -> None:
        for failure in failures:
            where = f"NodeUnit {failure.unit}: " if failure.unit else ""
            self._recorder.event(
                grid,
                type=WARNING,
                reason=_FAILURE_REASONS[failure.type],
                message=f"{where}{failure.message}",
            )

    def _forget(self, request: Request) -> None:
        self._memory.pop(f"{request.namespace}/{request.name}", None)
        self._grid_writes.forget(f"{request.namespace}/{request.name}")
        self.waiters.release_all(request)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        key = f"{request.namespace}/{request.name}"
        cached = self._grids.get(request.namespace, request.name)
        obj = self._grid_writes.view(key, cached)
        if obj is None:
            self._forget(request)
            return Result()
        if deleting(obj):
            return Result()
        metadata = obj.get("metadata") or {}
        memory = self._memory_for(key, str(metadata.get("uid") or ""))

        validation = validate_grid(obj, kind=self.kind.grid_kind)
        grid = validation.grid
        if not validation.ok or not isinstance(grid, DeploymentGrid | StatefulSetGrid):
            await self._invalid(obj, validation, log=log)
            raise TerminalError("invalid spec: " + "; ".join(validation.messages()))

        namespace = request.namespace
        uid = memory.uid
        spec_key = grid.spec.grid_uniq_key
        units = self._units.units(spec_key)
        plan = render_units(grid, units)
        failures = list(plan.failures.values())
        self._report_failures(obj, failures)

        owned = self._owned_children(namespace, uid)
        children = self._by_unit(owned, units)
        requeue_after: float | None = None
        transient: list[ApiError] = []

        for unit, rendered in sorted(plan.children.items()):
            outcome = await self._sync.sync(
                grid=obj,
                request=request,
                memory=memory,
                unit=unit,
                desired=rendered.obj,
                live=self._child(namespace, rendered.name),
                log=log,
            )
            if outcome.live is not None:
                children[unit] = dict(outcome.live)
            else:
                children.pop(unit, None)
            if outcome.failure is not None:
                failures.append(outcome.failure)
            requeue_after = _earliest(requeue_after, outcome.retry_in)
            if outcome.transient is not None:
                transient.append(outcome.transient)

        if len(memory.matched) > len(plan.children):
            current = {child.name for child in plan.children.values()}
            for name in [n for n in memory.matched if n not in current]:
                del memory.matched[name]

        wait, errors = await self._delete_vanished(obj, memory, owned, units, log=log)
        requeue_after = _earliest(requeue_after, wait)
        transient.extend(errors)

        obj, prune_error = await self._prune_templates(obj, grid, log=log)
        if prune_error is not None:
            transient.append(prune_error)

        status = build_status(
            child_kind=self.kind.child_kind,
            generation=grid.metadata.generation,
            units=units,
            children=children,
            failures=failures,
            previous=obj.get("status"),
            now=self._clock.now(),
            grid_uniq_key=spec_key,
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

        if transient:
            raise TransientWriteError("; ".join(str(err) for err in transient))
        return Result(requeue_after=requeue_after)

    async def _invalid(
        self, obj: Mapping[str, Any], validation: GridValidation, *, log: FilteringBoundLogger
    ) -> None:
        """Report an invalid spec: condition, Warning Event, status write when changed."""
        message = "; ".join(validation.messages()) or "the grid could not be parsed"
        self._recorder.event(obj, type=WARNING, reason=reasons.INVALID_SPEC, message=message)
        log.warning("Invalid spec", error=message)
        metadata = obj.get("metadata") or {}
        spec = obj.get("spec")
        key = spec.get("gridUniqKey") if isinstance(spec, Mapping) else None
        units = self._units.units(key) if isinstance(key, str) and is_qualified_name(key) else None
        children: dict[str, dict[str, Any]] = {}
        if units:
            owned = self._owned_children(
                str(metadata.get("namespace") or ""), str(metadata.get("uid") or "")
            )
            children = self._by_unit(owned, units)
        generation = metadata.get("generation")
        status = build_status(
            child_kind=self.kind.child_kind,
            generation=generation if isinstance(generation, int) else None,
            units=units or (),
            children=children,
            failures=[cond.UnitFailure("", cond.INVALID_SPEC, cond.VALIDATION_FAILED, message)],
            previous=obj.get("status") if isinstance(obj.get("status"), Mapping) else None,
            now=self._clock.now(),
            grid_uniq_key=key if isinstance(key, str) else "",
        )
        status = keep_federated(previous=obj.get("status"), status=status)
        if status_changed(obj.get("status") or None, status):
            await update_status(
                writer=self._writer,
                expectations=self._grid_writes,
                recorder=self._recorder,
                grid=obj,
                status=status,
                log=log,
            )

    async def _delete_vanished(
        self,
        grid: Mapping[str, Any],
        memory: GridMemory,
        owned: list[dict[str, Any]],
        units: frozenset[str],
        *,
        log: FilteringBoundLogger,
    ) -> tuple[float | None, list[ApiError]]:
        """Delete children of vanished units whose grace period is over.

        Returns the wait until the next grace period ends, and transient errors.
        """
        now = self._clock.monotonic()
        still_gone: dict[str, float] = {}
        wait: float | None = None
        errors: list[ApiError] = []
        for child in owned:
            metadata = child.get("metadata") or {}
            unit = (metadata.get("labels") or {}).get(NODEUNIT)
            if unit is None or unit in units or deleting(child):
                continue  # orphaned by hand, current, or already going
            name = str(metadata.get("name") or "")
            namespace = str(metadata.get("namespace") or "")
            what = f"{self.kind.child_kind} {name} of vanished NodeUnit {unit}"
            since = memory.vanished.get(unit)
            if since is None:
                since = now
                if self._grace_period > 0:
                    self._recorder.event(
                        grid,
                        type=NORMAL,
                        reason=reasons.DELETION_SCHEDULED,
                        message=f"{what} will be deleted in {self._grace_period:g}s",
                    )
            still_gone[unit] = since
            remaining = self._grace_period - (now - since)
            if remaining > 0:
                wait = _earliest(wait, remaining)
                continue
            try:
                await self._writer.delete_child(
                    namespace=namespace, name=name, uid=str(metadata.get("uid") or "")
                )
            except ApiError as err:
                if is_not_found(err):
                    continue  # gone already
                if is_retryable_write(err):
                    # 409: replaced by another object (uid precondition) or an API server
                    # that gave up; either way the next attempt reads the cache again.
                    errors.append(err)
                    continue
                self._recorder.event(
                    grid,
                    type=WARNING,
                    reason=reasons.DELETE_FAILED,
                    message=f"{what}: {err.status} {err.reason}: {err.message}",
                )
                wait = _earliest(wait, DEFAULT_RETRY_REJECTED_AFTER)
                continue
            self._child_writes.deleted(f"{namespace}/{name}", before=child)
            self._recorder.event(
                grid, type=NORMAL, reason=reasons.DELETED, message=f"Deleted {what}"
            )
            log.info("Deleted child", child=name, nodeunit=unit)
        memory.vanished = still_gone
        return wait, errors

    async def _prune_templates(
        self,
        obj: dict[str, Any],
        grid: DeploymentGrid | StatefulSetGrid,
        *,
        log: FilteringBoundLogger,
    ) -> tuple[dict[str, Any], ApiError | None]:
        """autoDeleteUnusedTemplate: remove pool entries nothing refers to (one merge patch).

        Returns the grid as it is now (the patch's answer when there was one), and the error
        to retry with backoff when the patch failed in a way that may pass (a 409 included:
        the grid changed since we read it, and a requeue reads it again).
        """
        patch = unused_pool_patch(grid.spec, resource_version=grid.metadata.resource_version)
        if patch is None:
            return obj, None
        unused = ", ".join(sorted(unused_pool_entries(grid.spec)))
        try:
            after = await self._writer.patch_spec(
                namespace=grid.metadata.namespace, name=grid.metadata.name, patch=patch
            )
        except ApiError as err:
            if is_not_found(err):
                return obj, None  # the grid went: nothing to prune
            if is_conflict(err):
                # The grid changed since we read it (or the server gave up): read it again.
                log.debug("Template pruning conflicted, will retry", error=str(err))
                return obj, err
            self._recorder.event(
                obj,
                type=WARNING,
                reason=reasons.PRUNE_FAILED,
                message=f"could not remove unused templatePool entries {unused}: {err}",
            )
            return obj, (err if is_retryable(err) else None)
        self._grid_writes.wrote(
            f"{grid.metadata.namespace}/{grid.metadata.name}", before=obj, after=after
        )
        self._recorder.event(
            obj,
            type=NORMAL,
            reason=reasons.TEMPLATES_PRUNED,
            message=f"Removed unused templatePool entries: {unused}",
        )
        log.info("Removed unused templatePool entries", entries=unused)
        return after, None
