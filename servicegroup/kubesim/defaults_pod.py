"""kube-apiserver defaulting of PodSpecs, pod templates and PVC templates (core/v1).

Owns what `SetObjectDefaults_Pod` / `SetObjectDefaults_PodTemplate` (generated from
pkg/apis/core/v1/defaults.go) do to a PodSpec, plus the two wire-format effects every
reader of a real cluster sees: `resources: {}` on every container (a non-pointer struct Go
always serializes) and canonical resource quantities (`0.5` -> `500m`).

Invariants:
- Every function only fills what is absent (or the Go zero value of a non-pointer
  field), so applying it twice equals applying it once.
- Pod-only defaults (`enableServiceLinks`, requests copied from limits, `hostPort` under
  `hostNetwork`) are applied when `is_pod` is true and never to templates, exactly as
  upstream keeps them out of `SetDefaults_PodSpec`.
- Admission plugins are not emulated: no ServiceAccount token volume, no
  `serviceAccountName: default`, no `priority`/`preemptionPolicy` (Priority admission),
  no not-ready/unreachable tolerations (DefaultTolerationSeconds).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from servicegroup.kubesim import quantity
from servicegroup.kubesim.objpath import dicts, ensure_dict, get_dict, get_list, set_default

DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_FILE_MODE = 0o644  # 420: secret, configMap, downwardAPI and projected volumes
DEFAULT_TOKEN_EXPIRATION = 3600

VOLUME_SOURCES = frozenset(
    {
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    }
)

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# docker/distribution reference grammar, enough to tell a tag from a registry port.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)


def image_tag(image: str) -> str:
    """The tag `parsers.ParseImageName` reports: `latest` when neither tag nor digest."""
    match = _REFERENCE_RE.fullmatch(image)
    if not match:
        return ""  # unparseable references default to IfNotPresent upstream
    tag, digest = match.group("tag"), match.group("digest")
    if not tag and not digest:
        return "latest"
    return tag or ""


def default_pull_policy(image: Any) -> str:
    return "Always" if isinstance(image, str) and image_tag(image) == "latest" else "IfNotPresent"


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        set_default(action, "path", "/")
        set_default(action, "scheme", "HTTP")


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for field, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if probe.get(field) in (None, 0):
            probe[field] = value
    _default_http_get(probe.get("httpGet"))
    grpc = get_dict(probe, "grpc")
    if grpc is not None and grpc.get("service") is None:
        grpc["service"] = ""


def _default_field_ref(ref: Any) -> None:
    if isinstance(ref, dict):
        set_default(ref, "apiVersion", "v1")


def default_container(container: dict[str, Any]) -> None:
    """`SetDefaults_Container` and the generated per-field defaults of one container."""
    set_default(container, "imagePullPolicy", default_pull_policy(container.get("image")))
    set_default(container, "terminationMessagePath", "/dev/termination-log")
    set_default(container, "terminationMessagePolicy", "File")
    for _, port in dicts(get_list(container, "ports")):
        set_default(port, "protocol", "TCP")
    for _, env in dicts(get_list(container, "env")):
        _default_field_ref(get_dict(get_dict(env, "valueFrom"), "fieldRef"))
    resources = ensure_dict(container, "resources")
    quantity.canonicalize_resource_list(resources.get("limits"))
    quantity.canonicalize_resource_list(resources.get("requests"))
    for probe in _PROBES:
        _default_probe(container.get(probe))
    lifecycle = get_dict(container, "lifecycle")
    for hook in ("postStart", "preStop"):
        _default_http_get(get_dict(get_dict(lifecycle, hook), "httpGet"))


def default_pvc_spec(spec: dict[str, Any]) -> None:
    set_default(spec, "volumeMode", "Filesystem")
    resources = ensure_dict(spec, "resources")
    quantity.canonicalize_resource_list(resources.get("limits"))
    quantity.canonicalize_resource_list(resources.get("requests"))


def _default_volume(volume: dict[str, Any]) -> None:
    if not any(volume.get(source) is not None for source in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    host_path = get_dict(volume, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""
    empty_dir = get_dict(volume, "emptyDir")
    if empty_dir is not None and "sizeLimit" in empty_dir:
        empty_dir["sizeLimit"] = quantity.canonicalize(empty_dir["sizeLimit"])
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        body = get_dict(volume, source)
        if body is not None and body.get("defaultMode") is None:
            body["defaultMode"] = DEFAULT_FILE_MODE
    for _, item in dicts(get_list(get_dict(volume, "downwardAPI"), "items")):
        _default_field_ref(item.get("fieldRef"))
    for _, projection in dicts(get_list(get_dict(volume, "projected"), "sources")):
        for _, item in dicts(get_list(get_dict(projection, "downwardAPI"), "items")):
            _default_field_ref(item.get("fieldRef"))
        token = get_dict(projection, "serviceAccountToken")
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = DEFAULT_TOKEN_EXPIRATION
    claim = get_dict(get_dict(volume, "ephemeral"), "volumeClaimTemplate")
    claim_spec = get_dict(claim, "spec")
    if claim_spec is not None:
        default_pvc_spec(claim_spec)
    _default_legacy_sources(volume)


def _default_legacy_sources(volume: dict[str, Any]) -> None:
    iscsi = get_dict(volume, "iscsi")
    if iscsi is not None:
        set_default(iscsi, "iscsiInterface", "default")
    rbd = get_dict(volume, "rbd")
    if rbd is not None:
        set_default(rbd, "pool", "rbd")
        set_default(rbd, "user", "admin")
        set_default(rbd, "keyring", "/etc/ceph/keyring")
    azure_disk = get_dict(volume, "azureDisk")
    if azure_disk is not None:
        for field, value in (
            ("cachingMode", "ReadWrite"),
            ("kind", "Shared"),
            ("fsType", "ext4"),
            ("readOnly", False),
        ):
            if azure_disk.get(field) is None:
                azure_disk[field] = value
    scale_io = get_dict(volume, "scaleIO")
    if scale_io is not None:
        set_default(scale_io, "storageMode", "ThinProvisioned")
        set_default(scale_io, "fsType", "xfs")


def default_pod_spec(spec: dict[str, Any], *, is_pod: bool) -> None:
    """Defaults of a PodSpec; `is_pod` adds the `SetDefaults_Pod` ones."""
    if is_pod:
        _default_pod_only(spec)
    set_default(spec, "dnsPolicy", "ClusterFirst")
    set_default(spec, "restartPolicy", "Always")
    ensure_dict(spec, "securityContext")
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_TERMINATION_GRACE_PERIOD
    set_default(spec, "schedulerName", "default-scheduler")
    for _, volume in dicts(get_list(spec, "volumes")):
        _default_volume(volume)
    for list_name in _CONTAINER_LISTS:
        for _, container in dicts(get_list(spec, list_name)):
            default_container(container)
    if "overhead" in spec:
        quantity.canonicalize_resource_list(spec["overhead"])


def _default_pod_only(spec: dict[str, Any]) -> None:
    for list_name in ("containers", "initContainers"):
        for _, container in dicts(get_list(spec, list_name)):
            resources = get_dict(container, "resources")
            limits = get_dict(resources, "limits")
            if resources is None or limits is None:
                continue
            requests = ensure_dict(resources, "requests")
            for name, value in limits.items():
                requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for list_name in ("containers", "initContainers"):
            for _, container in dicts(get_list(spec, list_name)):
                for _, port in dicts(get_list(container, "ports")):
                    if port.get("hostPort") in (None, 0) and "containerPort" in port:
                        port["hostPort"] = port["containerPort"]


def normalize_template_metadata(template: dict[str, Any]) -> None:
    """Wire format of an embedded ObjectMeta: always present, no `creationTimestamp: null`.

    Go serializes the non-pointer ObjectMeta of a template even when empty; since 1.33 a
    zero `creationTimestamp` is omitted rather than written as `null`.
    """
    metadata = ensure_dict(template, "metadata")
    if "creationTimestamp" in metadata and metadata["creationTimestamp"] is None:
        del metadata["creationTimestamp"]


def defaults_for_template(pod_template: dict[str, Any]) -> None:
    """Everything the apiserver does to a PodTemplateSpec embedded in a workload."""
    normalize_template_metadata(pod_template)
    default_pod_spec(ensure_dict(pod_template, "spec"), is_pod=False)


def default_pvc_template(claim: dict[str, Any]) -> None:
    """A StatefulSet volumeClaimTemplate as apps/v1 returns it."""
    claim["apiVersion"] = "v1"
    claim["kind"] = "PersistentVolumeClaim"
    normalize_template_metadata(claim)
    default_pvc_spec(ensure_dict(claim, "spec"))
    set_default(ensure_dict(claim, "status"), "phase", "Pending")


def _positive_quantities(container: Any, field: str) -> dict[str, Fraction]:
    values: dict[str, Fraction] = {}
    for name, raw in (get_dict(get_dict(container, "resources"), field) or {}).items():
        if name not in ("cpu", "memory"):
            continue
        try:
            value = quantity.parse_quantity(raw).value
        except ValueError:
            continue
        if value > 0:
            values[name] = value
    return values


def pod_qos_class(spec: dict[str, Any]) -> str:
    """`qos.ComputePodQOS` over cpu and memory of all regular and init containers."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for _, container in dicts(get_list(spec, "containers") + get_list(spec, "initContainers")):
        for name, value in _positive_quantities(container, "requests").items():
            requests[name] = requests.get(name, Fraction(0)) + value
        container_limits = _positive_quantities(container, "limits")
        for name, value in container_limits.items():
            limits[name] = limits.get(name, Fraction(0)) + value
        if not {"cpu", "memory"} <= set(container_limits):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"
