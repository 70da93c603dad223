"""Each component's RBAC allows every request its code was seen making against kubesim (issue 9).

What is checked: the components run their real code paths against kubesim (the demo's
cluster and walkthrough, plus what the walkthrough does not reach; the federation suite's
hub and members), and for every request kubesim served to a component, the ClusterRoles and
Roles bound to that component's ServiceAccount in manifests/ allow it under kube-apiserver's
RBAC rules. Denied requests are printed as a table and fail the test; permissions granted
but never seen used are printed (not asserted) for least-privilege review.

Where the requests come from: kubesim's request accounting counts them per verb, resource,
subresource and User-Agent component (`servicegroup/<version> (controller|wrapper|dns)`).
RBAC also depends on what the accounting does not keep: the namespace (a Role grants only
in its own), the name (`resourceNames`; for list and watch, the `metadata.name` field
selector, as kube-apiserver's RequestInfo reads it), whether a PATCH or PUT created the
object (kube-apiserver then also authorizes `create`), and the credentials (a member's hub
token is Clusternet's, not our ServiceAccount). So every KubeSim of these tests keeps an
audit log too (an aiohttp middleware on its app: method, path, query, User-Agent, whether a
bearer token came, status), and each test first proves that the audit log and the
accounting saw the same requests, key for key, before judging the audit log's details.

The wrapper forwards what it does not serve (kube-proxy's Node reads, Events) with its own
credentials, and names itself first in the forwarded User-Agent, so those requests count as
the wrapper's (they are, to the API server).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import io
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import aiohttp
import pytest
import yaml
from aiohttp import web

from servicegroup.controller_command import build_controller
from servicegroup.demo.cluster import NAMESPACE, UNIT_KEY, DemoCluster, make_unit, open_cluster
from servicegroup.demo.steps import DG, SG, SSG, Walkthrough
from servicegroup.demo.tables import columns
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import EVENTS, EVENTS_V1, NODES
from servicegroup.kubesim.accounting import user_agent_component, user_agent_product
from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.server import KubeServer
from servicegroup.log import get_logger
from servicegroup.settings import ControllerSettings
from servicegroup.wrapper.app import USER_AGENT as WRAPPER_USER_AGENT


def _support(module: str, directory: str) -> ModuleType:
    """A sibling suite's helper module (pytest puts its directory on sys.path the same way)."""
    path = str(Path(__file__).resolve().parent / directory)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(module)


wrap_support = _support("wrap_support", "wrapper")
fed_support = _support("fed_support", "federation")

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
COMPONENTS = ("controller", "wrapper", "dns")
PRODUCT = "servicegroup"
LEASE_NAMESPACE = "servicegroup-system"
LEASE_NAME = "servicegroup-controller"
# kube-apiserver's default ClusterRoles system:discovery and system:public-info-viewer (bound
# to every authenticated user) allow these non-resource URLs; nothing in manifests/ does.
DISCOVERY_URLS = (
    *("/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"),
    *("/version", "/version/", "/healthz", "/livez", "/readyz"),
)
TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # strconv.ParseBool's true


# ------------------------------------------------------------------ the audit log


@dataclass
class Seen:
    """One request as kubesim received it."""

    method: str
    path: str
    query: dict[str, str]
    user_agent: str
    bearer: bool  # came with a bearer token (our components' in-cluster identity has none)
    status: int | None = None  # None while a watch streams

    @property
    def product(self) -> str:
        return user_agent_product(self.user_agent)

    @property
    def component(self) -> str:
        return user_agent_component(self.user_agent)


AuditLogs = dict[KubeServer, list[Seen]]


def _audit_middleware(log: list[Seen]) -> Any:
    @web.middleware
    async def audit(request: web.Request, handler: Any) -> web.StreamResponse:
        seen = Seen(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            user_agent=request.headers.get("User-Agent", ""),
            bearer=request.headers.get("Authorization", "").startswith("Bearer "),
        )
        log.append(seen)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            seen.status = exc.status
            raise
        seen.status = response.status
        return response

    return audit


