"""The semantics of every API write and read, shared by the REST server and in-process callers.

Owns: `Engine` - get / list / watch / create / update / patch (merge, strategic, JSON,
apply) / delete / deletecollection with kube-apiserver's rules: namespace lifecycle,
generateName, defaulting, unknown fields dropped on decode for built-ins (OpenAPI models)
and custom resources (schema pruning) and reported per `fieldValidation` (see
`fieldvalidation`), server-side apply refusing undeclared fields, validation (422 with causes),
optimistic concurrency, create-on-update, the status subresource split, generation, managed
fields, finalizers and deletionTimestamp, graceful pod deletion, GC finalizers for
foreground/orphan propagation, service IP allocation, dry runs. `WriteContext` carries the
per-request options (field manager, dry run, field validation) and collects warnings.

Invariants:
- Every method is synchronous: one write is atomic with respect to every other (the asyncio
  loop never interleaves inside it), like a single etcd transaction.
- Objects handed in are never mutated (they are copied first); objects handed out are the
  stored ones (shared, read-only): callers that mutate copy them.
- Every successful non-dry-run write goes through `ObjectStore.put/remove`, so watch events,
  history and in-process listeners see it exactly once.
- An update stores a version that shares every value identical to the previous version's
  with it (`_share_unchanged`), so history costs only what changed; an unchanged spec of a
  kind whose spec check reads nothing else is not checked again (`_accepted_specs`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import orjson
import yaml

from servicegroup.kubesim import (
    defaults,
    errors,
    fieldvalidation,
    listtypes,
    managedfields,
    schema,
    strategies,
    typed,
    validation,
)
from servicegroup.kubesim import patch as patching
from servicegroup.kubesim.conversion import from_storage, storage_api_version, to_storage
from servicegroup.kubesim.ipalloc import AllocationError, ServiceAllocator
from servicegroup.kubesim.registry import Registry, ResourceType, StorageKey
from servicegroup.kubesim.selectors import (
    EVERYTHING,
    NO_FIELDS,
    FieldSelector,
    LabelSelector,
    field_matcher,
)
from servicegroup.kubesim.store import (
    ObjectStore,
    Watcher,
    WatchFilter,
    clone,
    decode_continue,
    encode_continue,
    meta_of,
)

Obj = dict[str, Any]
ManagedFields = list[dict[str, Any]]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


class SimClock(Protocol):
    """What kubesim needs of a clock (servicegroup.clock.Clock satisfies it)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass
class WriteContext:
    """Per-request write options, and the warnings the request produced."""

    manager: str = ""
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeleteOptions:
    propagation_policy: str | None = None  # Background | Foreground | Orphan
    grace_period_seconds: int | None = None
    orphan_dependents: bool | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None


class ListResult(NamedTuple):
    items: list[Obj]
    resource_version: str
    continue_token: str
    remaining: int | None


def manager_from_user_agent(user_agent: str) -> str:
    """kube-apiserver's default field manager: the User-Agent up to the first "/"."""
    prefix = user_agent.split("/", 1)[0]
    return "".join(ch for ch in prefix if ch.isprintable())[:128]


