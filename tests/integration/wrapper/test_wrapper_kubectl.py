"""kubectl pointed at the wrapper: `get endpointslices -w` lists, then follows changes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

import pytest
from wrap_support import endpoint_slice, eventually, running_wrapper, service

from servicegroup.kubesim.app import KubeSim

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH"),
]


async def test_kubectl_get_endpointslices_watch(sim: KubeSim, tmp_path: Path) -> None:
    api = sim.client(manager="test")
    api.create("services", service("web"))
    api.create(
        "endpointslices",
        endpoint_slice("web-local", "web", [("10.1.0.1", "edge-1b"), ("10.2.0.1", "edge-2a")]),
    )
    empty = tmp_path / "kubeconfig"
    empty.write_text("")
    env = {**os.environ, "KUBECONFIG": str(empty), "HOME": str(tmp_path)}
    async with running_wrapper(sim.url, "edge-1a") as w:
        process = await asyncio.create_subprocess_exec(
            "kubectl",
            "--server",
            w.url,
            "get",
            "endpointslices",
            "--namespace",
            "default",
            "-w",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        lines: list[str] = []

        async def read() -> None:
            assert process.stdout is not None
            while line := await process.stdout.readline():
                # NAME is the first column of kubectl's human-readable output.
                lines.append(line.decode().split(" ", 1)[0])

        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(read(), name="kubectl-reader")
                await eventually(
                    lambda: "web-local" in lines,
                    timeout=20,
                    what="kubectl's list",
                )
                await eventually(
                    lambda: (
                        w.sample(
                            "servicegroup_wrapper_watchers",
                            {"resource": "endpointslices.discovery.k8s.io"},
                        )
                        == 1
                    ),
                    timeout=20,
                    what="kubectl's watch",
                )
                api.create("endpointslices", endpoint_slice("web-new", "web", [("10.1.0.9", "x")]))
                await eventually(
                    lambda: "web-new" in lines,
                    timeout=20,
                    what="the watch event in kubectl's output",
                )
                reader.cancel()
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        # The slice kubectl saw is the filtered one (only edge-1b is in edge-1a's zone).
        served = w.wrapper.caches.endpointslices.get("default/web-local")
        assert served is not None
        assert [e["addresses"] for e in served["endpoints"]] == [["10.1.0.1"]]
