"""Shared helpers of the hack/bench_*.py scripts (never imported by servicegroup/).

Owns:
- /proc figures of a process: CPU seconds (utime+stime), VmRSS, VmHWM (peak RSS);
- `SimProcess`: kubesim in API-only mode as its own process (`python -m servicegroup sim
  --workloads false`), and `ControllerProcess`: `python -m servicegroup controller` with its
  probe and metrics ports on 127.0.0.1, scraped for reconcile counts and queue depths;
- `Api`: the load generator's small HTTP client (User-Agent product `servicegroup-bench`, so
  kubesim's request accounting tells its requests from the controller's), with a `Follower`
  that lists and watches a collection and maintains counters the waits test in O(1);
- `ControllerRig`: a cluster of nodes in NodeUnits, the grid CRDs, the controller, and the
  phase primitives the controller scenarios are made of (create grids, wait until converged,
  wait until quiet, count the controller's requests by verb and resource);
- the result format every scenario writes (`Figure`, `summarize`, `write_report`): each
  figure's median, min and max over the repetitions, a target and a pass/fail verdict; and
  `python hack/benchlib.py summary FILE...`, which prints one table of several reports.

Conventions: every figure is measured in the bench process from outside the measured process
(/proc, kubesim's accounting, the controller's /metrics). Wall times are noisy on a shared
machine: CPU seconds and request counts are the figures to judge a change by.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / ".bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOADGEN_AGENT = "servicegroup-bench/1.0 (loadgen)"
CONTROLLER_PRODUCT = "servicegroup"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
LEASES = "leases.coordination.k8s.io"
NODEUNIT_LABEL = "superedge.io/nodeunit"
Obj = dict[str, Any]


# ------------------------------------------------------------------------------ /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_bytes(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of `pid`, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def mib(value: float) -> float:
    return value / 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------------------ processes


class Process:
    """A child process of ours, its log file, and its /proc figures."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, what: str) -> None:
        self.process = process
        self.log = log
        self.what = what

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    def check(self) -> None:
        if not self.alive():
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.what} exited with {self.process.returncode}\n{tail}")

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return memory_bytes(self.pid)["VmRSS"]

    def peak_rss(self) -> int:
        return memory_bytes(self.pid)["VmHWM"]

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, SIGKILL if it does not stop; the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


# For measuring what uvloop would change (not a dependency of the project): the commands
# named in BENCH_UVLOOP (e.g. "controller,sim") run on uvloop's event loop when installed.
_UVLOOP_MAIN = (
    "import asyncio, runpy, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "runpy.run_module('servicegroup', run_name='__main__', alter_sys=True)"
)


def _entry(command: str) -> list[str]:
    wanted = {c.strip() for c in os.environ.get("BENCH_UVLOOP", "").split(",") if c.strip()}
    return ["-c", _UVLOOP_MAIN] if command in wanted else ["-m", "servicegroup"]


async def _spawn(args: Sequence[str], *, log: Path, stdout: int | None = None) -> Any:
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *_entry(args[0]),
            *args,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout if stdout is not None else sink,
            stderr=sink,
        )


class SimProcess(Process):
    """`servicegroup sim --workloads false`: kubesim in API-only mode, in its own process."""

    url: str
    kubeconfig: Path

    @classmethod
    async def start(cls, tmp: Path, *, timeout: float = 60.0) -> SimProcess:
        kubeconfig = tmp / "kubeconfig"
        log = tmp / "kubesim.log"
        process = await _spawn(
            [
                "sim",
                "--workloads",
                "false",
                "--port",
                "0",
                "--kubeconfig-out",
                str(kubeconfig),
                "--log-format",
                "json",
                "--log-level",
                "warning",
            ],
            log=log,
            stdout=asyncio.subprocess.PIPE,
        )
        sim = cls(process, log, "kubesim")
        assert process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    sim.check()
                    raise RuntimeError("kubesim closed its output before serving")
                if line.startswith("kubesim serving at "):
                    sim.url = line.split(" at ", 1)[1].strip()
                    break
        sim.kubeconfig = kubeconfig
        return sim


@dataclass(frozen=True)
class ControllerOptions:
    namespace: str
    workers: int = 4
    sync_period: float | None = None  # seconds; None: the command's default
    extra: tuple[str, ...] = ()