class Engine:
    """API semantics over an ObjectStore."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        registry: Registry,
        clock: SimClock,
        allocator: ServiceAllocator | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.allocator = allocator or ServiceAllocator()
        self._list_types: dict[tuple[str, str, str], listtypes.ListTypes] = {}
        # Per stored object of a kind whose spec check reads only the spec: the spec dict
        # that check accepted (stored objects are immutable, so identity means unchanged).
        self._accepted_specs: dict[tuple[StorageKey, str, str], Any] = {}
        # CRD hooks: crds.py validates CRDs and reacts to their changes.
        self.crd_validator: Callable[[Obj, Obj | None], list[Any]] | None = None
        # Registry-specific first-DELETE behaviour, per (group, plural): old, now -> new.
        self.before_delete: dict[tuple[str, str], Callable[[Obj, str], Obj]] = {}
        for rt in registry:
            store.ensure(registry.storage_key(rt))

    # ---- helpers -----------------------------------------------------------------------

    def now(self) -> str:
        return rfc3339(self.clock.now())

    def storage_key(self, rt: ResourceType) -> StorageKey:
        return self.registry.storage_key(rt)

    def list_types(self, rt: ResourceType) -> listtypes.ListTypes:
        cache_key = (rt.group, rt.version, rt.kind)
        found = self._list_types.get(cache_key)
        if found is None:
            if rt.crd is not None:
                found = listtypes.crd_list_types(rt.schema or {})
            else:
                found = listtypes.builtin_list_types(rt.group, rt.kind)
            self._list_types[cache_key] = found
        return found

    def forget_list_types(self, rt: ResourceType) -> None:
        self._list_types.pop((rt.group, rt.version, rt.kind), None)

    def _ns(self, rt: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if rt.namespaced else ""

    def _require_verb(self, rt: ResourceType, verb: str) -> None:
        if verb not in rt.verbs:
            raise errors.method_not_allowed()

    def _stored(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self.store.get(self.storage_key(rt), namespace, name)

    def _out(self, rt: ResourceType, obj: Obj) -> Obj:
        return from_storage(rt, obj)

    # ---- reads -------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        self._require_verb(rt, "get")
        obj = self._stored(rt, self._ns(rt, namespace), name)
        if obj is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return self._out(rt, obj)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector = EVERYTHING,
        fields: FieldSelector = NO_FIELDS,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
    ) -> ListResult:
        self._require_verb(rt, "list")
        key = self.storage_key(rt)
        ns = namespace if rt.namespaced and namespace else None
        _check_list_options(resource_version, resource_version_match, continue_token)
        current = self.store.resource_version
        start = ""
        if continue_token:
            try:
                list_rv, start = decode_continue(continue_token)
            except ValueError as err:
                raise errors.bad_request(str(err)) from None
            if list_rv < self.store.oldest_servable(key):
                raise errors.expired(_CONTINUE_EXPIRED)
            objects = self.store.snapshot(key, list_rv, ns)
        elif resource_version_match == "Exact":
            list_rv = _parse_rv(resource_version)
            objects = self.store.snapshot(key, list_rv, ns)
        else:
            if resource_version not in ("", "0"):
                requested = _parse_rv(resource_version)
                if requested > current:
                    raise errors.too_large_resource_version(requested, current)
            list_rv = current
            objects = list(self.store.items(key, ns))
            if resource_version == "0":
                limit = 0  # served from the watch cache, which ignores limit
        # etcd's order: by the key string, which is also what continue tokens compare.
        objects.sort(key=_key_str)
        if start:
            objects = [obj for obj in objects if _key_str(obj) > start]
        matches = _matcher(labels, fields, name=None)
        filtered = labels.empty and fields.empty
        items: list[Obj] = []
        token = ""
        remaining: int | None = None
        for index, obj in enumerate(objects):
            if not matches(obj):
                continue
            if limit and len(items) >= limit:
                token = encode_continue(list_rv, _key_str(items[-1]))
                if filtered:
                    remaining = len(objects) - index
                break
            items.append(self._out(rt, obj))
        if token and not filtered:
            remaining = None
        return ListResult(items, str(list_rv), token, remaining)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector = EVERYTHING,
        fields: FieldSelector = NO_FIELDS,
        resource_version: str = "",
        capacity: int | None = None,
    ) -> Watcher:
        """Open a watch; "" or "0" start with synthetic ADDED events for current objects."""
        self._require_verb(rt, "watch")
        key = self.storage_key(rt)
        ns = namespace if rt.namespaced and namespace else None
        name = fields.exact("metadata.name")
        field_match = field_matcher(fields) if not fields.empty else None
        watch_filter = WatchFilter(namespace=ns, name=name, labels=labels, fields=field_match)
        since = None if resource_version in ("", "0") else _parse_rv(resource_version)
        return self.store.watch(key, watch_filter, since=since, capacity=capacity)

    # ---- create ------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: Obj, ctx: WriteContext) -> Obj:
        self._require_verb(rt, "create")
        obj = self._decode(rt, body, ctx)
        ns = self._check_namespace(rt, namespace, obj)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.internal("resourceVersion should not be set on objects to be created")
        return self._create(rt, ns, obj, ctx, applied=False)

    def _create(
        self, rt: ResourceType, ns: str, obj: Obj, ctx: WriteContext, *, applied: bool
    ) -> Obj:
        meta = obj["metadata"]
        generate = meta.get("generateName") and not meta.get("name")
        self._admit_namespace(rt, ns, meta.get("name") or meta.get("generateName", ""))
        self._default(rt, obj, ctx)
        strategies.prepare_for_create(rt, obj)
        meta = obj["metadata"]  # pruning may have replaced the metadata dict
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.now()
        key = self.storage_key(rt)
        self._allocate(rt, obj, None, dry_run=ctx.dry_run)
        try:
            for _attempt in range(8):
                if generate:
                    meta["name"] = meta["generateName"] + "".join(
                        secrets.choice(_NAME_CHARS) for _ in range(5)
                    )
                if not meta.get("name"):
                    raise errors.invalid(
                        rt.group,
                        rt.kind,
                        "",
                        [errors.required("metadata.name", "name or generateName is required")],
                    )
                self._validate_create(rt, obj)
                if self.store.get(key, ns, meta["name"]) is None:
                    break
                if not generate:
                    raise errors.already_exists(rt.group, rt.plural, meta["name"])
            else:
                raise errors.already_exists(rt.group, rt.plural, meta["name"])
            if not applied:
                meta["managedFields"] = self._record_update(rt, None, obj, ctx, subresource=None)
        except errors.ApiError:
            if not ctx.dry_run:
                self._release(rt, obj)
            raise
        obj = _canonical(obj)
        if ctx.dry_run:
            return self._out(rt, obj)
        self._accept_spec(rt, key, obj)
        self.store.put(key, obj, old=None)
        return self._out(rt, obj)

    # ---- update ------------------------------------------------------------------------

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Obj,
        ctx: WriteContext,
        *,
        subresource: str | None = None,
    ) -> tuple[Obj, bool]:
        """PUT; returns (object, created)."""
        self._require_verb(rt, "update")
        obj = self._decode(rt, body, ctx)
        ns = self._check_namespace(rt, namespace, obj)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = name
        elif meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        old = self._stored(rt, ns, name)
        if old is None:
            if subresource is None and rt.allow_create_on_update:
                if meta.get("resourceVersion"):
                    raise errors.not_found(rt.group, rt.plural, name)
                return self._create(rt, ns, obj, ctx, applied=False), True
            raise errors.not_found(rt.group, rt.plural, name)
        requested_rv = meta.get("resourceVersion") or ""
        if not requested_rv and not rt.allow_unconditional_update:
            raise errors.invalid(
                rt.group,
                rt.plural,
                name,
                [
                    errors.invalid_value(
                        "metadata.resourceVersion", "0x0", "must be specified for an update"
                    )
                ],
            )
        if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name)
        self._check_uid(rt, meta, old)
        return self._update(rt, ns, obj, old, ctx, subresource=subresource, applied=False), False

    def _check_uid(self, rt: ResourceType, meta: Mapping[str, Any], old: Obj) -> None:
        uid = meta.get("uid")
        if uid and uid != old["metadata"].get("uid"):
            raise errors.conflict(
                rt.group,
                rt.plural,
                old["metadata"]["name"],
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{old['metadata'].get('uid')}",
            )

    def _update(
        self,
        rt: ResourceType,
        ns: str,
        obj: Obj,
        old: Obj,
        ctx: WriteContext,
        *,
        subresource: str | None,
        applied: bool,
    ) -> Obj:
        self._default(rt, obj, ctx, old=old)
        new = strategies.prepare_for_update(rt, obj, old, subresource=subresource)
        meta = new["metadata"]
        old_meta = old["metadata"]
        for system_field in ("uid", "creationTimestamp", "deletionTimestamp"):
            if system_field in old_meta:
                meta[system_field] = old_meta[system_field]
            else:
                meta.pop(system_field, None)
        if "deletionGracePeriodSeconds" in old_meta:
            meta["deletionGracePeriodSeconds"] = old_meta["deletionGracePeriodSeconds"]
        if not rt.namespaced:
            meta.pop("namespace", None)
        strategies.bump_generation(rt, new, old)
        if old_meta.get("deletionTimestamp"):
            added = [
                f
                for f in meta.get("finalizers") or []
                if f not in (old_meta.get("finalizers") or [])
            ]
            if added:
                raise errors.invalid(
                    rt.group,
                    rt.kind,
                    meta["name"],
                    [
                        errors.forbidden_field(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers []string{{{_go_strings(added)}}}",
                        )
                    ],
                )
        key = self.storage_key(rt)
        old_spec = old.get("spec")
        if (
            "spec" in new
            and new["spec"] is not old_spec
            and (rt.group, rt.plural) != ("", "services")  # _allocate may fill in its spec
            and typed.identical(new["spec"], old_spec)
        ):
            new["spec"] = old_spec  # unchanged: share it with the stored version
        spec_accepted = (
            old_spec is not None
            and new.get("spec") is old_spec
            and self._accepted_specs.get((key, ns, meta["name"])) is old_spec
        )
        self._validate_update(rt, new, old, spec_accepted=spec_accepted)
        if not applied:
            meta["managedFields"] = self._record_update(rt, old, new, ctx, subresource=subresource)
        _keep_managed_field_times(meta, old_meta)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if not meta.get("managedFields"):
            meta.pop("managedFields", None)
        if (
            old_meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not old_meta.get("deletionGracePeriodSeconds")
        ):
            # The last finalizer is gone: the update completes the deletion.
            if not ctx.dry_run:
                self.store.put(key, new, old=old) if new != old else None
                self._remove(rt, new)
            return self._out(rt, new)
        if new == old:
            return self._out(rt, old)  # no-op: no new resourceVersion, no event
        new = _canonical(new)
        self._allocate(rt, new, old, dry_run=ctx.dry_run)
        if ctx.dry_run:
            return self._out(rt, new)
        new = _share_unchanged(new, old)
        self._accept_spec(rt, key, new)
        self.store.put(key, new, old=old)
        return self._out(rt, new)

    # ---- patch -------------------------------------------------------------------------

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        *,
        ctx: WriteContext,
        subresource: str | None = None,
        force: bool = False,
    ) -> tuple[Obj, bool]:
        """PATCH with any of the four patch types; returns (object, created)."""
        self._require_verb(rt, "patch")
        ns = self._ns(rt, namespace)
        if patch_type == APPLY_PATCH:
            return self._apply(rt, ns, name, body, ctx, subresource=subresource, force=force)
        if force:
            raise errors.invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                [errors.forbidden_field("force", "may not be specified for non-apply patch")],
            )
        old = self._stored(rt, ns, name)
        if old is None:
            raise errors.not_found(rt.group, rt.plural, name)
        # A merge patch shares what it does not touch with the stored object (read-only
        # here: `_decode` copies the result); the other patchers work on a private copy.
        current = from_storage(rt, old if patch_type == MERGE_PATCH else clone(old))
        try:
            if patch_type == MERGE_PATCH:
                patched = patching.merge_patch(current, body)
            elif patch_type == STRATEGIC_PATCH:
                if rt.crd is not None:
                    raise errors.unsupported_media_type(
                        patch_type, (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)
                    )
                if not isinstance(body, dict):
                    raise errors.bad_request("strategic merge patch must be a JSON object")
                patched = patching.strategic_merge_patch(
                    current, body, list_types=self.list_types(rt)
                )
            elif patch_type == JSON_PATCH:
                if not isinstance(body, list):
                    raise errors.bad_request(
                        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                    )
                patched = patching.json_patch(current, body)
            else:
                raise errors.unsupported_media_type(patch_type, PATCH_TYPES)
        except patching.PatchError as err:
            raise _patch_error(err) from None
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        patched_doc: Obj = patched

        def patched_text() -> str:
            if patch_type == STRATEGIC_PATCH:
                # The strategic patcher reports the patch itself, printed as a Go map.
                return fieldvalidation.go_print(body)
            return fieldvalidation.patched_json_text(patched_doc)

        obj = self._decode(rt, patched, ctx, patched_text=patched_text)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({name})"
            )
        if (
            meta.get("resourceVersion")
            and meta["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(rt.group, rt.plural, name)
        self._check_uid(rt, meta, old)
        if rt.namespaced and meta.get("namespace", ns) != ns:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if rt.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        return self._update(rt, ns, obj, old, ctx, subresource=subresource, applied=False), False

    def _apply(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Any,
        ctx: WriteContext,
        *,
        subresource: str | None,
        force: bool,
    ) -> tuple[Obj, bool]:
        if not ctx.manager:
            raise errors.invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                [errors.required("fieldManager", "is required for apply patch")],
            )
        private = False  # a body decoded from JSON here is ours; anything else is copied
        if isinstance(body, (bytes, str)):
            body, private = _decode_apply_body(body)
        if not isinstance(body, dict):
            raise errors.bad_request("apply patch must be a YAML or JSON object")
        config = body if private else clone(body)
        self._check_type(rt, config, require=True)
        meta = config.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        self._check_declared_fields(rt, config, name)
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if subresource == "status":
            config = {
                k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")
            }
        elif rt.has_status:
            config.pop("status", None)
        old = self._stored(rt, ns, name)
        # managedfields.apply does not mutate `live`; `_decode` copies its result.
        live = from_storage(rt, old) if old is not None else None
        if live is not None:
            requested_rv = meta.get("resourceVersion")
            if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:  # type: ignore[index]
                raise errors.conflict(rt.group, rt.plural, name)
        try:
            result = managedfields.apply(
                live,
                config,
                manager=ctx.manager,
                force=force,
                api_version=rt.api_version,
                subresource=subresource,
                now=self.now(),
                list_types=self.list_types(rt),
            )
        except managedfields.ApplyConflict as conflict:
            raise _apply_conflict(conflict) from None
        # The managedFields entries are new and their fieldsV1 are shared, immutable dicts
        # (one per distinct field set): keep them out of the copy `_decode` makes.
        result_meta = result["metadata"]
        managed_fields = result_meta.pop("managedFields", None)
        obj = self._decode(rt, result)
        if managed_fields is not None:
            obj["metadata"]["managedFields"] = managed_fields
        if old is None:
            if subresource is not None:
                raise errors.not_found(rt.group, rt.plural, name)
            obj["metadata"].pop("resourceVersion", None)
            return self._create(rt, ns, obj, ctx, applied=True), True
        return self._update(rt, ns, obj, old, ctx, subresource=subresource, applied=True), False

    # ---- delete ------------------------------------------------------------------------

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        ctx: WriteContext,
        *,
        options: DeleteOptions = DeleteOptions(),
    ) -> tuple[Obj, bool]:
        """DELETE; returns (the object, deleted now) - not deleted now while finalizing."""
        self._require_verb(rt, "delete")
        ns = self._ns(rt, namespace)
        old = self._stored(rt, ns, name)
        if old is None:
            raise errors.not_found(rt.group, rt.plural, name)
        old_meta = old["metadata"]
        qualified_kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
        if options.precondition_uid is not None and options.precondition_uid != old_meta.get("uid"):
            raise _precondition_conflict(
                qualified_kind,
                name,
                f"the UID in the precondition ({options.precondition_uid}) does not match the "
                f"UID in record ({old_meta.get('uid')}). The object might have been deleted "
                "and then recreated",
            )
        if (
            options.precondition_resource_version is not None
            and options.precondition_resource_version != old_meta.get("resourceVersion")
        ):
            raise _precondition_conflict(
                qualified_kind,
                name,
                f"the ResourceVersion in the precondition ({options.precondition_resource_version})"
                f" does not match the ResourceVersion in record ({old_meta.get('resourceVersion')}"
                "). The object might have been modified",
            )
        if (rt.group, rt.plural) == ("", "namespaces"):
            return self._delete_namespace(rt, old, ctx)
        hook = self.before_delete.get((rt.group, rt.plural))
        if hook is not None and not old_meta.get("deletionTimestamp"):
            new = hook(old, self.now())
        else:
            new = clone(old)
        meta = new["metadata"]
        graceful = False
        grace = 0
        if rt.graceful_delete:
            if old_meta.get("deletionTimestamp"):
                current = old_meta.get("deletionGracePeriodSeconds")
                if current:
                    requested = options.grace_period_seconds
                    if requested is None or requested >= current:
                        return self._out(rt, old), False  # graceful deletion already pending
                    requested = max(requested, 0)
                    when = parse_rfc3339(old_meta["deletionTimestamp"]).timestamp() - current
                    meta["deletionTimestamp"] = rfc3339(
                        datetime.fromtimestamp(when + requested, UTC)
                    )
                    meta["deletionGracePeriodSeconds"] = requested
                    graceful, grace = True, requested
            else:
                requested = options.grace_period_seconds
                if requested is not None and requested < 0:
                    requested = 1
                grace = strategies.pod_grace_period(old, requested)
                moment = self.clock.now().timestamp() + grace
                meta["deletionTimestamp"] = rfc3339(datetime.fromtimestamp(moment, UTC))
                meta["deletionGracePeriodSeconds"] = grace
                if meta.get("generation"):
                    meta["generation"] = int(meta["generation"]) + 1
                graceful = True
        elif old_meta.get("deletionTimestamp") and old_meta.get("finalizers"):
            return self._out(rt, old), False  # deletion already in progress
        finalizers = _gc_finalizers(old_meta.get("finalizers") or [], options)
        if finalizers != (old_meta.get("finalizers") or []):
            if finalizers:
                meta["finalizers"] = finalizers
            else:
                meta.pop("finalizers", None)
        pending = bool(meta.get("finalizers"))
        key = self.storage_key(rt)
        if pending or (graceful and grace > 0):
            if not graceful and not meta.get("deletionTimestamp"):
                if meta.get("generation"):
                    meta["generation"] = int(meta["generation"]) + 1
                meta["deletionTimestamp"] = self.now()
                meta["deletionGracePeriodSeconds"] = 0
            elif not graceful:
                meta["deletionGracePeriodSeconds"] = 0
            if ctx.dry_run:
                return self._out(rt, new), False
            if new != old:
                self.store.put(key, new, old=old)
            return self._out(rt, new), False
        if ctx.dry_run:
            return self._out(rt, new if graceful else old), True
        if graceful:
            # The apiserver records the deletion timestamp before removing a pod at once.
            self.store.put(key, new, old=old)
            final = self._remove(rt, new)
        else:
            final = self._remove(rt, old)
        return self._out(rt, final), True

    def _remove(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        self._accepted_specs.pop(
            (self.storage_key(rt), meta.get("namespace", ""), meta["name"]), None
        )
        event = self.store.remove(self.storage_key(rt), obj)
        self._release(rt, event.obj)
        return event.obj

    def _delete_namespace(self, rt: ResourceType, old: Obj, ctx: WriteContext) -> tuple[Obj, bool]:
        name = old["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden(rt.group, rt.plural, name, "this namespace may not be deleted")
        old_meta = old["metadata"]
        spec_finalizers = (old.get("spec") or {}).get("finalizers") or []
        finalized = not spec_finalizers and not old_meta.get("finalizers")
        if old_meta.get("deletionTimestamp"):
            if finalized and not ctx.dry_run:
                return self._out(rt, self._remove(rt, old)), True
            return self._out(rt, old), False
        if not spec_finalizers and not old_meta.get("finalizers"):
            if ctx.dry_run:
                return self._out(rt, old), True
            return self._out(rt, self._remove(rt, old)), True
        new = clone(old)
        new["metadata"]["deletionTimestamp"] = self.now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        if ctx.dry_run:
            return self._out(rt, new), False
        self.store.put(self.storage_key(rt), new, old=old)
        return self._out(rt, new), False

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        ctx: WriteContext,
        *,
        labels: LabelSelector = EVERYTHING,
        fields: FieldSelector = NO_FIELDS,
        options: DeleteOptions = DeleteOptions(),
    ) -> ListResult:
        self._require_verb(rt, "deletecollection")
        listed = self.list(rt, namespace, labels=labels, fields=fields)
        for obj in listed.items:
            meta = meta_of(obj)
            try:
                self.delete(rt, meta.get("namespace"), meta["name"], ctx, options=options)
            except errors.ApiError as err:
                if err.code != 404:
                    raise
        return listed

    # ---- pipeline pieces ---------------------------------------------------------------

    def _decode(
        self,
        rt: ResourceType,
        body: Any,
        ctx: WriteContext | None = None,
        *,
        patched_text: Callable[[], str] | None = None,
    ) -> Obj:
        """A private deep copy of the request body in storage form, type-checked.

        With `ctx`, fields the type does not declare are dropped as the decoder drops them,
        and reported as `ctx.field_validation` says: a create/update body's strict error,
        or (with `patched_text`, the patched document as the patch handler prints it) a
        patch's.
        """
        if not isinstance(body, dict):
            raise errors.bad_request(
                f"Object '{rt.kind}' is invalid: the request body must be a JSON object"
            )
        obj = clone(body)
        self._check_type(rt, obj, require=False)
        metadata = obj.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise errors.bad_request("metadata must be an object")
        if ctx is not None:
            self._drop_unknown_fields(rt, obj, ctx, patched_text=patched_text)
        obj = to_storage(rt, obj)
        obj["apiVersion"] = storage_api_version(rt)
        if obj.get("metadata") is None:
            obj["metadata"] = {}
        return obj

    def _drop_unknown_fields(
        self,
        rt: ResourceType,
        obj: Obj,
        ctx: WriteContext,
        *,
        patched_text: Callable[[], str] | None,
    ) -> None:
        """Prune undeclared fields (request version); fail, warn or stay silent about them."""
        if rt.crd is None:
            found = fieldvalidation.drop_unknown_builtin(obj, rt.group, rt.version, rt.kind)
        elif rt.schema is not None:
            before = clone(obj) if ctx.field_validation != "Ignore" else None
            schema.prune(obj, rt.schema)
            found = fieldvalidation.removed_steps(before, obj) if before is not None else []
        else:
            found = []
        if not found or ctx.field_validation == "Ignore":
            return
        messages = fieldvalidation.unknown_field_messages(found)
        if ctx.field_validation == "Strict":
            if patched_text is not None:
                raise fieldvalidation.patch_error(patched_text(), messages)
            raise fieldvalidation.decode_error(rt.kind, rt.version, messages)
        ctx.warnings.extend(messages)

    def _check_declared_fields(self, rt: ResourceType, config: Obj, name: str) -> None:
        """Server-side apply converts the config to its type first: undeclared fields fail."""
        if rt.crd is None:
            found = fieldvalidation.drop_unknown_builtin(
                config, rt.group, rt.version, rt.kind, drop=False
            )
        elif rt.schema is not None:
            pruned = clone(config)
            schema.prune(pruned, rt.schema)
            found = fieldvalidation.removed_steps(config, pruned)
        else:
            found = []
        if found:
            meta = config.get("metadata") or {}
            raise fieldvalidation.apply_error(
                found,
                config,
                self.list_types(rt),
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or name),
                group=rt.group,
                version=rt.version,
                kind=rt.kind,
            )

    def _check_type(self, rt: ResourceType, obj: Obj, *, require: bool) -> None:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if require and (not api_version or not kind):
            missing = "apiVersion" if not api_version else "kind"
            raise errors.bad_request(f"{missing} must be set")
        if api_version and api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind

    def _check_namespace(self, rt: ResourceType, namespace: str | None, obj: Obj) -> str:
        meta = obj["metadata"]
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        body_ns = meta.get("namespace") or ""
        ns = namespace or body_ns
        if body_ns and namespace and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        if not ns:
            raise errors.bad_request("the server could not find the requested resource")
        meta["namespace"] = ns
        return ns

    def _admit_namespace(self, rt: ResourceType, ns: str, name: str) -> None:
        if not rt.namespaced:
            return
        namespaces = self.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        namespace = self.store.get(self.storage_key(namespaces), "", ns)
        if namespace is None:
            raise errors.not_found("", "namespaces", ns)
        if namespace["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                rt.group,
                rt.plural,
                name,
                f"unable to create new content in namespace {ns} because it is being terminated",
                causes=[
                    errors.FieldCause(
                        "NamespaceTerminating",
                        f"namespace {ns} is being terminated",
                        "metadata.namespace",
                    )
                ],
            )

    def _default(
        self, rt: ResourceType, obj: Obj, ctx: WriteContext, *, old: Obj | None = None
    ) -> None:
        if rt.crd is None:
            if old is not None and (rt.group, rt.plural) == ("", "services"):
                defaults.prepare_service_update(old, obj)
            defaults.apply_defaults(rt.group, rt.kind, obj)
            return
        if rt.schema is None:
            return
        # Unknown fields of the request were reported when it was decoded; what remains to
        # prune here comes from merging (apply) and is dropped silently.
        schema.prune(obj, rt.schema)
        schema.apply_defaults(obj, rt.schema)

    def _validate_create(self, rt: ResourceType, obj: Obj) -> None:
        causes: list[Any] = list(validation.validate_create(rt.group, rt.kind, obj))
        if rt.crd is not None and rt.schema is not None:
            causes.extend(schema.validate(obj, rt.schema))
        if rt.group == "apiextensions.k8s.io" and self.crd_validator is not None:
            causes.extend(self.crd_validator(obj, None))
        if causes:
            raise errors.invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), causes)

    def _accept_spec(self, rt: ResourceType, key: StorageKey, obj: Obj) -> None:
        """Remember the spec of an object about to be stored: it passed the spec check."""
        if validation.spec_check_reads_only_spec(rt.group, rt.kind):
            meta = obj["metadata"]
            self._accepted_specs[(key, meta.get("namespace", ""), meta["name"])] = obj.get("spec")

    def _validate_update(
        self, rt: ResourceType, new: Obj, old: Obj, *, spec_accepted: bool = False
    ) -> None:
        causes: list[Any] = list(
            validation.validate_update(rt.group, rt.kind, old, new, spec_accepted=spec_accepted)
        )
        if rt.crd is not None and rt.schema is not None:
            causes.extend(schema.validate(new, rt.schema))
        if rt.group == "apiextensions.k8s.io" and self.crd_validator is not None:
            causes.extend(self.crd_validator(new, old))
        if causes:
            raise errors.invalid(rt.group, rt.kind, new["metadata"].get("name", ""), causes)

    def _record_update(
        self,
        rt: ResourceType,
        old: Obj | None,
        new: Obj,
        ctx: WriteContext,
        *,
        subresource: str | None,
    ) -> ManagedFields:
        manager = ctx.manager or "unknown"
        return managedfields.record_update(
            from_storage(rt, old) if old is not None else None,
            from_storage(rt, new),
            manager=manager,
            api_version=rt.api_version,
            subresource=subresource if subresource in ("status", "scale") else None,
            now=self.now(),
            list_types=self.list_types(rt),
        )

    def _allocate(self, rt: ResourceType, new: Obj, old: Obj | None, *, dry_run: bool) -> None:
        if (rt.group, rt.plural) != ("", "services"):
            return
        spec = new.setdefault("spec", {})
        try:
            if old is None and defaults.needs_cluster_ip(new):
                address = self.allocator.allocate_ip(None, dry_run=dry_run)
                spec["clusterIP"] = address
                spec["clusterIPs"] = [address]
            elif old is None and spec.get("clusterIP") not in (None, "", "None"):
                self.allocator.allocate_ip(spec["clusterIP"], dry_run=dry_run)
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                old_ports = {
                    (p.get("port"), p.get("protocol")): p.get("nodePort")
                    for p in ((old or {}).get("spec") or {}).get("ports") or []
                }
                for port in spec.get("ports") or []:
                    if not port.get("nodePort"):
                        kept = old_ports.get((port.get("port"), port.get("protocol")))
                        port["nodePort"] = kept or self.allocator.allocate_port(dry_run=dry_run)
                    elif old is None:
                        self.allocator.allocate_port(port["nodePort"], dry_run=dry_run)
        except AllocationError as err:
            raise errors.invalid(
                "",
                "Service",
                new["metadata"].get("name", ""),
                [errors.invalid_value("spec.clusterIPs", repr(spec.get("clusterIPs")), str(err))],
            ) from None

    def _release(self, rt: ResourceType, obj: Obj) -> None:
        if (rt.group, rt.plural) != ("", "services"):
            return
        spec = obj.get("spec") or {}
        for address in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if address and address != "None":
                self.allocator.release_ip(address)
        for port in spec.get("ports") or []:
            self.allocator.release_port(port.get("nodePort"))


# ---- module helpers ---------------------------------------------------------------------

_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


def _check_list_options(resource_version: str, match: str, continue_token: str) -> None:
    causes: list[Any] = []
    if match and match not in ("Exact", "NotOlderThan"):
        causes.append(
            errors.FieldCause(
                "FieldValueNotSupported",
                f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"',
                "resourceVersionMatch",
            )
        )
    elif match and not resource_version:
        causes.append(
            errors.forbidden_field(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
        )
    elif match and continue_token:
        causes.append(
            errors.forbidden_field(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            )
        )
    elif match == "Exact" and resource_version == "0":
        causes.append(
            errors.forbidden_field(
                "resourceVersionMatch",
                'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
            )
        )
    if causes:
        raise errors.invalid("meta.k8s.io", "ListOptions", "", causes)
    if continue_token and resource_version not in ("", "0"):
        raise errors.bad_request("specifying resource version is not allowed when using continue")


_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_TOP_ORDER = ("kind", "apiVersion", "metadata")


def _canonical(obj: Obj) -> Obj:
    """The object with kube's field order (kind, apiVersion, metadata first; metadata sorted)."""
    meta = obj.get("metadata") or {}
    ordered_meta = {key: meta[key] for key in _META_ORDER if key in meta}
    ordered_meta.update({key: value for key, value in meta.items() if key not in ordered_meta})
    result: Obj = {key: obj[key] for key in _TOP_ORDER if key in obj}
    result["metadata"] = ordered_meta
    result.update({key: value for key, value in obj.items() if key not in result})
    return result


