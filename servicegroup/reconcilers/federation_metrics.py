"""Multi-cluster distribution's view of its Prometheus collectors (defined in metrics.py).

Owns: `FederationMetrics`, which pre-creates every series of `servicegroup_federation_*` at
zero (bounded labels: side, grid kind, operation, failure reason; never a grid, namespace or
cluster name) and records writes and failures.
"""

from __future__ import annotations

from servicegroup.metrics import Metrics
from servicegroup.reconcilers.federation_reasons import HUB_FAILURES, MEMBER_FAILURES
from servicegroup.reconcilers.federation_render import FED_KINDS

SIDE_HUB = "hub"
SIDE_MEMBER = "member"
OP_APPLY = "apply"
OP_DELETE = "delete"
OP_STATUS = "status"
OP_FINALIZER = "finalizer"
OPERATIONS = (OP_APPLY, OP_DELETE, OP_STATUS, OP_FINALIZER)


class FederationMetrics:
    """The federation collectors, created once per process (or per test) on `registry`."""

    def __init__(self, metrics: Metrics) -> None:
        self.writes = metrics.federation_writes
        self.failures = metrics.federation_failures
        self.clusters = metrics.federation_clusters
        self.hub_connected = metrics.federation_hub_connected
        self.hub_sessions = metrics.federation_hub_sessions
        for side in (SIDE_HUB, SIDE_MEMBER):
            for kind in FED_KINDS:
                for operation in OPERATIONS:
                    self.writes.labels(side, kind.kind, operation)
        for reason in HUB_FAILURES:
            self.failures.labels(SIDE_HUB, reason)
        for reason in MEMBER_FAILURES:
            self.failures.labels(SIDE_MEMBER, reason)

    def wrote(self, *, side: str, kind: str, operation: str) -> None:
        self.writes.labels(side, kind, operation).inc()

    def failed(self, *, side: str, reason: str) -> None:
        self.failures.labels(side, reason).inc()
