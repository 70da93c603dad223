"""Fixtures of the DNS daemon's integration suite.

`dns_cluster` is an in-process KubeSim on a free port with simulated workloads (scheduler,
kubelets giving pods IPs and readiness, the StatefulSet controller), the servicegroup CRDs
and the real grid controller (`servicegroup controller`, built as in production). Nodes:
node-1 in zone-1, node-2 in zone-2, node-3 and node-4 in zone-3. Fixture names carry the
`dns_` prefix so they never shadow another suite's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dns_support import Cluster

from servicegroup.api.crds import crd_manifests
from servicegroup.controller_command import build_controller
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.app import KubeSim, NodeSpec
from servicegroup.kubesim.workloads import WorkloadOptions, Workloads
from servicegroup.settings import ControllerSettings

NODES = (
    NodeSpec("node-1", {"zone": "zone-1"}),
    NodeSpec("node-2", {"zone": "zone-2"}),
    NodeSpec("node-3", {"zone": "zone-3"}),
    NodeSpec("node-4", {"zone": "zone-3"}),
)


@pytest.fixture
async def dns_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    sim = KubeSim(nodes=NODES, bookmark_interval=1.0, gc_dangling_delay=0.05)
    await sim.start()
    try:
        workloads = Workloads(
            engine=sim.engine,
            options=WorkloadOptions(pod_start_delay=0.02, termination_grace=0.05),
        )
        sim.start_task(workloads.run(), name="kubesim-workloads")
        api = sim.client(manager="dns-test")
        for crd in crd_manifests():
            api.create("customresourcedefinitions", crd)
        await sim.settle()
        controller = build_controller(
            ControllerSettings(
                metrics_bind_address="0", health_probe_bind_address="0", log_format="console"
            ),
            config=ClientConfig.for_server(sim.url),
        )
        task = asyncio.create_task(controller.manager.run(), name="grid-controller")
        try:
            yield Cluster(sim=sim, workloads=workloads, api=api, workdir=tmp_path)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await sim.stop()