@pytest.fixture
def audit_logs(monkeypatch: pytest.MonkeyPatch) -> AuditLogs:
    """Every KubeSim started in the test keeps an audit log (outermost middleware)."""
    logs: AuditLogs = {}
    build = KubeServer.app

    def app(self: KubeServer) -> web.Application:
        application = build(self)
        application.middlewares.insert(0, _audit_middleware(logs.setdefault(self, [])))
        return application

    monkeypatch.setattr(KubeServer, "app", app)
    return logs


# ------------------------------------------------- kube-apiserver's request attributes


class Attributes(NamedTuple):
    """What RBAC is asked about one resource request (authorizer.Attributes)."""

    verb: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str  # "" for cluster-scoped objects and lists across all namespaces
    name: str  # "" when none (a create, a list without a metadata.name field selector)

    @property
    def combined(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def accounting_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
_VERBS["DELETE"] = "delete"


def _exact_name(field_selector: str) -> str:
    """fields.Selector.RequiresExactMatch("metadata.name")."""
    for term in field_selector.split(","):
        for operator in ("==", "="):
            key, sep, value = term.partition(operator)
            if sep and key.strip() == "metadata.name" and not value.startswith("="):
                return value.strip()
    return ""


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes | None:
    """kube-apiserver's RequestInfoFactory for one request; None for a non-resource URL."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[0] not in ("api", "apis") or (parts[0] == "apis" and len(parts) < 4):
        return None
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        group, version, rest = parts[1], parts[2], parts[3:]
    verb = _VERBS.get(method, method.lower())
    if rest[0] == "watch" and len(rest) > 1:  # the deprecated /watch/ paths
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "") in TRUE else "list"
        name = _exact_name(query.get("fieldSelector", ""))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, group, version, rest[0], subresource, namespace, name)


def nonresource_allowed(path: str) -> bool:
    """What the default discovery roles allow (kube's NonResourceURLMatches)."""
    return any(
        path == url or (url.endswith("*") and path.startswith(url[:-1])) for url in DISCOVERY_URLS
    )


# ---------------------------------------------------------------- RBAC from manifests


class Grant(NamedTuple):
    role: str  # "ClusterRole servicegroup-controller"
    namespace: str | None  # None: bound cluster-wide; else only requests in this namespace
    rule: Mapping[str, Any]


def _docs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def service_account(component: str) -> tuple[str, str]:
    """(namespace, name) of the ServiceAccount the component's workload runs as."""
    for doc in _docs(sorted((MANIFESTS / component).glob("*.yaml"))):
        if doc.get("kind") in ("Deployment", "DaemonSet"):
            pod = doc["spec"]["template"]["spec"]
            return doc["metadata"]["namespace"], pod["serviceAccountName"]
    raise AssertionError(f"no workload in manifests/{component}/")


def rbac_files(*, federation: bool = False) -> list[Path]:
    files = [f for f in sorted((MANIFESTS / "rbac").glob("*.yaml")) if f.stem != "kustomization"]
    return [*files, MANIFESTS / "federation" / "rbac.yaml"] if federation else files


def grants_of(component: str, files: list[Path]) -> list[Grant]:
    """Every rule bound to the component's ServiceAccount, with where it applies."""
    account_namespace, account = service_account(component)
    docs = _docs(files)
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
    }
    grants: list[Grant] = []
    for binding in docs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == account
            and s.get("namespace") == account_namespace
            for s in binding.get("subjects") or ()
        ):
            continue
        ref = binding["roleRef"]
        where = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else None
        key = (ref["kind"], where if ref["kind"] == "Role" else None, ref["name"])
        assert key in roles, f"{binding['kind']} {binding['metadata']['name']} binds missing {key}"
        for rule in roles[key]["rules"]:
            grants.append(Grant(f"{ref['kind']} {ref['name']}", where, rule))
    assert grants, f"nothing is bound to ServiceAccount {account_namespace}/{account}"
    return grants


def rule_allows(rule: Mapping[str, Any], a: Attributes) -> bool:
    """rbac/v1 PolicyRule matching, as kube-apiserver's RBAC authorizer does it."""
    verbs, groups = rule.get("verbs") or (), rule.get("apiGroups") or ()
    if "*" not in verbs and a.verb not in verbs:
        return False
    if "*" not in groups and a.group not in groups:
        return False
    resources = rule.get("resources") or ()
    if not (
        "*" in resources
        or a.combined in resources
        or (a.subresource and f"*/{a.subresource}" in resources)
    ):
        return False
    names = rule.get("resourceNames") or ()
    return not names or (a.name != "" and a.name in names)