def _share_unchanged(new: Obj, old: Obj) -> Obj:
    """`new` sharing every value identical to `old`'s (stored objects are immutable: less
    memory, less garbage-collector work); its own top-level and metadata maps are fresh,
    as `ObjectStore.put` writes the resourceVersion into the metadata."""
    old_meta = old.get("metadata")
    out: Obj = {}
    for key, value in new.items():
        if key == "metadata" and isinstance(value, dict) and isinstance(old_meta, dict):
            out[key] = {
                k: typed.reuse_identical(v, old_meta[k]) if k in old_meta else v
                for k, v in value.items()
            }
        elif key in old:
            out[key] = typed.reuse_identical(value, old[key])
        else:
            out[key] = value
    return out


def _go_strings(values: list[str]) -> str:
    return ", ".join('"' + value.replace('"', '\\"') + '"' for value in values)


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{text}"') from None
    if value < 0:
        raise errors.bad_request(f'invalid resource version "{text}"')
    return value


def _decode_apply_body(body: bytes | str) -> tuple[Any, bool]:
    """An apply body is YAML; clients almost always send JSON (a subset), so try that first.

    Returns the value and whether it was JSON (then it holds nothing but JSON values)."""
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError:
        pass
    try:
        return yaml.load(body, Loader=_YAML_LOADER), False
    except yaml.YAMLError as err:
        raise errors.bad_request(f"error decoding YAML: {err}") from None


