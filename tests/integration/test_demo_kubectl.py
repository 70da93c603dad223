"""The demo's tables are what `kubectl get` prints: the same commands, side by side.

kubesim runs on a frozen clock so that the AGE column cannot differ between the two reads.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiohttp
import pytest

from servicegroup.api.crds import crd_manifests
from servicegroup.clock import FakeClock
from servicegroup.demo import manifests
from servicegroup.demo.tables import TABLE_ACCEPT, GetCommand, format_table
from servicegroup.kubesim.app import KubeSim, NodeSpec

pytestmark = pytest.mark.kubectl

COMMANDS = [
    GetCommand("nodes", label_columns=("zone",)),
    GetCommand("nodes", selector="zone=zone-1", label_columns=("zone",)),
    GetCommand("deploy", wide=True),
    GetCommand("deploy"),
    GetCommand("svc", wide=True),
    GetCommand("dg"),
    GetCommand("sg"),
    GetCommand("sts", wide=True),
    GetCommand("pods", wide=True, selector="statefulset.kubernetes.io/pod-name"),
]


async def kubectl(kubeconfig: Path, command: GetCommand) -> list[str]:
    args = command.text().split()[1:]
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    # kubectl says "No resources found" on stderr.
    text = stdout.decode() or stderr.decode()
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.timeout(180)
async def test_demo_tables_match_kubectl_get(tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    nodes = [NodeSpec(f"node-{u}{n}", {"zone": f"zone-{u}"}) for u in range(2) for n in "ab"]
    async with KubeSim(clock=FakeClock(), nodes=nodes) as sim, aiohttp.ClientSession() as http:
        api = sim.client(manager="kubectl")
        for crd in crd_manifests():
            api.create("customresourcedefinitions", crd)
        await sim.settle()
        api.create("deploymentgrids", manifests.load("deploymentgrid-demo.yaml"))
        api.create("servicegrids", manifests.load("servicegrid-demo.yaml"))
        template = manifests.load("deploymentgrid-demo.yaml")["spec"]["template"]
        api.create(
            "deployments",
            {"metadata": {"name": "echo-zone-0"}, "spec": template},
            namespace="default",
        )
        api.create(
            "services",
            {
                "metadata": {"name": "echo-svc", "annotations": {"topologyKeys": '["zone"]'}},
                "spec": {"selector": {"appGrid": "echo"}, "ports": [{"port": 80}]},
            },
            namespace="default",
        )
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        for command in COMMANDS:
            path, params = command.request()
            async with http.get(
                sim.url + path, params=params, headers={"Accept": TABLE_ACCEPT}
            ) as response:
                assert response.status == 200
                table = await response.json()
            ours = format_table(
                table,
                wide=command.wide,
                label_columns=command.label_columns,
                namespace="default" if command.kind.namespaced else None,
            )
            assert ours == await kubectl(kubeconfig, command), command.text()
