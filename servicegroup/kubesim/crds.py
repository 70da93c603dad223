"""CustomResourceDefinitions: serving custom resources as their CRDs come and go.

Owns: `CrdController` - turns every CRD into served `ResourceType`s (one per served
version: names, scope, short names, categories, status/scale subresources, schema, printer
columns, selectable fields), sets the CRD's status (acceptedNames, NamesAccepted and
Established conditions, storedVersions) right after it is created or changed, keeps the
OpenAPI documents in step, and on CRD deletion deletes every custom resource of it before
the CRD goes (the `customresourcecleanup.apiextensions.k8s.io` finalizer). Also
`validate_crd_names` (the checks kube-apiserver makes on CRD names) and `prepare_delete`
(what the CRD registry does on the first DELETE).

Invariants:
- A resource is served from the moment its CRD is committed (registration happens in the
  store listener, before any other request can run), and stops being served when the CRD
  object is gone.
- Status writes use the `/status` subresource with field manager `kube-apiserver`.
"""

from __future__ import annotations

from typing import Any, Protocol

from servicegroup.kubesim import errors, schema
from servicegroup.kubesim.engine import DeleteOptions, Engine, WriteContext
from servicegroup.kubesim.fielderrors import Cause, invalid
from servicegroup.kubesim.registry import BASE_FIELD_SELECTORS, ResourceType, StorageKey
from servicegroup.kubesim.store import DELETED, StoreEvent, clone, meta_of
from servicegroup.kubesim.workloop import WorkLoop

Obj = dict[str, Any]
CRDS = StorageKey("apiextensions.k8s.io", "customresourcedefinitions")
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
MANAGER = "kube-apiserver"


class OpenAPISink(Protocol):
    def add_crd(self, crd: Obj) -> None: ...

    def remove_crd(self, name: str) -> None: ...


def resource_types(crd: Obj) -> list[ResourceType]:
    """The served versions of a CRD as resource types."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kind = str(names.get("kind", ""))
    group = str(spec.get("group", ""))
    result = []
    for version in spec.get("versions") or []:
        if not isinstance(version, dict) or not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        subs: list[str] = []
        if "status" in subresources:
            subs.append("status")
        scale = subresources.get("scale")
        if isinstance(scale, dict):
            subs.append("scale")
        selectable = tuple(
            str(field.get("jsonPath", "")).lstrip(".")
            for field in version.get("selectableFields") or []
            if isinstance(field, dict)
        )
        schema_doc = (version.get("schema") or {}).get("openAPIV3Schema")
        result.append(
            ResourceType(
                group=group,
                version=str(version.get("name", "")),
                plural=str(names.get("plural", "")),
                singular=str(names.get("singular") or kind.lower()),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(subs),
                generation="nonmeta",
                allow_create_on_update=False,
                allow_unconditional_update=False,
                field_selectors=(*BASE_FIELD_SELECTORS, *selectable),
                crd=meta_of(crd).get("name"),
                schema=schema_doc if isinstance(schema_doc, dict) else None,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                scale_paths=(
                    (
                        str(scale.get("specReplicasPath", ".spec.replicas")),
                        str(scale.get("statusReplicasPath", ".status.replicas")),
                        scale.get("labelSelectorPath"),
                    )
                    if isinstance(scale, dict)
                    else None
                ),
            )
        )
    return result


def validate_crd_names(crd: Obj, old: Obj | None) -> list[Cause]:
    """The CRD registry's spec checks (schema.validate_crd) plus the immutable group/scope.

    `metadata.name` (required, a DNS subdomain, `<plural>.<group>`) is checked once, with
    the rest of ObjectMeta, by `validation.validate_create`: upstream reports it once, from
    ValidateObjectMeta's name function.
    """
    causes = [cause for cause in schema.validate_crd(crd) if cause.field != "metadata.name"]
    if old is not None:
        spec = crd.get("spec") or {}
        old_spec = old.get("spec") or {}
        if old_spec.get("group") != spec.get("group"):
            causes.append(invalid("spec.group", spec.get("group"), "field is immutable"))
        if old_spec.get("scope") != spec.get("scope"):
            causes.append(invalid("spec.scope", spec.get("scope"), "field is immutable"))
    return causes


def prepare_delete(crd: Obj, now: str) -> Obj:
    """The CRD registry's first DELETE: finalizer, deletionTimestamp, Terminating condition."""
    updated: Obj = clone(crd)
    meta = updated["metadata"]
    meta.setdefault("deletionTimestamp", now)
    finalizers = list(meta.get("finalizers") or [])
    if CLEANUP_FINALIZER not in finalizers:
        finalizers.append(CLEANUP_FINALIZER)
    meta["finalizers"] = finalizers
    _set_condition(
        updated,
        "Terminating",
        status="True",
        reason="InstanceDeletionPending",
        message="CustomResourceDefinition marked for deletion; CustomResource deletion will "
        "begin soon",
        now=now,
    )
    return updated