def applies(grant: Grant, a: Attributes) -> bool:
    """The grant allows `a` (a RoleBinding's rules only inside the binding's namespace)."""
    return (grant.namespace is None or grant.namespace == a.namespace) and rule_allows(
        grant.rule, a
    )


# --------------------------------------------------------------------- the judgement


class Need(NamedTuple):
    attributes: Attributes
    why: str  # "" for the request itself


def needs_of(seen: Seen) -> list[Need]:
    a = request_attributes(seen.method, seen.path, seen.query)
    if a is None:
        return []
    out = [Need(a, "")]
    if a.verb in ("patch", "update") and seen.status == 201:
        # handlers/patch.go, update.go: an object created this way is also authorized as create
        out.append(Need(a._replace(verb="create"), f"{a.verb} answered 201 Created"))
    return out


@dataclass
class Verdict:
    component: str
    requests: int = 0
    used: Counter[Need] = field(default_factory=Counter)
    denied: Counter[Need] = field(default_factory=Counter)
    nonresource_denied: Counter[str] = field(default_factory=Counter)
    used_grants: set[tuple[int, str, str, str, str | None]] = field(default_factory=set)

    def seen(self, verb: str, group: str, resource: str, **where: str) -> bool:
        return any(
            n.attributes.verb == verb
            and n.attributes.group == group
            and n.attributes.combined == resource
            and all(getattr(n.attributes, k) == v for k, v in where.items())
            for n in self.used
        )


def _atoms(grant: Grant) -> Iterable[tuple[str, str, str, str | None]]:
    rule = grant.rule
    for verb in rule.get("verbs") or ():
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                for name in rule.get("resourceNames") or [None]:
                    yield verb, group, resource, name


def judge(component: str, entries: Iterable[Seen], grants: list[Grant]) -> Verdict:
    verdict = Verdict(component)
    for seen in entries:
        verdict.requests += 1
        needs = needs_of(seen)
        if not needs and not nonresource_allowed(seen.path):
            verdict.nonresource_denied[f"{seen.method} {seen.path}"] += 1
        for need in needs:
            verdict.used[need] += 1
            allowed = [(i, g) for i, g in enumerate(grants) if applies(g, need.attributes)]
            if not allowed:
                verdict.denied[need] += 1
            for index, grant in allowed:  # which single (verb, group, resource, name) did it
                for verb, group, resource, name in _atoms(grant):
                    single = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
                    if name is not None:
                        single["resourceNames"] = [name]
                    if rule_allows(single, need.attributes):
                        verdict.used_grants.add((index, verb, group, resource, name))
    return verdict


def _where(a: Attributes) -> str:
    return a.namespace or "(cluster-wide)"


def _need_rows(needs: Counter[Need]) -> list[list[str]]:
    rows = [["VERB", "GROUP", "RESOURCE", "NAMESPACE", "NAME", "REQUESTS", "WHY"]]
    for need, count in sorted(needs.items()):
        a = need.attributes
        rows.append(
            [a.verb, a.group or '""', a.combined, _where(a), a.name or "-", str(count), need.why]
        )
    return rows


def unused_grants(grants: list[Grant], verdicts: Iterable[Verdict]) -> list[str]:
    """A table of every granted (verb, group, resource, name) no verdict saw used."""
    used = set().union(*(v.used_grants for v in verdicts))
    rows = [["VERB", "GROUP", "RESOURCE", "NAME", "WHERE", "ROLE"]]
    for index, grant in enumerate(grants):
        for verb, group, resource, name in _atoms(grant):
            if (index, verb, group, resource, name) not in used:
                where = grant.namespace or "cluster-wide"
                rows.append([verb, group or '""', resource, name or "-", where, grant.role])
    if len(rows) == 1:
        return []
    return ["-- granted but never seen used (least-privilege review):", *columns(rows)]


