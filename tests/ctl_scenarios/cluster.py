"""`CtlCluster`: what a controller scenario may do to a cluster, kubesim or real.

A handle gives a scenario:
- test-side API access (`get`, `list`, `create`, `patch`, `delete`, `table`) in its own
  namespace `namespace`, never through the code under test's client;
- NodeUnits of label `key` (`zone` on kubesim; `e2e.servicegroup.io/unit-<random>` on a real
  cluster), laid out at start as `zones` over the nodes in `node_units` (node -> unit), and a
  way to change them (`relabel`, `add_unit`, `remove_node`);
- controllers running in-process, each with its own client, caches and metrics registry
  (`start_controller`), pointed at the cluster exactly as `servicegroup controller` would be;
- a count of the controllers' writes (`writes`) and, where the API server keeps one, exact
  per-(verb, resource) request counts (`count`);
- polling with a deadline (`wait_for`) and the "converged" test (`settled`).

Capabilities a scenario checks (what it cannot do, it skips with a printed reason):
- `has_request_accounting`: `count()` works (kubesim's request accounting). `writes()` works
  everywhere: kubesim counts the write requests it received from User-Agent `servicegroup`
  (Lease renewals left out); on a real cluster it is the controllers' own
  `rest_client_requests_total` for write methods (PUT left out for leader-elected
  controllers: only Lease renewals use it; children, grids and status are applied or patched).
- `can_add_nodes`: nodes can be created and deleted (simulated). Elsewhere `add_unit` takes a
  node out of a unit that has two or more, and `remove_node` unlabels instead of deleting.
- `has_workloads`: pods run and become Ready (kubesim's workload simulation, a real cluster).
- `lenient_crds`: the grid CRDs lack their CEL rules, so bad input reaches the controller.

Timeouts given to `wait_for` / `settled` are kubesim's; `time_scale` stretches them on a real
cluster (image pulls, real kubelets).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import copy
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import structlog
import yaml

from servicegroup.clock import RealClock
from servicegroup.controller_command import ControllerProcess, build_controller
from servicegroup.kube.config import ClientConfig
from servicegroup.metrics import Metrics
from servicegroup.settings import ControllerSettings

Obj = dict[str, Any]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
# The NodeUnits every cluster starts with (kubesim: zone-0 and zone-1 have two nodes each,
# zone-2 a single one; a real cluster gets the same shape when it has five usable nodes).
ZONES = ("zone-0", "zone-1", "zone-2")
UPSTREAM_KEY = "zone"
FIELD_MANAGER = "servicegroup-controller"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def skip(reason: str) -> NoReturn:
    """Skip the running scenario, saying why on stdout too (shown with `pytest -rs`/`-s`)."""
    print(f"SKIPPED: {reason}")
    pytest.skip(reason)


def fixture(name: str) -> Obj:
    """An upstream example manifest, unchanged."""
    doc = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(doc, dict)
    return doc


# ---- the registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One registered scenario: `run(cluster)`; `lenient` ones need CRDs without CEL.

    `name` is unique (`function[case]` for a case); `module.function` is the coroutine
    function itself, in ctl_scenarios.
    """

    name: str
    run: Callable[[CtlCluster], Awaitable[None]]
    lenient: bool
    module: str
    function: str


SCENARIOS: list[Scenario] = []


