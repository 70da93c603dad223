"""The DeploymentGrid reconciler: one Deployment `{grid}-{unit}` per NodeUnit.

Owns: `DEPLOYMENT_GRID` (controller name, resources).
All behaviour is shared with StatefulSetGrid and lives in workloadgrid.py; what differs is
only the child kind, its resource and its readiness rule (grid/status.py: a Deployment's
unit is ready when its rollout is complete).
"""

from __future__ import annotations

from servicegroup.kube.resources import DEPLOYMENTGRIDS, DEPLOYMENTS
from servicegroup.reconcilers.workloadgrid import WorkloadKind

CONTROLLER_NAME = "deploymentgrid"

DEPLOYMENT_GRID = WorkloadKind(
    controller_name=CONTROLLER_NAME,
    grid_kind="DeploymentGrid",
    grid_ref=DEPLOYMENTGRIDS,
    child_ref=DEPLOYMENTS,
)
