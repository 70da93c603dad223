"""PodSpec and PodTemplateSpec validation (pkg/apis/core/validation, the parts kubesim serves).

Owns `validate_pod_spec`, `validate_pod_template_spec`, `validate_pod_create` and
`validate_pod_update`: the container lists (required, unique names, init-container rules,
host-port conflicts; each container is checked by `validation_container`), volumes,
restart and DNS policies, nodeSelector, tolerations and the other scalar PodSpec fields a
controller or a manifest is likely to get wrong.

Invariants:
- Runs on defaulted objects, as kube-apiserver validates after defaulting; a missing
  defaulted field is therefore reported `Required`, exactly as upstream would.
- Paths and messages are upstream's, including its quirks (template labels are reported
  on `spec.template.labels`, requests-vs-limits on the `requests` map, not its key).
- Not validated (accepted as is): affinity, topology spread, security contexts beyond
  user/group ids, resource claims, DNS config beyond the `None` rule, volume sources other
  than emptyDir/hostPath/secret/configMap/persistentVolumeClaim/downwardAPI.
- `validate_pod_update` reports a spec change outside the updatable fields with the
  upstream message, but its diff is a list of changed fields, not `cmp.Diff` output.
"""

from __future__ import annotations

from typing import Any

from servicegroup.kubesim import names
from servicegroup.kubesim.fielderrors import (
    Cause,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from servicegroup.kubesim.objpath import child, dicts, get_dict, get_int, get_list, get_str, index
from servicegroup.kubesim.validation_container import (
    dns1123_label_causes,
    id_range_causes,
    validate_container_common,
    validate_lifecycle,
    validate_probe,
)
from servicegroup.kubesim.validation_meta import (
    semantic_equal,
    validate_annotations,
    validate_label_name,
    validate_labels,
)

MAX_INT32 = 2**31 - 1
FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
UPDATABLE_POD_SPEC_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    "`spec.containers[*].resources` (for CPU/memory only)",
)
# validateVolumeSource's order, and the path it names when a second source is given.
_VOLUME_SOURCE_PATHS = (
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
)


def _dns1123_subdomain(value: str, field: str) -> list[Cause]:
    return [invalid(field, value, msg) for msg in names.dns1123_subdomain_errors(value)]


def _validate_mode(body: dict[str, Any], field_name: str, path: str) -> list[Cause]:
    mode = get_int(body, field_name)
    if mode is not None and not 0 <= mode <= 0o777:
        return [invalid(child(path, field_name), mode, FILE_MODE_ERROR)]
    return []


