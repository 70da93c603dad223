#!/usr/bin/env python3
"""Benchmark of kubesim: write throughput, watch fan-out, memory and CPU per object.

Usage: .venv/bin/python hack/bench_kubesim.py [--quick] [--profile FILE] [--objects N]
(or `hack/bench kubesim [--quick]`).

KubeSim runs in a child process of its own (this script re-executed with `--serve`), so the
load generator's CPU is not the server's. Over HTTP with keep-alive connections and several
requests in flight, each repetition measures on a fresh server:

- creates/s of Deployments (POST), merge patches/s, server-side applies/s (PATCH
  application/apply-patch+yaml, force) - each a real write producing a watch event;
- watch events delivered/s: 10 watches of the Deployments are opened, then a writer makes N
  merge patches; every watcher must receive all N events; rate = 10*N / wall time from the
  first write to the last event received by the last watcher;
- memory per stored Deployment: the server's VmRSS delta over the creates / N;
- the server's CPU seconds (utime+stime from /proc/<pid>/stat) per 1,000 writes and per
  10,000 delivered events: the load-independent form of "on one core" (1,000 writes/s on one
  core <=> at most 1.0 CPU-second per 1,000 writes).

Each measurement runs 3 times (once with --quick); one table (median, min, max, target,
pass/fail) is printed and everything is written to .bench/kubesim.json. The machine may be
shared: wall-clock rates are noisy, the CPU-second figures much less so.

Profiling: `--profile FILE` (or KUBESIM_BENCH_PROFILE=FILE in the environment) runs the
server under cProfile, writes the stats to FILE and prints the top functions; profiled rates
are slower and are not compared with the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
PROFILE_ENV = "KUBESIM_BENCH_PROFILE"
USER_AGENT = "servicegroup-bench/1.0 (kubesim)"
NAMESPACE = "bench"
WARMUP_NAMESPACE = "bench-warmup"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON = "application/json"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the server side (child process) ------------------------------------------------------


async def _serve() -> None:
    sys.path.insert(0, str(ROOT))
    from servicegroup.kubesim.app import KubeSim

    async with KubeSim(port=0) as sim:
        print(json.dumps({"url": sim.url, "pid": os.getpid()}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()  # until the parent closes our stdin (or dies)


def serve() -> None:
    """Run KubeSim until stdin closes; under cProfile when KUBESIM_BENCH_PROFILE is set."""
    target = os.environ.get(PROFILE_ENV)
    if not target:
        asyncio.run(_serve())
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(_serve())
    finally:
        profiler.disable()
        profiler.dump_stats(target)


# --- process probes ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def own_cpu() -> float:
    """This process's user + system CPU seconds (the load generator's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    """The kubesim child process."""

    def __init__(self, *, profile: str | None) -> None:
        self.profile = profile
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.pid = 0

    async def __aenter__(self) -> Server:
        env = dict(os.environ)
        env.pop(PROFILE_ENV, None)
        if self.profile:
            env[PROFILE_ENV] = self.profile
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(ROOT),
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if not line:
            raise RuntimeError("kubesim child exited before serving")
        hello = json.loads(line)
        self.url, self.pid = hello["url"], int(hello["pid"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kib(self.pid)


# --- load -------------------------------------------------------------------------------


def deployment(name: str, namespace: str, *, image: str = "nginx:1.27", rev: int = 0) -> bytes:
    """A Deployment shaped like the controller's children (labels, probes, resources)."""
    labels = {
        "app.kubernetes.io/name": "echo",
        "app.kubernetes.io/managed-by": "servicegroup",
        "superedge.io/grid-selector": "echo",
        "superedge.io/nodeunit": f"unit-{name[-1]}",
    }
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"superedge.io/applied-hash": f"{rev:016x}"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "echo", "unit": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "echo", "unit": name}},
                "spec": {
                    "nodeSelector": {"superedge.io/nodeunit": f"unit-{name[-1]}"},
                    "containers": [
                        {
                            "name": "echo",
                            "image": image,
                            "args": ["-listen=:8080", "-text=hello"],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [{"name": "UNIT", "value": name}],
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "64Mi"},
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "periodSeconds": 5,
                            },
                        }
                    ],
                },
            },
        },
    }
    return orjson.dumps(body)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes
    content_type: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    elapsed: float
    errors: int
    first_error: str = ""


