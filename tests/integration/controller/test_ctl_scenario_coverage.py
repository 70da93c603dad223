"""Every shared controller scenario (tests/ctl_scenarios) also runs here, on kubesim.

tests/e2e runs every registered scenario against a real cluster; this keeps kubesim held to
the same list: each scenario must be awaited by a test of this suite, on the lenient cluster
when it needs CRDs without CEL rules.
"""

from __future__ import annotations

from pathlib import Path

from ctl_scenarios import SCENARIOS


def test_every_shared_scenario_runs_on_kubesim() -> None:
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_ctl_*.py"))
    missing = []
    for scenario in SCENARIOS:
        fixture = "ctl_lenient_cluster" if scenario.lenient else "ctl_cluster"
        call = f"await {scenario.module}.{scenario.function}({fixture}"
        if call not in sources:
            missing.append(f"{scenario.name} (expected `{call}`)")
    assert SCENARIOS, "no scenario registered"
    assert missing == [], f"shared scenarios not run on kubesim: {missing}"
