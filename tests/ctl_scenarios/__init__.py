"""The controller scenarios, written once and run against kubesim and a real cluster.

Each scenario is an async function of one `CtlCluster` (cluster.py) registered with
`@scenario`; `SCENARIOS` lists them all. Two suites run them:
- tests/integration/controller/test_ctl_*.py, against KubeSim with workload simulation
  (`SimCluster`, ctl_support.py), every test a one-line call of its scenario;
- tests/e2e/test_e2e_controller.py, every scenario against the cluster of
  SERVICEGROUP_E2E_KUBECONFIG (`RealCluster`, e2e_support.py).
So kubesim and a real cluster are held to the same assertions (DESIGN.md section 7).
"""

from __future__ import annotations

from ctl_scenarios import at_rest, bad_input, drift, examples, leader, nodeunits
from ctl_scenarios.cluster import SCENARIOS, CtlCluster, RunningController, Scenario

MODULES = (at_rest, bad_input, drift, examples, leader, nodeunits)

__all__ = ["MODULES", "SCENARIOS", "CtlCluster", "RunningController", "Scenario"]
