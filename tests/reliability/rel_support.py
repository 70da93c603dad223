"""Support of the reliability suite: the cluster, the faults, the components, the churn.

`RelEnv` is one KubeSim with workload simulation (scheduler, kubelets, the Deployment /
StatefulSet / EndpointSlice controllers), nodes in NodeUnits of two label keys (`zone` and
`site`), the grid CRDs, and a `TcpProxy` in front of its listener. Every component under test
(controllers, wrappers, DNS daemons) reaches the API server through the proxy, so "the API
server is unreachable" is `proxy.cut()`: the listener closes and every open connection is
aborted (connection refused from then on), all on 127.0.0.1; `proxy.restore()` listens again on
the same port. Kubesim's own fault injection (`sim.faults`, `store.close_all_watches()`,
`store.expire_history()`) covers the rest. The test's own reads and writes use kubesim's
in-process client: never faulted, never counted.

Controllers run in-process (`start_controller`: their queues and metrics are visible) or as
`python -m servicegroup controller` subprocesses (`spawn_controller`: they can be SIGKILLed and
their RSS measured).

`Churn` makes seeded random changes (grids created, edited and deleted; nodes relabelled,
added and deleted) and keeps the ledger the invariant check needs (which grids must exist).

`SCALE` is the short CI form unless `SERVICEGROUP_CHAOS_FULL=1` (hack/chaos), which runs the
same scenarios longer and with the full 30 s outage.

Waiting is always polling with a deadline (`wait_until`); sleeps only pace fault injection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from rel_invariants import Expectations

from servicegroup.api.crds import crd_manifests
from servicegroup.clock import RealClock
from servicegroup.controller_command import ControllerProcess, build_controller
from servicegroup.dns.app import DnsDaemon
from servicegroup.informers.informer import SharedInformer
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import (
    DEPLOYMENTGRIDS,
    DEPLOYMENTS,
    ENDPOINTS,
    ENDPOINTSLICES,
    PODS,
    SERVICEGRIDS,
    SERVICES,
    STATEFULSETGRIDS,
    STATEFULSETS,
    ResourceRef,
)
from servicegroup.kube.resources import NODES as NODE_RESOURCE
from servicegroup.kubesim.accounting import WRITE_VERBS
from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.errors import ApiError as SimApiError
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.workloads import WorkloadOptions, Workloads
from servicegroup.metrics import Metrics
from servicegroup.settings import BindAddress, ControllerSettings, DnsSettings
from servicegroup.wrapper.app import Wrapper

ROOT = Path(__file__).resolve().parents[2]
NS = "default"
PRODUCT = "servicegroup"
LEASES = "leases.coordination.k8s.io"
FULL = os.environ.get("SERVICEGROUP_CHAOS_FULL") == "1"
REPORT_ENV = "SERVICEGROUP_REL_REPORT"

GRID_RESOURCES = ("deploymentgrids", "statefulsetgrids", "servicegrids")
KIND_OF = {
    "deploymentgrids": "DeploymentGrid",
    "statefulsetgrids": "StatefulSetGrid",
    "servicegrids": "ServiceGrid",
}

# Node -> labels. NodeUnits: zone z-a, z-b, z-c (z-c has one node); site s-1, s-2.
NODES: dict[str, dict[str, str]] = {
    "rel-n1": {"zone": "z-a", "site": "s-1"},
    "rel-n2": {"zone": "z-a", "site": "s-2"},
    "rel-n3": {"zone": "z-b", "site": "s-1"},
    "rel-n4": {"zone": "z-b", "site": "s-2"},
    "rel-n5": {"zone": "z-c", "site": "s-1"},
}
UNIT_VALUES = {"zone": ("z-a", "z-b", "z-c", "z-d", "z-e"), "site": ("s-1", "s-2", "s-3")}


@dataclass(frozen=True)
class Scale:
    """How long and how big: the short CI form, or hack/chaos's full form."""

    churn_seconds: float  # how long faults and churn go on
    outage_seconds: float  # the API server unreachable
    watch_fault_period: float  # seconds between closing every watch
    converge_deadline: float  # faults stopped -> invariant must hold within this
    hostile_examples: int  # hypothesis examples of hostile grids
    kill_grids: int  # grids converging when the controller is SIGKILLed


