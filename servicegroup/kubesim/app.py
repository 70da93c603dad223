"""KubeSim: the embedded API server as an async context manager.

Owns: `KubeSim` (wires store, registry, engine, GC, namespace and CRD controllers, request
accounting, fault injection, OpenAPI and the aiohttp server together; starts them on a free
port of 127.0.0.1 and stops them), the bootstrap objects every cluster has (namespaces
default, kube-system, kube-public, kube-node-lease; the `kubernetes` Service), simulated
Nodes (`NodeSpec`, `build_node`) and `write_kubeconfig`.

Invariants:
- Every background task (GC, namespace controller, CRD controller, plus any the caller adds
  with `start_task`) is named and owned by the KubeSim's TaskGroup; leaving the context
  cancels and awaits them all, after closing every watch so streaming handlers finish.
- No globals: the clock, seeds and sizes are constructor arguments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Protocol

import yaml
from aiohttp import web

from servicegroup.kubesim.accounting import RequestCounter
from servicegroup.kubesim.crds import CrdController
from servicegroup.kubesim.engine import Engine, SimClock, WriteContext
from servicegroup.kubesim.faults import FaultInjector
from servicegroup.kubesim.gc import GarbageCollector
from servicegroup.kubesim.ipalloc import ServiceAllocator
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.namespaces import NamespaceController
from servicegroup.kubesim.openapi import OpenAPIBuilder
from servicegroup.kubesim.registry import Registry
from servicegroup.kubesim.server import KubeServer
from servicegroup.kubesim.store import ObjectStore
from servicegroup.kubesim.workloads import NodeAPI, WorkloadOptions, Workloads

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
APISERVER_MANAGER = "kube-apiserver"


class NodeLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


class NodeSpec(NamedTuple):
    """A simulated node: its name and labels (settings.NodeSpec has the same shape)."""

    name: str
    labels: Mapping[str, str] = {}


class _WallClock:
    """The default clock: the system's."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class KubeSim:
    """An in-memory Kubernetes API server on 127.0.0.1 (async context manager)."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        nodes: Iterable[NodeLike] = (),
        history_size: int = 10_000,
        watch_queue_size: int = 1_000,
        bookmark_interval: float = 60.0,
        gc_dangling_delay: float = 0.1,
        seed: int = 0,
        clock: SimClock | None = None,
        workloads: WorkloadOptions | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.clock: SimClock = clock or _WallClock()
        self.store = ObjectStore(history_size=history_size, watch_queue_size=watch_queue_size)
        self.registry = Registry()
        self.engine = Engine(
            store=self.store, registry=self.registry, clock=self.clock, allocator=ServiceAllocator()
        )
        self.requests = RequestCounter()
        self.faults = FaultInjector(seed=seed)
        self.openapi = OpenAPIBuilder()
        for rt in self.registry:
            self.openapi.add_builtin(rt.group, rt.version, rt.kind, rt.plural, rt.namespaced)
        self.gc = GarbageCollector(engine=self.engine, dangling_delay=gc_dangling_delay)
        self.namespaces = NamespaceController(engine=self.engine)
        self.crds = CrdController(engine=self.engine, openapi=self.openapi)
        self.server = KubeServer(
            engine=self.engine,
            requests=self.requests,
            faults=self.faults,
            openapi=self.openapi,
            bookmark_interval=bookmark_interval,
            server_address=lambda: f"{self.host}:{self.port}",
        )
        self._nodes = list(nodes)
        # API-only mode (workloads=None): nodes exist, but nothing schedules or runs pods.
        node_options = workloads or WorkloadOptions()
        self.node_api = NodeAPI(
            engine=self.engine,
            cluster_cidr=node_options.cluster_cidr,
            node_cidr_prefix=node_options.node_cidr_prefix,
        )
        self.workloads = (
            Workloads(engine=self.engine, options=workloads, clock=self.clock)
            if workloads is not None
            else None
        )
        self._runner: web.AppRunner | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._owned: list[asyncio.Task[Any]] = []

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> KubeSim:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        try:
            self.start_task(self.gc.run(), name="kubesim-gc")
            self.start_task(self.namespaces.run(), name="kubesim-namespaces")
            self.start_task(self.crds.run(), name="kubesim-crds")
            self._bootstrap()
            if self.workloads is not None:
                self.start_task(self.workloads.run(), name="kubesim-workloads")
            self._runner = web.AppRunner(
                self.server.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        except BaseException:
            await self.stop()
            raise

    def start_task(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run a background coroutine owned by this KubeSim (cancelled on exit)."""
        if self._tasks is None:
            coro.close()
            raise RuntimeError("KubeSim is not running")
        task = self._tasks.create_task(coro, name=name)
        self._owned.append(task)
        return task

    async def stop(self) -> None:
        self.store.close_all_watches()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        for task in self._owned:
            task.cancel()
        self._owned.clear()
        if self._tasks is not None:
            tasks, self._tasks = self._tasks, None
            await tasks.__aexit__(None, None, None)

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until GC, namespace, CRD and workload controllers have nothing left to do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        while quiet < 3:
            workloads_idle = self.workloads is None or self.workloads.idle
            if self.gc.idle and self.namespaces.idle and self.crds.idle and workloads_idle:
                quiet += 1
            else:
                quiet = 0
            if loop.time() > deadline:
                raise TimeoutError("kubesim controllers did not settle")
            await asyncio.sleep(0.01)

    # ---- objects -----------------------------------------------------------------------

    def client(self, *, manager: str) -> LocalClient:
        """An in-process client writing as field manager `manager`."""
        return LocalClient(self.engine, manager=manager)

    def _bootstrap(self) -> None:
        ctx = WriteContext(manager=APISERVER_MANAGER)
        namespaces = self.registry.lookup("namespaces")
        for name in BOOTSTRAP_NAMESPACES:
            self.engine.create(namespaces, None, {"metadata": {"name": name}}, ctx)
        services = self.registry.lookup("services")
        self.engine.create(
            services,
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": self.engine.allocator.kubernetes_ip,
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                    ],
                    "sessionAffinity": "None",
                },
            },
            ctx,
        )
        for spec in self._nodes:
            self.add_node(spec)

    def add_node(self, spec: NodeLike) -> dict[str, Any]:
        """Register a simulated Node (as its kubelet would) and return it."""
        return self.node_api.add_node(spec)

    # ---- kubeconfig --------------------------------------------------------------------

    def kubeconfig(self, *, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubesim", "cluster": {"server": self.url}}],
            "users": [{"name": "kubesim", "user": {}}],
            "contexts": [
                {
                    "name": "kubesim",
                    "context": {"cluster": "kubesim", "user": "kubesim", "namespace": namespace},
                }
            ],
            "current-context": "kubesim",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig for this server (kubectl and kubernetes_asyncio accept it)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return target
