"""manifests/: every file parses and is used, kustomize builds, the pods are locked down, every
container argument is a real flag of its command, RBAC is exactly what the code needs (no
wildcards), and the dashboard and alerts only use metrics servicegroup exports.

`RBAC_NEEDS` below is the design of each component's permissions, read from the code (which
requests each component makes); the integration suites later hold it against kubesim's request
accounting with `allows()`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from servicegroup import __version__
from servicegroup.cli import COMMANDS, Command, run_cli
from servicegroup.kube.resources import ALL as KNOWN_RESOURCES
from servicegroup.metrics import Metrics
from servicegroup.settings import ControllerSettings, model_field_flag

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NAMESPACE = "servicegroup-system"
COMPONENTS = ("controller", "wrapper", "dns")
POD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "Pod")


# ------------------------------------------------------------------------------ helpers


def load_yaml_files() -> dict[Path, list[dict[str, Any]]]:
    files = sorted(MANIFESTS.rglob("*.yaml")) + sorted(MANIFESTS.rglob("*.yml"))
    return {p: [d for d in yaml.safe_load_all(p.read_text()) if d is not None] for p in files}


@cache
def kustomize(directory: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize <dir>` (kubectl's built-in kustomize); skips without kubectl."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH: kustomize builds are not checked")
    result = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d is not None)


def built() -> tuple[dict[str, Any], ...]:
    return kustomize(".")


Docs = tuple[dict[str, Any], ...]


@cache
def with_federation() -> Docs:
    """manifests/ plus the federation component, built through an overlay as a user would."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH: kustomize builds are not checked")
    import tempfile

    with tempfile.TemporaryDirectory() as overlay:
        relative = os.path.relpath(MANIFESTS, overlay)
        (Path(overlay) / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [relative],
                    "components": [f"{relative}/federation"],
                }
            )
        )
        result = subprocess.run(
            ["kubectl", "kustomize", overlay],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d is not None)


def by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: Docs | None = None) -> dict[str, dict[str, Any]]:
    """component -> its Deployment / DaemonSet."""
    out = {}
    for doc in built() if docs is None else docs:
        if doc["kind"] in POD_KINDS:
            out[doc["metadata"]["labels"]["app.kubernetes.io/component"]] = doc
    return out


def container(component: str, docs: Docs | None = None) -> dict[str, Any]:
    (only,) = workloads(docs)[component]["spec"]["template"]["spec"]["containers"]
    return only


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


# ------------------------------------------------------------------- parse and build


def test_every_manifest_parses_and_names_an_object() -> None:
    files = load_yaml_files()
    assert files
    for path, docs in files.items():
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict), path
            assert doc.get("apiVersion") and doc.get("kind"), path
            if doc["kind"] not in ("Kustomization", "Component"):
                assert doc["metadata"]["name"], path
    dashboard = json.loads((MANIFESTS / "monitoring" / "grafana-dashboard.json").read_text())
    assert dashboard["panels"]


def _kustomization_refs(directory: Path) -> set[Path]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    refs: set[Path] = set()
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            refs.add(target / "kustomization.yaml")
            refs |= _kustomization_refs(target)
        else:
            refs.add(target)
    for generator in spec.get("configMapGenerator", []):
        for item in generator.get("files", []):
            refs.add((directory / item.rpartition("=")[2]).resolve())
    return refs


def test_every_file_is_used_by_a_kustomization() -> None:
    optional = ("monitoring", "federation")
    used = _kustomization_refs(MANIFESTS)
    for name in optional:
        used |= _kustomization_refs(MANIFESTS / name) | {MANIFESTS / name / "kustomization.yaml"}
    used |= {MANIFESTS / "kustomization.yaml"}
    files = {p.resolve() for p in MANIFESTS.rglob("*") if p.is_file()}
    assert files - used == set(), "files no kustomization includes"


