"""Workload simulation for kubesim: nodes, scheduler, kubelets and the built-in controllers.

Owns: `WorkloadOptions` (which simulated components run, and their delays) and `Workloads`
(builds the shared index, timer heap, pod IP allocator and one controller per switched-on
component; `run()` drives them all until cancelled). `NodeAPI` (in `nodes`) is the Python
API to add, relabel, cordon, taint, mark (not) ready and delete nodes; `Workloads.nodes`
is one bound to the same engine.

Invariants:
- Not running `Workloads` is kubesim's API-only mode: nothing but the API server (and its
  GC/namespace controllers) writes; pods stay Pending.
- Everything runs on kubesim's event loop, fed by one synchronous store listener that first
  updates the shared index and then lets each controller map the event to its keys; no
  listener ever writes. Each component is one named task in `run()`'s TaskGroup; the timer
  heap is one more. Leaving `run()` (cancellation) removes the listener and ends every task.
- Controllers are level-triggered and start with a full resync, so `run()` may start on a
  store that already holds objects (or be restarted) and still converge.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from servicegroup.kubesim.engine import Engine, SimClock
from servicegroup.kubesim.store import StoreEvent
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.deployments import DeploymentController
from servicegroup.kubesim.workloads.endpoints import EndpointsController
from servicegroup.kubesim.workloads.endpointslices import EndpointSliceController
from servicegroup.kubesim.workloads.index import WorkloadIndex
from servicegroup.kubesim.workloads.kubelet import Kubelet
from servicegroup.kubesim.workloads.nodelifecycle import NodeLifecycle
from servicegroup.kubesim.workloads.nodes import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_NODE_CIDR_PREFIX,
    NodeAPI,
    NodeSpec,
    Taint,
    parse_node_spec,
)
from servicegroup.kubesim.workloads.podips import PodIPAllocator
from servicegroup.kubesim.workloads.replicasets import ReplicaSetController
from servicegroup.kubesim.workloads.scheduler import Scheduler
from servicegroup.kubesim.workloads.statefulsets import StatefulSetController
from servicegroup.kubesim.workloads.timers import TimerHeap

__all__ = [
    "NodeAPI",
    "NodeSpec",
    "Taint",
    "WorkloadOptions",
    "Workloads",
    "parse_node_spec",
]


@dataclass(frozen=True)
class WorkloadOptions:
    """Which simulated components run, and how fast pods move."""

    scheduler: bool = True
    kubelet: bool = True
    node_lifecycle: bool = True
    replicasets: bool = True
    deployments: bool = True
    statefulsets: bool = True
    endpointslices: bool = True
    endpoints: bool = True
    # Seconds (clock time) from binding until a pod is Running and Ready; 0: the same pass.
    pod_start_delay: float = 0.05
    # Upper bound on how long a deleted pod takes to go away (its own grace period applies
    # when shorter); 0: at once; None: the pod's full terminationGracePeriodSeconds.
    termination_grace: float | None = 0.2
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    node_cidr_prefix: int = DEFAULT_NODE_CIDR_PREFIX
    # Longest a controller pass runs before yielding to request handlers.
    slice_seconds: float = 0.005

    @classmethod
    def none(cls) -> WorkloadOptions:
        """Every component switched off (the same as not running Workloads)."""
        return cls(
            scheduler=False,
            kubelet=False,
            node_lifecycle=False,
            replicasets=False,
            deployments=False,
            statefulsets=False,
            endpointslices=False,
            endpoints=False,
        )


class Workloads:
    """The simulated cluster components of one kubesim, over its Engine."""

    def __init__(
        self,
        *,
        engine: Engine,
        options: WorkloadOptions | None = None,
        clock: SimClock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.engine = engine
        self.options = options or WorkloadOptions()
        self.clock: SimClock = clock or engine.clock
        self.logger = logger or logging.getLogger("servicegroup.kubesim.workloads")
        self.index = WorkloadIndex(store=engine.store)
        self.timers = TimerHeap(clock=self.clock)
        self.ips = PodIPAllocator()
        self.nodes = NodeAPI(
            engine=engine,
            cluster_cidr=self.options.cluster_cidr,
            node_cidr_prefix=self.options.node_cidr_prefix,
        )
        common: dict[str, Any] = {
            "engine": engine,
            "index": self.index,
            "timers": self.timers,
            "clock": self.clock,
            "logger": self.logger,
            "slice_seconds": self.options.slice_seconds,
        }
        opts = self.options
        self.controllers: list[LoopController[Any]] = []
        if opts.node_lifecycle:
            self.controllers.append(
                NodeLifecycle(
                    cluster_cidr=opts.cluster_cidr, node_cidr_prefix=opts.node_cidr_prefix, **common
                )
            )
        if opts.scheduler:
            self.controllers.append(Scheduler(**common))
        if opts.kubelet:
            self.controllers.append(
                Kubelet(
                    start_delay=max(0.0, opts.pod_start_delay),
                    termination_grace=opts.termination_grace,
                    ips=self.ips,
                    **common,
                )
            )
        if opts.deployments:
            self.controllers.append(DeploymentController(**common))
        if opts.replicasets:
            self.controllers.append(ReplicaSetController(**common))
        if opts.statefulsets:
            self.controllers.append(StatefulSetController(**common))
        if opts.endpointslices:
            self.controllers.append(EndpointSliceController(**common))
        if opts.endpoints:
            self.controllers.append(EndpointsController(**common))
        self.running = False

    def controller(self, name: str) -> LoopController[Any]:
        for controller in self.controllers:
            if controller.name == name:
                return controller
        raise KeyError(name)

    # ---- lifecycle ---------------------------------------------------------------------

    def _on_event(self, event: StoreEvent) -> None:
        self.index.on_event(event)
        for controller in self.controllers:
            try:
                controller.on_event(event)
            except Exception:  # a mapping bug must not fail the write that triggered it
                self.logger.exception("%s: could not handle %r", controller.name, event)

    def start_sync(self) -> None:
        """Attach to the store and queue everything that exists (synchronous)."""
        self.engine.store.add_listener(self._on_event)
        self.index.rebuild()
        for controller in self.controllers:
            controller.resync()
        self.running = True

    def stop_sync(self) -> None:
        self.engine.store.remove_listener(self._on_event)
        self.running = False

    async def run(self) -> None:
        """Run every switched-on component until cancelled."""
        self.start_sync()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.timers.run(), name="kubesim-workloads-timers")
                for controller in self.controllers:
                    tasks.create_task(controller.run(), name=f"kubesim-{controller.name}")
        finally:
            self.stop_sync()

    # ---- observation -------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No controller has a key pending now (delayed keys and timers may remain)."""
        return all(c.idle for c in self.controllers)

    def stats(self) -> dict[str, dict[str, int]]:
        """Writes, passes and failed syncs per component."""
        return {
            c.name: {"writes": c.writer.writes, "passes": c.passes, "errors": c.errors}
            for c in self.controllers
        }

    async def settle(self, *, timeout: float = 10.0, quiet_passes: int = 3) -> None:
        """Wait (loop time) until every controller has been idle for a few checks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        while quiet < quiet_passes:
            quiet = quiet + 1 if self.idle else 0
            if loop.time() > deadline:
                busy = [c.name for c in self.controllers if not c.idle]
                raise TimeoutError(f"workloads did not settle: {busy} still busy")
            await asyncio.sleep(0.001)
