"""controller_command.build_controller: the process's parts from ControllerSettings."""

from __future__ import annotations

from servicegroup import __version__
from servicegroup.clock import FakeClock
from servicegroup.controller_command import USER_AGENT, build_controller
from servicegroup.kube.config import ClientConfig
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.wiring import DEFAULT_SYNC_PERIOD
from servicegroup.settings import ControllerSettings

CONFIG = ClientConfig.for_server("http://127.0.0.1:1")


def settings(**values: object) -> ControllerSettings:
    return ControllerSettings(
        log_format="json", metrics_bind_address="0", health_probe_bind_address="0", **values
    )


async def test_build_controller_from_settings(clock: FakeClock, metrics: Metrics) -> None:
    process = build_controller(
        settings(workers=3, namespaces="a,b", nodeunit_grace_period="30s"),
        config=CONFIG,
        metrics=metrics,
        clock=clock,
        identity="me",
    )
    try:
        assert f"servicegroup/{__version__} (controller)" == USER_AGENT
        assert process.client._user_agent == USER_AGENT
        assert process.elector is None
        assert [c.name for c in process.wiring.controllers] == [
            "deploymentgrid",
            "statefulsetgrid",
            "servicegrid",
        ]
        assert {c.controller.workers for c in process.wiring.controllers} == {3}
        assert process.wiring.deployment_grids._grace_period == 30.0
        namespaces = {i.namespace for i in process.factory.informers if i.ref.plural != "nodes"}
        assert namespaces == {"a", "b"}
        assert process.recorder.component == "servicegroup-controller"
        assert process.recorder.instance == "me"
    finally:
        await process.client.close()


async def test_leader_election_and_sync_period(clock: FakeClock, metrics: Metrics) -> None:
    process = build_controller(
        settings(leader_elect=True, leader_elect_namespace="ops"),
        config=CONFIG,
        metrics=metrics,
        clock=clock,
        identity="me",
    )
    try:
        assert process.elector is not None
        assert process.elector.identity == "me"
    finally:
        await process.client.close()
    assert settings().sync_period == DEFAULT_SYNC_PERIOD
    assert settings(sync_period=60).sync_period == 60.0