_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _key_str(obj: Obj) -> str:
    meta = obj["metadata"]
    namespace = meta.get("namespace", "")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def _matcher(
    labels: LabelSelector, fields: FieldSelector, *, name: str | None
) -> Callable[[Obj], bool]:
    match_fields = field_matcher(fields)
    if labels.empty and fields.empty:
        return lambda obj: True

    def matches(obj: Obj) -> bool:
        return labels.matches(obj["metadata"].get("labels")) and match_fields(obj)

    return matches


def _gc_finalizers(finalizers: list[str], options: DeleteOptions) -> list[str]:
    """deletionFinalizersForGarbageCollection: add/remove orphan and foregroundDeletion."""
    orphan: bool
    foreground: bool
    if options.orphan_dependents is not None:
        orphan, foreground = options.orphan_dependents, False
    elif options.propagation_policy in ("Orphan", "Foreground", "Background"):
        orphan = options.propagation_policy == "Orphan"
        foreground = options.propagation_policy == "Foreground"
    else:
        orphan = ORPHAN_FINALIZER in finalizers
        foreground = FOREGROUND_FINALIZER in finalizers and not orphan
    result = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if orphan:
        result.append(ORPHAN_FINALIZER)
    if foreground:
        result.append(FOREGROUND_FINALIZER)
    if set(result) == set(finalizers):
        return finalizers
    return result


