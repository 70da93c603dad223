"""The controller process's lifecycle: ordered start, run until cancelled, ordered stop.

This module owns the order in which the long-lived parts of `servicegroup controller` start
and stop (controller-runtime's manager, DESIGN.md sections 3.1 and 3.7):

  start: probe + metrics servers -> informer factory -> caches synced (readyz
         "informers-synced" turns green) -> leader election, when enabled (healthz
         "leader-election") -> event recorders and controllers.
  stop:  controllers (each drains its in-flight reconciles) -> event recorders -> Lease
         released -> informers -> HTTP servers -> API client closed.

Invariants:
- Controllers never run before the caches have synced, nor without the Lease when an
  elector is given.
- Every task is named and owned by a TaskGroup; nesting gives the stop order, because a
  TaskGroup finishes its own children before its exception or cancellation reaches the
  enclosing one.
- `run()` re-raises CancelledError after a complete orderly stop (a requested shutdown).
  It returns 1 when the Lease is lost, when a controller, recorder or the informer factory
  fails unexpectedly, or when the caches do not sync in time.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.leaderelection import (
    LeaderElector,
    LeadershipLost,
    LeaseClient,
    default_identity,
)
from servicegroup.metrics import Metrics
from servicegroup.probes import ProbeServer
from servicegroup.settings import CommonSettings, ControllerSettings

EXIT_OK = 0
EXIT_FAILURE = 1


class Closable(Protocol):
    """The API client: the manager closes it last (KubeClient fits)."""

    async def close(self) -> None: ...


class InformerFactoryLike(Protocol):
    """servicegroup.informers.factory.InformerFactory, as the manager uses it."""

    async def run(self) -> None: ...

    async def wait_for_cache_sync(self, *, timeout: float | None = None) -> bool: ...

    def synced(self) -> bool: ...


class Runnable(Protocol):
    """Anything that works until cancelled (an EventRecorder)."""

    async def run(self) -> None: ...


class ControllerLike(Protocol):
    """servicegroup.controller.Controller: named, runs until cancelled, drains on cancel."""

    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...


class Elector(Protocol):
    """servicegroup.leaderelection.LeaderElector."""

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> None: ...

    def is_leader(self) -> bool: ...

    def healthy(self) -> bool: ...


class Phase(enum.Enum):
    CREATED = "created"
    SYNCING = "syncing"
    ELECTING = "electing"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Manager:
    """Runs one controller process: HTTP, informers, leader election, controllers."""

    def __init__(
        self,
        *,
        settings: CommonSettings,
        client: Closable,
        factory: InformerFactoryLike,
        metrics: Metrics,
        clock: Clock,
        logger: FilteringBoundLogger,
        controllers: Sequence[ControllerLike],
        event_recorders: Sequence[Runnable] = (),
        elector: Elector | None = None,
        cache_sync_timeout: float = 120.0,
    ) -> None:
        names = [c.name for c in controllers]
        if len(set(names)) != len(names):
            raise ValueError(f"controller names must be unique, got {names}")
        self._client = client
        self._factory = factory
        self._clock = clock
        self._logger = logger
        self._controllers = tuple(controllers)
        self._event_recorders = tuple(event_recorders)
        self._elector = elector
        self._cache_sync_timeout = cache_sync_timeout
        self._phase = Phase.CREATED
        self.probes = ProbeServer(
            health_bind_address=settings.health_probe_bind_address,
            metrics_bind_address=settings.metrics_bind_address,
            registry=metrics.registry,
            logger=logger,
        )
        self.probes.add_healthz_check("ping", lambda: True)
        self.probes.add_readyz_check("ping", lambda: True)
        self.probes.add_readyz_check("informers-synced", self._informers_synced)
        if elector is not None:
            self.probes.add_healthz_check("leader-election", elector.healthy)

    # ------------------------------------------------------------------ state

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def ready(self) -> bool:
        """What /readyz answers: the informer caches have synced."""
        return self.probes.readyz.passing()

    @property
    def healthy(self) -> bool:
        """What /healthz answers: alive, and renewing the Lease when leading."""
        return self.probes.healthz.passing()

    def _informers_synced(self) -> bool:
        # Before the factory runs, "synced" of an empty factory would be vacuously true.
        return self._phase not in (Phase.CREATED, Phase.STOPPED) and self._factory.synced()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        """Run until cancelled (re-raised after the orderly stop) or until a failure (-> 1)."""
        try:
            return await self._serve()
        except Exception as exc:
            leaves = _leaves(exc)
            if any(isinstance(leaf, LeadershipLost) for leaf in leaves):
                self._logger.error("leader election lost, stopping")
            else:
                failures = [leaf for leaf in leaves if not isinstance(leaf, LeadershipLost)]
                self._logger.error(
                    "stopping after an unexpected error",
                    error=", ".join(f"{type(e).__name__}: {e}" for e in failures),
                    exc_info=failures[0] if failures else exc,
                )
            return EXIT_FAILURE
        finally:
            self._phase = Phase.STOPPED
            self._logger.info("manager stopped")

    async def _serve(self) -> int:
        try:
            async with self.probes:
                try:
                    return await self._with_informers()
                finally:
                    self._logger.info("stopping HTTP servers")
        finally:
            await self._client.close()

    async def _with_informers(self) -> int:
        async with asyncio.TaskGroup() as group:
            informers = group.create_task(self._factory.run(), name="informer-factory")
            try:
                return await self._after_informers_started()
            finally:
                self._phase = Phase.STOPPING
                self._logger.info("stopping informers")
                informers.cancel()

    async def _after_informers_started(self) -> int:
        self._phase = Phase.SYNCING
        self._logger.info("waiting for informer caches to sync")
        if not await self._factory.wait_for_cache_sync(timeout=self._cache_sync_timeout):
            self._logger.error(
                "informer caches did not sync in time", timeout=self._cache_sync_timeout
            )
            return EXIT_FAILURE
        self._logger.info("informer caches synced")
        if self._elector is None:
            await self._lead()
        else:
            self._phase = Phase.ELECTING
            await self._elector.run(self._lead)
        return EXIT_OK

    async def _lead(self) -> None:
        self._phase = Phase.RUNNING
        try:
            async with asyncio.TaskGroup() as recorders:
                for index, recorder in enumerate(self._event_recorders):
                    recorders.create_task(recorder.run(), name=f"event-recorder-{index}")
                # Nested, so controllers stop (and drain) before the recorders that carry
                # the Events they emit while draining.
                async with asyncio.TaskGroup() as controllers:
                    for controller in self._controllers:
                        controllers.create_task(
                            self._run_controller(controller), name=f"controller-{controller.name}"
                        )
                    # Controllers that finish on their own do not end the process.
                    await asyncio.get_running_loop().create_future()
        finally:
            self._phase = Phase.STOPPING

    async def _run_controller(self, controller: ControllerLike) -> None:
        self._logger.info("starting controller", controller=controller.name)
        try:
            await controller.run()
        except asyncio.CancelledError:
            self._logger.info("controller stopped", controller=controller.name)
            raise
        except Exception:
            self._logger.error("controller failed", controller=controller.name)
            raise
        self._logger.info("controller returned", controller=controller.name)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The non-group exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def build_elector(
    settings: ControllerSettings,
    *,
    client: LeaseClient,
    clock: Clock,
    metrics: Metrics,
    logger: FilteringBoundLogger,
    identity: str | None = None,
) -> LeaderElector | None:
    """The elector `settings` ask for (None when --leader-elect is off)."""
    if not settings.leader_elect:
        return None
    return LeaderElector(
        client=client,
        clock=clock,
        metrics=metrics,
        logger=logger,
        namespace=settings.leader_elect_namespace,
        name=settings.leader_elect_id,
        identity=identity or default_identity(),
        lease_duration=settings.lease_duration,
        renew_deadline=settings.renew_deadline,
        retry_period=settings.retry_period,
    )
