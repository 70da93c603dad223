"""Multi-cluster objects: which grid is what, and the hub copies and member grids we render.

Owns: the federation names other tools can see (finalizer, field manager, annotation, label
selectors, the parent-cluster Secret), the table of distributed kinds (`FED_KINDS`), the work
queue key format (`fed_request` / `parse_fed_request`), and the pure rendering and match
checks of the two objects federation writes:

- a **copy**, in a hub cluster namespace (one labelled `clusters.clusternet.io/cluster-id`):
  the original's labels plus `superedge.io/dis: "yes"` and `superedge.io/target-namespace:
  {original namespace}`, the original's annotations plus `superedge.io/original-uid: {uid}`,
  and the original's `spec` exactly. Same name as the original (as upstream: the member finds
  the copy by name). The copy is controlled by its original through these marks, not through
  an ownerReference: an owner must live in the dependent's namespace, and Kubernetes' garbage
  collector deletes a namespaced object whose owner reference points to another namespace
  (upstream sets one, so on a real cluster its copies are deleted as soon as they are made).
  The hub reconciler therefore deletes the copies of an original that is gone itself.
- a **local grid**, in a member cluster's `target-namespace`: the copy's labels without
  `superedge.io/dis` (so the member's grid reconcilers treat it as a grid of their own), the
  copy's annotations plus `superedge.io/federated-from: {hub namespace}/{name}` (the mark that
  lets the member delete a local grid whose copy is gone), the copy's `spec`. No owner: owners
  cannot cross clusters.

Which grid is which (labels, in this order):
- copy: `superedge.io/dis=yes` (never reconciled as a grid in the hub);
- local grid: `superedge.io/target-namespace` present and not a copy (a normal grid for the
  member's reconcilers; never distributed again, so a member that is itself a hub of other
  clusters does not cascade);
- original: `superedge.io/fed=yes` and neither of the above.

Both rendered objects carry `superedge.io/applied-hash` (grid/compare.py), so the match check
catches every change of what we would apply, removals included; the derivative compare then
catches hand edits of our fields. Both are written with server-side apply under the field
manager `servicegroup-federation`: a manager of its own, because the grid reconcilers
merge-patch grid specs (autoDeleteUnusedTemplate) under `servicegroup-controller`, and one
manager must never mix apply with other operations (DESIGN section 4).

Invariants: pure; never mutates its arguments; rendered objects share no dict with their
source; kubectl's last-applied record is never copied (it describes the source object).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from servicegroup.api.models import API_VERSION
from servicegroup.controller import Request
from servicegroup.grid.compare import (
    applied_hash,
    hash_of,
    is_derivative,
)
from servicegroup.grid.labels import (
    APPLIED_HASH,
    DIS,
    FED,
    FED_ENABLED_VALUE,
    LAST_APPLIED,
    TARGET_NAMESPACE,
)
from servicegroup.grid.render import json_copy
from servicegroup.kube.resources import (
    DEPLOYMENTGRIDS,
    SERVICEGRIDS,
    STATEFULSETGRIDS,
    ResourceRef,
)
from servicegroup.reconcilers.children import WriteClient

# The member adds it to a copy before creating the local grid and removes it once the local
# grid is gone, so deleting a copy (or its original) completes only after the member cleaned up.
FINALIZER = "superedge.io/federation"
# Upstream's finalizer on copies; removed with ours, so a hub switched from upstream drains.
LEGACY_FINALIZER = "dis"
FIELD_MANAGER = "servicegroup-federation"
# On a local grid: "{hub namespace}/{name}" of the copy it was made from.
ORIGIN_ANNOTATION = "superedge.io/federated-from"
# On a copy: the uid of the original it was made from (the copy's controller mark).
ORIGINAL_UID_ANNOTATION = "superedge.io/original-uid"

# Clusternet's credentials for the parent (hub) cluster, in every member cluster.
PARENT_SECRET_NAMESPACE = "clusternet-system"
PARENT_SECRET_NAME = "parent-cluster"

COPY_SELECTOR = f"{DIS}={FED_ENABLED_VALUE}"
# Every grid that is not a hub copy: the grid informers of the grid reconcilers use this.
NOT_COPY_SELECTOR = f"{DIS}!={FED_ENABLED_VALUE}"
ORIGINAL_SELECTOR = f"{FED}={FED_ENABLED_VALUE},{NOT_COPY_SELECTOR},!{TARGET_NAMESPACE}"
LOCAL_SELECTOR = f"{TARGET_NAMESPACE},{NOT_COPY_SELECTOR}"

Obj = Mapping[str, Any]


class ReadClient(Protocol):
    """The one read federation makes outside its caches (KubeClient fits)."""

    async def get(
        self,
        ref: ResourceRef,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]: ...


class FedClient(WriteClient, ReadClient, Protocol):
    """The API calls federation makes on one cluster (KubeClient fits).

    The read: before creating a copy or a local grid, one GET for its name, because our
    caches are filtered by label and cannot show an object of that name that is not ours.
    """


@dataclass(frozen=True)
class FedKind:
    """A distributed grid kind; `short` names it in work-queue keys and logs."""

    kind: str
    ref: ResourceRef
    short: str
    has_states: bool


FED_KINDS: tuple[FedKind, ...] = (
    FedKind("DeploymentGrid", DEPLOYMENTGRIDS, "deploymentgrid", True),
    FedKind("StatefulSetGrid", STATEFULSETGRIDS, "statefulsetgrid", True),
    FedKind("ServiceGrid", SERVICEGRIDS, "servicegrid", False),
)
_BY_SHORT = {k.short: k for k in FED_KINDS}


def fed_request(namespace: str, kind: FedKind, name: str) -> Request:
    """The work-queue key of one grid of `kind`: `Request(namespace, "{short}/{name}")`.

    One queue serves three kinds; an object name never contains "/", so the split is exact.
    """
    return Request(namespace, f"{kind.short}/{name}")


def parse_fed_request(request: Request) -> tuple[FedKind, str]:
    """(kind, name) of a key made by `fed_request`; ValueError for anything else."""
    short, sep, name = request.name.partition("/")
    kind = _BY_SHORT.get(short)
    if not sep or kind is None or not name:
        raise ValueError(f"not a federation key: {request.name!r}")
    return kind, name


# ------------------------------------------------------------------------------ reading


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def labels_of(obj: Obj) -> Mapping[str, str]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def annotations_of(obj: Obj) -> Mapping[str, str]:
    annotations = _meta(obj).get("annotations")
    return annotations if isinstance(annotations, Mapping) else {}


def name_of(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def namespace_of(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "")


def uid_of(obj: Obj) -> str:
    return str(_meta(obj).get("uid") or "")


def resource_version_of(obj: Obj) -> str:
    return str(_meta(obj).get("resourceVersion") or "")


def generation_of(obj: Obj) -> int | None:
    value = _meta(obj).get("generation")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def finalizers_of(obj: Obj) -> list[str]:
    value = _meta(obj).get("finalizers")
    return [str(f) for f in value] if isinstance(value, list) else []


def is_copy(obj: Obj) -> bool:
    return labels_of(obj).get(DIS) == FED_ENABLED_VALUE


def is_local(obj: Obj) -> bool:
    return TARGET_NAMESPACE in labels_of(obj) and not is_copy(obj)


def is_original(obj: Obj) -> bool:
    return labels_of(obj).get(FED) == FED_ENABLED_VALUE and not is_copy(obj) and not is_local(obj)


def target_namespace(obj: Obj) -> str:
    """A copy's (or local grid's) `superedge.io/target-namespace`, "" when absent."""
    return str(labels_of(obj).get(TARGET_NAMESPACE) or "")


def grid_uniq_key(obj: Obj) -> str:
    spec = obj.get("spec")
    key = spec.get("gridUniqKey") if isinstance(spec, Mapping) else None
    return key if isinstance(key, str) else ""


def index_by_origin(obj: dict[str, Any]) -> list[str]:
    """Index function: a copy's original as "{namespace}/{name}"."""
    target = target_namespace(obj)
    return [f"{target}/{name_of(obj)}"] if target and is_copy(obj) else []


