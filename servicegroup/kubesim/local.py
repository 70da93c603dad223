"""The in-process client of kubesim: the same API semantics as REST, without HTTP.

Owns: `LocalClient` - get / list / create / update / update_status / patch / apply / delete
/ delete_collection / subscribe, addressed by resource name (`pods`, `deployments.apps`,
`deploy`, `apps/v1/deployments`) or `ResourceType`, writing under one field manager. It is
what the workload simulation (scheduler, kubelet, controllers running inside the kubesim
process) uses.

Invariants:
- Every call goes through the Engine exactly like the matching REST request (defaulting,
  validation, resourceVersion, generation, managedFields, watch events, GC) and raises
  `errors.ApiError` with the Status the REST request would answer.
- Objects passed in are never mutated; objects returned are private deep copies.
- Nothing here awaits: a call is atomic with respect to every other request.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.engine import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    DeleteOptions,
    Engine,
    WriteContext,
)
from servicegroup.kubesim.registry import ResourceType
from servicegroup.kubesim.selectors import parse_field_selector, parse_label_selector
from servicegroup.kubesim.store import Subscription, clone, meta_of

Obj = dict[str, Any]
Objs = list[dict[str, Any]]
Resource = str | ResourceType

_PATCH_TYPES = {
    "merge": MERGE_PATCH,
    "strategic": STRATEGIC_PATCH,
    "json": JSON_PATCH,
    "apply": APPLY_PATCH,
}


class LocalClient:
    def __init__(self, engine: Engine, *, manager: str) -> None:
        self.engine = engine
        self.manager = manager

    def resource(self, resource: Resource) -> ResourceType:
        if isinstance(resource, ResourceType):
            return resource
        return self.engine.registry.lookup(resource)

    def _ctx(self, *, dry_run: bool = False, field_validation: str = "Warn") -> WriteContext:
        return WriteContext(
            manager=self.manager, dry_run=dry_run, field_validation=field_validation
        )

    @staticmethod
    def _namespace(obj: Obj, namespace: str | None) -> str | None:
        return namespace or meta_of(obj).get("namespace") or None

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Obj:
        return clone(self.engine.get(self.resource(resource), namespace, name))  # type: ignore[no-any-return]

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Objs:
        rt = self.resource(resource)
        result = self.engine.list(
            rt,
            namespace,
            labels=parse_label_selector(label_selector),
            fields=parse_field_selector(field_selector, allowed=rt.field_selectors),
        )
        return clone(result.items)  # type: ignore[no-any-return]

    def create(
        self, resource: Resource, obj: Obj, *, namespace: str | None = None, dry_run: bool = False
    ) -> Obj:
        rt = self.resource(resource)
        created = self.engine.create(
            rt, self._namespace(obj, namespace), obj, self._ctx(dry_run=dry_run)
        )
        return clone(created)  # type: ignore[no-any-return]

    def update(self, resource: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        rt = self.resource(resource)
        meta = meta_of(obj)
        updated, _ = self.engine.update(
            rt, self._namespace(obj, None), meta["name"], obj, self._ctx(), subresource=subresource
        )
        return clone(updated)  # type: ignore[no-any-return]

    def update_status(self, resource: Resource, obj: Obj) -> Obj:
        """PUT .../status: only `status` of `obj` is written."""
        return self.update(resource, obj, subresource="status")

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> Obj:
        """patch_type: merge | strategic | json."""
        rt = self.resource(resource)
        patched, _ = self.engine.patch(
            rt,
            namespace,
            name,
            _PATCH_TYPES.get(patch_type, patch_type),
            patch,
            ctx=self._ctx(),
            subresource=subresource,
        )
        return clone(patched)  # type: ignore[no-any-return]

    def apply(
        self,
        resource: Resource,
        obj: Obj,
        *,
        force: bool = True,
        subresource: str | None = None,
        namespace: str | None = None,
    ) -> Obj:
        """Server-side apply of `obj` (creates it when absent)."""
        rt = self.resource(resource)
        applied, _ = self.engine.patch(
            rt,
            self._namespace(obj, namespace),
            meta_of(obj)["name"],
            APPLY_PATCH,
            obj,
            ctx=self._ctx(),
            subresource=subresource,
            force=force,
        )
        return clone(applied)  # type: ignore[no-any-return]

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """DELETE; returns the object as it is now (still present while finalizing)."""
        rt = self.resource(resource)
        obj, _ = self.engine.delete(
            rt,
            namespace,
            name,
            self._ctx(),
            options=DeleteOptions(
                propagation_policy=propagation_policy,
                grace_period_seconds=grace_period_seconds,
                precondition_uid=uid,
                precondition_resource_version=resource_version,
            ),
        )
        return clone(obj)  # type: ignore[no-any-return]

    def delete_collection(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str = ""
    ) -> Objs:
        rt = self.resource(resource)
        result = self.engine.delete_collection(
            rt, namespace, self._ctx(), labels=parse_label_selector(label_selector)
        )
        return clone(result.items)  # type: ignore[no-any-return]

    def subscribe(self, *resources: Resource) -> Subscription:
        """Every future store event of these resources (all when none given).

        Events carry the stored objects: read-only, copy before mutating.
        """
        keys = [self.engine.storage_key(self.resource(r)) for r in resources]
        return self.engine.store.subscribe(keys or None)
