#!/usr/bin/env python3
"""Benchmark: the controller at scale - 5,000 nodes in 1,000 NodeUnits, 20 grids, 20,000 children.

Usage: .venv/bin/python hack/bench_scale.py [--nodes 5000] [--units 1000] [--grids 20]
       [--repeats 3] [--quick] (or `hack/bench scale [--quick]`).

Processes as in bench_converge.py: kubesim API-only (`servicegroup sim --workloads false`),
the controller (`servicegroup controller --namespace bench`), and this load generator, which
registers the nodes over HTTP (as kubelets do, 16 requests in flight), starts the controller,
creates the grids at once and follows the children with a watch.

Reported per run: time to converge; writes against the minimum (one apply per child, one
status write per grid); errors - reconcile errors and non-2xx answers from the controller's
own metrics (`controller_runtime_reconcile_errors_total`, `rest_client_requests_total`) and
error-level lines in its log; the controller's CPU and peak RSS (target < 500 MB); its RSS
when ready (nodes cached, no grid) and after converging, and from the difference the memory
per child.

Then the controller is restarted (SIGTERM, start again): the time until every grid is
reconciled, its writes (0) and its peak RSS - a restart lists every child at once.

Per-child memory of the caches is also measured directly, in this process: the children and
nodes are listed from kubesim, passed through the controller's own informer transforms and
stored in its own `Indexer` with the same indices, and tracemalloc counts the bytes. That is
what the controller's caches hold per object, without the rest of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    ControllerOptions,
    Figure,
    all_pass,
    log,
    mib,
    rig,
    write_report,
)

NAMESPACE = "bench"
KEY = "site"
IMAGE = "superedge/echoserver:2.2"


@dataclass(frozen=True)
class Params:
    nodes: int
    units: int
    grids: int
    workers: int
    quiet: float
    timeout: float


def grid(index: int) -> dict[str, Any]:
    name = f"scale-{index:02d}"
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "scale"}},
        "spec": {
            "gridUniqKey": KEY,
            "template": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "echo",
                                "image": IMAGE,
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                            }
                        ]
                    },
                },
            },
        },
    }


def cache_bytes_per_object(body: bytes, *, kind: str) -> float:
    """Bytes the controller's cache holds per object of a LIST answer: parsed as the reflector
    does, passed through the informer's transform, stored in an Indexer with its indices."""
    from servicegroup.informers.store import CONTROLLER_UID_INDEX, Indexer, index_by_controller_uid
    from servicegroup.reconcilers.children import CHILD_TRANSFORM
    from servicegroup.reconcilers.nodeunit import NODE_TRANSFORM

    transform = CHILD_TRANSFORM if kind == "child" else NODE_TRANSFORM
    indexers = {CONTROLLER_UID_INDEX: index_by_controller_uid} if kind == "child" else {}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    indexer = Indexer(indexers=indexers)
    items = orjson.loads(body)["items"]
    for obj in items:
        indexer.add(transform(obj))
    del items, obj  # the untransformed objects are garbage once cached, as in the informer
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / max(len(indexer), 1)


