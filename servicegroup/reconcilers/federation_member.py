"""Member side of multi-cluster distribution: local grids from hub copies, status back.

Owns: `MemberReconciler` (one reconcile per local grid, key `fed_request(target namespace,
kind, name)`) and `UnitKeys` (the node label keys the current copies use, so a node event
re-examines only the copies whose key's NodeUnits changed).

One reconcile, with the copy read from the current hub session (HubLink) and the local grid
from the local cache (federation_render.py says which grid is which):
1. No session, or not synced yet: nothing (a ready session enqueues everything). A member
   never deletes anything because it cannot see the hub.
2. No copy for this local grid: a local grid we made (`superedge.io/federated-from`) is an
   orphan and is deleted. Grids we did not make are never touched.
3. The copy is being deleted: delete the local grid, then remove our finalizer (and upstream's
   `dis`) from the copy. Every path that ends a copy releases it: here, and on the hub side
   for copies outside cluster namespaces; so no copy is left Terminating by us.
4. No local node carries a non-empty value of the copy's `gridUniqKey`: no local grid (deleted
   if we made one); the copy's status says `NoNodeUnits`.
5. Otherwise: our finalizer is put on the copy first (so the local grid can never outlive an
   unnoticed deletion), then the local grid is applied when it does not match (server-side
   apply, field manager `servicegroup-federation`, force: local edits of fields set by the hub
   are reverted; fields others added are kept). A name held by a grid we did not make is
   refused (`LocalGridConflict`); a rejected apply is reported (`LocalGridRejected`) and not
   repeated until the copy changes or `retry_rejected_after` passes.
6. Status: the local grid's status is written to the copy's status subresource (one JSON patch
   replacing it), only when it changed.

Hub requests that get no answer report to the session (`unreachable()`, which probes and
re-enqueues everything when the hub is back) and raise for a rate-limited retry; other hub
refusals are reported as `HubRequestFailed`.

Invariants: reads only caches (plus our own writes, through `WriteExpectations`), except one
GET before creating a local grid, to refuse a name taken by a grid we cannot see in our
filtered cache; no write and no Event when nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.controller import Request, Result
from servicegroup.events import NORMAL, WARNING
from servicegroup.grid import conditions as cond
from servicegroup.grid.compare import hash_of
from servicegroup.grid.nodeunits import NodeUnitIndex
from servicegroup.grid.status import status_changed
from servicegroup.informers.store import DeletedFinalStateUnknown
from servicegroup.informers.transforms import strip_managed_fields
from servicegroup.kube.errors import ApiError, is_conflict, is_not_found, is_retryable
from servicegroup.reconcilers import federation_reasons as reasons
from servicegroup.reconcilers.children import EventSink, WriteClient, WriteExpectations
from servicegroup.reconcilers.federation_metrics import (
    OP_APPLY,
    OP_DELETE,
    OP_FINALIZER,
    OP_STATUS,
    SIDE_MEMBER,
    FederationMetrics,
)
from servicegroup.reconcilers.federation_render import (
    FED_KINDS,
    FIELD_MANAGER,
    FINALIZER,
    FedClient,
    FedKind,
    applied_matches,
    deleting,
    fed_request,
    finalizers_of,
    finalizers_patch,
    generation_of,
    grid_uniq_key,
    is_local,
    made_by_federation,
    name_of,
    namespace_of,
    parse_fed_request,
    render_local,
    target_namespace,
    uid_of,
    without_our_finalizers,
)
from servicegroup.reconcilers.federation_status import (
    LOCAL_GRID_CONFLICT,
    LOCAL_GRID_REJECTED,
    member_status,
)
from servicegroup.reconcilers.gridindex import Store

Obj = dict[str, Any]
DEFAULT_RETRY_REJECTED_AFTER = 300.0


class UnitKeys:
    """Node label keys used by the current session's copies, and node events -> copies.

    Feeds `index` (the member's NodeUnitIndex) with holders `kind/name` per copy, so node
    events report exactly the keys some copy uses.
    """

    def __init__(self, *, index: NodeUnitIndex) -> None:
        self.index = index
        self._key_of: dict[str, str] = {}

    def seen(self, kind: FedKind, copy: Mapping[str, Any]) -> None:
        holder = f"{kind.short}/{name_of(copy)}"
        key = grid_uniq_key(copy)
        old = self._key_of.get(holder)
        if old == key:
            return
        if old is not None:
            self.index.untrack(old, holder=holder)
            del self._key_of[holder]
        if key:
            self._key_of[holder] = key
            self.index.track(key, holder=holder)

    def gone(self, kind: FedKind, name: str) -> None:
        holder = f"{kind.short}/{name}"
        old = self._key_of.pop(holder, None)
        if old is not None:
            self.index.untrack(old, holder=holder)

    def clear(self) -> None:
        for holder, key in self._key_of.items():
            self.index.untrack(key, holder=holder)
        self._key_of.clear()


@dataclass(frozen=True, slots=True)
class _Rejection:
    desired_hash: str
    at: float
    problem: cond.ConditionSpec


class Session(Protocol):
    """servicegroup.reconcilers.federation_link.HubSession, as the member uses it."""

    @property
    def namespace(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    @property
    def client(self) -> WriteClient: ...

    @property
    def expectations(self) -> Mapping[str, WriteExpectations]: ...

    def copy(self, kind: FedKind, name: str) -> Obj | None: ...

    def copies(self, kind: FedKind) -> list[Obj]: ...

    def unreachable(self, err: BaseException) -> None: ...

    def request_failed(self, err: ApiError) -> None: ...


class SessionSource(Protocol):
    """servicegroup.reconcilers.federation_link.HubLink: the current session, if any."""

    @property
    def session(self) -> Session | None: ...


class LocalStores(Protocol):
    """Per grid kind: the local grids made from copies (label target-namespace, not copies)."""

    def locals(self, kind: FedKind) -> Store: ...


class MemberReconciler:
    """Keeps one local grid in line with its hub copy, and the copy's status in line with it."""

    def __init__(
        self,
        *,
        link: SessionSource,
        stores: LocalStores,
        units: NodeUnitIndex,
        client: FedClient,
        recorder: EventSink,
        clock: Clock,
        metrics: FederationMetrics,
        retry_rejected_after: float = DEFAULT_RETRY_REJECTED_AFTER,
    ) -> None:
        self._link = link
        self._stores = stores
        self._units = units
        self._client = client
        self._recorder = recorder
        self._clock = clock
        self._metrics = metrics
        self._retry_rejected_after = retry_rejected_after
        self._local_writes = {k.kind: WriteExpectations(clock=clock) for k in FED_KINDS}
        self._rejected: dict[tuple[str, str, str], _Rejection] = {}  # (kind, ns, name)

    def session_ended(self) -> None:
        self._rejected.clear()

    def requests_for_all(self, session: Session | None) -> list[Request]:
        """Every local grid we know and every copy of `session`: what a new session checks."""
        requests: list[Request] = []
        for kind in FED_KINDS:
            for local in self._stores.locals(kind).list():
                requests.append(fed_request(namespace_of(local), kind, name_of(local)))
            if session is not None:
                for copy in session.copies(kind):
                    target = target_namespace(copy)
                    if target:
                        requests.append(fed_request(target, kind, name_of(copy)))
        return requests

    async def reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        try:
            return await self._reconcile(request, log=log)
        except ApiError as err:
            if not is_conflict(err):
                raise
            # A finalizer patch raced another change of the copy: the newer copy is on its
            # way through the watch; try again then (no error: nothing is wrong).
            log.debug("Copy changed meanwhile, will retry", error=str(err))
            return Result(requeue=True)

    async def _reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        kind, name = parse_fed_request(request)
        local_ns = request.namespace
        session = self._link.session
        if session is None or not session.ready:
            return Result()
        log = log.bind(hub_namespace=session.namespace)
        copy = session.copy(kind, name)
        if copy is not None and target_namespace(copy) != local_ns:
            copy = None  # that copy is about a grid in another namespace: not this key's
        local_key = f"{local_ns}/{name}"
        local = self._local_writes[kind.kind].view(
            local_key, self._stores.locals(kind).get(local_key)
        )
        if local is not None and not is_local(local):
            local = None

        if copy is None:
            if local is not None and made_by_federation(local) and not deleting(local):
                await self._delete_local(kind, local, why="its hub copy is gone", log=log)
            return Result()

        if deleting(copy):
            if local is not None and not deleting(local):
                await self._delete_local(kind, local, why="its hub copy is being deleted", log=log)
            await self._release(session, kind, copy, log=log)
            return Result()

        key = grid_uniq_key(copy)
        if not key or not self._units.units(key):
            if local is not None and not deleting(local):
                await self._delete_local(kind, local, why="no node carries its key", log=log)
            await self._write_copy_status(session, kind, copy, None, in_sync=True, log=log)
            return Result()

        copy = await self._hold(session, kind, copy, log=log)
        if copy is None:
            return Result()
        desired = render_local(copy, hub_namespace=session.namespace)
        if local is None:
            conflict = await self._foreign(kind, local_ns, name)
            if conflict:
                detail = f"{kind.kind} {local_ns}/{name} exists and was not made by federation"
                self._report_local(kind, local_ns, name, reasons.LOCAL_GRID_CONFLICT, detail)
                problem = cond.ConditionSpec(cond.READY, "False", LOCAL_GRID_CONFLICT, detail)
                await self._write_copy_status(
                    session, kind, copy, None, in_sync=True, problem=problem, log=log
                )
                return Result()
        elif deleting(local):
            return Result()  # its deletion event brings us back to create it again

        if local is None or not applied_matches(local, desired):
            outcome = await self._apply_local(kind, desired, local, log=log)
            if isinstance(outcome, _Rejection):
                await self._write_copy_status(
                    session, kind, copy, None, in_sync=True, problem=outcome.problem, log=log
                )
                elapsed = self._clock.monotonic() - outcome.at
                return Result(requeue_after=max(self._retry_rejected_after - elapsed, 0.001))
            local = outcome
        in_sync = applied_matches(local, desired) and _status_current(local)
        await self._write_copy_status(session, kind, copy, local, in_sync=in_sync, log=log)
        return Result()

    # ------------------------------------------------------------------ local grid

    async def _foreign(self, kind: FedKind, namespace: str, name: str) -> bool:
        """Does a grid we cannot see in our cache (not made from a copy) hold the name?"""
        try:
            existing = await self._client.get(kind.ref, name, namespace=namespace)
        except ApiError as err:
            if is_not_found(err):
                return False
            raise
        return not is_local(existing)

    def _report_local(
        self, kind: FedKind, namespace: str, name: str, reason: str, detail: str
    ) -> None:
        involved = {
            "apiVersion": kind.ref.api_version,
            "kind": kind.kind,
            "metadata": {"name": name, "namespace": namespace},
        }
        self._recorder.event(involved, type=WARNING, reason=reason, message=detail)
        self._metrics.failed(side=SIDE_MEMBER, reason=reason)

    async def _apply_local(
        self,
        kind: FedKind,
        desired: Mapping[str, Any],
        live: Obj | None,
        *,
        log: FilteringBoundLogger,
    ) -> Obj | _Rejection:
        namespace, name = namespace_of(desired), name_of(desired)
        desired_hash = hash_of(desired) or ""
        now = self._clock.monotonic()
        memory_key = (kind.kind, namespace, name)
        rejection = self._rejected.get(memory_key)
        if rejection is not None:
            if (
                rejection.desired_hash == desired_hash
                and now - rejection.at < self._retry_rejected_after
            ):
                return rejection
            del self._rejected[memory_key]
        self._metrics.wrote(side=SIDE_MEMBER, kind=kind.kind, operation=OP_APPLY)
        try:
            applied = await self._client.apply(kind.ref, desired, field_manager=FIELD_MANAGER)
        except ApiError as err:
            if is_retryable(err):
                raise
            detail = f"{kind.kind} {namespace}/{name} was rejected: {err}"
            self._report_local(kind, namespace, name, reasons.LOCAL_GRID_REJECTED, detail)
            log.warning("Local grid rejected", error=str(err))
            rejection = _Rejection(
                desired_hash,
                now,
                cond.ConditionSpec(cond.READY, "False", LOCAL_GRID_REJECTED, detail),
            )
            self._rejected[memory_key] = rejection
            return rejection
        applied = strip_managed_fields(applied)
        self._local_writes[kind.kind].wrote(f"{namespace}/{name}", before=live, after=applied)
        created = live is None
        self._recorder.event(
            applied,
            type=NORMAL,
            reason=reasons.LOCAL_GRID_CREATED if created else reasons.LOCAL_GRID_UPDATED,
            message="Created from its hub copy" if created else "Updated from its hub copy",
        )
        log.info("Created local grid" if created else "Updated local grid")
        return applied

    async def _delete_local(
        self, kind: FedKind, local: Obj, *, why: str, log: FilteringBoundLogger
    ) -> None:
        namespace, name = namespace_of(local), name_of(local)
        self._metrics.wrote(side=SIDE_MEMBER, kind=kind.kind, operation=OP_DELETE)
        try:
            await self._client.delete(
                kind.ref,
                name,
                namespace=namespace,
                propagation_policy="Background",
                preconditions={"uid": uid_of(local)},
            )
        except ApiError as err:
            if is_not_found(err) or is_conflict(err):
                return
            raise
        self._local_writes[kind.kind].deleted(f"{namespace}/{name}", before=local)
        self._rejected.pop((kind.kind, namespace, name), None)
        self._recorder.event(
            local, type=NORMAL, reason=reasons.LOCAL_GRID_DELETED, message=f"Deleted: {why}"
        )
        log.info("Deleted local grid", why=why)

    # ------------------------------------------------------------------ hub writes

    async def _hub_call(self, session: Session, call: Callable[[], Any]) -> Any:
        """Run one hub request; report lack of answers and refusals to the session."""
        try:
            return await call()
        except ApiError as err:
            if is_retryable(err):
                session.unreachable(err)
            elif not (is_not_found(err) or is_conflict(err)):
                session.request_failed(err)
            raise

    async def _hold(
        self, session: Session, kind: FedKind, copy: Obj, *, log: FilteringBoundLogger
    ) -> Obj | None:
        """Put our finalizer on the copy (the copy as it is now; None if it is gone)."""
        if FINALIZER in finalizers_of(copy):
            return copy
        finalizers = [*finalizers_of(copy), FINALIZER]
        name = name_of(copy)
        self._metrics.wrote(side=SIDE_MEMBER, kind=kind.kind, operation=OP_FINALIZER)

        async def patch() -> dict[str, Any]:
            return await session.client.patch(
                kind.ref,
                name,
                finalizers_patch(copy, finalizers),
                patch_type="merge",
                namespace=session.namespace,
                field_manager=FIELD_MANAGER,
            )

        try:
            after = await self._hub_call(session, patch)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        after = strip_managed_fields(after)
        session.expectations[kind.kind].wrote(
            f"{session.namespace}/{name}", before=copy, after=after
        )
        log.debug("Finalizer added to the hub copy")
        return after

    async def _release(
        self, session: Session, kind: FedKind, copy: Obj, *, log: FilteringBoundLogger
    ) -> None:
        finalizers = without_our_finalizers(copy)
        if finalizers is None:
            return
        name = name_of(copy)
        self._metrics.wrote(side=SIDE_MEMBER, kind=kind.kind, operation=OP_FINALIZER)

        async def patch() -> dict[str, Any]:
            return await session.client.patch(
                kind.ref,
                name,
                finalizers_patch(copy, finalizers),
                patch_type="merge",
                namespace=session.namespace,
                field_manager=FIELD_MANAGER,
            )

        try:
            after = await self._hub_call(session, patch)
        except ApiError as err:
            if is_not_found(err):
                return
            raise
        session.expectations[kind.kind].wrote(
            f"{session.namespace}/{name}", before=copy, after=strip_managed_fields(after)
        )
        log.info("Released the hub copy")

    async def _write_copy_status(
        self,
        session: Session,
        kind: FedKind,
        copy: Obj,
        local: Obj | None,
        *,
        in_sync: bool,
        problem: cond.ConditionSpec | None = None,
        log: FilteringBoundLogger,
    ) -> None:
        status = member_status(
            copy,
            local,
            has_states=kind.has_states,
            in_sync=in_sync,
            problem=problem,
            now=self._clock.now(),
        )
        previous = copy.get("status")
        if not status_changed(previous if isinstance(previous, Mapping) else None, status):
            return
        name = name_of(copy)
        self._metrics.wrote(side=SIDE_MEMBER, kind=kind.kind, operation=OP_STATUS)

        async def patch() -> dict[str, Any]:
            return await session.client.patch(
                kind.ref,
                name,
                [{"op": "add", "path": "/status", "value": status}],
                patch_type="json",
                namespace=session.namespace,
                subresource="status",
                field_manager=FIELD_MANAGER,
            )

        try:
            after = await self._hub_call(session, patch)
        except ApiError as err:
            if is_not_found(err):
                return
            if not is_retryable(err):
                self._metrics.failed(side=SIDE_MEMBER, reason=reasons.STATUS_SYNC_FAILED)
            raise
        session.expectations[kind.kind].wrote(
            f"{session.namespace}/{name}", before=copy, after=strip_managed_fields(after)
        )
        log.debug("Copy status updated")


def _status_current(local: Mapping[str, Any]) -> bool:
    """The local grid's status describes its current generation."""
    status = local.get("status")
    observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
    generation = generation_of(local)
    return generation is None or observed == generation


def copy_event_request(
    kind: FedKind, obj: Mapping[str, Any] | DeletedFinalStateUnknown
) -> Request | None:
    """A copy event -> the key of the local grid it is about (None without a target)."""
    copy = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
    target = target_namespace(copy)
    return fed_request(target, kind, name_of(copy)) if target else None
