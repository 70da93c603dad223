"""`servicegroup dns`: wiring of the node-local hosts-file daemon (SPEC A6, B11).

Owns: `run(settings)` (the command: config, API client, daemon, exit code) and `DnsDaemon`
(the cluster view, the hosts-file syncer and the probe/metrics server, run together).

Lifecycle: the probe and metrics listeners start first (so a kubelet sees /healthz at once),
then the informers and the syncer run side by side until cancelled. Nothing is written before
the caches have synced. On shutdown the file is left as it is: the pods it names usually keep
running, and the next daemon takes the block over.

Probes: /healthz has `ping`. /readyz has `informers-synced` (every cache listed and every
selector settled), `node` (the Node named by --node-name exists: a wrong name would quietly
publish nothing) and `hosts-file` (the latest sync of the file succeeded; an unwritable path
makes the daemon not-ready while it keeps retrying).

Invariants: one TaskGroup owns every task; CancelledError propagates; the daemon exits only
when cancelled or on a bug, never because of the file.
"""

from __future__ import annotations

import asyncio

from structlog.typing import FilteringBoundLogger

from servicegroup import __version__
from servicegroup.clock import Clock, RealClock
from servicegroup.dns.hostsfile import HostsFile
from servicegroup.dns.syncer import HostsSyncer
from servicegroup.dns.watcher import ClusterView
from servicegroup.informers.reflector import ListWatchClient
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import load_config
from servicegroup.log import get_logger
from servicegroup.metrics import Metrics
from servicegroup.probes import ProbeServer
from servicegroup.settings import DnsSettings

USER_AGENT = f"servicegroup/{__version__} (dns)"


class DnsDaemon:
    """One node's daemon: view + syncer + probes."""

    def __init__(
        self,
        *,
        settings: DnsSettings,
        client: ListWatchClient,
        metrics: Metrics,
        clock: Clock,
        logger: FilteringBoundLogger,
        resync_period: float = 30.0,
    ) -> None:
        self.settings = settings
        self.view = ClusterView(
            client=client,
            node_name=settings.node_name,
            cluster_domain=settings.cluster_domain,
            publish_not_ready=settings.publish_not_ready,
            metrics=metrics,
            clock=clock,
            logger=logger,
        )
        self.file = HostsFile(path=settings.hosts_file)
        self.syncer = HostsSyncer(
            source=self.view,
            file=self.file,
            metrics=metrics,
            clock=clock,
            logger=logger,
            resync_period=resync_period,
        )
        self.probes = ProbeServer(
            health_bind_address=settings.health_probe_bind_address,
            metrics_bind_address=settings.metrics_bind_address,
            registry=metrics.registry,
            logger=logger,
        )
        self.probes.add_healthz_check("ping", lambda: True)
        self.probes.add_readyz_check("informers-synced", self.view.settled)
        self.probes.add_readyz_check("node", self.view.node_found)
        self.probes.add_readyz_check("hosts-file", lambda: self.syncer.file_ok)
        self._log = logger

    @property
    def ready(self) -> bool:
        return self.probes.readyz.passing()

    async def run(self) -> None:
        """Serve probes, watch and write until cancelled."""
        self._log.info(
            "starting",
            hosts_file=self.settings.hosts_file,
            cluster_domain=self.settings.cluster_domain,
            publish_not_ready=self.settings.publish_not_ready,
        )
        async with self.probes, asyncio.TaskGroup() as group:
            group.create_task(self.view.run(), name="dns-view")
            group.create_task(self.syncer.run(), name="dns-syncer")


async def run(settings: DnsSettings) -> int:
    """The `servicegroup dns` command: runs until cancelled (SIGTERM/SIGINT)."""
    logger = get_logger("dns", node=settings.node_name)
    metrics = Metrics()
    clock = RealClock()
    config = await load_config(kubeconfig=settings.kubeconfig, clock=clock)
    async with KubeClient(
        config=config, metrics=metrics, user_agent=USER_AGENT, clock=clock
    ) as client:
        daemon = DnsDaemon(
            settings=settings, client=client, metrics=metrics, clock=clock, logger=logger
        )
        await daemon.run()
    return 0
