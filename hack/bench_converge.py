#!/usr/bin/env python3
"""Benchmark: the controller converging, at rest, growing a NodeUnit, and rolling a template.

Usage: .venv/bin/python hack/bench_converge.py [--scenarios converge,rest,new-unit,
       template-edit] [--grids 100] [--units 20] [--repeats 3] [--quick]
(or `hack/bench converge rest new-unit template-edit [--quick]`).

Three processes, as deployed: kubesim in API-only mode (`servicegroup sim --workloads
false`: nothing but the controller writes), the controller (`servicegroup controller
--namespace bench`, metrics scraped for reconcile counts), and this process, the load
generator, which creates the nodes and grids over HTTP and follows Deployments and grids
with two watches to see progress. Every request count is kubesim's accounting of the
controller's requests (User-Agent product `servicegroup`); CPU and peak RSS are the
controller process's (/proc/<pid>/stat utime+stime, /proc/<pid>/status VmHWM).

Cluster: `--units` NodeUnits of label `zone` (`--nodes-per-unit` nodes each), plus one
unlabelled spare node per new-unit sample. Each of the `--grids` DeploymentGrids has a
default template and a pool template `canary` used by the first `--canary-units` units.

Phases, in this order, on one cluster (each repetition on a fresh one):
1. converge: all grids created at once; the clock stops when every child exists and every
   grid's status lists all its units; then the controller is left until it makes no write
   for `--quiet` s. Minimum writes: one apply per child and one status write per grid
   (children's state changes once: they appear); Events are counted apart.
2. rest: (a) the next periodic full resync (the controller runs with `--sync-period`): every
   grid reconciled again, 0 writes; (b) the controller is stopped (SIGTERM) and started
   again: it lists everything, reconciles every grid, 0 writes.
3. new-unit: a spare node is labelled into a new unit; time until all `--grids` new
   children exist (watch), one sample per spare node; writes = one apply + one status write
   per grid.
4. template-edit: the `canary` image of every grid is changed (one JSON patch per grid);
   exactly grids x canary-units applies.

Each phase's figures (median, min, max over the repetitions; new-unit over every sample)
are printed and written to .bench/<phase>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    ControllerOptions,
    ControllerRig,
    Counts,
    Figure,
    Profiler,
    all_pass,
    log,
    mib,
    rig,
    write_report,
)

NAMESPACE = "bench"
KEY = "zone"
IMAGE = "superedge/echoserver:2.2"
CANARY_IMAGE = "superedge/echoserver:2.3"
EDITED_IMAGE = "superedge/echoserver:2.4"
APPLY = ("patch", "deployments.apps")
STATUS = ("patch", "deploymentgrids.superedge.io/status")
PHASES = ("converge", "rest", "new-unit", "template-edit")


@dataclass(frozen=True)
class Params:
    grids: int
    units: int
    nodes_per_unit: int
    canary_units: int
    samples: int
    workers: int
    sync_period: float
    quiet: float
    timeout: float
    profile: Path | None = None


def unit_name(index: int) -> str:
    return f"unit-{index:03d}"


def deployment_spec(app: str, image: str) -> dict[str, Any]:
    return {
        "replicas": 2,
        "selector": {"matchLabels": {"app": app}},
        "template": {
            "metadata": {"labels": {"app": app}},
            "spec": {
                "containers": [
                    {
                        "name": "echo",
                        "image": image,
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    }
                ]
            },
        },
    }


def grid(index: int, params: Params) -> dict[str, Any]:
    name = f"grid-{index:04d}"
    return {
        "apiVersion": "superedge.io/v1",
        "kind": "DeploymentGrid",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "converge"}},
        "spec": {
            "gridUniqKey": KEY,
            "template": deployment_spec(name, IMAGE),
            "templatePool": {"canary": deployment_spec(name, CANARY_IMAGE)},
            "templates": {unit_name(u): "canary" for u in range(params.canary_units)},
        },
    }


def write_figures(counts: Counts) -> dict[str, float]:
    """Applies, status writes, other writes (Events apart), Events, requests by verb."""
    applies, statuses = counts.get(*APPLY), counts.get(*STATUS)
    events = counts.get("create", "events") + counts.get("patch", "events")
    other = counts.writes() - applies - statuses - events
    out: dict[str, float] = {
        "applies": applies,
        "status_writes": statuses,
        "other_writes": other,
        "events": events,
        "requests_total": counts.total(),
    }
    for verb in ("get", "list", "watch", "create", "patch", "update", "delete"):
        out[f"requests_{verb}"] = counts.by_verb().get(verb, 0)
    return out


async def converge(bench: ControllerRig, params: Params) -> dict[str, float]:
    api, controller = bench.api, bench.controller
    assert api is not None and controller is not None
    children = params.grids * params.units
    reconciles0, _ = await bench.reconciles()
    cpu0, counts0, sim_cpu0 = controller.cpu(), await bench.counts(), bench.sim_cpu()
    started = time.monotonic()
    for index in range(params.grids):
        await api.create(bench.grid_path, grid(index, params))
    created = time.monotonic()
    converged = await bench.wait(
        lambda: (
            len(bench.children) >= children and bench.grids.complete(params.units) >= params.grids
        ),
        timeout=params.timeout,
        what="convergence",
    )
    cpu_converged = controller.cpu()
    # One Created Event per child is still being posted (one request at a time).
    await bench.until_counts(
        lambda c: c.get("create", "events") - counts0.get("create", "events") >= children,
        timeout=params.timeout,
        what="an Event per child",
    )
    counts, last_write = await bench.quiet(seconds=params.quiet)
    cpu = controller.cpu() - cpu0
    reconciles, _ = await bench.reconciles()
    diff = counts - counts0
    run = write_figures(diff)
    run["reconciles_per_grid"] = (reconciles - reconciles0) / params.grids
    minimum = children + params.grids
    run.update(
        {
            "seconds": converged - started,
            "create_seconds": created - started,
            "settled_seconds": last_write - started,
            "minimum_writes": minimum,
            "ratio": (run["applies"] + run["status_writes"] + run["other_writes"]) / minimum,
            "cpu_converge_s": cpu_converged - cpu0,
            "cpu_s": cpu,
            "cpu_ms_per_child": cpu / children * 1000,
            "peak_rss_mib": mib(controller.peak_rss()),
            "kubesim_cpu_s": bench.sim_cpu() - sim_cpu0,
        }
    )
    log(
        f"converge: {children} children in {run['seconds']:.2f} s, writes "
        f"{run['applies']:.0f}+{run['status_writes']:.0f} (min {minimum}), "
        f"controller CPU {cpu:.2f} s"
    )
    return run


async def wait_reconciled(
    bench: ControllerRig, target: float, timeout: float, *, every: float = 0.1
) -> tuple[float, int]:
    """Wait until deploymentgrid reconciles reach `target` with nothing queued or running;
    (when, how many /metrics scrapes it took)."""
    deadline = time.monotonic() + timeout
    scrapes = 0
    while True:
        bench.check_alive()
        total, busy = await bench.reconciles()
        scrapes += 1
        if total >= target and busy == 0:
            return time.monotonic(), scrapes
        if time.monotonic() > deadline:
            raise TimeoutError(f"{total:.0f} of {target:.0f} reconciles, {busy:.0f} busy")
        await asyncio.sleep(every)


async def scrape_cost(bench: ControllerRig, count: int = 40) -> float:
    """Controller CPU seconds one /metrics scrape costs (to take scrapes out of a figure)."""
    assert bench.controller is not None
    cpu0 = bench.controller.cpu()
    for _ in range(count):
        await bench.reconciles()
    return max(0.0, bench.controller.cpu() - cpu0) / count


async def rest(
    bench: ControllerRig, params: Params, options: ControllerOptions
) -> dict[str, float]:
    controller = bench.controller
    assert controller is not None
    scrape = await scrape_cost(bench)
    # (a) the next periodic resync: every grid reconciled again, nothing written.
    counts0 = await bench.counts()
    reconciles0, _ = await bench.reconciles()
    cpu0 = controller.cpu()
    _, scrapes = await wait_reconciled(
        bench, reconciles0 + params.grids, params.sync_period * 2 + 60, every=0.25
    )
    counts, _ = await bench.quiet(seconds=params.quiet)
    reconciles1, _ = await bench.reconciles()
    resync = counts - counts0
    resync_cpu = max(0.0, controller.cpu() - cpu0 - (scrapes + 1) * scrape)
    resync_reconciles = reconciles1 - reconciles0

    # (b) a restart: list everything, reconcile every grid, write nothing.
    await bench.stop_controller()
    counts0 = await bench.counts()
    started = time.monotonic()
    controller = await bench.start_controller(options)
    ready = time.monotonic()
    reconciled, scrapes = await wait_reconciled(bench, params.grids, params.timeout)
    restart_cpu = controller.cpu() - scrapes * scrape
    counts, _ = await bench.quiet(seconds=params.quiet)
    restart = counts - counts0
    run = {
        "scrape_cpu_ms": scrape * 1000,
        "resync_reconciles": resync_reconciles,
        "resync_writes": resync.writes(),
        "resync_requests": resync.total(),
        "resync_cpu_ms_per_grid": resync_cpu / max(resync_reconciles, 1) * 1000,
        "restart_writes": restart.writes(),
        "restart_ready_s": ready - started,
        "restart_reconciled_s": reconciled - started,
        "restart_cpu_s": restart_cpu,
        "restart_requests_list": restart.by_verb().get("list", 0),
        "restart_requests_watch": restart.by_verb().get("watch", 0),
        "restart_requests_total": restart.total(),
        "restart_peak_rss_mib": mib(controller.peak_rss()),
    }
    log(
        f"rest: resync {resync_reconciles:.0f} reconciles, {resync.writes()} writes; "
        f"restart {restart.writes()} writes, reconciled in {reconciled - started:.2f} s"
    )
    return run


async def new_unit(bench: ControllerRig, params: Params, sample: int) -> dict[str, float]:
    api, controller = bench.api, bench.controller
    assert api is not None and controller is not None
    unit = f"new-{sample}"
    reconciles0, _ = await bench.reconciles()
    counts0, cpu0 = await bench.counts(), controller.cpu()
    started = time.monotonic()
    await api.merge_patch(f"/api/v1/nodes/spare-{sample}", {"metadata": {"labels": {KEY: unit}}})
    done = await bench.wait(
        lambda: bench.children.by_unit[unit] >= params.grids,
        timeout=params.timeout,
        what=f"the children of {unit}",
    )
    counts, _ = await bench.quiet(seconds=params.quiet)
    cpu = controller.cpu() - cpu0
    reconciles, _ = await bench.reconciles()
    diff = counts - counts0
    run = write_figures(diff)
    run["reconciles_per_grid"] = (reconciles - reconciles0) / params.grids
    minimum = 2 * params.grids
    run.update(
        {
            "seconds": done - started,
            "minimum_writes": minimum,
            "ratio": (run["applies"] + run["status_writes"] + run["other_writes"]) / minimum,
            "cpu_s": cpu,
        }
    )
    log(f"new-unit {unit}: {params.grids} children in {run['seconds']:.3f} s")
    return run


async def template_edit(bench: ControllerRig, params: Params) -> dict[str, float]:
    api, controller = bench.api, bench.controller
    assert api is not None and controller is not None
    expected = params.grids * params.canary_units
    reconciles0, _ = await bench.reconciles()
    counts0, cpu0 = await bench.counts(), controller.cpu()
    started = time.monotonic()
    path = "/spec/templatePool/canary/template/spec/containers/0/image"
    for index in range(params.grids):
        await api.json_patch(
            f"{bench.grid_path}/grid-{index:04d}",
            [{"op": "replace", "path": path, "value": EDITED_IMAGE}],
        )
    done = await bench.wait(
        lambda: bench.children.by_image[EDITED_IMAGE] >= expected,
        timeout=params.timeout,
        what="the edited template rolled out",
    )
    counts, _ = await bench.quiet(seconds=params.quiet)
    cpu = controller.cpu() - cpu0
    reconciles, _ = await bench.reconciles()
    run = write_figures(counts - counts0)
    run["reconciles_per_grid"] = (reconciles - reconciles0) / params.grids
    run.update(
        {
            "expected_applies": expected,
            "seconds": done - started,
            "cpu_s": cpu,
            "cpu_ms_per_apply": cpu / expected * 1000,
        }
    )
    log(f"template-edit: {run['applies']:.0f} applies (expected {expected})")
    return run


@contextlib.asynccontextmanager
async def profiled(bench: ControllerRig, params: Params, phase: str) -> AsyncIterator[None]:
    """py-spy on the controller and on kubesim during `phase`, with `--profile DIR`."""
    if params.profile is None or bench.controller is None or bench.sim is None:
        yield
        return
    async with (
        Profiler(bench.controller.pid, params.profile / f"{phase}-controller.txt"),
        Profiler(bench.sim.pid, params.profile / f"{phase}-kubesim.txt"),
    ):
        yield


async def one_run(params: Params, phases: set[str]) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {}
    async with rig(NAMESPACE, "converge") as bench:
        nodes = [
            (f"node-{u:03d}-{n}", {KEY: unit_name(u)})
            for u in range(params.units)
            for n in range(params.nodes_per_unit)
        ]
        spares: list[tuple[str, dict[str, str]]] = [
            (f"spare-{k}", {}) for k in range(params.samples if "new-unit" in phases else 0)
        ]
        await bench.add_nodes(nodes + spares)
        options = ControllerOptions(
            namespace=NAMESPACE, workers=params.workers, sync_period=params.sync_period
        )
        started = time.monotonic()
        controller = await bench.start_controller(options)
        ready = time.monotonic() - started
        cpu_ready, rss_ready = controller.cpu(), controller.rss()
        async with profiled(bench, params, "converge"):
            run = await converge(bench, params)
        run.update({"ready_s": ready, "cpu_startup_s": cpu_ready, "rss_ready_mib": mib(rss_ready)})
        out["converge"] = [run]
        if "rest" in phases:
            out["rest"] = [await rest(bench, params, options)]
        if "new-unit" in phases:
            async with profiled(bench, params, "new-unit"):
                out["new-unit"] = [await new_unit(bench, params, k) for k in range(params.samples)]
        if "template-edit" in phases:
            async with profiled(bench, params, "template-edit"):
                out["template-edit"] = [await template_edit(bench, params)]
        out["converge"][0]["peak_rss_end_mib"] = mib(bench.controller_peak_rss())
    return out


def figures(params: Params) -> dict[str, list[Figure]]:
    children = params.grids * params.units
    return {
        "converge": [
            Figure("seconds", f"time to converge ({children} children)", "s"),
            Figure("settled_seconds", "time until the last write (Events incl.)", "s"),
            Figure("applies", "child applies", fmt="{:,.0f}", target=children, compare="=="),
            Figure("status_writes", "status writes", fmt="{:,.0f}"),
            Figure("other_writes", "other writes", fmt="{:,.0f}", target=0, compare="=="),
            Figure("ratio", "writes / minimum", fmt="{:.3f}", target=1.0, compare="=="),
            Figure("events", "Events posted", fmt="{:,.0f}"),
            Figure("requests_patch", "requests: patch", fmt="{:,.0f}"),
            Figure("requests_create", "requests: create", fmt="{:,.0f}"),
            Figure("requests_get", "requests: get", fmt="{:,.0f}"),
            Figure("requests_list", "requests: list", fmt="{:,.0f}"),
            Figure("requests_watch", "requests: watch", fmt="{:,.0f}"),
            Figure("reconciles_per_grid", "reconciles per grid", fmt="{:.2f}"),
            Figure("cpu_s", "controller CPU, creation to last write", "s"),
            Figure("cpu_ms_per_child", "controller CPU per child", "ms", target=3.0, compare="<"),
            Figure("cpu_startup_s", "controller CPU to ready (imports, sync)", "s"),
            Figure("rss_ready_mib", "controller RSS when ready", "MiB", fmt="{:.1f}"),
            Figure("peak_rss_mib", "controller peak RSS after converge", "MiB", fmt="{:.1f}"),
            Figure("kubesim_cpu_s", "kubesim CPU, same window", "s"),
        ],
        "rest": [
            Figure("scrape_cpu_ms", "one /metrics scrape (taken out below)", "ms"),
            Figure("resync_reconciles", "full resync: grids reconciled", fmt="{:,.0f}",
                   target=params.grids, compare=">="),
            Figure("resync_writes", "full resync: writes", fmt="{:,.0f}", target=0, compare="=="),
            Figure("resync_requests", "full resync: requests of any verb", fmt="{:,.0f}"),
            Figure("resync_cpu_ms_per_grid", "full resync: CPU per no-op grid reconcile", "ms"),
            Figure("restart_writes", "restart: writes", fmt="{:,.0f}", target=0, compare="=="),
            Figure("restart_ready_s", "restart: spawn to ready", "s"),
            Figure("restart_reconciled_s", "restart: spawn to every grid reconciled", "s"),
            Figure("restart_cpu_s", "restart: controller CPU until then", "s"),
            Figure("restart_requests_list", "restart: list requests", fmt="{:,.0f}"),
            Figure("restart_requests_watch", "restart: watch requests", fmt="{:,.0f}"),
            Figure("restart_peak_rss_mib", "restart: peak RSS", "MiB", fmt="{:.1f}"),
        ],
        "new-unit": [
            Figure("seconds", f"label a node -> all {params.grids} new children", "s",
                   fmt="{:.3f}", target=2.0, compare="<"),
            Figure("applies", "child applies", fmt="{:,.0f}", target=params.grids, compare="=="),
            Figure("status_writes", "status writes", fmt="{:,.0f}"),
            Figure("ratio", "writes / minimum", fmt="{:.3f}", target=1.0, compare="=="),
            Figure("reconciles_per_grid", "reconciles per grid", fmt="{:.2f}"),
            Figure("cpu_s", "controller CPU", "s", fmt="{:.3f}"),
        ],
        "template-edit": [
            Figure("applies", "child applies", fmt="{:,.0f}",
                   target=params.grids * params.canary_units, compare="=="),
            Figure("status_writes", "status writes (observedGeneration)", fmt="{:,.0f}"),
            Figure("other_writes", "other writes", fmt="{:,.0f}", target=0, compare="=="),
            Figure("seconds", "edits to every child updated", "s"),
            Figure("reconciles_per_grid", "reconciles per grid", fmt="{:.2f}"),
            Figure("cpu_s", "controller CPU", "s"),
            Figure("cpu_ms_per_apply", "controller CPU per changed child", "ms"),
        ],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default=",".join(PHASES), help="comma-separated phases")
    parser.add_argument("--grids", type=int, default=None, help="default 100 (quick 20)")
    parser.add_argument("--units", type=int, default=None, help="default 20 (quick 8)")
    parser.add_argument("--nodes-per-unit", type=int, default=1)
    parser.add_argument("--canary-units", type=int, default=None, help="default 5 (quick 2)")
    parser.add_argument("--samples", type=int, default=None, help="new-unit samples (5; 3)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sync-period", type=float, default=None, help="s (default 15; 4)")
    parser.add_argument("--quiet", type=float, default=None, help="s without a write (2; 1)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--quick", action="store_true", help="a small cluster, one run")
    parser.add_argument("--suffix", default="", help="appended to the report names")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the controller and kubesim into DIR"
    )
    args = parser.parse_args()
    quick = args.quick
    phases = {p.strip() for p in args.scenarios.split(",") if p.strip()} | {"converge"}
    unknown = phases - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    params = Params(
        grids=args.grids or (20 if quick else 100),
        units=args.units or (8 if quick else 20),
        nodes_per_unit=args.nodes_per_unit,
        canary_units=args.canary_units if args.canary_units is not None else (2 if quick else 5),
        samples=args.samples or (3 if quick else 5),
        workers=args.workers,
        sync_period=args.sync_period or (4.0 if quick else 15.0),
        quiet=args.quiet or (1.0 if quick else 2.0),
        timeout=args.timeout,
        profile=args.profile,
    )
    repeats = args.repeats or (1 if quick else 3)
    results: dict[str, list[dict[str, float]]] = {p: [] for p in PHASES if p in phases}
    for index in range(repeats):
        log(f"run {index + 1}/{repeats}: {params}")
        for phase, runs in asyncio.run(one_run(params, phases)).items():
            results[phase].extend(runs)
    ok = True
    table = figures(params)
    for phase, runs in results.items():
        report = write_report(
            phase + args.suffix,
            figures=table[phase],
            runs=runs,
            params=vars(params) | {"repeats": repeats},
            quick=quick,
        )
        ok = ok and all_pass(report)
        print()
    if "new-unit" in results:
        seconds = [r["seconds"] for r in results["new-unit"]]
        print(f"new-unit samples (s): {', '.join(f'{s:.3f}' for s in seconds)}; "
              f"median {statistics.median(seconds):.3f}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
