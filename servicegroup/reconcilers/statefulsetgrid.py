"""The StatefulSetGrid reconciler: one StatefulSet `{grid}-{unit}` per NodeUnit.

Owns: `STATEFULSET_GRID` (controller name, resources).
All behaviour is shared with DeploymentGrid and lives in workloadgrid.py. StatefulSet
specifics are handled there generically: a template change touching an immutable field
(selector, serviceName, volumeClaimTemplates, podManagementPolicy) is refused by the API
server with 422, which fails that unit only (ApplyFailed, Warning Event) and is not retried
until the template or the StatefulSet changes; StatefulSet names are at most 52 characters
(grid/naming.py), and `states[unit]` is the StatefulSet's status (grid/status.py).
"""

from __future__ import annotations

from servicegroup.kube.resources import STATEFULSETGRIDS, STATEFULSETS
from servicegroup.reconcilers.workloadgrid import WorkloadKind

CONTROLLER_NAME = "statefulsetgrid"

STATEFULSET_GRID = WorkloadKind(
    controller_name=CONTROLLER_NAME,
    grid_kind="StatefulSetGrid",
    grid_ref=STATEFULSETGRIDS,
    child_ref=STATEFULSETS,
)
