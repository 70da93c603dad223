"""Per-kind write strategies: what kube-apiserver's registry strategies do around a write.

Owns: `prepare_for_create` (status reset, initial generation, Pod phase and QoS class,
Namespace phase and `kubernetes` finalizer, CRD stored versions, a DaemonSet's template
generation annotation, ServiceAccount secret references cut to their names),
`prepare_for_update` (the spec/status split between the main endpoint and `/status`,
Namespace `/finalize`, template generation), `bump_generation` (each kind's generation rule,
see `registry.GenerationPolicy`) and the small facts strategies hold
(`returns_deleted_object`, pod grace periods).

Invariants:
- Functions mutate only the `new` object they are given; `old` is a stored object and is
  never mutated (sub-structures of `old` may be shared into `new`, which is then stored as
  is: stored objects are immutable by contract).
- The main endpoint of a resource with a status subresource never changes status; `/status`
  changes nothing but status (and keeps every metadata field that status writers may not
  change: labels, annotations, finalizers, ownerReferences).
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim.registry import ResourceType

Obj = dict[str, Any]

# Registries whose DELETE answers with the deleted object instead of a Status.
_RETURNS_DELETED_OBJECT = {("", "pods"), ("", "services"), ("", "namespaces")}


def returns_deleted_object(rt: ResourceType) -> bool:
    return (rt.group, rt.plural) in _RETURNS_DELETED_OBJECT


def prepare_for_create(rt: ResourceType, obj: Obj) -> None:
    """Reset what users may not set on create (status, generation), per kind."""
    meta = obj.setdefault("metadata", {})
    if rt.generation != "none":
        meta["generation"] = 1
    kind = (rt.group, rt.kind)
    if kind == ("", "Namespace"):
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        finalizers = list(spec.get("finalizers") or [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
        spec["finalizers"] = finalizers
        return
    if kind == ("", "Pod"):
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}
        return
    if kind == ("", "Service"):
        obj["status"] = {"loadBalancer": {}}
        return
    if kind == ("", "Node"):
        return  # a kubelet registers its Node with a status
    if kind == ("", "ServiceAccount"):
        _clean_secret_references(obj)
        return
    if kind == ("apps", "DaemonSet"):
        _set_template_generation(obj, 1)
    if kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        storage = [
            v.get("name")
            for v in (obj.get("spec") or {}).get("versions") or []
            if isinstance(v, dict) and v.get("storage")
        ]
        obj["status"] = {
            "acceptedNames": {"plural": "", "kind": ""},
            "storedVersions": storage[:1],
        }
        return
    if rt.has_status:
        if rt.crd is not None:
            obj.pop("status", None)
        else:
            # An empty typed status still serializes its non-omitempty fields.
            obj["status"] = dict(_EMPTY_STATUS.get((rt.group, rt.kind), {}))


_EMPTY_STATUS: dict[tuple[str, str], dict[str, Any]] = {
    ("apps", "StatefulSet"): {"replicas": 0, "availableReplicas": 0},
    ("apps", "ReplicaSet"): {"replicas": 0},
    ("apps", "DaemonSet"): {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
}

# apps/v1 has no spec.templateGeneration: the conversion keeps the internal field in this
# annotation, so every DaemonSet read through apps/v1 carries it.
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"


def _template_generation(obj: Obj) -> int:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(TEMPLATE_GENERATION_ANNOTATION, 0))
    except (TypeError, ValueError):
        return 0


def _set_template_generation(obj: Obj, value: int) -> None:
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[TEMPLATE_GENERATION_ANNOTATION] = str(max(value, 1))
    meta["annotations"] = annotations


def _clean_secret_references(obj: Obj) -> None:
    """The ServiceAccount strategy keeps only the name of each `secrets` reference."""
    secrets = obj.get("secrets")
    if isinstance(secrets, list):
        obj["secrets"] = [
            {"name": ref["name"]} if isinstance(ref, dict) and ref.get("name") else {}
            for ref in secrets
        ]


def prepare_for_update(rt: ResourceType, new: Obj, old: Obj, *, subresource: str | None) -> Obj:
    """Return the object to store for an update of `old` with `new` through `subresource`."""
    if subresource == "status":
        result = {key: value for key, value in old.items() if key != "status"}
        if "status" in new:
            result["status"] = new["status"]
        result["metadata"] = {**old["metadata"]}
        if "managedFields" in (new.get("metadata") or {}):
            result["metadata"]["managedFields"] = new["metadata"]["managedFields"]
        return result
    if subresource == "finalize":
        result = dict(old)
        spec = dict(old.get("spec") or {})
        finalizers = (new.get("spec") or {}).get("finalizers")
        if finalizers:
            spec["finalizers"] = finalizers
        else:
            spec.pop("finalizers", None)
        result["spec"] = spec
        result["metadata"] = {**old["metadata"]}
        return result
    if rt.has_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if (rt.group, rt.kind) == ("", "ServiceAccount"):
        _clean_secret_references(new)
    if (rt.group, rt.kind) == ("apps", "DaemonSet"):
        # Update may not set the template generation; a template change bumps it.
        generation = _template_generation(old)
        old_template = (old.get("spec") or {}).get("template")
        if (new.get("spec") or {}).get("template") != old_template:
            generation += 1
        _set_template_generation(new, generation)
    if (rt.group, rt.kind) == ("", "Namespace"):
        spec = dict(new.get("spec") or {})
        old_finalizers = (old.get("spec") or {}).get("finalizers")
        if old_finalizers is not None:
            spec["finalizers"] = old_finalizers
        else:
            spec.pop("finalizers", None)
        new["spec"] = spec
    return new


def bump_generation(rt: ResourceType, new: Obj, old: Obj) -> None:
    """Set new.metadata.generation: old's, plus one when the policy says it changed."""
    meta = new.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    generation = old_meta.get("generation")
    if generation is None:
        meta.pop("generation", None)
        return
    meta["generation"] = generation
    if _spec_changed(rt, new, old):
        meta["generation"] = int(generation) + 1


