"""`servicegroup demo`: the command around the walkthrough.

Owns: `run(settings)` (a work directory under the system temp dir, every log line of every
component sent to `<workdir>/demo.log` instead of the terminal, exit code) and `demo(...)`
(the same without touching the process's logging, for tests): the intro, the cluster's
start and stop, the walkthrough, the summary, and with `--keep-running` the kubeconfig and
endpoints to explore until Ctrl-C.

Exit codes: 0 every step converged (or Ctrl-C during --keep-running); 1 a step did not
converge, or a component failed (the output names the step; the log file has the details).
The work directory (kubeconfig, hosts files, log) is left in place for inspection.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import aiohttp

from servicegroup.demo.cluster import DemoCluster, make_unit, open_cluster
from servicegroup.demo.steps import STEP_TIMEOUT, SVC, Walkthrough
from servicegroup.log import configure_logging, get_logger
from servicegroup.settings import DemoSettings, LogFormat, LogLevel

INITIAL_UNITS = 3
NODES_PER_UNIT = 3


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def run(settings: DemoSettings) -> int:
    """The `servicegroup demo` command."""
    workdir = Path(tempfile.mkdtemp(prefix="servicegroup-demo-"))
    log_path = workdir / "demo.log"
    with log_path.open("a", encoding="utf-8") as log_file:
        configure_logging(fmt=settings.log_format, level=settings.log_level, stream=log_file)
        try:
            return await demo(
                out=sys.stdout,
                workdir=workdir,
                log_path=log_path,
                keep_running=settings.keep_running,
                log_format=settings.log_format,
                log_level=settings.log_level,
            )
        finally:
            configure_logging(fmt=settings.log_format, level=settings.log_level, stream=sys.stderr)


async def demo(
    *,
    out: TextIO,
    workdir: Path,
    log_path: Path | None = None,
    keep_running: bool = False,
    log_format: LogFormat = "json",
    log_level: LogLevel = "info",
    step_timeout: float = STEP_TIMEOUT,
    on_ready: Callable[[DemoCluster], None] | None = None,
) -> int:
    """Run the walkthrough, printing to `out`; `on_ready` runs before the first step."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    logger = get_logger("demo")

    def say(*lines: str) -> None:
        for line in lines:
            print(line, file=out, flush=True)

    units = [make_unit(index, NODES_PER_UNIT) for index in range(INITIAL_UNITS)]
    new_unit = make_unit(INITIAL_UNITS, NODES_PER_UNIT)
    say(
        "servicegroup demo: the upstream ServiceGroup documentation's examples on kubesim, "
        "a simulated cluster",
        f"  work directory: {workdir}",
    )
    if log_path is not None:
        say(f"  logs (kubesim, controller, wrappers, DNS helpers): {log_path}")
    say(
        "  (the multi-cluster example needs Clusternet member clusters and is not part of it)",
        "",
        "Starting kubesim, the servicegroup controller, and a wrapper and a DNS helper per "
        "NodeUnit...",
    )
    walkthrough: Walkthrough | None = None
    try:
        async with (
            open_cluster(
                workdir=workdir,
                units=units,
                log_format=log_format,
                log_level=log_level,
                logger=logger,
            ) as cluster,
            aiohttp.ClientSession() as http,
        ):
            say(
                f"  kubesim serves {cluster.sim.url}; kubeconfig: {cluster.kubeconfig}",
                f"  ready in {loop.time() - started:.1f}s",
            )
            if on_ready is not None:
                on_ready(cluster)
            walkthrough = Walkthrough(
                cluster=cluster,
                http=http,
                out=out,
                new_unit=new_unit,
                step_timeout=step_timeout,
            )
            outcome = await walkthrough.run()
            if not outcome.ok:
                if log_path is not None:
                    say(f"  logs: {log_path}")
                return 1
            say(
                "",
                f"Done: all {outcome.steps} steps converged in {loop.time() - started:.1f}s "
                f"({walkthrough.inventory()}).",
            )
            if keep_running:
                _explore(cluster, say)
                await asyncio.Event().wait()
            return 0
    except Exception as exc:
        leaves = _leaves(exc)
        logger.error("demo failed", exc_info=exc)
        where = "setup"
        if walkthrough is not None and walkthrough.current is not None:
            number = walkthrough.current
            title = walkthrough.steps[number - 1].title
            where = f"step {number}/{len(walkthrough.steps)} ({title})"
        say("", f"FAILED during {where}:")
        for leaf in leaves:
            say(f"  {type(leaf).__name__}: {leaf}")
        if log_path is not None:
            say(f"  logs: {log_path}")
        return 1


def _explore(cluster: DemoCluster, say: Callable[..., None]) -> None:
    say(
        "",
        "Everything keeps running (the controller too: edit a grid and watch its children "
        "follow). Ctrl-C stops it.",
        f"  export KUBECONFIG={cluster.kubeconfig}",
        "  kubectl get dg,ssg,sg",
        "  kubectl get deploy,sts,svc,pods -o wide",
    )
    for unit in cluster.units:
        wrapper = cluster.wrappers[unit.name]
        say(
            f"  kubectl -s {wrapper.url} get endpointslices -l kubernetes.io/service-name={SVC} "
            f"-o yaml   # as {unit.name}'s wrapper serves them"
        )
    for unit in cluster.units:
        dns = cluster.dns[unit.name]
        say(f"  cat {dns.path}   # {unit.name}'s hosts file")