def _keep_managed_field_times(meta: Obj, old_meta: Mapping[str, Any]) -> None:
    """Ignore changes that only touch managedFields timestamps (the apiserver does too)."""
    new_fields = meta.get("managedFields")
    old_fields = old_meta.get("managedFields")
    if not new_fields or not old_fields or len(new_fields) != len(old_fields):
        return

    def without_time(entry: Obj) -> Obj:
        return {k: v for k, v in entry.items() if k != "time"}

    if all(without_time(a) == without_time(b) for a, b in zip(new_fields, old_fields, strict=True)):
        meta["managedFields"] = old_fields


def _patch_error(err: patching.PatchError) -> errors.ApiError:
    status = getattr(err, "status", 400)
    if status == 422:
        return errors.ApiError(errors.status_body(422, "Invalid", str(err)))
    if status == 400:
        return errors.bad_request(str(err))
    # 413 (too many JSON-patch operations), 415 (strategic patch of a custom resource) and
    # 500 (the apiserver's answer to raw merge-library errors) keep their status.
    return errors.from_code(status, str(err))


def _apply_conflict(conflict: managedfields.ApplyConflict) -> errors.ApiError:
    return errors.ApiError(
        errors.status_body(409, "Conflict", str(conflict), details={"causes": conflict.causes()})
    )


def _precondition_conflict(qualified_kind: str, name: str, why: str) -> errors.ApiError:
    kind, _, group = qualified_kind.partition(".")
    return errors.conflict(group, kind, name, why)