SCALE = (
    Scale(
        churn_seconds=40.0,
        outage_seconds=30.0,
        watch_fault_period=2.0,
        converge_deadline=120.0,
        hostile_examples=150,
        kill_grids=50,
    )
    if FULL
    else Scale(
        churn_seconds=6.0,
        outage_seconds=4.0,
        watch_fault_period=1.0,
        converge_deadline=60.0,
        hostile_examples=40,
        kill_grids=50,
    )
)


# ------------------------------------------------------------------------------ waiting


async def wait_until(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> Any:
    """Poll `predicate` until it returns something truthy (returned); fail at `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ the proxy


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class TcpProxy:
    """A TCP relay on 127.0.0.1 to the API server; `cut()` makes the API server unreachable.

    Cut: the listener closes (connects are refused) and every relayed connection is aborted,
    which is what clients see when an API server goes away. Restore: listen on the same port.
    """

    def __init__(self, *, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._transports: set[asyncio.WriteTransport] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        """Refuse new connections and abort every open one."""
        self.cuts += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for transport in list(self._transports):
            transport.abort()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._transports.add(writer.transport)
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, upstream = await asyncio.open_connection(self.host, self.target_port)
            except OSError:
                return
            self._transports.add(upstream.transport)
            pumps = {
                asyncio.create_task(_pump(reader, upstream), name="rel-proxy-up"),
                asyncio.create_task(_pump(up_reader, writer), name="rel-proxy-down"),
            }
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # cut(): the connection is being torn down on purpose
        finally:
            writer.transport.abort()
            self._transports.discard(writer.transport)
            if upstream is not None:
                upstream.transport.abort()
                self._transports.discard(upstream.transport)
            self._handlers.discard(task)

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        await self.cut()
        try:
            yield
        finally:
            await self.restore()


# ------------------------------------------------------------------------------ controllers


@dataclass
class InProcessController:
    """One controller built as `servicegroup controller` builds it, in this event loop."""

    process: ControllerProcess
    task: asyncio.Task[int]

    @property
    def metrics(self) -> Metrics:
        return self.process.metrics

    @property
    def identity(self) -> str:
        return self.process.identity

    def is_leader(self) -> bool:
        elector = self.process.elector
        return elector is None or elector.is_leader()

    def idle(self) -> bool:
        """No key queued or in progress (delayed retries may be pending)."""
        if not self.is_leader():
            return True
        return all(
            len(gc.controller.queue) == 0 and gc.controller.queue.processing == 0
            for gc in self.process.wiring.controllers
        )

    def alive(self) -> bool:
        return not self.task.done()


class SubprocessController:
    """`python -m servicegroup controller` as a child process (SIGKILL-able, RSS measurable)."""

    def __init__(self, process: asyncio.subprocess.Process, *, log: Path, metrics_port: int):
        self.process = process
        self.log = log
        self.metrics_port = metrics_port

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    def rss_kib(self) -> int | None:
        """Resident set size from /proc (None once the process is gone)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    async def metrics_text(self) -> str | None:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"http://127.0.0.1:{self.metrics_port}/metrics",
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as response,
            ):
                return await response.text() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def is_leader(self) -> bool:
        text = await self.metrics_text()
        return text is not None and any(
            line.startswith("leader_election_master_status") and line.rstrip().endswith(" 1.0")
            for line in text.splitlines()
        )

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the controller."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# ------------------------------------------------------------------------------ the env


def _served(api: LocalClient, plural: str) -> bool:
    try:
        api.list(plural, namespace=NS)
    except (SimApiError, KeyError, LookupError):
        return False
    return True


_CONSTRAINTS = ("x-kubernetes-validations", "pattern", "minLength", "maxLength")