async def one_run(params: Params, details: list[dict[str, Any]]) -> dict[str, float]:
    async with rig(NAMESPACE, "scale") as bench:
        per_unit = max(1, params.nodes // params.units)
        nodes = [
            (f"edge-{i:05d}", {KEY: f"site-{i // per_unit:04d}"} if i // per_unit < params.units
             else {})
            for i in range(params.nodes)
        ]  # fmt: skip
        started = time.monotonic()
        await bench.add_nodes(nodes)
        log(f"scale: {params.nodes} nodes registered in {time.monotonic() - started:.1f} s")
        controller = await bench.start_controller(
            ControllerOptions(namespace=NAMESPACE, workers=params.workers)
        )
        rss_ready = controller.rss()
        cpu_ready = controller.cpu()
        children = params.grids * params.units
        counts0, sim_cpu0 = await bench.counts(), bench.sim_cpu()
        started = time.monotonic()
        api = bench.api
        assert api is not None
        for index in range(params.grids):
            await api.create(bench.grid_path, grid(index))
        converged = await bench.wait(
            lambda: (
                len(bench.children) >= children
                and bench.grids.complete(params.units) >= params.grids
            ),
            timeout=params.timeout,
            what="convergence at scale",
        )
        log(f"scale: {children} children in {converged - started:.1f} s")
        # One Created Event per child is still being posted (one request at a time).
        await bench.until_counts(
            lambda c: c.get("create", "events") - counts0.get("create", "events") >= children,
            timeout=params.timeout,
            what="an Event per child",
        )
        counts, last_write = await bench.quiet(seconds=params.quiet, timeout=params.timeout)
        cpu = controller.cpu() - cpu_ready
        samples = await bench.metrics()
        diff = counts - counts0
        rss_end, peak = controller.rss(), controller.peak_rss()
        reconcile_errors = samples.sum("controller_runtime_reconcile_errors_total")
        bad_codes = sum(
            value
            for (name, labels), value in samples.values.items()
            if name == "rest_client_requests_total"
            and not dict(labels).get("code", "").startswith("2")
        )  # fmt: skip
        error_lines = sum(
            1 for line in controller.log.read_text(errors="replace").splitlines()
            if '"level":"error"' in line or '"level":"critical"' in line
        )  # fmt: skip
        dropped_events = sum(
            1 for line in controller.log.read_text(errors="replace").splitlines()
            if "Event queue full" in line
        )  # fmt: skip
        details.append({"requests": diff.to_json()})
        applies = diff.get("patch", "deployments.apps")
        statuses = diff.get("patch", "deploymentgrids.superedge.io/status")
        events = diff.get("create", "events") + diff.get("patch", "events")
        other = diff.writes() - applies - statuses - events
        # Per-object cache memory, measured on the same objects in this process.
        async with api.http.get(api.url + bench.child_path) as response:
            child_bytes = cache_bytes_per_object(await response.read(), kind="child")
        async with api.http.get(api.url + "/api/v1/nodes") as response:
            node_bytes = cache_bytes_per_object(await response.read(), kind="node")
        run = {
            "seconds": converged - started,
            "settled_seconds": last_write - started,
            "applies": applies,
            "status_writes": statuses,
            "other_writes": other,
            "events": events,
            "ratio": (applies + statuses + other) / (children + params.grids),
            "errors": reconcile_errors + bad_codes + error_lines,
            "dropped_events": dropped_events,
            "cpu_s": cpu,
            "cpu_ms_per_child": cpu / children * 1000,
            "rss_ready_mib": mib(rss_ready),
            "rss_end_mib": mib(rss_end),
            "peak_rss_mib": mib(peak),
            "rss_kib_per_child": (rss_end - rss_ready) / children / 1024,
            "cache_kib_per_child": child_bytes / 1024,
            "cache_kib_per_node": node_bytes / 1024,
            "kubesim_cpu_s": bench.sim_cpu() - sim_cpu0,
        }
        # A restart at this size: list everything, reconcile every grid, write nothing.
        await bench.stop_controller()
        counts0 = await bench.counts()
        started = time.monotonic()
        controller = await bench.start_controller(
            ControllerOptions(namespace=NAMESPACE, workers=params.workers)
        )
        while True:
            total, busy = await bench.reconciles()
            if total >= params.grids and busy == 0:
                break
            bench.check_alive()
            await asyncio.sleep(0.25)
        reconciled = time.monotonic() - started
        counts, _ = await bench.quiet(seconds=params.quiet, timeout=params.timeout)
        run.update(
            {
                "restart_seconds": reconciled,
                "restart_writes": (counts - counts0).writes(),
                "restart_peak_rss_mib": mib(controller.peak_rss()),
            }
        )
        log(
            f"scale: writes {applies}+{statuses}, errors {run['errors']:.0f}, peak RSS "
            f"{run['peak_rss_mib']:.0f} MiB, cache {run['cache_kib_per_child']:.2f} KiB/child"
        )
        return run


FIGURES = [
    Figure("seconds", "time to converge", "s"),
    Figure("settled_seconds", "time until the last write (Events incl.)", "s"),
    Figure("applies", "child applies", fmt="{:,.0f}"),
    Figure("status_writes", "status writes", fmt="{:,.0f}"),
    Figure("ratio", "writes / minimum", fmt="{:.3f}", target=1.0, compare="=="),
    Figure("events", "Events posted", fmt="{:,.0f}"),
    Figure("dropped_events", "Events dropped (queue full)", fmt="{:,.0f}"),
    Figure("errors", "errors (reconcile, non-2xx, error logs)", fmt="{:,.0f}", target=0,
           compare="=="),
    Figure("cpu_s", "controller CPU, creation to last write", "s", fmt="{:.1f}"),
    Figure("cpu_ms_per_child", "controller CPU per child", "ms"),
    Figure("rss_ready_mib", "controller RSS ready (nodes cached)", "MiB", fmt="{:.0f}"),
    Figure("rss_end_mib", "controller RSS after converging", "MiB", fmt="{:.0f}"),
    Figure("peak_rss_mib", "controller peak RSS", "MiB", fmt="{:.0f}", target=500.0,
           compare="<"),
    Figure("rss_kib_per_child", "RSS growth per child", "KiB"),
    Figure("cache_kib_per_child", "cache memory per child (tracemalloc)", "KiB"),
    Figure("cache_kib_per_node", "cache memory per node (tracemalloc)", "KiB"),
    Figure("kubesim_cpu_s", "kubesim CPU, same window", "s", fmt="{:.1f}"),
    Figure("restart_seconds", "restart: spawn to every grid reconciled", "s"),
    Figure("restart_writes", "restart: writes", fmt="{:,.0f}", target=0, compare="=="),
    Figure("restart_peak_rss_mib", "restart: peak RSS", "MiB", fmt="{:.0f}", target=500.0,
           compare="<"),
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=None, help="default 5000 (quick 500)")
    parser.add_argument("--units", type=int, default=None, help="default 1000 (quick 100)")
    parser.add_argument("--grids", type=int, default=None, help="default 20 (quick 5)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quiet", type=float, default=None, help="s without a write (3; 1)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--suffix", default="", help="appended to the report name")
    args = parser.parse_args()
    quick = args.quick
    params = Params(
        nodes=args.nodes or (500 if quick else 5000),
        units=args.units or (100 if quick else 1000),
        grids=args.grids or (5 if quick else 20),
        workers=args.workers,
        quiet=args.quiet or (1.0 if quick else 3.0),
        timeout=args.timeout,
    )
    repeats = args.repeats or (1 if quick else 3)
    runs = []
    details: list[dict[str, Any]] = []
    for index in range(repeats):
        log(f"scale run {index + 1}/{repeats}: {params}")
        runs.append(asyncio.run(one_run(params, details)))
    report = write_report(
        "scale" + args.suffix,
        figures=FIGURES,
        runs=runs,
        details=details,
        params=vars(params) | {"children": params.grids * params.units},
        quick=quick,
    )
    return 0 if all_pass(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())
