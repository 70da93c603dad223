"""apps/v1 validation: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

Owns the spec rules of pkg/apis/apps/validation and the update rules the apps registry
strategies add: selectors are immutable in apps/v1 (`field is immutable`), a StatefulSet
may only change replicas, ordinals, template, updateStrategy,
persistentVolumeClaimRetentionPolicy and minReadySeconds, a ControllerRevision's data
never changes.

Invariants:
- Inputs are defaulted objects (strategy and update strategy are set).
- A selector that `LabelSelectorAsSelector` rejects skips the template-match check, and a
  missing selector matches nothing (so both `Required` and the mismatch are reported),
  exactly as upstream.
- A StatefulSet's pod template gets only label/annotation checks (upstream does not run
  PodSpec validation on it); the other workloads get full PodTemplateSpec validation.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim import names
from servicegroup.kubesim.fielderrors import (
    NIL_COLLECTION,
    Cause,
    forbidden,
    invalid,
    not_supported,
    required,
)
from servicegroup.kubesim.objpath import child, get_dict, get_int, get_str
from servicegroup.kubesim.validation_meta import (
    IMMUTABLE,
    selector_is_empty,
    selector_matcher,
    semantic_equal,
    validate_annotations,
    validate_label_selector,
    validate_labels,
    validate_nonnegative,
)
from servicegroup.kubesim.validation_pod import validate_pod_template_spec

MISMATCH = "`selector` does not match template `labels`"
STATEFULSET_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
    "forbidden"
)
_STATEFULSET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def _template_labels(template: dict[str, Any]) -> dict[str, str]:
    labels = get_dict(get_dict(template, "metadata"), "labels") or {}
    return {str(k): v for k, v in labels.items() if isinstance(v, str)}


def _mismatch(template: dict[str, Any]) -> Cause:
    # The bad value is the template's label map; an absent one is a nil map (bare null).
    labels = get_dict(get_dict(template, "metadata"), "labels")
    value = NIL_COLLECTION if labels is None else labels
    return invalid("spec.template.metadata.labels", value, MISMATCH, sort_keys=True)


def _selector_required(spec: dict[str, Any], kind_word: str) -> list[Cause]:
    selector = spec.get("selector")
    if selector is None:
        return [required("spec.selector")]
    causes = validate_label_selector(selector, "spec.selector")
    if selector_is_empty(selector):
        causes.append(
            invalid("spec.selector", selector, f"empty selector is invalid for {kind_word}")
        )
    return causes


def _template_for_replicas(
    spec: dict[str, Any], *, kind_word: str, selector_error: str
) -> list[Cause]:
    """`ValidatePodTemplateSpecForReplicaSet` behind `LabelSelectorAsSelector`."""
    matcher = selector_matcher(spec.get("selector"))
    if matcher is None:
        return [invalid("spec.selector", spec.get("selector"), selector_error)]
    # The template is a struct upstream: absent validates like an empty one.
    template = get_dict(spec, "template") or {}
    causes: list[Cause] = []
    labels = _template_labels(template)
    if not selector_is_empty(spec.get("selector")) and not matcher(labels):
        causes.append(_mismatch(template))
    causes += validate_pod_template_spec(template, "spec.template")
    causes += _template_restrictions(template, kind_word)
    return causes


def _template_restrictions(template: dict[str, Any], kind_word: str) -> list[Cause]:
    pod_spec = get_dict(template, "spec") or {}
    causes: list[Cause] = []
    restart = get_str(pod_spec, "restartPolicy")
    if restart != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        causes.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds in {kind_word} is not Supported",
            )
        )
    return causes


def _percent(value: Any) -> int | None:
    if isinstance(value, str) and not names.percent_errors(value):
        return int(value[:-1])
    return None


def _int_or_percent_value(value: Any) -> int:
    percent = _percent(value)
    if percent is not None:
        return percent
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return 0


def validate_int_or_percent(value: Any, field: str) -> list[Cause]:
    """`ValidatePositiveIntOrPercent`."""
    if isinstance(value, str):
        return [invalid(field, value, msg) for msg in names.percent_errors(value)]
    if isinstance(value, int) and not isinstance(value, bool):
        return validate_nonnegative(value, field)
    return [invalid(field, value, "must be an integer or percentage (e.g '5%%')")]


def _not_over_100(value: Any, field: str) -> list[Cause]:
    percent = _percent(value)
    if percent is not None and percent > 100:
        return [invalid(field, value, "must not be greater than 100%")]
    return []


def _deployment_strategy(spec: dict[str, Any]) -> list[Cause]:
    strategy = get_dict(spec, "strategy") or {}
    strategy_type = get_str(strategy, "type")
    path = "spec.strategy"
    if strategy_type == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            return [
                forbidden(
                    child(path, "rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if strategy_type != "RollingUpdate":
        return [not_supported(path, strategy, ("Recreate", "RollingUpdate"))]
    rolling = get_dict(strategy, "rollingUpdate")
    if rolling is None:
        return [required(child(path, "rollingUpdate"), "this should be defaulted and never be nil")]
    rolling_path = child(path, "rollingUpdate")
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    causes = validate_int_or_percent(unavailable, child(rolling_path, "maxUnavailable"))
    causes += validate_int_or_percent(surge, child(rolling_path, "maxSurge"))
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        causes.append(
            invalid(
                child(rolling_path, "maxUnavailable"),
                unavailable,
                "may not be 0 when `maxSurge` is 0",
            )
        )
    causes += _not_over_100(unavailable, child(rolling_path, "maxUnavailable"))
    return causes


def validate_deployment(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateDeploymentSpec`."""
    spec = get_dict(obj, "spec") or {}
    causes = validate_nonnegative(spec.get("replicas"), "spec.replicas")
    causes += _selector_required(spec, "deployment")
    causes += _template_for_replicas(
        spec, kind_word="ReplicaSet", selector_error="invalid label selector"
    )
    causes += _deployment_strategy(spec)
    causes += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    deadline = get_int(spec, "progressDeadlineSeconds")
    if deadline is not None:
        causes += validate_nonnegative(deadline, "spec.progressDeadlineSeconds")
        if deadline <= (get_int(spec, "minReadySeconds") or 0):
            causes.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    return causes


