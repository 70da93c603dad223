"""The desired children of a grid, as raw dicts ready for server-side apply (SPEC A2, B3, B4).

Owns: `render_units` (every unit's Deployment / StatefulSet, or why a unit has none),
`render_unit`, `render_workload`, `render_service`, and the labels / owner reference every
child carries.

What a child looks like:
- `apiVersion`, `kind`, `metadata.name` (grid/naming.py), `metadata.namespace` (the grid's);
- `metadata.labels`: the grid's labels, then ours on top: `superedge.io/grid-selector: {grid}`,
  `superedge.io/grid-uniq-key: {gridUniqKey}`, `superedge.io/nodeunit: {unit}` (workloads) and
  `app.kubernetes.io/managed-by: servicegroup`. A gridUniqKey with a DNS prefix
  (`example.com/zone`) is not a valid label value, so then the grid-uniq-key label is omitted
  rather than making the API server reject the child (nothing of ours reads it; it exists for
  upstream's controller, which cannot handle prefixed keys either);
- `metadata.annotations`: `superedge.io/applied-hash` (grid/compare.py) and, for the Service,
  the grid's annotations (minus kubectl's last-applied record, which describes the grid) and
  `topologyKeys: '["{gridUniqKey}"]'` (compact JSON array, as upstream writes it);
- `metadata.ownerReferences`: one controller reference to the grid (controller and
  blockOwnerDeletion true), so garbage collection deletes children with their grid;
- `spec`: a deep copy of the chosen template, exactly as the user wrote it, plus
  `template.spec.nodeSelector[gridUniqKey] = unit` merged over the template's own nodeSelector.
  Nothing is defaulted: with server-side apply we own only the fields we send, so an HPA keeps
  `replicas` when the template omits it, and `serviceName` of a StatefulSet is kept as written.

One deliberate edit: `template.metadata.creationTimestamp: null` (which Go clients and the
upstream docs write into pod templates) is dropped. It is a read-only, server-set field whose
null means "unset" both to the typed decoder and to server-side apply, so dropping it changes
nothing on the server; sending it would only list a field we never mean to own in our managed
fields and make the derivative compare depend on how a server echoes nulls.

Invariants: pure; the grid model and its templates are never mutated; no two units' children
share any dict (upstream issue 301, where one unit's nodeSelector leaked into another's, cannot
happen); a bad unit yields a `UnitFailure` for that unit only (SPEC B5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from servicegroup.api.models import (
    API_VERSION,
    AnyGrid,
    ServiceGrid,
    WorkloadGrid,
    grid_type,
)
from servicegroup.grid import conditions as cond
from servicegroup.grid.compare import applied_hash
from servicegroup.grid.labels import (
    APPLIED_HASH,
    GRID_SELECTOR,
    GRID_UNIQ_KEY,
    LAST_APPLIED,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    NODEUNIT,
    TOPOLOGY_KEYS,
)
from servicegroup.grid.naming import (
    NameCollisionError,
    assign_child_names,
    is_label_value,
    service_name,
)
from servicegroup.grid.templates import TemplateNotFound, choose_template


class RenderedChild(NamedTuple):
    unit: str
    name: str
    template_name: str  # "default" or the templatePool key used
    obj: dict[str, Any]


class RenderPlan(NamedTuple):
    """Every unit is in exactly one of the two maps."""

    children: dict[str, RenderedChild]
    failures: dict[str, cond.UnitFailure]


class TemplateShapeError(ValueError):
    """The chosen template cannot carry a nodeSelector (a part of it is not an object)."""


def json_copy(value: Any) -> Any:
    """Deep copy of JSON-like data (dicts, lists, scalars): faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def owner_reference(grid: AnyGrid) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": grid.kind,
        "name": grid.metadata.name,
        "uid": grid.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_labels(grid: AnyGrid, *, unit: str | None) -> dict[str, str]:
    """The grid's labels plus ours (ours win on a clash)."""
    labels = dict(grid.metadata.labels)
    labels[GRID_SELECTOR] = grid.metadata.name
    key = grid.spec.grid_uniq_key
    if is_label_value(key):
        labels[GRID_UNIQ_KEY] = key
    else:
        labels.pop(GRID_UNIQ_KEY, None)
    if unit is not None:
        labels[NODEUNIT] = unit
    labels[MANAGED_BY] = MANAGED_BY_VALUE
    return labels