@pytest.mark.kubectl
def test_kustomize_builds_the_expected_objects() -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in built())
    assert kinds == sorted(
        [
            "Namespace/servicegroup-system",
            "CustomResourceDefinition/deploymentgrids.superedge.io",
            "CustomResourceDefinition/statefulsetgrids.superedge.io",
            "CustomResourceDefinition/servicegrids.superedge.io",
            *(f"ServiceAccount/servicegroup-{c}" for c in COMPONENTS),
            *(f"ClusterRole/servicegroup-{c}" for c in COMPONENTS),
            *(f"ClusterRoleBinding/servicegroup-{c}" for c in COMPONENTS),
            "Role/servicegroup-controller-leader-election",
            "RoleBinding/servicegroup-controller-leader-election",
            "Deployment/servicegroup-controller",
            "DaemonSet/servicegroup-wrapper",
            "DaemonSet/servicegroup-dns",
            *(f"Service/servicegroup-{c}-metrics" for c in COMPONENTS),
            "ConfigMap/servicegroup-kube-proxy",
            "ConfigMap/servicegroup-coredns-hosts",
        ]
    )
    monitoring = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in kustomize("monitoring"))
    assert monitoring == [
        "ConfigMap/servicegroup-grafana-dashboard",
        "PrometheusRule/servicegroup",
        "ServiceMonitor/servicegroup",
    ]


@pytest.mark.kubectl
def test_namespaces() -> None:
    for doc in built() + kustomize("monitoring"):
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in ("Namespace", "CustomResourceDefinition", "ClusterRole"):
            assert namespace is None
        elif doc["kind"] == "ClusterRoleBinding":
            assert namespace is None
            assert {s["namespace"] for s in doc["subjects"]} == {NAMESPACE}
        elif doc["kind"] == "ConfigMap" and doc["metadata"]["name"] in (
            "servicegroup-kube-proxy",
            "servicegroup-coredns-hosts",
        ):
            assert namespace == "kube-system"  # next to kube-proxy and CoreDNS
        else:
            assert namespace == NAMESPACE, doc["metadata"]["name"]


def test_crds_are_the_generated_files() -> None:
    from servicegroup.api.crds import crd_files

    spec = yaml.safe_load((MANIFESTS / "crds" / "kustomization.yaml").read_text())
    assert sorted(spec["resources"]) == sorted(crd_files())


# ------------------------------------------------------------------- images and version