class ControllerProcess(Process):
    """`servicegroup controller`, exactly as deployed, against a kubeconfig."""

    probe_url: str
    metrics_url: str

    @classmethod
    async def start(cls, kubeconfig: Path, options: ControllerOptions, *, log: Path) -> Any:
        probe, metrics = free_port(), free_port()
        args = [
            "controller",
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-bind-address",
            f"127.0.0.1:{metrics}",
            "--health-probe-bind-address",
            f"127.0.0.1:{probe}",
            "--log-format",
            "json",
            "--log-level",
            "warning",
            "--workers",
            str(options.workers),
            "--namespace",
            options.namespace,
        ]
        if options.sync_period is not None:
            args += ["--sync-period", f"{options.sync_period}s"]
        args += list(options.extra)
        controller = cls(await _spawn(args, log=log), log, "controller")
        controller.probe_url = f"http://127.0.0.1:{probe}"
        controller.metrics_url = f"http://127.0.0.1:{metrics}"
        return controller

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.probe_url + "/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError("the controller did not become ready")
            await asyncio.sleep(0.05)

    async def metrics(self, http: aiohttp.ClientSession) -> Samples:
        async with http.get(self.metrics_url + "/metrics") as response:
            return Samples.parse(await response.text())


class Samples:
    """Prometheus text exposition, parsed: (name, labels) -> value."""

    def __init__(self, values: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> None:
        self.values = values

    @classmethod
    def parse(cls, text: str) -> Samples:
        values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            name, _, rest = head.partition("{")
            labels: list[tuple[str, str]] = []
            for part in rest.rstrip("}").split('",'):
                if "=" in part:
                    key, _, raw = part.partition("=")
                    labels.append((key.strip(","), raw.strip('"')))
            values[(name, frozenset(labels))] = float(value)
        return cls(values)

    def sum(self, metric: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.values.items() if n == metric and wanted <= ls)


class Profiler:
    """py-spy attached to a running process (`--profile DIR`), collapsed stacks to a file.

    For investigation only: py-spy is not a dependency of the project; without it on PATH
    (or in .venv/bin) the profile is skipped with a note. `--nonblocking`: the target is
    never paused, so its timing is barely disturbed.
    """

    def __init__(self, pid: int, out: Path, *, rate: int = 200) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Profiler:
        spy = Path(sys.executable).parent / "py-spy"
        if not spy.exists():
            log("py-spy not installed in the venv: no profile")
            return self
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            str(spy), "record", "--pid", str(self.pid), "--rate", str(self.rate),
            "--format", "raw", "--nonblocking", "--output", str(self.out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self.process.wait()


def profile_report(paths: Sequence[Path], *, top: int = 40, focus: str = "") -> str:
    """Self and inclusive sample counts per function from py-spy raw (collapsed) files."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or (focus and focus not in stack):
                continue
            n = int(count)
            total += n
            frames = [f.strip() for f in stack.split(";")]
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    lines = [f"{total} samples" + (f" with {focus!r} on the stack" if focus else "")]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"-- top {top} by {title}")
        for frame, n in counter.most_common(top):
            lines.append(f"{n / max(total, 1) * 100:6.1f}%  {frame}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the API


class Api:
    """The load generator's client: plain JSON over HTTP, its own User-Agent."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = aiohttp.ClientSession(
            headers={"User-Agent": LOADGEN_AGENT, "Accept": "application/json"},
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, connect=10),
        )

    async def close(self) -> None:
        await self.http.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        ok: Iterable[int] = (200, 201),
    ) -> Obj:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.http.request(
            method, self.url + path, data=data, headers=headers, params=params
        ) as response:
            raw = await response.read()
            if response.status not in set(ok):
                raise RuntimeError(f"{method} {path}: {response.status} {raw[:500]!r}")
            parsed: Obj = orjson.loads(raw) if raw else {}
            return parsed

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json")

    async def json_patch(self, path: str, ops: list[Obj]) -> Obj:
        return await self.request("PATCH", path, ops, content_type="application/json-patch+json")

    async def get(self, path: str, **params: str) -> Obj:
        return await self.request("GET", path, params=params)

    async def requests(self) -> list[Obj]:
        """kubesim's request accounting: [{verb, resource, subresource, userAgent, count}]."""
        entries: list[Obj] = (await self.get("/kubesim/requests"))["requests"]
        return entries

    async def faults(self, spec: Obj) -> Obj:
        return await self.request("POST", "/kubesim/faults", spec)

    async def watch_lines(self, path: str, params: Mapping[str, str]) -> AsyncIterator[Obj]:
        """Watch events as dicts (lines of any length)."""
        query = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "3600"}
        async with self.http.get(self.url + path, params={**query, **params}) as response:
            if response.status != 200:
                raise RuntimeError(f"watch {path}: {response.status}")
            partial = b""
            async for chunk in response.content.iter_any():
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)


