"""Benchmark of `servicegroup wrapper`: memory, CPU per upstream event, added watch latency.

Usage: .venv/bin/python hack/bench_wrapper.py [--quick] [--repeats N] [--json PATH]

Scenario (full): kubesim with 300 nodes in 30 NodeUnits (`zone`), 2,000 Services annotated
`topologyKeys: '["zone"]'`, each with one EndpointSlice and one Endpoints object of 3
endpoints on random nodes. One wrapper runs as a real `servicegroup wrapper` process for
node-000. In the benchmark process (which also hosts kubesim) two kube-proxy-like watches
on EndpointSlices (kube-proxy's label selector, bookmarks on) are open: one directly on
kubesim, one through the wrapper.

Phases:
1. sync: from spawning the wrapper to its /readyz turning 200; then its RSS.
2. paced updates: every `interval`, one EndpointSlice with an endpoint in node-000's unit
   is changed (that endpoint's readiness flips, and an annotation carries a sequence
   number). The time from the write to the event arriving on each watch is recorded; the
   added latency is (through the wrapper) - (direct) for the same event, same run.
3. burst: as many slice updates as fast as kubesim takes them (random Services, mostly
   invisible to node-000's filter except for the annotation), to measure the wrapper's CPU
   per upstream event without idle time.
CPU is the wrapper process's user+system time from /proc; memory its VmRSS / VmHWM.
Each run is a fresh kubesim and wrapper (3 runs; --quick: a small scale, one run). Results:
a table per run, one table of median/min/max over the runs, and JSON (default
.bench/wrapper.json, the runs' full results under `details`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from benchlib import Figure, all_pass, write_report  # noqa: E402

from servicegroup.kubesim.app import KubeSim, NodeSpec  # noqa: E402

KUBE_PROXY_SELECTOR = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
SEQ = "bench.servicegroup.io/seq"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Scale:
    services: int
    endpoints: int
    nodes: int
    zones: int
    updates: int
    interval: float
    burst: int


FULL = Scale(
    services=2000, endpoints=3, nodes=300, zones=30, updates=400, interval=0.02, burst=2000
)
QUICK = Scale(services=200, endpoints=3, nodes=30, zones=3, updates=100, interval=0.02, burst=300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": pick(0.90) * 1000,
        "p99_ms": pick(0.99) * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def populate(
    sim: KubeSim, scale: Scale, rng: random.Random
) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """Services, slices and Endpoints; returns the Services with an endpoint in zone-00
    and every Service's (ip, node) endpoints."""
    api = sim.client(manager="bench")
    nodes = [f"node-{i:03d}" for i in range(scale.nodes)]
    local: list[str] = []
    endpoints_of: dict[str, list[tuple[str, str]]] = {}
    for i in range(scale.services):
        name = f"svc-{i:04d}"
        api.create(
            "services",
            {
                "metadata": {
                    "name": name,
                    "namespace": "default",
                    "annotations": {"topologyKeys": '["zone"]'},
                },
                "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
            },
        )
        placed = rng.sample(nodes, scale.endpoints)
        ips = [f"10.{(i >> 8) & 255}.{i & 255}.{k + 1}" for k in range(scale.endpoints)]
        endpoints_of[name] = list(zip(ips, placed, strict=True))
        api.create("endpointslices", slice_body(name, endpoints_of[name], {}))
        api.create(
            "endpoints",
            {
                "metadata": {"name": name, "namespace": "default"},
                "subsets": [
                    {
                        "addresses": [
                            {"ip": ip, "nodeName": node}
                            for ip, node in zip(ips, placed, strict=True)
                        ],
                        "ports": [{"port": 8080, "protocol": "TCP"}],
                    }
                ],
            },
        )
        if any(int(n.split("-")[1]) % scale.zones == 0 for n in placed):
            local.append(name)
    return local, endpoints_of


def slice_body(
    service: str, endpoints: list[tuple[str, str]], ready: dict[str, bool], seq: int | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": f"{service}-bench",
        "namespace": "default",
        "labels": {"kubernetes.io/service-name": service},
    }
    if seq is not None:
        metadata["annotations"] = {SEQ: str(seq)}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "nodeName": node, "conditions": {"ready": ready.get(ip, True)}}
            for ip, node in endpoints
        ],
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