def _validate_key_to_paths(items: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in dicts(items):
        item_path = index(path, i)
        if not get_str(item, "key"):
            causes.append(required(child(item_path, "key")))
        if not get_str(item, "path"):
            causes.append(required(child(item_path, "path")))
        causes += _validate_mode(item, "mode", item_path)
    return causes


def _validate_source(source: str, body: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if source == "hostPath" and not get_str(body, "path"):
        causes.append(required(child(path, "path")))
    elif source == "secret":
        if not get_str(body, "secretName"):
            causes.append(required(child(path, "secretName")))
        causes += _validate_mode(body, "defaultMode", path)
        causes += _validate_key_to_paths(get_list(body, "items"), child(path, "items"))
    elif source == "configMap":
        if not get_str(body, "name"):
            causes.append(required(child(path, "name")))
        causes += _validate_mode(body, "defaultMode", path)
        causes += _validate_key_to_paths(get_list(body, "items"), child(path, "items"))
    elif source == "persistentVolumeClaim" and not get_str(body, "claimName"):
        causes.append(required(child(path, "claimName")))
    elif source in ("downwardAPI", "projected"):
        causes += _validate_mode(body, "defaultMode", path)
    return causes


def validate_volumes(volumes: list[Any], path: str) -> tuple[set[str], list[Cause]]:
    """The valid volume names (mounts may only name these), and the volumes' errors."""
    valid: set[str] = set()
    causes: list[Cause] = []
    for i, volume in dicts(volumes):
        volume_path = index(path, i)
        errs: list[Cause] = []
        count = 0
        for source, error_name in _VOLUME_SOURCE_PATHS:
            body = volume.get(source)
            if body is None:
                continue
            if count:
                errs.append(
                    forbidden(
                        child(volume_path, error_name), "may not specify more than 1 volume type"
                    )
                )
                continue
            count += 1
            if isinstance(body, dict):
                errs += _validate_source(source, body, child(volume_path, source))
        if not count:
            errs.append(required(volume_path, "must specify a volume type"))
        name = get_str(volume, "name")
        if not name:
            errs.append(required(child(volume_path, "name")))
        else:
            errs += dns1123_label_causes(name, child(volume_path, "name"))
        if name in valid:
            errs.append(duplicate(child(volume_path, "name"), name))
        if errs:
            causes += errs
        else:
            valid.add(name)
    return valid, causes


def _host_port_conflicts(containers: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for ci, container in dicts(containers):
        for pi, port in dicts(get_list(container, "ports")):
            host_port = get_int(port, "hostPort") or 0
            if not host_port:
                continue
            entry = f"{get_str(port, 'protocol')}/{get_str(port, 'hostIP')}/{host_port}"
            if entry in seen:
                causes.append(
                    duplicate(child(index(child(index(path, ci), "ports"), pi), "hostPort"), entry)
                )
            seen.add(entry)
    return causes


def _validate_containers(spec: dict[str, Any], volumes: set[str], path: str) -> list[Cause]:
    containers = get_list(spec, "containers")
    containers_path = child(path, "containers")
    if not containers:
        return [required(containers_path)]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, container in dicts(containers):
        container_path = index(containers_path, i)
        causes += validate_container_common(container, volumes, container_path)
        name = get_str(container, "name")
        if name in seen:
            causes.append(duplicate(child(container_path, "name"), name))
        seen.add(name)
        if container.get("lifecycle") is not None:
            causes += validate_lifecycle(container["lifecycle"], child(container_path, "lifecycle"))
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            causes += validate_probe(
                container.get(probe), child(container_path, probe), which=probe
            )
        if container.get("restartPolicy") is not None:
            causes.append(
                forbidden(
                    child(container_path, "restartPolicy"), "may not be set for non-init containers"
                )
            )
    return causes + _host_port_conflicts(containers, containers_path)


def _validate_init_containers(spec: dict[str, Any], volumes: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen = {get_str(c, "name") for _, c in dicts(get_list(spec, "containers"))}
    init_path = child(path, "initContainers")
    for i, container in dicts(get_list(spec, "initContainers")):
        container_path = index(init_path, i)
        causes += validate_container_common(container, volumes, container_path)
        restart = container.get("restartPolicy")
        if restart is not None and restart != "Always":
            causes.append(
                not_supported(child(container_path, "restartPolicy"), restart, ("Always",))
            )
        name = get_str(container, "name")
        if name in seen:
            causes.append(duplicate(child(container_path, "name"), name))
        elif name:
            seen.add(name)
        causes += _host_port_conflicts([container], init_path)
        if restart == "Always":
            causes += validate_lifecycle(
                container.get("lifecycle"), child(container_path, "lifecycle")
            )
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                causes += validate_probe(
                    container.get(probe), child(container_path, probe), which=probe
                )
            continue
        for field in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if container.get(field) is not None:
                causes.append(
                    forbidden(
                        child(container_path, field),
                        "may not be set for init containers without restartPolicy=Always",
                    )
                )
    return causes


def _validate_host_network(spec: dict[str, Any], path: str, *, is_pod: bool) -> list[Cause]:
    if spec.get("hostNetwork") is not True:
        return []
    causes: list[Cause] = []
    for i, container in dicts(get_list(spec, "containers")):
        for j, port in dicts(get_list(container, "ports")):
            host_port, container_port = (
                get_int(port, "hostPort") or 0,
                get_int(port, "containerPort"),
            )
            if (is_pod or host_port != 0) and host_port != container_port:
                port_path = index(child(index(child(path, "containers"), i), "ports"), j)
                causes.append(
                    invalid(
                        child(port_path, "hostPort"),
                        host_port,
                        "must match `containerPort` when `hostNetwork` is true",
                    )
                )
    return causes


def _validate_tolerations(tolerations: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, toleration in dicts(tolerations):
        item = index(path, i)
        toleration_key, operator = get_str(toleration, "key"), get_str(toleration, "operator")
        effect = get_str(toleration, "effect")
        if toleration_key:
            causes += validate_label_name(toleration_key, child(item, "key"))
        if not toleration_key and operator != "Exists":
            causes.append(
                invalid(
                    child(item, "operator"),
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(
                invalid(
                    child(item, "effect"),
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        value = get_str(toleration, "value")
        if operator in ("Equal", ""):
            errors = names.label_value_errors(value)
            if errors:
                causes.append(invalid(child(item, "operator"), value, ";".join(errors)))
        elif operator == "Exists":
            if value:
                causes.append(
                    invalid(
                        child(item, "operator"),
                        toleration,
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            causes.append(not_supported(child(item, "operator"), operator, ("Equal", "Exists")))
        if effect and effect not in TAINT_EFFECTS:
            causes.append(not_supported(child(item, "effect"), effect, TAINT_EFFECTS))
    return causes


def validate_pod_spec(spec: Any, path: str, *, is_pod: bool) -> list[Cause]:
    """`ValidatePodSpec` (the subset described in the module docstring)."""
    spec = spec if isinstance(spec, dict) else {}
    causes: list[Cause] = []
    if spec.get("terminationGracePeriodSeconds") is None:
        causes.append(required(child(path, "terminationGracePeriodSeconds")))
    volumes, volume_causes = validate_volumes(get_list(spec, "volumes"), child(path, "volumes"))
    causes += volume_causes
    causes += _validate_containers(spec, volumes, path)
    causes += _validate_init_containers(spec, volumes, path)
    causes += _validate_host_network(spec, path, is_pod=is_pod)
    restart = get_str(spec, "restartPolicy")
    if not restart:
        causes.append(required(child(path, "restartPolicy")))
    elif restart not in RESTART_POLICIES:
        causes.append(not_supported(child(path, "restartPolicy"), restart, RESTART_POLICIES))
    dns = get_str(spec, "dnsPolicy")
    if not dns:
        causes.append(required(child(path, "dnsPolicy")))
    elif dns not in DNS_POLICIES:
        causes.append(not_supported(child(path, "dnsPolicy"), dns, DNS_POLICIES))
    causes += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    security = get_dict(spec, "securityContext")
    for field in ("fsGroup", "runAsUser", "runAsGroup"):
        causes += id_range_causes(security, field, child(path, "securityContext"))
    for i, secret in dicts(get_list(spec, "imagePullSecrets")):
        if set(secret) - {"name"}:
            causes.append(
                invalid(index(child(path, "imagePullSecrets"), i), secret, "only name may be set")
            )
    if dns == "None" and get_dict(spec, "dnsConfig") is None:
        causes.append(
            required(child(path, "dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None")
        )
    for field in ("serviceAccountName", "nodeName", "priorityClassName"):
        value = get_str(spec, field)
        if value:
            causes += _dns1123_subdomain(value, child(path, field))
    deadline = get_int(spec, "activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        causes.append(
            invalid(
                child(path, "activeDeadlineSeconds"),
                deadline,
                names.inclusive_range_error(1, MAX_INT32),
            )
        )
    for field in ("hostname", "subdomain"):
        value = get_str(spec, field)
        if value:
            causes += dns1123_label_causes(value, child(path, field))
    causes += _validate_tolerations(get_list(spec, "tolerations"), child(path, "tolerations"))
    preemption = spec.get("preemptionPolicy")
    if preemption is not None and preemption not in ("PreemptLowerPriority", "Never"):
        if preemption == "":
            causes.append(required(child(path, "preemptionPolicy")))
        else:
            causes.append(
                not_supported(
                    child(path, "preemptionPolicy"), preemption, ("PreemptLowerPriority", "Never")
                )
            )
    return causes


def validate_pod_template_spec(template: Any, path: str) -> list[Cause]:
    """`ValidatePodTemplateSpec`: labels, annotations, the PodSpec, no ephemeral containers."""
    template = template if isinstance(template, dict) else {}
    metadata = get_dict(template, "metadata") or {}
    causes = validate_labels(metadata.get("labels"), child(path, "labels"))
    causes += validate_annotations(metadata.get("annotations"), child(path, "annotations"))
    spec = get_dict(template, "spec") or {}
    causes += validate_pod_spec(spec, child(path, "spec"), is_pod=False)
    if get_list(spec, "ephemeralContainers"):
        causes.append(
            forbidden(
                child(path, "spec", "ephemeralContainers"),
                "ephemeral containers not allowed in pod template",
            )
        )
    return causes


def validate_pod_only(spec: Any) -> list[Cause]:
    """Pod (not template) rules: image whitespace, create-time ephemeral/nodeName rules."""
    spec = spec if isinstance(spec, dict) else {}
    causes: list[Cause] = []
    for list_name in ("containers", "initContainers"):
        for i, container in dicts(get_list(spec, list_name)):
            image = get_str(container, "image")
            if image != image.strip():
                causes.append(
                    invalid(
                        child(index(child("spec", list_name), i), "image"),
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    return causes


def validate_pod_create(spec: Any) -> list[Cause]:
    spec = spec if isinstance(spec, dict) else {}
    causes: list[Cause] = []
    if get_list(spec, "ephemeralContainers"):
        causes.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if get_str(spec, "nodeName") and get_list(spec, "schedulingGates"):
        causes.append(
            forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared")
        )
    return causes


def _munged_containers(new: list[Any], old: list[Any]) -> list[Any]:
    munged = []
    for new_c, old_c in zip(new, old, strict=True):
        if not isinstance(new_c, dict) or not isinstance(old_c, dict):
            munged.append(new_c)
            continue
        copy = dict(new_c)
        copy["image"] = old_c.get("image")
        resources = dict(get_dict(new_c, "resources") or {})
        old_resources = get_dict(old_c, "resources") or {}
        for field in ("limits", "requests"):
            values = dict(get_dict(resources, field) or {})
            old_values = get_dict(old_resources, field) or {}
            for name in ("cpu", "memory"):
                values.pop(name, None)
                if name in old_values:
                    values[name] = old_values[name]
            resources[field] = values
        copy["resources"] = resources
        munged.append(copy)
    return munged


def validate_pod_update(new_spec: Any, old_spec: Any) -> list[Cause]:
    """`ValidatePodUpdate`'s spec rules (image, deadline, tolerations; nothing else moves)."""
    new_spec = new_spec if isinstance(new_spec, dict) else {}
    old_spec = old_spec if isinstance(old_spec, dict) else {}
    causes: list[Cause] = []
    for list_name in ("containers", "initContainers"):
        new_list, old_list = get_list(new_spec, list_name), get_list(old_spec, list_name)
        if len(new_list) != len(old_list):
            return [
                *causes,
                forbidden(child("spec", list_name), "pod updates may not add or remove containers"),
            ]
        for i, container in dicts(new_list):
            if not get_str(container, "image"):
                causes.append(required(child(index(child("spec", list_name), i), "image")))
    new_deadline, old_deadline = (
        get_int(new_spec, "activeDeadlineSeconds"),
        get_int(old_spec, "activeDeadlineSeconds"),
    )
    if new_deadline is not None:
        if not 0 <= new_deadline <= MAX_INT32:
            return [
                *causes,
                invalid(
                    "spec.activeDeadlineSeconds",
                    new_deadline,
                    names.inclusive_range_error(0, MAX_INT32),
                ),
            ]
        if old_deadline is not None and old_deadline < new_deadline:
            return [
                *causes,
                invalid(
                    "spec.activeDeadlineSeconds",
                    new_deadline,
                    "must be less than or equal to previous value",
                ),
            ]
    elif old_deadline is not None:
        causes.append(
            invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
    old_tolerations = [t for _, t in dicts(get_list(old_spec, "tolerations"))]
    new_tolerations = [t for _, t in dicts(get_list(new_spec, "tolerations"))]
    for old_t in old_tolerations:
        if not any(
            semantic_equal({**old_t, "tolerationSeconds": new_t.get("tolerationSeconds")}, new_t)
            for new_t in new_tolerations
        ):
            causes.append(
                forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
            break
    munged = dict(new_spec)
    for list_name in ("containers", "initContainers"):
        if list_name in new_spec:
            munged[list_name] = _munged_containers(
                get_list(new_spec, list_name), get_list(old_spec, list_name)
            )
    munged["activeDeadlineSeconds"] = old_spec.get("activeDeadlineSeconds")
    munged["tolerations"] = old_spec.get("tolerations")
    munged["schedulingGates"] = old_spec.get("schedulingGates")
    old_grace = get_int(old_spec, "terminationGracePeriodSeconds")
    if (
        old_grace is not None
        and old_grace < 0
        and get_int(new_spec, "terminationGracePeriodSeconds") == 1
    ):
        munged["terminationGracePeriodSeconds"] = old_grace
    old_compare = dict(old_spec)
    for list_name in ("containers", "initContainers"):
        if list_name in old_spec:
            old_compare[list_name] = _munged_containers(
                get_list(old_spec, list_name), get_list(old_spec, list_name)
            )
    if not semantic_equal(munged, old_compare):
        changed = sorted(
            k
            for k in set(munged) | set(old_compare)
            if not semantic_equal(munged.get(k), old_compare.get(k))
        )
        diff = "\n".join(f"  spec.{k}: changed" for k in changed)
        causes.append(
            forbidden(
                "spec",
                "pod updates may not change fields other than "
                + ",".join(UPDATABLE_POD_SPEC_FIELDS)
                + "\n"
                + diff,
            )
        )
    return causes
