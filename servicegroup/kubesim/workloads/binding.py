"""The `pods/binding` subresource: assigning a pending pod to a node (kube-apiserver's BindingREST).

Owns: `bind_pod` - the one write that may set `spec.nodeName` of an existing pod (pod
updates may not change it): checks as the apiserver's binding storage does, sets
`spec.nodeName`, sets the `PodScheduled=True` condition and commits through the store like
every Engine write (one new resourceVersion, one MODIFIED event).

Invariants:
- Refused with the apiserver's errors: 404 when the pod is gone, 409 Conflict when the uid
  precondition fails, when the pod is being deleted ("pod X is being deleted, cannot be
  assigned to a host") or already assigned ("pod X is already assigned to node "Y"").
- Like the real binding storage, it records no managedFields entry (it is not an update
  through the field manager) and never mutates the stored pod: the new object shares the
  untouched parts of the old one, which stored objects allow.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim import errors
from servicegroup.kubesim.engine import Engine
from servicegroup.kubesim.workloads.index import PODS
from servicegroup.kubesim.workloads.objects import set_condition

Obj = dict[str, Any]


def bind_pod(
    engine: Engine, namespace: str, name: str, node: str, *, uid: str | None = None
) -> Obj:
    """Bind pod `namespace/name` to `node`; returns the stored pod."""
    pod = engine.store.get(PODS, namespace, name)
    if pod is None:
        raise errors.not_found("", "pods", name)
    meta = pod["metadata"]
    if uid is not None and meta.get("uid") != uid:
        raise errors.conflict(
            "",
            "pods",
            name,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
            f"{meta.get('uid')}",
        )
    if meta.get("deletionTimestamp"):
        raise errors.conflict(
            "", "pods", name, f"pod {name} is being deleted, cannot be assigned to a host"
        )
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise errors.conflict(
            "", "pods", name, f'pod {name} is already assigned to node "{current}"'
        )
    now = engine.now()
    status = dict(pod.get("status") or {})
    status["conditions"] = set_condition(
        status.get("conditions"),
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None},
        now=now,
    )
    bound = {
        **pod,
        "metadata": dict(meta),
        "spec": {**(pod.get("spec") or {}), "nodeName": node},
        "status": status,
    }
    # A condition that moved to True drops the Unschedulable reason and message.
    bound["status"]["conditions"] = [
        {k: v for k, v in c.items() if k not in ("reason", "message")}
        if c.get("type") == "PodScheduled"
        else c
        for c in bound["status"]["conditions"]
    ]
    engine.store.put(PODS, bound, old=pod)
    return bound
