"""The REST client: raw-dict calls to the Kubernetes API, with explicit content types.

Owns: two aiohttp sessions (one for ordinary requests, bounded by a total timeout; one for
watches, bounded only by a connect timeout and a socket-read timeout of the watch's own
timeout plus slack), request/response encoding with orjson, error classification into
`ApiError` / `TransportError`, and the client-go `rest_client_*` metrics.

Invariants:
- Objects are plain dicts parsed once from JSON; nothing here builds typed models.
- Every request carries `User-Agent`, `Accept: application/json` and the config's current
  authentication headers (asked for on each request, so rotated credentials are used).
- A 401 is retried once, and only when the credential source says new credentials may
  differ (an exec plugin, a rotated token file). Nothing else is retried here: callers
  (work queues, reflectors) own retry policy, using `is_retryable` and `retry_after`.
- `rest_client_requests_total{code,method,host}` counts every attempt, with code `<error>`
  when no HTTP answer came back (as client-go); `rest_client_request_duration_seconds
  {verb,host}` observes each attempt's latency (for a watch: until the response headers).
- Connections follow the config only: proxy environment variables and .netrc are ignored.
- Namespaced calls take the namespace from the argument, else from the body's
  `metadata.namespace`; neither is a `ValueError` before any I/O.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import aiohttp
import orjson
from prometheus_client import Counter, Histogram

from servicegroup.clock import Clock, RealClock
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.errors import ApiError, TransportError
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics

PatchType = Literal["merge", "strategic", "json"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
JSON_CONTENT_TYPE = "application/json"

Params = Mapping[str, str | int | bool | None]


def _encode_params(params: Params | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class WatchStream:
    """Parsed watch events of one open watch response, one per JSON line, as they arrive.

    Lines may span any number of network chunks and a chunk may hold many lines. The
    iteration ends at a clean end of stream; a broken stream raises `TransportError`.
    `abort()` (from another task) closes the response and ends the iteration quietly.
    """

    def __init__(self, response: aiohttp.ClientResponse, *, what: str) -> None:
        self._response = response
        self._what = what
        self._lines: deque[bytes] = deque()
        self._partial: list[bytes] = []
        self._eof = False
        self._aborted = False

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self) -> None:
        """Close the connection; a pending or later `__anext__` ends the iteration."""
        self._aborted = True
        self._response.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            if self._aborted:
                raise StopAsyncIteration
            while self._lines:
                line = self._lines.popleft()
                if line.strip():
                    return self._decode(line)
            if self._eof:
                tail = b"".join(self._partial)
                self._partial.clear()
                if tail.strip():
                    return self._decode(tail)
                raise StopAsyncIteration
            try:
                chunk = await self._response.content.readany()
            except (aiohttp.ClientError, OSError) as err:
                if self._aborted:
                    raise StopAsyncIteration from None
                raise TransportError(f"{self._what}: stream broken: {_describe(err)}") from err
            self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            self._eof = True
            return
        if b"\n" not in chunk:
            self._partial.append(chunk)
            return
        pieces = chunk.split(b"\n")
        self._partial.append(pieces[0])
        self._lines.append(b"".join(self._partial))
        self._lines.extend(pieces[1:-1])
        self._partial = [pieces[-1]] if pieces[-1] else []

    def _decode(self, line: bytes) -> dict[str, Any]:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise TransportError(
                f"{self._what}: malformed watch event ({len(line)} bytes): {err}"
            ) from err
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise TransportError(f"{self._what}: watch event without a type")
        return event


class KubeClient:
    """Raw-dict access to one API server. Use as `async with KubeClient(...) as client`."""

    def __init__(
        self,
        *,
        config: ClientConfig,
        metrics: Metrics,
        user_agent: str,
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        watch_read_slack: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._user_agent = user_agent
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._watch_read_slack = watch_read_slack
        self._clock: Clock = clock if clock is not None else RealClock()
        self._base = config.server.rstrip("/")
        self._host = urlsplit(self._base).netloc.rpartition("@")[2]
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None
        self._closed = False
        self._request_counters: dict[tuple[str, str], Counter] = {}
        self._request_durations: dict[str, Histogram] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close both sessions (idempotent); open watches end."""
        self._closed = True
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()
        self._session = self._watch_session = None

    # --- sessions

    def _new_session(self, timeout: aiohttp.ClientTimeout, *, limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.config.ssl, limit=limit)
        # Proxy variables and .netrc are ignored: the kubeconfig alone says how to connect.
        return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)

    def _request_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("KubeClient is closed")
        if self._session is None:
            self._session = self._new_session(
                aiohttp.ClientTimeout(total=self._request_timeout, connect=self._connect_timeout),
                limit=100,
            )
        return self._session

    def _watches_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("KubeClient is closed")
        if self._watch_session is None:
            # Each watch holds a connection for minutes: no pool limit.
            self._watch_session = self._new_session(
                aiohttp.ClientTimeout(total=None, connect=self._connect_timeout), limit=0
            )
        return self._watch_session

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"User-Agent": self._user_agent, "Accept": JSON_CONTENT_TYPE}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(await self.config.headers())
        return headers

    def _observe(self, method: str, code: str, started: float) -> None:
        # The labelled children are looked up once per (code, method): `labels()` with keyword
        # arguments costs more than the request's own bookkeeping (bounded: codes x verbs).
        counter = self._request_counters.get((code, method))
        if counter is None:
            counter = self._metrics.rest_client_requests.labels(
                code=code, method=method, host=self._host
            )
            self._request_counters[(code, method)] = counter
        counter.inc()
        duration = self._request_durations.get(method)
        if duration is None:
            duration = self._metrics.rest_client_request_duration.labels(
                verb=method, host=self._host
            )
            self._request_durations[method] = duration
        duration.observe(max(0.0, self._clock.monotonic() - started))

    # --- the transport

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[bytes, str]:
        """One request (two on a refreshable 401); the body and content type of a success."""
        session = self._request_session()
        url = self._base + path
        query = _encode_params(params)
        for attempt in range(2):
            headers = await self._headers(content_type)
            started = self._clock.monotonic()
            try:
                async with session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=headers,
                    server_hostname=self.config.tls_server_name,
                ) as response:
                    body = await response.read()
                    status = response.status
                    response_headers = response.headers
                    response_type = response.content_type
            except (aiohttp.ClientError, OSError) as err:
                self._observe(method, "<error>", started)
                raise TransportError(f"{method} {path}: {_describe(err)}") from err
            self._observe(method, str(status), started)
            if status == 401 and attempt == 0 and self.config.invalidate():
                continue
            if status >= 400:
                raise ApiError.from_response(status, body, headers=response_headers)
            return body, response_type
        raise AssertionError("unreachable: the loop returns or raises")

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        data = orjson.dumps(body) if body is not None else None
        raw, _ = await self._send(
            method,
            path,
            params=params,
            data=data,
            content_type=content_type or (JSON_CONTENT_TYPE if data is not None else None),
        )
        try:
            parsed = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as err:
            raise ApiError(200, "InvalidResponse", f"{method} {path}: not JSON: {err}") from err
        if not isinstance(parsed, dict):
            raise ApiError(200, "InvalidResponse", f"{method} {path}: not a JSON object")
        return parsed

    # --- namespaces

    @staticmethod
    def _namespace(ref: ResourceRef, namespace: str | None, body: Any = None) -> str | None:
        if not ref.namespaced:
            return None
        body_ns: str | None = None
        if isinstance(body, Mapping):
            metadata = body.get("metadata")
            if isinstance(metadata, Mapping) and metadata.get("namespace"):
                body_ns = str(metadata["namespace"])
        if namespace and body_ns and namespace != body_ns:
            raise ValueError(
                f"{ref.key}: namespace {namespace!r} does not match metadata.namespace {body_ns!r}"
            )
        resolved = namespace or body_ns
        if not resolved:
            raise ValueError(f"{ref.key} is namespaced: pass namespace= or set metadata.namespace")
        return resolved

    @staticmethod
    def _name_of(ref: ResourceRef, body: Mapping[str, Any]) -> str:
        metadata = body.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{ref.key}: the body has no metadata.name")
        return name

    # --- verbs

    async def get(
        self,
        ref: ResourceRef,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """GET one object (or its subresource)."""
        ns = self._namespace(ref, namespace)
        return await self._json("GET", ref.object_path(name, ns, subresource))

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
    ) -> dict[str, Any]:
        """One page of a collection (all namespaces when a namespaced ref gets none)."""
        ns = namespace if ref.namespaced else None
        params: dict[str, str | int | bool | None] = {
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
            "limit": limit,
            "continue": continue_token or None,
            "resourceVersion": resource_version,
            "resourceVersionMatch": resource_version_match,
        }
        return await self._json("GET", ref.collection_path(ns), params=params)

    @contextlib.asynccontextmanager
    async def watch(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[WatchStream]:
        """Open a watch; the stream yields `{"type": ..., "object": {...}}` dicts until EOF."""
        session = self._watches_session()
        ns = namespace if ref.namespaced else None
        path = ref.collection_path(ns)
        query = _encode_params(
            {
                "watch": True,
                "resourceVersion": resource_version,
                "labelSelector": label_selector or None,
                "fieldSelector": field_selector or None,
                "allowWatchBookmarks": True if allow_bookmarks else None,
                "timeoutSeconds": timeout_seconds,
            }
        )
        sock_read = timeout_seconds + self._watch_read_slack if timeout_seconds else None
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._connect_timeout, sock_read=sock_read
        )
        for attempt in range(2):
            headers = await self._headers(None)
            started = self._clock.monotonic()
            try:
                response = await session.get(
                    self._base + path,
                    params=query,
                    headers=headers,
                    timeout=timeout,
                    server_hostname=self.config.tls_server_name,
                )
            except (aiohttp.ClientError, OSError) as err:
                self._observe("GET", "<error>", started)
                raise TransportError(f"WATCH {path}: {_describe(err)}") from err
            self._observe("GET", str(response.status), started)
            if response.status == 200:
                break
            try:
                body = await response.read()
            except (aiohttp.ClientError, OSError) as err:
                raise TransportError(f"WATCH {path}: {_describe(err)}") from err
            finally:
                response.release()
            if response.status == 401 and attempt == 0 and self.config.invalidate():
                continue
            raise ApiError.from_response(response.status, body, headers=response.headers)
        try:
            yield WatchStream(response, what=f"WATCH {path}")
        finally:
            response.close()

    async def create(
        self,
        ref: ResourceRef,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """POST a new object."""
        ns = self._namespace(ref, namespace, body)
        return await self._json(
            "POST", ref.collection_path(ns), params={"fieldManager": field_manager}, body=body
        )

    async def replace(
        self,
        ref: ResourceRef,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """PUT a whole object (name from the body); a stale resourceVersion -> 409 Conflict."""
        ns = self._namespace(ref, namespace, body)
        path = ref.object_path(self._name_of(ref, body), ns, subresource)
        return await self._json("PUT", path, body=body)

    async def apply(
        self,
        ref: ResourceRef,
        body: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply (creates the object when absent). JSON is valid apply YAML."""
        ns = self._namespace(ref, namespace, body)
        path = ref.object_path(self._name_of(ref, body), ns, subresource)
        params = {"fieldManager": field_manager, "force": True if force else None}
        return await self._json(
            "PATCH", path, params=params, body=body, content_type=APPLY_CONTENT_TYPE
        )

    async def patch(
        self,
        ref: ResourceRef,
        name: str,
        body: Any,
        *,
        patch_type: PatchType,
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """PATCH with a merge, strategic-merge or JSON patch (a list of operations)."""
        content_type = PATCH_CONTENT_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(f"unknown patch type {patch_type!r}")
        ns = self._namespace(ref, namespace, body if isinstance(body, Mapping) else None)
        return await self._json(
            "PATCH",
            ref.object_path(name, ns, subresource),
            params={"fieldManager": field_manager},
            body=body,
            content_type=content_type,
        )

    async def delete(
        self,
        ref: ResourceRef,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        preconditions: Mapping[str, str] | None = None,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]:
        """DELETE one object; returns the Status or the object (still finalizing)."""
        ns = self._namespace(ref, namespace)
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        return await self._json("DELETE", ref.object_path(name, ns), body=options)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        """Any call by path. JSON answers are parsed, other answers returned as text."""
        data = orjson.dumps(json_body) if json_body is not None else None
        raw, response_type = await self._send(
            method.upper(),
            path,
            params=params,
            data=data,
            content_type=content_type or (JSON_CONTENT_TYPE if data is not None else None),
        )
        if not raw:
            return None
        if response_type.endswith("json"):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                raise ApiError(200, "InvalidResponse", f"{method} {path}: not JSON: {err}") from err
        return raw.decode("utf-8", "replace")
