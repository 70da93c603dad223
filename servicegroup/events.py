"""EventRecorder: core/v1 Events about the objects we manage, deduplicated and never blocking.

`event()` is synchronous and cheap: it decides (from a dedup cache) whether the occurrence must
be sent and, if so, appends it to a bounded pending queue. `run()`, owned by the manager's
TaskGroup, posts pending Events one at a time through an `EventClient`.

Invariants:
- A repeat of the same (involved uid, type, reason, message) within `dedup_window` seconds of
  the last send makes no request at all. After the window a repeat merge-patches the existing
  Event (`count` + 1, `lastTimestamp`), and creates it again under the same name if it is gone
  (404). So a settled controller that keeps reporting the same condition sends nothing.
- Memory is bounded: the dedup cache is an LRU of `cache_size` keys; the pending queue holds at
  most `queue_size` Events and drops the oldest (with a log line) when full.
- Posting failures are logged and retried `max_attempts` times with exponential backoff on the
  Clock when they may be transient (no HTTP status, 429, 5xx); they never raise into callers.
  An Event that could not be sent is not remembered as sent, so its next repeat is tried again.
- Event names follow client-go (`{object name}.{unix nanos in hex}`), made unique per recorder.
- `servicegroup_events{type,reason}` counts Events written to the API server.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.kube.resources import EVENTS, ResourceRef
from servicegroup.metrics import Metrics

NORMAL = "Normal"
WARNING = "Warning"
EVENT_TYPES = frozenset({NORMAL, WARNING})
DEFAULT_COMPONENT = "servicegroup-controller"
# client-go truncates Event messages to this many bytes.
MAX_MESSAGE_BYTES = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EventClient(Protocol):
    """The two API calls the recorder makes (the real KubeClient has these)."""

    async def create(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def patch(
        self,
        ref: ResourceRef,
        name: str,
        body: Any,
        *,
        patch_type: Literal["merge", "strategic", "json"],
        namespace: str | None = None,
    ) -> dict[str, Any]: ...


def is_not_found(err: BaseException) -> bool:
    """Any exception carrying `status == 404` (e.g. the client's API error) means not found."""
    return getattr(err, "status", None) == 404


def is_retriable(err: BaseException) -> bool:
    """Transport errors (no status, or status 0), 429 and 5xx may pass; other rejections won't."""
    status = getattr(err, "status", None)
    if not isinstance(status, int) or status == 0:
        return True
    return status == 429 or status >= 500


def truncate_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """At most `limit` UTF-8 bytes, never cutting a character in half."""
    encoded = message.encode()
    if len(encoded) <= limit:
        return message
    return encoded[:limit].decode(errors="ignore")


def format_timestamp(moment: datetime) -> str:
    """metav1.Time: RFC 3339 in UTC with second precision."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DedupKey = tuple[str, str, str, str]


@dataclass(slots=True)
class _Sent:
    """What the API server holds for one dedup key (mutable bookkeeping, private)."""

    sent_at: float | None = None  # monotonic time of the last send (or enqueue); None: resend
    name: str | None = None  # the Event's name once it exists on the server
    namespace: str = ""
    count: int = 0
    first_timestamp: str = ""


@dataclass(frozen=True, slots=True)
class _Pending:
    """One Event waiting to be posted."""

    sent: _Sent
    involved: dict[str, str]
    namespace: str
    type: str
    reason: str
    message: str
    occurred: datetime


class EventRecorder:
    """Records Events about objects; `run()` posts them."""

    def __init__(
        self,
        *,
        client: EventClient,
        clock: Clock,
        metrics: Metrics,
        logger: FilteringBoundLogger,
        component: str = DEFAULT_COMPONENT,
        instance: str = "",
        dedup_window: float = 600.0,
        cache_size: int = 4096,
        queue_size: int = 1000,
        max_attempts: int = 5,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        if cache_size < 1 or queue_size < 1 or max_attempts < 1:
            raise ValueError("cache_size, queue_size and max_attempts must be at least 1")
        self.component = component
        self.instance = instance or component
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._log = logger.bind(component=component)
        self._dedup_window = dedup_window
        self._cache_size = cache_size
        self._queue_size = queue_size
        self._max_attempts = max_attempts
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._sent: OrderedDict[_DedupKey, _Sent] = OrderedDict()
        self._pending: deque[_Pending] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._last_nanos = 0

    @property
    def pending(self) -> int:
        """Events waiting to be posted."""
        return len(self._pending)

    def event(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """Record an Event about `obj` (a raw Kubernetes object dict). Never blocks or raises."""
        try:
            self._record(obj, type=type, reason=reason, message=message)
        except Exception:
            # A malformed object must not break the reconcile that reports on it.
            self._log.exception("Could not record event", reason=reason)

    def _record(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        if type not in EVENT_TYPES:
            self._log.error("Unsupported event type, event dropped", type=type, reason=reason)
            return
        metadata = obj.get("metadata") or {}
        name = str(metadata.get("name") or "")
        if not name or not reason:
            self._log.error("Event without object name or reason dropped", reason=reason)
            return
        obj_namespace = str(metadata.get("namespace") or "")
        involved = {
            "apiVersion": str(obj.get("apiVersion") or ""),
            "kind": str(obj.get("kind") or ""),
            "name": name,
            "uid": str(metadata.get("uid") or ""),
            "resourceVersion": str(metadata.get("resourceVersion") or ""),
        }
        if obj_namespace:
            involved["namespace"] = obj_namespace
        involved = {k: v for k, v in involved.items() if v}
        message = truncate_message(message)
        identity = involved.get("uid") or f"{involved.get('kind')}/{obj_namespace}/{name}"
        key: _DedupKey = (identity, type, reason, message)

        now = self._clock.monotonic()
        sent = self._sent.get(key)
        if sent is None:
            sent = _Sent()
            self._sent[key] = sent
            if len(self._sent) > self._cache_size:
                self._sent.popitem(last=False)
        else:
            self._sent.move_to_end(key)
            if sent.sent_at is not None and now - sent.sent_at < self._dedup_window:
                self._log.debug("Event deduplicated", reason=reason, name=name)
                return
        sent.sent_at = now

        if len(self._pending) >= self._queue_size:
            dropped = self._pending.popleft()
            dropped.sent.sent_at = None
            self._log.warning(
                "Event queue full, dropping the oldest event",
                dropped_reason=dropped.reason,
                dropped_object=dropped.involved.get("name"),
                queue_size=self._queue_size,
            )
        self._pending.append(
            _Pending(
                sent=sent,
                involved=involved,
                # client-go files Events about cluster-scoped objects under "default".
                namespace=obj_namespace or "default",
                type=type,
                reason=reason,
                message=message,
                occurred=self._clock.now(),
            )
        )
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def run(self) -> None:
        """Post pending Events, one at a time, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup = loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
            await self._post(self._pending.popleft())

    async def _post(self, pending: _Pending) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._send(pending)
            except Exception as err:
                log = self._log.bind(
                    reason=pending.reason,
                    object=pending.involved.get("name"),
                    namespace=pending.namespace,
                    attempt=attempt,
                    error=str(err),
                )
                if attempt == self._max_attempts or not is_retriable(err):
                    log.error("Could not write event, giving up")
                    pending.sent.sent_at = None
                    return
                delay = min(self._retry_max, self._retry_base * 2 ** (attempt - 1))
                log.warning("Could not write event, will retry", retry_in=delay)
                await self._clock.sleep(delay)
            else:
                self._metrics.events.labels(pending.type, pending.reason).inc()
                return

    async def _send(self, pending: _Pending) -> None:
        sent = pending.sent
        last = format_timestamp(pending.occurred)
        if sent.name is not None:
            count = sent.count + 1
            try:
                await self._client.patch(
                    EVENTS,
                    sent.name,
                    {"count": count, "lastTimestamp": last},
                    patch_type="merge",
                    namespace=sent.namespace,
                )
            except Exception as err:
                if not is_not_found(err):
                    raise
                # Expired or deleted meanwhile: create it again, keeping its history.
                body = self._body(
                    pending, name=sent.name, count=count, first=sent.first_timestamp, last=last
                )
                await self._client.create(EVENTS, body, namespace=pending.namespace)
            sent.count = count
            return
        name = f"{pending.involved['name']}.{self._unique_nanos(pending.occurred):x}"
        body = self._body(pending, name=name, count=1, first=last, last=last)
        await self._client.create(EVENTS, body, namespace=pending.namespace)
        sent.name, sent.namespace, sent.count, sent.first_timestamp = (
            name,
            pending.namespace,
            1,
            last,
        )

    def _body(
        self, pending: _Pending, *, name: str, count: int, first: str, last: str
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": pending.namespace},
            "involvedObject": dict(pending.involved),
            "reason": pending.reason,
            "message": pending.message,
            "type": pending.type,
            "source": {"component": self.component},
            "firstTimestamp": first,
            "lastTimestamp": last,
            "count": count,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }

    def _unique_nanos(self, moment: datetime) -> int:
        # Two Events about one object in the same nanosecond (always so under a FakeClock)
        # would otherwise share a name and the second create would fail with 409.
        delta = moment - _EPOCH
        nanos = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
        nanos = max(nanos, self._last_nanos + 1)
        self._last_nanos = nanos
        return nanos