class WatchTimes:
    """Arrival time of every MODIFIED event carrying a sequence annotation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.arrivals: dict[int, float] = {}
        self.events = 0

    async def follow(self, http: aiohttp.ClientSession, url: str, rv: str) -> None:
        params = {
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "labelSelector": KUBE_PROXY_SELECTOR,
            "timeoutSeconds": "3600",
        }
        async with http.get(url + SLICES, params=params) as response:
            if response.status != 200:
                raise RuntimeError(f"{self.name}: watch answered {response.status}")
            while line := await response.content.readline():
                now = time.perf_counter()
                event = orjson.loads(line)
                self.events += 1
                if event["type"] == "ERROR":
                    raise RuntimeError(f"{self.name}: {event['object']}")
                annotations = event["object"]["metadata"].get("annotations") or {}
                seq = annotations.get(SEQ)
                if seq is not None:
                    self.arrivals.setdefault(int(seq), now)


async def wait_ready(url: str, process: asyncio.subprocess.Process, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the wrapper exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError("the wrapper did not become ready")


async def baseline_rss() -> float:
    code = (
        "import servicegroup.wrapper.app, servicegroup.cli;"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, _ = await process.communicate()
    return int(out.decode().strip()) / 1024


async def list_time(http: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with http.get(url + SLICES, params={"labelSelector": KUBE_PROXY_SELECTOR}) as r:
        body = await r.read()
    return time.perf_counter() - started, len(body)


async def bench(scale: Scale, quick: bool) -> dict[str, Any]:
    rng = random.Random(42)
    nodes = [
        NodeSpec(f"node-{i:03d}", {"zone": f"zone-{i % scale.zones:02d}"})
        for i in range(scale.nodes)
    ]
    results: dict[str, Any] = {"scale": asdict(scale), "quick": quick}
    async with KubeSim(nodes=nodes, bookmark_interval=60.0, history_size=50_000) as sim:
        t0 = time.perf_counter()
        local, endpoints_of = populate(sim, scale, rng)
        results["populate_seconds"] = time.perf_counter() - t0
        results["local_services"] = len(local)
        api = sim.client(manager="bench")

        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
            port, probe_port = free_port(), free_port()
            wrapper_url = f"http://127.0.0.1:{port}"
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "servicegroup",
                "wrapper",
                "--node-name",
                "node-000",
                "--kubeconfig",
                str(kubeconfig),
                "--bind-address",
                f"127.0.0.1:{port}",
                "--health-probe-bind-address",
                f"127.0.0.1:{probe_port}",
                "--metrics-bind-address",
                f"127.0.0.1:{probe_port}",
                "--log-format",
                "json",
                "--log-level",
                "warning",
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                await wait_ready(f"http://127.0.0.1:{probe_port}/readyz", process, 300)
                results["sync_seconds"] = time.perf_counter() - started
                await asyncio.sleep(1.0)  # let the wrapper settle before measuring memory
                results["memory_after_sync_mib"] = proc_status(process.pid)
                results["baseline_rss_mib"] = await baseline_rss()
                results["cpu_sync_seconds"] = cpu_seconds(process.pid)
                await measure(
                    sim=sim,
                    api=api,
                    scale=scale,
                    rng=rng,
                    local=local,
                    endpoints_of=endpoints_of,
                    wrapper_url=wrapper_url,
                    pid=process.pid,
                    results=results,
                )
                results["memory_end_mib"] = proc_status(process.pid)
            finally:
                process.terminate()
                try:
                    async with asyncio.timeout(10):
                        results["wrapper_exit_code"] = await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()
    return results


async def measure(
    *,
    sim: KubeSim,
    api: Any,
    scale: Scale,
    rng: random.Random,
    local: list[str],
    endpoints_of: dict[str, list[tuple[str, str]]],
    wrapper_url: str,
    pid: int,
    results: dict[str, Any],
) -> None:
    ready: dict[str, dict[str, bool]] = {s: {} for s in endpoints_of}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        direct_list, direct_bytes = await list_time(http, sim.url)
        wrapped_list, wrapped_bytes = await list_time(http, wrapper_url)
        results["list_seconds"] = {"direct": direct_list, "wrapper": wrapped_list}
        results["list_bytes"] = {"direct": direct_bytes, "wrapper": wrapped_bytes}
        async with http.get(sim.url + SLICES, params={"limit": "1"}) as r:
            direct_rv = (await r.json())["metadata"]["resourceVersion"]
        async with http.get(wrapper_url + SLICES) as r:
            wrapped_rv = (await r.json())["metadata"]["resourceVersion"]
        direct = WatchTimes("direct")
        wrapped = WatchTimes("wrapper")
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(direct.follow(http, sim.url, direct_rv), name="bench-direct"),
                group.create_task(
                    wrapped.follow(http, wrapper_url, wrapped_rv), name="bench-wrapped"
                ),
            ]
            await asyncio.sleep(0.5)
            written: dict[int, float] = {}

            def update(seq: int, service: str, *, local_flip: bool) -> None:
                eps = endpoints_of[service]
                flip = [ip for ip, node in eps if int(node.split("-")[1]) % scale.zones == 0]
                target = flip[0] if (local_flip and flip) else rng.choice(eps)[0]
                ready[service][target] = not ready[service].get(target, True)
                body = slice_body(service, eps, ready[service], seq)
                written[seq] = time.perf_counter()
                api.apply("endpointslices", body)

            # --- paced: visible changes, one at a time
            cpu0 = cpu_seconds(pid)
            for seq in range(scale.updates):
                update(seq, rng.choice(local), local_flip=True)
                await asyncio.sleep(scale.interval)
            await settle(lambda: len(wrapped.arrivals) >= scale.updates, 10)
            paced_cpu = cpu_seconds(pid) - cpu0

            # --- burst: any Service, as fast as kubesim takes writes
            services = sorted(endpoints_of)
            cpu0 = cpu_seconds(pid)
            burst_started = time.perf_counter()
            for k in range(scale.burst):
                update(scale.updates + k, rng.choice(services), local_flip=False)
                if k % 50 == 49:
                    await asyncio.sleep(0)
            total = scale.updates + scale.burst
            await settle(lambda: len(wrapped.arrivals) >= total, 60)
            burst_seconds = time.perf_counter() - burst_started
            burst_cpu = cpu_seconds(pid) - cpu0
            for task in tasks:
                task.cancel()

    paced = range(scale.updates)
    direct_lat = [direct.arrivals[s] - written[s] for s in paced if s in direct.arrivals]
    wrapped_lat = [wrapped.arrivals[s] - written[s] for s in paced if s in wrapped.arrivals]
    added = [
        wrapped.arrivals[s] - direct.arrivals[s]
        for s in paced
        if s in wrapped.arrivals and s in direct.arrivals
    ]
    results["paced"] = {
        "updates": scale.updates,
        "received_direct": sum(1 for s in paced if s in direct.arrivals),
        "received_wrapper": sum(1 for s in paced if s in wrapped.arrivals),
        "latency_direct": percentiles(direct_lat),
        "latency_wrapper": percentiles(wrapped_lat),
        "added_latency": percentiles(added),
        "wrapper_cpu_seconds": paced_cpu,
        "cpu_per_event_ms": paced_cpu / scale.updates * 1000,
    }
    results["burst"] = {
        "updates": scale.burst,
        "seconds": burst_seconds,
        "received_wrapper": sum(1 for s in range(scale.updates, total) if s in wrapped.arrivals),
        "wrapper_cpu_seconds": burst_cpu,
        "cpu_per_event_ms": burst_cpu / scale.burst * 1000,
    }
    median = results["paced"]["added_latency"].get("median_ms")
    results["target_median_added_ms"] = 5.0
    results["target_met"] = median is not None and median < 5.0


async def settle(check: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check() and loop.time() < deadline:
        await asyncio.sleep(0.05)


def table(results: dict[str, Any]) -> str:
    scale = results["scale"]
    paced = results["paced"]
    burst = results["burst"]
    mem = results["memory_after_sync_mib"]
    rows = [
        (
            "scale",
            f"{scale['services']} Services x {scale['endpoints']} endpoints, "
            f"{scale['nodes']} nodes in {scale['zones']} units",
        ),
        ("wrapper sync (spawn -> ready)", f"{results['sync_seconds']:.2f} s"),
        ("wrapper CPU for the initial sync", f"{results['cpu_sync_seconds']:.2f} s"),
        ("wrapper RSS after sync", f"{mem['VmRSS']:.1f} MiB"),
        ("  of which interpreter + imports", f"{results['baseline_rss_mib']:.1f} MiB"),
        ("wrapper peak RSS (end)", f"{results['memory_end_mib']['VmHWM']:.1f} MiB"),
        (
            "list slices (kube-proxy selector)",
            f"direct {results['list_seconds']['direct'] * 1000:.1f} ms, "
            f"wrapper {results['list_seconds']['wrapper'] * 1000:.1f} ms",
        ),
    ]
    for label, key in (
        ("latency direct", "latency_direct"),
        ("latency via wrapper", "latency_wrapper"),
        ("added latency", "added_latency"),
    ):
        p = paced[key]
        rows.append(
            (
                label,
                f"median {p['median_ms']:.2f} ms, p90 {p['p90_ms']:.2f}, "
                f"p99 {p['p99_ms']:.2f}, max {p['max_ms']:.2f}",
            )
        )
    rows += [
        (
            "events received (paced)",
            f"direct {paced['received_direct']}/{paced['updates']}, "
            f"wrapper {paced['received_wrapper']}/{paced['updates']}",
        ),
        ("wrapper CPU per upstream event (paced)", f"{paced['cpu_per_event_ms']:.3f} ms"),
        (
            "wrapper CPU per upstream event (burst)",
            f"{burst['cpu_per_event_ms']:.3f} ms "
            f"({burst['updates']} events in {burst['seconds']:.2f} s)",
        ),
        (
            "target: median added latency < 5 ms",
            "met" if results["target_met"] else "NOT met",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def figures_of(results: dict[str, Any]) -> dict[str, float]:
    """One run's figures, flat, for the shared report format."""
    paced, burst = results["paced"], results["burst"]
    return {
        "sync_seconds": results["sync_seconds"],
        "cpu_sync_seconds": results["cpu_sync_seconds"],
        "rss_mib": results["memory_after_sync_mib"]["VmRSS"],
        "rss_over_baseline_mib": results["memory_after_sync_mib"]["VmRSS"]
        - results["baseline_rss_mib"],
        "peak_rss_mib": results["memory_end_mib"]["VmHWM"],
        "latency_direct_ms": paced["latency_direct"]["median_ms"],
        "latency_wrapper_ms": paced["latency_wrapper"]["median_ms"],
        "added_median_ms": paced["added_latency"]["median_ms"],
        "added_p90_ms": paced["added_latency"]["p90_ms"],
        "received": paced["received_wrapper"] / paced["updates"],
        "cpu_per_event_paced_ms": paced["cpu_per_event_ms"],
        "cpu_per_event_burst_ms": burst["cpu_per_event_ms"],
    }


