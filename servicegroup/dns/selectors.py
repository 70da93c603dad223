"""The label selectors that keep a node's caches limited to its own NodeUnits (pure).

Owns: which StatefulSets and pods the daemon watches, as label-selector strings, from what it
already knows (its Node, the StatefulSetGrids, the local StatefulSets).

Memory trade-off (the daemon runs on every node, so its caches must not grow with the
cluster):
- StatefulSets: `superedge.io/grid-selector,superedge.io/nodeunit in (v1,...)` where the
  values are the node's own values of every label key some StatefulSetGrid uses as its
  `gridUniqKey`. Only the local units' StatefulSets are cached. The selector changes when the
  node moves to another unit or a grid with a new key appears (rare); the watcher then
  re-lists with the new selector.
- Pods: StatefulSet pods carry `statefulset.kubernetes.io/pod-name: {name}`, but no unit or
  grid label (grid templates are the same in every unit), so the only server-side filter that
  isolates the local unit's pods is that label with the exact names the local StatefulSets
  want: `statefulset.kubernetes.io/pod-name in ({sts}-0,...)`. It changes when a local
  StatefulSet scales (a re-list of just those pods). A selector longer than
  `MAX_SELECTOR_LENGTH` (URLs beyond ~8 KiB are refused by many servers and proxies) falls
  back to the existence selector `statefulset.kubernetes.io/pod-name`: every StatefulSet pod
  of the cluster, correct but no longer bounded.
- StatefulSetGrids, ServiceGrids and ServiceGrid Services (`superedge.io/grid-selector`
  existence) are watched whole: they grow with the number of grids, not with nodes or pods.

Invariants: equal inputs give equal strings (values sorted, duplicates removed), so a selector
only "changes" when its meaning does; None means "nothing to watch".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from servicegroup.dns.records import STATEFULSETGRID_KIND, grid_uniq_key, ordinals
from servicegroup.grid.compare import controller_of
from servicegroup.grid.labels import GRID_SELECTOR, NODEUNIT
from servicegroup.grid.naming import is_label_value

# Set by the StatefulSet controller on every pod it creates (Kubernetes >= 1.9).
STATEFULSET_POD_NAME = "statefulset.kubernetes.io/pod-name"
MAX_SELECTOR_LENGTH = 4096

# ServiceGrid Services carry the grid-selector label like every grid child.
SERVICE_SELECTOR = GRID_SELECTOR


def local_units(
    node_labels: Mapping[str, str] | None, statefulset_grids: Iterable[Mapping[str, Any]]
) -> frozenset[str]:
    """The node's non-empty values of every label key used as some grid's `gridUniqKey`."""
    if not node_labels:
        return frozenset()
    keys = {grid_uniq_key(grid) for grid in statefulset_grids}
    return frozenset(
        value for key in keys if key and (value := node_labels.get(key)) and is_label_value(value)
    )


def statefulset_selector(units: Iterable[str]) -> str | None:
    """Grid StatefulSets serving any of `units`; None when there is no unit."""
    values = sorted(set(units))
    if not values:
        return None
    return f"{GRID_SELECTOR},{NODEUNIT} in ({','.join(values)})"


def wanted_pod_names(statefulsets: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """`{sts}-{ordinal}` for every ordinal of every StatefulSet a StatefulSetGrid controls."""
    names: set[str] = set()
    for sts in statefulsets:
        ref = controller_of(sts)
        name = (sts.get("metadata") or {}).get("name")
        if ref is None or ref.get("kind") != STATEFULSETGRID_KIND or not isinstance(name, str):
            continue
        names.update(f"{name}-{ordinal}" for ordinal in ordinals(sts))
    return frozenset(name for name in names if is_label_value(name))


def pod_selector(names: Iterable[str]) -> str | None:
    """Pods with exactly these names; the existence selector when that would be too long."""
    values = sorted(set(names))
    if not values:
        return None
    selector = f"{STATEFULSET_POD_NAME} in ({','.join(values)})"
    if len(selector) > MAX_SELECTOR_LENGTH:
        return STATEFULSET_POD_NAME
    return selector
