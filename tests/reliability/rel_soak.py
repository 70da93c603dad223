"""Soak: the reliability scenarios' faults in rotation for N minutes against one long-running
`servicegroup controller` process, with the controller's RSS sampled over time.

Run by `hack/chaos --minutes N` (not collected by pytest):
    .venv/bin/python tests/reliability/rel_soak.py --minutes 30 --out .bench/chaos.json

One kubesim with workloads (in this process), a TCP proxy in front of it, the controller as a
subprocess (so its RSS is its own, read from /proc), a wrapper and a DNS helper per NodeUnit
(in this process). Phases rotate: watch faults (closes + 410s), write faults (10%: 500 / 429
with Retry-After / 409) with latency spikes, label churn, grid churn, and every fifth phase
the API server unreachable for 30 s. Grids and nodes churn during every phase (bounded
counts, so a steady state exists). Each phase ends with the full invariant (rel_invariants)
within the deadline; the time to re-converge and the checks passed are recorded.

RSS: sampled every 10 s. Growth is measured from the sample at the five-minute mark (or a
third of the run, for runs shorter than 15 minutes) to the largest later sample; the soak
fails when it reaches 10%, when the invariant fails, or when anything is lost.

Output: a table on stdout, and JSON at --out: samples, phases, growth, pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rel_invariants import (
    DnsProbe,
    Expectations,
    SimView,
    WrapperProbe,
    converge,
)
from rel_support import (
    Churn,
    RelEnv,
    latency_spikes,
    plant_foreign,
    running_dns,
    running_wrapper,
    watch_chaos,
    write_faults,
)

from servicegroup.log import configure_logging

AGENT_NODES = ("rel-n1", "rel-n3", "rel-n5")
PHASE_SECONDS = 40.0
OUTAGE_SECONDS = 30.0
DEADLINE = 180.0
SAMPLE_EVERY = 10.0
GROWTH_LIMIT = 0.10


async def sample_rss(controller: Any, samples: list[tuple[float, int]], start: float) -> None:
    while True:
        rss = controller.rss_kib()
        if rss is not None:
            samples.append((round(time.monotonic() - start, 1), rss))
        await asyncio.sleep(SAMPLE_EVERY)


async def quiet(env: RelEnv, seconds: float = 1.5) -> None:
    """No write by the (subprocess) controller for `seconds`."""
    last, since = env.writes(), time.monotonic()
    while time.monotonic() - since < seconds:
        await asyncio.sleep(0.1)
        if env.writes() != last:
            last, since = env.writes(), time.monotonic()


async def soak(minutes: float, out: Path, seed: int) -> bool:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="servicegroup-soak-"))
    env = await RelEnv.start(tmp)
    phases: list[dict[str, Any]] = []
    samples: list[tuple[float, int]] = []
    ok = True
    try:
        controller = await env.spawn_controller("--workers", "4", name="soak-controller")
        churn = Churn(env, rng, max_grids=24, max_nodes=9, min_nodes=4)
        # The agents' nodes stay in place (their units may still come and go around them).
        for _ in range(12):
            churn.create_grid()
        view = SimView(env.sim)
        wrappers = [
            await env.stack.enter_async_context(running_wrapper(env, n)) for n in AGENT_NODES
        ]
        dns = [await env.stack.enter_async_context(running_dns(env, n)) for n in AGENT_NODES]
        planted = Expectations()
        plant_foreign(env, planted)
        wrapper_probes = [WrapperProbe(w.node, w.url, w.watch) for w in wrappers]
        dns_probes = [DnsProbe(d.node, d.path) for d in dns]
        start = time.monotonic()
        env.spawn(sample_rss(controller, samples, start), name="rss-sampler")
        end = start + minutes * 60
        kinds = ["watch", "writes", "labels", "grids"]
        number = 0
        while time.monotonic() < end:
            number += 1
            kind = "outage" if number % 5 == 0 else kinds[(number - 1) % len(kinds)]
            seconds = min(PHASE_SECONDS, max(5.0, end - time.monotonic()))
            faults: Counter[str] = Counter()
            churn.ops.clear()
            if kind == "watch":
                task = env.spawn(watch_chaos(env.sim, period=3.0, counts=faults), name="chaos")
                await churn.run(seconds=seconds)
                await env.cancel(task)
            elif kind == "writes":
                write_faults(env.sim, counts=faults)
                task = env.spawn(
                    latency_spikes(env.sim, seconds=2.0, every=8.0, counts=faults), name="lat"
                )
                await churn.run(seconds=seconds)
                await env.cancel(task)
                env.sim.faults.clear()
            elif kind == "outage":
                async with env.proxy.outage():
                    faults[f"API server unreachable ({OUTAGE_SECONDS:g} s)"] += 1
                    await churn.run(seconds=OUTAGE_SECONDS, pace=1.0)
            elif kind == "labels":
                churn.grid_ops = False
                await churn.run(seconds=seconds, pace=0.3)
                churn.grid_ops = True
            else:
                churn.node_ops = False
                await churn.run(seconds=seconds, pace=0.3)
                churn.node_ops = True
            # Agents' nodes must keep a zone label for their files and wrappers to matter;
            # churn may have moved them anywhere, which is fine.
            exp = Expectations(grids=churn.ledger(), wrappers=wrapper_probes, dns=dns_probes)
            exp.foreign = planted.foreign
            record: dict[str, Any] = {
                "phase": number,
                "kind": kind,
                "at_seconds": round(time.monotonic() - start, 1),
                "faults": dict(faults),
                "churn": dict(churn.ops),
            }
            try:
                result = await converge(
                    view, exp, deadline=DEADLINE, settled=lambda: quiet(env), interval=0.5
                )
            except AssertionError as err:
                record.update(ok=False, error=str(err)[:4000])
                ok = False
                phases.append(record)
                print(f"phase {number} ({kind}): INVARIANT FAILED\n{err}", flush=True)
                break
            record.update(
                ok=True,
                reconverge_seconds=round(result.seconds, 2),
                invariant_checks=result.verdict.checks,
                objects_lost=result.verdict.lost,
            )
            phases.append(record)
            rss = controller.rss_kib()
            print(
                f"phase {number:3d} {kind:7s} t={record['at_seconds']:7.1f}s "
                f"re-converged {result.seconds:6.2f}s checks {result.verdict.checks:5d} "
                f"controller RSS {rss / 1024 if rss else 0:7.1f} MiB",
                flush=True,
            )
            if not controller.alive():
                print("the controller exited:\n" + controller.log_tail(), flush=True)
                ok = False
                break
        final = controller.rss_kib()
        if final is not None:
            samples.append((round(time.monotonic() - start, 1), final))
    finally:
        with contextlib.suppress(Exception):
            await env.close()

    summary = rss_summary(samples, minutes)
    ok = ok and summary["growth_ok"]
    lost = sum(p.get("objects_lost", 0) for p in phases)
    report = {
        "minutes": minutes,
        "seed": seed,
        "ok": ok,
        "phases": phases,
        "objects_lost": lost,
        "longest_reconverge_seconds": max(
            (p.get("reconverge_seconds", 0.0) for p in phases), default=0.0
        ),
        "invariant_checks": sum(p.get("invariant_checks", 0) for p in phases),
        "rss": summary,
    }
    write_report(out, report)
    print_rss(summary)
    print(
        f"soak {'PASSED' if ok else 'FAILED'}: {len(phases)} phases, {lost} objects lost, "
        f"longest re-convergence {report['longest_reconverge_seconds']} s, "
        f"{report['invariant_checks']} invariant checks; JSON in {out}",
        flush=True,
    )
    return ok


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Merge the soak's report into `out` (hack/chaos puts the scenarios' results there)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if out.exists():
        with contextlib.suppress(ValueError):
            previous = json.loads(out.read_text())
    previous["soak"] = report
    out.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")


def rss_summary(samples: list[tuple[float, int]], minutes: float) -> dict[str, Any]:
    baseline_at = 300.0 if minutes >= 15 else minutes * 60 / 3
    after = [(t, r) for t, r in samples if t >= baseline_at]
    base = after[0] if after else (samples[-1] if samples else (0.0, 0))
    peak = max((r for _, r in after), default=base[1])
    last = samples[-1] if samples else (0.0, 0)
    growth = (peak - base[1]) / base[1] if base[1] else 0.0
    return {
        "samples": [{"seconds": t, "rss_kib": r} for t, r in samples],
        "baseline_seconds": base[0],
        "baseline_kib": base[1],
        "peak_after_baseline_kib": peak,
        "final_kib": last[1],
        "growth_after_baseline": round(growth, 4),
        "growth_limit": GROWTH_LIMIT,
        "growth_ok": growth < GROWTH_LIMIT,
    }


def print_rss(summary: dict[str, Any]) -> None:
    print("\ncontroller RSS over time", flush=True)
    print(f"{'t (s)':>8} {'RSS (MiB)':>10}")
    samples = summary["samples"]
    step = max(1, len(samples) // 40)
    for sample in samples[::step]:
        print(f"{sample['seconds']:8.0f} {sample['rss_kib'] / 1024:10.1f}")
    print(
        f"baseline at {summary['baseline_seconds']:.0f} s: "
        f"{summary['baseline_kib'] / 1024:.1f} MiB; peak after it: "
        f"{summary['peak_after_baseline_kib'] / 1024:.1f} MiB; growth "
        f"{summary['growth_after_baseline'] * 100:.1f}% (limit {GROWTH_LIMIT * 100:.0f}%)",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path(".bench/chaos.json"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log", type=Path, help="write the agents' logs (JSON) here")
    args = parser.parse_args()
    log = args.log.open("a") if args.log else open(os.devnull, "w")  # noqa: SIM115
    configure_logging(fmt="json", level="warning", stream=log)
    return 0 if asyncio.run(soak(args.minutes, args.out, args.seed)) else 1


if __name__ == "__main__":
    sys.exit(main())
