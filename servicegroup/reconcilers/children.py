"""Children: who controls them, how they are cached, written, and remembered after a write.

Owns:
- `grid_controller_of` / `CHILD_TRANSFORM`: a child's controlling grid (group `superedge.io`
  and a grid kind), and the informer transform that keeps whole objects only for children a
  grid controls (everything else of the child kinds is trimmed to metadata: enough to see
  that a name is taken and by whom, DESIGN.md section 4 "Memory").
- `GridWriter`: the only writes the grid reconcilers make, each counted in
  `servicegroup_child_writes{kind,operation}`: server-side apply of a child (field manager
  `servicegroup-controller`, force), delete of a child (uid precondition, so a newer object
  of the same name is never deleted), JSON patch of a grid's status subresource, merge patch
  of a grid's spec (autoDeleteUnusedTemplate, with a resourceVersion precondition).
- `WriteExpectations`: what we wrote and the informer has not shown yet.
- `ChildSync`: one desired child brought about (sample-controller's order): refuse a name
  this grid does not control (ChildConflict), skip a child that matches (a positive answer
  is remembered per child by uid, resourceVersion and desired hash), apply the rest,
  report a rejected apply on its unit only (ApplyFailed) and do not repeat it until the
  desired child, the live child or `retry_rejected_after` says it may now pass. A transient
  failure (5xx, 429, 409, transport) is retried with backoff and reported (ApplyFailed, still
  retrying) only once it has failed `report_transient_after` times in a row: a blip is not a
  condition, but an apply the API server keeps failing (it answers 500 to an applied field
  its schema lacks) must not leave the grid looking merely "not ready".
- `ConflictWaiters`: which grid waits for a foreign object of a child's name to go away, so
  the child informer's handler can wake it when it does.

Why expectations: a reconcile reads only informer caches, and our own write reaches the cache
a moment later, through the watch. A reconcile in between (another child's event, our status
write coming back) would see the old object and write again. `WriteExpectations.view()`
answers with the server's response to our write while the cache still shows the object as it
was before the write (same resourceVersion, or still absent), for at most `ttl` seconds; as
soon as the cache shows anything else it is the truth again. This is the role of
kube-controller-manager's ControllerExpectations, keyed by object instead of by count.

Invariants: nothing here mutates a cached object; responses are stripped of managedFields
before being remembered; expectations are synchronous state (no awaits between a read and
the update it depends on).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.api.models import GRID_TYPES, GROUP
from servicegroup.clock import Clock
from servicegroup.controller import Request
from servicegroup.events import NORMAL, WARNING
from servicegroup.grid import conditions as cond
from servicegroup.grid.compare import controlled_by, hash_of, matches
from servicegroup.grid.labels import FIELD_MANAGER
from servicegroup.informers.transforms import compose, metadata_only, strip_managed_fields
from servicegroup.kube.errors import ApiError, is_retryable_write
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics
from servicegroup.reconcilers import reasons

# Operation label values of servicegroup_child_writes.
OP_APPLY = "apply"
OP_DELETE = "delete"
OP_STATUS = "status"
OP_SPEC = "spec"


def grid_controller_of(obj: Mapping[str, Any], *, kind: str | None = None) -> Mapping[str, Any]:
    """The controller ownerReference of `obj` when it points to a grid (of `kind`), else {}."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if not isinstance(ref, Mapping) or ref.get("controller") is not True:
            continue
        api_version = str(ref.get("apiVersion") or "")
        ref_kind = ref.get("kind")
        if api_version.partition("/")[0] != GROUP or ref_kind not in GRID_TYPES:
            return {}
        if kind is not None and ref_kind != kind:
            return {}
        return ref
    return {}


def trim_uncontrolled(obj: dict[str, Any]) -> dict[str, Any]:
    """Whole object for a grid's child, metadata only for anything else."""
    return obj if grid_controller_of(obj) else metadata_only(obj)


# strip first: the metadata of trimmed objects is then free of managedFields too.
CHILD_TRANSFORM = compose(strip_managed_fields, trim_uncontrolled)