def lenient_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD without CEL rules and string constraints (a cluster without CEL).

    Lets hostile input reach the controller, whose own validation is then what is tested.
    """
    crd = json.loads(json.dumps(crd))

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


class RelEnv:
    """The simulated cluster of one scenario, and everything started against it."""

    def __init__(self, sim: KubeSim, workloads: Workloads, proxy: TcpProxy, tmp: Path) -> None:
        self.sim = sim
        self.workloads = workloads
        self.proxy = proxy
        self.tmp = tmp
        self.api = sim.client(manager="rel-test")
        self.controllers: list[InProcessController] = []
        self.subprocesses: list[SubprocessController] = []
        self.stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []

    @classmethod
    async def start(
        cls,
        tmp: Path,
        *,
        nodes: dict[str, dict[str, str]] | None = None,
        lenient: bool = False,
        seed: int = 0,
    ) -> RelEnv:
        sim = KubeSim(bookmark_interval=0.5, gc_dangling_delay=0.05, seed=seed)
        await sim.start()
        try:
            workloads = Workloads(
                engine=sim.engine,
                options=WorkloadOptions(pod_start_delay=0.02, termination_grace=0.05),
            )
            sim.start_task(workloads.run(), name="kubesim-workloads")
            proxy = TcpProxy(target_port=sim.port)
            await proxy.start()
            env = cls(sim, workloads, proxy, tmp)
            for name, labels in (NODES if nodes is None else nodes).items():
                env.add_node(name, labels)
            for crd in crd_manifests():
                env.api.create("customresourcedefinitions", lenient_crd(crd) if lenient else crd)
            env.api.create("namespaces", {"metadata": {"name": "servicegroup-system"}})
            await sim.settle()
            await wait_until(
                lambda: all(_served(env.api, plural) for plural in GRID_RESOURCES),
                timeout=20,
                what="grid CRDs served",
            )
            return env
        except BaseException:
            await sim.stop()
            raise

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.stack.aclose()
        for running in list(self.controllers):
            await self.stop_controller(running)
        for sub in list(self.subprocesses):
            await sub.kill()
        self.subprocesses.clear()
        await self.proxy.stop()
        await self.sim.stop()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """A background task of the scenario (fault injection), cancelled at the end."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def cancel(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    # ---- nodes ---------------------------------------------------------------------------

    def add_node(self, name: str, labels: dict[str, str]) -> None:
        spec = name + (":" + ",".join(f"{k}={v}" for k, v in labels.items()) if labels else "")
        self.workloads.nodes.add_node(spec)

    def node_labels(self) -> dict[str, dict[str, str]]:
        return {
            n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
            for n in self.api.list("nodes")
        }

    # ---- controllers ---------------------------------------------------------------------

    def settings(self, **overrides: Any) -> ControllerSettings:
        values: dict[str, Any] = {
            "log_format": "json",
            "log_level": "error",
            "metrics_bind_address": "0",
            "health_probe_bind_address": "0",
            "workers": 4,
        }
        values.update(overrides)
        return ControllerSettings(**values)

    async def start_controller(
        self, *, identity: str | None = None, **overrides: Any
    ) -> InProcessController:
        """A controller in this event loop, reaching the API server through the proxy."""
        process = build_controller(
            self.settings(**overrides),
            config=ClientConfig.for_server(self.proxy.url),
            metrics=Metrics(),
            clock=RealClock(),
            logger=structlog.get_logger().bind(identity=identity or "controller"),
            identity=identity,
        )
        task = asyncio.create_task(process.manager.run(), name=f"controller-{process.identity}")
        running = InProcessController(process, task)
        self.controllers.append(running)
        return running

    async def stop_controller(self, running: InProcessController) -> None:
        if not running.task.done():
            running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.task
        if running in self.controllers:
            self.controllers.remove(running)

    async def spawn_controller(self, *args: str, name: str = "controller") -> SubprocessController:
        """`python -m servicegroup controller` against the proxy, logs in tmp/<name>.log."""
        kubeconfig = self.tmp / "kubeconfig"
        if not kubeconfig.exists():
            self.sim.write_kubeconfig(kubeconfig)
            text = kubeconfig.read_text().replace(self.sim.url, self.proxy.url)
            kubeconfig.write_text(text)
        metrics_port = free_port()
        log_path = self.tmp / f"{name}.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "servicegroup",
                "controller",
                "--kubeconfig",
                str(kubeconfig),
                "--metrics-bind-address",
                f"127.0.0.1:{metrics_port}",
                "--health-probe-bind-address",
                "0",
                "--log-format",
                "json",
                "--log-level",
                "warning",
                *args,
                cwd=ROOT,
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
            )
        sub = SubprocessController(process, log=log_path, metrics_port=metrics_port)
        self.subprocesses.append(sub)
        return sub

    # ---- counting ------------------------------------------------------------------------

    def writes(self) -> int:
        """Writes by servicegroup components (User-Agent product), Lease renewals excluded."""
        return sum(
            entry.count
            for entry in self.sim.requests.snapshot()
            if entry.user_agent == PRODUCT
            and entry.verb in WRITE_VERBS
            and entry.resource != LEASES
        )

    def idle(self) -> bool:
        return all(c.idle() for c in self.controllers)

    async def settled(self, *, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """Wait until the controllers are idle and made no write for `quiet` seconds.

        Fails if writes keep coming for `timeout` seconds (a hot loop, or no convergence).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = self.writes()
        since = loop.time()
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            current = self.writes()
            if current != last or not self.idle():
                last, since = current, now
            elif now - since >= quiet:
                return current
            if now > deadline:
                raise AssertionError(
                    f"controllers did not settle in {timeout:g}s ({current} writes)"
                )

    # ---- objects -------------------------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
        try:
            return self.api.get(resource, name, namespace=namespace)
        except SimApiError as err:
            if err.code == 404:
                return None
            raise


# ------------------------------------------------------------------------------ node agents


class DirectWatch:
    """Informers straight on the API server (no proxy, no wrapper): what a direct watch of
    the API server shows, for comparing the wrappers and DNS helpers against."""

    RESOURCES: dict[str, ResourceRef] = {
        "nodes": NODE_RESOURCE,
        "services": SERVICES,
        "endpoints": ENDPOINTS,
        "endpointslices": ENDPOINTSLICES,
        "pods": PODS,
        "statefulsets": STATEFULSETS,
        "statefulsetgrids": STATEFULSETGRIDS,
        "servicegrids": SERVICEGRIDS,
        "deploymentgrids": DEPLOYMENTGRIDS,
        "deployments": DEPLOYMENTS,
    }

    def __init__(self, client: KubeClient) -> None:
        metrics = Metrics()
        self.informers = {
            plural: SharedInformer(
                client=client,
                ref=ref,
                clock=RealClock(),
                metrics=metrics,
                logger=structlog.get_logger().bind(client="direct-watch"),
                min_watch_timeout=5,
                max_watch_timeout=10,
            )
            for plural, ref in self.RESOURCES.items()
        }


@contextlib.asynccontextmanager
async def direct_watch(url: str) -> AsyncIterator[DirectWatch]:
    async with KubeClient(
        config=ClientConfig.for_server(url), metrics=Metrics(), user_agent="rel-direct/1.0"
    ) as client:
        watch = DirectWatch(client)
        # Plain tasks, not a TaskGroup: a failing assertion in the body stays unwrapped.
        tasks = [
            asyncio.create_task(inf.run(), name=f"direct-watch:{plural}")
            for plural, inf in watch.informers.items()
        ]
        try:
            for informer in watch.informers.values():
                await informer.wait_synced()
            yield watch
        finally:
            await _stop(tasks)


async def _stop(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait for them; a task that had failed raises here."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result


@dataclass
class RunningWrapper:
    node: str
    url: str
    wrapper: Wrapper
    watch: SharedInformer  # a kube-proxy-like watch of the wrapper's EndpointSlices


@contextlib.asynccontextmanager
async def running_wrapper(env: RelEnv, node: str) -> AsyncIterator[RunningWrapper]:
    """`servicegroup wrapper` for `node`, reaching the API server through the proxy, and a
    kube-proxy-like informer on the wrapper's EndpointSlices."""
    metrics = Metrics()
    config = ClientConfig.for_server(env.proxy.url)
    logger = structlog.get_logger().bind(node=node)
    async with KubeClient(config=config, metrics=metrics, user_agent="rel-wrapper/1.0") as client:
        wrapper = Wrapper(
            node_name=node,
            client=client,
            config=config,
            metrics=metrics,
            logger=logger,
            rng=random.Random(node),
            bookmark_interval=0.5,
            min_upstream_watch_timeout=5,
            max_upstream_watch_timeout=10,
        )
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(
                wrapper.run(BindAddress("127.0.0.1", 0), started=started.set_result),
                name=f"wrapper:{node}",
            )
        ]
        try:
            port = await started
            url = f"http://127.0.0.1:{port}"
            await wrapper.upstream.wait_synced()
            async with KubeClient(
                config=ClientConfig.for_server(url),
                metrics=Metrics(),
                user_agent="kube-proxy/v1.32.0 (linux/amd64) kubernetes/rel",
            ) as proxy_client:
                watch = SharedInformer(
                    client=proxy_client,
                    ref=ENDPOINTSLICES,
                    clock=RealClock(),
                    metrics=Metrics(),
                    logger=logger.bind(client="kube-proxy"),
                )
                watcher = asyncio.create_task(watch.run(), name=f"kube-proxy:{node}")
                try:
                    await watch.wait_synced()
                    yield RunningWrapper(node, url, wrapper, watch)
                finally:
                    await _stop([watcher])
        finally:
            await _stop(tasks)


