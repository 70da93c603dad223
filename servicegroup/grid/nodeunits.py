"""NodeUnits: the distinct non-empty values of a node label key, and the nodes carrying each.

Owns: `units_of` (pure, from a list of node dicts), `diff_units`, and `NodeUnitIndex`, the
incremental index the NodeUnit discovery reconciler feeds with node events.

Invariants of `NodeUnitIndex`:
- It indexes every label of every node it has seen (only non-empty values count), so `units()`
  and `nodes_in()` answer for any key at once, including a key tracked for the first time.
- `upsert_node` / `remove_node` cost O(labels of that node), never a scan of all nodes.
- They return the tracked keys whose *unit set* changed (a value gained its first node or lost
  its last one). A node moving between two units that both keep other nodes changes no unit
  set and is not reported: children depend only on unit sets (SPEC A2).
- A key is tracked while at least one holder (e.g. a grid's namespace/name) tracks it;
  `track` / `untrack` are idempotent per holder.
- Only synchronous code mutates it (DESIGN section 4): no locking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple


class UnitDiff(NamedTuple):
    added: frozenset[str]
    removed: frozenset[str]


def node_labels(node: Mapping[str, Any]) -> dict[str, str]:
    """The node's labels with non-empty string values (an empty value defines no NodeUnit)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    return {k: v for k, v in labels.items() if isinstance(v, str) and v}


def units_of(nodes: Iterable[Mapping[str, Any]], key: str) -> frozenset[str]:
    """The NodeUnits of `key` among `nodes`."""
    return frozenset(v for n in nodes if (v := node_labels(n).get(key)))


def diff_units(old: Iterable[str], new: Iterable[str]) -> UnitDiff:
    """(added, removed) between two unit sets."""
    old_set, new_set = frozenset(old), frozenset(new)
    return UnitDiff(new_set - old_set, old_set - new_set)


class NodeUnitIndex:
    """Unit sets and memberships per label key, updated one node event at a time."""

    def __init__(self) -> None:
        self._labels: dict[str, dict[str, str]] = {}  # node name -> non-empty labels
        self._members: dict[str, dict[str, set[str]]] = {}  # key -> value -> node names
        self._holders: dict[str, set[str]] = {}  # tracked key -> holders

    # -- tracking -------------------------------------------------------------------------

    def track(self, key: str, *, holder: str = "") -> bool:
        """Report changes of `key` on behalf of `holder`; True when the key was not tracked."""
        holders = self._holders.setdefault(key, set())
        was_untracked = not holders
        holders.add(holder)
        return was_untracked

    def untrack(self, key: str, *, holder: str = "") -> bool:
        """Drop `holder`'s interest in `key`; True when nobody tracks the key any more."""
        holders = self._holders.get(key)
        if holders is None:
            return False
        holders.discard(holder)
        if holders:
            return False
        del self._holders[key]
        return True

    def tracked(self) -> frozenset[str]:
        return frozenset(self._holders)

    # -- node events ----------------------------------------------------------------------

    def upsert_node(self, node: Mapping[str, Any]) -> set[str]:
        """Add or update a node; the tracked keys whose unit set changed."""
        name = str((node.get("metadata") or {}).get("name", ""))
        new = node_labels(node)
        old = self._labels.get(name, {})
        changed: set[str] = set()
        for key in old.keys() | new.keys():
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if before is not None and self._leave(key, before, name):
                changed.add(key)
            if after is not None and self._join(key, after, name):
                changed.add(key)
        self._labels[name] = new
        return {k for k in changed if k in self._holders}

    def remove_node(self, name: str) -> set[str]:
        """Forget a node; the tracked keys whose unit set changed."""
        old = self._labels.pop(name, None)
        if old is None:
            return set()
        changed = {key for key, value in old.items() if self._leave(key, value, name)}
        return {k for k in changed if k in self._holders}

    # -- queries --------------------------------------------------------------------------

    def units(self, key: str) -> frozenset[str]:
        return frozenset(self._members.get(key, {}))

    def nodes_in(self, key: str, value: str) -> frozenset[str]:
        return frozenset(self._members.get(key, {}).get(value, ()))

    def unit_of(self, node_name: str, key: str) -> str | None:
        """The NodeUnit of `key` that node `node_name` belongs to, if any."""
        return self._labels.get(node_name, {}).get(key)

    def __len__(self) -> int:
        return len(self._labels)

    # -- internals ------------------------------------------------------------------------

    def _join(self, key: str, value: str, node: str) -> bool:
        """Add a membership; True when this created the unit."""
        values = self._members.setdefault(key, {})
        nodes = values.get(value)
        if nodes is None:
            values[value] = {node}
            return True
        nodes.add(node)
        return False

    def _leave(self, key: str, value: str, node: str) -> bool:
        """Remove a membership; True when this removed the unit."""
        values = self._members.get(key)
        if values is None or value not in values:
            return False
        nodes = values[value]
        nodes.discard(node)
        if nodes:
            return False
        del values[value]
        if not values:
            del self._members[key]
        return True
