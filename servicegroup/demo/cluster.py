"""The demo's cluster: kubesim with simulated workloads, and our components running against it.

Owns: `Unit` (a NodeUnit of the demo: its label value and node names), `DemoCluster` (the
running KubeSim and workload simulation, the servicegroup controller, and per NodeUnit one
wrapper and one DNS helper, each talking to kubesim over HTTP exactly as the real commands
do), and `open_cluster`, which starts all of it and stops it in reverse order.

Invariants:
- Every component runs as a named task of one TaskGroup, supervised: a component that
  returns while the demo still needs it raises `ComponentStopped`, so the demo fails at once
  instead of waiting for a step that can no longer converge.
- Leaving `open_cluster` cancels every component, then closes their API clients, then stops
  kubesim; nothing outlives it.
- Listeners bind 127.0.0.1 on free ports (several wrappers share this machine, so none uses
  upstream's fixed 127.0.0.1:51006).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from structlog.typing import FilteringBoundLogger

from servicegroup.api.crds import crd_manifests
from servicegroup.clock import RealClock
from servicegroup.controller_command import ControllerProcess, build_controller
from servicegroup.dns.app import USER_AGENT as DNS_USER_AGENT
from servicegroup.dns.app import DnsDaemon
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.errors import ApiError
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.workloads import NodeSpec, WorkloadOptions, Workloads
from servicegroup.log import get_logger
from servicegroup.metrics import Metrics
from servicegroup.settings import (
    BindAddress,
    ControllerSettings,
    DnsSettings,
    LogFormat,
    LogLevel,
)
from servicegroup.wrapper.app import USER_AGENT as WRAPPER_USER_AGENT
from servicegroup.wrapper.app import Wrapper

UNIT_KEY = "zone"
NAMESPACE = "default"
# The field manager of the demo's own writes, as `kubectl apply --server-side` uses.
USER_MANAGER = "kubectl"
GRID_PLURALS = ("deploymentgrids", "statefulsetgrids", "servicegrids")


@dataclass(frozen=True)
class Unit:
    """One NodeUnit of the demo: nodes labelled `zone=<name>`."""

    name: str
    nodes: tuple[str, ...]

    @property
    def first_node(self) -> str:
        """The node whose wrapper and DNS helper the demo runs (every node would have one)."""
        return self.nodes[0]


def make_unit(index: int, nodes: int = 3) -> Unit:
    """zone-<index> with nodes node-<index>a, node-<index>b, ..."""
    return Unit(f"zone-{index}", tuple(f"node-{index}{chr(ord('a') + n)}" for n in range(nodes)))


class ComponentStopped(Exception):
    """A component returned while the demo still needed it."""

    def __init__(self, name: str, result: Any) -> None:
        super().__init__(f"{name} stopped unexpectedly (returned {result!r})")
        self.name = name


@dataclass(frozen=True)
class RunningWrapper:
    unit: Unit
    node: str
    url: str


@dataclass(frozen=True)
class RunningDns:
    unit: Unit
    node: str
    path: Path
    daemon: DnsDaemon


@dataclass
class DemoCluster:
    """kubesim plus our components; build it with `open_cluster`."""

    sim: KubeSim
    workloads: Workloads
    workdir: Path
    kubeconfig: Path
    log_format: LogFormat
    log_level: LogLevel
    group: asyncio.TaskGroup
    stack: contextlib.AsyncExitStack
    api: LocalClient
    units: list[Unit] = field(default_factory=list)
    controller: ControllerProcess | None = None
    wrappers: dict[str, RunningWrapper] = field(default_factory=dict)
    dns: dict[str, RunningDns] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # ---- components ------------------------------------------------------------------

    def _supervise(self, name: str, work: Awaitable[Any]) -> asyncio.Task[None]:
        async def supervised() -> None:
            result = await work
            raise ComponentStopped(name, result)

        task = self.group.create_task(supervised(), name=f"demo-{name}")
        self.tasks.append(task)
        return task

    def _config(self) -> ClientConfig:
        return ClientConfig.for_server(self.sim.url)

    def start_controller(self) -> None:
        """`servicegroup controller` against kubesim (no leader election: one replica)."""
        settings = ControllerSettings(
            log_format=self.log_format,
            log_level=self.log_level,
            metrics_bind_address="0",
            health_probe_bind_address="0",
        )
        process = build_controller(settings, config=self._config(), logger=get_logger("controller"))
        self.controller = process
        self._supervise("controller", process.manager.run())

    def controller_ready(self) -> bool:
        return self.controller is not None and self.controller.manager.ready

    async def start_wrapper(self, unit: Unit) -> RunningWrapper:
        """`servicegroup wrapper` for the unit's first node; returns once it has synced."""
        node = unit.first_node
        metrics = Metrics()
        config = self._config()
        client = KubeClient(config=config, metrics=metrics, user_agent=WRAPPER_USER_AGENT)
        self.stack.push_async_callback(client.close)
        wrapper = Wrapper(
            node_name=node,
            client=client,
            config=config,
            metrics=metrics,
            logger=get_logger("wrapper", node=node),
        )
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_started(port: int) -> None:
            if not started.done():
                started.set_result(port)

        self._supervise(
            f"wrapper-{node}", wrapper.run(BindAddress("127.0.0.1", 0), started=on_started)
        )
        port = await started
        await wrapper.upstream.wait_synced()
        running = RunningWrapper(unit, node, f"http://127.0.0.1:{port}")
        self.wrappers[unit.name] = running
        return running

    def start_dns(self, unit: Unit) -> RunningDns:
        """`servicegroup dns` for the unit's first node, writing <workdir>/<node>/hosts."""
        node = unit.first_node
        path = self.workdir / node / "hosts"
        path.parent.mkdir(parents=True, exist_ok=True)
        metrics = Metrics()
        client = KubeClient(config=self._config(), metrics=metrics, user_agent=DNS_USER_AGENT)
        self.stack.push_async_callback(client.close)
        daemon = DnsDaemon(
            settings=DnsSettings(
                node_name=node,
                hosts_file=str(path),
                log_format=self.log_format,
                log_level=self.log_level,
                metrics_bind_address="0",
                health_probe_bind_address="0",
            ),
            client=client,
            metrics=metrics,
            clock=RealClock(),
            logger=get_logger("dns", node=node),
        )
        self._supervise(f"dns-{node}", daemon.run())
        running = RunningDns(unit, node, path, daemon)
        self.dns[unit.name] = running
        return running

    # ---- nodes -------------------------------------------------------------------------

    def register_nodes(self, unit: Unit) -> None:
        """The unit's nodes join the cluster (their kubelets register them, labelled)."""
        for node in unit.nodes:
            self.workloads.nodes.add_node(NodeSpec(node, {UNIT_KEY: unit.name}))
        self.units.append(unit)

    async def add_unit(self, unit: Unit) -> None:
        """Register the unit's nodes and start its wrapper and DNS helper."""
        self.register_nodes(unit)
        await self.start_wrapper(unit)
        self.start_dns(unit)

    def unit_of_node(self, node: str) -> Unit | None:
        for unit in self.units:
            if node in unit.nodes:
                return unit
        return None

    # ---- reading -----------------------------------------------------------------------

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.api.get(resource, name, namespace=NAMESPACE)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def list(self, resource: str, *, selector: str = "") -> list[dict[str, Any]]:
        return self.api.list(resource, namespace=NAMESPACE, label_selector=selector)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