def report(verdict: Verdict, *, what: str) -> str:
    lines = [
        f"== {verdict.component} ({what}): {verdict.requests} requests, "
        f"{len(verdict.used)} distinct permission checks",
        *columns(_need_rows(verdict.used)),
    ]
    if verdict.denied:
        lines += ["-- DENIED by RBAC:", *columns(_need_rows(verdict.denied))]
    for request, count in sorted(verdict.nonresource_denied.items()):
        lines.append(f"-- DENIED non-resource request ({count}x): {request}")
    return "\n".join(lines)


def assert_allowed(verdicts: Iterable[Verdict]) -> None:
    """Fail with a table of every denied request, per component."""
    tables = []
    for verdict in verdicts:
        if verdict.denied:
            tables += [f"{verdict.component}:", *columns(_need_rows(verdict.denied))]
        for request, count in sorted(verdict.nonresource_denied.items()):
            tables.append(f"{verdict.component}: non-resource request ({count}x): {request}")
    assert not tables, "RBAC denies requests the components make:\n" + "\n".join(tables)


# ------------------------------------------------------ audit log == request accounting


def _accounting_key(seen: Seen) -> tuple[str, str, str, str, str]:
    a = request_attributes(seen.method, seen.path, seen.query)
    if a is None:  # kubesim counts discovery, OpenAPI and /version as get ""
        return ("get", "", "", seen.product, seen.component)
    return (a.verb, a.accounting_resource, a.subresource, seen.product, seen.component)


def assert_audit_matches_accounting(sim: KubeSim, log: list[Seen]) -> None:
    """Same requests, key for key (run with no await in between: nothing interleaves).

    The only audit entries the accounting may lack are kubesim's 404s for paths that name no
    served resource, which it answers before counting.
    """
    accounting = Counter(
        {
            (c.verb, c.resource, c.subresource, c.user_agent, c.user_agent_component): c.count
            for c in sim.requests.snapshot()
        }
    )
    entries = [s for s in log if not s.path.startswith("/kubesim/")]
    audit = Counter(_accounting_key(s) for s in entries)
    missing = accounting - audit
    assert not missing, f"the accounting counted requests the audit log did not see: {missing}"
    not_found = Counter(_accounting_key(s) for s in entries if s.status == 404)
    unexplained = (audit - accounting) - not_found
    assert not unexplained, f"the audit log saw requests kubesim did not count: {unexplained}"


def by_component(log: list[Seen]) -> dict[str, list[Seen]]:
    ours: dict[str, list[Seen]] = {c: [] for c in COMPONENTS}
    for seen in log:
        if seen.product != PRODUCT:
            continue
        assert seen.component in ours, f"a servicegroup client with no known component: {seen}"
        ours[seen.component].append(seen)
    return ours


# --------------------------------------------------------------------- scenario helpers


async def eventually(check: Callable[[], object], *, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def _start_controller_as_deployed(self: DemoCluster) -> None:
    """DemoCluster.start_controller, but as manifests/controller runs it: --leader-elect, the
    Lease in the controller's own namespace (short timings, so renewals happen in the test)."""
    self.api.create("namespaces", {"metadata": {"name": LEASE_NAMESPACE}})
    settings = ControllerSettings(
        log_format=self.log_format,
        log_level=self.log_level,
        metrics_bind_address="0",
        health_probe_bind_address="0",
        leader_elect=True,
        leader_elect_namespace=LEASE_NAMESPACE,
        leader_elect_id=LEASE_NAME,
        lease_duration=4.0,
        renew_deadline=3.0,
        retry_period=0.5,
    )
    config = ClientConfig.for_server(self.sim.url)
    process = build_controller(settings, config=config, logger=get_logger("controller"))
    self.controller = process
    self._supervise("controller", process.manager.run())


def _now() -> str:
    return "2025-01-01T00:00:00Z"


async def kube_proxy_through_wrapper(url: str, node: str) -> None:
    """What kube-proxy asks the wrapper on its node: its Service and EndpointSlice informers
    (served by the wrapper), and, forwarded to the API server, its Node (get, and the
    informer's list + watch by name) and its Events (client-go's events.k8s.io/v1 recorder,
    and the core/v1 one older releases use: create, then a patch for a repeat)."""
    proxy = wrap_support.ProxyClient(url, name=node)
    async with proxy.running():
        client = proxy.client
        me = await client.get(NODES, node)
        selector = f"metadata.name={node}"
        listed = await client.list(NODES, field_selector=selector)
        async with client.watch(
            NODES,
            field_selector=selector,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=1,
        ):
            pass  # opening it is the request
        regarding = {"kind": "Node", "name": node, "uid": me["metadata"]["uid"], "apiVersion": "v1"}
        event = await client.create(
            EVENTS_V1,
            {
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": {"name": f"{node}.kube-proxy-v1", "namespace": "default"},
                "eventTime": "2025-01-01T00:00:00.000000Z",
                "reportingController": "kube-proxy",
                "reportingInstance": f"kube-proxy-{node}",
                "action": "StartKubeProxy",
                "reason": "Starting",
                "type": "Normal",
                "note": "",
                "regarding": regarding,
            },
            namespace="default",
        )
        await client.patch(
            EVENTS_V1,
            event["metadata"]["name"],
            {"series": {"count": 2, "lastObservedTime": "2025-01-01T00:00:01.000000Z"}},
            patch_type="merge",
            namespace="default",
        )
        core = await client.create(
            EVENTS,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{node}.kube-proxy-core", "namespace": "default"},
                "involvedObject": regarding,
                "reason": "Starting",
                "message": "Starting kube-proxy.",
                "source": {"component": "kube-proxy", "host": node},
                "firstTimestamp": _now(),
                "lastTimestamp": _now(),
                "count": 1,
                "type": "Normal",
            },
            namespace="default",
        )
        await client.patch(
            EVENTS,
            core["metadata"]["name"],
            {"count": 2, "lastTimestamp": _now()},
            patch_type="strategic",
            namespace="default",
        )


