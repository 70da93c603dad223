"""`servicegroup wrapper` as a real process: flags, listener, probes, metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from wrap_support import SLICES_PATH, endpoint_slice, service

from servicegroup.kubesim.app import KubeSim

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def poll_status(http: aiohttp.ClientSession, url: str, *, timeout: float = 30.0) -> int:
    """Poll `url` until it answers 200 (or the deadline passes); the last status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status = 0
    while loop.time() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url) as response:
                status = response.status
                if status == 200:
                    return status
        await asyncio.sleep(0.05)
    return status


async def test_the_command_serves_probes_metrics_and_stops_on_sigterm(
    sim: KubeSim, tmp_path: Path
) -> None:
    api = sim.client(manager="test")
    api.create("services", service("web"))
    api.create(
        "endpointslices",
        endpoint_slice("web-1", "web", [("10.1.0.1", "edge-1b"), ("10.3.0.1", "edge-3a")]),
    )
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    port, probes = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "servicegroup",
        "wrapper",
        "--kubeconfig",
        str(kubeconfig),
        "--bind-address",
        f"127.0.0.1:{port}",
        "--health-probe-bind-address",
        f"127.0.0.1:{probes}",
        "--metrics-bind-address",
        f"127.0.0.1:{probes}",
        "--log-format",
        "json",
        cwd=ROOT,
        env={**os.environ, "SERVICEGROUP_NODE_NAME": "edge-1a"},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            assert await poll_status(http, f"http://127.0.0.1:{probes}/readyz") == 200
            assert await poll_status(http, f"http://127.0.0.1:{probes}/healthz") == 200
            async with http.get(f"http://127.0.0.1:{port}{SLICES_PATH}") as response:
                body = await response.json()
            (slice_,) = [i for i in body["items"] if i["metadata"]["name"] == "web-1"]
            assert [e["nodeName"] for e in slice_["endpoints"]] == ["edge-1b"]
            async with http.get(f"http://127.0.0.1:{probes}/metrics") as response:
                metrics = await response.text()
            assert "servicegroup_wrapper_endpoints_kept 1.0" in metrics
            assert "servicegroup_wrapper_endpoints_dropped 1.0" in metrics
            assert 'servicegroup_wrapper_upstream_relists_total{resource="nodes"} 1.0' in metrics
            # Not ours: proxied to the API server.
            async with http.get(f"http://127.0.0.1:{port}/api/v1/nodes/edge-1a") as response:
                assert (await response.json())["metadata"]["labels"]["zone"] == "zone-1"
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
