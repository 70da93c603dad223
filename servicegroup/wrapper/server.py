"""The wrapper's HTTP API: list / get / watch of Services, Endpoints and EndpointSlices from
the watch cache, and everything else relayed to the API server.

Owns: request routing (which paths are ours), content negotiation (JSON only; a client that
accepts only protobuf, YAML or tables gets 406 so it falls back), query parameters
(`labelSelector`, `fieldSelector`, `resourceVersion`, `resourceVersionMatch`, `watch`,
`allowWatchBookmarks`, `timeoutSeconds`, `sendInitialEvents`), the watch streaming loop with
bookmarks, the listening socket, and the `servicegroup_wrapper_watchers` /
`_events_sent_total` metrics.

Semantics (kube-apiserver's, as served from its watch cache):
- A list answers the current state with the current RV; `limit` is ignored (no `continue`),
  as kube-apiserver does for lists served from its cache. `resourceVersionMatch=Exact` for an
  RV other than the current one, or an RV this process never issued, is 410 Expired.
- Items in a list carry no `kind`/`apiVersion`; objects in watch events do.
- A watch from "" or "0" first sends the current state as ADDED events; from an RV it sends
  exactly the events after it, or one ERROR event (410 Expired) when that RV is gone.
  `sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan` and bookmarks) ends the
  initial state with a BOOKMARK annotated `k8s.io/initial-events-end`.
- With `allowWatchBookmarks=true` an idle watch gets a BOOKMARK at the current RV every
  `bookmark_interval` seconds (also what keeps watches alive while the API server is away).
- A watch ends after `timeoutSeconds` (default: 30-60 minutes), when its client leaves, when
  it falls behind the event log, or at shutdown; it never leaks: the watcher is released and
  the gauge decremented in every case.
- Until the upstream caches have synced, our paths wait up to `sync_wait` seconds, then answer
  503 with Retry-After, so a client never mistakes an empty cache for an empty cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import NamedTuple, Protocol

import orjson
import structlog
from aiohttp import web

from servicegroup.kube.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES, ResourceRef
from servicegroup.metrics import Metrics
from servicegroup.settings import BindAddress
from servicegroup.wrapper.cache import (
    BOOKMARK,
    ERROR,
    INITIAL_EVENTS_END,
    ResourceExpired,
    WatchCache,
    Watcher,
    event_line,
)
from servicegroup.wrapper.proxy import status_body, status_response
from servicegroup.wrapper.selectors import (
    FieldSelector,
    Predicate,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

SERVED: dict[tuple[str, str, str], ResourceRef] = {
    (ref.group, ref.version, ref.plural): ref for ref in (SERVICES, ENDPOINTS, ENDPOINTSLICES)
}
JSON = "application/json"
_JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})


class Route(NamedTuple):
    """A request for one of the served resources."""

    ref: ResourceRef
    namespace: str | None
    name: str | None
    legacy_watch: bool  # /api/v1/watch/... paths


def match_route(path: str) -> Route | None:
    """The served resource a path names, or None (proxy it)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    legacy = bool(rest) and rest[0] == "watch"
    if legacy:
        rest = rest[1:]
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None  # a subresource, or not a resource path at all
    ref = SERVED.get((group, version, rest[0]))
    if ref is None:
        return None
    return Route(ref, namespace, rest[1] if len(rest) == 2 else None, legacy)


def accepts_json(header: str | None) -> bool:
    """Does the Accept header allow a plain JSON answer?"""
    if header is None or not header.strip():
        return True
    for media_range in header.split(","):
        media, *raw_params = (p.strip() for p in media_range.split(";"))
        params = {}
        for param in raw_params:
            key, _, value = param.partition("=")
            params[key.strip().lower()] = value.strip()
        if "as" in params:  # Table or PartialObjectMetadata: transformations we do not do
            continue
        if params.get("q", "1") in ("0", "0.0", "0.00", "0.000"):
            continue
        if media.lower() in _JSON_RANGES:
            return True
    return False


def _truthy(value: str | None) -> bool:
    # Go's strconv.ParseBool, which the API server uses for these parameters.
    return value is not None and value in ("1", "t", "T", "true", "TRUE", "True")


class Readiness(Protocol):
    def synced(self) -> bool: ...

    async def wait_synced(self) -> None: ...


class Proxy(Protocol):
    async def handle(self, request: web.Request) -> web.StreamResponse: ...


