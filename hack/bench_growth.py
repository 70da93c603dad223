#!/usr/bin/env python3
"""Benchmark: how the controller's cost grows with grids, NodeUnits and nodes.

Usage: .venv/bin/python hack/bench_growth.py [--axes grids,units,nodes] [--repeats 1]
       [--quick] (or `hack/bench growth`).

The converge phase of bench_converge.py (three processes; kubesim API-only), at several
sizes along one axis at a time, the others at the reference size (100 grids x 20 units x 1
node per unit):
- grids: 25, 50, 100, 200 (units 20)
- units: 5, 10, 20, 40 (grids 100)
- nodes: 1, 10, 100 nodes per unit (20, 200, 2,000 nodes; 100 grids x 20 units)
Per size: time to converge, controller CPU (total and per child), reconciles per grid,
controller RSS when ready and peak, writes / minimum. One table per axis; JSON in
.bench/growth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_converge import Params, one_run
from benchlib import Figure, log, write_report

AXES: dict[str, list[tuple[int, int, int]]] = {  # (grids, units, nodes per unit)
    "grids": [(25, 20, 1), (50, 20, 1), (100, 20, 1), (200, 20, 1)],
    "units": [(100, 5, 1), (100, 10, 1), (100, 20, 1), (100, 40, 1)],
    "nodes": [(100, 20, 1), (100, 20, 10), (100, 20, 100)],
}
QUICK: dict[str, list[tuple[int, int, int]]] = {
    "grids": [(5, 4, 1), (10, 4, 1), (20, 4, 1)],
    "units": [(10, 2, 1), (10, 4, 1), (10, 8, 1)],
    "nodes": [(10, 4, 1), (10, 4, 5), (10, 4, 25)],
}
COLUMNS = (
    ("seconds", "converge s", "{:.2f}"),
    ("cpu_s", "CPU s", "{:.2f}"),
    ("cpu_ms_per_child", "CPU ms/child", "{:.3f}"),
    ("reconciles_per_grid", "reconciles/grid", "{:.2f}"),
    ("rss_ready_mib", "RSS ready MiB", "{:.1f}"),
    ("peak_rss_mib", "peak RSS MiB", "{:.1f}"),
    ("ratio", "writes/min", "{:.3f}"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--axes", default="grids,units,nodes")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = QUICK if args.quick else AXES
    runs: dict[str, list[float]] = {}
    figures: list[Figure] = []
    lines = []
    for axis in [a.strip() for a in args.axes.split(",") if a.strip()]:
        lines.append(f"-- growth with {axis}")
        lines.append(
            f"{'grids x units x nodes/unit':<28}" + "".join(f"{t:>17}" for _, t, _ in COLUMNS)
        )
        for grids, units, per_unit in sizes[axis]:
            params = Params(
                grids=grids, units=units, nodes_per_unit=per_unit, canary_units=0, samples=0,
                workers=4, sync_period=3600.0, quiet=2.0, timeout=900.0,
            )  # fmt: skip
            size = f"{grids} x {units} x {per_unit}"
            results = []
            for index in range(args.repeats):
                log(f"growth {axis}: {size} (run {index + 1}/{args.repeats})")
                results.append(asyncio.run(one_run(params, {"converge"}))["converge"][0])
            for run in results:
                for key, _, _ in COLUMNS:
                    runs.setdefault(f"{axis}/{size}/{key}", []).append(run[key])
            for key, title, fmt in COLUMNS:
                figures.append(Figure(f"{axis}/{size}/{key}", f"{axis}: {size}: {title}", "", fmt))
            median = {
                key: sorted(r[key] for r in results)[len(results) // 2] for key, _, _ in COLUMNS
            }
            lines.append(
                f"{size:<28}" + "".join(f"{fmt.format(median[k]):>17}" for k, _, fmt in COLUMNS)
            )
    print("\n".join(lines))
    # One "run" per repetition, keyed by figure, for the shared report format.
    flat = [
        {key: values[i] for key, values in runs.items() if i < len(values)}
        for i in range(args.repeats)
    ]
    write_report("growth", figures=figures, runs=flat, details=lines, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
