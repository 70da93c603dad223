"""kube-scheduler for kubesim: binds pending pods to eligible nodes, spreading replicas.

Owns: `Scheduler` - a loop over pending pod keys. For each pod that needs a node
(`spec.nodeName` empty, `schedulerName` default-scheduler, not being deleted, no scheduling
gates) it runs the default profile's filters in upstream order - NodeUnschedulable,
TaintToleration (NoSchedule/NoExecute), NodeAffinity (`nodeSelector` and required node
affinity), NodeResourcesFit (the node's `pods` allocatable) - then picks the eligible node
with the fewest pods of the same controller, then the fewest pods, ties rotating, and binds
the pod (`binding.bind_pod`). A pod with no eligible node gets `PodScheduled=False`,
reason `Unschedulable`, with kube-scheduler's "0/N nodes are available: ..." message, and
is retried whenever a Node changes or a bound pod goes away.

Invariants:
- Writes: the binding (no managedFields, like the real binding subresource) and the
  Unschedulable condition through the status subresource as `kube-scheduler`, only when
  it changes (no write loop on repeated failures).
- Node filtering for pods with the same scheduling constraints is computed once per node
  generation (the per-pass cache); per-pod work is one pass over the eligible nodes.
- A pod is never bound twice: the binding re-checks the stored pod, and a pod already bound
  is dropped from every retry set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from servicegroup.kubesim.store import DELETED, StoreEvent, clone
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.binding import bind_pod
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.index import NODES, PODS, Key, key_of
from servicegroup.kubesim.workloads.nodes import UNSCHEDULABLE_TAINT

Obj = dict[str, Any]

DEFAULT_SCHEDULER = "default-scheduler"
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
_NOT_HELPFUL = "Preemption is not helpful for scheduling"
_NO_VICTIMS = "No preemption victims found for incoming pod"


class NodeInfo(NamedTuple):
    name: str
    labels: Mapping[str, str]
    taints: tuple[Obj, ...]
    unschedulable: bool
    max_pods: int


def _max_pods(node: Obj) -> int:
    value = ((node.get("status") or {}).get("allocatable") or {}).get("pods")
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 110


def node_info(node: Obj) -> NodeInfo:
    spec = objects.spec(node)
    return NodeInfo(
        name=objects.meta(node)["name"],
        labels=objects.labels(node),
        taints=tuple(t for t in spec.get("taints") or () if isinstance(t, dict)),
        unschedulable=bool(spec.get("unschedulable")),
        max_pods=_max_pods(node),
    )


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    if operator == "Equal":
        return bool(key) and (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taint(taints: tuple[Obj, ...], tolerations: list[Obj]) -> Obj | None:
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _requirement_matches(expr: Mapping[str, Any], value: str | None) -> bool:
    operator = expr.get("operator")
    values = [str(v) for v in expr.get("values") or ()]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def node_selector_term_matches(term: Mapping[str, Any], node: NodeInfo) -> bool:
    """One NodeSelectorTerm: every expression and field requirement holds (empty: none)."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for expr in expressions:
        if not _requirement_matches(expr, node.labels.get(str(expr.get("key")))):
            return False
    for expr in fields:
        value = node.name if expr.get("key") == "metadata.name" else None
        if not _requirement_matches(expr, value):
            return False
    return True


def affinity_matches(pod_spec: Mapping[str, Any], node: NodeInfo) -> bool:
    """`nodeSelector` and required node affinity (terms ORed)."""
    selector = pod_spec.get("nodeSelector") or {}
    for key, value in selector.items():
        if node.labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or None
    if required is None:
        return True
    terms = required.get("nodeSelectorTerms") or []
    return any(node_selector_term_matches(term, node) for term in terms)


def static_filter(pod_spec: Mapping[str, Any], node: NodeInfo) -> str | None:
    """The first failing filter's reason among those that do not depend on other pods."""
    tolerations = [t for t in pod_spec.get("tolerations") or () if isinstance(t, dict)]
    if node.unschedulable and not any(
        tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tolerations
    ):
        return REASON_UNSCHEDULABLE
    taint = untolerated_taint(node.taints, tolerations)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    if not affinity_matches(pod_spec, node):
        return REASON_AFFINITY
    return None


def unschedulable_message(total: int, reasons: Counter[str]) -> str:
    """kube-scheduler's FitError message, preemption summary included."""
    if total == 0:
        return "no nodes available to schedule pods"
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    preemption: Counter[str] = Counter()
    for reason, count in reasons.items():
        preemption[_NO_VICTIMS if reason == REASON_TOO_MANY_PODS else _NOT_HELPFUL] += count
    tail = ", ".join(f"{count} {reason}" for reason, count in sorted(preemption.items()))
    return (
        f"0/{total} nodes are available: {parts}. "
        f"preemption: 0/{total} nodes are available: {tail}."
    )