def validate_replica_set(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateReplicaSetSpec` (its empty-selector message says deployment upstream, too)."""
    spec = get_dict(obj, "spec") or {}
    causes = validate_nonnegative(spec.get("replicas"), "spec.replicas")
    causes += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += _selector_required(spec, "deployment")
    causes += _template_for_replicas(
        spec, kind_word="ReplicaSet", selector_error="invalid label selector"
    )
    return causes


def _stateful_set_strategy(spec: dict[str, Any]) -> list[Cause]:
    strategy = get_dict(spec, "updateStrategy") or {}
    strategy_type = get_str(strategy, "type")
    path = "spec.updateStrategy"
    rolling = strategy.get("rollingUpdate")
    if not strategy_type:
        return [required(path)]
    if strategy_type == "OnDelete":
        if rolling is not None:
            return [
                invalid(
                    child(path, "rollingUpdate"),
                    rolling,
                    "only allowed for updateStrategy 'RollingUpdate'",
                )
            ]
        return []
    if strategy_type != "RollingUpdate":
        return [invalid(path, strategy, "must be 'RollingUpdate' or 'OnDelete'")]
    if not isinstance(rolling, dict):
        return []
    rolling_path = child(path, "rollingUpdate")
    causes = validate_nonnegative(rolling.get("partition"), child(rolling_path, "partition"))
    if rolling.get("maxUnavailable") is not None:
        unavailable = rolling["maxUnavailable"]
        unavailable_path = child(rolling_path, "maxUnavailable")
        causes += validate_int_or_percent(unavailable, unavailable_path)
        if _int_or_percent_value(unavailable) == 0:
            causes.append(invalid(unavailable_path, unavailable, "cannot be 0"))
        causes += _not_over_100(unavailable, unavailable_path)
    return causes


def validate_stateful_set(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateStatefulSetSpec`."""
    spec = get_dict(obj, "spec") or {}
    policy = get_str(spec, "podManagementPolicy")
    causes: list[Cause] = []
    if not policy:
        causes.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        causes.append(
            invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")
        )
    causes += _stateful_set_strategy(spec)
    retention = get_dict(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for field in ("whenDeleted", "whenScaled"):
            value = get_str(retention, field)
            if value not in ("Retain", "Delete"):
                causes.append(
                    not_supported(
                        child("spec.persistentVolumeClaimRetentionPolicy", field),
                        value,
                        ("Retain", "Delete"),
                    )
                )
    causes += validate_nonnegative(spec.get("replicas"), "spec.replicas")
    causes += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    ordinals = get_dict(spec, "ordinals")
    if ordinals is not None:
        causes += validate_nonnegative(ordinals.get("start"), "spec.ordinals.start")
    causes += _selector_required(spec, "statefulset")
    matcher = selector_matcher(spec.get("selector"))
    template = get_dict(spec, "template") or {}
    if matcher is None:
        causes.append(invalid("spec.selector", spec.get("selector"), ""))
    else:
        labels = _template_labels(template)
        if not selector_is_empty(spec.get("selector")) and not matcher(labels):
            causes.append(_mismatch(template))
        metadata = get_dict(template, "metadata") or {}
        causes += validate_labels(metadata.get("labels"), "spec.template.labels")
        causes += validate_annotations(metadata.get("annotations"), "spec.template.annotations")
    causes += _template_restrictions(template, "StatefulSet")
    return causes


def validate_daemon_set(obj: dict[str, Any]) -> list[Cause]:
    """`ValidateDaemonSetSpec`."""
    spec = get_dict(obj, "spec") or {}
    selector = spec.get("selector")
    causes = validate_label_selector(selector, "spec.selector")
    matcher = selector_matcher(selector)
    template = get_dict(spec, "template") or {}
    labels = _template_labels(template)
    if matcher is not None and not matcher(labels):
        causes.append(_mismatch(template))
    if isinstance(selector, dict) and selector_is_empty(selector):
        causes.append(invalid("spec.selector", selector, "empty selector is invalid for daemonset"))
    causes += validate_pod_template_spec(template, "spec.template")
    causes += _template_restrictions(template, "DaemonSet")
    causes += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += validate_nonnegative(spec.get("templateGeneration"), "spec.templateGeneration")
    strategy = get_dict(spec, "updateStrategy") or {}
    strategy_type = get_str(strategy, "type")
    if strategy_type == "RollingUpdate":
        rolling = get_dict(strategy, "rollingUpdate")
        if rolling is None:
            causes.append(required("spec.updateStrategy.rollingUpdate"))
        else:
            causes += _daemon_set_rolling(rolling, "spec.updateStrategy.rollingUpdate")
    elif strategy_type != "OnDelete":
        causes.append(not_supported("spec.updateStrategy", strategy, ("RollingUpdate", "OnDelete")))
    causes += validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return causes


def _daemon_set_rolling(rolling: dict[str, Any], path: str) -> list[Cause]:
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    causes = validate_int_or_percent(unavailable, child(path, "maxUnavailable"))
    causes += validate_int_or_percent(surge, child(path, "maxSurge"))
    causes += _not_over_100(unavailable, child(path, "maxUnavailable"))
    causes += _not_over_100(surge, child(path, "maxSurge"))
    has_unavailable = _int_or_percent_value(unavailable) != 0
    has_surge = _int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        causes.append(
            invalid(
                child(path, "maxSurge"), surge, "may not be set when maxUnavailable is non-zero"
            )
        )
    elif not has_unavailable and not has_surge:
        causes.append(required(child(path, "maxUnavailable"), "cannot be 0 when maxSurge is 0"))
    return causes


def validate_controller_revision(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if obj.get("data") is None:
        causes.append(required("data", "data is mandatory"))
    return causes + validate_nonnegative(obj.get("revision"), "revision")


def immutable_selector(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """apps/v1 strategies: `spec.selector` may not change once set."""
    new_selector = (get_dict(new, "spec") or {}).get("selector")
    old_selector = (get_dict(old, "spec") or {}).get("selector")
    if semantic_equal(new_selector, old_selector):
        return []
    return [invalid("spec.selector", new_selector, IMMUTABLE)]


def stateful_set_forbidden_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    new_spec = dict(get_dict(new, "spec") or {})
    old_spec = dict(get_dict(old, "spec") or {})
    for field in _STATEFULSET_MUTABLE:
        new_spec.pop(field, None)
        old_spec.pop(field, None)
    if semantic_equal(new_spec, old_spec):
        return []
    return [forbidden("spec", STATEFULSET_FORBIDDEN)]


def controller_revision_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    if semantic_equal(new.get("data"), old.get("data")):
        return []
    return [invalid("data", new.get("data"), IMMUTABLE)]