@pytest.mark.kubectl
def test_one_image_tagged_with_the_package_version() -> None:
    spec = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    (image,) = spec["images"]
    assert image["name"] == "servicegroup"
    assert image["newTag"] == __version__
    expected = f"{image['newName']}:{__version__}"
    for component in COMPONENTS:
        assert container(component)["image"] == expected
    raw = [
        c["image"]
        for docs in load_yaml_files().values()
        for d in docs
        if d["kind"] in POD_KINDS
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert set(raw) == {"servicegroup"}, "manifests name the image; kustomize sets the tag"


# --------------------------------------------------------------------- pod security


@pytest.mark.kubectl
@pytest.mark.parametrize("component", COMPONENTS)
def test_pods_are_locked_down(component: str) -> None:
    workload = workloads()[component]
    pod = workload["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"servicegroup-{component}"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostPID" not in pod and "hostIPC" not in pod
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc.get("privileged", False) is False
        assert "add" not in sc["capabilities"]
        resources = c["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}
        assert set(resources["limits"]) >= {"memory"}
        names = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert c[probe]["httpGet"]["path"] == path
            assert c[probe]["httpGet"]["port"] in names
        assert c.get("imagePullPolicy") == "IfNotPresent"
    # Selector labels are on the pods, and the pods carry the component label.
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.kubectl
def test_the_controller_meets_the_restricted_pod_security_standard() -> None:
    deployment = workloads()["controller"]
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert not pod.get("hostNetwork")
    assert not any("hostPath" in v for v in pod.get("volumes", []))
    c = container("controller")
    assert not any("hostPort" in p for p in c["ports"])
    assert "--leader-elect" in c["args"]


@pytest.mark.kubectl
def test_wrapper_runs_on_the_host_network_bound_to_loopback() -> None:
    daemonset = workloads()["wrapper"]
    assert daemonset["kind"] == "DaemonSet"
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"operator": "Exists"} in pod["tolerations"]  # every node, as kube-proxy
    settings = parse_container("wrapper")
    assert settings.bind_address.startswith("127.0.0.1:")


@pytest.mark.kubectl
def test_dns_runs_as_root_without_capabilities_and_mounts_the_hosts_directory() -> None:
    pod = workloads()["dns"]["spec"]["template"]["spec"]
    # The documented exception: root only to replace a root-owned host file; no capability.
    assert pod["securityContext"]["runAsUser"] == 0
    assert container("dns")["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    settings = parse_container("dns")
    directory = str(Path(settings.hosts_file).parent)
    (mount,) = container("dns")["volumeMounts"]
    assert mount["mountPath"] == directory and not mount.get("readOnly")
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"]
    # The directory, never the file: the file is replaced by rename (docs/dns.md).
    assert volume["hostPath"] == {"path": directory, "type": "DirectoryOrCreate"}


# --------------------------------------------------- container args are real CLI flags


class _Captured(NamedTuple):
    command: str
    settings: Any


_captured: list[_Captured] = []


def _capture_module() -> str:
    """A module whose `run` records the settings the CLI built (instead of running)."""
    name = "_servicegroup_manifest_capture"
    module = types.ModuleType(name)

    def run(settings: Any) -> int:
        _captured.append(_Captured(type(settings).__name__, settings))
        return 0

    module.run = run  # type: ignore[attr-defined]
    sys.modules[name] = module
    return f"{name}:run"


def _env_of(c: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment, downward-API values replaced by plausible ones."""
    placeholders = {"spec.nodeName": "node-a", "metadata.namespace": NAMESPACE}
    env = {}
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = placeholders[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def flags_of(command: Command) -> set[str]:
    names = set()
    for field, info in command.settings.model_fields.items():
        flag = model_field_flag(info.metadata)
        if not flag.positional:
            names.add(flag.name or field.replace("_", "-"))
    return names


def parse_container(component: str, docs: Docs | None = None) -> Any:
    """Run the real CLI on the container's args and env; the settings it would run with."""
    c = container(component, docs)
    args, env = c["args"], _env_of(c)
    table = {cmd.name: cmd for cmd in COMMANDS}
    command = table[args[0]]
    for arg in args[1:]:
        assert arg.startswith("--"), arg
        assert arg[2:].partition("=")[0] in flags_of(command), f"{arg}: no such flag"
    for name in env:
        assert name.startswith("SERVICEGROUP_"), name
        flag = name.removeprefix("SERVICEGROUP_").lower().replace("_", "-")
        assert flag in flags_of(command), f"{name}: {args[0]} has no flag --{flag}"
    target = _capture_module()
    commands = [cmd._replace(target=target) if cmd.name == args[0] else cmd for cmd in COMMANDS]
    _captured.clear()
    code = run_cli(args, commands=commands, environ=env)
    assert code == 0, f"servicegroup {' '.join(args)} is rejected"
    (captured,) = _captured
    return captured.settings


@pytest.mark.kubectl
@pytest.mark.parametrize("component", COMPONENTS)
def test_args_and_env_are_real_flags_and_ports_match(component: str) -> None:
    settings = parse_container(component)
    c = container(component)
    assert c["args"][0] == component
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["metrics"] == port_of(settings.metrics_bind_address)
    assert ports["probes"] == port_of(settings.health_probe_bind_address)
    assert settings.log_format == "json"
    assert settings.kubeconfig is None  # in-cluster service account


@pytest.mark.kubectl
def test_controller_settings() -> None:
    settings = parse_container("controller")
    assert isinstance(settings, ControllerSettings)
    assert settings.leader_elect is True
    assert settings.leader_elect_namespace == NAMESPACE
    role = by_kind(built(), "Role")["servicegroup-controller-leader-election"]
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named and all(r["resourceNames"] == [settings.leader_elect_id] for r in named)


@pytest.mark.kubectl
def test_kube_proxy_kubeconfig_points_at_the_wrapper() -> None:
    config_map = by_kind(built(), "ConfigMap")["servicegroup-kube-proxy"]
    kubeconfig = yaml.safe_load(config_map["data"]["kubeconfig.conf"])
    (cluster,) = kubeconfig["clusters"]
    settings = parse_container("wrapper")
    assert cluster["cluster"]["server"] == f"http://{settings.bind_address}"
    (context,) = kubeconfig["contexts"]
    assert kubeconfig["current-context"] == context["name"]
    assert context["context"]["cluster"] == cluster["name"]
    (user,) = kubeconfig["users"]
    assert user["user"] == {}  # no credentials: the wrapper uses its own


@pytest.mark.kubectl
def test_coredns_snippet_reads_the_dns_helpers_file() -> None:
    settings = parse_container("dns")
    snippet = by_kind(built(), "ConfigMap")["servicegroup-coredns-hosts"]["data"]["hosts.server"]
    first = snippet.splitlines()[0].split()
    assert first[:3] == ["hosts", settings.hosts_file, settings.cluster_domain]
    assert "fallthrough" in snippet.split()


# -------------------------------------------------------------------------------- RBAC


class Permission(NamedTuple):
    verb: str
    group: str
    resource: str  # plural, or plural/subresource
    name: str | None = None  # resourceNames restriction


def _perms(verbs: str, group: str, resources: str, name: str | None = None) -> set[Permission]:
    return {Permission(v, group, r, name) for v in verbs.split() for r in resources.split()}


GRIDS = "deploymentgrids statefulsetgrids servicegrids"
# What each component's code sends (module in brackets), and nothing else.
RBAC_NEEDS: dict[str, set[Permission]] = {
    "controller": (
        # informers (reconcilers/wiring.py); autoDeleteUnusedTemplate merge patch (children.py)
        _perms("list watch", "superedge.io", GRIDS)
        | _perms("patch", "superedge.io", "deploymentgrids statefulsetgrids")
        # status in one JSON patch of the status subresource (reconcilers/children.py)
        | _perms("patch", "superedge.io", " ".join(f"{g}/status" for g in GRIDS.split()))
        # children: informers, server-side apply, delete with a uid precondition
        # Server-side apply that creates an object is authorized as create too.
        | _perms("list watch create patch delete", "apps", "deployments statefulsets")
        | _perms("list watch create patch", "", "services")
        | _perms("list watch", "", "nodes")  # NodeUnit discovery
        | _perms("create patch", "", "events")  # events.py (core/v1, deduplicated by patch)
    ),
    "wrapper": (
        # informers (wrapper/upstream.py)
        _perms("list watch", "", "services endpoints nodes")
        | _perms("list watch", "discovery.k8s.io", "endpointslices")
        # forwarded for kube-proxy with the wrapper's credentials (wrapper/proxy.py)
        | _perms("get", "", "nodes")
        | _perms("create patch", "", "events")
        | _perms("create patch", "events.k8s.io", "events")
    ),
    "dns": (
        # informers only (dns/watcher.py)
        _perms("list watch", "", "nodes services pods")
        | _perms("list watch", "apps", "statefulsets")
        | _perms("list watch", "superedge.io", "statefulsetgrids servicegrids")
    ),
}
# Namespaced grants (Roles in the component's namespace).
RBAC_NAMESPACED_NEEDS: dict[str, set[Permission]] = {
    "controller": _perms("create", "coordination.k8s.io", "leases")
    | _perms("get update", "coordination.k8s.io", "leases", "servicegroup-controller"),
    "wrapper": set(),
    "dns": set(),
}


def allows(
    rules: list[Mapping[str, Any]], verb: str, group: str, resource: str, name: str | None = None
) -> bool:
    """RBAC's rule match (exact strings; wildcards are refused elsewhere)."""
    for rule in rules:
        if verb not in rule.get("verbs", ()) or group not in rule.get("apiGroups", ()):
            continue
        if resource not in rule.get("resources", ()):
            continue
        names = rule.get("resourceNames")
        if names and name not in names:
            continue
        return True
    return False


def _granted(rules: list[Mapping[str, Any]]) -> set[Permission]:
    out = set()
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for verb in rule["verbs"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for name in names:
                        out.add(Permission(verb, group, resource, name))
    return out


def roles_of(
    component: str, docs: Docs | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(cluster-wide rules, namespaced rules) bound to the component's ServiceAccount."""
    docs = built() if docs is None else docs
    account = f"servicegroup-{component}"
    cluster_roles, roles = by_kind(docs, "ClusterRole"), by_kind(docs, "Role")

    def bound(kind: str) -> Iterator[dict[str, Any]]:
        for binding in by_kind(docs, kind).values():
            if any(
                s["kind"] == "ServiceAccount"
                and s["name"] == account
                and s["namespace"] == NAMESPACE
                for s in binding["subjects"]
            ):
                table = cluster_roles if binding["roleRef"]["kind"] == "ClusterRole" else roles
                yield table[binding["roleRef"]["name"]]

    cluster_rules = [r for role in bound("ClusterRoleBinding") for r in role["rules"]]
    namespaced = [r for role in bound("RoleBinding") for r in role["rules"]]
    return cluster_rules, namespaced


@pytest.mark.kubectl
def test_no_wildcards_anywhere() -> None:
    for doc in built():
        for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
            for key in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(key, []), (doc["metadata"]["name"], key)
                assert not any("*" in item for item in rule.get(key, [])), doc["metadata"]["name"]
            assert "nonResourceURLs" not in rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


@pytest.mark.kubectl
@pytest.mark.parametrize("component", COMPONENTS)
def test_rbac_is_exactly_what_the_code_needs(component: str) -> None:
    cluster_rules, namespaced = roles_of(component)
    assert _granted(cluster_rules) == RBAC_NEEDS[component]
    assert _granted(namespaced) == RBAC_NAMESPACED_NEEDS[component]
    for need in RBAC_NEEDS[component]:
        assert allows(cluster_rules, need.verb, need.group, need.resource)


@pytest.mark.kubectl
def test_roles_name_only_resources_that_exist() -> None:
    known = {(r.group, r.plural) for r in KNOWN_RESOURCES}
    for doc in built():
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    plural, _, sub = resource.partition("/")
                    assert (group, plural) in known, (doc["metadata"]["name"], group, resource)
                    assert sub in ("", "status"), resource


def test_allows_respects_resource_names() -> None:
    rules = [{"apiGroups": [""], "resources": ["leases"], "verbs": ["get"], "resourceNames": ["a"]}]
    assert allows(rules, "get", "", "leases", "a")
    assert not allows(rules, "get", "", "leases", "b")
    assert not allows(rules, "list", "", "leases", "a")


# What --enable-federation adds (reconcilers/federation*.py), in the optional component.
FEDERATION_NEEDS: set[Permission] = (
    _perms("list watch", "", "namespaces")  # hub: the cluster namespaces (informer)
    # hub: delete copies; member: read a grid missing from the cache, delete local grids
    | _perms("get create patch delete", "superedge.io", GRIDS)
)
FEDERATION_NAMESPACED_NEEDS: set[Permission] = _perms(
    "list watch", "", "secrets", "parent-cluster"
)  # member: the informer on clusternet-system/parent-cluster (field selector on the name)


@pytest.mark.kubectl
def test_federation_component_enables_the_flag_and_grants_exactly_its_needs() -> None:
    docs = with_federation()
    settings = parse_container("controller", docs)
    assert settings.enable_federation is True
    assert parse_container("controller").enable_federation is False  # off by default
    cluster_rules, namespaced = roles_of("controller", docs)
    assert _granted(cluster_rules) == RBAC_NEEDS["controller"] | FEDERATION_NEEDS
    assert _granted(namespaced) == (
        RBAC_NAMESPACED_NEEDS["controller"] | FEDERATION_NAMESPACED_NEEDS
    )
    (secret_role,) = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == "clusternet-system"
    ]
    assert secret_role["metadata"]["name"] == "servicegroup-controller-federation"
    for doc in docs:
        for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
            for key in ("verbs", "apiGroups", "resources"):
                assert not any("*" in item for item in rule[key])
    # Everything else is the same as without the component.
    plain = {(d["kind"], d["metadata"]["name"]) for d in built()}
    added = {(d["kind"], d["metadata"]["name"]) for d in docs} - plain
    assert {kind for kind, _ in added} == {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }


# -------------------------------------------------------------------------- monitoring


@cache
def exported_series() -> frozenset[str]:
    """Every series name servicegroup exports (counters with _total, histograms' parts)."""
    names = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count")}
        else:
            names.add(family.name)
    return frozenset(names)


OUR_PREFIXES = (
    "workqueue_",
    "controller_runtime_",
    "leader_election_",
    "rest_client_",
    "servicegroup_",
)
PROMQL_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return {n for n in PROMQL_NAME.findall(without_strings) if n.startswith(OUR_PREFIXES)}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MANIFESTS / "monitoring" / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    rule = yaml.safe_load((MANIFESTS / "monitoring" / "prometheusrule.yaml").read_text())
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


def test_dashboard_and_alerts_use_only_exported_metrics() -> None:
    exprs = dashboard_exprs() + [r["expr"] for r in alert_rules()]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used - exported_series() == set()
    assert len(used) >= 10


def test_dashboard_covers_the_operational_questions() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    for name in (
        "workqueue_depth",  # queue depth
        "controller_runtime_reconcile_total",  # reconcile rate
        "controller_runtime_reconcile_errors_total",  # errors
        "servicegroup_nodeunits",  # NodeUnits
        "servicegroup_grid_children_ready",  # children ready per grid kind
        "servicegroup_wrapper_endpoints_kept",
        "servicegroup_wrapper_endpoints_dropped",
    ):
        assert name in used, name
    children = [e for e in dashboard_exprs() if "servicegroup_grid_children_ready" in e]
    assert any("by (kind)" in e for e in children)


def test_alerts_are_well_formed() -> None:
    rules = alert_rules()
    assert len(rules) >= 5
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["expr"].count("(") == rule["expr"].count(")")


@pytest.mark.kubectl
def test_scraping_reaches_every_component() -> None:
    docs = built()
    monitor = by_kind(kustomize("monitoring"), "ServiceMonitor")["servicegroup"]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    services = {
        s["metadata"]["labels"]["app.kubernetes.io/component"]: s
        for s in by_kind(docs, "Service").values()
    }
    assert set(services) == set(COMPONENTS)
    jobs = set()
    for component, service in services.items():
        assert wanted.items() <= service["metadata"]["labels"].items()
        (port,) = service["spec"]["ports"]
        assert port["name"] == endpoint["port"]
        # The Service selects the component's pods and targets its metrics port.
        labels = workloads()[component]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        ports = {p["name"]: p["containerPort"] for p in container(component)["ports"]}
        assert port["targetPort"] in ports and port["port"] == ports[port["targetPort"]]
        jobs.add(service["metadata"]["name"])
    # The alerts' job matchers name these Services (the ServiceMonitor's default job label).
    for rule in alert_rules():
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, (rule["alert"], job)


# ----------------------------------------------------------------- docs stay true


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    for target in MD_LINK.findall(doc.read_text()):
        if "://" in target or target.startswith("#"):
            continue
        path = (doc.parent / target.partition("#")[0]).resolve()
        assert path.exists(), f"{doc.name} links to missing {target}"


def test_readme_quick_start_and_commands() -> None:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(\./hack/\S+)", quick, flags=re.MULTILINE)
    assert commands == ["./hack/demo", "./hack/test"]
    listed = re.findall(r"^\| `servicegroup (\w+)", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(c.name for c in COMMANDS)


def test_documented_metrics_exist() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    names = re.findall(r"`([a-z_]+)`", text)
    documented = {m for m in names if m.startswith(OUR_PREFIXES) and not m.endswith("_")}
    exported = exported_series()
    # Histograms are documented by their base name.
    bases = exported | {n.rsplit("_", 1)[0] for n in exported if n.endswith("_bucket")}
    assert documented - bases == set()
    assert {
        n for n in exported if not n.endswith(("_sum", "_count", "_bucket"))
    } - documented == set()