def topology_keys_annotation(key: str) -> str:
    """'["zone"]': the JSON array upstream's wrapper parses."""
    return orjson.dumps([key]).decode()


def _finish(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[APPLIED_HASH] = applied_hash(obj)
    return obj


def _object(field: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TemplateShapeError(f"{field}: Invalid value: must be an object")
    return value


def render_workload(
    grid: WorkloadGrid, *, unit: str, name: str, template: Mapping[str, Any], field: str
) -> dict[str, Any]:
    """The Deployment / StatefulSet serving `unit`, from `template` (found at `field`)."""
    kind = grid_type(grid.kind)
    key = grid.spec.grid_uniq_key
    spec = json_copy(dict(template))
    pod = spec["template"] = _object(f"{field}.template", spec.get("template"))
    metadata = pod.get("metadata")
    if isinstance(metadata, dict) and metadata.get("creationTimestamp", 0) is None:
        del metadata["creationTimestamp"]
    pod_spec = pod["spec"] = _object(f"{field}.template.spec", pod.get("spec"))
    selector = _object(f"{field}.template.spec.nodeSelector", pod_spec.get("nodeSelector"))
    pod_spec["nodeSelector"] = {**selector, key: unit}
    return _finish(
        {
            "apiVersion": kind.child_api_version,
            "kind": kind.child_kind,
            "metadata": {
                "name": name,
                "namespace": grid.metadata.namespace,
                "labels": child_labels(grid, unit=unit),
                "ownerReferences": [owner_reference(grid)],
            },
            "spec": spec,
        }
    )


def render_unit(grid: WorkloadGrid, unit: str, *, name: str) -> RenderedChild | cond.UnitFailure:
    """`unit`'s child under `name`, or the failure that prevents it."""
    choice = choose_template(grid.spec, unit)
    if isinstance(choice, TemplateNotFound):
        return cond.UnitFailure(
            unit, cond.TEMPLATE_NOT_FOUND, cond.MISSING_TEMPLATE, choice.message
        )
    try:
        obj = render_workload(
            grid, unit=unit, name=name, template=choice.template, field=choice.field
        )
    except TemplateShapeError as exc:
        return cond.UnitFailure(unit, cond.INVALID_SPEC, cond.INVALID_TEMPLATE, str(exc))
    return RenderedChild(unit, name, choice.name, obj)


def render_units(grid: WorkloadGrid, units: Iterable[str]) -> RenderPlan:
    """Children for every unit: names assigned without collisions, templates chosen per unit."""
    kind = grid_type(grid.kind)
    assignment = assign_child_names(grid.metadata.name, units, kind=kind.child_kind)
    children: dict[str, RenderedChild] = {}
    failures: dict[str, cond.UnitFailure] = {}
    for unit, error in assignment.errors.items():
        if isinstance(error, NameCollisionError):
            failures[unit] = cond.UnitFailure(
                unit, cond.CHILD_CONFLICT, cond.NAME_COLLISION, str(error)
            )
        else:
            failures[unit] = cond.UnitFailure(
                unit, cond.INVALID_SPEC, cond.INVALID_NAME, str(error)
            )
    for unit, name in sorted(assignment.names.items()):
        result = render_unit(grid, unit, name=name)
        if isinstance(result, RenderedChild):
            children[unit] = result
        else:
            failures[unit] = result
    return RenderPlan(children, failures)


def render_service(grid: ServiceGrid) -> dict[str, Any]:
    """The Service `{grid}-svc`; raises ChildNameError when the grid name cannot form it."""
    annotations = {k: v for k, v in grid.metadata.annotations.items() if k != LAST_APPLIED}
    annotations[TOPOLOGY_KEYS] = topology_keys_annotation(grid.spec.grid_uniq_key)
    return _finish(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": service_name(grid.metadata.name),
                "namespace": grid.metadata.namespace,
                "labels": child_labels(grid, unit=None),
                "annotations": annotations,
                "ownerReferences": [owner_reference(grid)],
            },
            "spec": json_copy(grid.spec.template),
        }
    )
