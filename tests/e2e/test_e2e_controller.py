"""Every controller scenario (tests/ctl_scenarios) against a real cluster.

The same scenario functions run on kubesim in tests/integration/controller, so kubesim and a
real cluster are held to the same assertions. The controller runs in-process, pointed at the
cluster of SERVICEGROUP_E2E_KUBECONFIG; see e2e_support.py for what each test sets up and
removes. What a real cluster cannot do is skipped with the reason: lenient scenarios (they
need grid CRDs without CEL rules; `the_crd_refuses_what_the_lenient_scenarios_send` checks
the real API server refuses their input instead), and, at run time, scenarios needing more
NodeUnits or spare nodes than the cluster has. Exact per-resource request counts are
kubesim-only assertions inside otherwise shared scenarios.
"""

from __future__ import annotations

from typing import Any

import pytest
from ctl_scenarios import SCENARIOS, Scenario
from e2e_support import RealCluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LENIENT = (
    "needs grid CRDs without their CEL rules (so bad input reaches the controller); a real "
    "cluster keeps its CRDs: the_crd_refuses_what_the_lenient_scenarios_send covers it"
)


def _param(scenario: Scenario) -> Any:
    marks = [pytest.mark.skip(reason=LENIENT)] if scenario.lenient else []
    return pytest.param(scenario, id=scenario.name, marks=marks)


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
async def test_controller_scenario(scenario: Scenario, e2e_cluster: RealCluster) -> None:
    await scenario.run(e2e_cluster)
