#!/usr/bin/env python3
"""Benchmark: how fast, and with how many writes, the controller converges a large cluster.

Usage: .venv/bin/python hack/bench_converge.py [--grids 100] [--units 20] [--quick]
(or `hack/bench converge [--quick]`).

KubeSim runs in this process in API-only mode (no workload simulation: nothing but the
controller writes), with `--units` NodeUnits of label `zone` (`--nodes-per-unit` nodes each)
and the grid CRDs. The controller runs as a separate process, exactly as deployed:
`python -m servicegroup controller --kubeconfig ...`. Once its /readyz says its caches are
synced, `--grids` DeploymentGrids are created at once (in-process, not counted), and the
clock runs until the cluster has converged:

- every grid's `units * grids` Deployments exist, and
- every grid's status has been written with all its units in `status.states`.

Then the controller is left alone until it makes no write for `--quiet` seconds (so writes
made after convergence count too), and it is asked to stop (SIGTERM).

Reported: the time to converge; the controller's writes by verb and resource (kubesim's
request accounting, User-Agent product `servicegroup`) against the minimum (one apply per
child, one status write per grid), Events separately; the controller's CPU seconds
(utime+stime from /proc/<pid>/stat) and peak RSS (VmHWM from /proc/<pid>/status). A table is
printed and everything is written to .bench/converge.json (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servicegroup.api.crds import crd_manifests  # noqa: E402
from servicegroup.kubesim.accounting import WRITE_VERBS  # noqa: E402
from servicegroup.kubesim.app import KubeSim, NodeSpec  # noqa: E402
from servicegroup.kubesim.store import StoreEvent  # noqa: E402

NAMESPACE = "bench"
KEY = "zone"
PRODUCT = "servicegroup"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def grid(index: int) -> dict[str, Any]:
    name = f"grid-{index:04d}"
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "converge"}},
        "spec": {
            "gridUniqKey": KEY,
            "template": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "echo",
                                "image": "superedge/echoserver:2.2",
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            }
                        ]
                    },
                },
            },
        },
    }


class Progress:
    """Follows kubesim's store (synchronously, no polling) to see convergence happen."""

    def __init__(self, *, grids: int, units: int) -> None:
        self.grids = grids
        self.units = units
        self.deployments: set[str] = set()
        self.complete_status: set[str] = set()
        self.converged_at: float | None = None

    def on_event(self, event: StoreEvent) -> None:
        obj = event.obj
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if meta.get("namespace") != NAMESPACE:
            return
        name = str(meta.get("name"))
        if kind == "Deployment":
            if event.type == "DELETED":
                self.deployments.discard(name)
            else:
                self.deployments.add(name)
        elif kind == "DeploymentGrid":
            status = obj.get("status") or {}
            if status.get("units") == self.units and len(status.get("states") or {}) == self.units:
                self.complete_status.add(name)
            else:
                self.complete_status.discard(name)
        if self.converged_at is None and self.done():
            self.converged_at = time.monotonic()

    def done(self) -> bool:
        return (
            len(self.deployments) == self.grids * self.units
            and len(self.complete_status) == self.grids
        )


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (11 and 12 after the comm).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(port: int, process: asyncio.subprocess.Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"controller exited with {process.returncode}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("controller not ready in time")
            await asyncio.sleep(0.05)


def controller_writes(sim: KubeSim) -> dict[str, int]:
    writes: dict[str, int] = {}
    for entry in sim.requests.snapshot():
        if entry.user_agent != PRODUCT or entry.verb not in WRITE_VERBS:
            continue
        what = entry.resource + (f"/{entry.subresource}" if entry.subresource else "")
        key = f"{entry.verb} {what}"
        writes[key] = writes.get(key, 0) + entry.count
    return writes


async def run(args: argparse.Namespace) -> dict[str, Any]:
    grids, units = args.grids, args.units
    nodes = [
        NodeSpec(f"node-{u:03d}-{n}", {KEY: f"unit-{u:03d}"})
        for u in range(units)
        for n in range(args.nodes_per_unit)
    ]
    async with KubeSim(nodes=nodes) as sim:
        api = sim.client(manager="bench")
        for crd in crd_manifests():
            api.create("customresourcedefinitions", crd)
        api.create("namespaces", {"metadata": {"name": NAMESPACE}})
        await sim.settle()
        tmp = Path(tempfile.mkdtemp(prefix="bench-converge-"))
        kubeconfig = sim.write_kubeconfig(tmp / "kubeconfig")
        port = free_port()
        log_path = tmp / "controller.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "servicegroup",
                "controller",
                "--kubeconfig",
                str(kubeconfig),
                "--metrics-bind-address",
                "0",
                "--health-probe-bind-address",
                f"127.0.0.1:{port}",
                "--log-format",
                "json",
                "--log-level",
                "warning",
                "--workers",
                str(args.workers),
                "--namespaces",
                NAMESPACE,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
            try:
                await wait_ready(port, process, timeout=60)
                cpu_ready = proc_cpu_seconds(process.pid)
                rss_ready = proc_status(process.pid, "VmRSS")
                progress = Progress(grids=grids, units=units)
                sim.store.add_listener(progress.on_event)
                own_cpu_start = time.process_time()
                started = time.monotonic()
                for index in range(grids):
                    api.create("deploymentgrids", grid(index), namespace=NAMESPACE)
                while progress.converged_at is None:
                    if time.monotonic() - started > args.timeout:
                        raise TimeoutError(
                            f"not converged in {args.timeout}s: "
                            f"{len(progress.deployments)} Deployments, "
                            f"{len(progress.complete_status)} complete statuses"
                        )
                    if process.returncode is not None:
                        raise RuntimeError(f"controller exited with {process.returncode}")
                    await asyncio.sleep(0.05)
                converge_seconds = progress.converged_at - started
                cpu_converged = proc_cpu_seconds(process.pid)
                # Let it finish whatever it still wants to write.
                last, quiet_since = sum(controller_writes(sim).values()), time.monotonic()
                while time.monotonic() - quiet_since < args.quiet:
                    await asyncio.sleep(0.1)
                    current = sum(controller_writes(sim).values())
                    if current != last:
                        last, quiet_since = current, time.monotonic()
                settle_seconds = time.monotonic() - started
                cpu_end = proc_cpu_seconds(process.pid)
                peak_rss = proc_status(process.pid, "VmHWM")
                rss_end = proc_status(process.pid, "VmRSS")
                kubesim_cpu = time.process_time() - own_cpu_start
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(process.wait(), timeout=20)
                    except TimeoutError:
                        process.kill()
                        await process.wait()
        sim.store.remove_listener(progress.on_event)

    writes = controller_writes(sim)
    events = sum(v for k, v in writes.items() if " events" in k)
    children = writes.get("patch deployments.apps", 0)
    statuses = writes.get("patch deploymentgrids.superedge.io/status", 0)
    other = sum(writes.values()) - events - children - statuses
    minimum = grids * units + grids
    return {
        "grids": grids,
        "units": units,
        "nodes": len(nodes),
        "workers": args.workers,
        "converge_seconds": round(converge_seconds, 3),
        "settled_seconds": round(settle_seconds, 3),
        "writes": {
            "child_applies": children,
            "status_writes": statuses,
            "other": other,
            "total_without_events": children + statuses + other,
            "minimum": minimum,
            "ratio_to_minimum": round((children + statuses + other) / minimum, 4),
            "events": events,
            "by_verb_resource": dict(sorted(writes.items())),
        },
        "controller": {
            "cpu_seconds_startup": round(cpu_ready, 3),
            "cpu_seconds_converge": round(cpu_converged - cpu_ready, 3),
            "cpu_seconds_total": round(cpu_end, 3),
            "rss_ready_mib": round(rss_ready / 2**20, 1),
            "rss_end_mib": round(rss_end / 2**20, 1),
            "peak_rss_mib": round(peak_rss / 2**20, 1),
        },
        "kubesim_cpu_seconds": round(kubesim_cpu, 3),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "controller_log": str(log_path),
    }


def print_table(report: dict[str, Any]) -> None:
    w = report["writes"]
    c = report["controller"]
    rows = [
        ("grids x units", f"{report['grids']} x {report['units']} ({report['nodes']} nodes)"),
        ("time to converge", f"{report['converge_seconds']:.2f} s"),
        ("time until no more writes", f"{report['settled_seconds']:.2f} s"),
        ("child applies", str(w["child_applies"])),
        ("status writes", str(w["status_writes"])),
        ("other writes", str(w["other"])),
        ("writes / minimum", f"{w['total_without_events']} / {w['minimum']} "
                             f"(x{w['ratio_to_minimum']})"),
        ("Events posted", str(w["events"])),
        ("controller CPU (converge)", f"{c['cpu_seconds_converge']:.2f} s"),
        ("controller CPU (total)", f"{c['cpu_seconds_total']:.2f} s"),
        ("controller RSS ready / end", f"{c['rss_ready_mib']} / {c['rss_end_mib']} MiB"),
        ("controller peak RSS", f"{c['peak_rss_mib']} MiB"),
        ("kubesim CPU (same window)", f"{report['kubesim_cpu_seconds']:.2f} s"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for key, count in w["by_verb_resource"].items():
        print(f"  {key:<{width}}{count:>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grids", type=int, default=100)
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--nodes-per-unit", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds without a write")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--quick", action="store_true", help="10 grids x 5 units")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "converge.json")
    args = parser.parse_args()
    if args.quick:
        args.grids, args.units = 10, 5
    report = asyncio.run(run(args))
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
