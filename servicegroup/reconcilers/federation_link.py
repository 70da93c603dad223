"""Member side: the connection to the hub, following Clusternet's parent-cluster Secret.

Owns: `HubCredentials` and `credentials_from_secret` (the Secret `clusternet-system/
parent-cluster`: keys `parent-url`, `namespace` required, `token` and `ca.crt` optional, all
base64 in `data` as the API serves them), `HubSession` (one hub client, its informers of the
copies in the cluster's dedicated hub namespace, and its health), and `HubLink` (which session
is current).

Lifecycle:
- `HubLink.secret_handlers()` is registered on the local Secret informer. Every event
  recomputes the wanted credentials; only a real change (URL, token, CA or namespace) wakes
  `HubLink.run()`, which stops the current session (its informers, then its client) and starts
  one with the new credentials. Creating, rotating or deleting the Secret therefore takes effect
  without a restart; an invalid Secret stops the session (Warning `InvalidHubCredentials`).
- A session lists and watches the copies (label `superedge.io/dis=yes`) of every grid kind in
  its namespace with a `KubeClient` of its own. Once synced it is `ready`: it tells the member
  (`on_ready`) to look at every copy and local grid again.
- Hub outages: the reflectors retry on their own and keep the cache meanwhile (nothing is
  deleted because the hub is away). A member write that fails for lack of an answer (no HTTP
  answer, 429, 5xx) calls `unreachable()`: the connected gauge drops to 0, a Warning
  `HubUnreachable` Event is recorded on the Secret, and a probe (one LIST of at most one copy,
  backing off from `probe_initial` to `probe_max` seconds) runs until the hub answers again;
  then `on_ready` re-enqueues everything, so work that failed during the outage converges at
  once instead of after its per-item backoff.

Invariants: at most one session runs; each session's tasks live in its own TaskGroup inside
`HubLink.run()`'s, and a session is fully stopped (informers, then client) before the next
starts; handlers are synchronous; `CancelledError` is never swallowed. The session's informers
report to a private metrics registry (a stopped session's cached-object gauges would
otherwise never come down); its REST client reports to the process's (host = the hub).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from structlog.typing import FilteringBoundLogger

from servicegroup import __version__
from servicegroup.clock import Clock
from servicegroup.events import NORMAL, WARNING
from servicegroup.informers.factory import InformerFactory
from servicegroup.informers.informer import HandlerFuncs, SharedInformer
from servicegroup.informers.store import DeletedFinalStateUnknown
from servicegroup.informers.transforms import strip_managed_fields
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig, ConfigError
from servicegroup.kube.errors import ApiError
from servicegroup.metrics import Metrics
from servicegroup.reconcilers import federation_reasons as reasons
from servicegroup.reconcilers.children import EventSink, WriteExpectations
from servicegroup.reconcilers.federation_metrics import SIDE_MEMBER, FederationMetrics
from servicegroup.reconcilers.federation_render import (
    COPY_SELECTOR,
    FED_KINDS,
    PARENT_SECRET_NAME,
    PARENT_SECRET_NAMESPACE,
    FedKind,
)
from servicegroup.reconcilers.gridindex import GRID_UNIQ_KEY_INDEX, index_by_grid_uniq_key

USER_AGENT = f"servicegroup/{__version__} (controller)"

Obj = dict[str, Any]


class HubCredentials(NamedTuple):
    url: str
    namespace: str
    token: str
    ca: bytes | None


class CredentialsError(ValueError):
    """The parent-cluster Secret does not hold usable hub credentials."""


def _decode(data: Mapping[str, Any], key: str) -> bytes | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as err:
        raise CredentialsError(f"key {key!r} is not valid base64") from err


def credentials_from_secret(secret: Mapping[str, Any]) -> HubCredentials:
    """The hub credentials in a parent-cluster Secret; CredentialsError when unusable."""
    data = secret.get("data")
    data = data if isinstance(data, Mapping) else {}
    url = (_decode(data, "parent-url") or b"").decode("utf-8", "replace").strip()
    namespace = (_decode(data, "namespace") or b"").decode("utf-8", "replace").strip()
    token = (_decode(data, "token") or b"").decode("utf-8", "replace").strip()
    ca = _decode(data, "ca.crt") or None
    missing = [k for k, v in (("parent-url", url), ("namespace", namespace)) if not v]
    if missing:
        raise CredentialsError(f"missing or empty key(s): {', '.join(missing)}")
    if not url.startswith(("https://", "http://")):
        raise CredentialsError(f"parent-url {url!r} is not an http(s) URL")
    return HubCredentials(url=url, namespace=namespace, token=token, ca=ca)


def secret_reference() -> dict[str, Any]:
    """The Secret as an Event's involved object (it may not exist when we report on it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": PARENT_SECRET_NAME, "namespace": PARENT_SECRET_NAMESPACE},
    }


