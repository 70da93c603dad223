"""The walkthrough: the upstream documentation's examples, one numbered step at a time.

Owns: `Walkthrough` (the steps, in order: the cluster; DeploymentGrid; ServiceGrid; what each
NodeUnit's wrapper serves; a new NodeUnit joining; StatefulSetGrid with each unit's hosts
file; canary), what each step prints (a one-paragraph explanation, the user's action as the
`kubectl` command it stands for, then `kubectl get` tables fetched from the API server as
kubectl fetches them), and the convergence check that ends each step.

Invariants:
- A step converges when the cluster shows exactly what the documentation promises (every
  child ready, status counts, each wrapper's endpoints equal to its own unit's ready pods,
  each hosts file naming its own unit's pods); it is polled, never slept on, until a
  deadline. A step that misses it stops the walkthrough with what was still missing.
- The demo's writes are server-side applies under field manager `kubectl`, as
  `kubectl apply --server-side` makes them; reads for checks use kubesim's in-process
  client, tables and endpoints are read over HTTP (from kubesim, and from each wrapper).
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import aiohttp

from servicegroup.demo import manifests
from servicegroup.demo.cluster import NAMESPACE, UNIT_KEY, DemoCluster, RunningWrapper, Unit
from servicegroup.demo.tables import TABLE_ACCEPT, GetCommand, columns, format_table

STEP_TIMEOUT = 30.0
DG = "deploymentgrid-demo"
SG = "servicegrid-demo"
SSG = "statefulsetgrid-demo"
SVC = "servicegrid-demo-svc"
ECHO = "appGrid=echo"
CLUSTER_DOMAIN = "cluster.local"
# The canary example's NodeUnits (zone1, zone2) -> this cluster's.
CANARY_RENAMES: Mapping[str, str] = {"zone1": "zone-1", "zone2": "zone-2"}
SLICES_PATH = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
STS_POD_LABEL = "statefulset.kubernetes.io/pod-name"
_POLL = 0.05

# None: converged. Otherwise what is still missing, for the failure message.
Pending = str | None
Check = Callable[[], Pending | Awaitable[Pending]]


class NotConverged(Exception):
    def __init__(self, pending: str) -> None:
        super().__init__(pending)
        self.pending = pending


@dataclass(frozen=True)
class Step:
    title: str
    explanation: str
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    steps: int
    failed_step: int | None = None


def _ready(obj: Mapping[str, Any]) -> bool:
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


def _ip_key(text: str) -> tuple[int, Any]:
    address = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return (1, text)
    return (0, (parsed.version, int(parsed), text))


def _wrap(
    text: str, width: int = 92, indent: str = "    ", hanging: str | None = None
) -> list[str]:
    """`text` in lines of at most `width`; continuation lines indented by `hanging`."""
    lines: list[str] = []
    current = ""
    prefix = indent
    for word in text.split():
        if current and len(prefix) + len(current) + 1 + len(word) > width:
            lines.append(prefix + current)
            prefix = indent if hanging is None else hanging
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(prefix + current)
    return lines


def fqdn(ordinal: int) -> str:
    return f"{SSG}-{ordinal}.{SVC}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"


class Walkthrough:
    """The numbered steps of the demo, printed to `out`."""

    def __init__(
        self,
        *,
        cluster: DemoCluster,
        http: aiohttp.ClientSession,
        out: TextIO,
        new_unit: Unit,
        step_timeout: float = STEP_TIMEOUT,
    ) -> None:
        self.cluster = cluster
        self.http = http
        self.out = out
        self.new_unit = new_unit
        self.step_timeout = step_timeout
        self.canary = manifests.fixed_canary(CANARY_RENAMES)
        self.steps = [
            Step(
                "The cluster: nine nodes in three NodeUnits",
                "kubesim is an in-memory Kubernetes API server with simulated kubelets, "
                "scheduler and built-in controllers. A NodeUnit is one value of the node label "
                f"a grid names in gridUniqKey (here `{UNIT_KEY}`): {self._unit_list()}, three "
                "nodes each. The servicegroup controller runs against it, and on the first node "
                "of each NodeUnit a wrapper and a DNS helper run, as their DaemonSets would on "
                "every node.",
                self.step_cluster,
            ),
            Step(
                "DeploymentGrid: one Deployment per NodeUnit",
                "deploymentgrid-demo.yaml (upstream, unchanged): gridUniqKey zone and a template "
                "of 2 replicas of superedge/echoserver:2.2. The controller creates "
                f"{DG}-<NodeUnit> for every NodeUnit, with nodeSelector zone=<NodeUnit>, so each "
                "unit's pods run on that unit's nodes.",
                self.step_deploymentgrid,
            ),
            Step(
                "ServiceGrid: one Service, NodeUnit-local",
                "servicegrid-demo.yaml (upstream, unchanged): the controller creates the Service "
                f"{SVC} (selector appGrid=echo) with the annotation topologyKeys: "
                "'[\"zone\"]', which makes each node's wrapper keep this Service's traffic "
                "inside the node's own NodeUnit.",
                self.step_servicegrid,
            ),
            Step(
                "Site-local traffic: each NodeUnit reaches only its own pods",
                "kube-proxy on a node lists Services and EndpointSlices from the node's wrapper "
                "instead of the API server (in a cluster at 127.0.0.1:51006; here one wrapper "
                "per NodeUnit on a free port). For a Service with topologyKeys the wrapper keeps "
                "only the endpoints on nodes of its own NodeUnit, so the same ClusterIP reaches "
                "different pods in every unit.",
                self.step_traffic,
            ),
            Step(
                f"A new NodeUnit joins: {new_unit.name} gets its own copy",
                f"Three more nodes register, labelled zone={new_unit.name} (as `kubectl label "
                f"node NODE zone={new_unit.name}` would put existing ones there). The controller "
                f"sees a new NodeUnit and creates {DG}-{new_unit.name}; no grid is touched. "
                f"{new_unit.name}'s wrapper and DNS helper start with its nodes.",
                self.step_new_unit,
            ),
            Step(
                "StatefulSetGrid: one StatefulSet per NodeUnit, headless names per NodeUnit",
                "statefulsetgrid-demo.yaml (upstream, unchanged): 3 replicas, serviceName "
                f"{SVC}. The controller creates {SSG}-<NodeUnit>, whose pods are "
                f"{SSG}-<NodeUnit>-0..2. Each node's DNS helper writes "
                f"{SSG}-<i>.{SVC}.{NAMESPACE}.svc.{CLUSTER_DOMAIN} into the node's hosts file "
                "(served by the node's CoreDNS hosts plugin) with the IP of pod <i> of its own "
                "NodeUnit: one name, a different pod in every unit.",
                self.step_statefulsetgrid,
            ),
            Step(
                "Canary: a different template per NodeUnit",
                "deploymentgrid-canary.yaml (upstream, fixed as listed below) replaces "
                f"{DG}'s spec: templatePool holds test1 (2 replicas of echoserver:2.2, the old "
                "release) and test2 (3 replicas of echoserver:2.3, the new one); templates "
                "gives zone-1 test1 and zone-2 test2, and defaultTemplateName test1 covers "
                "every other NodeUnit. Every Deployment whose template changed rolls out.",
                self.step_canary,
            ),
        ]
        self.current: int | None = None

    def _unit_list(self) -> str:
        names = [unit.name for unit in self.cluster.units]
        return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)

    # ---- output ------------------------------------------------------------------------

    def say(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out, flush=True)

    async def table(self, command: GetCommand) -> dict[str, Any]:
        path, params = command.request(NAMESPACE)
        async with self.http.get(
            self.cluster.sim.url + path, params=params, headers={"Accept": TABLE_ACCEPT}
        ) as response:
            if response.status != 200:
                text = await response.text()
                raise RuntimeError(f"{command.text()}: HTTP {response.status}: {text[:200]}")
            body: dict[str, Any] = await response.json()
            return body

    async def kubectl_get(self, command: GetCommand) -> None:
        table = await self.table(command)
        lines = format_table(
            table,
            wide=command.wide,
            label_columns=command.label_columns,
            namespace=NAMESPACE if command.kind.namespaced else None,
        )
        self.say("", f"$ {command.text()}", *lines)

    def kubectl_apply(self, file_name: str, obj: dict[str, Any], plural: str) -> None:
        self.cluster.api.apply(plural, obj, namespace=NAMESPACE)
        kind = str(obj["kind"]).lower()
        self.say(
            "",
            f"$ kubectl apply --server-side -f {file_name}",
            f"{kind}.superedge.io/{obj['metadata']['name']} serverside-applied",
        )

    # ---- running -----------------------------------------------------------------------

    async def run(self) -> Outcome:
        loop = asyncio.get_running_loop()
        total = len(self.steps)
        for number, step in enumerate(self.steps, start=1):
            self.current = number
            self.say("", f"[{number}/{total}] {step.title}", *_wrap(step.explanation))
            started = loop.time()
            try:
                await step.run()
            except NotConverged as err:
                self.say(
                    "",
                    f"FAILED: step {number}/{total} ({step.title}) did not converge within "
                    f"{self.step_timeout:g}s",
                    f"  still waiting for: {err.pending}",
                )
                self.say(*self.unhappy_conditions())
                return Outcome(ok=False, steps=total, failed_step=number)
            self.say("", f"    step {number} converged in {loop.time() - started:.1f}s")
        self.current = None
        return Outcome(ok=True, steps=total)

    async def converge(self, *checks: Check) -> None:
        """Poll every check until all pass at once; NotConverged at the step's deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.step_timeout
        while True:
            pending: Pending = None
            for check in checks:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result is not None:
                    pending = result
                    break
            if pending is None:
                return
            if loop.time() > deadline:
                raise NotConverged(pending)
            await asyncio.sleep(_POLL)

    def unhappy_conditions(self) -> list[str]:
        """Grid conditions that are not True: what the controller says went wrong."""
        lines = []
        for plural in ("deploymentgrids", "statefulsetgrids", "servicegrids"):
            for grid in self.cluster.list(plural):
                for condition in (grid.get("status") or {}).get("conditions") or ():
                    if condition.get("status") == "True":
                        continue
                    lines.append(
                        f"    {grid['kind']} {grid['metadata']['name']}: "
                        f"{condition.get('type')}={condition.get('status')} "
                        f"({condition.get('reason')}) {condition.get('message') or ''}".rstrip()
                    )
        return ["  the grids' conditions say:", *lines] if lines else []

    # ---- checks ------------------------------------------------------------------------

    def deployment_pending(self, name: str, replicas: int, image: str | None = None) -> Pending:
        obj = self.cluster.get("deployments", name)
        if obj is None:
            return f"Deployment {name} to be created"
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if spec.get("replicas") != replicas:
            return f"Deployment {name} to ask for {replicas} replicas (has {spec.get('replicas')})"
        if image is not None:
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
            images = [c.get("image") for c in containers]
            if images != [image]:
                return f"Deployment {name} to run {image} (runs {', '.join(map(str, images))})"
        generation = (obj.get("metadata") or {}).get("generation")
        counts = [status.get(k) or 0 for k in ("replicas", "updatedReplicas", "readyReplicas")]
        if status.get("observedGeneration") != generation or counts != [replicas] * 3:
            return (
                f"Deployment {name} {replicas}/{replicas} ready and up to date "
                f"(ready {counts[2]}, up to date {counts[1]}, total {counts[0]})"
            )
        return None

    def statefulset_pending(self, name: str, replicas: int) -> Pending:
        obj = self.cluster.get("statefulsets", name)
        if obj is None:
            return f"StatefulSet {name} to be created"
        status = obj.get("status") or {}
        generation = (obj.get("metadata") or {}).get("generation")
        ready = status.get("readyReplicas") or 0
        if (
            status.get("observedGeneration") != generation
            or ready != replicas
            or (status.get("replicas") or 0) != replicas
        ):
            return f"StatefulSet {name} {replicas}/{replicas} ready (ready {ready})"
        return None

    def grid_pending(self, plural: str, name: str, units: int) -> Pending:
        obj = self.cluster.get(plural, name)
        if obj is None:
            return f"{plural} {name} to exist"
        status = obj.get("status") or {}
        generation = (obj.get("metadata") or {}).get("generation")
        got = (status.get("units"), status.get("readyUnits"))
        if status.get("observedGeneration") != generation or got != (units, units):
            return (
                f"{plural} {name} status: {units} units, {units} ready "
                f"(has {got[0]} units, {got[1]} ready)"
            )
        return None

    def pods_on_unit_pending(self, deployment: str, unit: Unit) -> Pending:
        prefix = f"{deployment}-"
        for pod in self.cluster.list("pods", selector=ECHO):
            name = pod["metadata"]["name"]
            node = (pod.get("spec") or {}).get("nodeName")
            if name.startswith(prefix) and node and node not in unit.nodes:
                return f"pod {name} (on {node}) to run in {unit.name}"
        return None

    def unit_pod_ips(self, unit: Unit, selector: str = ECHO) -> set[str]:
        """IPs of the ready pods matching `selector` on the unit's nodes."""
        ips = set()
        for pod in self.cluster.list("pods", selector=selector):
            ip = (pod.get("status") or {}).get("podIP")
            if ip and (pod.get("spec") or {}).get("nodeName") in unit.nodes and _ready(pod):
                ips.add(str(ip))
        return ips

    async def served_endpoints(self, base_url: str) -> list[str]:
        """Ready endpoints (IP:port) of SVC in the EndpointSlices `base_url` serves."""
        params = {"labelSelector": f"kubernetes.io/service-name={SVC}"}
        async with self.http.get(base_url + SLICES_PATH, params=params) as response:
            if response.status != 200:
                text = await response.text()
                raise RuntimeError(f"{base_url}: HTTP {response.status}: {text[:200]}")
            body = await response.json()
        out: set[str] = set()
        for item in body.get("items") or ():
            ports = [p.get("port") for p in item.get("ports") or () if p.get("port")]
            for endpoint in item.get("endpoints") or ():
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                for address in endpoint.get("addresses") or ():
                    out.update(f"{address}:{port}" for port in ports or ["?"])
        return sorted(out, key=_ip_key)

    async def views_pending(self) -> Pending:
        every: set[str] = set()
        for unit in self.cluster.units:
            wrapper = self.cluster.wrappers[unit.name]
            want = self.unit_pod_ips(unit)
            every |= want
            got = {e.rsplit(":", 1)[0] for e in await self.served_endpoints(wrapper.url)}
            if not want or got != want:
                return (
                    f"{unit.name}'s wrapper to serve the {len(want) or 'running'} pod IPs of "
                    f"{unit.name} ({', '.join(sorted(want, key=_ip_key)) or 'none yet'}); "
                    f"it serves {', '.join(sorted(got, key=_ip_key)) or 'none'}"
                )
        got_all = {e.rsplit(":", 1)[0] for e in await self.served_endpoints(self.cluster.sim.url)}
        if got_all != every:
            return f"the API server's EndpointSlices of {SVC} to list all {len(every)} pod IPs"
        return None

    def hosts_records(self, unit: Unit) -> dict[str, str]:
        """name -> IP of the unit's DNS helper's hosts file (comments and others skipped)."""
        path = self.cluster.dns[unit.name].path
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        records: dict[str, str] = {}
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            for name in fields[1:]:
                records[name] = fields[0]
        return records

    def expected_records(self, unit: Unit, replicas: int) -> dict[str, str] | str:
        """What the unit's hosts file must say, or what is missing to know it."""
        expected: dict[str, str] = {}
        for ordinal in range(replicas):
            pod_name = f"{SSG}-{unit.name}-{ordinal}"
            pod = self.cluster.get("pods", pod_name)
            ip = (pod or {}).get("status", {}).get("podIP")
            if pod is None or not ip or not _ready(pod):
                return f"pod {pod_name} to be ready"
            expected[fqdn(ordinal)] = str(ip)
        return expected

    def hosts_pending(self, replicas: int) -> Pending:
        for unit in self.cluster.units:
            expected = self.expected_records(unit, replicas)
            if isinstance(expected, str):
                return expected
            got = {k: v for k, v in self.hosts_records(unit).items() if k.startswith(f"{SSG}-")}
            if got != expected:
                node = self.cluster.dns[unit.name].node
                right = sum(1 for k, v in expected.items() if got.get(k) == v)
                return f"{node}'s hosts file to name {unit.name}'s pods ({right}/{replicas} right)"
        return None

    # ---- shared output -----------------------------------------------------------------

    async def show_views(self) -> None:
        service = self.cluster.get("services", SVC) or {}
        spec = service.get("spec") or {}
        ports = ", ".join(str(p.get("port")) for p in spec.get("ports") or ())
        self.say(
            "",
            f"A request to {SVC} (ClusterIP {spec.get('clusterIP')}, port {ports}) from a node "
            "of each NodeUnit",
            "reaches the endpoints that unit's wrapper serves to kube-proxy:",
        )
        rows = [["NODEUNIT", "WRAPPER (NODE)", "ENDPOINTS SERVED"]]
        for unit in self.cluster.units:
            wrapper: RunningWrapper = self.cluster.wrappers[unit.name]
            served = await self.served_endpoints(wrapper.url)
            rows.append(
                [
                    unit.name,
                    f"{wrapper.url.removeprefix('http://')} ({wrapper.node})",
                    ", ".join(served),
                ]
            )
        every = await self.served_endpoints(self.cluster.sim.url)
        rows.append(["(all)", "the API server, unfiltered", ", ".join(every)])
        self.say("", *columns(rows))

    # ---- steps -------------------------------------------------------------------------

    async def step_cluster(self) -> None:
        def nodes_ready() -> Pending:
            for node in self.cluster.api.list("nodes"):
                if not _ready(node):
                    return f"node {node['metadata']['name']} to be Ready"
            return None

        def components_ready() -> Pending:
            if not self.cluster.controller_ready():
                return "the controller's caches to sync"
            for dns in self.cluster.dns.values():
                if not dns.daemon.ready:
                    return f"the DNS helper of {dns.node} to be ready"
            return None

        await self.converge(nodes_ready, components_ready)
        await self.kubectl_get(GetCommand("nodes", label_columns=(UNIT_KEY,)))

    async def step_deploymentgrid(self) -> None:
        self.kubectl_apply(
            "deploymentgrid-demo.yaml",
            manifests.load("deploymentgrid-demo.yaml"),
            "deploymentgrids",
        )
        units = self.cluster.units
        await self.converge(
            *[lambda u=u: self.deployment_pending(f"{DG}-{u.name}", 2) for u in units],
            lambda: self.grid_pending("deploymentgrids", DG, len(units)),
            *[lambda u=u: self.pods_on_unit_pending(f"{DG}-{u.name}", u) for u in units],
        )
        await self.kubectl_get(GetCommand("dg"))
        await self.kubectl_get(GetCommand("deploy", wide=True))
        await self.kubectl_get(GetCommand("pods", wide=True))

    async def step_servicegrid(self) -> None:
        self.kubectl_apply(
            "servicegrid-demo.yaml", manifests.load("servicegrid-demo.yaml"), "servicegrids"
        )

        def service_pending() -> Pending:
            service = self.cluster.get("services", SVC)
            if service is None:
                return f"Service {SVC} to be created"
            annotations = (service.get("metadata") or {}).get("annotations") or {}
            if annotations.get("topologyKeys") != '["zone"]':
                return f"Service {SVC} to carry topologyKeys: '[\"zone\"]'"
            return None

        def grid_ready() -> Pending:
            grid = self.cluster.get("servicegrids", SG) or {}
            for condition in (grid.get("status") or {}).get("conditions") or ():
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    return None
            return f"ServiceGrid {SG} to be Ready"

        await self.converge(service_pending, grid_ready)
        await self.kubectl_get(GetCommand("sg"))
        await self.kubectl_get(GetCommand("svc", wide=True))
        service = self.cluster.get("services", SVC) or {}
        annotations = (service.get("metadata") or {}).get("annotations") or {}
        self.say("", f"{SVC} annotations: topologyKeys: '{annotations.get('topologyKeys')}'")

    async def step_traffic(self) -> None:
        await self.converge(self.views_pending)
        await self.show_views()

    async def step_new_unit(self) -> None:
        unit = self.new_unit
        self.say(
            "",
            f"$ # {len(unit.nodes)} nodes join: {', '.join(unit.nodes)}, labelled "
            f"{UNIT_KEY}={unit.name}",
        )
        await self.cluster.add_unit(unit)
        units = len(self.cluster.units)
        await self.converge(
            lambda: self.deployment_pending(f"{DG}-{unit.name}", 2),
            lambda: self.grid_pending("deploymentgrids", DG, units),
            lambda: self.pods_on_unit_pending(f"{DG}-{unit.name}", unit),
            self.views_pending,
        )
        await self.kubectl_get(
            GetCommand("nodes", selector=f"{UNIT_KEY}={unit.name}", label_columns=(UNIT_KEY,))
        )
        await self.kubectl_get(GetCommand("dg"))
        await self.kubectl_get(GetCommand("deploy"))
        await self.show_views()

    async def step_statefulsetgrid(self) -> None:
        self.kubectl_apply(
            "statefulsetgrid-demo.yaml",
            manifests.load("statefulsetgrid-demo.yaml"),
            "statefulsetgrids",
        )
        units = self.cluster.units
        await self.converge(
            *[lambda u=u: self.statefulset_pending(f"{SSG}-{u.name}", 3) for u in units],
            lambda: self.grid_pending("statefulsetgrids", SSG, len(units)),
            lambda: self.hosts_pending(3),
        )
        await self.kubectl_get(GetCommand("ssg"))
        await self.kubectl_get(GetCommand("sts", wide=True))
        await self.kubectl_get(GetCommand("pods", wide=True, selector=STS_POD_LABEL))
        self.say("", "Each NodeUnit's hosts file as its DNS helper wrote it (<- the pod named):")
        pods = {
            str((p.get("status") or {}).get("podIP")): p["metadata"]["name"]
            for p in self.cluster.list("pods", selector=STS_POD_LABEL)
        }
        for unit in units:
            dns = self.cluster.dns[unit.name]
            self.say("", f"{unit.name}: {dns.path} (node {dns.node})")
            lines = [
                line
                for line in dns.path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
            rows = [[f"  {line}", f"<- {pods.get(line.split()[0], '?')}"] for line in lines]
            self.say(*columns(rows))

    def canary_plan(self) -> list[tuple[Unit, str, bool, int, str]]:
        """(unit, template name, from defaultTemplateName?, replicas, image) per unit."""
        spec = self.canary["spec"]
        default = spec.get("defaultTemplateName") or "default"
        plan = []
        for unit in self.cluster.units:
            assigned = spec.get("templates", {}).get(unit.name)
            name = assigned or default
            template = spec["template"] if name == "default" else spec["templatePool"][name]
            image = template["template"]["spec"]["containers"][0]["image"]
            plan.append((unit, name, assigned is None, int(template["replicas"]), image))
        return plan

    async def step_canary(self) -> None:
        self.say("", "Fixes to the published example:")
        for fix in manifests.canary_fixes(CANARY_RENAMES):
            self.say(*_wrap(f"- {fix}", indent="  ", hanging="    "))
        self.kubectl_apply("deploymentgrid-canary.yaml", self.canary, "deploymentgrids")
        plan = self.canary_plan()
        await self.converge(
            *[
                lambda u=u, r=r, i=i: self.deployment_pending(f"{DG}-{u.name}", r, i)
                for u, _, _, r, i in plan
            ],
            lambda: self.grid_pending("deploymentgrids", DG, len(plan)),
        )
        rows = [["NODEUNIT", "TEMPLATE", "DEPLOYMENT", "READY", "IMAGE"]]
        for unit, name, by_default, replicas, _ in plan:
            deployment = self.cluster.get("deployments", f"{DG}-{unit.name}") or {}
            ready = (deployment.get("status") or {}).get("readyReplicas") or 0
            containers = deployment["spec"]["template"]["spec"]["containers"]
            rows.append(
                [
                    unit.name,
                    f"{name} (defaultTemplateName)" if by_default else f"{name} (templates)",
                    f"{DG}-{unit.name}",
                    f"{ready}/{replicas}",
                    ",".join(c["image"] for c in containers),
                ]
            )
        self.say("", "The template each NodeUnit got:", *columns(rows))
        await self.kubectl_get(GetCommand("dg"))
        await self.kubectl_get(GetCommand("deploy", wide=True))

    # ---- summary -----------------------------------------------------------------------

    def inventory(self) -> str:
        def count(resource: str) -> int:
            return len(self.cluster.list(resource))

        grids = sum(count(p) for p in ("deploymentgrids", "statefulsetgrids", "servicegrids"))
        services = len(self.cluster.list("services", selector="superedge.io/grid-selector"))
        pods = sum(1 for pod in self.cluster.list("pods") if _ready(pod))
        return (
            f"{grids} grids, {len(self.cluster.units)} NodeUnits, "
            f"{count('deployments')} Deployments, {count('statefulsets')} StatefulSets, "
            f"{services} Service, {pods} ready pods"
        )
