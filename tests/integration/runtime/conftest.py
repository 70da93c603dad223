"""Fixtures of the runtime-against-kubesim suite.

`rt_sim` is a fresh in-process KubeSim on a free port of 127.0.0.1 (short bookmark interval,
two nodes); `rt_client` is the real `KubeClient` talking to it over HTTP; `rt_ns` is a fresh
namespace in it. Fixture names carry the `rt_` prefix so they never shadow another suite's.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from rt_support import USER_AGENT, CapturedLogs

from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import NAMESPACES
from servicegroup.kubesim.app import KubeSim, NodeSpec
from servicegroup.metrics import Metrics


@pytest.fixture
async def rt_sim() -> AsyncIterator[KubeSim]:
    sim = KubeSim(
        nodes=[NodeSpec("node-a", {"zone": "a"}), NodeSpec("node-b", {"zone": "b"})],
        bookmark_interval=0.2,
        gc_dangling_delay=0.05,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def rt_client(rt_sim: KubeSim, metrics: Metrics) -> AsyncIterator[KubeClient]:
    async with KubeClient(
        config=ClientConfig.for_server(rt_sim.url),
        metrics=metrics,
        user_agent=USER_AGENT,
        request_timeout=10.0,
    ) as client:
        yield client


@pytest.fixture
async def rt_ns(rt_client: KubeClient) -> str:
    name = f"rt-{secrets.token_hex(4)}"
    await rt_client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


@pytest.fixture
def rt_logs() -> CapturedLogs:
    return CapturedLogs()