class CopyHandler(NamedTuple):
    """What a session calls for copy events and once ready (the member's hooks)."""

    on_copy: Callable[[FedKind, Obj | DeletedFinalStateUnknown, bool], None]  # (.., gone)
    on_ready: Callable[[], None]


class HubSession:
    """One connection to the hub with given credentials: client, copy informers, health."""

    def __init__(
        self,
        *,
        credentials: HubCredentials,
        secret: Mapping[str, Any],
        hooks: CopyHandler,
        metrics: Metrics,
        fed_metrics: FederationMetrics,
        recorder: EventSink,
        clock: Clock,
        logger: FilteringBoundLogger,
        sync_timeout: float = 30.0,
        probe_initial: float = 0.5,
        probe_max: float = 10.0,
    ) -> None:
        self.credentials = credentials
        self.namespace = credentials.namespace
        self._secret = secret
        self._hooks = hooks
        self._fed_metrics = fed_metrics
        self._recorder = recorder
        self._clock = clock
        self._log = logger.bind(hub=credentials.url, hub_namespace=credentials.namespace)
        self._sync_timeout = sync_timeout
        self._probe_initial = probe_initial
        self._probe_max = probe_max
        config = ClientConfig.for_server(
            credentials.url,
            token=credentials.token or None,
            ca_data=credentials.ca,
            namespace=credentials.namespace,
        )
        self.client = KubeClient(config=config, metrics=metrics, user_agent=USER_AGENT, clock=clock)
        self._factory = InformerFactory(
            client=self.client, metrics=Metrics(), clock=clock, logger=self._log
        )
        self._informers: dict[str, SharedInformer] = {}
        for kind in FED_KINDS:
            informer = self._factory.informer(
                kind.ref,
                namespace=credentials.namespace,
                label_selector=COPY_SELECTOR,
                transform=strip_managed_fields,
                indexers={GRID_UNIQ_KEY_INDEX: index_by_grid_uniq_key},
            )
            informer.add_event_handler(self._copy_handlers(kind), name=f"hub-{kind.short}")
            self._informers[kind.kind] = informer
        # Our own writes to copies, until their watch events arrive.
        self.expectations = {k.kind: WriteExpectations(clock=clock) for k in FED_KINDS}
        self.ready = False
        self._reachable = True
        self._unreachable = asyncio.Event()

    def _copy_handlers(self, kind: FedKind) -> HandlerFuncs:
        on_copy = self._hooks.on_copy
        return HandlerFuncs(
            on_add=lambda obj, _initial: on_copy(kind, obj, False),
            on_update=lambda _old, new: on_copy(kind, new, False),
            on_delete=lambda obj: on_copy(kind, obj, True),
        )

    # ------------------------------------------------------------------ reads

    def copy(self, kind: FedKind, name: str) -> Obj | None:
        """The freshest known copy of `kind` named `name` in this session's namespace."""
        key = f"{self.namespace}/{name}"
        return self.expectations[kind.kind].view(key, self._informers[kind.kind].store.get(key))

    def copies(self, kind: FedKind) -> list[Obj]:
        return self._informers[kind.kind].store.list()

    def copies_with_key(self, kind: FedKind, key: str) -> list[Obj]:
        """Copies of `kind` whose spec.gridUniqKey is `key`."""
        return self._informers[kind.kind].store.by_index(GRID_UNIQ_KEY_INDEX, key)

    # ------------------------------------------------------------------ health

    def unreachable(self, err: BaseException) -> None:
        """A request to the hub got no (usable) answer: report it and start probing."""
        self._fed_metrics.failed(side=SIDE_MEMBER, reason=reasons.HUB_UNREACHABLE)
        if not self._reachable:
            return
        self._reachable = False
        self._fed_metrics.hub_connected.set(0)
        self._recorder.event(
            self._secret,
            type=WARNING,
            reason=reasons.HUB_UNREACHABLE,
            message=f"the hub {self.credentials.url} did not answer: {err}",
        )
        self._log.warning("Hub unreachable", error=str(err))
        self._unreachable.set()

    def request_failed(self, err: ApiError) -> None:
        """The hub refused a request (4xx other than conflicts): report it."""
        self._fed_metrics.failed(side=SIDE_MEMBER, reason=reasons.HUB_REQUEST_FAILED)
        self._recorder.event(
            self._secret,
            type=WARNING,
            reason=reasons.HUB_REQUEST_FAILED,
            message=f"the hub {self.credentials.url} refused a request: {err}",
        )

    def _connected(self) -> None:
        self._reachable = True
        self._fed_metrics.hub_connected.set(1)
        self._recorder.event(
            self._secret,
            type=NORMAL,
            reason=reasons.HUB_CONNECTED,
            message=f"Connected to the hub {self.credentials.url}, namespace {self.namespace}",
        )
        self._hooks.on_ready()

    async def _wait_ready(self) -> None:
        while not await self._factory.wait_for_cache_sync(timeout=self._sync_timeout):
            self.unreachable(TimeoutError(f"no list of the copies in {self._sync_timeout}s"))
        self.ready = True
        self._log.info("Hub session ready")
        self._connected()

    async def _probe(self) -> None:
        while True:
            await self._unreachable.wait()
            delay = self._probe_initial
            while True:
                await self._clock.sleep(delay)
                try:
                    await self.client.list(FED_KINDS[0].ref, namespace=self.namespace, limit=1)
                except ApiError as err:
                    self._log.debug("Hub still unreachable", error=str(err))
                    delay = min(delay * 2, self._probe_max)
                    continue
                break
            self._unreachable.clear()
            if self.ready:
                self._log.info("Hub reachable again")
                self._connected()
            else:
                self._reachable = True

    async def run(self) -> None:
        """Run the informers and the health probe until cancelled; then close the client."""
        self._fed_metrics.hub_sessions.inc()
        self._log.info("Hub session starting")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._factory.run(), name="federation-hub-informers")
                group.create_task(self._wait_ready(), name="federation-hub-sync")
                group.create_task(self._probe(), name="federation-hub-probe")
        finally:
            self.ready = False
            self._fed_metrics.hub_connected.set(0)
            await self.client.close()
            self._log.info("Hub session stopped")


