"""`servicegroup sim`: run kubesim until interrupted.

Owns: `run(settings)` - starts a KubeSim on the requested port with the requested nodes,
writes a kubeconfig (to `kubeconfig_out`, or a file in the system temp directory), prints the
server URL and the kubeconfig path, and serves until the task is cancelled (Ctrl-C).

Invariant: settings are any object with `port`, `kubeconfig_out`, `nodes` (records with
`name` and `labels`), `workloads` (bool) and `pod_start_delay` (seconds), such as
`servicegroup.settings.SimSettings`; nothing else is read.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from servicegroup.kubesim.app import KubeSim, NodeLike
from servicegroup.kubesim.workloads import WorkloadOptions


class SimSettingsLike(Protocol):
    @property
    def port(self) -> int: ...

    @property
    def kubeconfig_out(self) -> Path | str | None: ...

    @property
    def nodes(self) -> Sequence[NodeLike]: ...

    @property
    def workloads(self) -> bool: ...

    @property
    def pod_start_delay(self) -> float: ...


async def run(settings: SimSettingsLike) -> int:
    workloads = (
        WorkloadOptions(pod_start_delay=settings.pod_start_delay) if settings.workloads else None
    )
    async with KubeSim(port=settings.port, nodes=settings.nodes, workloads=workloads) as sim:
        target = settings.kubeconfig_out
        if target is None:
            target = Path(tempfile.gettempdir()) / f"kubesim-{sim.port}.kubeconfig"
        path = sim.write_kubeconfig(target)
        print(f"kubesim serving at {sim.url}", flush=True)
        print(f"kubeconfig written to {path}", flush=True)
        print(f"try: kubectl --kubeconfig {path} get nodes", file=sys.stderr, flush=True)
        await asyncio.Event().wait()  # until cancelled
    return 0