async def drive(
    session: aiohttp.ClientSession, base: str, calls: Sequence[Call], width: int
) -> Outcome:
    """Issue `calls` with `width` requests in flight; every one must succeed."""
    position = 0
    errors = 0
    first_error = ""

    async def worker() -> None:
        nonlocal position, errors, first_error
        while position < len(calls):
            call = calls[position]
            position += 1
            async with session.request(
                call.method,
                base + call.path,
                data=call.body,
                params=call.params,
                headers={"Content-Type": call.content_type},
            ) as response:
                payload = await response.read()
                if response.status >= 300:
                    errors += 1
                    if not first_error:
                        first_error = f"{response.status} {payload[:300]!r}"

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(width):
            group.create_task(worker(), name=f"bench-writer-{i}")
    return Outcome(time.perf_counter() - started, errors, first_error)


def creates(names: Sequence[str], ns: str) -> list[Call]:
    path = DEPLOYMENTS.format(ns=ns)
    return [Call("POST", path, deployment(name, ns), JSON) for name in names]


def merge_patches(names: Sequence[str], ns: str, rev: int) -> list[Call]:
    path = DEPLOYMENTS.format(ns=ns)
    return [
        Call(
            "PATCH",
            f"{path}/{name}",
            orjson.dumps({"metadata": {"annotations": {"bench/rev": f"{rev}-{i}"}}}),
            MERGE,
        )
        for i, name in enumerate(names)
    ]


def applies(names: Sequence[str], ns: str, rev: int) -> list[Call]:
    path = DEPLOYMENTS.format(ns=ns)
    params = (("fieldManager", "servicegroup-controller"), ("force", "true"))
    return [
        Call(
            "PATCH",
            f"{path}/{name}",
            deployment(name, ns, image=f"nginx:1.{rev}", rev=rev * 100_000 + i),
            APPLY,
            params,
        )
        for i, name in enumerate(names)
    ]


@dataclass
class WatchCounter:
    """One watch of the namespace's Deployments, counting events until it has `want`."""

    want: int
    events: int = 0
    restarts: int = 0
    last_line: bytes = b""
    done_at: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(
        self, session: aiohttp.ClientSession, base: str, rv: str, opened: asyncio.Event
    ) -> None:
        path = base + DEPLOYMENTS.format(ns=NAMESPACE)
        partial = b""
        while self.events < self.want:
            params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "600"}
            async with session.get(
                path, params=params, timeout=aiohttp.ClientTimeout(total=None)
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"watch answered {response.status}")
                opened.set()
                async for chunk in response.content.iter_any():
                    lines = (partial + chunk).split(b"\n")
                    partial = lines.pop()
                    for line in lines:
                        if line.startswith(b'{"type":"ERROR"'):
                            raise RuntimeError(f"watch error: {line[:300]!r}")
                        if not line.startswith(b'{"type":"BOOKMARK"'):
                            self.events += 1
                    if lines:
                        self.last_line = lines[-1]
                    if self.events >= self.want:
                        break
            if self.events < self.want:
                # The server ended the watch (slow consumer or timeout): resume after the last RV.
                self.restarts += 1
                partial = b""
                rv = orjson.loads(self.last_line)["object"]["metadata"]["resourceVersion"]
        self.done_at = time.perf_counter()
        self.done.set()


# --- one repetition -----------------------------------------------------------------------


@dataclass
class Config:
    objects: int
    width: int
    watchers: int
    profile: str | None