FIGURES = [
    Figure("sync_seconds", "wrapper sync (spawn -> ready)", "s"),
    Figure("cpu_sync_seconds", "wrapper CPU for the initial sync", "s"),
    Figure("rss_mib", "wrapper RSS after sync", "MiB", fmt="{:.1f}"),
    Figure("rss_over_baseline_mib", "  over interpreter + imports", "MiB", fmt="{:.1f}"),
    Figure("peak_rss_mib", "wrapper peak RSS", "MiB", fmt="{:.1f}"),
    Figure("latency_direct_ms", "event latency, direct watch (median)", "ms"),
    Figure("latency_wrapper_ms", "event latency, via the wrapper (median)", "ms"),
    Figure("added_median_ms", "added latency (median)", "ms", target=5.0, compare="<"),
    Figure("added_p90_ms", "added latency (p90)", "ms"),
    Figure("received", "paced events received via the wrapper", fmt="{:.3f}", target=1.0,
           compare="=="),
    Figure("cpu_per_event_paced_ms", "wrapper CPU per upstream event (paced)", "ms",
           fmt="{:.3f}"),
    Figure("cpu_per_event_burst_ms", "wrapper CPU per upstream event (burst)", "ms",
           fmt="{:.3f}"),
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small scale, for a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--json", default=str(ROOT / ".bench" / "wrapper.json"))
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    every = []
    for index in range(repeats):
        print(f"-- run {index + 1}/{repeats}", flush=True)
        results = asyncio.run(bench(scale, args.quick))
        print(table(results), flush=True)
        every.append(results)
    report = write_report(
        "wrapper",
        figures=FIGURES,
        runs=[figures_of(r) for r in every],
        details=every,
        params=asdict(scale),
        quick=args.quick,
        out=Path(args.json),
    )
    return 0 if all_pass(report) else 1


if __name__ == "__main__":
    sys.exit(main())
