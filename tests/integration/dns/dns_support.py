"""Helpers of the DNS daemon's integration suite: a simulated cluster with workloads and the
real grid controller, and DNS daemons (one per node) writing real files in a temp directory.

Everything talks over HTTP to an in-process KubeSim; waits poll a condition with a deadline.
Names are resolved from the files with `dnsresolve.HostsPlugin` (CoreDNS's hosts plugin rules).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml
from dnsresolve import HostsPlugin

from servicegroup.clock import RealClock
from servicegroup.dns.app import DnsDaemon
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.workloads import Workloads
from servicegroup.metrics import Metrics
from servicegroup.settings import DnsSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
DOMAIN = "cluster.local"
USER_AGENT = "servicegroup/test (dns-integration)"


async def eventually(
    predicate: Callable[[], Any], *, timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g}s (last: {value!r})")
        await asyncio.sleep(0.02)


def upstream(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def resolve_all(path: Path, names: list[str]) -> dict[str, tuple[str, ...]]:
    """What a CoreDNS `hosts` plugin reading `path` answers for each name (A records)."""
    plugin = HostsPlugin(zones=(DOMAIN,), fallthrough=())
    if path.exists():
        plugin.parse(path.read_text())
    return {name: plugin.query(name).addresses for name in names}


def fqdn(grid: str, ordinal: int, service: str, namespace: str = "default") -> str:
    return f"{grid}-{ordinal}.{service}.{namespace}.svc.{DOMAIN}"


@dataclass
class Daemon:
    node: str
    path: Path
    daemon: DnsDaemon
    metrics: Metrics

    def resolve(self, names: list[str]) -> dict[str, tuple[str, ...]]:
        return resolve_all(self.path, names)

    def idle(self) -> bool:
        """The syncer has written (or confirmed) exactly what the caches say now."""
        records = self.daemon.view.records()
        return records is not None and self.daemon.syncer.published == records

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@dataclass
class Cluster:
    """A KubeSim with workloads, CRDs and the grid controller running."""

    sim: KubeSim
    workloads: Workloads
    api: LocalClient
    workdir: Path

    def pod_ip(self, name: str, namespace: str = "default") -> str | None:
        try:
            pod = self.api.get("pods", name, namespace=namespace)
        except Exception:
            return None
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )
        if not ready or pod["metadata"].get("deletionTimestamp"):
            return None
        ip = status.get("podIP")
        return str(ip) if ip else None

    def unit_ips(self, statefulset: str, replicas: int) -> dict[int, str | None]:
        """Ready IPs of `{statefulset}-{i}` (None for a pod without one)."""
        return {i: self.pod_ip(f"{statefulset}-{i}") for i in range(replicas)}

    @contextlib.asynccontextmanager
    async def daemon(
        self, node: str, *, path: Path | None = None, **settings: Any
    ) -> AsyncIterator[Daemon]:
        """Run `servicegroup dns` for `node`, writing `path` (default: workdir/<node>/hosts)."""
        if path is None:
            path = self.workdir / node / "hosts"
            path.parent.mkdir(parents=True, exist_ok=True)
        metrics = Metrics()
        dns_settings = DnsSettings(
            node_name=node,
            hosts_file=str(path),
            metrics_bind_address="0",
            health_probe_bind_address="127.0.0.1:0",
            log_format="console",
            **settings,
        )
        async with KubeClient(
            config=ClientConfig.for_server(self.sim.url),
            metrics=metrics,
            user_agent=USER_AGENT,
            request_timeout=10.0,
        ) as client:
            daemon = DnsDaemon(
                settings=dns_settings,
                client=client,
                metrics=metrics,
                clock=RealClock(),
                logger=structlog.get_logger("dns-test", node=node),
            )
            handle = Daemon(node, path, daemon, metrics)
            task = asyncio.create_task(daemon.run(), name=f"dns-daemon:{node}")
            try:
                yield handle
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
