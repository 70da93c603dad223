"""Hub side of multi-cluster distribution: copies of federated grids, and their merged status.

Owns: `ClusterNamespaces` (which hub namespaces are managed clusters, kept from namespace
events) and `HubReconciler` (one reconcile per original, key `fed_request(ns, kind, name)`).

One reconcile of an original (sample-controller's order):
1. Not an original any more (gone, label `superedge.io/fed` removed, or now a copy / local
   grid): delete every copy made from it; release copies already being deleted in namespaces
   that are no longer cluster namespaces (no member will). Done.
   Copies carry no ownerReference (an owner must be in the dependent's namespace, see
   federation_render.py), so deleting them is this reconciler's job, not the garbage
   collector's; a copy's deletion completes when its member has removed the local grid.
2. Being deleted (another finalizer holds the original): as step 1.
3. For every cluster namespace (labelled `clusters.clusternet.io/cluster-id`, not being
   deleted, not the original's own namespace): refuse a name held by an object that is not a
   copy of this original (CopyConflict), wait for a copy being deleted, skip a copy that matches,
   apply the rest (server-side apply, field manager `servicegroup-federation`: fields removed
   from the original disappear from the copy). A rejected apply (4xx) is reported on that
   cluster only (CopyRejected) and not repeated until the desired copy changes or
   `retry_rejected_after` passes.
4. Copies in namespaces that are not cluster namespaces any more: deleted (uid precondition),
   and released at once if already being deleted (step 1).
5. Status: the copies' states and one condition per cluster merged into the original's status
   (federation_status.py), written as a JSON merge patch of exactly what changed, with a
   resourceVersion precondition so the grid reconciler's own status write is never undone.

Transient API errors (5xx, 429, transport) are raised after the status is written, for a
rate-limited retry; one cluster's failure never blocks the others.

Invariants: reads only informer caches (plus our own writes not yet seen there, through
`WriteExpectations`); never modifies an object the original does not control; no write and no
Event when nothing changed; every task belongs to the Controller that calls `reconcile`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.controller import Request, Result
from servicegroup.events import NORMAL, WARNING
from servicegroup.grid import conditions as cond
from servicegroup.grid.compare import hash_of
from servicegroup.grid.labels import CLUSTER_ID
from servicegroup.informers.store import DeletedFinalStateUnknown
from servicegroup.informers.transforms import strip_managed_fields
from servicegroup.kube.errors import ApiError, is_conflict, is_not_found, is_retryable
from servicegroup.reconcilers import federation_reasons as reasons
from servicegroup.reconcilers.children import EventSink, WriteExpectations
from servicegroup.reconcilers.federation_metrics import (
    OP_APPLY,
    OP_DELETE,
    OP_FINALIZER,
    OP_STATUS,
    SIDE_HUB,
    FederationMetrics,
)
from servicegroup.reconcilers.federation_render import (
    FED_KINDS,
    FIELD_MANAGER,
    ORIGIN_INDEX,
    FedClient,
    FedKind,
    applied_matches,
    deleting,
    fed_request,
    finalizers_patch,
    generation_of,
    is_original,
    name_of,
    namespace_of,
    owned_copy,
    parse_fed_request,
    render_copy,
    resource_version_of,
    uid_of,
    without_our_finalizers,
)
from servicegroup.reconcilers.federation_status import (
    COPY_CONFLICT,
    COPY_REJECTED,
    ClusterReport,
    federated_status,
    merge_patch_diff,
)
from servicegroup.reconcilers.gridindex import Store

Obj = dict[str, Any]
DEFAULT_RETRY_REJECTED_AFTER = 300.0


def namespace_labels_only(obj: dict[str, Any]) -> dict[str, Any]:
    """Namespace informer transform: what cluster membership needs (labels, being deleted)."""
    metadata = obj.get("metadata") or {}
    kept = {
        k: metadata[k]
        for k in ("name", "uid", "resourceVersion", "labels", "deletionTimestamp")
        if k in metadata
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": kept}


def is_cluster_namespace(namespace: Mapping[str, Any]) -> bool:
    """Labelled with a (non-empty) Clusternet cluster id and not being deleted."""
    metadata = namespace.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return bool(labels.get(CLUSTER_ID)) and not metadata.get("deletionTimestamp")


class ClusterNamespaces:
    """The hub namespaces of managed clusters, updated one namespace event at a time.

    `changed` is called (synchronously, from the informer handler) whenever the set changes:
    a namespace gained or lost the label, or began terminating; label *changes* of existing
    namespaces count, not only creations.
    """

    def __init__(self, *, metrics: FederationMetrics, changed: Callable[[], None]) -> None:
        self._names: set[str] = set()
        self._gauge = metrics.clusters
        self._changed = changed

    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def upsert(self, namespace: Mapping[str, Any]) -> None:
        name = str((namespace.get("metadata") or {}).get("name") or "")
        member = is_cluster_namespace(namespace)
        if member == (name in self._names):
            return
        if member:
            self._names.add(name)
        else:
            self._names.discard(name)
        self._gauge.set(len(self._names))
        self._changed()

    def remove(self, namespace: Mapping[str, Any] | DeletedFinalStateUnknown) -> None:
        if isinstance(namespace, DeletedFinalStateUnknown):
            name = namespace.key
        else:
            name = str((namespace.get("metadata") or {}).get("name") or "")
        if name in self._names:
            self._names.discard(name)
            self._gauge.set(len(self._names))
            self._changed()


class KindStores(Protocol):
    """Per grid kind: the originals and the copies informer stores (all namespaces)."""

    def originals(self, kind: FedKind) -> Store: ...

    def copies(self, kind: FedKind) -> Store: ...


@dataclass(frozen=True, slots=True)
class _Rejection:
    desired_hash: str
    at: float
    problem: cond.ConditionSpec


class HubReconciler:
    """Distributes one original to every cluster namespace and merges the copies' status."""

    def __init__(
        self,
        *,
        stores: KindStores,
        clusters: ClusterNamespaces,
        client: FedClient,
        recorder: EventSink,
        clock: Clock,
        metrics: FederationMetrics,
        retry_rejected_after: float = DEFAULT_RETRY_REJECTED_AFTER,
    ) -> None:
        self._stores = stores
        self._clusters = clusters
        self._client = client
        self._recorder = recorder
        self._clock = clock
        self._metrics = metrics
        self._retry_rejected_after = retry_rejected_after
        self._copy_writes = {k.kind: WriteExpectations(clock=clock) for k in FED_KINDS}
        self._original_writes = {k.kind: WriteExpectations(clock=clock) for k in FED_KINDS}
        # (kind, original namespace, name) -> cluster namespace -> last rejected apply
        self._rejected: dict[tuple[str, str, str], dict[str, _Rejection]] = {}

    async def reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        kind, name = parse_fed_request(request)
        namespace = request.namespace
        key = f"{namespace}/{name}"
        original = self._original_writes[kind.kind].view(key, self._stores.originals(kind).get(key))
        copies = [
            c
            for c in self._stores.copies(kind).by_index(ORIGIN_INDEX, key)
            if owned_copy(c, namespace=namespace, name=name)
        ]
        if original is None or not is_original(original) or deleting(original):
            # Copies have no owner reference (it cannot cross namespaces): they go with
            # their original only because we delete them.
            self._rejected.pop((kind.kind, namespace, name), None)
            await self._remove_copies(kind, copies, keep=frozenset(), original=None, log=log)
            return Result()

        clusters = self._clusters.names() - {namespace}
        reports: list[ClusterReport] = []
        retry_in: float | None = None
        transient: ApiError | None = None
        for cluster in sorted(clusters):
            try:
                report, retry = await self._sync_copy(kind, original, cluster, log=log)
            except ApiError as err:
                if not is_retryable(err):
                    raise
                log.info("Copy write failed, will retry", cluster=cluster, error=str(err))
                transient = transient or err
                live = self._copy(kind, cluster, name)
                report, retry = ClusterReport(cluster, live), None
            reports.append(report)
            if retry is not None:
                retry_in = retry if retry_in is None else min(retry_in, retry)
        try:
            await self._remove_copies(kind, copies, keep=clusters, original=original, log=log)
        except ApiError as err:
            if not is_retryable(err):
                raise
            transient = transient or err

        result = await self._write_status(kind, original, reports, log=log)
        if transient is not None:
            raise transient
        if result.requeue:
            return result
        return Result(requeue_after=retry_in)

    # ------------------------------------------------------------------ copies

    def _copy(self, kind: FedKind, cluster: str, name: str) -> Obj | None:
        key = f"{cluster}/{name}"
        return self._copy_writes[kind.kind].view(key, self._stores.copies(kind).get(key))

    async def _sync_copy(
        self, kind: FedKind, original: Obj, cluster: str, *, log: FilteringBoundLogger
    ) -> tuple[ClusterReport, float | None]:
        name = name_of(original)
        desired = render_copy(original, kind=kind, namespace=cluster)
        live = self._copy(kind, cluster, name)
        if live is None:
            # Our cache holds copies only: look for anything else holding the name.
            live = await self._uncached(kind, cluster, name)
        if live is not None and not owned_copy(live, namespace=namespace_of(original), name=name):
            detail = f"{kind.kind} {cluster}/{name} exists and is not a copy of this grid"
            self._recorder.event(
                original, type=WARNING, reason=reasons.COPY_CONFLICT, message=detail
            )
            self._metrics.failed(side=SIDE_HUB, reason=reasons.COPY_CONFLICT)
            problem = cond.ConditionSpec("", "False", COPY_CONFLICT, detail)
            return ClusterReport(cluster, None, problem), None
        if live is not None and deleting(live):
            # Its deletion event brings us back to create it again.
            return ClusterReport(cluster, live), None
        # A copy of an earlier original of the same name does not match (other uid mark):
        # applying adopts it.
        if live is not None and applied_matches(live, desired):
            self._forget_rejection(kind, original, cluster)
            return ClusterReport(cluster, live), None

        desired_hash = hash_of(desired) or ""
        memory = self._rejected.setdefault((kind.kind, namespace_of(original), name), {})
        now = self._clock.monotonic()
        rejection = memory.get(cluster)
        if rejection is not None:
            elapsed = now - rejection.at
            if rejection.desired_hash == desired_hash and elapsed < self._retry_rejected_after:
                remaining = max(self._retry_rejected_after - elapsed, 0.001)
                return ClusterReport(cluster, live, rejection.problem), remaining
            del memory[cluster]

        self._metrics.wrote(side=SIDE_HUB, kind=kind.kind, operation=OP_APPLY)
        try:
            applied = await self._client.apply(kind.ref, desired, field_manager=FIELD_MANAGER)
        except ApiError as err:
            if is_retryable(err):
                raise
            detail = f"the copy in {cluster} was rejected: {err.status} {err.reason}: {err.message}"
            problem = cond.ConditionSpec("", "False", COPY_REJECTED, detail)
            memory[cluster] = _Rejection(desired_hash, now, problem)
            self._recorder.event(
                original, type=WARNING, reason=reasons.COPY_REJECTED, message=detail
            )
            self._metrics.failed(side=SIDE_HUB, reason=reasons.COPY_REJECTED)
            log.warning("Copy rejected", cluster=cluster, error=str(err))
            return ClusterReport(cluster, live, problem), self._retry_rejected_after
        applied = strip_managed_fields(applied)
        self._copy_writes[kind.kind].wrote(f"{cluster}/{name}", before=live, after=applied)
        created = live is None
        self._recorder.event(
            original,
            type=NORMAL,
            reason=reasons.COPY_CREATED if created else reasons.COPY_UPDATED,
            message=f"{'Created' if created else 'Updated'} the copy in {cluster}",
        )
        log.info("Created copy" if created else "Updated copy", cluster=cluster)
        return ClusterReport(cluster, applied), None

    async def _uncached(self, kind: FedKind, cluster: str, name: str) -> Obj | None:
        try:
            found = await self._client.get(kind.ref, name, namespace=cluster)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        return strip_managed_fields(found)

    def _forget_rejection(self, kind: FedKind, original: Obj, cluster: str) -> None:
        memory = self._rejected.get((kind.kind, namespace_of(original), name_of(original)))
        if memory is not None:
            memory.pop(cluster, None)

    async def _remove_copies(
        self,
        kind: FedKind,
        copies: Iterable[Obj],
        *,
        keep: frozenset[str],
        original: Obj | None,
        log: FilteringBoundLogger,
    ) -> None:
        """Delete copies outside `keep`; release those being deleted outside cluster namespaces."""
        for copy in copies:
            cluster = namespace_of(copy)
            if cluster in keep:
                continue
            live = self._copy(kind, cluster, name_of(copy))
            if live is None:
                continue
            if deleting(live):
                if cluster not in self._clusters:
                    await self._release(kind, live, original=original, log=log)
                continue
            await self._delete_copy(
                kind, live, original=original, why="not a cluster namespace any more", log=log
            )

    async def _delete_copy(
        self,
        kind: FedKind,
        live: Obj,
        *,
        original: Obj | None,
        why: str,
        log: FilteringBoundLogger,
    ) -> None:
        cluster, name = namespace_of(live), name_of(live)
        self._metrics.wrote(side=SIDE_HUB, kind=kind.kind, operation=OP_DELETE)
        try:
            await self._client.delete(
                kind.ref,
                name,
                namespace=cluster,
                propagation_policy="Background",
                preconditions={"uid": uid_of(live)},
            )
        except ApiError as err:
            # Gone already, or a newer object of that name (uid precondition): nothing to do.
            if is_not_found(err) or is_conflict(err):
                return
            raise
        self._copy_writes[kind.kind].deleted(f"{cluster}/{name}", before=live)
        if original is not None:
            self._recorder.event(
                original,
                type=NORMAL,
                reason=reasons.COPY_DELETED,
                message=f"Deleted the copy in {cluster}: {why}",
            )
        log.info("Deleted copy", cluster=cluster)

    async def _release(
        self, kind: FedKind, live: Obj, *, original: Obj | None, log: FilteringBoundLogger
    ) -> None:
        """Remove the member's finalizer ourselves: outside a cluster namespace, no member
        will (the member deletes its local grid anyway once the copy is gone)."""
        finalizers = without_our_finalizers(live)
        if finalizers is None:
            return
        cluster, name = namespace_of(live), name_of(live)
        self._metrics.wrote(side=SIDE_HUB, kind=kind.kind, operation=OP_FINALIZER)
        try:
            after = await self._client.patch(
                kind.ref,
                name,
                finalizers_patch(live, finalizers),
                patch_type="merge",
                namespace=cluster,
                field_manager=FIELD_MANAGER,
            )
        except ApiError as err:
            if is_not_found(err):
                return
            raise
        self._copy_writes[kind.kind].wrote(
            f"{cluster}/{name}", before=live, after=strip_managed_fields(after)
        )
        if original is not None:
            self._recorder.event(
                original,
                type=NORMAL,
                reason=reasons.COPY_RELEASED,
                message=f"Released the copy in {cluster}: not a cluster namespace any more",
            )
        log.info("Released copy", cluster=cluster)

    # ------------------------------------------------------------------ status

    async def _write_status(
        self,
        kind: FedKind,
        original: Obj,
        reports: list[ClusterReport],
        *,
        log: FilteringBoundLogger,
    ) -> Result:
        previous = original.get("status")
        previous = previous if isinstance(previous, Mapping) else {}
        desired = federated_status(
            previous,
            reports,
            has_states=kind.has_states,
            generation=generation_of(original),
            now=self._clock.now(),
        )
        patch = merge_patch_diff(previous, desired)
        if not patch:
            return Result()
        namespace, name = namespace_of(original), name_of(original)
        body = {"metadata": {"resourceVersion": resource_version_of(original)}, "status": patch}
        self._metrics.wrote(side=SIDE_HUB, kind=kind.kind, operation=OP_STATUS)
        try:
            after = await self._client.patch(
                kind.ref,
                name,
                body,
                patch_type="merge",
                namespace=namespace,
                subresource="status",
                field_manager=FIELD_MANAGER,
            )
        except ApiError as err:
            if is_not_found(err):
                return Result()
            if is_conflict(err):
                # The grid changed meanwhile (its own status, most likely): merge again on
                # the newer version, which the informer is about to deliver.
                log.debug("Status conflict, will merge again")
                return Result(requeue=True)
            if not is_retryable(err):
                self._recorder.event(
                    original,
                    type=WARNING,
                    reason=reasons.STATUS_SYNC_FAILED,
                    message=f"could not write the federated status: {err}",
                )
                self._metrics.failed(side=SIDE_HUB, reason=reasons.STATUS_SYNC_FAILED)
            raise
        self._original_writes[kind.kind].wrote(
            f"{namespace}/{name}", before=original, after=strip_managed_fields(after)
        )
        log.debug("Federated status updated", clusters=len(reports))
        return Result()


# ------------------------------------------------------------------------------ handlers


def original_request(kind: FedKind, obj: Mapping[str, Any]) -> Request:
    return fed_request(namespace_of(obj), kind, name_of(obj))
