"""Label and annotation keys, and the field manager name: the strings other tools can see.

Owns: every key servicegroup writes on, or reads from, objects it does not define itself.
Invariants: values are the exact upstream SuperEdge strings where upstream has one (a cluster
can switch controllers without relabelling anything); ours use the `superedge.io/` prefix.
"""

from __future__ import annotations

# On every child: the grid's name (upstream's selector for a grid's children).
GRID_SELECTOR = "superedge.io/grid-selector"
# On every child: the grid's gridUniqKey (upstream), when it is a valid label value.
GRID_UNIQ_KEY = "superedge.io/grid-uniq-key"
# On every Deployment / StatefulSet child: the raw NodeUnit value it serves. Unit membership is
# read from here, never parsed out of a (possibly sanitized) name.
NODEUNIT = "superedge.io/nodeunit"
# On every child: hash of the canonical JSON of what we applied (see grid/compare.py).
APPLIED_HASH = "superedge.io/applied-hash"

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "servicegroup"

# On a ServiceGrid's Service: JSON array of node label keys, e.g. '["zone"]' (upstream format).
TOPOLOGY_KEYS = "topologyKeys"
# On a Service (ours, opt-in): every endpoint when the local NodeUnit has none ready.
TOPOLOGY_FALLBACK = "superedge.io/topology-fallback"
# On default/kubernetes Endpoints/EndpointSlice (upstream): the single address the wrapper serves.
LOCAL_ENDPOINT = "superedge.io/local-endpoint"
LOCAL_PORT = "superedge.io/local-port"
# The label tying an EndpointSlice to its Service (set by the EndpointSlice controller).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# Multi-cluster (Clusternet): a hub grid labelled FED=yes is copied into every cluster
# namespace; copies carry DIS=yes and TARGET_NAMESPACE=<namespace of the original>.
FED = "superedge.io/fed"
DIS = "superedge.io/dis"
TARGET_NAMESPACE = "superedge.io/target-namespace"
FED_ENABLED_VALUE = "yes"
CLUSTER_ID = "clusters.clusternet.io/cluster-id"

# kubectl's client-side apply record describes the object it sits on; it is never copied from
# a grid to a child (a child carrying its grid's record would confuse `kubectl apply`).
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Server-side apply field manager, Lease name and Event source.
FIELD_MANAGER = "servicegroup-controller"