@dataclass
class RunningDns:
    node: str
    path: Path
    daemon: DnsDaemon


@contextlib.asynccontextmanager
async def running_dns(env: RelEnv, node: str) -> AsyncIterator[RunningDns]:
    """`servicegroup dns` for `node`, through the proxy, writing tmp/<node>/hosts."""
    path = env.tmp / node / "hosts"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("127.0.0.1 localhost\n10.1.2.3 other.example # not ours\n")
    metrics = Metrics()
    settings = DnsSettings(
        node_name=node,
        hosts_file=str(path),
        metrics_bind_address="0",
        health_probe_bind_address="127.0.0.1:0",
        log_format="json",
    )
    async with KubeClient(
        config=ClientConfig.for_server(env.proxy.url),
        metrics=metrics,
        user_agent="rel-dns/1.0",
        request_timeout=10.0,
    ) as client:
        daemon = DnsDaemon(
            settings=settings,
            client=client,
            metrics=metrics,
            clock=RealClock(),
            logger=structlog.get_logger().bind(node=node, component="dns"),
        )
        task = asyncio.create_task(daemon.run(), name=f"dns:{node}")
        try:
            yield RunningDns(node, path, daemon)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ------------------------------------------------------------------------------ faults


async def watch_chaos(
    sim: KubeSim, *, period: float, expire: bool = True, counts: Counter[str] | None = None
) -> None:
    """Close every watch each `period` seconds; every other time expire the history first
    (the next watch from any old resourceVersion gets 410 and must relist)."""
    tick = 0
    while True:
        await asyncio.sleep(period)
        tick += 1
        if expire and tick % 2 == 0:
            sim.store.expire_history()
            if counts is not None:
                counts["history expired (410)"] += 1
        closed = sim.store.close_all_watches()
        if counts is not None:
            counts["watch streams closed"] += closed


