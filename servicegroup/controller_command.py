"""`servicegroup controller`: everything the controller process is made of, put together.

Owns: `run(settings)` (the command), and `build_controller` (the same process as objects,
so tests can run two of them in one event loop against one kubesim, each with its own
identity, client, caches and metrics registry).

What `build_controller` builds, in dependency order: the API client (User-Agent
`servicegroup/<version> (controller)`), the informer factory, the Event recorder (source
`servicegroup-controller`), the reconcilers and controllers with their informers and
handlers (reconcilers/wiring.py), the Lease elector when `--leader-elect` is on, and the
Manager that starts and stops all of it in order (manager.py).

Invariants: no globals (clock, metrics and logger are arguments); nothing starts before
`Manager.run()`; the client is closed by the manager when it stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from servicegroup import __version__
from servicegroup.clock import Clock, RealClock
from servicegroup.events import EventRecorder
from servicegroup.grid.labels import FIELD_MANAGER
from servicegroup.informers.factory import InformerFactory
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig, load_config
from servicegroup.leaderelection import LeaderElector, default_identity
from servicegroup.log import get_logger
from servicegroup.manager import Manager, build_elector
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.federation import FederationController, federation_controllers
from servicegroup.reconcilers.wiring import Wiring, wire_controllers
from servicegroup.reconcilers.workloadgrid import DEFAULT_RETRY_REJECTED_AFTER
from servicegroup.settings import ControllerSettings

USER_AGENT = f"servicegroup/{__version__} (controller)"


@dataclass(frozen=True)
class ControllerProcess:
    """One controller process's parts; `await manager.run()` runs it."""

    manager: Manager
    wiring: Wiring
    client: KubeClient
    factory: InformerFactory
    recorder: EventRecorder
    elector: LeaderElector | None
    metrics: Metrics
    identity: str
    federation: tuple[FederationController, ...] = ()


def build_controller(
    settings: ControllerSettings,
    *,
    config: ClientConfig,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    logger: FilteringBoundLogger | None = None,
    identity: str | None = None,
    sync_period: float | None = None,
    retry_rejected_after: float = DEFAULT_RETRY_REJECTED_AFTER,
) -> ControllerProcess:
    """Build (not start) a controller process from `settings`."""
    metrics = metrics if metrics is not None else Metrics()
    clock = clock if clock is not None else RealClock()
    identity = identity or default_identity()
    logger = logger if logger is not None else get_logger("controller", identity=identity)
    client = KubeClient(config=config, metrics=metrics, user_agent=USER_AGENT, clock=clock)
    factory = InformerFactory(client=client, metrics=metrics, clock=clock, logger=logger)
    recorder = EventRecorder(
        client=client,
        clock=clock,
        metrics=metrics,
        logger=logger,
        component=FIELD_MANAGER,
        instance=identity,
        # Converging a fresh cluster emits one Event per child: hold a whole burst.
        queue_size=20_000,
    )
    wiring = wire_controllers(
        factory=factory,
        client=client,
        recorder=recorder,
        metrics=metrics,
        clock=clock,
        logger=logger,
        namespaces=settings.namespaces,
        workers=settings.workers,
        grace_period=settings.nodeunit_grace_period,
        sync_period=sync_period if sync_period is not None else settings.sync_period,
        retry_rejected_after=retry_rejected_after,
    )
    federation: tuple[FederationController, ...] = ()
    if settings.enable_federation:
        federation = tuple(
            federation_controllers(
                settings=settings,
                client=client,
                factory=factory,
                metrics=metrics,
                clock=clock,
                logger=logger,
                recorder=recorder,
            )
        )
    elector = build_elector(
        settings, client=client, clock=clock, metrics=metrics, logger=logger, identity=identity
    )
    manager = Manager(
        settings=settings,
        client=client,
        factory=factory,
        metrics=metrics,
        clock=clock,
        logger=logger,
        controllers=[*wiring.controllers, *federation],
        event_recorders=(recorder,),
        elector=elector,
    )
    return ControllerProcess(
        manager=manager,
        wiring=wiring,
        client=client,
        factory=factory,
        recorder=recorder,
        elector=elector,
        metrics=metrics,
        identity=identity,
        federation=federation,
    )


async def run(settings: ControllerSettings) -> int:
    """The `servicegroup controller` command: run until cancelled (0) or a failure (1)."""
    config = await load_config(kubeconfig=settings.kubeconfig)
    process = build_controller(settings, config=config)
    get_logger("controller").info(
        "starting controller",
        version=__version__,
        server=config.server,
        namespaces=list(settings.namespaces) or "all",
        leader_elect=settings.leader_elect,
        identity=process.identity,
    )
    return await process.manager.run()
