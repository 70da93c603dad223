"""Manager lifecycle with fakes that record what happens, in order."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import structlog

from servicegroup.clock import FakeClock
from servicegroup.kube.resources import ResourceRef
from servicegroup.leaderelection import LeaderElector, LeadershipLost
from servicegroup.manager import EXIT_FAILURE, Manager, Phase, build_elector
from servicegroup.metrics import Metrics
from servicegroup.settings import CommonSettings, ControllerSettings

LOCAL = CommonSettings(
    log_format="json", metrics_bind_address="127.0.0.1:0", health_probe_bind_address="127.0.0.1:0"
)
NO_HTTP = CommonSettings(log_format="json", metrics_bind_address="0", health_probe_bind_address="0")


class Log(list[str]):
    def index_of(self, entry: str) -> int:
        return self.index(entry)


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


class FakeFactory:
    def __init__(self, log: Log, *, sync_ok: bool = True) -> None:
        self.log = log
        self.sync = asyncio.Event()
        self.sync_ok = sync_ok
        self.crash = asyncio.Event()

    async def run(self) -> None:
        self.log.append("informers:start")
        try:
            crash = asyncio.create_task(self.crash.wait(), name="fake-factory-crash")
            try:
                await crash
            finally:
                crash.cancel()
            raise RuntimeError("informer exploded")
        except asyncio.CancelledError:
            self.log.append("informers:stop")
            raise

    async def wait_for_cache_sync(self, *, timeout: float | None = None) -> bool:
        await asyncio.sleep(0)  # waiting takes a moment, during which informers start
        if not self.sync_ok:
            return False
        await self.sync.wait()
        return True

    def synced(self) -> bool:
        return self.sync.is_set()


class FakeController:
    def __init__(self, name: str, log: Log) -> None:
        self._name = name
        self.log = log
        self.crash = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    async def run(self) -> None:
        self.log.append(f"controller:{self.name}:start")
        try:
            await self.crash.wait()
        except asyncio.CancelledError:
            for _ in range(3):  # draining in-flight work takes a few turns of the loop
                await asyncio.sleep(0)
            self.log.append(f"controller:{self.name}:stop")
            raise
        raise RuntimeError(f"{self.name} exploded")


class FakeRecorder:
    def __init__(self, log: Log) -> None:
        self.log = log

    async def run(self) -> None:
        self.log.append("recorder:start")
        try:
            await _forever()
        finally:
            self.log.append("recorder:stop")


class FakeElector:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.grant = asyncio.Event()
        self.lose = asyncio.Event()
        self.leading = False

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        self.log.append("elector:campaign")
        await self.grant.wait()
        self.leading = True
        self.log.append("elector:leading")
        work = asyncio.create_task(on_started_leading(), name="fake-elector-work")
        lose = asyncio.create_task(self.lose.wait(), name="fake-elector-lose")
        try:
            await asyncio.wait((work, lose), return_when=asyncio.FIRST_COMPLETED)
        finally:
            work.cancel()
            lose.cancel()
            await asyncio.wait((work, lose))
            self.leading = False
            if lose.done() and not lose.cancelled():
                self.log.append("elector:lost")
            else:
                self.log.append("elector:released")
        if lose.done() and not lose.cancelled():
            raise LeadershipLost("lost")
        work.result()  # the callback's failure, as the real elector re-raises it

    def is_leader(self) -> bool:
        return self.leading

    def healthy(self) -> bool:
        return True


class FakeClient:
    def __init__(self, log: Log, manager_probe: Callable[[], Manager | None]) -> None:
        self.log = log
        self.manager_probe = manager_probe
        self.http_down_at_close: bool | None = None

    async def close(self) -> None:
        manager = self.manager_probe()
        if manager is not None:
            self.http_down_at_close = manager.probes.health_port is None
        self.log.append("client:close")


async def until(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


async def _status(port: int | None, path: str) -> int:
    assert port is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status


class Rig:
    def __init__(
        self,
        clock: FakeClock,
        metrics: Metrics,
        *,
        settings: CommonSettings = NO_HTTP,
        elector: bool = True,
        sync_ok: bool = True,
    ) -> None:
        self.log = Log()
        self.factory = FakeFactory(self.log, sync_ok=sync_ok)
        self.controllers = [FakeController("deploymentgrid", self.log),
                            FakeController("servicegrid", self.log)]  # fmt: skip
        self.recorder = FakeRecorder(self.log)
        self.elector = FakeElector(self.log) if elector else None
        self.manager: Manager | None = None
        self.client = FakeClient(self.log, lambda: self.manager)
        self.manager = Manager(
            settings=settings,
            client=self.client,
            factory=self.factory,
            metrics=metrics,
            clock=clock,
            logger=structlog.get_logger(),
            controllers=self.controllers,
            event_recorders=[self.recorder],
            elector=self.elector,
        )
        self.task: asyncio.Task[int] | None = None

    def start(self) -> asyncio.Task[int]:
        assert self.manager is not None
        self.task = asyncio.create_task(self.manager.run(), name="manager-under-test")
        return self.task

    def started(self, entry: str) -> Callable[[], bool]:
        return lambda: entry in self.log


async def test_start_and_stop_order(clock: FakeClock, metrics: Metrics) -> None:
    rig = Rig(clock, metrics, settings=LOCAL)
    manager = rig.manager
    assert manager is not None
    assert manager.phase is Phase.CREATED and not manager.ready
    task = rig.start()
    await until(rig.started("informers:start"))
    port = manager.probes.health_port
    assert port is not None and manager.probes.metrics_port is not None
    # Informers run, caches not synced: not ready, nothing else started.
    assert manager.phase is Phase.SYNCING
    assert await _status(port, "/readyz") == 500
    assert await _status(port, "/healthz") == 200
    assert not manager.ready and manager.healthy
    assert rig.log == ["informers:start"]

    rig.factory.sync.set()
    await until(rig.started("elector:campaign"))
    assert manager.ready and await _status(port, "/readyz") == 200
    assert manager.phase is Phase.ELECTING
    for _ in range(10):
        await asyncio.sleep(0)
    assert not any(entry.startswith("controller:") for entry in rig.log)  # not without lease

    assert rig.elector is not None
    rig.elector.grant.set()
    await until(lambda: len([e for e in rig.log if e.endswith(":start")]) == 4)
    assert manager.phase is Phase.RUNNING
    assert rig.log[:3] == ["informers:start", "elector:campaign", "elector:leading"]
    assert set(rig.log[3:]) == {
        "recorder:start",
        "controller:deploymentgrid:start",
        "controller:servicegrid:start",
    }
    assert await _status(port, "/healthz?verbose") == 200
    assert await _status(manager.probes.metrics_port, "/metrics") == 200

    del rig.log[:]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    controller_stops = {"controller:deploymentgrid:stop", "controller:servicegrid:stop"}
    assert set(rig.log[:2]) == controller_stops
    assert rig.log[2:] == ["recorder:stop", "elector:released", "informers:stop", "client:close"]
    assert rig.client.http_down_at_close is True
    assert manager.phase is Phase.STOPPED
    assert manager.probes.health_port is None


async def test_lost_lease_exits_1(clock: FakeClock, metrics: Metrics) -> None:
    rig = Rig(clock, metrics)
    task = rig.start()
    rig.factory.sync.set()
    assert rig.elector is not None
    rig.elector.grant.set()
    await until(rig.started("controller:servicegrid:start"))
    del rig.log[:]
    rig.elector.lose.set()
    assert await asyncio.wait_for(task, timeout=5) == EXIT_FAILURE
    assert set(rig.log[:2]) == {"controller:deploymentgrid:stop", "controller:servicegrid:stop"}
    assert rig.log[2:] == ["recorder:stop", "elector:lost", "informers:stop", "client:close"]


async def test_controller_crash_stops_everything(clock: FakeClock, metrics: Metrics) -> None:
    rig = Rig(clock, metrics)
    task = rig.start()
    rig.factory.sync.set()
    assert rig.elector is not None
    rig.elector.grant.set()
    await until(rig.started("controller:servicegrid:start"))
    del rig.log[:]
    rig.controllers[0].crash.set()
    assert await asyncio.wait_for(task, timeout=5) == EXIT_FAILURE
    # The other controller drains, then everything stops in order (lease released).
    assert rig.log == [
        "controller:servicegrid:stop",
        "recorder:stop",
        "elector:released",
        "informers:stop",
        "client:close",
    ]


async def test_informer_failure_stops_everything(clock: FakeClock, metrics: Metrics) -> None:
    rig = Rig(clock, metrics, elector=False)
    task = rig.start()
    rig.factory.sync.set()
    await until(rig.started("controller:servicegrid:start"))
    del rig.log[:]
    rig.factory.crash.set()
    assert await asyncio.wait_for(task, timeout=5) == EXIT_FAILURE
    assert set(rig.log[:2]) == {"controller:deploymentgrid:stop", "controller:servicegrid:stop"}
    assert rig.log[2:] == ["recorder:stop", "client:close"]


async def test_cache_sync_timeout_exits_1(clock: FakeClock, metrics: Metrics) -> None:
    rig = Rig(clock, metrics, sync_ok=False)
    assert await asyncio.wait_for(rig.start(), timeout=5) == EXIT_FAILURE
    assert rig.log == ["informers:start", "informers:stop", "client:close"]


async def test_without_elector_controllers_start_after_sync(
    clock: FakeClock, metrics: Metrics
) -> None:
    rig = Rig(clock, metrics, elector=False)
    assert rig.manager is not None
    assert "leader-election" not in rig.manager.probes.healthz.names
    task = rig.start()
    await until(rig.started("informers:start"))
    for _ in range(10):
        await asyncio.sleep(0)
    assert rig.log == ["informers:start"]
    rig.factory.sync.set()
    await until(lambda: len(rig.log) == 4)
    assert rig.manager.phase is Phase.RUNNING
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rig.log[-2:] == ["informers:stop", "client:close"]


async def test_controllers_that_return_do_not_stop_the_manager(
    clock: FakeClock, metrics: Metrics
) -> None:
    class Quick:
        name = "quick"

        async def run(self) -> None:
            return None

    closed: list[str] = []

    class Client:
        async def close(self) -> None:
            closed.append("closed")

    factory = FakeFactory(Log())
    factory.sync.set()
    manager = Manager(
        settings=NO_HTTP,
        client=Client(),
        factory=factory,
        metrics=metrics,
        clock=clock,
        logger=structlog.get_logger(),
        controllers=[Quick()],
    )
    task = asyncio.create_task(manager.run(), name="manager-quick")
    await until(lambda: manager.phase is Phase.RUNNING)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == ["closed"]


# ---------------------------------------------------------------- with the real elector


class FlakyLeaseClient:
    """A single in-memory Lease; `failing` makes every request answer 500."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.failing = False
        self.closed = False

    def _check(self) -> None:
        if self.failing:
            error = Exception("injected 500")
            error.status = 500  # type: ignore[attr-defined]
            raise error

    async def get(
        self, ref: ResourceRef, name: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        self._check()
        if self.lease is None:
            error = Exception("not found")
            error.status = 404  # type: ignore[attr-defined]
            raise error
        return copy.deepcopy(self.lease)

    async def create(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        self._check()
        return await self.replace(ref, body, namespace=namespace)

    async def replace(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        self._check()
        self.rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)

    async def close(self) -> None:
        self.closed = True


async def test_real_elector_lost_lease_exits_1(clock: FakeClock, metrics: Metrics) -> None:
    log = Log()
    client = FlakyLeaseClient()
    factory = FakeFactory(log)
    factory.sync.set()
    controller = FakeController("deploymentgrid", log)
    elector = LeaderElector(
        client=client,
        clock=clock,
        metrics=metrics,
        logger=structlog.get_logger(),
        namespace="servicegroup-system",
        name="servicegroup-controller",
        identity="me",
    )
    manager = Manager(
        settings=NO_HTTP,
        client=client,
        factory=factory,
        metrics=metrics,
        clock=clock,
        logger=structlog.get_logger(),
        controllers=[controller],
        elector=elector,
    )
    task = asyncio.create_task(manager.run(), name="manager-real-elector")
    await until(lambda: "controller:deploymentgrid:start" in log)
    status = metrics.registry.get_sample_value(
        "leader_election_master_status", {"name": "servicegroup-controller"}
    )
    assert status == 1.0 and manager.healthy
    client.failing = True
    while not task.done():
        clock.advance(0.5)
        for _ in range(20):
            await asyncio.sleep(0)
        assert clock.monotonic() < 1000 + 30, "the lease loss was never noticed"
    assert task.result() == EXIT_FAILURE
    assert log[-2:] == ["controller:deploymentgrid:stop", "informers:stop"]
    assert client.closed
    status = metrics.registry.get_sample_value(
        "leader_election_master_status", {"name": "servicegroup-controller"}
    )
    assert status == 0.0


def test_duplicate_controller_names_rejected(clock: FakeClock, metrics: Metrics) -> None:
    log = Log()
    with pytest.raises(ValueError, match="unique"):
        Manager(
            settings=NO_HTTP,
            client=FakeClient(log, lambda: None),
            factory=FakeFactory(log),
            metrics=metrics,
            clock=clock,
            logger=structlog.get_logger(),
            controllers=[FakeController("a", log), FakeController("a", log)],
        )


def test_build_elector_from_settings(clock: FakeClock, metrics: Metrics) -> None:
    client = FlakyLeaseClient()
    args: dict[str, Any] = {
        "client": client,
        "clock": clock,
        "metrics": metrics,
        "logger": structlog.get_logger(),
    }
    assert build_elector(ControllerSettings(log_format="json"), **args) is None
    settings = ControllerSettings(
        log_format="json", leader_elect=True, leader_elect_id="my-lease", lease_duration="20s"
    )
    elector = build_elector(settings, identity="me", **args)
    assert isinstance(elector, LeaderElector)
    assert elector.identity == "me"
    value = metrics.registry.get_sample_value("leader_election_master_status", {"name": "my-lease"})
    assert value == 0.0
    assert build_elector(settings, **args) is not None