async def one_run(config: Config, index: int) -> dict[str, float]:
    n = config.objects
    names = [f"echo-{i:06d}" for i in range(n)]
    result: dict[str, float] = {}
    profile = f"{config.profile}.{index}" if config.profile else None
    async with Server(profile=profile) as server:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": USER_AGENT}, trust_env=False
        ) as session:
            base = server.url
            for ns in (NAMESPACE, WARMUP_NAMESPACE):
                body = orjson.dumps(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                )
                async with session.post(
                    base + "/api/v1/namespaces", data=body, headers={"Content-Type": JSON}
                ) as response:
                    assert response.status == 201, await response.text()
            # Warm every code path up (imports, caches, allocator pools) before the baseline.
            warm = [f"warm-{i:04d}" for i in range(min(300, n))]
            for calls in (
                creates(warm, WARMUP_NAMESPACE),
                merge_patches(warm, WARMUP_NAMESPACE, 0),
                applies(warm, WARMUP_NAMESPACE, 0),
            ):
                check(await drive(session, base, calls, config.width), "warm-up")

            rss_before = server.rss()

            async def phase(name: str, calls: list[Call]) -> None:
                cpu, own = server.cpu(), own_cpu()
                outcome = check(await drive(session, base, calls, config.width), name)
                used = server.cpu() - cpu
                result[f"{name}_per_s"] = len(calls) / outcome.elapsed
                result[f"{name}_cpu_per_1000"] = used / len(calls) * 1000
                result[f"{name}_server_busy"] = used / outcome.elapsed
                result[f"{name}_client_cpu_per_1000"] = (own_cpu() - own) / len(calls) * 1000

            await phase("creates", creates(names, NAMESPACE))
            result["rss_per_deployment_kib"] = (server.rss() - rss_before) / n
            await phase("patches", merge_patches(names, NAMESPACE, 1))
            await phase("applies", applies(names, NAMESPACE, 1))

            # Watch fan-out: N writes, each delivered to every watcher.
            async with session.get(
                base + DEPLOYMENTS.format(ns=NAMESPACE), params={"limit": "1"}
            ) as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
            counters = [WatchCounter(want=n) for _ in range(config.watchers)]
            async with asyncio.TaskGroup() as group:
                opened = [asyncio.Event() for _ in counters]
                for i, counter in enumerate(counters):
                    group.create_task(
                        counter.run(session, base, rv, opened[i]), name=f"bench-watch-{i}"
                    )
                await asyncio.gather(*(event.wait() for event in opened))
                cpu = server.cpu()
                started = time.perf_counter()
                outcome = check(
                    await drive(session, base, merge_patches(names, NAMESPACE, 2), config.width),
                    "fan-out writes",
                )
                await asyncio.gather(*(counter.done.wait() for counter in counters))
                finished = max(counter.done_at for counter in counters)
                used = server.cpu() - cpu
            delivered = sum(counter.events for counter in counters)
            result["watch_events_per_s"] = delivered / (finished - started)
            result["fanout_writes_per_s"] = n / outcome.elapsed
            result["watch_cpu_per_10000_events"] = used / delivered * 10_000
            # What fanning out costs beyond the writes themselves (as measured in the patch phase).
            fanout_only = used - n * result["patches_cpu_per_1000"] / 1000
            result["fanout_only_cpu_per_10000_events"] = max(0.0, fanout_only) / delivered * 10_000
            result["watch_restarts"] = float(sum(counter.restarts for counter in counters))
            result["rss_end_mib"] = server.rss() / 1024
    return result


def check(outcome: Outcome, what: str) -> Outcome:
    if outcome.errors:
        raise RuntimeError(
            f"{what}: {outcome.errors} requests failed, first: {outcome.first_error}"
        )
    return outcome


# --- report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    fmt: str = "{:,.0f}"

    def passes(self, value: float) -> bool | None:
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target


ROWS = (
    Row("creates_per_s", "creates/s (Deployment POST)", "1/s", 1000.0),
    Row("patches_per_s", "merge patches/s", "1/s", 1000.0),
    Row("applies_per_s", "server-side applies/s", "1/s", 1000.0),
    Row("watch_events_per_s", "watch events delivered/s (10 watchers)", "1/s", 10_000.0),
    Row("fanout_writes_per_s", "writes/s while fanning out", "1/s"),
    Row("creates_cpu_per_1000", "server CPU s / 1000 creates", "s", 1.0, False, "{:.3f}"),
    Row("patches_cpu_per_1000", "server CPU s / 1000 merge patches", "s", 1.0, False, "{:.3f}"),
    Row("applies_cpu_per_1000", "server CPU s / 1000 applies", "s", 1.0, False, "{:.3f}"),
    Row("watch_cpu_per_10000_events", "server CPU s / 10000 watch events", "s", 1.0, False,
        "{:.3f}"),
    Row("fanout_only_cpu_per_10000_events", "  of which fan-out alone", "s", None, False,
        "{:.3f}"),
    Row("creates_server_busy", "server busy during creates", "cores", None, True, "{:.2f}"),
    Row("creates_client_cpu_per_1000", "load generator CPU s / 1000 creates", "s", None, False,
        "{:.3f}"),
    Row("rss_per_deployment_kib", "memory per stored Deployment", "KiB", None, False, "{:.1f}"),
    Row("rss_end_mib", "server RSS at the end", "MiB", None, False, "{:.0f}"),
    Row("watch_restarts", "watches closed by the server", "", 0.0, False, "{:.0f}"),
)  # fmt: skip