SessionFactory = Callable[[HubCredentials, Mapping[str, Any]], HubSession]


class HubLink:
    """Which hub session is current, following the parent-cluster Secret."""

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        recorder: EventSink,
        fed_metrics: FederationMetrics,
        logger: FilteringBoundLogger,
        on_session_end: Callable[[HubSession], None] = lambda _s: None,
    ) -> None:
        self._factory = session_factory
        self._recorder = recorder
        self._fed_metrics = fed_metrics
        self._log = logger
        self._on_session_end = on_session_end
        self._wanted: HubCredentials | None = None
        self._secret: Mapping[str, Any] = secret_reference()
        self._changed = asyncio.Event()
        self._session: HubSession | None = None

    @property
    def session(self) -> HubSession | None:
        """The current session (None without usable credentials); check `ready` before use."""
        return self._session

    @property
    def wanted(self) -> HubCredentials | None:
        return self._wanted

    def secret_handlers(self) -> HandlerFuncs:
        return HandlerFuncs(
            on_add=lambda obj, _initial: self.secret_changed(obj),
            on_update=lambda _old, new: self.secret_changed(new),
            on_delete=lambda _obj: self.secret_changed(None),
        )

    def secret_changed(self, secret: Mapping[str, Any] | None) -> None:
        """The Secret was created, updated or deleted (None)."""
        wanted: HubCredentials | None = None
        if secret is not None:
            self._secret = secret
            try:
                wanted = credentials_from_secret(secret)
            except CredentialsError as err:
                self._fed_metrics.failed(side=SIDE_MEMBER, reason=reasons.INVALID_HUB_CREDENTIALS)
                self._recorder.event(
                    secret,
                    type=WARNING,
                    reason=reasons.INVALID_HUB_CREDENTIALS,
                    message=f"no hub connection: {err}",
                )
                self._log.warning("Invalid parent-cluster Secret", error=str(err))
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    async def run(self) -> None:
        """Keep the session in line with the Secret until cancelled."""
        async with asyncio.TaskGroup() as group:
            running: asyncio.Task[None] | None = None
            try:
                while True:
                    await self._changed.wait()
                    self._changed.clear()
                    wanted = self._wanted
                    current = self._session
                    if current is not None and current.credentials == wanted:
                        continue
                    if running is not None:
                        running.cancel()
                        await asyncio.wait({running})
                        running = None
                    if current is not None:
                        self._session = None
                        self._on_session_end(current)
                    if wanted is None:
                        self._log.info("No hub credentials: not connected to a hub")
                        continue
                    try:
                        session = self._factory(wanted, self._secret)
                    except ConfigError as err:
                        self._fed_metrics.failed(
                            side=SIDE_MEMBER, reason=reasons.INVALID_HUB_CREDENTIALS
                        )
                        self._recorder.event(
                            self._secret,
                            type=WARNING,
                            reason=reasons.INVALID_HUB_CREDENTIALS,
                            message=f"no hub connection: {err}",
                        )
                        continue
                    self._session = session
                    running = group.create_task(session.run(), name="federation-hub-session")
            finally:
                if running is not None:
                    running.cancel()
                self._session = None