def _set_condition(
    crd: Obj, type_: str, *, status: str, reason: str, message: str, now: str
) -> None:
    conditions = crd.setdefault("status", {}).setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == type_:
            if condition.get("status") != status:
                condition["lastTransitionTime"] = now
            condition.update({"status": status, "reason": reason, "message": message})
            return
    conditions.append(
        {
            "type": type_,
            "status": status,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )


class CrdController:
    def __init__(self, *, engine: Engine, openapi: OpenAPISink | None = None) -> None:
        self.engine = engine
        self.openapi = openapi
        self.work: WorkLoop[str] = WorkLoop()
        self._served: dict[str, list[ResourceType]] = {}
        engine.crd_validator = validate_crd_names
        engine.before_delete[("apiextensions.k8s.io", "customresourcedefinitions")] = prepare_delete
        engine.store.add_listener(self.on_event)

    @property
    def idle(self) -> bool:
        return self.work.idle

    def on_event(self, event: StoreEvent) -> None:
        if event.key == CRDS:
            name = meta_of(event.obj)["name"]
            if event.type == DELETED:
                self._unserve(name)
            else:
                self._serve(event.obj)
            self.work.add(name)
            return
        # A custom resource vanished: a terminating CRD may now be able to finish.
        if event.type == DELETED:
            for name, types in self._served.items():
                if types and types[0].storage_key == event.key:
                    self.work.add(name)

    def _serve(self, crd: Obj) -> None:
        name = meta_of(crd)["name"]
        registry = self.engine.registry
        new_types = resource_types(crd)
        for rt in self._served.get(name, []):
            registry.unregister(rt.group, rt.version, rt.plural)
            self.engine.forget_list_types(rt)
        for rt in new_types:
            registry.register(rt)
        if new_types:
            self.engine.store.ensure(new_types[0].storage_key)
        self._served[name] = new_types
        if self.openapi is not None:
            self.openapi.add_crd(crd)

    def _unserve(self, name: str) -> None:
        registry = self.engine.registry
        types = self._served.pop(name, [])
        for rt in types:
            registry.unregister(rt.group, rt.version, rt.plural)
            self.engine.forget_list_types(rt)
        if types:
            self.engine.store.drop_storage(types[0].storage_key)
        if self.openapi is not None:
            self.openapi.remove_crd(name)

    async def run(self) -> None:
        await self.work.run(self._process)

    def _process(self, name: str) -> None:
        crd = self.engine.store.get(CRDS, "", name)
        if crd is None:
            return
        try:
            if meta_of(crd).get("deletionTimestamp"):
                self._finalize(crd)
            else:
                self._establish(crd)
        except errors.ApiError as err:
            if err.code not in (404, 409):
                raise

    def _crd_type(self) -> ResourceType:
        rt = self.engine.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert rt is not None
        return rt

    def _establish(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        kind = names.get("kind", "")
        accepted: dict[str, Any] = {
            "plural": names.get("plural", ""),
            "singular": names.get("singular") or str(kind).lower(),
            "kind": kind,
            "listKind": names.get("listKind") or f"{kind}List",
        }
        if names.get("shortNames"):
            accepted["shortNames"] = list(names["shortNames"])
        if names.get("categories"):
            accepted["categories"] = list(names["categories"])
        now = self.engine.now()
        updated = clone(crd)
        status = updated.setdefault("status", {})
        status["acceptedNames"] = accepted
        _set_condition(
            updated,
            "NamesAccepted",
            status="True",
            reason="NoConflicts",
            message="no conflicts found",
            now=now,
        )
        _set_condition(
            updated,
            "Established",
            status="True",
            reason="InitialNamesAccepted",
            message="the initial names have been accepted",
            now=now,
        )
        stored = list(status.get("storedVersions") or [])
        for version in spec.get("versions") or []:
            if (
                isinstance(version, dict)
                and version.get("storage")
                and version.get("name") not in stored
            ):
                stored.append(version["name"])
        status["storedVersions"] = stored
        if updated.get("status") != crd.get("status"):
            self.engine.update(
                self._crd_type(),
                None,
                meta_of(crd)["name"],
                updated,
                WriteContext(manager=MANAGER),
                subresource="status",
            )

    def _finalize(self, crd: Obj) -> None:
        name = meta_of(crd)["name"]
        types = self._served.get(name) or resource_types(crd)
        if not types:
            return
        rt = types[0]
        key = rt.storage_key
        ctx = WriteContext(manager=MANAGER)
        for obj in list(self.engine.store.items(key)):
            meta = meta_of(obj)
            if meta.get("deletionTimestamp"):
                continue
            self.engine.delete(
                rt,
                meta.get("namespace") or None,
                meta["name"],
                ctx,
                options=DeleteOptions(precondition_uid=meta.get("uid")),
            )
        if self.engine.store.count(key):
            return  # custom resources with finalizers remain
        finalizers = meta_of(crd).get("finalizers") or []
        if CLEANUP_FINALIZER in finalizers:
            updated = clone(crd)
            remaining = [f for f in finalizers if f != CLEANUP_FINALIZER]
            if remaining:
                updated["metadata"]["finalizers"] = remaining
            else:
                updated["metadata"].pop("finalizers", None)
            self.engine.update(self._crd_type(), None, name, updated, ctx)