def write_faults(
    sim: KubeSim, *, fraction: float = 0.1, counts: Counter[str] | None = None
) -> None:
    """10% of writes fail: 500, 429 with Retry-After, or 409, in equal parts (seeded)."""
    verbs = ("create", "update", "patch", "delete")
    share = fraction / 3
    # Rules are consulted in order: each sees the requests the earlier ones let through.
    sim.faults.fail(code=500, verbs=verbs, fraction=share)
    sim.faults.fail(code=429, verbs=verbs, fraction=share / (1 - share), retry_after=1)
    sim.faults.fail(code=409, verbs=verbs, fraction=share / (1 - 2 * share))
    if counts is not None:
        counts["write fault rules (500/429/409)"] += 3


async def latency_spikes(
    sim: KubeSim, *, seconds: float, every: float, counts: Counter[str] | None = None
) -> None:
    """A latency spike of `seconds` on every request, for `seconds`, each `every` seconds."""
    while True:
        await asyncio.sleep(every)
        sim.faults.add_latency(seconds=seconds)
        if counts is not None:
            counts["latency spikes"] += 1
        await asyncio.sleep(seconds)
        sim.faults.latencies.clear()


# ------------------------------------------------------------------------------ grids


IMAGES = ("registry.local/echo:1.0", "registry.local/echo:1.1", "registry.local/echo:2.0")


def deployment_spec(app: str, *, replicas: int = 1, image: str = IMAGES[0]) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": app}},
        "template": {
            "metadata": {"labels": {"app": app}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    }
                ]
            },
        },
    }


