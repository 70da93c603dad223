"""The write-count figures of `hack/bench`, asserted exactly at a small size.

These ratios are exact, so they can be tests (timings cannot): a controller against kubesim
(API-only: nothing else writes) over HTTP, kubesim's request accounting counting the
controller's requests (User-Agent product `servicegroup`).

- converge: one apply per child and one status write per grid, nothing else but Events
  (one `Created` per child);
- rest: a forced full resync, then a restart: no request that writes, Events included;
- new unit: one apply and one status write per grid;
- template edit: exactly one apply per child using the edited pool template.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

from servicegroup.api.crds import crd_manifests
from servicegroup.clock import RealClock
from servicegroup.controller_command import ControllerProcess, build_controller
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.accounting import WRITE_VERBS
from servicegroup.kubesim.app import KubeSim, NodeSpec
from servicegroup.metrics import Metrics
from servicegroup.settings import ControllerSettings

NS = "perf"
KEY = "zone"
GRIDS = 6
UNITS = 4
CANARY_UNITS = 2  # units 0 and 1 use the pool template "canary"
PRODUCT = "servicegroup"
APPLY = ("patch", "deployments.apps", "")
STATUS = ("patch", "deploymentgrids.superedge.io", "status")
EVENTS = ("create", "events", "")


def unit(index: int) -> str:
    return f"unit-{index}"


def deployment_spec(app: str, image: str) -> dict[str, Any]:
    return {
        "replicas": 1,
        "selector": {"matchLabels": {"app": app}},
        "template": {
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        },
    }


def grid(index: int) -> dict[str, Any]:
    name = f"grid-{index}"
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "gridUniqKey": KEY,
            "template": deployment_spec(name, "app:1"),
            "templatePool": {"canary": deployment_spec(name, "app:2")},
            "templates": {unit(u): "canary" for u in range(CANARY_UNITS)},
        },
    }


@dataclass
class Cluster:
    sim: KubeSim
    controllers: list[tuple[ControllerProcess, asyncio.Task[int]]] = field(default_factory=list)

    def writes(self) -> dict[tuple[str, str, str], int]:
        """The controller's writes by (verb, resource, subresource), Events included."""
        out: dict[tuple[str, str, str], int] = {}
        for entry in self.sim.requests.snapshot():
            if entry.user_agent == PRODUCT and entry.verb in WRITE_VERBS:
                key = (entry.verb, entry.resource, entry.subresource)
                out[key] = out.get(key, 0) + entry.count
        return out

    def start_controller(self) -> ControllerProcess:
        settings = ControllerSettings(
            log_format="json",
            log_level="warning",
            metrics_bind_address="0",
            health_probe_bind_address="0",
            namespaces=(NS,),
            workers=2,
        )
        process = build_controller(
            settings,
            config=ClientConfig.for_server(self.sim.url),
            metrics=Metrics(),
            clock=RealClock(),
            logger=structlog.get_logger(),
        )
        task = asyncio.create_task(process.manager.run(), name="perf-controller")
        self.controllers.append((process, task))
        return process

    async def stop_controllers(self) -> None:
        for _, task in self.controllers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.controllers.clear()

    @property
    def controller(self) -> ControllerProcess:
        return self.controllers[-1][0]

    def reconciles(self) -> float:
        registry = self.controller.metrics.registry
        return sum(
            registry.get_sample_value(
                "controller_runtime_reconcile_total",
                {"controller": "deploymentgrid", "result": result},
            )
            or 0.0
            for result in ("success", "error", "requeue", "requeue_after")
        )

    def idle(self) -> bool:
        return all(
            len(gc.controller.queue) == 0 and gc.controller.queue.processing == 0
            for gc in self.controller.wiring.controllers
        )

    def children(self, predicate: Callable[[dict[str, Any]], bool] = lambda _: True) -> int:
        api = self.sim.client(manager="perf-test")
        return sum(1 for obj in api.list("deployments", namespace=NS) if predicate(obj))

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def settled(self, quiet: float = 0.5) -> dict[tuple[str, str, str], int]:
        """Idle, and no write for `quiet` seconds (anything written later would count)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        last, since = self.writes(), loop.time()
        while True:
            await asyncio.sleep(0.02)
            current = self.writes()
            if current != last or not self.idle():
                last, since = current, loop.time()
            elif loop.time() - since >= quiet:
                return current
            assert loop.time() < deadline, "the controller kept writing"


def delta(
    after: dict[tuple[str, str, str], int], before: dict[tuple[str, str, str], int]
) -> dict[tuple[str, str, str], int]:
    keys = set(after) | set(before)
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)
    }


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    nodes = [NodeSpec(f"node-{u}", {KEY: unit(u)}) for u in range(UNITS)]
    nodes.append(NodeSpec("spare", {}))
    sim = KubeSim(nodes=nodes, bookmark_interval=0.5, gc_dangling_delay=0.05)
    await sim.start()
    env = Cluster(sim)
    try:
        api = sim.client(manager="perf-test")
        for crd in crd_manifests():
            api.create("customresourcedefinitions", crd)
        api.create("namespaces", {"metadata": {"name": NS}})
        await sim.settle()
        yield env
    finally:
        await env.stop_controllers()
        await sim.stop()


async def test_write_counts_are_the_minimum(cluster: Cluster) -> None:
    api = cluster.sim.client(manager="perf-test")
    cluster.start_controller()
    for index in range(GRIDS):
        api.create("deploymentgrids", grid(index), namespace=NS)
    await cluster.until(lambda: cluster.children() == GRIDS * UNITS, "every child")

    # converge: writes / minimum = 1.00 exactly; Events apart (one per child).
    converged = await cluster.settled()
    assert converged == {APPLY: GRIDS * UNITS, STATUS: GRIDS, EVENTS: GRIDS * UNITS}

    # rest (a): a forced full resync reconciles every grid and writes nothing.
    before = cluster.reconciles()
    assert cluster.controller.wiring.resync() >= GRIDS
    await cluster.until(
        lambda: cluster.reconciles() >= before + GRIDS and cluster.idle(), "the resync"
    )
    assert delta(await cluster.settled(), converged) == {}

    # rest (b): a restarted controller lists everything, reconciles every grid, writes nothing.
    await cluster.stop_controllers()
    cluster.start_controller()
    await cluster.until(
        lambda: cluster.reconciles() >= GRIDS and cluster.idle(), "the restart's reconciles"
    )
    assert delta(await cluster.settled(), converged) == {}

    # new unit: one apply and one status write per grid (and an Event per new child).
    api_label = cluster.sim.client(manager="kubectl-label")
    api_label.patch("nodes", "spare", {"metadata": {"labels": {KEY: "unit-new"}}})
    labelled = "superedge.io/nodeunit"
    await cluster.until(
        lambda: (
            cluster.children(lambda o: o["metadata"]["labels"].get(labelled) == "unit-new") == GRIDS
        ),
        "the new unit's children",
    )
    grown = await cluster.settled()
    assert delta(grown, converged) == {APPLY: GRIDS, STATUS: GRIDS, EVENTS: GRIDS}

    # template edit: exactly the children using the edited pool template are applied again.
    path = "/spec/templatePool/canary/template/spec/containers/0/image"
    for index in range(GRIDS):
        api.patch(
            "deploymentgrids",
            f"grid-{index}",
            [{"op": "replace", "path": path, "value": "app:3"}],
            namespace=NS,
            patch_type="json",
        )

    def image(obj: dict[str, Any]) -> str:
        return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])

    await cluster.until(
        lambda: cluster.children(lambda o: image(o) == "app:3") == GRIDS * CANARY_UNITS,
        "the edited children",
    )
    edited = delta(await cluster.settled(), grown)
    assert edited.pop(APPLY) == GRIDS * CANARY_UNITS
    # observedGeneration moves: one status write per grid; an Updated Event per child.
    assert edited == {STATUS: GRIDS, EVENTS: GRIDS * CANARY_UNITS}