def _spec_changed(rt: ResourceType, new: Obj, old: Obj) -> bool:
    if rt.generation == "none":
        return False
    if rt.generation == "spec":
        return new.get("spec") != old.get("spec")
    if rt.generation == "spec+annotations":
        return new.get("spec") != old.get("spec") or (
            (new.get("metadata") or {}).get("annotations")
            != (old.get("metadata") or {}).get("annotations")
        )
    # nonmeta, nonmeta+labels: compare everything but metadata. With a status subresource
    # the main endpoint cannot change status and `/status` writes never bump the generation;
    # without one, a status change counts like any other.
    skip = {"metadata", "status"} if rt.has_status else {"metadata"}
    keys = (set(new) | set(old)) - skip - {"apiVersion", "kind"}
    if rt.crd is not None:
        # Unstructured content: a key that appears or vanishes is a change.
        return any(key not in new or key not in old or new[key] != old[key] for key in keys)
    if any(not _semantic_equal(new.get(key), old.get(key)) for key in keys):
        return True
    if rt.generation == "nonmeta+labels":
        new_labels = (new.get("metadata") or {}).get("labels")
        old_labels = (old.get("metadata") or {}).get("labels")
        return not _semantic_equal(new_labels, old_labels)
    return False


def _semantic_equal(a: Any, b: Any) -> bool:
    """Semantic.DeepEqual on decoded values: an absent, null or empty list/map are equal."""
    if a in (None, [], {}) and b in (None, [], {}):
        return True
    return bool(a == b)


def pod_grace_period(pod: Obj, requested: int | None) -> int:
    """The pod strategy's CheckGracefulDelete: how long a deleted pod may take to stop."""
    spec = pod.get("spec") or {}
    if requested is not None:
        grace = requested
    else:
        grace = int(spec.get("terminationGracePeriodSeconds", 30) or 0)
    if not spec.get("nodeName"):
        return 0  # never scheduled: nothing to stop
    if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
        return 0
    return grace


def qos_class(pod: Obj) -> str:
    """BestEffort, Guaranteed or Burstable, from the containers' requests and limits."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = {k: v for k, v in (resources.get("requests") or {}).items() if k in _QOS}
        limits = {k: v for k, v in (resources.get("limits") or {}).items() if k in _QOS}
        if requests or limits:
            any_set = True
        if set(limits) != _QOS:
            guaranteed = False
            continue
        for name, limit in limits.items():
            if str(requests.get(name, limit)) != str(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_QOS = {"cpu", "memory"}
