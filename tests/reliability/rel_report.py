"""Collect the scenarios' records (JSON lines from $SERVICEGROUP_REL_REPORT) into the chaos
report: merged into --out under "scenarios", and printed as the Markdown table of
docs/reliability.md. Run by hack/chaos (not collected by pytest)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

TITLES = {
    "rel_watch_faults": "1. watch streams closed, history expired (410)",
    "rel_write_faults": "2. 10% of writes fail (500/429/409), latency spikes",
    "rel_outage": "3. API server unreachable",
    "rel_sigkill_mid_convergence": "4. controller SIGKILLed converging 50 grids",
    "rel_leader_killed_follower_takes_over": "5. leader SIGKILLed, follower takes over",
    "rel_label_churn": "6. label churn: nodes move, units come and go",
    "rel_hostile_input": "7. hostile input (hypothesis)",
    "rel_wrapper_and_dns_under_upstream_faults": "8. wrapper and DNS helper under faults",
}


def faults_text(record: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in sorted(record.get("faults", {}).items()))


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | faults injected | invariant checks passed | objects lost "
        "| longest re-convergence |",
        "|---|---|---|---|---|",
    ]
    for record in sorted(records, key=lambda r: TITLES.get(r["scenario"], r["scenario"])):
        title = TITLES.get(record["scenario"], record["scenario"])
        lines.append(
            f"| {title} | {faults_text(record)} | {record['invariant_checks']} "
            f"({record['invariant_passes']} evaluations) | {record['objects_lost']} "
            f"| {record['longest_reconverge_seconds']:.1f} s |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("--out", type=Path, default=Path(".bench/chaos.json"))
    args = parser.parse_args()
    records = [json.loads(line) for line in args.records.read_text().splitlines() if line.strip()]
    report: dict[str, Any] = {}
    if args.out.exists():
        with contextlib.suppress(ValueError):
            report = json.loads(args.out.read_text())
    report["scenarios"] = records
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(table(records))
    lost = sum(r["objects_lost"] for r in records)
    print(f"\n{len(records)} scenarios recorded, {lost} objects lost; JSON in {args.out}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