async def _crds_served(api: LocalClient, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            for plural in GRID_PLURALS:
                api.list(plural, namespace=NAMESPACE)
            return
        except (ApiError, LookupError):
            if loop.time() > deadline:
                raise TimeoutError("the grid CRDs were not served in time") from None
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def open_cluster(
    *,
    workdir: Path,
    units: Sequence[Unit],
    log_format: LogFormat,
    log_level: LogLevel,
    logger: FilteringBoundLogger,
    setup_timeout: float = 30.0,
) -> AsyncIterator[DemoCluster]:
    """kubesim with `units`, the CRDs and every component running; stopped on exit."""
    async with contextlib.AsyncExitStack() as stack:
        sim = KubeSim(
            gc_dangling_delay=0.05,
            workloads=WorkloadOptions(pod_start_delay=0.05, termination_grace=0.1),
        )
        await stack.enter_async_context(sim)
        assert sim.workloads is not None
        workloads = sim.workloads
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        api = sim.client(manager=USER_MANAGER)
        for crd in crd_manifests():
            api.create("customresourcedefinitions", crd)
        await sim.settle(timeout=setup_timeout)
        await _crds_served(api, setup_timeout)
        logger.info("kubesim started", url=sim.url, kubeconfig=str(kubeconfig))
        async with asyncio.TaskGroup() as group:
            cluster = DemoCluster(
                sim=sim,
                workloads=workloads,
                workdir=workdir,
                kubeconfig=kubeconfig,
                log_format=log_format,
                log_level=log_level,
                group=group,
                stack=stack,
                api=api,
            )
            try:
                cluster.start_controller()
                for unit in units:
                    await cluster.add_unit(unit)
                yield cluster
            finally:
                cluster.stop()