# ------------------------------------------------------------------- the demo cluster

# What the scenario below must have made each component do (so the test cannot pass on a
# path that silently stopped being exercised): (verb, group, resource[/sub], namespace).
SCENARIO: dict[str, list[tuple[str, str, str, str | None]]] = {
    "controller": [
        ("get", "coordination.k8s.io", "leases", LEASE_NAMESPACE),
        ("create", "coordination.k8s.io", "leases", LEASE_NAMESPACE),
        ("update", "coordination.k8s.io", "leases", LEASE_NAMESPACE),
        *[
            (verb, group, resource, None)
            for verb in ("list", "watch")
            for group, resource in (
                ("superedge.io", "deploymentgrids"),
                ("superedge.io", "statefulsetgrids"),
                ("superedge.io", "servicegrids"),
                ("apps", "deployments"),
                ("apps", "statefulsets"),
                ("", "services"),
                ("", "nodes"),
            )
        ],
        *[
            (verb, group, resource, NAMESPACE)
            for verb in ("patch", "create", "delete")
            for group, resource in (("apps", "deployments"), ("apps", "statefulsets"))
        ],
        ("patch", "", "services", NAMESPACE),
        ("create", "", "services", NAMESPACE),
        ("patch", "superedge.io", "deploymentgrids", NAMESPACE),  # autoDeleteUnusedTemplate
        ("patch", "superedge.io", "statefulsetgrids", NAMESPACE),
        ("patch", "superedge.io", "deploymentgrids/status", NAMESPACE),
        ("patch", "superedge.io", "statefulsetgrids/status", NAMESPACE),
        ("patch", "superedge.io", "servicegrids/status", NAMESPACE),
        ("create", "", "events", NAMESPACE),
    ],
    "wrapper": [
        *[
            (verb, group, resource, None)
            for verb in ("list", "watch")
            for group, resource in (
                ("", "nodes"),
                ("", "services"),
                ("", "endpoints"),
                ("discovery.k8s.io", "endpointslices"),
            )
        ],
        ("get", "", "nodes", None),  # forwarded for kube-proxy
        *[
            (verb, group, "events", "default")
            for verb in ("create", "patch")
            for group in ("", "events.k8s.io")
        ],
    ],
    "dns": [
        (verb, group, resource, None)
        for verb in ("list", "watch")
        for group, resource in (
            ("", "nodes"),
            ("", "services"),
            ("", "pods"),
            ("apps", "statefulsets"),
            ("superedge.io", "statefulsetgrids"),
            ("superedge.io", "servicegrids"),
        )
    ],
}