class Counts:
    """The controller's requests (User-Agent product `servicegroup`), from one snapshot."""

    def __init__(self, entries: Iterable[Obj]) -> None:
        self.by: Counter[tuple[str, str]] = Counter()
        for entry in entries:
            if entry.get("userAgent") != CONTROLLER_PRODUCT:
                continue
            what = entry["resource"] + (f"/{entry['subresource']}" if entry["subresource"] else "")
            self.by[(entry["verb"], what)] += int(entry["count"])

    def __sub__(self, other: Counts) -> Counts:
        diff = Counts(())
        diff.by = self.by.copy()
        diff.by.subtract(other.by)
        diff.by = Counter({k: v for k, v in diff.by.items() if v})
        return diff

    def get(self, verb: str, what: str) -> int:
        return self.by.get((verb, what), 0)

    def writes(self, *, events: bool = True) -> int:
        return sum(
            n
            for (verb, what), n in self.by.items()
            if verb in WRITE_VERBS and what != LEASES and (events or what != "events")
        )

    def by_verb(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (verb, _), n in self.by.items():
            out[verb] += n
        return dict(sorted(out.items()))

    def total(self) -> int:
        return sum(self.by.values())

    def to_json(self) -> dict[str, int]:
        return {f"{verb} {what}": n for (verb, what), n in sorted(self.by.items())}


# ------------------------------------------------------------------------------ following


class Follower:
    """Lists and watches one collection; `on_event(type, obj)` keeps the caller's counters.

    Every delivered batch sets `changed` (shared by several followers, so one wait can test
    counters of several collections). On a 410 the collection is listed again.
    """

    def __init__(
        self,
        api: Api,
        path: str,
        on_event: Callable[[str, Obj], None],
        *,
        changed: asyncio.Event | None = None,
    ) -> None:
        self.api = api
        self.path = path
        self.on_event = on_event
        self.known: set[str] = set()
        self._changed = changed if changed is not None else asyncio.Event()
        self._synced = asyncio.Event()
        self.events = 0

    def _deliver(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.known.discard(name)
        else:
            self.known.add(name)
        self.events += 1
        self.on_event(kind, obj)

    async def run(self) -> None:
        while True:
            listed = await self.api.get(self.path)
            for obj in listed["items"]:
                self._deliver("ADDED" if obj["metadata"]["name"] not in self.known else
                              "MODIFIED", obj)  # fmt: skip
            rv = listed["metadata"]["resourceVersion"]
            self._synced.set()
            self._changed.set()
            expired = False
            async for event in self.api.watch_lines(self.path, {"resourceVersion": rv}):
                kind = event["type"]
                if kind == "BOOKMARK":
                    rv = event["object"]["metadata"]["resourceVersion"]
                    continue
                if kind == "ERROR":
                    expired = event["object"].get("code") == 410
                    break
                self._deliver(kind, event["object"])
                self._changed.set()
            if not expired:
                raise RuntimeError(f"the watch of {self.path} ended")

    async def synced(self) -> None:
        await self._synced.wait()


class ChildTracker:
    """Counters over the children in one namespace: per NodeUnit label and per image."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str]] = {}
        self.by_unit: Counter[str] = Counter()
        self.by_image: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._seen)

    def on_event(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        old = self._seen.pop(name, None)
        if old is not None:
            self.by_unit[old[0]] -= 1
            self.by_image[old[1]] -= 1
        if kind == "DELETED":
            return
        unit = (obj["metadata"].get("labels") or {}).get(NODEUNIT_LABEL, "")
        containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
        image = str(containers[0].get("image", "")) if containers else ""
        self._seen[name] = (unit, image)
        self.by_unit[unit] += 1
        self.by_image[image] += 1


class GridTracker:
    """Which grids have a status covering `units` units with every unit in `states`."""

    def __init__(self) -> None:
        self.shape: dict[str, tuple[int, int, bool]] = {}  # name -> units, states, observed

    def on_event(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.shape.pop(name, None)
            return
        status = obj.get("status") or {}
        observed = status.get("observedGeneration") == obj["metadata"].get("generation")
        self.shape[name] = (
            int(status.get("units") or 0),
            len(status.get("states") or {}),
            observed,
        )

    def complete(self, units: int) -> int:
        return sum(1 for u, s, o in self.shape.values() if u == units and s == units and o)


# ------------------------------------------------------------------------------ a rig


def node_body(index: int, name: str, labels: Mapping[str, str]) -> Obj:
    """The Node a kubelet registers (kubesim's own builder), to be created over HTTP."""
    from servicegroup.kubesim.app import NodeSpec
    from servicegroup.kubesim.workloads.nodes import build_node

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pod_cidr = f"10.{(index >> 8) % 256}.{index % 256}.0/24"
    return build_node(NodeSpec(name, dict(labels)), index=index, pod_cidr=pod_cidr, now=now)


async def gather_limited(calls: Iterable[Callable[[], Awaitable[Any]]], width: int = 16) -> None:
    """Run the calls with at most `width` in flight (a client's connection pool)."""
    queue = list(calls)
    queue.reverse()

    async def worker() -> None:
        while queue:
            await queue.pop()()

    async with asyncio.TaskGroup() as group:
        for i in range(width):
            group.create_task(worker(), name=f"bench-call-{i}")


@dataclass
class ControllerRig:
    """kubesim (API-only) + one controller + the load generator's view of the children."""

    tmp: Path
    namespace: str
    grid_plural: str = "deploymentgrids"
    child_plural: str = "deployments"
    child_group: str = "apps"
    sim: SimProcess | None = None
    controller: ControllerProcess | None = None
    api: Api | None = None
    children: ChildTracker = field(default_factory=ChildTracker)
    grids: GridTracker = field(default_factory=GridTracker)
    followers: list[Follower] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: asyncio.TaskGroup | None = None
    _task_list: list[asyncio.Task[None]] = field(default_factory=list)
    restarts: int = 0

    @property
    def grid_path(self) -> str:
        return f"/apis/superedge.io/v1/namespaces/{self.namespace}/{self.grid_plural}"

    @property
    def child_path(self) -> str:
        return f"/apis/{self.child_group}/v1/namespaces/{self.namespace}/{self.child_plural}"

    async def start(self) -> None:
        from servicegroup.api.crds import crd_manifests

        self.sim = await SimProcess.start(self.tmp)
        self.api = Api(self.sim.url)
        for crd in crd_manifests():
            await self.api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        await self.api.create("/api/v1/namespaces", {"metadata": {"name": self.namespace}})
        deadline = time.monotonic() + 30
        while True:  # the CRDs are served once established
            try:
                await self.api.get(self.grid_path)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        for path, tracker in ((self.child_path, self.children), (self.grid_path, self.grids)):
            follower = Follower(self.api, path, tracker.on_event, changed=self.changed)
            self.followers.append(follower)
            self._task_list.append(
                self._tasks.create_task(follower.run(), name=f"bench-follow-{path}")
            )
        for follower in self.followers:
            await follower.synced()

    async def add_nodes(self, nodes: Sequence[tuple[str, Mapping[str, str]]]) -> None:
        api = self.api
        assert api is not None

        def call(index: int, name: str, labels: Mapping[str, str]) -> Callable[[], Awaitable[Obj]]:
            return lambda: api.create("/api/v1/nodes", node_body(index, name, labels))

        await gather_limited(call(i, n, ls) for i, (n, ls) in enumerate(nodes))

    async def start_controller(self, options: ControllerOptions) -> ControllerProcess:
        assert self.sim is not None and self.api is not None
        log = self.tmp / f"controller-{self.restarts}.log"
        self.restarts += 1
        self.controller = await ControllerProcess.start(self.sim.kubeconfig, options, log=log)
        await self.controller.wait_ready(self.api.http)
        return self.controller

    async def stop_controller(self) -> int:
        assert self.controller is not None
        code = await self.controller.stop()
        return code

    async def stop(self) -> None:
        for task in self._task_list:
            task.cancel()
        if self._tasks is not None:
            with contextlib.suppress(Exception):
                await self._tasks.__aexit__(None, None, None)
        if self.controller is not None and self.controller.alive():
            await self.controller.stop()
        if self.api is not None:
            await self.api.close()
        if self.sim is not None:
            await self.sim.stop()

    # ---- measuring ---------------------------------------------------------------------

    async def counts(self) -> Counts:
        assert self.api is not None
        return Counts(await self.api.requests())

    def sim_cpu(self) -> float:
        assert self.sim is not None
        return self.sim.cpu()

    def controller_peak_rss(self) -> int:
        assert self.controller is not None
        return self.controller.peak_rss()

    async def metrics(self) -> Samples:
        assert self.controller is not None and self.api is not None
        return await self.controller.metrics(self.api.http)

    def check_alive(self) -> None:
        for process in (self.sim, self.controller):
            if process is not None:
                process.check()
        for task in self._task_list:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("a watch of the load generator failed") from task.exception()

    async def wait(self, predicate: Callable[[], bool], *, timeout: float, what: str) -> float:
        """Wait until `predicate()` (over the trackers: keep it O(1)), tested after every
        watch event; the monotonic time it was first seen true."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.check_alive()
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self.changed.wait()
        return time.monotonic()

    async def until_counts(
        self, predicate: Callable[[Counts], bool], *, timeout: float, what: str
    ) -> Counts:
        """Poll kubesim's accounting until `predicate(counts)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            counts = await self.counts()
            if predicate(counts):
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.2)

    async def quiet(self, *, seconds: float, timeout: float = 300.0) -> tuple[Counts, float]:
        """Wait until the controller made no write for `seconds`; (counts, its last write).

        Quiet is judged by when a poll of kubesim's accounting *started*: a poll that kubesim
        answers late (busy, or a long pause) proves nothing about the time it was waiting, so
        the window only closes with a poll begun `seconds` after the last write seen.
        """
        counts = await self.counts()
        last_write = time.monotonic()
        deadline = last_write + timeout
        while True:
            await asyncio.sleep(0.1)
            self.check_alive()
            asked = time.monotonic()
            current = await self.counts()
            if current.writes() != counts.writes():
                counts, last_write = current, time.monotonic()
            elif asked - last_write >= seconds:
                return current, last_write
            if time.monotonic() > deadline:
                raise TimeoutError("the controller kept writing")

    async def reconciles(self, controller: str = "deploymentgrid") -> tuple[float, float]:
        """(reconciles so far, keys queued or in flight) of one controller, from /metrics."""
        samples = await self.metrics()
        total = samples.sum("controller_runtime_reconcile_total", controller=controller)
        depth = samples.sum("workqueue_depth", name=controller)
        busy = samples.sum("controller_runtime_active_workers", controller=controller)
        return total, depth + busy


@contextlib.asynccontextmanager
async def rig(namespace: str, prefix: str) -> AsyncIterator[ControllerRig]:
    """A started rig in a temporary directory (kubeconfig, logs): removed after a run that
    went well, kept (and named) after a failure, or always with BENCH_KEEP=1."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    bench = ControllerRig(tmp=tmp, namespace=namespace)
    ok = False
    try:
        await bench.start()
        yield bench
        ok = True
    finally:
        await bench.stop()
        if ok and os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class Figure:
    """One reported figure: `compare` is how a value meets `target` ("<", "<=", "==", ">=").

    An exact target ("==") must hold in every run; the others are judged on the median.
    """

    key: str
    label: str
    unit: str = ""
    fmt: str = "{:.2f}"
    target: float | None = None
    compare: str = ""

    def passes(self, values: Sequence[float]) -> bool | None:
        if self.target is None or not values:
            return None
        if self.compare == "==":
            return all(abs(v - self.target) < 1e-9 for v in values)
        median = statistics.median(values)
        return {
            "<": median < self.target,
            "<=": median <= self.target,
            ">=": median >= self.target,
            ">": median > self.target,
        }[self.compare]


def summarize(runs: Sequence[Mapping[str, float]], figures: Sequence[Figure]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for figure in figures:
        values = [float(run[figure.key]) for run in runs if run.get(figure.key) is not None]
        if not values:
            continue
        summary[figure.key] = {
            "label": figure.label,
            "unit": figure.unit,
            "fmt": figure.fmt,
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": values,
            "target": figure.target,
            "compare": figure.compare,
            "pass": figure.passes(values),
        }
    return summary


def _fmt(entry: Mapping[str, Any]) -> str:
    """The entry's format, or one chosen by magnitude (reports of other scripts)."""
    fmt = entry.get("fmt")
    if isinstance(fmt, str) and fmt:
        return fmt
    return "{:,.0f}" if abs(float(entry.get("median") or 0)) >= 100 else "{:.3f}"


def _target_text(entry: Mapping[str, Any]) -> str:
    target = entry.get("target")
    if target is None:
        return ""
    fmt = _fmt(entry)
    compare = entry.get("compare") or (">=" if entry.get("higher_is_better", True) else "<=")
    return f"{compare} {fmt.format(target)}"


def _verdict(entry: Mapping[str, Any]) -> str:
    return {True: "PASS", False: "FAIL", None: "-"}[entry.get("pass")]


def table_lines(title: str, metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [f"== {title}"]
    header = f"{'figure':<48} {'median':>10} {'min':>10} {'max':>10} {'target':>11}  result"
    lines += [header, "-" * len(header)]
    for entry in metrics.values():
        fmt = _fmt(entry)
        label = entry["label"] + (f" ({entry['unit']})" if entry.get("unit") else "")
        lines.append(
            f"{label:<48} {fmt.format(entry['median']):>10} {fmt.format(entry['min']):>10} "
            f"{fmt.format(entry['max']):>10} {_target_text(entry):>11}  {_verdict(entry)}"
        )
    return lines


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_report(
    scenario: str,
    *,
    figures: Sequence[Figure],
    runs: Sequence[Mapping[str, float]],
    details: Any = None,
    params: Mapping[str, Any] | None = None,
    quick: bool = False,
    out: Path | None = None,
) -> dict[str, Any]:
    """Summarize, print the scenario's table, write .bench/<scenario>.json; the report."""
    summary = summarize(runs, figures)
    report = {
        "scenario": scenario,
        "quick": quick,
        "params": dict(params or {}),
        "repeats": len(runs),
        "machine": machine(),
        "metrics": summary,
        "runs": list(runs),
        "details": details,
    }
    print("\n".join(table_lines(f"{scenario} ({len(runs)} run(s))", summary)), flush=True)
    path = out or BENCH_DIR / f"{scenario}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    return report


def all_pass(report: Mapping[str, Any]) -> bool:
    return all(entry.get("pass") is not False for entry in report["metrics"].values())


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ summary CLI


def summary_main(argv: Sequence[str]) -> int:
    """Print one table of several scenario reports; write them together as one JSON."""
    parser = argparse.ArgumentParser(prog="benchlib.py summary")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "bench.json")
    parser.add_argument("--seconds", type=float, default=None, help="total wall time")
    args = parser.parse_args(argv)
    reports = []
    lines: list[str] = []
    for path in args.files:
        if not path.exists():
            lines.append(f"== {path.stem}: no report (the scenario failed before writing one)")
            continue
        report = json.loads(path.read_text())
        reports.append(report)
        repeats = report.get("repeats", "?")
        title = f"{report.get('scenario', path.stem)} ({repeats} run(s))"
        lines += table_lines(title, report.get("metrics") or {})
        lines.append("")
    failed = [
        f"{r['scenario']}: {e['label']}"
        for r in reports
        for e in (r.get("metrics") or {}).values()
        if e.get("pass") is False
    ]
    print("\n".join(lines))
    if args.seconds is not None:
        print(f"total wall time: {args.seconds:.0f} s")
    print("all targets met" if not failed else "targets NOT met: " + "; ".join(failed))
    combined = {
        "machine": machine(),
        "seconds": args.seconds,
        "scenarios": {r["scenario"]: r for r in reports},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(combined, indent=2, default=str) + "\n")
    print(f"written {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "summary":
        sys.exit(summary_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "profile":
        focus = os.environ.get("FOCUS", "")
        print(profile_report([Path(p) for p in sys.argv[2:]], focus=focus))
        sys.exit(0)
    print(
        "usage: benchlib.py summary FILE... [--out PATH] | profile RAWFILE... (FOCUS=substring)",
        file=sys.stderr,
    )
    sys.exit(2)
