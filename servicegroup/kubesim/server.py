"""The HTTP face of kubesim: kube-apiserver's REST and watch protocol on aiohttp.

Owns: path parsing (`/api/v1/...`, `/apis/{group}/{version}/...`, namespaced and cluster
scoped, collections, objects, subresources, the legacy `/watch/` prefix), query parameters,
content negotiation (JSON, YAML, `as=Table`, `as=PartialObjectMetadata[List]`, aggregated
discovery, protobuf refused with 406), request bodies for every verb and patch type,
watch streaming (chunked JSON lines, bookmarks, `timeoutSeconds`, 410 as an `ERROR` event),
discovery and OpenAPI endpoints, `/kubesim/requests` and `/kubesim/faults`, and turning
`ApiError` into `Status` responses.

Invariants:
- Every resource request is counted (accounting) and passed through fault injection before
  it reaches the engine; `/kubesim/*` endpoints are neither counted nor faulted.
- Error responses are `Status` JSON with `Content-Type: application/json` and the Status
  code as HTTP status; every response carries an `Audit-Id`.
- A watch stream is one request task: it drains its watcher's queue in batches and never
  spawns tasks; it ends on timeout, when its watcher is closed (slow client, closeWatches
  fault) or when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import yaml
from aiohttp import web

from servicegroup.kubesim import discovery, errors, tables
from servicegroup.kubesim.accounting import RequestCounter
from servicegroup.kubesim.engine import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    STRATEGIC_PATCH,
    DeleteOptions,
    Engine,
    WriteContext,
    manager_from_user_agent,
)
from servicegroup.kubesim.faults import FaultInjector
from servicegroup.kubesim.registry import ResourceType
from servicegroup.kubesim.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from servicegroup.kubesim.store import BOOKMARK, ERROR, ObjectStore, Watcher, clone

Obj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON = "application/json"
YAML = "application/yaml"
TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
TABLE_V1BETA1 = "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
ACCEPTED_MEDIA = (JSON, YAML, "application/vnd.kubernetes.protobuf")
MAX_BODY = 3 * 1024 * 1024 + 512 * 1024
DEFAULT_WATCH_TIMEOUT = 1800.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class OpenAPIProvider(Protocol):
    """What the server needs of openapi.OpenAPIBuilder."""

    def v3_index(self) -> dict[str, Any]: ...

    def v3_group_version(self, path: str) -> dict[str, Any] | None: ...

    def v2(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RequestInfo:
    """What a resource request is about (apiserver's RequestInfo)."""

    verb: str
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass(frozen=True)
class Negotiated:
    """The response form the client asked for."""

    form: str  # json | yaml | table | metadata
    content_type: str
    table_version: str = "v1"


def _status_response(error: errors.ApiError) -> web.Response:
    headers = {"Audit-Id": str(uuid.uuid4()), **error.headers}
    return web.Response(
        body=orjson.dumps(error.status),
        status=error.code,
        content_type=JSON,
        headers=headers,
    )


def warning_header(text: str) -> str:
    """A `Warning` header value as the apiserver writes it: `299 - "..."`, `"` and `\\`
    escaped."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


def _parse_accept(accept: str) -> list[tuple[str, dict[str, str]]]:
    ranges = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";") if p.strip()]
        if not pieces:
            continue
        params = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip()] = value.strip()
        ranges.append((pieces[0].lower(), params))
    return ranges


def negotiate(accept: str | None, *, allow_table: bool) -> Negotiated:
    """Pick the first media range of `Accept` kubesim can produce (406 when none)."""
    if not accept:
        return Negotiated("json", JSON)
    for media, params in _parse_accept(accept):
        if media not in ("application/json", "*/*", "application/*", "application/yaml"):
            continue
        as_kind = params.get("as")
        if as_kind is None:
            if media == "application/yaml":
                return Negotiated("yaml", YAML)
            return Negotiated("json", JSON)
        if params.get("g") != "meta.k8s.io" or media == "application/yaml":
            continue
        version = params.get("v", "")
        if version not in ("v1", "v1beta1"):
            continue
        if as_kind == "Table" and allow_table:
            return Negotiated(
                "table", TABLE_V1 if version == "v1" else TABLE_V1BETA1, table_version=version
            )
        if as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return Negotiated(
                "metadata",
                f"application/json;as={as_kind};v={version};g=meta.k8s.io",
                table_version=version,
            )
    raise errors.not_acceptable(ACCEPTED_MEDIA)


def _partial(obj: Obj, version: str) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata", {}),
    }


class KubeServer:
    """The aiohttp application of kubesim."""

    def __init__(
        self,
        *,
        engine: Engine,
        requests: RequestCounter,
        faults: FaultInjector,
        openapi: OpenAPIProvider | None = None,
        bookmark_interval: float = 60.0,
        server_address: Callable[[], str] = lambda: "127.0.0.1:0",
        extra_routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        self.engine = engine
        self.store: ObjectStore = engine.store
        self.registry = engine.registry
        self.requests = requests
        self.faults = faults
        self.openapi = openapi
        self.bookmark_interval = bookmark_interval
        self._server_address = server_address
        self._extra_routes = extra_routes

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.router.add_route("GET", "/kubesim/requests", self._get_requests)
        app.router.add_route("DELETE", "/kubesim/requests", self._reset_requests)
        app.router.add_route("GET", "/kubesim/faults", self._get_faults)
        app.router.add_route("POST", "/kubesim/faults", self._post_faults)
        if self._extra_routes is not None:
            self._extra_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    # ---- middleware and kubesim endpoints ----------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.ApiError as err:
            return _status_response(err)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as err:  # an engine bug must still answer like an apiserver
            return _status_response(errors.internal(f"{type(err).__name__}: {err}"))

    async def _get_requests(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.requests.to_json()), content_type=JSON)

    async def _reset_requests(self, request: web.Request) -> web.Response:
        self.requests.reset()
        return web.Response(body=orjson.dumps(self.requests.to_json()), content_type=JSON)

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.faults.to_json()), content_type=JSON)

    async def _post_faults(self, request: web.Request) -> web.Response:
        from servicegroup.kubesim.faults import FaultError

        try:
            spec = orjson.loads(await request.read() or b"{}")
            actions = self.faults.apply_json(spec)
        except (orjson.JSONDecodeError, FaultError) as err:
            raise errors.bad_request(str(err)) from None
        result: dict[str, Any] = {"faults": self.faults.to_json()}
        if actions["closeWatches"]:
            result["closedWatches"] = self.store.close_all_watches()
        if actions["expireHistory"]:
            self.store.expire_history()
            result["historyExpiredAt"] = str(self.store.resource_version)
        return web.Response(body=orjson.dumps(result), content_type=JSON)

    # ---- routing -----------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p != ""]
        user_agent = request.headers.get("User-Agent", "")
        if (
            not parts
            or parts[0] not in ("api", "apis")
            or (parts[0] == "api" and len(parts) < 2)
            or (parts[0] == "apis" and len(parts) < 3)
        ):
            self.requests.record(verb="get", resource="", user_agent=user_agent)
            return await self._non_resource(request, parts)
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            self.requests.record(verb="get", resource="", user_agent=user_agent)
            return self._resource_list(request, group, version)
        info = self._request_info(request, group, version, rest)
        self.requests.record(
            verb=info.verb,
            resource=info.rt.key,
            subresource=info.subresource or "",
            user_agent=user_agent,
        )
        decision = self.faults.decide(info.verb, info.rt.key)
        if decision.delay > 0:
            await asyncio.sleep(decision.delay)
        if decision.code is not None:
            raise errors.from_code(
                decision.code,
                f"kubesim injected fault: {decision.code} for {info.verb} {info.rt.key}",
                retry_after=decision.retry_after,
            )
        return await self._resource(request, info)

    def _request_info(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> RequestInfo:
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        namespace: str | None = None
        if (
            rest
            and rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.resource_not_found()
        rt = self.registry.get(group, version, rest[0])
        if rt is None:
            raise errors.resource_not_found()
        if namespace is not None and not rt.namespaced:
            raise errors.resource_not_found()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in rt.subresources:
            raise errors.resource_not_found()
        method = request.method
        watch = watch_prefix or _truthy(request.query.get("watch"))
        if method == "GET":
            if watch:
                verb = "watch"
            else:
                verb = "get" if name is not None else "list"
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name is not None else "deletecollection"
        else:
            raise errors.method_not_allowed()
        return RequestInfo(verb, rt, namespace, name, subresource)

    # ---- non-resource endpoints ----------------------------------------------------------

    def _json(self, body: Any, *, content_type: str = JSON, status: int = 200) -> web.Response:
        response = web.Response(body=orjson.dumps(body), status=status)
        response.headers["Content-Type"] = content_type
        response.headers["Audit-Id"] = str(uuid.uuid4())
        return response

    async def _non_resource(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        path = "/" + "/".join(parts)
        accept = request.headers.get("Accept", "")
        if path == "/version":
            return self._json(discovery.version_info())
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path in ("/api", "/apis"):
            aggregated = discovery.negotiate_aggregated(accept)
            if aggregated is not None:
                body = discovery.aggregated(
                    self.registry, legacy=path == "/api", version=aggregated
                )
                content_type = (
                    discovery.AGGREGATED_V2 if aggregated == "v2" else discovery.AGGREGATED_V2BETA1
                )
                return self._json(body, content_type=content_type)
            if path == "/api":
                return self._json(discovery.api_versions(self._server_address()))
            return self._json(discovery.api_group_list(self.registry))
        if parts[0] == "apis" and len(parts) == 2:
            group = discovery.api_group(self.registry, parts[1])
            if group is None:
                raise errors.resource_not_found()
            return self._json(group)
        if parts and parts[0] == "openapi":
            return self._openapi(parts, accept)
        raise errors.resource_not_found()

    def _openapi(self, parts: list[str], accept: str) -> web.Response:
        if self.openapi is None:
            raise errors.resource_not_found()
        wants_json = not accept or any(
            media in ("application/json", "*/*", "application/*")
            for media, _ in _parse_accept(accept)
        )
        if not wants_json:
            # kubectl asks for protobuf first and falls back to JSON on 406.
            raise errors.not_acceptable(("application/json",))
        if parts[1:] == ["v2"]:
            return self._json(self.openapi.v2())
        if parts[1:] == ["v3"]:
            return self._json(self.openapi.v3_index())
        if len(parts) > 2 and parts[1] == "v3":
            document = self.openapi.v3_group_version("/".join(parts[2:]))
            if document is None:
                raise errors.resource_not_found()
            return self._json(document)
        raise errors.resource_not_found()

    def _resource_list(self, request: web.Request, group: str, version: str) -> web.Response:
        body = discovery.api_resource_list(self.registry, group, version)
        if body is None:
            raise errors.resource_not_found()
        return self._json(body)

    # ---- resource requests -------------------------------------------------------------

    async def _resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        rt = info.rt
        if info.subresource == "scale":
            return await self._scale(request, info)
        if info.verb == "get":
            assert info.name is not None
            negotiated = negotiate(request.headers.get("Accept"), allow_table=True)
            obj = self.engine.get(rt, info.namespace, info.name)
            return self._object_response(rt, obj, negotiated, request)
        if info.verb == "list":
            return self._list(request, info)
        if info.verb == "watch":
            return await self._watch(request, info)
        if info.verb == "deletecollection":
            return await self._delete_collection(request, info)
        if info.verb == "delete":
            return await self._delete(request, info)
        ctx = self._write_context(request, apply=False)
        negotiated = negotiate(request.headers.get("Accept"), allow_table=False)
        if info.verb == "create":
            if info.name is not None:
                raise errors.method_not_allowed()
            body = await self._read_body(request)
            obj = self.engine.create(rt, info.namespace, body, ctx)
            return self._object_response(rt, obj, negotiated, request, status=201, ctx=ctx)
        assert info.name is not None
        if info.verb == "update":
            body = await self._read_body(request)
            obj, created = self.engine.update(
                rt, info.namespace, info.name, body, ctx, subresource=info.subresource
            )
            return self._object_response(
                rt, obj, negotiated, request, status=201 if created else 200, ctx=ctx
            )
        patch_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if patch_type not in PATCH_TYPES:
            allowed = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH) if rt.crd else PATCH_TYPES
            raise errors.unsupported_media_type(patch_type, allowed)
        raw = await request.read()
        if patch_type == APPLY_PATCH:
            ctx.manager = request.query.get("fieldManager", "")
            patch_body: Any = raw
        else:
            try:
                patch_body = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                raise errors.bad_request(f"error decoding patch: {err}") from None
        force = _truthy(request.query.get("force"))
        if request.query.get("force") is not None and patch_type != APPLY_PATCH and force:
            pass  # the engine answers 422 for force on a non-apply patch
        obj, created = self.engine.patch(
            rt,
            info.namespace,
            info.name,
            patch_type,
            patch_body,
            ctx=ctx,
            subresource=info.subresource,
            force=force,
        )
        return self._object_response(
            rt, obj, negotiated, request, status=201 if created else 200, ctx=ctx
        )

    def _write_context(self, request: web.Request, *, apply: bool) -> WriteContext:
        query = request.query
        dry_run = query.getall("dryRun", [])
        for value in dry_run:
            if value != "All":
                raise errors.invalid(
                    "meta.k8s.io",
                    "CreateOptions",
                    "",
                    [
                        errors.FieldCause(
                            "FieldValueNotSupported",
                            f'Unsupported value: "{value}": supported values: "All"',
                            "dryRun",
                        )
                    ],
                )
        validation = query.get("fieldValidation", "") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f"fieldValidation must be one of 'Ignore', 'Warn', or 'Strict', got {validation!r}"
            )
        manager = query.get("fieldManager", "")
        if len(manager) > 128:
            raise errors.invalid(
                "meta.k8s.io",
                "CreateOptions",
                "",
                [
                    errors.FieldCause(
                        "FieldValueTooLong",
                        "Too long: may not be more than 128 bytes",
                        "fieldManager",
                    )
                ],
            )
        if not manager and not apply:
            manager = manager_from_user_agent(request.headers.get("User-Agent", ""))
        return WriteContext(manager=manager, dry_run=bool(dry_run), field_validation=validation)

    async def _read_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise errors.bad_request("the body of the request was empty")
        content_type = (request.headers.get("Content-Type") or JSON).split(";")[0].strip().lower()
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as err:
                raise errors.bad_request(f"error decoding YAML: {err}") from None
        if content_type not in ("application/json", "*/*", ""):
            raise errors.unsupported_media_type(content_type, (JSON, YAML))
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as err:
                raise errors.bad_request(f"error decoding body: {err}") from None

    def _object_response(
        self,
        rt: ResourceType,
        obj: Obj,
        negotiated: Negotiated,
        request: web.Request,
        *,
        status: int = 200,
        ctx: WriteContext | None = None,
    ) -> web.Response:
        if negotiated.form == "table":
            body: Any = self._table(rt, [obj], {"resourceVersion": ""}, request)
        elif negotiated.form == "metadata":
            body = _partial(obj, negotiated.table_version)
        else:
            body = obj
        response = self._render(body, negotiated, status=status)
        if ctx is not None:
            for warning in dict.fromkeys(ctx.warnings):  # the recorder drops duplicates
                response.headers.add("Warning", warning_header(warning))
        return response

    def _render(self, body: Any, negotiated: Negotiated, *, status: int = 200) -> web.Response:
        if negotiated.form == "yaml":
            data = yaml.safe_dump(body, sort_keys=False).encode()
        else:
            data = orjson.dumps(body)
        response = web.Response(body=data, status=status)
        response.headers["Content-Type"] = negotiated.content_type
        response.headers["Audit-Id"] = str(uuid.uuid4())
        return response

    def _table(
        self, rt: ResourceType, objects: list[Obj], list_meta: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        include = request.query.get("includeObject", "Metadata")
        if include not in ("None", "Metadata", "Object"):
            include = "Metadata"
        columns = list(rt.printer_columns) if rt.crd is not None else None
        return tables.to_table(
            group=rt.group,
            kind=rt.kind,
            objects=objects,
            list_meta=list_meta,
            columns=columns,
            include_object=include,
            now=self.engine.clock.now(),
        )

    def _selectors(self, request: web.Request, rt: ResourceType) -> tuple[Any, Any]:
        try:
            labels = parse_label_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(
                request.query.get("fieldSelector"), allowed=rt.field_selectors
            )
        except SelectorError as err:
            raise errors.bad_request(str(err)) from None
        return labels, fields

    def _list(self, request: web.Request, info: RequestInfo) -> web.Response:
        rt = info.rt
        negotiated = negotiate(request.headers.get("Accept"), allow_table=True)
        labels, fields = self._selectors(request, rt)
        query = request.query
        try:
            limit = int(query.get("limit", "0") or 0)
        except ValueError:
            raise errors.bad_request(f"invalid limit {query.get('limit')!r}") from None
        result = self.engine.list(
            rt,
            info.namespace,
            labels=labels,
            fields=fields,
            limit=max(limit, 0),
            continue_token=query.get("continue", ""),
            resource_version=query.get("resourceVersion", ""),
            resource_version_match=query.get("resourceVersionMatch", ""),
        )
        list_meta: dict[str, Any] = {"resourceVersion": result.resource_version}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
        if result.remaining is not None:
            list_meta["remainingItemCount"] = result.remaining
        if negotiated.form == "table":
            body: Any = self._table(rt, result.items, list_meta, request)
        elif negotiated.form == "metadata":
            body = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": f"meta.k8s.io/{negotiated.table_version}",
                "metadata": list_meta,
                "items": [_partial(obj, negotiated.table_version) for obj in result.items],
            }
        else:
            items: list[Obj] = result.items
            if rt.crd is None:
                # Typed lists carry no apiVersion/kind on their items.
                items = [
                    {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
                    for obj in items
                ]
            body = {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": list_meta,
                "items": items,
            }
        return self._render(body, negotiated)

    async def _delete(self, request: web.Request, info: RequestInfo) -> web.Response:
        assert info.name is not None
        rt = info.rt
        ctx = self._write_context(request, apply=False)
        options = await self._delete_options(request)
        negotiated = negotiate(request.headers.get("Accept"), allow_table=False)
        obj, deleted = self.engine.delete(rt, info.namespace, info.name, ctx, options=options)
        from servicegroup.kubesim.strategies import returns_deleted_object

        status = 200
        if not deleted and options.orphan_dependents is False:
            status = 202
        if deleted and not returns_deleted_object(rt):
            meta = obj.get("metadata", {})
            details: dict[str, Any] = {"name": meta.get("name", "")}
            if rt.group:
                details["group"] = rt.group
            details["kind"] = rt.plural
            details["uid"] = meta.get("uid", "")
            body: Any = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
            return self._render(body, negotiated, status=status)
        return self._object_response(rt, obj, negotiated, request, status=status, ctx=ctx)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        body: Any = {}
        raw = await request.read()
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                raise errors.bad_request(f"error decoding DeleteOptions: {err}") from None
            if not isinstance(body, dict):
                raise errors.bad_request("DeleteOptions must be a JSON object")
        query = request.query
        grace: int | None = body.get("gracePeriodSeconds")
        if query.get("gracePeriodSeconds") is not None:
            try:
                grace = int(query["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("invalid gracePeriodSeconds") from None
        policy = query.get("propagationPolicy") or body.get("propagationPolicy")
        if policy is not None and policy not in ("Background", "Foreground", "Orphan"):
            raise errors.invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                [
                    errors.FieldCause(
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", '
                        '"Background", "Orphan", "nil"',
                        "propagationPolicy",
                    )
                ],
            )
        orphan: bool | None = body.get("orphanDependents")
        if query.get("orphanDependents") is not None:
            orphan = _truthy(query.get("orphanDependents"))
        if orphan is not None and policy is not None:
            raise errors.invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                [
                    errors.forbidden_field(
                        "propagationPolicy",
                        "orphanDependents and deletionPropagation cannot be both set",
                    )
                ],
            )
        preconditions = body.get("preconditions") or {}
        return DeleteOptions(
            propagation_policy=policy,
            grace_period_seconds=grace,
            orphan_dependents=orphan,
            precondition_uid=preconditions.get("uid"),
            precondition_resource_version=preconditions.get("resourceVersion"),
        )

    async def _delete_collection(self, request: web.Request, info: RequestInfo) -> web.Response:
        rt = info.rt
        ctx = self._write_context(request, apply=False)
        options = await self._delete_options(request)
        labels, fields = self._selectors(request, rt)
        negotiated = negotiate(request.headers.get("Accept"), allow_table=False)
        result = self.engine.delete_collection(
            rt, info.namespace, ctx, labels=labels, fields=fields, options=options
        )
        body = {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": result.resource_version},
            "items": result.items,
        }
        return self._render(body, negotiated)

    # ---- scale subresource -------------------------------------------------------------

    async def _scale(self, request: web.Request, info: RequestInfo) -> web.Response:
        rt = info.rt
        assert info.name is not None
        negotiated = negotiate(request.headers.get("Accept"), allow_table=False)
        obj = self.engine.get(rt, info.namespace, info.name)
        if info.verb == "get":
            return self._render(_scale_of(obj), negotiated)
        if info.verb not in ("update", "patch"):
            raise errors.method_not_allowed()
        ctx = self._write_context(request, apply=False)
        current = _scale_of(obj)
        if info.verb == "update":
            scale = await self._read_body(request)
        else:
            from servicegroup.kubesim import patch as patching

            patch_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
            raw = orjson.loads(await request.read())
            try:
                if patch_type == JSON_PATCH:
                    scale = patching.json_patch(clone(current), raw)
                elif patch_type in (MERGE_PATCH, STRATEGIC_PATCH):
                    scale = patching.merge_patch(clone(current), raw)
                else:
                    raise errors.unsupported_media_type(patch_type, (JSON_PATCH, MERGE_PATCH))
            except patching.PatchError as err:
                raise errors.bad_request(str(err)) from None
        if not isinstance(scale, dict):
            raise errors.bad_request("the body must be a Scale object")
        scale_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if scale_rv and scale_rv != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, info.name)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                "autoscaling",
                "Scale",
                info.name,
                [
                    errors.invalid_value(
                        "spec.replicas", str(replicas), "must be greater than or equal to 0"
                    )
                ],
            )
        updated = clone(obj)
        updated.setdefault("spec", {})["replicas"] = replicas
        result, _ = self.engine.update(rt, info.namespace, info.name, updated, ctx)
        return self._render(_scale_of(result), negotiated)

    # ---- watch -------------------------------------------------------------------------

    async def _watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        rt = info.rt
        query = request.query
        negotiated = negotiate(request.headers.get("Accept"), allow_table=True)
        labels, fields = self._selectors(request, rt)
        if info.name is not None:
            from servicegroup.kubesim.selectors import FieldSelector, FieldTerm

            fields = FieldSelector((*fields.terms, FieldTerm("metadata.name", info.name, False)))
        try:
            timeout = float(query.get("timeoutSeconds", "") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise errors.bad_request("invalid timeoutSeconds") from None
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        send_initial = _truthy(query.get("sendInitialEvents"))
        resource_version = query.get("resourceVersion", "")
        if send_initial:
            if not bookmarks or query.get("resourceVersionMatch") != "NotOlderThan":
                raise errors.invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    [
                        errors.forbidden_field(
                            "sendInitialEvents",
                            "sendInitialEvents is forbidden for watch unless "
                            "resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
                        )
                    ],
                )
            resource_version = ""
        start_rv = self.store.resource_version
        response = web.StreamResponse(status=200)
        content_type = negotiated.content_type if negotiated.form == "table" else JSON
        response.headers["Content-Type"] = content_type
        response.headers["Audit-Id"] = str(uuid.uuid4())
        response.headers["Cache-Control"] = "no-cache, private"
        response.enable_chunked_encoding()
        try:
            watcher = self.engine.watch(
                rt, info.namespace, labels=labels, fields=fields, resource_version=resource_version
            )
        except errors.ApiError as err:
            if err.code != 410:
                raise
            await response.prepare(request)
            await response.write(orjson.dumps({"type": ERROR, "object": err.status}) + b"\n")
            await response.write_eof()
            return response
        await response.prepare(request)
        try:
            await self._stream(
                response,
                watcher,
                rt,
                negotiated,
                request,
                timeout=timeout,
                bookmarks=bookmarks,
                initial_end_rv=start_rv if send_initial else None,
            )
        finally:
            self.store.stop_watch(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        watcher: Watcher,
        rt: ResourceType,
        negotiated: Negotiated,
        request: web.Request,
        *,
        timeout: float,
        bookmarks: bool,
        initial_end_rv: int | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = self.bookmark_interval
        next_bookmark = loop.time() + interval
        api_version = rt.api_version
        transform = self._event_transform(rt, negotiated, request)
        initial_pending = initial_end_rv is not None
        while True:
            chunk: list[bytes] = []
            while len(chunk) < 500:
                if initial_pending and not watcher.initial:
                    chunk.append(self._bookmark(rt, initial_end_rv or 0, initial_end=True))
                    initial_pending = False
                event = watcher.pop_ready()
                if event is None:
                    break
                chunk.append(event.encoded(api_version, transform))
            if chunk:
                try:
                    await response.write(b"".join(chunk))
                except ConnectionResetError:
                    return
                continue
            if watcher.closed:
                return
            now = loop.time()
            if now >= deadline:
                return
            wait_for = deadline - now
            if bookmarks:
                wait_for = min(wait_for, max(0.0, next_bookmark - now))
            ready = await watcher.wait(wait_for)
            if not ready and bookmarks and loop.time() >= next_bookmark:
                # Nothing is pending: every event up to the current resourceVersion was sent.
                next_bookmark = loop.time() + interval
                try:
                    await response.write(self._bookmark(rt, self.store.resource_version))
                except ConnectionResetError:
                    return

    def _bookmark(self, rt: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": metadata}
        return orjson.dumps({"type": BOOKMARK, "object": obj}) + b"\n"

    def _event_transform(
        self, rt: ResourceType, negotiated: Negotiated, request: web.Request
    ) -> Callable[[Obj], Obj] | None:
        if negotiated.form == "metadata":
            version = negotiated.table_version
            return lambda obj: _partial(obj, version)
        if negotiated.form == "table":
            first = [True]

            def to_row(obj: Obj) -> Obj:
                table = self._table(
                    rt,
                    [self.engine._out(rt, obj)],
                    {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")},
                    request,
                )
                if not first[0]:
                    table["columnDefinitions"] = []
                first[0] = False
                return table

            return to_row
        if rt.group == "events.k8s.io":
            return lambda obj: self.engine._out(rt, obj)
        return None


def _scale_of(obj: Obj) -> Obj:
    meta = obj.get("metadata", {})
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    selector = spec.get("selector") or {}
    match_labels = selector.get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(match_labels.items())),
        },
    }
