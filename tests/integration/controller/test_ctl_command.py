"""`servicegroup controller` as a process: probes, metrics, reconciling, clean SIGTERM exit."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from ctl_support import SimCluster

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


async def test_controller_command(ctl_cluster: SimCluster, tmp_path: Path) -> None:
    env = ctl_cluster
    kubeconfig = env.sim.write_kubeconfig(tmp_path / "kubeconfig")
    metrics_port, health_port = free_port(), free_port()
    log = (tmp_path / "controller.log").open("wb")
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
        f"127.0.0.1:{health_port}",
        "--log-format",
        "json",
        "--nodeunit-grace-period",
        "0s",
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:

        async def ready() -> bool:
            assert process.returncode is None, (tmp_path / "controller.log").read_text()
            return (await get(f"http://127.0.0.1:{health_port}/readyz"))[0] == 200

        await env.wait_for(ready, what="/readyz", timeout=30)
        assert (await get(f"http://127.0.0.1:{health_port}/healthz"))[0] == 200

        await env.create(env.grid("deploymentgrid-demo.yaml"))
        for zone in env.zones:
            await env.wait_for(lambda z=zone: env.get("deployments", f"deploymentgrid-demo-{z}"))
        await env.wait_for(lambda: env.status("deploymentgrids", "deploymentgrid-demo"))
        status, text = await get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert 'servicegroup_nodeunits{key="zone"} 3.0' in text
        assert (
            'servicegroup_child_writes_total{kind="DeploymentGrid",operation="apply"} 3.0' in text
        )
        assert 'controller_runtime_reconcile_total{controller="deploymentgrid"' in text
        assert env.writes() > 0  # counted under the User-Agent product "servicegroup"

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