def assert_scenario_covered(verdicts: Mapping[str, Verdict]) -> None:
    missing = []
    for component, expected in SCENARIO.items():
        verdict = verdicts[component]
        assert verdict.requests > 0, f"{component} was never seen making a request"
        for verb, group, resource, namespace in expected:
            where = {} if namespace is None else {"namespace": namespace}
            if not verdict.seen(verb, group, resource, **where):
                missing.append(f"{component}: {verb} {group or 'core'} {resource} {where}")
    assert not missing, "the scenario did not exercise:\n  " + "\n  ".join(missing)


def _gone(cluster: DemoCluster, resource: str, name: str) -> bool:
    return cluster.get(resource, name) is None


async def drive_beyond_the_walkthrough(cluster: DemoCluster, walkthrough: Walkthrough) -> None:
    """Edits, removals and vanished units the walkthrough does not do."""
    # autoDeleteUnusedTemplate: the canary with test2 no longer referenced -> the controller
    # removes it from the pool (a merge patch of the grid).
    canary = copy.deepcopy(walkthrough.canary)
    canary["spec"]["autoDeleteUnusedTemplate"] = True
    canary["spec"]["templates"] = {"zone-1": "test1"}
    cluster.api.apply("deploymentgrids", canary, namespace=NAMESPACE)
    await eventually(
        lambda: (
            "test2"
            not in ((cluster.get("deploymentgrids", DG) or {}).get("spec") or {}).get(
                "templatePool", {}
            )
        ),
        what="autoDeleteUnusedTemplate to remove test2",
    )
    # The same for a StatefulSetGrid: an unused pool entry added by hand is removed.
    template = (cluster.get("statefulsetgrids", SSG) or {})["spec"]["template"]
    cluster.api.patch(
        "statefulsetgrids",
        SSG,
        {"spec": {"autoDeleteUnusedTemplate": True, "templatePool": {"unused": template}}},
        namespace=NAMESPACE,
    )

    def pool(resource: str, name: str) -> Mapping[str, Any]:
        return ((cluster.get(resource, name) or {}).get("spec") or {}).get("templatePool") or {}

    await eventually(
        lambda: "unused" not in pool("statefulsetgrids", SSG),
        what="autoDeleteUnusedTemplate to remove the StatefulSetGrid's unused entry",
    )
    # A NodeUnit vanishes (its nodes lose the label): its children are deleted.
    gone = walkthrough.new_unit
    for node in gone.nodes:
        cluster.api.patch("nodes", node, {"metadata": {"labels": {UNIT_KEY: None}}})
    await eventually(
        lambda: (
            _gone(cluster, "deployments", f"{DG}-{gone.name}")
            and _gone(cluster, "statefulsets", f"{SSG}-{gone.name}")
        ),
        what=f"the children of vanished NodeUnit {gone.name} deleted",
    )
    # Grids deleted (their children go with them, by owner references).
    cluster.api.delete("statefulsetgrids", SSG, namespace=NAMESPACE)
    cluster.api.delete("servicegrids", SG, namespace=NAMESPACE)
    await eventually(
        lambda: _gone(cluster, "statefulsetgrids", SSG) and _gone(cluster, "servicegrids", SG),
        what="the deleted grids gone",
    )


async def test_every_component_request_is_allowed_by_its_rbac(
    tmp_path: Path, audit_logs: AuditLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DemoCluster, "start_controller", _start_controller_as_deployed)
    out = io.StringIO()
    units = [make_unit(index) for index in range(3)]
    async with (
        open_cluster(
            workdir=tmp_path,
            units=units,
            log_format="json",
            log_level="error",
            logger=get_logger("demo"),
        ) as cluster,
        aiohttp.ClientSession() as http,
    ):
        walkthrough = Walkthrough(cluster=cluster, http=http, out=out, new_unit=make_unit(3))
        outcome = await walkthrough.run()
        assert outcome.ok, out.getvalue()
        wrapper = cluster.wrappers[units[0].name]
        await kube_proxy_through_wrapper(wrapper.url, wrapper.node)
        await drive_beyond_the_walkthrough(cluster, walkthrough)
        log = audit_logs[cluster.sim.server]

        def renewed() -> bool:
            return any(
                s.component == "controller" and s.method == "PUT" and "/leases/" in s.path
                for s in log
            )

        await eventually(renewed, what="a Lease renewal")
        # Both views at one instant, before anything else can run.
        assert_audit_matches_accounting(cluster.sim, log)
        entries = list(log)

    # Every request kube-proxy sent to kubesim went through the wrapper, as the wrapper's.
    assert not [s for s in entries if s.product == "kube-proxy"]
    assert any(s.user_agent.startswith(f"{WRAPPER_USER_AGENT} kube-proxy/") for s in entries)

    files = rbac_files()
    verdicts, reports = {}, []
    for component, requests in by_component(entries).items():
        grants = grants_of(component, files)
        verdict = verdicts[component] = judge(component, requests, grants)
        reports.append(
            "\n".join([report(verdict, what="manifests/rbac"), *unused_grants(grants, [verdict])])
        )
    print("\n\n".join(reports))
    assert_scenario_covered(verdicts)
    assert_allowed(verdicts.values())


