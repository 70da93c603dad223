"""The invariant every reliability scenario ends with (issue 11), and waiting for it.

After the faults stop, within a deadline:
1. every (grid, NodeUnit) has exactly one child controlled by that grid, with the rendered
   spec (servicegroup.grid.render + compare.matches); every ServiceGrid has its Service;
2. no child exists for a vanished unit or a deleted grid;
3. no object the controller does not control was modified: every object in the API server
   whose managedFields name `servicegroup-controller` is a grid's child, or a grid whose
   status (or, with autoDeleteUnusedTemplate, spec) it wrote; the foreign objects a scenario
   planted still look exactly as they were created;
4. every grid's status matches its children: observedGeneration, units, readyUnits, one
   `states` entry per unit with a child (carrying the child's status), the Ready condition,
   and a failure condition naming each unit that cannot have its child (and no stale one);
5. every wrapper serves exactly its unit's endpoints (EndpointSlices and Endpoints, listed
   from the wrapper and, when given, as seen through a kube-proxy-like watch on it);
6. every DNS hosts file maps exactly its unit's Ready StatefulSetGrid pods.
Plus the scenario's ledger: every grid the scenario created and did not delete still exists.

Independence: NodeUnits, readiness, the wrapper's filter and the DNS records are recomputed
here from first principles (SPEC A2, A5, A6); only the rendering of a child and the
derivative compare come from the product's pure grid logic, as the rendered spec is defined
by it. The objects come from a `ClusterView`: `SimView` reads kubesim's store directly (the
truth), `InformerView` reads the caches of a direct watch of the API server.

A violation is `lost` (something that must exist is missing: a child, a grid, a foreign
object, an endpoint, a DNS record), `extra` (something that must not exist) or `wrong`.
"Objects lost" in the report is the number of `lost` violations left at the deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from servicegroup.api.models import parse_grid
from servicegroup.grid.compare import matches
from servicegroup.grid.labels import FIELD_MANAGER, NODEUNIT
from servicegroup.grid.naming import ChildNameError
from servicegroup.grid.render import render_service, render_units
from servicegroup.grid.validation import validate_grid
from servicegroup.informers.informer import SharedInformer
from servicegroup.kubesim.app import KubeSim

Obj = Mapping[str, Any]
GRID_KINDS = {
    "deploymentgrids": ("DeploymentGrid", "deployments", "Deployment"),
    "statefulsetgrids": ("StatefulSetGrid", "statefulsets", "StatefulSet"),
    "servicegrids": ("ServiceGrid", "services", "Service"),
}
KIND_TO_RESOURCE = {kind: resource for resource, (kind, _, _) in GRID_KINDS.items()}
FAILURE_TYPES = ("InvalidSpec", "TemplateNotFound", "ChildConflict", "ApplyFailed")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
BEGIN, END = "# BEGIN servicegroup", "# END servicegroup"
DOMAIN = "cluster.local"
# Resources whose objects the controller owns outright (its Events and its Lease).
OWN_RESOURCES = frozenset({"events", "leases"})


# ------------------------------------------------------------------------------ views


class ClusterView(Protocol):
    def objects(self, resource: str) -> Iterable[Obj]:
        """Every object of `resource` (plural), read-only."""
        ...


class SimView:
    """Kubesim's store itself: the truth, read without copying (never mutate)."""

    def __init__(self, sim: KubeSim) -> None:
        self.sim = sim

    def objects(self, resource: str) -> Iterable[Obj]:
        rt = self.sim.registry.lookup(resource)
        return list(self.sim.store.items(self.sim.engine.storage_key(rt)))

    def everything(self) -> Iterable[tuple[str, Obj]]:
        for key in list(self.sim.store.keys()):
            for obj in self.sim.store.items(key):
                yield key.plural, obj


class InformerView:
    """What a direct watch of the API server shows (informer caches by plural)."""

    def __init__(self, informers: Mapping[str, SharedInformer]) -> None:
        self.informers = informers

    def objects(self, resource: str) -> Iterable[Obj]:
        return list(self.informers[resource].store.list())


# ------------------------------------------------------------------------------ verdict


@dataclass(frozen=True)
class Violation:
    category: str  # lost | extra | wrong
    what: str

    def __str__(self) -> str:
        return f"[{self.category}] {self.what}"