class WrapperServer:
    """The aiohttp application kube-proxy talks to."""

    def __init__(
        self,
        *,
        caches: dict[ResourceRef, WatchCache],
        readiness: Readiness,
        proxy: Proxy | None,
        metrics: Metrics,
        logger: structlog.typing.FilteringBoundLogger,
        bookmark_interval: float = 60.0,
        default_watch_timeout: float = 1800.0,
        sync_wait: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._caches = caches
        self._readiness = readiness
        self._proxy = proxy
        self._log = logger
        self._bookmark_interval = bookmark_interval
        self._default_watch_timeout = default_watch_timeout
        self._sync_wait = sync_wait
        self._rng = rng if rng is not None else random.Random()
        self._watchers_gauge = {
            ref: metrics.wrapper_watchers.labels(resource=ref.key) for ref in caches
        }
        self._sent = {
            (ref, kind): metrics.wrapper_events_sent.labels(resource=ref.key, type=kind)
            for ref in caches
            for kind in ("ADDED", "MODIFIED", "DELETED", BOOKMARK, ERROR)
        }
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._stopping = False

    # --- lifecycle

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, address: BindAddress) -> int:
        """Listen on `address` (port 0 picks one); returns the bound port."""
        # handler_cancellation: a client that leaves cancels its watch handler at once.
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, address.host or None, address.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else address.port
        self._log.info("serving", address=f"{address.host}:{self.port}")
        return self.port

    async def stop(self) -> None:
        """End every watch, then close the listener."""
        self._stopping = True
        for cache in self._caches.values():
            cache.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def run(
        self, address: BindAddress, *, started: Callable[[int], None] | None = None
    ) -> None:
        """Serve until cancelled."""
        try:
            port = await self.start(address)
            if started is not None:
                started(port)
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # --- dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = match_route(request.path)
        if route is None or request.method != "GET" or route.ref not in self._caches:
            if self._proxy is None:
                return status_response(404, "NotFound", "the server could not find the resource")
            return await self._proxy.handle(request)
        if not accepts_json(request.headers.get("Accept")):
            return status_response(
                406,
                "NotAcceptable",
                f"only the following media types are accepted: {JSON}",
            )
        if not await self._wait_ready():
            return status_response(
                503,
                "ServiceUnavailable",
                "the wrapper's cache is not synced with the API server yet",
                headers={"Retry-After": "1"},
            )
        cache = self._caches[route.ref]
        try:
            predicate = self._predicate(request, route)
        except SelectorError as err:
            return status_response(400, "BadRequest", str(err))
        query = request.query
        if route.legacy_watch or _truthy(query.get("watch")):
            return await self._watch(request, route, cache, predicate)
        if route.name is not None:
            return self._get(route, cache)
        return self._list(request, route, cache, predicate)

    async def _wait_ready(self) -> bool:
        if self._readiness.synced():
            return True
        try:
            async with asyncio.timeout(self._sync_wait):
                await self._readiness.wait_synced()
        except TimeoutError:
            return False
        return True

    def _predicate(self, request: web.Request, route: Route) -> Predicate:
        query = request.query
        fields = parse_field_selector(query.get("fieldSelector"), ref=route.ref)
        if route.name is not None:
            name_term = parse_field_selector(f"metadata.name={route.name}", ref=route.ref).terms
            fields = FieldSelector((*fields.terms, *name_term))
        return Predicate(
            namespace=route.namespace,
            labels=parse_label_selector(query.get("labelSelector")),
            fields=fields,
        )

    # --- get and list

    def _get(self, route: Route, cache: WatchCache) -> web.StreamResponse:
        assert route.name is not None
        key = f"{route.namespace}/{route.name}" if route.namespace else route.name
        obj = cache.get(key) if route.namespace else None
        if obj is None:
            return status_response(
                404,
                "NotFound",
                f'{route.ref.key} "{route.name}" not found',
                name=route.name,
                group=route.ref.group,
                kind=route.ref.plural,
            )
        return web.Response(body=orjson.dumps(obj), content_type=JSON)

    def _list(
        self, request: web.Request, route: Route, cache: WatchCache, predicate: Predicate
    ) -> web.StreamResponse:
        current = cache.resource_version
        requested = request.query.get("resourceVersion", "")
        if requested not in ("", "0"):
            try:
                rv = cache.parse_rv(requested)
            except ValueError as err:
                return status_response(400, "BadRequest", str(err))
            exact = request.query.get("resourceVersionMatch") == "Exact"
            if rv > current or (exact and rv != current):
                return status_response(
                    410, "Expired", f"too old resource version: {rv} ({cache.floor})"
                )
        matches = predicate.matches
        items = [
            {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
            for obj in cache.objects()
            if predicate.everything or matches(obj)
        ]
        body = {
            "kind": f"{route.ref.kind}List",
            "apiVersion": route.ref.api_version,
            "metadata": {"resourceVersion": str(current)},
            "items": items,
        }
        return web.Response(body=orjson.dumps(body), content_type=JSON)

    # --- watch

    def _timeout(self, text: str | None) -> float:
        try:
            value = float(text) if text else 0.0
        except ValueError:
            value = 0.0
        if value > 0:
            return value
        # kube-apiserver: a random timeout in [min-request-timeout, 2x] spreads reconnects.
        return self._default_watch_timeout * (1.0 + self._rng.random())

    async def _watch(
        self, request: web.Request, route: Route, cache: WatchCache, predicate: Predicate
    ) -> web.StreamResponse:
        query = request.query
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        send_initial_text = query.get("sendInitialEvents")
        send_initial = None if send_initial_text is None else _truthy(send_initial_text)
        if send_initial and (not bookmarks or query.get("resourceVersionMatch") != "NotOlderThan"):
            return status_response(
                422,
                "Invalid",
                "sendInitialEvents is forbidden for watch unless "
                "resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
            )
        timeout = self._timeout(query.get("timeoutSeconds"))
        response = web.StreamResponse(status=200)
        response.content_type = JSON
        response.headers["Cache-Control"] = "no-cache, private"
        response.enable_chunked_encoding()
        try:
            watcher = cache.watch(
                resource_version=query.get("resourceVersion", ""),
                predicate=predicate,
                send_initial=send_initial,
            )
        except ValueError as err:
            return status_response(400, "BadRequest", str(err))
        except ResourceExpired as err:
            # As kube-apiserver: a 200 whose only event is the 410 Status.
            await response.prepare(request)
            status = status_body(410, "Expired", str(err))
            await response.write(event_line(ERROR, orjson.dumps(status)))
            self._sent[(route.ref, ERROR)].inc()
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response
        gauge = self._watchers_gauge[route.ref]
        gauge.inc()
        try:
            await response.prepare(request)
            await self._stream(
                response=response,
                ref=route.ref,
                cache=cache,
                watcher=watcher,
                timeout=timeout,
                bookmarks=bookmarks,
                send_initial=send_initial,
            )
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
        except ConnectionResetError:
            pass  # the client left; the finally below releases everything
        finally:
            watcher.close()
            gauge.dec()
        return response

    async def _stream(
        self,
        *,
        response: web.StreamResponse,
        ref: ResourceRef,
        cache: WatchCache,
        watcher: Watcher,
        timeout: float,
        bookmarks: bool,
        send_initial: bool | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + self._bookmark_interval
        added = self._sent[(ref, "ADDED")]
        initial = watcher.take_initial()
        if initial:
            await response.write(b"".join(initial))
            added.inc(len(initial))
        if send_initial:
            await response.write(self._bookmark(ref, watcher.initial_rv, initial_end=True))
            self._sent[(ref, BOOKMARK)].inc()
        while True:
            batch = watcher.take()
            if batch:
                await response.write(b"".join(line for _, line in batch))
                for kind, _ in batch:
                    self._sent[(ref, kind)].inc()
                continue
            if watcher.closed:
                if watcher.behind:
                    self._log.info("watcher fell behind the event log; closing", resource=ref.key)
                return
            now = loop.time()
            if now >= deadline:
                return
            wait_for = deadline - now
            if bookmarks:
                wait_for = min(wait_for, max(0.0, next_bookmark - now))
            try:
                async with asyncio.timeout(wait_for):
                    await watcher.wait()
            except TimeoutError:
                if bookmarks and loop.time() >= next_bookmark and not watcher.pending:
                    # Everything up to the current RV has been sent to this watcher.
                    await response.write(self._bookmark(ref, cache.resource_version))
                    self._sent[(ref, BOOKMARK)].inc()
                    next_bookmark = loop.time() + self._bookmark_interval

    @staticmethod
    def _bookmark(ref: ResourceRef, rv: int, *, initial_end: bool = False) -> bytes:
        metadata: dict[str, object] = {"resourceVersion": str(rv)}
        if initial_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": ref.kind, "apiVersion": ref.api_version, "metadata": metadata}
        return event_line(BOOKMARK, orjson.dumps(obj))
