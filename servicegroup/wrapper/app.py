"""`servicegroup wrapper`: wiring and lifecycle of the node-local API endpoint for kube-proxy.

Owns: `Wrapper` (builds the watch caches, the re-filter, the upstream informers, the HTTP
server and the reverse proxy for one node, and runs them) and `run(settings)`, the command.

Lifecycle: probe/metrics servers and the wrapper's listener start first (so kube-proxy can
connect at once; our paths wait for the caches), the informers list and watch the API server,
and readyz `upstream-synced` turns green once nodes, Services, Endpoints and EndpointSlices
have all been listed. When the API server becomes unreachable nothing stops: the caches keep
serving their last state, open watches stay open (bookmarks keep them alive) and the
informers reconcile the differences when it returns. Cancellation (SIGTERM) ends every watch,
closes the listener and the API client.

Invariants: every task is named and owned by one TaskGroup; nothing is global (clock,
metrics, client and logger are arguments); the listener binds exactly `--bind-address`
(loopback by default, as upstream's 127.0.0.1:51006).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import structlog

from servicegroup import __version__
from servicegroup.clock import Clock, RealClock
from servicegroup.informers.reflector import ListWatchClient
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig, load_config
from servicegroup.kube.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from servicegroup.log import get_logger
from servicegroup.metrics import Metrics
from servicegroup.probes import ProbeServer
from servicegroup.settings import BindAddress, WrapperSettings, parse_bind_address
from servicegroup.wrapper.cache import Revisions, WatchCache, wall_clock_start
from servicegroup.wrapper.proxy import ReverseProxy
from servicegroup.wrapper.server import WrapperServer
from servicegroup.wrapper.upstream import Refilter, ServedCaches, Upstream

USER_AGENT = f"servicegroup/{__version__} (wrapper)"


class Wrapper:
    """One node's wrapper: caches, re-filter, informers, server and proxy."""

    def __init__(
        self,
        *,
        node_name: str,
        client: ListWatchClient,
        config: ClientConfig | None,
        metrics: Metrics,
        logger: structlog.typing.FilteringBoundLogger,
        clock: Clock | None = None,
        history: int = 10_000,
        bookmark_interval: float = 60.0,
        default_watch_timeout: float = 1800.0,
        sync_wait: float = 30.0,
        min_upstream_watch_timeout: int = 300,
        max_upstream_watch_timeout: int = 600,
        start_rv: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_name = node_name
        self._log = logger
        revisions = Revisions(start=start_rv if start_rv is not None else wall_clock_start())
        self.caches = ServedCaches(
            services=WatchCache(ref=SERVICES, revisions=revisions, capacity=history),
            endpoints=WatchCache(ref=ENDPOINTS, revisions=revisions, capacity=history),
            endpointslices=WatchCache(ref=ENDPOINTSLICES, revisions=revisions, capacity=history),
        )
        self.refilter = Refilter(
            node_name=node_name, caches=self.caches, metrics=metrics, logger=logger
        )
        self.upstream = Upstream(
            client=client,
            refilter=self.refilter,
            clock=clock if clock is not None else RealClock(),
            metrics=metrics,
            logger=logger,
            min_watch_timeout=min_upstream_watch_timeout,
            max_watch_timeout=max_upstream_watch_timeout,
        )
        self.proxy = (
            ReverseProxy(config=config, user_agent=USER_AGENT, logger=logger)
            if config is not None
            else None
        )
        self.server = WrapperServer(
            caches=self.caches.by_ref(),
            readiness=self.upstream,
            proxy=self.proxy,
            metrics=metrics,
            logger=logger,
            bookmark_interval=bookmark_interval,
            default_watch_timeout=default_watch_timeout,
            sync_wait=sync_wait,
            rng=rng,
        )

    @property
    def port(self) -> int | None:
        """The bound port of the wrapper's listener once started."""
        return self.server.port

    def register_checks(self, probes: ProbeServer) -> None:
        probes.add_healthz_check("serving", lambda: self.server.port is not None)
        probes.add_readyz_check("upstream-synced", self.upstream.synced)

    async def run(
        self, address: BindAddress, *, started: Callable[[int], None] | None = None
    ) -> None:
        """Serve and follow the API server until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.server.run(address, started=started), name="wrapper-server")
                group.create_task(self.upstream.run(), name="wrapper-upstream")
        finally:
            if self.proxy is not None:
                await self.proxy.close()


async def run(settings: WrapperSettings) -> int:
    """The `servicegroup wrapper` command."""
    logger = get_logger("wrapper", node=settings.node_name)
    clock = RealClock()
    metrics = Metrics()
    address = parse_bind_address(settings.bind_address)
    if address is None:  # the settings model forbids "0"; keep mypy and readers sure
        raise ValueError("the wrapper needs a bind address")
    config = await load_config(kubeconfig=settings.kubeconfig, clock=clock)
    probes = ProbeServer(
        health_bind_address=settings.health_probe_bind_address,
        metrics_bind_address=settings.metrics_bind_address,
        registry=metrics.registry,
        logger=logger,
    )
    async with KubeClient(
        config=config, metrics=metrics, user_agent=USER_AGENT, clock=clock
    ) as client:
        wrapper = Wrapper(
            node_name=settings.node_name,
            client=client,
            config=config,
            metrics=metrics,
            logger=logger,
            clock=clock,
        )
        wrapper.register_checks(probes)
        logger.info("starting", api_server=config.server, bind_address=settings.bind_address)
        async with asyncio.TaskGroup() as group:
            group.create_task(probes.run(), name="wrapper-probes")
            group.create_task(wrapper.run(address), name="wrapper")
    return 0