# ------------------------------------------------------------------------ federation


@pytest.fixture
async def rbac_world(tmp_path: Path, audit_logs: AuditLogs) -> AsyncIterator[Any]:
    world = await fed_support.start_world(tmp_path)
    try:
        yield world
    finally:
        await fed_support.stop_world(world)


async def test_federation_requests_are_allowed_by_controller_and_federation_rbac(
    rbac_world: Any, audit_logs: AuditLogs
) -> None:
    world = rbac_world
    hub, a, b = world.hub, world.a, world.b
    grids = "deploymentgrids"
    name = "deploymentgrid-demo"
    a.add_node("a-node-1", zone="zone1")
    b.add_node("b-node-1", zone="zone2")
    for cluster in world.clusters:
        await world.start_controller(cluster)
    hub.api.create(
        grids, fed_support.fixture("deploymentgrid-multicluster.yaml"), namespace="default"
    )
    await world.wait_for(
        lambda: a.get("deployments", f"{name}-zone1") and b.get("deployments", f"{name}-zone2"),
        what="each member's Deployment",
    )
    await world.wait_for(
        lambda: all((world.copy(m, name) or {}).get("status") for m in fed_support.HUB_NAMESPACES),
        what="members' status on the hub copies",
    )
    # Deleted in the hub: the hub deletes the copies, each member its local grid.
    hub.api.delete(grids, name, namespace="default")
    await world.wait_for(
        lambda: (
            all(world.copy(m, name) is None for m in fed_support.HUB_NAMESPACES)
            and a.get(grids, name) is None
            and b.get(grids, name) is None
        ),
        what="copies and local grids deleted",
    )
    assert world.controllers_failed() == []
    logs = {}
    for cluster in world.clusters:
        assert_audit_matches_accounting(cluster.sim, audit_logs[cluster.sim.server])
        logs[cluster.name] = list(audit_logs[cluster.sim.server])
    await world.stop_controllers()

    grants = grants_of("controller", rbac_files(federation=True))
    verdicts, reports = {}, []
    hub_token: list[Seen] = []
    for cluster_name, log in logs.items():
        ours = by_component(log)
        assert not ours["wrapper"] and not ours["dns"]
        # A request with a bearer token is a member's link on the hub, with Clusternet's
        # credentials; our ServiceAccount's are the in-cluster ones (none in kubesim).
        own = [s for s in ours["controller"] if not s.bearer]
        hub_token += [s for s in ours["controller"] if s.bearer]
        assert all(cluster_name == "hub" for s in ours["controller"] if s.bearer)
        verdict = judge(f"controller in {cluster_name}", own, grants)
        verdicts[cluster_name] = verdict
        reports.append(report(verdict, what="rbac/controller.yaml + federation/rbac.yaml"))
    reports.append(
        "\n".join(["== controller, all three clusters", *unused_grants(grants, verdicts.values())])
    )

    # What a member does on the hub with the hub token: Clusternet's RBAC, documented only.
    clusternet = Counter(n for s in hub_token for n in needs_of(s))
    reports.append(
        "== members on the hub with the parent-cluster token (Clusternet's RBAC, not ours):\n"
        + "\n".join(columns(_need_rows(clusternet)))
    )
    print("\n\n".join(reports))

    assert clusternet, "the members were never seen working on the hub"
    hub_v, a_v, b_v = verdicts["hub"], verdicts["a"], verdicts["b"]
    assert hub_v.seen("list", "", "namespaces") and hub_v.seen("watch", "", "namespaces")
    for cluster_namespace in fed_support.HUB_NAMESPACES.values():
        for verb in ("patch", "create", "delete"):  # copies: applied (created), deleted
            assert hub_v.seen(verb, "superedge.io", grids, namespace=cluster_namespace), verb
    for member in (a_v, b_v):
        for verb in ("list", "watch"):
            assert member.seen(
                verb, "", "secrets", namespace="clusternet-system", name="parent-cluster"
            ), verb
        for verb in ("patch", "create", "delete"):  # local grids: applied (created), deleted
            assert member.seen(verb, "superedge.io", grids, namespace="default"), verb
    assert_allowed(verdicts.values())