def summarize(runs: list[dict[str, float]], *, profiled: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for row in ROWS:
        values = [run[row.key] for run in runs]
        median = statistics.median(values)
        verdict = None if profiled else row.passes(median)
        summary[row.key] = {
            "label": row.label,
            "unit": row.unit,
            "median": median,
            "min": min(values),
            "max": max(values),
            "runs": values,
            "target": row.target,
            "higher_is_better": row.higher_is_better,
            "pass": verdict,
        }
    return summary


def print_table(summary: dict[str, Any]) -> None:
    header = f"{'metric':<40} {'median':>10} {'min':>10} {'max':>10} {'target':>10}  result"
    print(header)
    print("-" * len(header))
    for row in ROWS:
        entry = summary[row.key]
        target = (
            ""
            if row.target is None
            else ((">= " if row.higher_is_better else "<= ") + row.fmt.format(row.target))
        )
        verdict = {True: "PASS", False: "FAIL", None: "-"}[entry["pass"]]
        label = f"{row.label} ({row.unit})" if row.unit and row.unit != "1/s" else row.label
        print(
            f"{label:<40} {row.fmt.format(entry['median']):>10} {row.fmt.format(entry['min']):>10}"
            f" {row.fmt.format(entry['max']):>10} {target:>10}  {verdict}"
        )


def print_profile(paths: list[str], *, top: int = 30) -> None:
    existing = [path for path in paths if Path(path).exists()]
    if not existing:
        print("no profile written")
        return
    stats = pstats.Stats(existing[0])
    for path in existing[1:]:
        stats.add(path)
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        print(f"\n== server profile, top {top} by {key}")
        stats.sort_stats(key).print_stats(top)


async def main_async(args: argparse.Namespace) -> int:
    profile = args.profile or None
    objects = args.objects or (500 if args.quick else 5000)
    repeats = args.repeats or (1 if args.quick else 3)
    config = Config(
        objects=objects,
        width=args.concurrency,
        watchers=10,
        profile=profile,
    )
    print(
        f"kubesim bench: {objects} Deployments, {config.width} requests in flight, "
        f"{config.watchers} watchers, {repeats} repetition(s)"
        + (" [PROFILED: rates not comparable]" if profile else ""),
        flush=True,
    )
    runs = []
    load = os.getloadavg()
    for index in range(repeats):
        run = await one_run(config, index)
        runs.append(run)
        print(
            f"  run {index + 1}: creates {run['creates_per_s']:,.0f}/s, patches "
            f"{run['patches_per_s']:,.0f}/s, applies {run['applies_per_s']:,.0f}/s, watch "
            f"{run['watch_events_per_s']:,.0f} ev/s, {run['rss_per_deployment_kib']:.1f} KiB/obj",
            flush=True,
        )
    summary = summarize(runs, profiled=bool(profile))
    print()
    print_table(summary)
    report = {
        "scenario": "kubesim",
        "quick": args.quick,
        "profiled": bool(profile),
        "objects": objects,
        "repeats": repeats,
        "concurrency": config.width,
        "watchers": config.watchers,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
        },
        "metrics": summary,
        "runs": runs,
    }
    out = ROOT / ".bench" / "kubesim.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(ROOT)}")
    if profile:
        print_profile([f"{config.profile}.{i}" for i in range(repeats)])
        return 0
    return 0 if all(entry["pass"] is not False for entry in summary.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 objects, one repetition")
    parser.add_argument("--objects", type=int, default=0, help="Deployments per repetition")
    parser.add_argument("--repeats", type=int, default=0, help="repetitions (default 3, or 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument(
        "--profile", default="", help=f"cProfile the server into FILE[.N] (or set {PROFILE_ENV})"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    profile = args.profile or os.environ.get(PROFILE_ENV) or ""
    args.profile = str(Path(profile).resolve()) if profile else ""
    if args.serve:
        serve()
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
