"""Helpers of the controller-on-kubesim suite: the cluster, the controller, waiting, counting.

`Env` is one KubeSim (workload simulation on: scheduler, kubelets, Deployment / StatefulSet /
EndpointSlice controllers) with nodes in three NodeUnits of label `zone`, the grid CRDs
installed, and any number of in-process controllers talking to it over HTTP, exactly as
`servicegroup controller` does. Test-side reads and writes go through kubesim's in-process
client, so they never count as requests: kubesim's request accounting then shows the
controller's requests alone (User-Agent product `servicegroup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from servicegroup.api.crds import crd_manifests
from servicegroup.clock import RealClock
from servicegroup.controller_command import ControllerProcess, build_controller
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.accounting import WRITE_VERBS
from servicegroup.kubesim.app import KubeSim, NodeSpec
from servicegroup.kubesim.errors import ApiError as SimApiError
from servicegroup.kubesim.local import LocalClient
from servicegroup.metrics import Metrics
from servicegroup.settings import ControllerSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
NS = "default"
PRODUCT = "servicegroup"
LEASES = "leases.coordination.k8s.io"
# Three NodeUnits of label `zone`; zone-2 has a single node.
NODES: dict[str, str] = {
    "node-0a": "zone-0",
    "node-0b": "zone-0",
    "node-1a": "zone-1",
    "node-1b": "zone-1",
    "node-2a": "zone-2",
}
ZONES = ("zone-0", "zone-1", "zone-2")


def fixture(name: str) -> dict[str, Any]:
    """An upstream example manifest, unchanged."""
    doc = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(doc, dict)
    return doc


_CONSTRAINTS = ("x-kubernetes-validations", "pattern", "minLength", "maxLength")


def lenient_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD without CEL rules and string constraints, as upstream's CRD is.

    Lets bad input reach the controller, whose own validation must then catch it (SPEC B8:
    a cluster without CEL, or grids created under an older, laxer CRD).
    """
    crd = copy.deepcopy(crd)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for constraint in _CONSTRAINTS:
                node.pop(constraint, None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        strip(schema)
        metadata = schema.get("properties", {}).get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("properties", None)
    return crd


@dataclass
class RunningController:
    process: ControllerProcess
    task: asyncio.Task[int]

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

    def is_leader(self) -> bool:
        elector = self.process.elector
        return elector is None or elector.is_leader()


@dataclass
class Env:
    sim: KubeSim
    workloads: Any
    tmp: Path
    controllers: list[RunningController] = field(default_factory=list)

    @property
    def api(self) -> LocalClient:
        """Test-side access (in-process: not counted by request accounting)."""
        return self.sim.client(manager="integration-test")

    def as_manager(self, manager: str) -> LocalClient:
        return self.sim.client(manager=manager)

    # ---- controllers -----------------------------------------------------------------

    def settings(self, **overrides: Any) -> ControllerSettings:
        values: dict[str, Any] = {
            "log_format": "json",
            "log_level": "warning",
            "metrics_bind_address": "0",
            "health_probe_bind_address": "0",
            "workers": 2,
        }
        values.update(overrides)
        return ControllerSettings(**values)

    async def start_controller(
        self,
        *,
        identity: str | None = None,
        sync_period: float | None = None,
        retry_rejected_after: float = 300.0,
        **overrides: Any,
    ) -> RunningController:
        process = build_controller(
            self.settings(**overrides),
            config=ClientConfig.for_server(self.sim.url),
            metrics=Metrics(),
            clock=RealClock(),
            logger=structlog.get_logger().bind(identity=identity or "controller"),
            identity=identity,
            sync_period=sync_period,
            retry_rejected_after=retry_rejected_after,
        )
        task = asyncio.create_task(process.manager.run(), name=f"controller-{process.identity}")
        running = RunningController(process, task)
        self.controllers.append(running)
        return running

    async def stop_controller(self, running: RunningController) -> None:
        if not running.task.done():
            running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.task
        if running in self.controllers:
            self.controllers.remove(running)

    async def stop_all(self) -> None:
        for running in list(self.controllers):
            await self.stop_controller(running)

    # ---- counting --------------------------------------------------------------------

    def writes(self, resource: str | None = None) -> int:
        """Create/update/patch/delete requests the controller(s) made so far.

        Lease renewals (leader election's heartbeat) are not counted: they are the one write
        a controller keeps making at rest, by design.
        """
        return sum(
            entry.count
            for entry in self.sim.requests.snapshot()
            if entry.user_agent == PRODUCT
            and entry.verb in WRITE_VERBS
            and entry.resource != LEASES
            and (resource is None or entry.resource == resource)
        )

    def count(self, *, verb: str, resource: str, subresource: str = "") -> int:
        return self.sim.requests.count(
            verb=verb, resource=resource, subresource=subresource, user_agent_product=PRODUCT
        )

    # ---- objects ---------------------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
        try:
            return self.api.get(resource, name, namespace=namespace)
        except SimApiError as err:
            if err.code == 404:
                return None
            raise

    def create(self, obj: dict[str, Any], resource: str | None = None) -> dict[str, Any]:
        resource = resource or _resource_of(obj)
        namespace = (obj.get("metadata") or {}).get("namespace") or (
            None if resource == "nodes" else NS
        )
        return self.api.create(resource, obj, namespace=namespace)

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        manager: str = "kubectl-edit",
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return self.as_manager(manager).patch(
            resource, name, patch, namespace=NS, patch_type=patch_type, subresource=subresource
        )

    def list(self, resource: str, *, label_selector: str = "") -> list[dict[str, Any]]:
        return self.api.list(resource, namespace=NS, label_selector=label_selector)

    def condition(self, resource: str, name: str, ctype: str) -> dict[str, Any] | None:
        obj = self.get(resource, name)
        for condition in ((obj or {}).get("status") or {}).get("conditions") or ():
            if condition.get("type") == ctype:
                return dict(condition)
        return None

    def events(self, *, reason: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.api.list("events", namespace=NS)
            if (reason is None or e.get("reason") == reason)
            and (name is None or e["involvedObject"].get("name") == name)
        ]

    def relabel(self, node: str, labels: dict[str, str | None]) -> None:
        patch = {"metadata": {"labels": labels}}
        self.as_manager("kubectl-label").patch("nodes", node, patch)

    def add_node(self, name: str, **labels: str) -> None:
        if self.workloads is not None:
            self.workloads.nodes.add_node(
                name + (":" + ",".join(f"{k}={v}" for k, v in labels.items()) if labels else "")
            )
        else:
            self.sim.add_node(NodeSpec(name, labels))

    # ---- waiting ---------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
        *,
        timeout: float = 20.0,
        what: str = "condition",
        interval: float = 0.05,
    ) -> Any:
        """Poll `predicate` until it returns something truthy (returned), or fail at `timeout`."""
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
            await asyncio.sleep(interval)

    async def settled(self, *, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """Wait until the controllers are idle and made no write for `quiet` seconds.

        Returns the write count then. Fails if writes keep coming for `timeout` seconds
        (a hot loop, or a world that never settles).
        """
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

    def require_workloads(self) -> None:
        if self.workloads is None:
            pytest.skip("needs kubesim's workload simulation (pods)")

    def deployment_ready(self, name: str, replicas: int) -> bool:
        obj = self.get("deployments", name)
        status = (obj or {}).get("status") or {}
        return (
            status.get("readyReplicas") == replicas
            and status.get("updatedReplicas") == replicas
            and status.get("observedGeneration")
            == (obj or {}).get("metadata", {}).get("generation")
        )

    def pods_of(self, selector: str) -> list[dict[str, Any]]:
        return self.list("pods", label_selector=selector)


_RESOURCES = {
    "DeploymentGrid": "deploymentgrids",
    "StatefulSetGrid": "statefulsetgrids",
    "ServiceGrid": "servicegrids",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "Service": "services",
    "Namespace": "namespaces",
    "Node": "nodes",
}


def _resource_of(obj: dict[str, Any]) -> str:
    return _RESOURCES[obj["kind"]]


async def start_env(tmp: Path, *, workloads: bool = True, lenient: bool = False) -> Env:
    sim = KubeSim(bookmark_interval=0.5, gc_dangling_delay=0.05)
    await sim.start()
    try:
        sim_workloads: Any = None
        if workloads:
            try:
                from servicegroup.kubesim.workloads import WorkloadOptions, Workloads
            except ImportError as err:
                pytest.skip(f"kubesim workload simulation not available: {err}")
            sim_workloads = Workloads(
                engine=sim.engine, options=WorkloadOptions(pod_start_delay=0.02)
            )
            sim.start_task(sim_workloads.run(), name="kubesim-workloads")
        env = Env(sim=sim, workloads=sim_workloads, tmp=tmp)
        for name, zone in NODES.items():
            env.add_node(name, zone=zone)
        for crd in crd_manifests():
            env.api.create("customresourcedefinitions", lenient_crd(crd) if lenient else crd)
        env.api.create("namespaces", {"metadata": {"name": "servicegroup-system"}})
        await sim.settle()
        await env.wait_for(
            lambda: all(_served(env, plural) for plural in _GRID_PLURALS),
            what="grid CRDs served",
        )
        return env
    except BaseException:
        await sim.stop()
        raise


_GRID_PLURALS = ("deploymentgrids", "statefulsetgrids", "servicegrids")


def _served(env: Env, plural: str) -> bool:
    try:
        env.api.list(plural, namespace=NS)
    except (SimApiError, KeyError, LookupError):
        return False
    return True