# ------------------------------------------------------------ the judge can say no


def test_request_attributes_and_rule_matching_follow_kube_apiserver() -> None:
    attrs = request_attributes
    assert attrs("GET", "/api/v1/nodes", {}) == Attributes("list", "", "v1", "nodes", "", "", "")
    assert attrs("GET", "/api/v1/nodes", {"watch": "1", "fieldSelector": "metadata.name=n1"}) == (
        Attributes("watch", "", "v1", "nodes", "", "", "n1")
    )
    assert attrs("GET", "/api/v1/watch/namespaces/ns/pods", {}) == (
        Attributes("watch", "", "v1", "pods", "", "ns", "")
    )
    assert attrs("PUT", "/api/v1/namespaces/ns/status", {}) == (
        Attributes("update", "", "v1", "namespaces", "status", "ns", "ns")
    )
    assert attrs("DELETE", "/apis/apps/v1/namespaces/ns/deployments", {}) == (
        Attributes("deletecollection", "apps", "v1", "deployments", "", "ns", "")
    )
    status = attrs("PATCH", "/apis/superedge.io/v1/namespaces/ns/deploymentgrids/g/status", {})
    assert status == Attributes(
        "patch", "superedge.io", "v1", "deploymentgrids", "status", "ns", "g"
    )
    assert attrs("GET", "/apis/apps/v1", {}) is None and attrs("GET", "/version", {}) is None
    assert _exact_name("spec.x=1,metadata.name==a") == "a" and _exact_name("metadata.name!=a") == ""

    grants = [
        Grant("ClusterRole c", None, {"apiGroups": ["apps"], "resources": ["deployments"],
                                      "verbs": ["patch"]}),
        Grant("ClusterRole c", None, {"apiGroups": ["x"], "resources": ["grids/status"],
                                      "verbs": ["patch"]}),
        Grant("Role r", "ns", {"apiGroups": [""], "resources": ["secrets"],
                               "resourceNames": ["s"], "verbs": ["list", "watch"]}),
    ]  # fmt: skip
    applied = Seen("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d", {}, "ua", False, 201)
    created = judge("c", [applied], grants)
    assert [n.attributes.verb for n in created.denied] == ["create"]  # created by a patch
    updated = Seen("PATCH", applied.path, {}, "ua", False, 200)
    assert not judge("c", [updated], grants).denied
    secrets = "/api/v1/namespaces/{}/secrets"
    cases = {
        (secrets.format("ns"), "metadata.name=s"): True,
        (secrets.format("ns"), ""): False,  # resourceNames: a list needs the name selector
        (secrets.format("other"), "metadata.name=s"): False,  # a Role grants in its namespace
        ("/apis/x/v1/namespaces/ns/grids/g/status", ""): False,  # GET, not patch
    }
    for (path, selector), allowed in cases.items():
        seen = Seen("GET", path, {"fieldSelector": selector} if selector else {}, "ua", False)
        assert (not judge("c", [seen], grants).denied) is allowed, path
    subresource = Seen("PATCH", "/apis/x/v1/namespaces/ns/grids/g/status", {}, "ua", False, 200)
    assert not judge("c", [subresource], grants).denied
    main = Seen("PATCH", "/apis/x/v1/namespaces/ns/grids/g", {}, "ua", False, 200)
    assert judge("c", [main], grants).denied  # grids/status does not grant grids
    assert judge("c", [Seen("GET", "/metrics", {}, "ua", False)], grants).nonresource_denied