def scenario(
    *, lenient: bool = False, cases: Mapping[str, Mapping[str, Any]] | None = None
) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]:
    """Register a scenario; `cases` registers one per case (keyword arguments), as parametrize."""

    def register(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        name, module = fn.__name__, fn.__module__.rpartition(".")[2]
        if lenient:
            fn = _needs_lenient_crds(fn)
        if cases is None:
            SCENARIOS.append(Scenario(name, fn, lenient, module, name))
        else:
            for case, kwargs in cases.items():
                run = functools.partial(fn, **kwargs)
                SCENARIOS.append(Scenario(f"{name}[{case}]", run, lenient, module, name))
        return fn

    return register


def _needs_lenient_crds(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(fn)
    async def run(c: CtlCluster, **kwargs: Any) -> None:
        if not c.lenient_crds:
            skip("needs grid CRDs without their CEL rules, so bad input reaches the controller")
        await fn(c, **kwargs)

    return run


# ---- controllers -----------------------------------------------------------------------


@dataclass
class RunningController:
    process: ControllerProcess
    task: asyncio.Task[int]
    leader_elect: bool = False

    @property
    def metrics(self) -> Metrics:
        return self.process.metrics

    def reconciles(self, controller: str) -> float:
        total = 0.0
        for result in ("success", "error", "requeue", "requeue_after"):
            value = self.metrics.registry.get_sample_value(
                "controller_runtime_reconcile_total", {"controller": controller, "result": result}
            )
            total += value or 0.0
        return total

    def idle(self) -> bool:
        """No key waiting or being processed in any queue (delayed retries may be pending).

        A controller that does not lead processes nothing: its queues fill up, by design.
        """
        if not self.is_leader():
            return True
        return all(
            len(gc.controller.queue) == 0 and gc.controller.queue.processing == 0
            for gc in self.process.wiring.controllers
        )

    def child_writes(self) -> float:
        total = 0.0
        for metric in self.metrics.registry.collect():
            if metric.name == "servicegroup_child_writes":
                total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return total

    def write_requests(self) -> int:
        """Write requests this controller sent (its `rest_client_requests_total`).

        PUT is left out when it elects a leader: Lease renewals are its only PUTs.
        """
        methods = ("POST", "PATCH", "DELETE") if self.leader_elect else _WRITE_METHODS
        total = 0.0
        for metric in self.metrics.registry.collect():
            if metric.name == "rest_client_requests":
                total += sum(
                    s.value
                    for s in metric.samples
                    if s.name.endswith("_total") and s.labels.get("method") in methods
                )
        return int(total)

    def is_leader(self) -> bool:
        elector = self.process.elector
        return elector is None or elector.is_leader()

    async def stop(self) -> None:
        """Cancel the controller and wait for it to finish stopping."""
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def controller_settings(**overrides: Any) -> ControllerSettings:
    """A controller's settings for tests: no HTTP servers, JSON logs at warning, 2 workers."""
    values: dict[str, Any] = {
        "log_format": "json",
        "log_level": "warning",
        "metrics_bind_address": "0",
        "health_probe_bind_address": "0",
        "workers": 2,
    }
    values.update(overrides)
    return ControllerSettings(**values)


def launch_controller(
    settings: ControllerSettings,
    *,
    config: ClientConfig,
    identity: str | None = None,
    sync_period: float | None = None,
    retry_rejected_after: float = 300.0,
) -> RunningController:
    """`servicegroup controller` in-process (its own client, caches and metrics registry),
    running as a task of the current loop until `stop()`."""
    process = build_controller(
        settings,
        config=config,
        metrics=Metrics(),
        clock=RealClock(),
        logger=structlog.get_logger().bind(identity=identity or "controller"),
        identity=identity,
        sync_period=sync_period,
        retry_rejected_after=retry_rejected_after,
    )
    task = asyncio.create_task(process.manager.run(), name=f"controller-{process.identity}")
    return RunningController(process, task, leader_elect=settings.leader_elect)


# ---- the handle ------------------------------------------------------------------------


class CtlCluster(abc.ABC):
    """One API server under test, its NodeUnits, and the controllers running against it."""

    has_request_accounting: bool = False
    can_add_nodes: bool = False
    has_workloads: bool = True
    lenient_crds: bool = False
    time_scale: float = 1.0
    poll_interval: float = 0.05

    def __init__(
        self, *, namespace: str, key: str, node_units: Mapping[str, str], lease_namespace: str
    ) -> None:
        self.namespace = namespace
        self.key = key
        self.lease_namespace = lease_namespace
        self.node_units: dict[str, str | None] = dict(node_units)
        self.zones: tuple[str, ...] = tuple(sorted(set(node_units.values())))
        self.controllers: list[RunningController] = []
        self.started: list[RunningController] = []  # every controller ever started

    # ---- API access (test side) ---------------------------------------------------------

    @abc.abstractmethod
    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist (`namespace` defaults to ours)."""

    @abc.abstractmethod
    async def items(
        self, resource: str, *, label_selector: str = "", namespace: str | None = None
    ) -> list[Obj]: ...

    @abc.abstractmethod
    async def create(self, obj: Obj, resource: str | None = None) -> Obj:
        """Create `obj` (in our namespace unless its metadata names one)."""

    @abc.abstractmethod
    async def try_create(self, obj: Obj) -> tuple[int, str]:
        """Create `obj` like `create`; (HTTP code, Status reason), never raising on 4xx."""

    @abc.abstractmethod
    async def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        manager: str = "kubectl-edit",
        patch_type: str = "merge",
    ) -> Obj:
        """Patch as field manager `manager`; patch_type: merge | strategic | json."""

    @abc.abstractmethod
    async def delete(self, resource: str, name: str, *, namespace: str | None = None) -> None: ...

    @abc.abstractmethod
    async def table(self, resource: str) -> Obj:
        """Our namespace's collection as a meta.k8s.io Table (what `kubectl get` prints)."""

    @abc.abstractmethod
    async def create_namespace(self, prefix: str) -> str:
        """A new namespace (removed with the cluster); returns its name."""

    @abc.abstractmethod
    async def _label_node(self, node: str, value: str | None) -> None: ...

    async def _add_node(self, name: str, unit: str) -> None:
        raise NotImplementedError

    async def _delete_node(self, name: str) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def client_config(self) -> ClientConfig:
        """How an in-process controller reaches this API server."""

    def controller_defaults(self) -> dict[str, Any]:
        """Settings every controller started here gets unless the scenario overrides them."""
        return {"leader_elect_namespace": self.lease_namespace}

    # ---- counting ------------------------------------------------------------------------

    @abc.abstractmethod
    def writes(self) -> int:
        """Write requests the controllers made so far (see the module docstring)."""

    def count(self, *, verb: str, resource: str, subresource: str = "") -> int:
        """Requests of the controllers per (verb, resource): needs `has_request_accounting`."""
        raise NotImplementedError("no request accounting on this cluster")

    def child_writes(self, kind: str, operation: str) -> int:
        """The controllers' own count (`servicegroup_child_writes_total`), on any cluster.

        kind: DeploymentGrid | StatefulSetGrid | ServiceGrid; operation: apply | delete |
        status. Weaker than `count()` (what the controllers think they sent), but everywhere.
        """
        total = 0.0
        for running in self.started:
            value = running.metrics.registry.get_sample_value(
                "servicegroup_child_writes_total", {"kind": kind, "operation": operation}
            )
            total += value or 0.0
        return int(total)

    # ---- manifests -----------------------------------------------------------------------

    def grid(self, manifest: str, **spec: Any) -> Obj:
        """An upstream example in our namespace and NodeUnit key; `spec` updates its spec.

        On kubesim (namespace `default`, key `zone`) the manifest is unchanged.
        """
        obj = fixture(manifest)
        obj["metadata"]["namespace"] = self.namespace
        if obj["spec"].get("gridUniqKey") == UPSTREAM_KEY:
            obj["spec"]["gridUniqKey"] = self.key
        obj["spec"].update(copy.deepcopy(spec))
        return obj

    # ---- NodeUnits -----------------------------------------------------------------------

    def nodes_of(self, unit: str) -> list[str]:
        return sorted(node for node, value in self.node_units.items() if value == unit)

    def unit_of_pod(self, pod: Obj) -> str | None:
        return self.node_units.get(pod["spec"]["nodeName"])

    def units(self) -> set[str]:
        return {unit for unit in self.node_units.values() if unit}

    def require_units(self, count: int) -> None:
        if len(self.zones) < count:
            skip(f"needs {count} NodeUnits; this cluster has nodes for {len(self.zones)}")

    def require_workloads(self) -> None:
        if not self.has_workloads:
            skip("needs running pods (kubesim's workload simulation or a real cluster)")

    def single_node_unit(self) -> tuple[str, str]:
        """(unit, its only node) of the first unit with exactly one node."""
        for unit in sorted(self.units()):
            nodes = self.nodes_of(unit)
            if len(nodes) == 1:
                return unit, nodes[0]
        skip("needs a NodeUnit with a single node")

    def two_node_unit(self, *, besides: str = "") -> tuple[str, list[str]]:
        """(unit, its nodes) of the last unit (other than `besides`) with two nodes or more."""
        for unit in sorted(self.units() - {besides}, reverse=True):
            nodes = self.nodes_of(unit)
            if len(nodes) >= 2:
                return unit, nodes
        skip("needs a NodeUnit with two nodes or more")

    async def relabel(self, node: str, unit: str | None) -> None:
        """Set (or remove, with None) our key's label on `node`, as `kubectl label` does."""
        await self._label_node(node, unit)
        self.node_units[node] = unit

    async def add_unit(self, unit: str, *, node: str) -> None:
        """Make NodeUnit `unit` appear (one node), leaving the existing units as they are.

        A new node named `node` where nodes can be added; elsewhere a node taken out of a
        unit with two nodes or more.
        """
        if self.can_add_nodes:
            await self._add_node(node, unit)
            self.node_units[node] = unit
            return
        for candidate in sorted(self.units()):
            nodes = self.nodes_of(candidate)
            if len(nodes) >= 2:
                await self.relabel(nodes[-1], unit)
                return
        skip(f"needs a spare node for NodeUnit {unit} (nodes cannot be added to this cluster)")

    async def remove_node(self, node: str) -> None:
        """The node leaves the cluster (deleted), or, on a real cluster, loses our label."""
        if self.can_add_nodes:
            await self._delete_node(node)
            self.node_units.pop(node, None)
            return
        print(f"real cluster: node {node} is unlabelled instead of deleted")
        await self.relabel(node, None)

    # ---- controllers ---------------------------------------------------------------------

    def settings(self, **overrides: Any) -> ControllerSettings:
        return controller_settings(**{**self.controller_defaults(), **overrides})

    async def start_controller(
        self,
        *,
        identity: str | None = None,
        sync_period: float | None = None,
        retry_rejected_after: float = 300.0,
        **overrides: Any,
    ) -> RunningController:
        running = launch_controller(
            self.settings(**overrides),
            config=self.client_config(),
            identity=identity,
            sync_period=sync_period,
            retry_rejected_after=retry_rejected_after,
        )
        self.controllers.append(running)
        self.started.append(running)
        return running

    async def stop_controller(self, running: RunningController) -> None:
        await running.stop()
        if running in self.controllers:
            self.controllers.remove(running)

    async def stop_all(self) -> None:
        for running in list(self.controllers):
            await self.stop_controller(running)

    # ---- reading -------------------------------------------------------------------------

    async def absent(self, resource: str, name: str) -> bool:
        return await self.get(resource, name) is None

    async def names(self, resource: str, *, label_selector: str = "") -> set[str]:
        objs = await self.items(resource, label_selector=label_selector)
        return {obj["metadata"]["name"] for obj in objs}

    async def uid(self, resource: str, name: str) -> str | None:
        obj = await self.get(resource, name)
        return None if obj is None else str(obj["metadata"]["uid"])

    async def status(self, resource: str, name: str) -> Obj:
        return dict((await self.get(resource, name) or {}).get("status") or {})

    async def condition(self, resource: str, name: str, ctype: str) -> Obj | None:
        for condition in (await self.status(resource, name)).get("conditions") or ():
            if condition.get("type") == ctype:
                return dict(condition)
        return None

    async def events(self, *, reason: str | None = None, name: str | None = None) -> list[Obj]:
        return [
            e
            for e in await self.items("events")
            if (reason is None or e.get("reason") == reason)
            and (name is None or e["involvedObject"].get("name") == name)
        ]

    async def image(self, name: str) -> str | None:
        obj = await self.get("deployments", name)
        if obj is None:
            return None
        return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])

    async def deployment_ready(self, name: str, replicas: int) -> bool:
        obj = await self.get("deployments", name)
        status = (obj or {}).get("status") or {}
        return (
            status.get("readyReplicas") == replicas
            and status.get("updatedReplicas") == replicas
            and status.get("observedGeneration")
            == (obj or {}).get("metadata", {}).get("generation")
        )

    async def pods_of(self, selector: str) -> list[Obj]:
        return await self.items("pods", label_selector=selector)

    async def grids_ready(self, *grids: tuple[str, str], units: int | None = None) -> None:
        """Wait until each (plural, name) grid reports every unit ready; no-op without pods.

        Run before asserting that nothing is written: on a real cluster pods start slowly,
        and each readiness change is a status write.
        """
        if not self.has_workloads:
            return
        wanted = len(self.units()) if units is None else units

        async def ready() -> bool:
            for plural, name in grids:
                status = await self.status(plural, name)
                if status.get("readyUnits") != wanted or status.get("units") != wanted:
                    return False
            return True

        await self.wait_for(ready, what=f"every unit of {grids} ready", timeout=30)

    # ---- waiting -------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
        *,
        timeout: float = 20.0,
        what: str = "condition",
    ) -> Any:
        """Poll `predicate` until it returns something truthy (returned), or fail at `timeout`."""
        timeout *= self.time_scale
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(self.poll_interval)

    async def settled(self, *, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """Wait until the controllers are idle and made no write for `quiet` seconds.

        Returns the write count then. Fails if writes keep coming for `timeout` seconds
        (a hot loop, or a world that never settles).
        """
        timeout *= self.time_scale
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = self.writes()
        since = loop.time()
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            current = self.writes()
            busy = not all(c.idle() for c in self.controllers)
            if current != last or busy:
                last, since = current, now
            elif now - since >= quiet:
                return current
            if now > deadline:
                raise AssertionError(
                    f"controller did not settle in {timeout}s ({current} writes so far)"
                )
