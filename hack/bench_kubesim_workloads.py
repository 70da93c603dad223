#!/usr/bin/env python3
"""Benchmark: kubesim running workloads at scale (`hack/bench kubesim-workloads`).

Starts an in-process KubeSim with its workload simulation, registers N nodes (spread over
NodeUnits by a `bench.servicegroup.dev/unit` label and over three zones), creates D
Deployments of R replicas (each pinned to one NodeUnit by nodeSelector, as servicegroup's
children are) and S Services selecting them, then measures:
- the time until every pod is Running and Ready,
- the time until every Service's EndpointSlices list all its ready pods,
- kubesim's peak memory (the process's peak RSS: the benchmark client is in-process and
  keeps nothing but counters),
- writes per simulated component.

Usage: .venv/bin/python hack/bench_kubesim_workloads.py [--nodes 500 --deployments 1000
       --replicas 2 --services 1000] [--quick] [--repeats N] [--output PATH]
Each run is a fresh process (peak RSS is per process): 3 runs (--quick: a small one). Prints
a table per run, then median/min/max over the runs, and writes JSON (default
.bench/kubesim-workloads.json, every run's full result under `details`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from benchlib import Figure, all_pass, write_report  # noqa: E402

from servicegroup.kubesim.app import KubeSim  # noqa: E402
from servicegroup.kubesim.workloads import NodeSpec, WorkloadOptions, Workloads  # noqa: E402
from servicegroup.kubesim.workloads.index import PODS, SLICES  # noqa: E402

UNIT_LABEL = "bench.servicegroup.dev/unit"
NAMESPACE = "default"
TARGET_SECONDS = 60.0
TARGET_MEMORY_MIB = 1536.0


def peak_rss_mib() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return usage / 1024 / (1024 if platform.system() == "Darwin" else 1)


def current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 1024 / 1024
    except OSError:
        return peak_rss_mib()


def deployment(index: int, *, replicas: int, units: int) -> dict[str, Any]:
    name = f"app-{index:04d}"
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {UNIT_LABEL: f"unit-{index % units:03d}"},
                    "containers": [
                        {
                            "name": "main",
                            "image": "registry.k8s.io/pause:3.9",
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ],
                },
            },
        },
    }


def service(index: int) -> dict[str, Any]:
    name = f"app-{index:04d}"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


class Progress:
    """Counts read straight from the store (no copies): ready pods and populated Services."""

    def __init__(self, sim: KubeSim, *, services: int, replicas: int, deployments: int) -> None:
        self.sim = sim
        self.services = services
        self.replicas = replicas
        self.deployments = deployments

    def ready_pods(self) -> int:
        count = 0
        for pod in self.sim.store.items(PODS, NAMESPACE):
            status = pod.get("status") or {}
            if status.get("phase") != "Running":
                continue
            for cond in status.get("conditions") or ():
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    count += 1
                    break
        return count

    def populated_services(self) -> int:
        ready: dict[str, int] = {}
        for slice_ in self.sim.store.items(SLICES, NAMESPACE):
            service = (slice_["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
            if not service:
                continue
            for endpoint in slice_.get("endpoints") or ():
                if (endpoint.get("conditions") or {}).get("ready"):
                    ready[service] = ready.get(service, 0) + 1
        # Services beyond the Deployments select nothing: an (empty) placeholder is "populated".
        wanted = min(self.services, self.deployments)
        full = sum(1 for name, count in ready.items() if count >= self.replicas)
        return min(full, wanted) + max(0, self.services - self.deployments)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    baseline = current_rss_mib()
    options = WorkloadOptions(pod_start_delay=args.start_delay)
    total_pods = args.deployments * args.replicas
    async with KubeSim(history_size=args.history) as sim:
        workloads = Workloads(engine=sim.engine, options=options)
        units = max(1, args.nodes // args.nodes_per_unit)
        setup_start = time.perf_counter()
        for i in range(args.nodes):
            workloads.nodes.add_node(
                NodeSpec(
                    f"node-{i:04d}",
                    {
                        UNIT_LABEL: f"unit-{i % units:03d}",
                        "topology.kubernetes.io/zone": f"zone-{i % 3}",
                    },
                )
            )
        sim.start_task(workloads.run(), name="kubesim-workloads")
        nodes_seconds = time.perf_counter() - setup_start
        client = sim.client(manager="bench")
        progress = Progress(
            sim, services=args.services, replicas=args.replicas, deployments=args.deployments
        )

        start = time.perf_counter()
        # Objects arrive in small batches, as from clients, while the controllers work.
        for i in range(max(args.deployments, args.services)):
            if i < args.deployments:
                client.create(
                    "deployments.apps", deployment(i, replicas=args.replicas, units=units)
                )
            if i < args.services:
                client.create("services", service(i))
            if i % 20 == 19:
                await asyncio.sleep(0)
        created = time.perf_counter() - start

        pods_ready_at: float | None = None
        slices_at: float | None = None
        deadline = start + args.timeout
        while time.perf_counter() < deadline:
            if pods_ready_at is None and progress.ready_pods() >= total_pods:
                pods_ready_at = time.perf_counter() - start
            if slices_at is None and progress.populated_services() >= args.services:
                slices_at = time.perf_counter() - start
            if pods_ready_at is not None and slices_at is not None:
                break
            await asyncio.sleep(0.25)
        converged = pods_ready_at is not None and slices_at is not None
        result = {
            "benchmark": "kubesim-workloads",
            "params": {
                "nodes": args.nodes,
                "deployments": args.deployments,
                "replicas": args.replicas,
                "services": args.services,
                "node_units": units,
                "pod_start_delay": args.start_delay,
            },
            "converged": converged,
            "seconds": {
                "register_nodes": round(nodes_seconds, 3),
                "create_objects": round(created, 3),
                "all_pods_ready": round(pods_ready_at, 3) if pods_ready_at else None,
                "all_slices_populated": round(slices_at, 3) if slices_at else None,
            },
            "memory_mib": {
                "baseline_rss": round(baseline, 1),
                "peak_rss": round(peak_rss_mib(), 1),
            },
            "objects": {
                "pods": sim.store.count(PODS),
                "ready_pods": progress.ready_pods(),
                "endpointslices": sim.store.count(SLICES),
                "resource_version": sim.store.resource_version,
            },
            "components": workloads.stats(),
            "targets": {"seconds": TARGET_SECONDS, "memory_mib": TARGET_MEMORY_MIB},
            "python": platform.python_version(),
        }
    return result


def table(result: dict[str, Any]) -> str:
    seconds = result["seconds"]
    memory = result["memory_mib"]
    params = result["params"]

    def fmt(value: float | None) -> str:
        return "timeout" if value is None else f"{value:.2f} s"

    worst = max(
        (v for v in (seconds["all_pods_ready"], seconds["all_slices_populated"]) if v),
        default=None,
    )
    ok_time = worst is not None and result["converged"] and worst < TARGET_SECONDS
    ok_memory = memory["peak_rss"] < TARGET_MEMORY_MIB
    rows = [
        (
            "scenario",
            f"{params['nodes']} nodes, {params['deployments']} Deployments x "
            f"{params['replicas']}, {params['services']} Services",
        ),
        ("objects created in", fmt(seconds["create_objects"])),
        ("all pods Ready after", fmt(seconds["all_pods_ready"])),
        ("all slices populated after", fmt(seconds["all_slices_populated"])),
        ("peak RSS", f"{memory['peak_rss']:.0f} MiB (baseline {memory['baseline_rss']:.0f} MiB)"),
        ("writes (resourceVersion)", str(result["objects"]["resource_version"])),
        ("target time < 60 s", "PASS" if ok_time else "FAIL"),
        ("target memory < 1.5 GiB", "PASS" if ok_memory else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append(f"{'component'.ljust(26)}{'writes':>9}{'passes':>9}{'errors':>8}")
    for name, stats in result["components"].items():
        lines.append(
            f"{name.ljust(26)}{stats['writes']:>9}{stats['passes']:>9}{stats['errors']:>8}"
        )
    return "\n".join(lines)


FIGURES = [
    Figure("create_objects", "objects created in", "s"),
    Figure("all_pods_ready", "all pods Ready after", "s", target=TARGET_SECONDS, compare="<"),
    Figure("all_slices_populated", "all slices populated after", "s", target=TARGET_SECONDS,
           compare="<"),
    Figure("peak_rss", "kubesim peak RSS", "MiB", fmt="{:.0f}", target=TARGET_MEMORY_MIB,
           compare="<"),
    Figure("writes", "writes (resourceVersion)", fmt="{:,.0f}"),
    Figure("converged", "converged", fmt="{:.0f}", target=1.0, compare="=="),
]  # fmt: skip


def figures_of(result: dict[str, Any]) -> dict[str, float]:
    seconds = result["seconds"]
    return {
        "create_objects": seconds["create_objects"],
        "all_pods_ready": seconds["all_pods_ready"] or float("inf"),
        "all_slices_populated": seconds["all_slices_populated"] or float("inf"),
        "peak_rss": result["memory_mib"]["peak_rss"],
        "writes": result["objects"]["resource_version"],
        "converged": 1.0 if result["converged"] else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--nodes-per-unit", type=int, default=10)
    parser.add_argument("--start-delay", type=float, default=0.05, help="pod start delay (s)")
    parser.add_argument("--history", type=int, default=10_000, help="watch history per resource")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true", help="a small run (50/100/2/100)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--run-once", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / ".bench" / "kubesim-workloads.json",
        help="where to write the JSON result",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.deployments, args.services = 50, 100, 100
    if args.run_once is not None:  # one run in this process, its result to a file
        result = asyncio.run(run(args))
        args.run_once.write_text(json.dumps(result) + "\n")
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    results = []
    for index in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run.json"
            forwarded = [
                f"--{name.replace('_', '-')}={getattr(args, name)}"
                for name in ("nodes", "deployments", "replicas", "services", "nodes_per_unit",
                             "start_delay", "history", "timeout")
            ]  # fmt: skip
            subprocess.run(
                [sys.executable, __file__, *forwarded, "--run-once", str(out)], check=True
            )
            result = json.loads(out.read_text())
        print(f"-- run {index + 1}/{repeats}")
        print(table(result), flush=True)
        results.append(result)
    report = write_report(
        "kubesim-workloads",
        figures=FIGURES,
        runs=[figures_of(r) for r in results],
        details=results,
        params=results[0]["params"],
        quick=args.quick,
        out=args.output,
    )
    return 0 if all_pass(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())
