"""Multi-cluster distribution through Clusternet (SPEC A7, B15): wiring of both sides.

Owns: `federation_controllers` (declares the informers, builds the hub and member reconcilers,
their Controllers and handlers), `MemberController` (the member Controller plus the HubLink
that follows the parent-cluster Secret, as the manager runs it) and the controller names.

Modes: a process with `--enable-federation` runs both sides, and the data decides which one
has work (docs/federation.md):
- hub side (`federation-hub`): originals (`superedge.io/fed=yes`, not a copy, not a local
  grid) are copied into every namespace labelled `clusters.clusternet.io/cluster-id`; a hub
  with no such namespace, such as a member cluster, has nothing to do;
- member side (`federation-member`): active while the Secret `clusternet-system/
  parent-cluster` holds usable credentials; a cluster without it, such as the hub, has
  nothing to do.
Both run only on the leader (the manager starts controllers after the Lease is acquired);
the hub session's informers therefore start with the member controller, not before.

Informers declared on the process's factory (DESIGN section 3.1, handlers only map to keys):
- hub: per grid kind, the originals (selector `ORIGINAL_SELECTOR`) and the copies (selector
  `superedge.io/dis=yes`, index by original); Namespaces (labels only). An original -> its
  key; a copy -> its original's key; a namespace joining or leaving the cluster set (label
  added, removed, changed, namespace terminating) -> every original.
- member: per grid kind, the local grids (selector `LOCAL_SELECTOR`); the parent-cluster
  Secret (field selector on its name); Nodes (the grid reconcilers' shared informer,
  labels only). A local grid -> its key; a node -> the keys of the copies whose key's NodeUnits
  changed; the Secret -> HubLink. The copies themselves are watched on the hub, by the
  current HubSession, whose events map a copy -> its local grid's key.

Controller names: DESIGN section 6 names the reconciler `federation`; it is two queues, so two
names, `federation-hub` and `federation-member`, each naming its queue, metric labels and the
`controller` log key.

Invariants: handlers are synchronous and never write; every task is named and owned by a
TaskGroup (the Controller's, the MemberController's, the HubLink's, a HubSession's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.controller import Controller, Request
from servicegroup.grid.nodeunits import NodeUnitIndex
from servicegroup.informers.informer import HandlerFuncs
from servicegroup.informers.store import DeletedFinalStateUnknown
from servicegroup.informers.transforms import Transform, strip_managed_fields
from servicegroup.kube.resources import NAMESPACES, NODES, SECRETS, ResourceRef
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.children import EventSink
from servicegroup.reconcilers.federation_hub import (
    DEFAULT_RETRY_REJECTED_AFTER,
    ClusterNamespaces,
    HubReconciler,
    namespace_labels_only,
    original_request,
)
from servicegroup.reconcilers.federation_link import (
    CopyHandler,
    HubCredentials,
    HubLink,
    HubSession,
)
from servicegroup.reconcilers.federation_member import (
    MemberReconciler,
    UnitKeys,
    copy_event_request,
)
from servicegroup.reconcilers.federation_metrics import FederationMetrics
from servicegroup.reconcilers.federation_render import (
    COPY_SELECTOR,
    FED_KINDS,
    LOCAL_SELECTOR,
    ORIGIN_INDEX,
    ORIGINAL_SELECTOR,
    PARENT_SECRET_NAME,
    PARENT_SECRET_NAMESPACE,
    FedClient,
    FedKind,
    fed_request,
    index_by_origin,
    name_of,
    namespace_of,
)
from servicegroup.reconcilers.gridindex import Store
from servicegroup.reconcilers.nodeunit import NODE_TRANSFORM
from servicegroup.settings import ControllerSettings

HUB_CONTROLLER = "federation-hub"
MEMBER_CONTROLLER = "federation-member"

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


class FederationController(Protocol):
    """What the manager runs (servicegroup.manager.ControllerLike)."""

    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...


def _unwrap(obj: Obj | DeletedFinalStateUnknown) -> Obj:
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


class _KindStores:
    """Stores per grid kind (implements the hub's KindStores and the member's LocalStores)."""

    def __init__(
        self,
        *,
        originals: Mapping[str, Store] | None = None,
        copies: Mapping[str, Store] | None = None,
        locals_: Mapping[str, Store] | None = None,
    ) -> None:
        self._originals = dict(originals or {})
        self._copies = dict(copies or {})
        self._locals = dict(locals_ or {})

    def originals(self, kind: FedKind) -> Store:
        return self._originals[kind.kind]

    def copies(self, kind: FedKind) -> Store:
        return self._copies[kind.kind]

    def locals(self, kind: FedKind) -> Store:
        return self._locals[kind.kind]


class MemberController:
    """The member Controller and the HubLink, run and stopped together."""

    def __init__(self, *, controller: Controller, link: HubLink) -> None:
        self.controller = controller
        self.link = link

    @property
    def name(self) -> str:
        return self.controller.name

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            link = group.create_task(self.link.run(), name="federation-hub-link")
            try:
                await self.controller.run()
            finally:
                link.cancel()


def _wire_hub(
    *,
    factory: InformerSource,
    controller_of: Callable[[], Controller],
    fed_metrics: FederationMetrics,
) -> tuple[_KindStores, ClusterNamespaces]:
    originals: dict[str, Store] = {}
    copies: dict[str, Store] = {}

    def enqueue(request: Request) -> None:
        controller_of().enqueue(request)

    def enqueue_all() -> None:
        for kind in FED_KINDS:
            for obj in originals[kind.kind].list():
                enqueue(original_request(kind, obj))

    for kind in FED_KINDS:
        original_informer = factory.informer(
            kind.ref, label_selector=ORIGINAL_SELECTOR, transform=strip_managed_fields
        )
        original_informer.add_event_handler(_original_handlers(kind, enqueue), name="fed-original")
        originals[kind.kind] = original_informer.store
        copy_informer = factory.informer(
            kind.ref,
            label_selector=COPY_SELECTOR,
            transform=strip_managed_fields,
            indexers={ORIGIN_INDEX: index_by_origin},
        )
        copy_informer.add_event_handler(_copy_handlers(kind, enqueue), name="fed-copy")
        copies[kind.kind] = copy_informer.store

    clusters = ClusterNamespaces(metrics=fed_metrics, changed=enqueue_all)
    namespace_informer = factory.informer(NAMESPACES, transform=namespace_labels_only)
    namespace_informer.add_event_handler(
        HandlerFuncs(
            on_add=lambda obj, _initial: clusters.upsert(obj),
            on_update=lambda _old, new: clusters.upsert(new),
            on_delete=clusters.remove,
        ),
        name="fed-cluster-namespaces",
    )
    return _KindStores(originals=originals, copies=copies), clusters


def _original_handlers(kind: FedKind, enqueue: Callable[[Request], None]) -> HandlerFuncs:
    return HandlerFuncs(
        on_add=lambda obj, _initial: enqueue(original_request(kind, obj)),
        on_update=lambda _old, new: enqueue(original_request(kind, new)),
        on_delete=lambda obj: enqueue(original_request(kind, _unwrap(obj))),
    )


def _copy_handlers(kind: FedKind, enqueue: Callable[[Request], None]) -> HandlerFuncs:
    """A copy event -> the original(s) it names (by label and owner, old and new)."""

    def origins(obj: Obj) -> None:
        for origin in index_by_origin(obj):
            namespace, _, name = origin.partition("/")
            enqueue(fed_request(namespace, kind, name))

    def updated(old: Obj, new: Obj) -> None:
        origins(new)
        if index_by_origin(old) != index_by_origin(new):
            origins(old)

    return HandlerFuncs(
        on_add=lambda obj, _initial: origins(obj),
        on_update=updated,
        on_delete=lambda obj: origins(_unwrap(obj)),
    )


def federation_controllers(
    *,
    settings: ControllerSettings,
    client: FedClient,
    factory: InformerSource,
    metrics: Metrics,
    clock: Clock,
    logger: FilteringBoundLogger,
    recorder: EventSink,
    retry_rejected_after: float = DEFAULT_RETRY_REJECTED_AFTER,
    hub_sync_timeout: float = 30.0,
    hub_probe_max: float = 10.0,
) -> list[FederationController]:
    """Declare the federation informers and build both controllers (call before the factory
    runs, like `wire_controllers`). Give the result to the Manager with the grid controllers."""
    fed_metrics = FederationMetrics(metrics)
    controllers: dict[str, Controller] = {}

    # ---- hub side
    hub_stores, clusters = _wire_hub(
        factory=factory,
        controller_of=lambda: controllers[HUB_CONTROLLER],
        fed_metrics=fed_metrics,
    )
    hub = HubReconciler(
        stores=hub_stores,
        clusters=clusters,
        client=client,
        recorder=recorder,
        clock=clock,
        metrics=fed_metrics,
        retry_rejected_after=retry_rejected_after,
    )
    controllers[HUB_CONTROLLER] = Controller(
        name=HUB_CONTROLLER,
        reconciler=hub,
        workers=settings.workers,
        metrics=metrics,
        clock=clock,
        logger=logger,
    )

    # ---- member side
    def enqueue_member(request: Request) -> None:
        controllers[MEMBER_CONTROLLER].enqueue(request)

    index = NodeUnitIndex()
    keys = UnitKeys(index=index)
    locals_: dict[str, Store] = {}
    for kind in FED_KINDS:
        informer = factory.informer(
            kind.ref, label_selector=LOCAL_SELECTOR, transform=strip_managed_fields
        )
        informer.add_event_handler(_local_handlers(kind, enqueue_member), name="fed-local")
        locals_[kind.kind] = informer.store
    member_stores = _KindStores(locals_=locals_)

    # Late-bound: the link needs the session factory, the hooks need the link and reconciler.
    cells: dict[str, Any] = {}

    def on_copy(kind: FedKind, obj: Obj | DeletedFinalStateUnknown, gone: bool) -> None:
        copy = _unwrap(obj)
        if gone:
            keys.gone(kind, name_of(copy))
        else:
            keys.seen(kind, copy)
        request = copy_event_request(kind, obj)
        if request is not None:
            enqueue_member(request)

    def on_ready() -> None:
        reconciler: MemberReconciler = cells["member"]
        link: HubLink = cells["link"]
        for request in reconciler.requests_for_all(link.session):
            enqueue_member(request)

    hooks = CopyHandler(on_copy=on_copy, on_ready=on_ready)

    def new_session(credentials: HubCredentials, secret: Mapping[str, Any]) -> HubSession:
        return HubSession(
            credentials=credentials,
            secret=secret,
            hooks=hooks,
            metrics=metrics,
            fed_metrics=fed_metrics,
            recorder=recorder,
            clock=clock,
            logger=logger.bind(controller=MEMBER_CONTROLLER),
            sync_timeout=hub_sync_timeout,
            probe_max=hub_probe_max,
        )

    def session_ended(_session: HubSession) -> None:
        keys.clear()
        member: MemberReconciler = cells["member"]
        member.session_ended()

    link = HubLink(
        session_factory=new_session,
        recorder=recorder,
        fed_metrics=fed_metrics,
        logger=logger.bind(controller=MEMBER_CONTROLLER),
        on_session_end=session_ended,
    )
    member = MemberReconciler(
        link=link,
        stores=member_stores,
        units=index,
        client=client,
        recorder=recorder,
        clock=clock,
        metrics=fed_metrics,
        retry_rejected_after=retry_rejected_after,
    )
    cells.update(member=member, link=link)

    secret_informer = factory.informer(
        SECRETS,
        namespace=PARENT_SECRET_NAMESPACE,
        field_selector=f"metadata.name={PARENT_SECRET_NAME}",
        transform=strip_managed_fields,
    )
    secret_informer.add_event_handler(link.secret_handlers(), name="fed-parent-secret")

    def node_changed(changed: set[str]) -> None:
        session = link.session
        if session is None:
            return
        for key in sorted(changed):
            for kind in FED_KINDS:
                for copy in session.copies_with_key(kind, key):
                    request = copy_event_request(kind, copy)
                    if request is not None:
                        enqueue_member(request)

    def node_deleted(obj: Obj | DeletedFinalStateUnknown) -> None:
        name = obj.key if isinstance(obj, DeletedFinalStateUnknown) else name_of(obj)
        node_changed(index.remove_node(name))

    node_informer = factory.informer(NODES, transform=NODE_TRANSFORM)
    node_informer.add_event_handler(
        HandlerFuncs(
            on_add=lambda obj, _initial: node_changed(index.upsert_node(obj)),
            on_update=lambda _old, new: node_changed(index.upsert_node(new)),
            on_delete=node_deleted,
        ),
        name="fed-nodes",
    )
    controllers[MEMBER_CONTROLLER] = Controller(
        name=MEMBER_CONTROLLER,
        reconciler=member,
        workers=settings.workers,
        metrics=metrics,
        clock=clock,
        logger=logger,
    )
    return [
        controllers[HUB_CONTROLLER],
        MemberController(controller=controllers[MEMBER_CONTROLLER], link=link),
    ]


def _local_handlers(kind: FedKind, enqueue: Callable[[Request], None]) -> HandlerFuncs:
    def request(obj: Obj) -> Request:
        return fed_request(namespace_of(obj), kind, name_of(obj))

    return HandlerFuncs(
        on_add=lambda obj, _initial: enqueue(request(obj)),
        on_update=lambda _old, new: enqueue(request(new)),
        on_delete=lambda obj: enqueue(request(_unwrap(obj))),
    )
