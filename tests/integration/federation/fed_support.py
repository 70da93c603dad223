"""Helpers of the multi-cluster suite: a hub and member clusters, each a KubeSim with a controller.

`World` holds three clusters: `hub` (API only: the Clusternet parent, no nodes), and members
`a` and `b` (workload simulation on, so Deployments get pods and ready replicas). The hub has
one namespace per member, labelled `clusters.clusternet.io/cluster-id`; each member has the
Secret `clusternet-system/parent-cluster` pointing at the hub and at its namespace there
(unless asked not to). Every cluster runs its own controller in-process, over HTTP, exactly as
`servicegroup controller --enable-federation` does.

Test-side reads and writes go through kubesim's in-process client: never counted, never hit
by injected faults (so a test can keep editing the hub while its API is "unreachable").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from servicegroup.api.crds import crd_manifests
from servicegroup.clock import RealClock
from servicegroup.controller_command import build_controller
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.app import KubeSim, NodeSpec
from servicegroup.kubesim.errors import ApiError as SimApiError
from servicegroup.kubesim.local import LocalClient
from servicegroup.manager import Manager
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.federation import federation_controllers
from servicegroup.settings import ControllerSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
CLUSTER_ID = "clusters.clusternet.io/cluster-id"
NS = "default"
# Hub namespace of each member (Clusternet names them clusternet-<random>).
HUB_NAMESPACES = {"a": "clusternet-a1b2c", "b": "clusternet-x9y8z"}
CLUSTER_IDS = {
    "a": "7e7c3d9a-0d3c-4b7e-9a59-5b1b2a6a0c01",
    "b": "c0f1b7e2-1f0e-4c52-8d2b-3a9f6e4d5b02",
}


def fixture(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(doc, dict)
    return doc


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class Cluster:
    name: str
    sim: KubeSim
    workloads: Any
    process: Any = None
    task: asyncio.Task[int] | None = None
    metrics: Metrics | None = None

    @property
    def api(self) -> LocalClient:
        return self.sim.client(manager="integration-test")

    def as_manager(self, manager: str) -> LocalClient:
        return self.sim.client(manager=manager)

    def get(self, resource: str, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
        try:
            return self.api.get(resource, name, namespace=namespace)
        except SimApiError as err:
            if err.code == 404:
                return None
            raise

    def list(self, resource: str, namespace: str | None = NS) -> list[dict[str, Any]]:
        return self.api.list(resource, namespace=namespace)

    def add_node(self, name: str, **labels: str) -> None:
        if self.workloads is not None:
            spec = name + (":" + ",".join(f"{k}={v}" for k, v in labels.items()) if labels else "")
            self.workloads.nodes.add_node(spec)
        else:
            self.sim.add_node(NodeSpec(name, labels))

    def label_node(self, node: str, labels: dict[str, str | None]) -> None:
        self.as_manager("kubectl-label").patch("nodes", node, {"metadata": {"labels": labels}})

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        assert self.metrics is not None
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    def deployment_ready(self, name: str, replicas: int) -> bool:
        obj = self.get("deployments", name)
        status = (obj or {}).get("status") or {}
        return (
            (obj or {}).get("spec", {}).get("replicas") == replicas
            and status.get("readyReplicas") == replicas
            and status.get("updatedReplicas") == replicas
        )

    def events(self, reason: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.api.list("events", namespace=namespace) if e.get("reason") == reason
        ]

    def terminating(self) -> list[str]:
        """Grids of any kind being deleted, anywhere in this cluster."""
        found = []
        for plural in ("deploymentgrids", "statefulsetgrids", "servicegrids"):
            for obj in self.api.list(plural):
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    found.append(f"{plural}/{meta['namespace']}/{meta['name']}")
        return found


@dataclass
class World:
    hub: Cluster
    a: Cluster
    b: Cluster
    tmp: Path
    extra: list[Cluster] = field(default_factory=list)

    @property
    def clusters(self) -> list[Cluster]:
        return [self.hub, self.a, self.b, *self.extra]

    def member(self, name: str) -> Cluster:
        return {"a": self.a, "b": self.b}[name]

    def secret(
        self, member: str, *, token: str = "token-1", url: str | None = None
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "parent-cluster", "namespace": "clusternet-system"},
            "type": "Opaque",
            "data": {
                "parent-url": b64(url or self.hub.sim.url),
                "token": b64(token),
                "namespace": b64(HUB_NAMESPACES[member]),
            },
        }

    def copy(
        self, member: str, name: str, resource: str = "deploymentgrids"
    ) -> dict[str, Any] | None:
        return self.hub.get(resource, name, namespace=HUB_NAMESPACES[member])

    async def start_controller(self, cluster: Cluster) -> None:
        settings = ControllerSettings(
            log_format="json",
            log_level="warning",
            metrics_bind_address="0",
            health_probe_bind_address="0",
            workers=2,
            enable_federation=True,
        )
        metrics = Metrics()
        clock = RealClock()
        logger = structlog.get_logger().bind(cluster=cluster.name)
        process = build_controller(
            settings,
            config=ClientConfig.for_server(cluster.sim.url),
            metrics=metrics,
            clock=clock,
            logger=logger,
            identity=f"controller-{cluster.name}",
        )
        manager = process.manager
        if getattr(process, "federation", None) is None:
            # controller_command does not wire federation (yet): add it the same way.
            federation = federation_controllers(
                settings=settings,
                client=process.client,
                factory=process.factory,
                metrics=metrics,
                clock=clock,
                logger=logger,
                recorder=process.recorder,
            )
            manager = Manager(
                settings=settings,
                client=process.client,
                factory=process.factory,
                metrics=metrics,
                clock=clock,
                logger=logger,
                controllers=[*process.wiring.controllers, *federation],
                event_recorders=(process.recorder,),
            )
        cluster.process = process
        cluster.metrics = metrics
        cluster.task = asyncio.create_task(manager.run(), name=f"controller-{cluster.name}")

    async def stop_controllers(self) -> None:
        for cluster in self.clusters:
            task, cluster.task = cluster.task, None
            if task is None:
                continue
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def controllers_failed(self) -> list[str]:
        return [c.name for c in self.clusters if c.task is not None and c.task.done()]

    def writes(self) -> int:
        """Writes our controllers made, to every cluster (events included)."""
        return sum(c.sim.requests.writes(user_agent_product="servicegroup") for c in self.clusters)

    async def settled(self, *, quiet: float = 1.0, timeout: float = 20.0) -> int:
        """Wait until no controller wrote anything for `quiet` seconds; the write count then.

        Fails when writes keep coming for `timeout` seconds: two writers undoing each other
        (say, the grid reconciler and federation on one status) never settle.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last, since = self.writes(), loop.time()
        while True:
            await asyncio.sleep(0.05)
            now, current = loop.time(), self.writes()
            if current != last:
                last, since = current, now
            elif now - since >= quiet:
                return current
            if now > deadline:
                raise AssertionError(f"controllers did not settle in {timeout}s ({current} writes)")

    async def wait_for(
        self,
        predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
        *,
        timeout: float = 30.0,
        what: str = "condition",
        interval: float = 0.05,
    ) -> Any:
        """Poll `predicate` until truthy (returned), or fail at `timeout` (or a dead controller)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            dead = self.controllers_failed()
            if dead:
                raise AssertionError(f"controller(s) stopped while waiting for {what}: {dead}")
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(interval)


async def start_cluster(name: str, *, workloads: bool) -> Cluster:
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
            sim.start_task(sim_workloads.run(), name=f"kubesim-workloads-{name}")
        cluster = Cluster(name=name, sim=sim, workloads=sim_workloads)
        for crd in crd_manifests():
            cluster.api.create("customresourcedefinitions", crd)
        await sim.settle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not _served(cluster):
            if loop.time() > deadline:
                raise AssertionError("grid CRDs not served")
            await asyncio.sleep(0.02)
        return cluster
    except BaseException:
        await sim.stop()
        raise


def _served(cluster: Cluster) -> bool:
    try:
        for plural in ("deploymentgrids", "statefulsetgrids", "servicegrids"):
            cluster.api.list(plural, namespace=NS)
    except (SimApiError, KeyError, LookupError):
        return False
    return True


async def start_world(tmp: Path, *, with_secrets: bool = True, workloads: bool = True) -> World:
    clusters: list[Cluster] = []
    try:
        for name, sim_workloads in (("hub", False), ("a", workloads), ("b", workloads)):
            clusters.append(await start_cluster(name, workloads=sim_workloads))
        hub, a, b = clusters
        world = World(hub=hub, a=a, b=b, tmp=tmp)
        for member in ("a", "b"):
            hub.api.create(
                "namespaces",
                {
                    "metadata": {
                        "name": HUB_NAMESPACES[member],
                        "labels": {CLUSTER_ID: CLUSTER_IDS[member]},
                    }
                },
            )
            cluster = world.member(member)
            cluster.api.create("namespaces", {"metadata": {"name": "clusternet-system"}})
            if with_secrets:
                cluster.api.create("secrets", world.secret(member))
        return world
    except BaseException:
        for cluster in clusters:
            await cluster.sim.stop()
        raise


async def stop_world(world: World) -> None:
    await world.stop_controllers()
    for cluster in world.clusters:
        await cluster.sim.stop()
