"""The list+watch loop that keeps a sink equal to the server's view of one collection.

Owns: `Reflector` (client-go tools/cache `Reflector` semantics in asyncio), its `Backoff`
and the seams it runs against (`ListWatchClient`, `ReflectorSink`).

The loop:
1. List in pages (`limit` + `continue`). A continue token that expired (410) restarts the
   list once without a limit, as client-go's pager does. Items get `apiVersion`/`kind`
   (the server omits them in lists), pass through `transform` (when given) as their page
   arrives, so a big list never holds every raw object at once, and go to
   `sink.replace(items, list_rv)`.
2. Watch from the list's resourceVersion with `allowWatchBookmarks=true` and a
   `timeoutSeconds` drawn uniformly from [min_watch_timeout, max_watch_timeout] (spreads
   the reconnects of many informers). Every event's and BOOKMARK's resourceVersion becomes
   the RV the next watch starts from.
3. A watch that ends cleanly (server timeout, EOF) or breaks mid-stream is re-opened from
   the last RV without a relist. A 410 (ERROR event in the stream, or the answer to the
   watch request) means that RV is gone: relist. A silent stream past `inactivity_timeout`
   is aborted and re-opened.
4. Errors back off exponentially (0.8 s doubling to 30 s, jittered, reset after two quiet
   minutes); a Retry-After is honoured when longer. Transient errors (transport, 5xx, 429)
   re-open the watch from the last RV; other 4xx answers relist. A watch that ended without
   delivering anything and lasted under a second also backs off, so a server that hangs up
   at once cannot make us spin.

Invariants:
- The sink is called synchronously, in stream order, from this reflector's task only.
- `last_sync_resource_version` never goes backwards within one list+watch cycle.
- `CancelledError` always propagates; `run()` returns only by cancellation, or by raising
  an exception that is not an `ApiError` (a bug in the sink or a transform: not retried).
- Metrics: `servicegroup_informer_relists_total{resource}` per full list (initial one
  included); `servicegroup_informer_watch_restarts_total{resource,reason}` per watch that
  ended or failed to start, reason one of timeout, eof, expired, error, inactive.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from servicegroup.clock import Clock
from servicegroup.kube.errors import ApiError, TransportError, is_gone, is_retryable
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics

MIN_HEALTHY_WATCH = 1.0


class WatchEvents(Protocol):
    """An open watch: parsed events until the stream ends, and a way to end it early."""

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    def abort(self) -> None: ...


class ListWatchClient(Protocol):
    """The two calls a reflector makes (`KubeClient` provides them)."""

    async def list(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> dict[str, Any]: ...

    def watch(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AbstractAsyncContextManager[WatchEvents]: ...


class ReflectorSink(Protocol):
    """Where a reflector delivers what it learns (an informer)."""

    def replace(self, objects: list[dict[str, Any]], resource_version: str) -> None:
        """The full content after a list (already through the reflector's transform)."""
        ...

    def added(self, obj: dict[str, Any]) -> None: ...

    def modified(self, obj: dict[str, Any]) -> None: ...

    def deleted(self, obj: dict[str, Any]) -> None: ...


class Backoff:
    """Exponential delays with jitter that forget old failures (client-go backoff manager)."""

    def __init__(
        self,
        *,
        clock: Clock,
        rng: random.Random,
        initial: float = 0.8,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._initial = initial
        self._cap = cap
        self._factor = factor
        self._jitter = jitter
        self._reset_after = reset_after
        self._failures = 0
        self._last: float | None = None

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts as one more failure."""
        now = self._clock.monotonic()
        if self._last is not None and now - self._last >= self._reset_after:
            self._failures = 0
        base = min(self._cap, self._initial * self._factor**self._failures)
        self._failures += 1
        self._last = now
        return min(self._cap, base * (1.0 + self._jitter * self._rng.random()))

    def reset(self) -> None:
        self._failures = 0
        self._last = None


@dataclass
class _Activity:
    last: float
    events: int = 0
    inactive: bool = False


@dataclass(frozen=True)
class _WatchEnd:
    reason: str  # timeout, eof, expired, error, inactive
    relist: bool
    productive: bool
    error: ApiError | None = None


class Reflector:
    """Keeps `sink` equal to one collection (optionally filtered) of one resource."""

    def __init__(
        self,
        *,
        client: ListWatchClient,
        ref: ResourceRef,
        sink: ReflectorSink,
        clock: Clock,
        metrics: Metrics,
        logger: structlog.typing.FilteringBoundLogger,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        min_watch_timeout: int = 300,
        max_watch_timeout: int = 600,
        inactivity_timeout: float = 180.0,
        backoff_initial: float = 0.8,
        backoff_cap: float = 30.0,
        backoff_reset_after: float = 120.0,
        rng: random.Random | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if not 0 < min_watch_timeout <= max_watch_timeout:
            raise ValueError("need 0 < min_watch_timeout <= max_watch_timeout")
        self._client = client
        self.ref = ref
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self.namespace = namespace if ref.namespaced else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._page_size = page_size
        self._min_watch_timeout = min_watch_timeout
        self._max_watch_timeout = max_watch_timeout
        self._inactivity_timeout = inactivity_timeout
        self._rng = rng if rng is not None else random.Random()
        self._backoff = Backoff(
            clock=clock,
            rng=self._rng,
            initial=backoff_initial,
            cap=backoff_cap,
            reset_after=backoff_reset_after,
        )
        self._resource = ref.key
        self._log = logger.bind(resource=ref.key, namespace=self.namespace or "")
        self._last_rv = ""
        self._transform = transform

    @property
    def last_sync_resource_version(self) -> str:
        """The resourceVersion the next watch starts from ("" before the first list)."""
        return self._last_rv

    async def run(self) -> None:
        """List, then watch and re-watch, until cancelled."""
        need_list = True
        while True:
            if need_list:
                try:
                    await self._list()
                except ApiError as err:
                    await self._back_off(err, what="list")
                    continue
                need_list = False
            end = await self._watch_once()
            self._metrics.informer_watch_restarts.labels(
                resource=self._resource, reason=end.reason
            ).inc()
            need_list = end.relist
            if end.error is not None and not (end.reason == "expired" and end.productive):
                await self._back_off(end.error, what="watch")
            elif not end.productive:
                await self._back_off(None, what="watch")
            else:
                self._log.debug("watch ended", reason=end.reason, rv=self._last_rv)

    async def _back_off(self, err: ApiError | None, *, what: str) -> None:
        delay = self._backoff.next_delay()
        if err is not None and err.retry_after is not None:
            delay = max(delay, err.retry_after)
        if err is None:
            self._log.debug(f"{what} ended at once; backing off", delay=round(delay, 3))
        else:
            self._log.warning(
                f"{what} failed; backing off",
                error=str(err),
                status=err.status,
                delay=round(delay, 3),
            )
        await self._clock.sleep(delay)

    # --- list

    async def _list(self) -> None:
        self._metrics.informer_relists.labels(resource=self._resource).inc()
        items: list[dict[str, Any]] = []
        continue_token: str | None = None
        limit: int | None = self._page_size if self._page_size > 0 else None
        api_version, kind, transform = self.ref.api_version, self.ref.kind, self._transform
        while True:
            try:
                page = await self._client.list(
                    self.ref,
                    namespace=self.namespace,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    limit=limit,
                    continue_token=continue_token,
                )
            except ApiError as err:
                if continue_token is not None and is_gone(err):
                    # The snapshot behind the token was compacted: one unpaged consistent list.
                    self._log.info("list continue token expired; listing without paging")
                    items, continue_token, limit = [], None, None
                    continue
                raise
            page_items = page.get("items") or []
            for item in page_items:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
            items.extend(page_items if transform is None else map(transform, page_items))
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue") or None
            del page, page_items  # the raw page is garbage before the next one is fetched
            if continue_token is None:
                resource_version = str(metadata.get("resourceVersion") or "")
                break
        self._sink.replace(items, resource_version)
        self._last_rv = resource_version
        self._log.info("listed", count=len(items), rv=resource_version)

    # --- watch

    async def _watch_once(self) -> _WatchEnd:
        timeout = self._rng.randint(self._min_watch_timeout, self._max_watch_timeout)
        started = self._clock.monotonic()
        activity = _Activity(last=started)
        opened = False
        try:
            async with self._client.watch(
                self.ref,
                namespace=self.namespace,
                resource_version=self._last_rv or None,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                allow_bookmarks=True,
                timeout_seconds=timeout,
            ) as stream:
                opened = True
                watchdog = asyncio.create_task(
                    self._watchdog(stream, activity), name=f"reflector-watchdog:{self._resource}"
                )
                try:
                    async for event in stream:
                        activity.last = self._clock.monotonic()
                        activity.events += 1
                        end = self._handle(event, productive=activity.events > 1)
                        if end is not None:
                            return end
                finally:
                    watchdog.cancel()
                    await asyncio.wait({watchdog})
        except TransportError as err:
            if not opened:
                return _WatchEnd("error", relist=False, productive=False, error=err)
            # The stream broke after it opened: the connection went away, not the RV.
            return self._clean_end(started, timeout, activity, broken=True)
        except ApiError as err:
            if is_gone(err):
                return _WatchEnd("expired", relist=True, productive=False, error=err)
            return _WatchEnd("error", relist=not is_retryable(err), productive=False, error=err)
        if activity.inactive:
            self._log.info("watch silent too long; re-watching", rv=self._last_rv)
            return _WatchEnd("inactive", relist=False, productive=True)
        return self._clean_end(started, timeout, activity, broken=False)

    def _clean_end(
        self, started: float, timeout: int, activity: _Activity, *, broken: bool
    ) -> _WatchEnd:
        elapsed = self._clock.monotonic() - started
        reason = "timeout" if elapsed >= timeout else "eof"
        productive = activity.events > 0 or elapsed >= MIN_HEALTHY_WATCH
        if broken:
            self._log.info("watch stream broke; re-watching", rv=self._last_rv)
        return _WatchEnd(reason, relist=False, productive=productive)

    async def _watchdog(self, stream: WatchEvents, activity: _Activity) -> None:
        while True:
            remaining = activity.last + self._inactivity_timeout - self._clock.monotonic()
            if remaining <= 0:
                activity.inactive = True
                stream.abort()
                return
            await self._clock.sleep(remaining)

    def _handle(self, event: dict[str, Any], *, productive: bool) -> _WatchEnd | None:
        kind = event.get("type")
        obj = event.get("object")
        if kind == "ERROR":
            err = ApiError.from_status(obj if isinstance(obj, dict) else {})
            if is_gone(err):
                self._log.info("watch expired; relisting", rv=self._last_rv, error=str(err))
                return _WatchEnd("expired", relist=True, productive=productive, error=err)
            return _WatchEnd("error", relist=False, productive=productive, error=err)
        if not isinstance(obj, dict):
            err = ApiError(0, "InvalidWatchEvent", f"{kind} event without an object")
            return _WatchEnd("error", relist=False, productive=productive, error=err)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            pass
        elif kind == "ADDED":
            self._sink.added(obj)
        elif kind == "MODIFIED":
            self._sink.modified(obj)
        elif kind == "DELETED":
            self._sink.deleted(obj)
        else:
            err = ApiError(0, "InvalidWatchEvent", f"unknown watch event type {kind!r}")
            return _WatchEnd("error", relist=False, productive=productive, error=err)
        if rv:
            self._last_rv = str(rv)
        return None