@dataclass
class Verdict:
    violations: list[Violation] = field(default_factory=list)
    checks: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def lost(self) -> int:
        return sum(1 for v in self.violations if v.category == "lost")

    def check(self, holds: bool, category: str, what: str) -> None:
        self.checks += 1
        if not holds:
            self.violations.append(Violation(category, what))

    def merge(self, other: Verdict) -> None:
        self.violations.extend(other.violations)
        self.checks += other.checks

    def summary(self, limit: int = 25) -> str:
        lines = [str(v) for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"... and {len(self.violations) - limit} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class WrapperProbe:
    """A wrapper to check: the node it serves and its URL; `watch` is an optional
    kube-proxy-like client whose EndpointSlice cache (through the wrapper) is checked too."""

    node: str
    url: str
    watch: SharedInformer | None = None


@dataclass(frozen=True)
class DnsProbe:
    node: str
    path: Path


@dataclass
class Expectations:
    """What a scenario adds to the invariant."""

    grids: set[tuple[str, str, str]] = field(default_factory=set)  # must exist
    foreign: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    wrappers: list[WrapperProbe] = field(default_factory=list)
    dns: list[DnsProbe] = field(default_factory=list)
    allow_rejected: bool = False  # an ApplyFailed unit (server rejected the child) is fine

    def plant_foreign(self, resource: str, obj: Obj) -> None:
        meta = obj["metadata"]
        self.foreign[(resource, meta.get("namespace") or "", meta["name"])] = foreign_snapshot(obj)


def foreign_snapshot(obj: Obj) -> dict[str, Any]:
    """The parts of an object nobody but its owner may change (status excluded)."""
    meta = obj.get("metadata") or {}
    snapshot: dict[str, Any] = json.loads(
        json.dumps(
            {
                "uid": meta.get("uid"),
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": meta.get("ownerReferences") or [],
                "generation": meta.get("generation"),
                "spec": obj.get("spec"),
            }
        )
    )
    return snapshot


# ------------------------------------------------------------------------------ helpers


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _key(obj: Obj) -> tuple[str, str]:
    meta = _meta(obj)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def controller_ref(obj: Obj) -> Mapping[str, Any] | None:
    for ref in _meta(obj).get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return ref
    return None


def grid_owner(obj: Obj) -> tuple[str, str] | None:
    """(grid kind, uid) when a superedge.io grid is `obj`'s controller."""
    ref = controller_ref(obj)
    if ref is None or str(ref.get("apiVersion") or "").partition("/")[0] != "superedge.io":
        return None
    kind = ref.get("kind")
    if kind not in KIND_TO_RESOURCE:
        return None
    return str(kind), str(ref.get("uid") or "")


def node_units(nodes: Iterable[Obj], key: str) -> set[str]:
    """SPEC A2: the distinct non-empty values of label `key`."""
    out = set()
    for node in nodes:
        value = (_meta(node).get("labels") or {}).get(key)
        if isinstance(value, str) and value:
            out.add(value)
    return out


def conditions_of(obj: Obj) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status")
    found = status.get("conditions") if isinstance(status, Mapping) else None
    return {str(c.get("type")): c for c in found or () if isinstance(c, Mapping) and c.get("type")}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def child_ready(child: Obj) -> bool:
    """The child's controller caught up and every replica it wants is ready (and updated)."""
    status = child.get("status") if isinstance(child.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    generation = _meta(child).get("generation")
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and (not isinstance(observed, int) or observed < generation):
        return False
    spec = child.get("spec") if isinstance(child.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    wanted = _int(spec.get("replicas"), 1)
    if _int(status.get("readyReplicas"), 0) != wanted:
        return False
    return child.get("kind") != "Deployment" or _int(status.get("updatedReplicas"), 0) == wanted


_STATE_KEYS = {
    "Deployment": ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas"),
    "StatefulSet": ("replicas", "readyReplicas", "currentRevision", "updateRevision"),
}


class Index:
    """The view's objects, indexed once per evaluation."""

    def __init__(self, view: ClusterView) -> None:
        self.nodes = list(view.objects("nodes"))
        self.grids = {r: list(view.objects(r)) for r in GRID_KINDS}
        self.children: dict[str, dict[tuple[str, str], Obj]] = {}
        self.owned: dict[str, list[tuple[str, Obj]]] = defaultdict(list)  # uid -> (res, child)
        for _, child_resource, _ in GRID_KINDS.values():
            objs = {_key(o): o for o in view.objects(child_resource)}
            self.children[child_resource] = objs
            for obj in objs.values():
                owner = grid_owner(obj)
                if owner is not None:
                    self.owned[owner[1]].append((child_resource, obj))
        self.grid_uids = {
            str(_meta(g).get("uid")): (r, g) for r, grids in self.grids.items() for g in grids
        }


# ------------------------------------------------------------------------------ grids


def _failure_named(conds: Mapping[str, Mapping[str, Any]], ctype: str, unit: str) -> bool:
    condition = conds.get(ctype)
    return (
        condition is not None
        and condition.get("status") == "True"
        and (not unit or unit in str(condition.get("message") or ""))
    )


def check_workload_grid(resource: str, grid: Obj, index: Index, exp: Expectations) -> Verdict:
    verdict = Verdict()
    kind, child_resource, child_kind = GRID_KINDS[resource]
    ns, name = _key(grid)
    where = f"{kind} {ns}/{name}"
    meta = _meta(grid)
    uid = str(meta.get("uid") or "")
    conds = conditions_of(grid)
    if meta.get("deletionTimestamp"):
        return verdict
    validation = validate_grid(grid, kind=kind)
    if not validation.ok:
        # Children are left as they are (a typo never deletes a site's workload).
        verdict.check(
            _failure_named(conds, "InvalidSpec", ""), "wrong", f"{where}: no InvalidSpec condition"
        )
        ready = conds.get("Ready")
        verdict.check(
            ready is not None and ready.get("status") == "False",
            "wrong",
            f"{where}: invalid but Ready is not False",
        )
        return verdict
    parsed = parse_grid(dict(grid))
    assert parsed.kind != "ServiceGrid"
    key = parsed.spec.grid_uniq_key
    units = node_units(index.nodes, key)
    plan = render_units(parsed, units)
    children = index.children[child_resource]
    owned_by_unit: dict[str, list[Obj]] = defaultdict(list)
    for res, child in index.owned.get(uid, ()):
        if res != child_resource or _meta(child).get("deletionTimestamp"):
            continue
        unit = (_meta(child).get("labels") or {}).get(NODEUNIT)
        verdict.check(
            unit in units,
            "extra",
            f"{where}: {child_kind} {_key(child)[1]} of vanished NodeUnit {unit!r}",
        )
        owned_by_unit[str(unit)].append(child)

    expected_failures: set[str] = {f.type for f in plan.failures.values()}
    unit_children: dict[str, Obj] = {}
    failed_units: set[str] = set(plan.failures)
    for unit, failure in sorted(plan.failures.items()):
        verdict.check(
            _failure_named(conds, failure.type, unit),
            "wrong",
            f"{where}: NodeUnit {unit} cannot be rendered ({failure.type}) but no condition "
            "names it",
        )
    for unit, rendered in sorted(plan.children.items()):
        live = children.get((ns, rendered.name))
        mine = owned_by_unit.get(unit, [])
        verdict.check(
            len(mine) <= 1,
            "extra",
            f"{where}: {len(mine)} children for NodeUnit {unit}: "
            + ", ".join(_key(c)[1] for c in mine),
        )
        if live is not None and grid_owner(live) != (kind, uid):
            expected_failures.add("ChildConflict")
            failed_units.add(unit)
            verdict.check(
                _failure_named(conds, "ChildConflict", unit),
                "wrong",
                f"{where}: {child_kind} {rendered.name} is not ours but no ChildConflict names "
                f"NodeUnit {unit}",
            )
            continue
        if live is None:
            if exp.allow_rejected and _failure_named(conds, "ApplyFailed", unit):
                expected_failures.add("ApplyFailed")
                failed_units.add(unit)
                continue
            verdict.check(False, "lost", f"{where}: no {child_kind} {rendered.name} for {unit}")
            continue
        unit_children[unit] = live
        if exp.allow_rejected and _failure_named(conds, "ApplyFailed", unit):
            expected_failures.add("ApplyFailed")  # the server refused the update
            failed_units.add(unit)
            continue
        verdict.check(
            matches(live, rendered.obj, owner_uid=uid),
            "wrong",
            f"{where}: {child_kind} {rendered.name} does not have the rendered spec",
        )
    for unit in plan.failures:
        for child in owned_by_unit.get(unit, [])[:1]:
            unit_children[unit] = child  # kept as it was; still reported in states

    # Status.
    status = grid.get("status") if isinstance(grid.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    verdict.check(
        status.get("observedGeneration") == meta.get("generation"),
        "wrong",
        f"{where}: observedGeneration {status.get('observedGeneration')} != generation "
        f"{meta.get('generation')}",
    )
    verdict.check(
        status.get("units") == len(units),
        "wrong",
        f"{where}: status.units {status.get('units')} != {len(units)}",
    )
    states = status.get("states") if isinstance(status.get("states"), Mapping) else {}
    assert isinstance(states, Mapping)
    verdict.check(
        set(states) == set(unit_children),
        "wrong",
        f"{where}: states for {sorted(states)}, children for {sorted(unit_children)}",
    )
    for unit, child in sorted(unit_children.items()):
        state = states.get(unit)
        child_status = child.get("status") if isinstance(child.get("status"), Mapping) else {}
        assert isinstance(child_status, Mapping)
        for k in _STATE_KEYS[child_kind]:
            verdict.check(
                isinstance(state, Mapping) and state.get(k) == child_status.get(k),
                "wrong",
                f"{where}: states[{unit}].{k} = "
                f"{state.get(k) if isinstance(state, Mapping) else None!r}, child has "
                f"{child_status.get(k)!r}",
            )
    ready_units = sorted(u for u, c in unit_children.items() if child_ready(c))
    verdict.check(
        status.get("readyUnits") == len(ready_units),
        "wrong",
        f"{where}: readyUnits {status.get('readyUnits')} != {len(ready_units)} ({ready_units})",
    )
    all_ready = bool(units) and not failed_units and len(ready_units) == len(units)
    ready = conds.get("Ready")
    verdict.check(
        ready is not None and ready.get("status") == ("True" if all_ready else "False"),
        "wrong",
        f"{where}: Ready is {ready.get('status') if ready else None}, expected "
        f"{'True' if all_ready else 'False'}",
    )
    for ctype in FAILURE_TYPES:
        if ctype not in expected_failures:
            verdict.check(
                not _failure_named(conds, ctype, ""),
                "wrong",
                f"{where}: stale condition {ctype}: {(conds.get(ctype) or {}).get('message')}",
            )
    return verdict


def check_service_grid(grid: Obj, index: Index, exp: Expectations) -> Verdict:
    verdict = Verdict()
    ns, name = _key(grid)
    where = f"ServiceGrid {ns}/{name}"
    meta = _meta(grid)
    uid = str(meta.get("uid") or "")
    conds = conditions_of(grid)
    if meta.get("deletionTimestamp"):
        return verdict
    validation = validate_grid(grid, kind="ServiceGrid")
    desired: dict[str, Any] | None = None
    if validation.ok:
        try:
            desired = render_service(parse_grid(dict(grid)))  # type: ignore[arg-type]
        except ChildNameError:
            desired = None
    if desired is None:
        verdict.check(
            _failure_named(conds, "InvalidSpec", ""), "wrong", f"{where}: no InvalidSpec condition"
        )
        return verdict
    svc_name = desired["metadata"]["name"]
    live = index.children["services"].get((ns, svc_name))
    for _, child in index.owned.get(uid, ()):
        verdict.check(_key(child)[1] == svc_name, "extra", f"{where}: extra child {_key(child)[1]}")
    expected_failures: set[str] = set()
    if live is not None and grid_owner(live) != ("ServiceGrid", uid):
        expected_failures.add("ChildConflict")
        verdict.check(
            _failure_named(conds, "ChildConflict", ""),
            "wrong",
            f"{where}: Service {svc_name} is not ours but no ChildConflict",
        )
    elif live is None:
        if exp.allow_rejected and _failure_named(conds, "ApplyFailed", ""):
            expected_failures.add("ApplyFailed")
        else:
            verdict.check(False, "lost", f"{where}: no Service {svc_name}")
    elif exp.allow_rejected and _failure_named(conds, "ApplyFailed", ""):
        expected_failures.add("ApplyFailed")  # the server refused the update
    else:
        verdict.check(
            matches(live, desired, owner_uid=uid),
            "wrong",
            f"{where}: Service {svc_name} does not have the rendered spec",
        )
    status = grid.get("status") if isinstance(grid.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    verdict.check(
        status.get("observedGeneration") == meta.get("generation"),
        "wrong",
        f"{where}: observedGeneration {status.get('observedGeneration')} != "
        f"{meta.get('generation')}",
    )
    ready = conds.get("Ready")
    want = "False" if expected_failures else "True"
    verdict.check(
        ready is not None and ready.get("status") == want,
        "wrong",
        f"{where}: Ready is {ready.get('status') if ready else None}, expected {want}",
    )
    for ctype in FAILURE_TYPES:
        if ctype not in expected_failures:
            verdict.check(
                not _failure_named(conds, ctype, ""), "wrong", f"{where}: stale condition {ctype}"
            )
    return verdict


def check_grids(view: ClusterView, exp: Expectations) -> Verdict:
    verdict = Verdict()
    index = Index(view)
    for resource, grids in index.grids.items():
        for grid in grids:
            if resource == "servicegrids":
                verdict.merge(check_service_grid(grid, index, exp))
            else:
                verdict.merge(check_workload_grid(resource, grid, index, exp))
    # Children of grids that no longer exist (garbage collection must have taken them).
    for uid, owned in index.owned.items():
        if uid in index.grid_uids:
            continue
        for res, child in owned:
            verdict.check(
                bool(_meta(child).get("deletionTimestamp")),
                "extra",
                f"{res} {_key(child)[1]} of deleted grid (uid {uid})",
            )
    # The scenario's ledger.
    present = {(r, *_key(g)) for r, grids in index.grids.items() for g in grids}
    for entry in sorted(exp.grids):
        verdict.check(entry in present, "lost", f"grid {entry} is gone")
    # Foreign objects.
    for (resource, ns, name), snapshot in sorted(exp.foreign.items()):
        current = {(_key(o)): o for o in view.objects(resource)}.get((ns, name))
        if current is None:
            verdict.check(False, "lost", f"foreign {resource} {ns}/{name} is gone")
            continue
        verdict.check(
            foreign_snapshot(current) == snapshot,
            "wrong",
            f"foreign {resource} {ns}/{name} was modified",
        )
    return verdict


def check_untouched(view: SimView) -> Verdict:
    """Every object the controller's field manager wrote is one it controls."""
    verdict = Verdict()
    for resource, obj in view.everything():
        if resource in OWN_RESOURCES:
            continue
        entries = [
            m
            for m in _meta(obj).get("managedFields") or ()
            if isinstance(m, Mapping) and m.get("manager") == FIELD_MANAGER
        ]
        if not entries:
            continue
        ns, name = _key(obj)
        if grid_owner(obj) is not None:
            verdict.check(True, "wrong", "")
            continue
        if resource in GRID_KINDS:
            spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
            assert isinstance(spec, Mapping)
            pruning = spec.get("autoDeleteUnusedTemplate") is True
            for entry in entries:
                verdict.check(
                    entry.get("subresource") == "status" or pruning,
                    "wrong",
                    f"the controller wrote {resource} {ns}/{name} outside its status",
                )
            continue
        verdict.check(False, "wrong", f"the controller modified {resource} {ns}/{name}")
    return verdict


# ------------------------------------------------------------------------------ wrappers


def topology_keys(service: Obj | None) -> tuple[str, ...]:
    """SPEC A5: the keys of a `topologyKeys` JSON array annotation (empty: pass-through)."""
    if service is None:
        return ()
    value = (_meta(service).get("annotations") or {}).get("topologyKeys")
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return ()
    if not isinstance(parsed, list) or not all(isinstance(k, str) for k in parsed):
        return ()
    return tuple(k for k in parsed if k)


def _shares(local: Mapping[str, str] | None, other: Mapping[str, str] | None, keys: Any) -> bool:
    if local is None or other is None:
        return False
    return any(local.get(k) and other.get(k) == local.get(k) for k in keys)


def expected_endpoints(
    view: ClusterView, node: str
) -> tuple[dict[Any, set[str]], dict[Any, set[str]]]:
    """What the wrapper of `node` must serve: addresses per EndpointSlice and per Endpoints."""
    labels = {_meta(n)["name"]: dict(_meta(n).get("labels") or {}) for n in view.objects("nodes")}
    local = labels.get(node)
    services = {_key(s): s for s in view.objects("services")}

    def keep(keys: tuple[str, ...], node_name: Any) -> bool:
        if not keys:
            return True
        return isinstance(node_name, str) and _shares(local, labels.get(node_name), keys)

    slices: dict[Any, set[str]] = {}
    for obj in view.objects("endpointslices"):
        ns, name = _key(obj)
        svc = (_meta(obj).get("labels") or {}).get(SERVICE_NAME_LABEL)
        keys = topology_keys(services.get((ns, svc))) if svc else ()
        slices[(ns, name)] = {
            addr
            for ep in obj.get("endpoints") or ()
            if keep(keys, ep.get("nodeName"))
            for addr in ep.get("addresses") or ()
        }
    endpoints: dict[Any, set[str]] = {}
    for obj in view.objects("endpoints"):
        ns, name = _key(obj)
        keys = topology_keys(services.get((ns, name)))
        endpoints[(ns, name)] = {
            addr["ip"]
            for subset in obj.get("subsets") or ()
            for field_name in ("addresses", "notReadyAddresses")
            for addr in subset.get(field_name) or ()
            if keep(keys, addr.get("nodeName"))
        }
    return slices, endpoints


def served_slices(objs: Iterable[Obj]) -> dict[Any, set[str]]:
    return {
        _key(o): {a for ep in o.get("endpoints") or () for a in ep.get("addresses") or ()}
        for o in objs
    }


def served_endpoints(objs: Iterable[Obj]) -> dict[Any, set[str]]:
    return {
        _key(o): {
            a["ip"]
            for s in o.get("subsets") or ()
            for f in ("addresses", "notReadyAddresses")
            for a in s.get(f) or ()
        }
        for o in objs
    }


def _compare(
    verdict: Verdict, where: str, want: dict[Any, set[str]], got: dict[Any, set[str]]
) -> None:
    for key in sorted(set(want) | set(got)):
        if key not in got:
            verdict.check(False, "lost", f"{where}: {key} not served")
            continue
        if key not in want:
            verdict.check(False, "extra", f"{where}: {key} served but gone upstream")
            continue
        missing, extra = want[key] - got[key], got[key] - want[key]
        verdict.check(not missing, "lost", f"{where}: {key} lacks {sorted(missing)}")
        verdict.check(not extra, "extra", f"{where}: {key} has foreign {sorted(extra)}")


async def _list(session: aiohttp.ClientSession, url: str) -> list[Obj] | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                return None
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return None
    items = body.get("items") if isinstance(body, dict) else None
    return items if isinstance(items, list) else None


async def check_wrappers(view: ClusterView, probes: Iterable[WrapperProbe]) -> Verdict:
    verdict = Verdict()
    async with aiohttp.ClientSession() as session:
        for probe in probes:
            want_slices, want_endpoints = expected_endpoints(view, probe.node)
            where = f"wrapper of {probe.node}"
            slices = await _list(session, probe.url + "/apis/discovery.k8s.io/v1/endpointslices")
            endpoints = await _list(session, probe.url + "/api/v1/endpoints")
            if slices is None or endpoints is None:
                verdict.check(False, "lost", f"{where}: list failed")
                continue
            _compare(verdict, f"{where} (slices)", want_slices, served_slices(slices))
            _compare(verdict, f"{where} (endpoints)", want_endpoints, served_endpoints(endpoints))
            if probe.watch is not None:
                _compare(
                    verdict,
                    f"{where} (kube-proxy watch)",
                    want_slices,
                    served_slices(probe.watch.store.list()),
                )
    return verdict


# ------------------------------------------------------------------------------ DNS


def expected_records(view: ClusterView, node: str) -> set[str]:
    """SPEC A6: `IP FQDN` lines the hosts file of `node` must hold (Ready pods only)."""
    labels: dict[str, str] = {}
    for n in view.objects("nodes"):
        if _meta(n).get("name") == node:
            labels = dict(_meta(n).get("labels") or {})
    ssgs = {str(_meta(g).get("uid")): g for g in view.objects("statefulsetgrids")}
    sgs = {str(_meta(g).get("uid")): g for g in view.objects("servicegrids")}
    services = {_key(s): s for s in view.objects("services")}
    pods = {_key(p): p for p in view.objects("pods")}
    out: set[str] = set()
    for sts in view.objects("statefulsets"):
        ns, name = _key(sts)
        owner = grid_owner(sts)
        if owner is None or owner[0] != "StatefulSetGrid" or owner[1] not in ssgs:
            continue
        grid = ssgs[owner[1]]
        key = (grid.get("spec") or {}).get("gridUniqKey")
        unit = labels.get(key) if isinstance(key, str) else None
        if not unit or (_meta(sts).get("labels") or {}).get(NODEUNIT) != unit:
            continue
        svc_name = (sts.get("spec") or {}).get("serviceName")
        svc = services.get((ns, str(svc_name)))
        svc_owner = grid_owner(svc) if svc is not None else None
        if svc_owner is None or svc_owner[0] != "ServiceGrid" or svc_owner[1] not in sgs:
            continue
        if (sgs[svc_owner[1]].get("spec") or {}).get("gridUniqKey") != key:
            continue
        replicas = _int((sts.get("spec") or {}).get("replicas"), 1)
        for i in range(replicas):
            pod = pods.get((ns, f"{name}-{i}"))
            if pod is None:
                continue
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") != _meta(sts).get("uid"):
                continue
            if _meta(pod).get("deletionTimestamp"):
                continue
            status = pod.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                continue
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or ()
            )
            ip = status.get("podIP")
            if ready and ip:
                fqdn = f"{_meta(grid)['name']}-{i}.{svc_name}.{ns}.svc.{DOMAIN}".lower()
                out.add(f"{ip} {fqdn}")
    return out


def hosts_block(path: Path) -> set[str] | None:
    """The lines of our block in the hosts file (None: no file or no block)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    lines = text.splitlines()
    if BEGIN not in lines:
        return None
    start = lines.index(BEGIN) + 1
    end = lines.index(END, start) if END in lines[start:] else len(lines)
    return {line.strip() for line in lines[start:end] if line.strip() and not line.startswith("#")}


def check_dns(view: ClusterView, probes: Iterable[DnsProbe]) -> Verdict:
    verdict = Verdict()
    for probe in probes:
        want = expected_records(view, probe.node)
        got = hosts_block(probe.path)
        where = f"hosts file of {probe.node}"
        if got is None:
            verdict.check(not want, "lost", f"{where}: no block, want {sorted(want)}")
            continue
        verdict.check(not (want - got), "lost", f"{where}: lacks {sorted(want - got)}")
        verdict.check(not (got - want), "extra", f"{where}: has stale {sorted(got - want)}")
    return verdict


# ------------------------------------------------------------------------------ together


async def evaluate(
    view: ClusterView, exp: Expectations, *, truth: SimView | None = None
) -> Verdict:
    """One evaluation of the whole invariant against `view` (and `truth` for untouched)."""
    verdict = check_grids(view, exp)
    if truth is not None:
        verdict.merge(check_untouched(truth))
    elif isinstance(view, SimView):
        verdict.merge(check_untouched(view))
    if exp.wrappers:
        verdict.merge(await check_wrappers(view, exp.wrappers))
    if exp.dns:
        verdict.merge(check_dns(view, exp.dns))
    return verdict


@dataclass(frozen=True)
class Convergence:
    seconds: float  # from the start of waiting to the first passing evaluation
    verdict: Verdict  # the passing evaluation


async def converge(
    view: ClusterView,
    exp: Expectations,
    *,
    deadline: float,
    truth: SimView | None = None,
    settled: Callable[[], Awaitable[Any]] | None = None,
    interval: float = 0.25,
) -> Convergence:
    """Wait until the invariant holds (then, if given, until `settled()` returns and the
    invariant still holds); fail with the remaining violations at `deadline` seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    end = started + deadline
    while True:
        verdict = await evaluate(view, exp, truth=truth)
        if verdict.ok:
            took = loop.time() - started
            if settled is None:
                return Convergence(took, verdict)
            await settled()
            verdict = await evaluate(view, exp, truth=truth)
            if verdict.ok:
                return Convergence(took, verdict)
        if loop.time() > end:
            raise AssertionError(
                f"invariant still violated after {deadline:g}s "
                f"({len(verdict.violations)} violations, {verdict.lost} lost):\n"
                + verdict.summary()
            )
        await asyncio.sleep(interval)
