"""Fakes for the federation unit tests: a tiny recording API server per cluster, its caches.

`FakeCluster` keeps grids by (kind, namespace, name), answers the calls federation makes
(get, server-side apply, merge patch with a resourceVersion precondition, JSON patch of the
status, delete with a uid precondition and finalizers) roughly as kube-apiserver does,
records every write and can be told to fail. `sync()` copies its objects into label-filtered
informer stores through the production transforms: a test decides when the cache catches up.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from servicegroup.informers.store import Indexer, ReadOnlyStore
from servicegroup.kube.errors import ApiError
from servicegroup.kube.resources import ResourceRef
from servicegroup.reconcilers.children import WriteExpectations
from servicegroup.reconcilers.federation_render import FED_KINDS, FedKind, deleting
from servicegroup.reconcilers.federation_status import apply_merge_patch

Obj = dict[str, Any]


class Write(NamedTuple):
    verb: str
    kind: str
    namespace: str
    name: str
    subresource: str
    body: Any


def _without_nulls(value: Any) -> Any:
    # Server-side apply treats a null as "not set".
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


class FakeCluster:
    """Objects of one cluster, and the writes made to them."""

    def __init__(self, name: str = "cluster") -> None:
        self.name = name
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[Write] = []
        self.reads: list[tuple[str, str, str]] = []
        self.failures: dict[str, list[Exception]] = {}
        self._rv = itertools.count(100)

    # ---- test side

    def put(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def get_obj(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((kind, namespace, name))

    def fail(self, verb: str, *errors: Exception) -> None:
        """The next calls of `verb` (apply, patch, delete, get) raise `errors`, in order."""
        self.failures.setdefault(verb, []).extend(errors)

    def writes_of(self, verb: str | None = None) -> list[Write]:
        return [w for w in self.writes if verb is None or w.verb == verb]

    def _maybe_fail(self, verb: str) -> None:
        pending = self.failures.get(verb)
        if pending:
            raise pending.pop(0)

    def _bump(self, obj: Obj) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))

    @staticmethod
    def _not_found(name: str) -> ApiError:
        return ApiError(404, "NotFound", f'"{name}" not found')

    @staticmethod
    def _conflict(name: str) -> ApiError:
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on "{name}"')

    # ---- the client API

    async def get(
        self,
        ref: ResourceRef,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        self.reads.append((ref.kind, namespace or "", name))
        self._maybe_fail("get")
        obj = self.objects.get((ref.kind, namespace or "", name))
        if obj is None:
            raise self._not_found(name)
        return copy.deepcopy(obj)

    async def apply(
        self,
        ref: ResourceRef,
        body: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        meta_in = body["metadata"]
        namespace = namespace or meta_in["namespace"]
        name = meta_in["name"]
        self.writes.append(Write("apply", ref.kind, namespace, name, "", copy.deepcopy(body)))
        self._maybe_fail("apply")
        key = (ref.kind, namespace, name)
        existing = self.objects.get(key)
        new = _without_nulls(copy.deepcopy(dict(body)))
        meta = new["metadata"]
        if existing is None:
            meta["uid"] = str(uuid.uuid4())
            meta["generation"] = 1
        else:
            old_meta = existing["metadata"]
            for keep in ("uid", "finalizers", "deletionTimestamp"):
                if keep in old_meta:
                    meta[keep] = old_meta[keep]
            changed = existing.get("spec") != new.get("spec")
            meta["generation"] = old_meta.get("generation", 1) + (1 if changed else 0)
            if "status" in existing:
                new["status"] = existing["status"]
        self.objects[key] = new
        self._bump(new)
        return copy.deepcopy(new)

    async def patch(
        self,
        ref: ResourceRef,
        name: str,
        body: Any,
        *,
        patch_type: str,
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        namespace = namespace or ""
        self.writes.append(
            Write("patch", ref.kind, namespace, name, subresource or "", copy.deepcopy(body))
        )
        self._maybe_fail("patch")
        key = (ref.kind, namespace, name)
        existing = self.objects.get(key)
        if existing is None:
            raise self._not_found(name)
        if patch_type == "merge":
            wanted_rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != existing["metadata"]["resourceVersion"]:
                raise self._conflict(name)
            patch = copy.deepcopy(body)
            (patch.get("metadata") or {}).pop("resourceVersion", None)
            if subresource == "status":
                patch = {"status": patch.get("status")} if "status" in patch else {}
            new = apply_merge_patch(existing, patch)
        elif patch_type == "json":
            new = copy.deepcopy(existing)
            for op in body:
                assert op["op"] == "add" and op["path"] == "/status", op
                new["status"] = copy.deepcopy(op["value"])
        else:
            raise AssertionError(f"unexpected patch type {patch_type}")
        if deleting(new) and not new["metadata"].get("finalizers"):
            del self.objects[key]
            return copy.deepcopy(new)
        self.objects[key] = new
        self._bump(new)
        return copy.deepcopy(new)

    async def delete(
        self,
        ref: ResourceRef,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        preconditions: Mapping[str, str] | None = None,
        grace_period_seconds: int | None = None,
    ) -> Obj:
        namespace = namespace or ""
        self.writes.append(
            Write("delete", ref.kind, namespace, name, "", dict(preconditions or {}))
        )
        self._maybe_fail("delete")
        key = (ref.kind, namespace, name)
        existing = self.objects.get(key)
        if existing is None:
            raise self._not_found(name)
        uid = (preconditions or {}).get("uid")
        if uid and uid != existing["metadata"]["uid"]:
            raise self._conflict(name)
        if existing["metadata"].get("finalizers"):
            existing["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            self._bump(existing)
            return copy.deepcopy(existing)
        del self.objects[key]
        return {"kind": "Status", "status": "Success"}


class FakeStores:
    """Label-filtered stores of one cluster's grids, per kind, fed by `FakeCluster.sync`."""

    def __init__(
        self,
        cluster: FakeCluster,
        *,
        keep: Callable[[Obj], bool],
        indexers: Mapping[str, Callable[[Obj], list[str]]] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.cluster = cluster
        self._keep = keep
        self._namespace = namespace
        self.indexers = {k.kind: Indexer(indexers=indexers) for k in FED_KINDS}

    def store(self, kind: FedKind) -> ReadOnlyStore:
        return ReadOnlyStore(self.indexers[kind.kind])

    def sync(self) -> None:
        for kind in FED_KINDS:
            objects = [
                copy.deepcopy(obj)
                for (k, ns, _), obj in self.cluster.objects.items()
                if k == kind.kind
                and self._keep(obj)
                and (self._namespace is None or ns == self._namespace)
            ]
            self.indexers[kind.kind].replace(objects, "1")

    # KindStores / LocalStores
    def originals(self, kind: FedKind) -> ReadOnlyStore:
        return self.store(kind)

    def copies(self, kind: FedKind) -> ReadOnlyStore:
        return self.store(kind)

    def locals(self, kind: FedKind) -> ReadOnlyStore:
        return self.store(kind)


class TwoStores:
    """Originals and copies from two FakeStores (the hub's KindStores)."""

    def __init__(self, originals: FakeStores, copies: FakeStores) -> None:
        self._originals = originals
        self._copies = copies

    def originals(self, kind: FedKind) -> ReadOnlyStore:
        return self._originals.store(kind)

    def copies(self, kind: FedKind) -> ReadOnlyStore:
        return self._copies.store(kind)

    def sync(self) -> None:
        self._originals.sync()
        self._copies.sync()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []  # (object name, type, reason, msg)

    def event(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        self.events.append((str(obj["metadata"]["name"]), type, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]


class FakeSession:
    """A ready hub session over a FakeCluster (the member's view of the hub)."""

    def __init__(self, hub: FakeCluster, *, namespace: str, clock: Any) -> None:
        self.hub = hub
        self.namespace = namespace
        self.ready = True
        self.client = hub
        self.expectations = {k.kind: WriteExpectations(clock=clock) for k in FED_KINDS}
        self.cache = FakeStores(hub, keep=lambda o: True, namespace=namespace)
        self.unreachable_errors: list[BaseException] = []
        self.refused: list[ApiError] = []

    def sync(self) -> None:
        self.cache.sync()

    def copy(self, kind: FedKind, name: str) -> Obj | None:
        key = f"{self.namespace}/{name}"
        return self.expectations[kind.kind].view(key, self.cache.store(kind).get(key))

    def copies(self, kind: FedKind) -> list[Obj]:
        return self.cache.store(kind).list()

    def unreachable(self, err: BaseException) -> None:
        self.unreachable_errors.append(err)

    def request_failed(self, err: ApiError) -> None:
        self.refused.append(err)


class FakeLink:
    def __init__(self, session: FakeSession | None) -> None:
        self.session = session
