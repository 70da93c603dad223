"""NodeUnit discovery: node events -> unit sets per label key -> the grids to reconcile.

Owns: `NodeUnitDiscovery`, the process's one `NodeUnitIndex` (grid/nodeunits.py), the
`servicegroup_nodeunits{key}` gauge, and the node informer transform `NODE_TRANSFORM`.

This "controller" has no work queue of its own, by design: everything it does is synchronous
bookkeeping inside informer handlers (DESIGN.md section 3.3), O(labels of one node) per node
event. Its output is the set of grids to enqueue, and the grid controllers' queues already
collapse duplicates and serialize per grid. A queue here would only add latency.

Invariants:
- Label keys are tracked while at least one DeploymentGrid or StatefulSetGrid uses them as
  `gridUniqKey` (`grid_seen` / `grid_gone`, fed by the grid informers' handlers); the index
  itself knows every label of every node, so a key tracked for the first time is answered
  at once, with no rescan.
- A node event enqueues exactly the grids whose key's *unit set* changed (a unit gained its
  first node or lost its last one); moving a node between two units that both keep nodes,
  or changing a label no grid uses, enqueues nothing. ServiceGrids do not depend on units.
- Nodes are cached as labels only (`NODE_TRANSFORM`): NodeUnits are defined by labels alone,
  never by readiness (SPEC A2).
- The gauge has one series per tracked key, removed when the key stops being tracked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from structlog.typing import FilteringBoundLogger

from servicegroup.controller import Request
from servicegroup.grid.nodeunits import NodeUnitIndex, diff_units
from servicegroup.informers.informer import HandlerFuncs
from servicegroup.informers.store import DeletedFinalStateUnknown
from servicegroup.metrics import Metrics
from servicegroup.reconcilers.gridindex import (
    GRID_UNIQ_KEY_INDEX,
    NamespacedStores,
    grid_request,
)


def labels_only(obj: dict[str, Any]) -> dict[str, Any]:
    """A Node reduced to what NodeUnits need: name, uid, resourceVersion and labels."""
    metadata = obj.get("metadata") or {}
    kept = {k: metadata[k] for k in ("name", "uid", "resourceVersion", "labels") if k in metadata}
    return {"apiVersion": obj.get("apiVersion", "v1"), "kind": "Node", "metadata": kept}


NODE_TRANSFORM = labels_only


class GridTarget(NamedTuple):
    """Grids of one kind that depend on unit sets, and how to enqueue one of them."""

    kind: str
    grids: NamespacedStores
    enqueue: Callable[[Request], None]


class NodeUnitDiscovery:
    """Keeps unit sets current from node events and tells the grid controllers what changed."""

    def __init__(
        self, *, metrics: Metrics, logger: FilteringBoundLogger, index: NodeUnitIndex | None = None
    ) -> None:
        self.index = index if index is not None else NodeUnitIndex()
        self._gauge = metrics.nodeunits
        self._log = logger.bind(controller="nodeunit")
        self._targets: list[GridTarget] = []
        self._key_of: dict[str, str] = {}  # holder (kind/ns/name) -> the key it tracks
        self._known: dict[str, frozenset[str]] = {}  # tracked key -> last reported unit set

    def add_target(self, target: GridTarget) -> None:
        self._targets.append(target)

    # ------------------------------------------------------------------ queries

    def units(self, key: str) -> frozenset[str]:
        """The current NodeUnits of label key `key`."""
        return self.index.units(key)

    # ------------------------------------------------------------------ grids

    def grid_seen(self, *, holder: str, key: str) -> None:
        """A grid (`holder`) exists with gridUniqKey `key` (empty: none yet)."""
        old = self._key_of.get(holder)
        if old == key:
            return
        if old is not None:
            self.grid_gone(holder=holder)
        if not key:
            return
        self._key_of[holder] = key
        if self.index.track(key, holder=holder):
            self._known[key] = self.index.units(key)
            self._gauge.labels(key).set(len(self._known[key]))

    def grid_gone(self, *, holder: str) -> None:
        key = self._key_of.pop(holder, None)
        if key is not None and self.index.untrack(key, holder=holder):
            self._known.pop(key, None)
            self._gauge.remove(key)

    # ------------------------------------------------------------------ nodes

    def node_handlers(self) -> HandlerFuncs:
        return HandlerFuncs(
            on_add=lambda obj, _initial: self.node_changed(obj),
            on_update=lambda _old, new: self.node_changed(new),
            on_delete=self.node_deleted,
        )

    def node_changed(self, node: Mapping[str, Any]) -> None:
        self._changed(self.index.upsert_node(node))

    def node_deleted(self, node: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        if isinstance(node, DeletedFinalStateUnknown):
            name = node.key
        else:
            name = str((node.get("metadata") or {}).get("name") or "")
        self._changed(self.index.remove_node(name))

    def _changed(self, keys: set[str]) -> None:
        for key in sorted(keys):
            units = self.index.units(key)
            diff = diff_units(self._known.get(key, frozenset()), units)
            self._known[key] = units
            self._gauge.labels(key).set(len(units))
            for unit in sorted(diff.added):
                self._log.info("NodeUnit appeared", key=key, nodeunit=unit)
            for unit in sorted(diff.removed):
                self._log.info("NodeUnit vanished", key=key, nodeunit=unit)
            for target in self._targets:
                for grid in target.grids.by_index(GRID_UNIQ_KEY_INDEX, key):
                    target.enqueue(grid_request(grid))