ORIGIN_INDEX = "federation-origin"


def owned_copy(obj: Obj, *, namespace: str, name: str) -> bool:
    """Is `obj` a copy made from the original `namespace/name` (of any incarnation)?"""
    return (
        is_copy(obj)
        and target_namespace(obj) == namespace
        and name_of(obj) == name
        and bool(annotations_of(obj).get(ORIGINAL_UID_ANNOTATION))
    )


def original_uid_of_copy(obj: Obj) -> str:
    return str(annotations_of(obj).get(ORIGINAL_UID_ANNOTATION) or "")


# ------------------------------------------------------------------------------ rendering


_HUB_ONLY_ANNOTATIONS = frozenset({LAST_APPLIED, APPLIED_HASH, ORIGINAL_UID_ANNOTATION})


def _clean_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    return {k: str(v) for k, v in annotations.items() if k not in _HUB_ONLY_ANNOTATIONS}


def _finish(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[APPLIED_HASH] = applied_hash(obj)
    return obj


def render_copy(original: Obj, *, kind: FedKind, namespace: str) -> dict[str, Any]:
    """The copy of `original` for the hub cluster namespace `namespace`."""
    labels = {k: str(v) for k, v in labels_of(original).items()}
    labels[DIS] = FED_ENABLED_VALUE
    labels[TARGET_NAMESPACE] = namespace_of(original)
    annotations = _clean_annotations(annotations_of(original))
    annotations[ORIGINAL_UID_ANNOTATION] = uid_of(original)
    spec = original.get("spec")
    return _finish(
        {
            "apiVersion": API_VERSION,
            "kind": kind.kind,
            "metadata": {
                "name": name_of(original),
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": json_copy(spec) if isinstance(spec, Mapping) else {},
        }
    )


def applied_matches(live: Obj, desired: Obj) -> bool:
    """Applying `desired` (a copy or a local grid) would change nothing we own: the hash of
    what we apply is unchanged and every field we set still has our value."""
    if hash_of(live) != hash_of(desired):
        return False
    return is_derivative(
        {k: v for k, v in desired.items() if k in ("metadata", "spec")},
        {k: v for k, v in live.items() if k in ("metadata", "spec")},
    )


def render_local(copy: Obj, *, hub_namespace: str) -> dict[str, Any]:
    """The member's local grid for `copy` (found in the hub namespace `hub_namespace`)."""
    labels = {k: str(v) for k, v in labels_of(copy).items() if k != DIS}
    annotations = _clean_annotations(annotations_of(copy))
    annotations[ORIGIN_ANNOTATION] = f"{hub_namespace}/{name_of(copy)}"
    spec = copy.get("spec")
    return _finish(
        {
            "apiVersion": API_VERSION,
            "kind": str(copy.get("kind") or ""),
            "metadata": {
                "name": name_of(copy),
                "namespace": target_namespace(copy),
                "labels": labels,
                "annotations": annotations,
            },
            "spec": json_copy(spec) if isinstance(spec, Mapping) else {},
        }
    )


def made_by_federation(local: Obj) -> bool:
    """A local grid carrying our origin mark (only those are deleted when their copy is gone)."""
    return ORIGIN_ANNOTATION in annotations_of(local)


def finalizers_patch(obj: Obj, finalizers: list[str]) -> dict[str, Any]:
    """A merge patch setting `finalizers`, refused (409) if `obj` changed meanwhile."""
    return {
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": resource_version_of(obj),
        }
    }


def without_our_finalizers(obj: Obj) -> list[str] | None:
    """The finalizers minus ours (and upstream's); None when there is nothing to remove."""
    current = finalizers_of(obj)
    kept = [f for f in current if f not in (FINALIZER, LEGACY_FINALIZER)]
    return kept if len(kept) != len(current) else None
