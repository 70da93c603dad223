"""Fakes for reconciler unit tests: a tiny recording API server, informer stores, Events.

`FakeServer` keeps objects, answers the writes the reconcilers make (apply, JSON/merge patch,
delete with preconditions) roughly as kube-apiserver does, records every write, and can be
told to fail. `Harness.sync()` copies the server's objects into the informer stores through
the production transforms, which is what the watch would do, so a test decides exactly when
the cache catches up.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import pytest
import structlog

from servicegroup.clock import FakeClock
from servicegroup.controller import Request, Result
from servicegroup.informers.store import (
    CONTROLLER_UID_INDEX,
    Indexer,
    ReadOnlyStore,
    index_by_controller_uid,
)
from servicegroup.informers.transforms import strip_managed_fields
from servicegroup.kube.errors import ApiError
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.children import CHILD_TRANSFORM
from servicegroup.reconcilers.deploymentgrid import DEPLOYMENT_GRID
from servicegroup.reconcilers.gridindex import (
    GRID_UNIQ_KEY_INDEX,
    NamespacedStores,
    index_by_grid_uniq_key,
)
from servicegroup.reconcilers.nodeunit import NodeUnitDiscovery
from servicegroup.reconcilers.servicegrid import ServiceGridReconciler
from servicegroup.reconcilers.workloadgrid import WorkloadGridReconciler, WorkloadKind

NS = "default"


class Write(NamedTuple):
    verb: str  # apply, patch, delete
    kind: str
    name: str
    subresource: str
    body: Any


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class FakeServer:
    """Objects by (kind, namespace, name), and the writes made to them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[Write] = []
        self.failures: dict[tuple[str, str], list[Exception]] = {}  # (verb, name) -> errors
        self._rv = itertools.count(100)

    def next_rv(self) -> str:
        return str(next(self._rv))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as it would exist on the server (uid, rv, generation filled)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", NS)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self.next_rv()
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def get(self, kind: str, name: str, namespace: str = NS) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def fail(self, verb: str, name: str, *errors: Exception) -> None:
        """The next writes `verb` of `name` raise `errors`, in order."""
        self.failures.setdefault((verb, name), []).extend(errors)

    def _maybe_fail(self, verb: str, name: str) -> None:
        pending = self.failures.get((verb, name))
        if pending:
            raise pending.pop(0)

    def writes_of(self, verb: str | None = None) -> list[Write]:
        return [w for w in self.writes if verb is None or w.verb == verb]

    # --- the client API the reconcilers use

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
        name = body["metadata"]["name"]
        namespace = namespace or body["metadata"].get("namespace") or NS
        self.writes.append(Write("apply", ref.kind, name, subresource or "", copy.deepcopy(body)))
        self._maybe_fail("apply", name)
        key = (ref.kind, namespace, name)
        existing = self.objects.get(key)
        new = copy.deepcopy(dict(body))
        meta = new["metadata"]
        if existing is None:
            meta["uid"] = str(uuid.uuid4())
            meta["generation"] = 1
        else:
            old_meta = existing["metadata"]
            meta["uid"] = old_meta["uid"]
            # Fields other managers own survive (annotations, labels added by others).
            meta["annotations"] = {
                **(old_meta.get("annotations") or {}),
                **(meta.get("annotations") or {}),
            }
            meta["labels"] = {**(old_meta.get("labels") or {}), **(meta.get("labels") or {})}
            changed = existing.get("spec") != new.get("spec")
            meta["generation"] = old_meta.get("generation", 1) + (1 if changed else 0)
            if "status" in existing:
                new["status"] = existing["status"]
        meta["namespace"] = namespace
        meta["resourceVersion"] = self.next_rv()
        meta["managedFields"] = [{"manager": field_manager, "operation": "Apply"}]
        self.objects[key] = new
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
    ) -> dict[str, Any]:
        namespace = namespace or NS
        self.writes.append(Write("patch", ref.kind, name, subresource or "", copy.deepcopy(body)))
        self._maybe_fail("patch", name)
        key = (ref.kind, namespace, name)
        existing = self.objects.get(key)
        if existing is None:
            raise ApiError(404, "NotFound", f"{ref.kind} {name} not found")
        obj = copy.deepcopy(existing)
        if patch_type == "json":
            for op in body:
                assert op["op"] == "add" and op["path"] == "/status", op
                obj["status"] = copy.deepcopy(op["value"])
        else:
            wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != existing["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified")
            patch = {k: v for k, v in body.items() if k != "metadata"}
            obj = _merge_patch(obj, patch)
            if obj.get("spec") != existing.get("spec"):
                obj["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
        obj["metadata"]["resourceVersion"] = self.next_rv()
        self.objects[key] = obj
        return copy.deepcopy(obj)

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
        namespace = namespace or NS
        self.writes.append(Write("delete", ref.kind, name, "", dict(preconditions or {})))
        self._maybe_fail("delete", name)
        key = (ref.kind, namespace, name)
        existing = self.objects.get(key)
        if existing is None:
            raise ApiError(404, "NotFound", f"{ref.kind} {name} not found")
        if preconditions and preconditions.get("uid") != existing["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition")
        del self.objects[key]
        return {"kind": "Status", "status": "Success"}


class Event(NamedTuple):
    name: str
    type: str
    reason: str
    message: str


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        self.events.append(Event(obj["metadata"]["name"], type, reason, message))

    def reasons(self, type: str | None = None) -> list[str]:
        return [e.reason for e in self.events if type is None or e.type == type]


class Harness:
    """A reconciler of one grid kind over a FakeServer, with stores the test syncs."""

    def __init__(
        self,
        *,
        clock: FakeClock,
        metrics: Metrics,
        kind: WorkloadKind | None = DEPLOYMENT_GRID,
        grace_period: float = 0.0,
    ) -> None:
        self.clock = clock
        self.server = FakeServer()
        self.recorder = FakeRecorder()
        self.grid_kind = kind.grid_kind if kind is not None else "ServiceGrid"
        self.child_kind = kind.child_kind if kind is not None else "Service"
        self.grids = Indexer(indexers={GRID_UNIQ_KEY_INDEX: index_by_grid_uniq_key})
        self.children = Indexer(indexers={CONTROLLER_UID_INDEX: index_by_controller_uid})
        self.discovery = NodeUnitDiscovery(metrics=metrics, logger=structlog.get_logger())
        grids = NamespacedStores({None: ReadOnlyStore(self.grids)})
        children = NamespacedStores({None: ReadOnlyStore(self.children)})
        self.reconciler: WorkloadGridReconciler | ServiceGridReconciler
        if kind is not None:
            self.reconciler = WorkloadGridReconciler(
                kind=kind,
                grids=grids,
                children=children,
                units=self.discovery,
                client=self.server,
                recorder=self.recorder,
                clock=clock,
                metrics=metrics,
                grace_period=grace_period,
            )
        else:
            self.reconciler = ServiceGridReconciler(
                grids=grids,
                services=children,
                client=self.server,
                recorder=self.recorder,
                clock=clock,
                metrics=metrics,
            )

    def node(self, name: str, **labels: str) -> None:
        self.discovery.node_changed({"metadata": {"name": name, "labels": labels}})

    def remove_node(self, name: str) -> None:
        self.discovery.node_deleted({"metadata": {"name": name}})

    def grid(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.server.put(obj)

    def child(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.server.put(obj)

    def sync(self) -> None:
        """The watch delivers everything: stores equal the server (through the transforms)."""
        grids = [
            strip_managed_fields(copy.deepcopy(o))
            for (k, _, _), o in self.server.objects.items()
            if k == self.grid_kind
        ]
        children = [
            CHILD_TRANSFORM(copy.deepcopy(o))
            for (k, _, _), o in self.server.objects.items()
            if k == self.child_kind
        ]
        self.grids.replace(grids, "")
        self.children.replace(children, "")

    async def reconcile(self, name: str, namespace: str = NS) -> Result:
        return await self.reconciler.reconcile(Request(namespace, name), log=structlog.get_logger())

    def status(self, name: str) -> dict[str, Any]:
        obj = self.server.get(self.grid_kind, name)
        assert obj is not None
        return obj.get("status") or {}

    def condition(self, name: str, ctype: str) -> dict[str, Any] | None:
        for condition in self.status(name).get("conditions") or ():
            if condition["type"] == ctype:
                return condition
        return None


def deployment_grid(
    name: str = "demo",
    *,
    key: str = "zone",
    image: str = "nginx:1",
    replicas: int | None = 2,
    **spec: Any,
) -> dict[str, Any]:
    template: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        },
    }
    if replicas is not None:
        template["replicas"] = replicas
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": name, "namespace": NS, "labels": {"team": "edge"}},
        "spec": {"gridUniqKey": key, "template": template, **spec},
    }


@pytest.fixture
def harness(clock: FakeClock, metrics: Metrics) -> Harness:
    return Harness(clock=clock, metrics=metrics)


@pytest.fixture
def make_harness(clock: FakeClock, metrics: Metrics) -> Any:
    """Build a Harness with options: make_harness(kind=..., grace_period=...)."""

    def make(**options: Any) -> Harness:
        return Harness(clock=clock, metrics=metrics, **options)

    return make


@pytest.fixture
def make_grid() -> Any:
    """deployment_grid(name, key=, image=, replicas=, **spec) -> a DeploymentGrid dict."""
    return deployment_grid