def statefulset_spec(
    app: str, *, service: str, replicas: int = 1, image: str = IMAGES[0]
) -> dict[str, Any]:
    spec = deployment_spec(app, replicas=replicas, image=image)
    spec["serviceName"] = service
    spec["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    return spec


def service_spec(app: str) -> dict[str, Any]:
    return {
        "selector": {"app": app},
        "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
    }


def grid(
    resource: str, name: str, key: str, template: dict[str, Any], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": KIND_OF[resource],
        "metadata": {"name": name, "namespace": NS},
        "spec": {"gridUniqKey": key, "template": template, **spec},
    }


@dataclass
class Churn:
    """Seeded random changes to grids and nodes, with the ledger of what must exist."""

    env: RelEnv
    rng: random.Random
    keys: tuple[str, ...] = ("zone", "site")
    kinds: tuple[str, ...] = GRID_RESOURCES
    max_grids: int = 10
    node_ops: bool = True
    grid_ops: bool = True
    min_nodes: int = 3
    max_nodes: int = 8
    grids: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    ops: Counter[str] = field(default_factory=Counter)
    _serial: int = 0

    def ledger(self) -> set[tuple[str, str, str]]:
        """(resource, namespace, name) of every grid that must exist."""
        return {(resource, NS, name) for resource, name in self.grids}

    def _name(self, resource: str) -> str:
        self._serial += 1
        prefix = {"deploymentgrids": "dg", "statefulsetgrids": "ssg", "servicegrids": "sg"}
        return f"{prefix[resource]}-{self._serial}"

    def create_grid(self, resource: str | None = None, key: str | None = None) -> str:
        resource = resource or self.rng.choice(self.kinds)
        key = key or self.rng.choice(self.keys)
        name = self._name(resource)
        app = f"app-{name}"
        image = self.rng.choice(IMAGES)
        replicas = self.rng.choice((1, 1, 2))
        extra: dict[str, Any] = {}
        if resource == "servicegrids":
            template = service_spec(app)
        elif resource == "deploymentgrids":
            template = deployment_spec(app, replicas=replicas, image=image)
            if self.rng.random() < 0.4:
                extra["templatePool"] = {
                    "canary": deployment_spec(app, replicas=1, image=self.rng.choice(IMAGES))
                }
                unit = self.rng.choice(UNIT_VALUES[key])
                extra["templates"] = {unit: "canary"}
        else:
            services = [n for (r, n), g in self.grids.items() if r == "servicegrids"]
            service = f"{self.rng.choice(services)}-svc" if services else "none-svc"
            template = statefulset_spec(app, service=service, replicas=replicas, image=image)
        obj = grid(resource, name, key, template, **extra)
        created = self.env.api.create(resource, obj, namespace=NS)
        self.grids[(resource, name)] = created
        self.ops[f"create {KIND_OF[resource]}"] += 1
        return name

    def edit_grid(self) -> None:
        if not self.grids:
            return
        resource, name = self.rng.choice(sorted(self.grids))
        choice = self.rng.random()
        if resource == "servicegrids":
            patch: dict[str, Any] = {"metadata": {"labels": {"rev": str(self.rng.randint(0, 9))}}}
        elif choice < 0.4:
            patch = {"spec": {"template": {"replicas": self.rng.choice((1, 2))}}}
        elif choice < 0.7:
            container = {"name": "main", "image": self.rng.choice(IMAGES)}
            patch = {"spec": {"template": {"template": {"spec": {"containers": [container]}}}}}
        elif choice < 0.85 and resource == "deploymentgrids":
            key = self.grids[(resource, name)]["spec"]["gridUniqKey"]
            unit = self.rng.choice(UNIT_VALUES[key])
            pool = {"canary": deployment_spec(f"app-{name}", image=self.rng.choice(IMAGES))}
            patch = {"spec": {"templatePool": pool, "templates": {unit: "canary"}}}
        else:
            patch = {"metadata": {"labels": {"rev": str(self.rng.randint(0, 9))}}}
        try:
            self.env.api.patch(resource, name, patch, namespace=NS)
        except SimApiError as err:
            if err.code != 404:
                raise
        self.ops[f"edit {KIND_OF[resource]}"] += 1

    def delete_grid(self) -> None:
        if not self.grids:
            return
        resource, name = self.rng.choice(sorted(self.grids))
        self.env.api.delete(resource, name, namespace=NS)
        del self.grids[(resource, name)]
        self.ops[f"delete {KIND_OF[resource]}"] += 1

    def node_step(self) -> None:
        nodes = self.env.node_labels()
        api = self.env.workloads.nodes
        can_add = len(nodes) < self.max_nodes
        can_delete = len(nodes) > self.min_nodes
        choice = self.rng.random()
        if choice < 0.6 or not (can_add or can_delete):
            name = self.rng.choice(sorted(nodes))
            key = self.rng.choice(self.keys)
            value: str | None = self.rng.choice((*UNIT_VALUES[key], None))
            api.relabel_node(name, {key: value})
            self.ops["relabel node" if value else "unlabel node"] += 1
        elif can_add and (choice < 0.8 or not can_delete):
            self._serial += 1
            name = f"rel-x{self._serial}"
            labels = {k: self.rng.choice(UNIT_VALUES[k]) for k in self.keys}
            self.env.add_node(name, labels)
            self.ops["add node"] += 1
        else:
            api.delete_node(self.rng.choice(sorted(nodes)))
            self.ops["delete node"] += 1

    def step(self) -> None:
        choices: list[Callable[[], object]] = []
        if self.grid_ops:
            if len(self.grids) < self.max_grids:
                choices += [self.create_grid] * 3
            choices += [self.edit_grid] * 3
            if self.grids:
                choices += [self.delete_grid]
        if self.node_ops:
            choices += [self.node_step] * 3
        if choices:
            self.rng.choice(choices)()

    async def run(self, *, seconds: float, pace: float = 0.15) -> None:
        """Random steps every `pace` seconds for `seconds` seconds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            self.step()
            await asyncio.sleep(pace * (0.5 + self.rng.random()))


def plant_foreign(env: RelEnv, exp: Expectations) -> None:
    """Objects the controller must never touch, dressed to look like its own: a Deployment
    and a StatefulSet with our labels (no ownerReference), and a Service with topologyKeys.
    The invariant checks they stay exactly as created."""
    ours = {
        "superedge.io/grid-selector": "dg-1",
        "superedge.io/nodeunit": "z-a",
        "app.kubernetes.io/managed-by": "servicegroup",
    }
    deployment = env.api.create(
        "deployments",
        {
            "metadata": {"name": "foreign-web", "namespace": NS, "labels": ours},
            "spec": deployment_spec("foreign-web"),
        },
    )
    statefulset = env.api.create(
        "statefulsets",
        {
            "metadata": {"name": "foreign-db", "namespace": NS, "labels": ours},
            "spec": statefulset_spec("foreign-db", service="foreign-svc"),
        },
    )
    service = env.api.create(
        "services",
        {
            "metadata": {
                "name": "foreign-svc",
                "namespace": NS,
                "annotations": {"topologyKeys": '["zone"]'},
            },
            "spec": service_spec("foreign-web"),
        },
    )
    exp.plant_foreign("deployments", deployment)
    exp.plant_foreign("statefulsets", statefulset)
    exp.plant_foreign("services", service)


def ops_summary(counter: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in sorted(counter.items()) if v}


# ------------------------------------------------------------------------------ reporting


@dataclass
class ScenarioRecord:
    """One scenario's line of docs/reliability.md (appended to $SERVICEGROUP_REL_REPORT)."""

    scenario: str
    faults: dict[str, int] = field(default_factory=dict)
    churn: dict[str, int] = field(default_factory=dict)
    invariant_checks: int = 0  # elementary checks in the passing evaluations
    invariant_passes: int = 0  # evaluations that passed (one per converge)
    objects_lost: int = 0
    reconverge_seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_faults(self, counts: Iterable[tuple[str, int]]) -> None:
        for key, value in counts:
            self.faults[key] = self.faults.get(key, 0) + value

    def write(self) -> None:
        path = os.environ.get(REPORT_ENV)
        if not path:
            return
        line = {
            "scenario": self.scenario,
            "full": FULL,
            "faults": self.faults,
            "churn": self.churn,
            "invariant_checks": self.invariant_checks,
            "invariant_passes": self.invariant_passes,
            "objects_lost": self.objects_lost,
            "longest_reconverge_seconds": round(max(self.reconverge_seconds, default=0.0), 2),
            "notes": self.notes,
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")