def needs_scheduling(pod: Obj) -> bool:
    spec = objects.spec(pod)
    return (
        not spec.get("nodeName")
        and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and not spec.get("schedulingGates")
        and objects.is_active(pod)
    )


class _Candidates(NamedTuple):
    eligible: list[NodeInfo]
    reasons: Counter[str]


class Scheduler(LoopController[Key]):
    name = "scheduler"
    manager = "kube-scheduler"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._unschedulable: set[Key] = set()
        self._nodes: list[NodeInfo] = []
        self._nodes_generation = -1
        self._by_signature: dict[bytes, _Candidates] = {}
        self._turn = 0
        self.bound = 0

    # ---- intake ------------------------------------------------------------------------

    def on_event(self, event: StoreEvent) -> None:
        if event.key == NODES:
            self._retry_unschedulable()
        elif event.key == PODS:
            key = key_of(event.obj)
            if event.type == DELETED:
                self._unschedulable.discard(key)
                if objects.spec(event.obj).get("nodeName"):
                    self._retry_unschedulable()  # capacity freed
            elif needs_scheduling(event.obj):
                # A waiting pod is retried on its own status writes only if its spec moved
                # (new tolerations may make it schedulable).
                if key not in self._unschedulable or (
                    event.old is not None and objects.spec(event.old) != objects.spec(event.obj)
                ):
                    self._unschedulable.discard(key)
                    self.queue.add(key)
            else:
                self._unschedulable.discard(key)

    def _retry_unschedulable(self) -> None:
        for key in self._unschedulable:
            self.queue.add(key)
        self._unschedulable.clear()

    def resync(self) -> None:
        for pod in self.store.items(PODS):
            if needs_scheduling(pod):
                self.queue.add(key_of(pod))

    # ---- scheduling --------------------------------------------------------------------

    def begin_pass(self) -> None:
        if self._nodes_generation != self.index.node_generation:
            self._nodes_generation = self.index.node_generation
            self._nodes = sorted(
                (node_info(n) for n in self.store.items(NODES)), key=lambda n: n.name
            )
            self._by_signature.clear()

    def _candidates(self, pod_spec: Mapping[str, Any]) -> _Candidates:
        signature = orjson.dumps(
            [
                pod_spec.get("nodeSelector"),
                (pod_spec.get("affinity") or {}).get("nodeAffinity"),
                pod_spec.get("tolerations"),
            ],
            option=orjson.OPT_SORT_KEYS,
        )
        found = self._by_signature.get(signature)
        if found is None:
            eligible: list[NodeInfo] = []
            reasons: Counter[str] = Counter()
            for node in self._nodes:
                reason = static_filter(pod_spec, node)
                if reason is None:
                    eligible.append(node)
                else:
                    reasons[reason] += 1
            found = _Candidates(eligible, reasons)
            self._by_signature[signature] = found
        return found

    def process(self, key: Key) -> None:
        pod = self.store.get(PODS, *key)
        if pod is None or not needs_scheduling(pod):
            self._unschedulable.discard(key)
            return
        if self._nodes_generation != self.index.node_generation:
            self.begin_pass()
        pod_spec = objects.spec(pod)
        candidates = self._candidates(pod_spec)
        reasons = Counter(candidates.reasons)
        owner = objects.controller_ref(pod)
        siblings: Counter[str] = Counter()
        if owner is not None and owner.get("uid"):
            for sibling in self.index.pods_owned_by(owner["uid"]):
                node_name = objects.spec(sibling).get("nodeName")
                if node_name:
                    siblings[node_name] += 1
        best: list[NodeInfo] = []
        best_score: tuple[int, int] | None = None
        for node in candidates.eligible:
            count = self.index.pod_count_on_node(node.name)
            if count >= node.max_pods:
                reasons[REASON_TOO_MANY_PODS] += 1
                continue
            score = (siblings.get(node.name, 0), count)
            if best_score is None or score < best_score:
                best_score, best = score, [node]
            elif score == best_score:
                best.append(node)
        if not best:
            self._mark_unschedulable(key, pod, unschedulable_message(len(self._nodes), reasons))
            return
        self._turn += 1
        chosen = best[self._turn % len(best)]
        bind_pod(self.engine, key[0], key[1], chosen.name, uid=objects.meta(pod).get("uid"))
        self.writer.writes += 1
        self.bound += 1
        self._unschedulable.discard(key)

    def _mark_unschedulable(self, key: Key, pod: Obj, message: str) -> None:
        self._unschedulable.add(key)
        current = objects.condition(pod, "PodScheduled")
        if (
            current is not None
            and current.get("status") == "False"
            and current.get("reason") == "Unschedulable"
            and current.get("message") == message
        ):
            return
        updated = clone(pod)
        status = updated.setdefault("status", {})
        status["conditions"] = objects.set_condition(
            status.get("conditions"),
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "reason": "Unschedulable",
                "message": message,
            },
            now=self.now(),
        )
        self.writer.update_status(PODS, updated)