def resource_version(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value is not None else None


def uid_of(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    value = (obj.get("metadata") or {}).get("uid")
    return str(value) if value else None


# ------------------------------------------------------------------------------ writes


class WriteClient(Protocol):
    """The API calls the reconcilers make (servicegroup.kube.client.KubeClient fits)."""

    async def apply(
        self,
        ref: ResourceRef,
        body: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]: ...

    async def patch(
        self,
        ref: ResourceRef,
        name: str,
        body: Any,
        *,
        patch_type: Literal["merge", "strategic", "json"],
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> dict[str, Any]: ...

    async def delete(
        self,
        ref: ResourceRef,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        preconditions: Mapping[str, str] | None = None,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]: ...


class GridWriter:
    """Writes on behalf of the reconciler of one grid kind (`grid_kind` labels the metric)."""

    def __init__(
        self,
        *,
        client: WriteClient,
        metrics: Metrics,
        grid_kind: str,
        grid_ref: ResourceRef,
        child_ref: ResourceRef,
    ) -> None:
        self._client = client
        self._grid_ref = grid_ref
        self._child_ref = child_ref
        writes = metrics.child_writes
        # Series exist from the start, as every other counter of ours.
        self._applies = writes.labels(grid_kind, OP_APPLY)
        self._deletes = writes.labels(grid_kind, OP_DELETE)
        self._statuses = writes.labels(grid_kind, OP_STATUS)
        self._specs = writes.labels(grid_kind, OP_SPEC)

    async def apply_child(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (creates when absent); the live object, without managedFields."""
        self._applies.inc()
        live = await self._client.apply(self._child_ref, desired, field_manager=FIELD_MANAGER)
        return strip_managed_fields(live)

    async def delete_child(self, *, namespace: str, name: str, uid: str) -> None:
        """Delete exactly the object with `uid` (a same-named successor is left alone)."""
        self._deletes.inc()
        await self._client.delete(
            self._child_ref,
            name,
            namespace=namespace,
            propagation_policy="Background",
            preconditions={"uid": uid},
        )

    async def write_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the whole status in one request (removed units disappear with it)."""
        self._statuses.inc()
        live = await self._client.patch(
            self._grid_ref,
            name,
            [{"op": "add", "path": "/status", "value": status}],
            patch_type="json",
            namespace=namespace,
            subresource="status",
            field_manager=FIELD_MANAGER,
        )
        return strip_managed_fields(live)

    async def patch_spec(
        self, *, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the grid (autoDeleteUnusedTemplate); `patch` carries its precondition."""
        self._specs.inc()
        live = await self._client.patch(
            self._grid_ref,
            name,
            patch,
            patch_type="merge",
            namespace=namespace,
            field_manager=FIELD_MANAGER,
        )
        return strip_managed_fields(live)


# ------------------------------------------------------------------------ expectations


@dataclass(frozen=True, slots=True)
class _Expected:
    before_rv: str | None  # what the cache showed when we wrote (None: absent)
    after: dict[str, Any] | None  # the server's answer (None: we deleted it)
    at: float  # monotonic time of the write


class WriteExpectations:
    """Objects we wrote, by cache key, until the informer shows the write (or `ttl` passes)."""

    def __init__(self, *, clock: Clock, ttl: float = 30.0, sweep_every: int = 256) -> None:
        self._clock = clock
        self._ttl = ttl
        self._sweep_every = sweep_every
        self._writes_since_sweep = 0
        self._expected: dict[str, _Expected] = {}

    def __len__(self) -> int:
        return len(self._expected)

    def wrote(self, key: str, *, before: Mapping[str, Any] | None, after: dict[str, Any]) -> None:
        """We wrote `key`, last seen as `before` (from `view`); the server answered `after`."""
        self._remember(key, _Expected(self._cached_rv(key, before), after, self._clock.monotonic()))

    def deleted(self, key: str, *, before: Mapping[str, Any]) -> None:
        """We deleted `key`, last seen as `before` (from `view`)."""
        self._remember(key, _Expected(self._cached_rv(key, before), None, self._clock.monotonic()))

    def _cached_rv(self, key: str, before: Mapping[str, Any] | None) -> str | None:
        # `before` may itself be our previous write, which the cache has not shown yet: the
        # cache still holds what it held then, so that is what to wait to see change.
        previous = self._expected.get(key)
        if previous is not None and previous.after is before:
            return previous.before_rv
        return resource_version(before)

    def forget(self, key: str) -> None:
        self._expected.pop(key, None)

    def view(self, key: str, cached: dict[str, Any] | None) -> dict[str, Any] | None:
        """The freshest known state of `key`, given what the cache shows now."""
        expected = self._expected.get(key)
        if expected is None:
            return cached
        fresh = self._clock.monotonic() - expected.at < self._ttl
        if fresh and resource_version(cached) == expected.before_rv:
            return expected.after
        # The cache moved on (or we waited long enough): it is the truth again.
        del self._expected[key]
        return cached

    def _remember(self, key: str, expected: _Expected) -> None:
        self._expected[key] = expected
        self._writes_since_sweep += 1
        if self._writes_since_sweep >= self._sweep_every:
            self._writes_since_sweep = 0
            now = self._clock.monotonic()
            stale = [k for k, e in self._expected.items() if now - e.at >= self._ttl]
            for k in stale:
                del self._expected[k]


# ------------------------------------------------------------------------ one child


class EventSink(Protocol):
    """servicegroup.events.EventRecorder, as the reconcilers use it."""

    def event(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None: ...


# metav1.Condition's reason syntax: an API error reason that does not fit is not used as one.
_CONDITION_REASON = re.compile("[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def generation_of(obj: Mapping[str, Any] | None) -> int | None:
    if obj is None:
        return None
    value = (obj.get("metadata") or {}).get("generation")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An apply the API server refused for a reason that retrying will not fix by itself."""

    desired_hash: str | None
    live_uid: str | None  # the child the apply targeted (None: it did not exist)
    live_generation: int | None
    failure: cond.UnitFailure
    at: float

    def still_applies(
        self, *, desired_hash: str | None, live: Mapping[str, Any] | None, now: float, ttl: float
    ) -> bool:
        return (
            self.desired_hash == desired_hash
            and self.live_uid == uid_of(live)
            and self.live_generation == generation_of(live)
            and now - self.at < ttl
        )


class MatchKey(NamedTuple):
    """What a positive match check depended on: the live child's identity and version, the
    grid's uid and the hash of the desired child. The same key gives the same answer."""

    uid: str
    resource_version: str
    owner_uid: str
    desired_hash: str


@dataclass(slots=True)
class GridMemory:
    """What a reconciler remembers about one grid between reconciles (private, mutable).

    Reset when the grid is recreated under the same name (another uid) or goes away.
    """

    uid: str
    vanished: dict[str, float] = field(default_factory=dict)  # unit -> monotonic first seen gone
    rejected: dict[str, Rejection] = field(default_factory=dict)  # child name -> rejection
    # child name -> transient apply failures in a row (cleared by a success or a match)
    failing: dict[str, int] = field(default_factory=dict)
    # child name -> the last positive match check. An object's content is fixed by its uid
    # and resourceVersion (the informer transform is deterministic), and the desired child
    # by its applied hash, so a hit is exactly `matches(...) is True` without the walk.
    matched: dict[str, MatchKey] = field(default_factory=dict)


class ChildOutcome(NamedTuple):
    """The result of bringing about one desired child."""

    live: Mapping[str, Any] | None  # our child as it is now (for status), if there is one
    failure: cond.UnitFailure | None = None  # reported in status
    retry_in: float | None = None  # try again this much later (a rejected apply)
    transient: ApiError | None = None  # retry with backoff (5xx, 429, 409, transport)


class ConflictWaiters:
    """Child cache key -> the grid that found that name taken by an object it does not control."""

    def __init__(self) -> None:
        self._waiting: dict[str, Request] = {}

    def wait(self, key: str, request: Request) -> None:
        self._waiting[key] = request

    def release(self, key: str, request: Request) -> None:
        if self._waiting.get(key) == request:
            del self._waiting[key]

    def waiting(self, key: str) -> Request | None:
        return self._waiting.get(key)

    def release_all(self, request: Request) -> None:
        """The grid is gone: it waits for nothing any more."""
        for key in [k for k, r in self._waiting.items() if r == request]:
            del self._waiting[key]

    def __len__(self) -> int:
        return len(self._waiting)


# Transient apply failures in a row after which the unit reports ApplyFailed (while retrying).
TRANSIENT_REPORT_AFTER = 5


class ChildSync:
    """Brings about one desired child of a grid (see the module docstring for the order)."""

    def __init__(
        self,
        *,
        writer: GridWriter,
        recorder: EventSink,
        clock: Clock,
        expectations: WriteExpectations,
        waiters: ConflictWaiters,
        child_kind: str,
        retry_rejected_after: float,
        report_transient_after: int = TRANSIENT_REPORT_AFTER,
    ) -> None:
        self._writer = writer
        self._recorder = recorder
        self._clock = clock
        self._expectations = expectations
        self._waiters = waiters
        self._child_kind = child_kind
        self._retry_rejected_after = retry_rejected_after
        self._report_transient_after = report_transient_after

    async def sync(
        self,
        *,
        grid: Mapping[str, Any],
        request: Request,
        memory: GridMemory,
        unit: str,
        desired: Mapping[str, Any],
        live: Mapping[str, Any] | None,
        log: FilteringBoundLogger,
    ) -> ChildOutcome:
        """Make the child `desired` exist as rendered; `live` is its freshest known state."""
        name = str(desired["metadata"]["name"])
        key = f"{request.namespace}/{name}"
        child = f"{self._child_kind} {name}"
        where = f"NodeUnit {unit}: " if unit else ""
        if live is not None and not controlled_by(live, memory.uid):
            self._waiters.wait(key, request)
            detail = f"{child} exists and is not controlled by this grid"
            self._recorder.event(
                grid, type=WARNING, reason=reasons.CHILD_CONFLICT, message=where + detail
            )
            return ChildOutcome(
                None, cond.UnitFailure(unit, cond.CHILD_CONFLICT, cond.NOT_CONTROLLED, detail)
            )
        self._waiters.release(key, request)
        if live is not None and deleting(live):
            # Its delete event will bring us back to create it again.
            return ChildOutcome(None)
        if live is not None and _matches_memo(memory, name, live, desired):
            memory.rejected.pop(name, None)
            memory.failing.pop(name, None)
            return ChildOutcome(live)

        now = self._clock.monotonic()
        desired_hash = hash_of(desired)
        rejection = memory.rejected.get(name)
        if rejection is not None:
            if rejection.still_applies(
                desired_hash=desired_hash, live=live, now=now, ttl=self._retry_rejected_after
            ):
                remaining = self._retry_rejected_after - (now - rejection.at)
                return ChildOutcome(live, rejection.failure, retry_in=max(remaining, 0.001))
            del memory.rejected[name]

        try:
            applied = await self._writer.apply_child(desired)
        except ApiError as err:
            reason = err.reason if _CONDITION_REASON.fullmatch(err.reason) else cond.APPLY_ERROR
            if is_retryable_write(err):
                log.info("Apply failed, will retry", child=name, nodeunit=unit, error=str(err))
                in_a_row = memory.failing[name] = memory.failing.get(name, 0) + 1
                if in_a_row < self._report_transient_after:
                    return ChildOutcome(live, transient=err)
                detail = f"{child}: {err.status} {err.reason}: {err.message} (retrying)"
                if in_a_row == self._report_transient_after:
                    self._recorder.event(
                        grid, type=WARNING, reason=reasons.APPLY_FAILED, message=where + detail
                    )
                failure = cond.UnitFailure(unit, cond.APPLY_FAILED, reason, detail)
                return ChildOutcome(live, failure, transient=err)
            memory.failing.pop(name, None)
            detail = f"{child}: {err.status} {err.reason}: {err.message}"
            failure = cond.UnitFailure(unit, cond.APPLY_FAILED, reason, detail)
            memory.rejected[name] = Rejection(
                desired_hash, uid_of(live), generation_of(live), failure, now
            )
            self._recorder.event(
                grid, type=WARNING, reason=reasons.APPLY_FAILED, message=where + detail
            )
            log.warning("Apply rejected", child=name, nodeunit=unit, error=str(err))
            return ChildOutcome(live, failure, retry_in=self._retry_rejected_after)

        memory.failing.pop(name, None)
        self._expectations.wrote(key, before=live, after=applied)
        created = live is None
        self._recorder.event(
            grid,
            type=NORMAL,
            reason=reasons.CREATED if created else reasons.UPDATED,
            message=f"{'Created' if created else 'Updated'} {child}"
            + (f" for NodeUnit {unit}" if unit else ""),
        )
        log.info("Created child" if created else "Updated child", child=name, nodeunit=unit)
        return ChildOutcome(applied)


def _matches_memo(
    memory: GridMemory, name: str, live: Mapping[str, Any], desired: Mapping[str, Any]
) -> bool:
    """`matches(live, desired)`, remembering positive answers per child (see GridMemory)."""
    uid, version, wanted = uid_of(live), resource_version(live), hash_of(desired)
    key = (
        MatchKey(uid, version, memory.uid, wanted)
        if uid and version and wanted and memory.uid
        else None
    )
    if key is not None and memory.matched.get(name) == key:
        return True
    if matches(live, desired, owner_uid=memory.uid):
        if key is not None:
            memory.matched[name] = key
        return True
    memory.matched.pop(name, None)
    return False


async def update_status(
    *,
    writer: GridWriter,
    expectations: WriteExpectations,
    recorder: EventSink,
    grid: Mapping[str, Any],
    status: Mapping[str, Any],
    log: FilteringBoundLogger,
) -> bool:
    """Write `status` to the grid's status subresource; False when the grid is gone.

    The caller has already decided the status changed. Failures other than 404 raise (the
    controller retries with backoff) after a Warning Event.
    """
    metadata = grid.get("metadata") or {}
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    try:
        after = await writer.write_status(namespace=namespace, name=name, status=status)
    except ApiError as err:
        if err.status == 404:
            return False
        recorder.event(
            grid,
            type=WARNING,
            reason=reasons.STATUS_UPDATE_FAILED,
            message=f"could not write status: {err.status} {err.reason}: {err.message}",
        )
        raise
    expectations.wrote(f"{namespace}/{name}", before=grid, after=after)
    log.debug("Status updated")
    return True
