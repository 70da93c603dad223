"""`servicegroup dns` end to end: kubesim with workloads, the real grid controller, one daemon
per node writing a real hosts file, names resolved as CoreDNS's hosts plugin would (SPEC A6)."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
from dns_support import Cluster, Daemon, eventually, fqdn, upstream

SSG = "statefulsetgrid-demo"
SVC = "servicegrid-demo-svc"
SSGS = "statefulsetgrids.superedge.io"
SGS = "servicegrids.superedge.io"


def names(count: int, grid: str = SSG, service: str = SVC) -> list[str]:
    return [fqdn(grid, i, service) for i in range(count)]


def unit_answers(
    cluster: Cluster, *, unit: str, replicas: int, grid: str = SSG, service: str = SVC
) -> dict[str, tuple[str, ...]] | None:
    """What the names should resolve to on a node of `unit` (None until every pod is Ready)."""
    ips = cluster.unit_ips(f"{grid}-{unit}", replicas)
    if any(ip is None for ip in ips.values()):
        return None
    return {fqdn(grid, i, service): (str(ip),) for i, ip in ips.items()}


def resolves_like_unit(
    cluster: Cluster,
    daemon: Daemon,
    *,
    unit: str,
    replicas: int,
    grid: str = SSG,
    service: str = SVC,
) -> bool:
    want = unit_answers(cluster, unit=unit, replicas=replicas, grid=grid, service=service)
    extra = fqdn(grid, replicas, service)  # the next ordinal must not resolve
    return want is not None and daemon.resolve([*want, extra]) == {**want, extra: ()}


async def readyz(daemon: Daemon) -> tuple[int, str]:
    port = daemon.daemon.probes.health_port
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz?verbose") as response,
    ):
        return response.status, await response.text()


def renamed(doc: dict[str, Any], name: str, **spec_template: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["metadata"]["name"] = name
    out["spec"]["template"].update(spec_template)
    return out


async def test_upstream_example_each_node_resolves_its_own_units_pods(dns_cluster: Cluster) -> None:
    cluster = dns_cluster
    foreign = "127.0.0.1 localhost\n10.1.2.3 other.example.com # kept\n"
    node1_hosts = cluster.workdir / "node-1" / "hosts"
    node1_hosts.parent.mkdir(parents=True)
    node1_hosts.write_text(foreign)
    cluster.api.create(SGS, upstream("servicegrid-demo.yaml"))
    cluster.api.create(SSGS, upstream("statefulsetgrid-demo.yaml"))

    async with (
        cluster.daemon("node-1") as d1,
        cluster.daemon("node-2") as d2,
        cluster.daemon("node-3") as d3,
    ):
        per_unit = {"zone-1": d1, "zone-2": d2, "zone-3": d3}

        def all_resolve(replicas: int) -> bool:
            return all(
                resolves_like_unit(cluster, d, unit=unit, replicas=replicas)
                for unit, d in per_unit.items()
            )

        await eventually(lambda: all_resolve(3), what="every node resolves its own unit")
        await eventually(d1.idle)
        answers = [d.resolve(names(3)) for d in per_unit.values()]
        assert len({ip for a in answers for ips in a.values() for ip in ips}) == 9  # 3 units x 3
        text = node1_hosts.read_text()
        assert text.startswith(foreign)
        assert d1.resolve(["localhost"]) == {"localhost": ()}  # outside cluster.local: not ours
        status, body = await readyz(d1)
        assert status == 200, body
        assert d1.metric("servicegroup_dns_records") == 3

        # Scaling the grid to 4 adds the fourth name on every node.
        cluster.api.patch(SSGS, SSG, {"spec": {"template": {"replicas": 4}}}, namespace="default")
        await eventually(lambda: all_resolve(4), what="the fourth name everywhere")

        # Someone else appends a line while we run; it survives our next write.
        with node1_hosts.open("a") as handle:
            handle.write("10.9.9.9 late.example.com\n")

        # A pod recreated with a new IP: its node's line follows, the others do not move.
        pod = f"{SSG}-zone-1-1"
        old_ip = cluster.pod_ip(pod)
        before_2 = d2.resolve(names(4))
        cluster.api.delete("pods", pod, namespace="default")
        await eventually(
            lambda: (
                (ip := cluster.pod_ip(pod)) is not None
                and ip != old_ip
                and d1.resolve(names(4))[fqdn(SSG, 1, SVC)] == (ip,)
            ),
            what="the restarted pod's new IP",
        )
        assert resolves_like_unit(cluster, d1, unit="zone-1", replicas=4)
        assert d2.resolve(names(4)) == before_2
        text = node1_hosts.read_text()
        assert text.startswith(foreign)
        assert "10.9.9.9 late.example.com\n" in text
        assert text.count("# BEGIN servicegroup") == 1


async def test_moving_a_node_to_another_unit_switches_all_its_lines_at_once(
    dns_cluster: Cluster,
) -> None:
    cluster = dns_cluster
    cluster.api.create(SGS, upstream("servicegrid-demo.yaml"))
    cluster.api.create(SSGS, upstream("statefulsetgrid-demo.yaml"))
    async with cluster.daemon("node-4") as d4:
        # Wait for zone-1 to be fully up too, so the switch has nothing else to wait for.
        await eventually(lambda: unit_answers(cluster, unit="zone-1", replicas=3))
        await eventually(
            lambda: resolves_like_unit(cluster, d4, unit="zone-3", replicas=3) and d4.idle()
        )
        writes = d4.metric("servicegroup_dns_writes_total")
        cluster.api.patch("nodes", "node-4", {"metadata": {"labels": {"zone": "zone-1"}}})
        await eventually(
            lambda: resolves_like_unit(cluster, d4, unit="zone-1", replicas=3) and d4.idle(),
            what="node-4 resolving zone-1's pods",
        )
        # One write replaced every line: the file never went through an empty block.
        assert d4.metric("servicegroup_dns_writes_total") == writes + 1
        # A node leaving every unit publishes nothing.
        cluster.api.patch("nodes", "node-4", {"metadata": {"labels": {"zone": None}}})
        await eventually(lambda: d4.resolve(names(3)) == dict.fromkeys(names(3), ()) and d4.idle())
        assert d4.metric("servicegroup_dns_records") == 0


async def test_grid_names_containing_the_unit_value(dns_cluster: Cluster) -> None:
    # Upstream located the unit in pod names with a substring search: for grid "zone-1-db"
    # in unit "zone-1" it published "db-zone-1-0..." instead of "zone-1-db-0...".
    cluster = dns_cluster
    cluster.api.create(SGS, renamed(upstream("servicegrid-demo.yaml"), "zone-1-net"))
    cluster.api.create(
        SSGS,
        renamed(
            upstream("statefulsetgrid-demo.yaml"),
            "zone-1-db",
            serviceName="zone-1-net-svc",
            replicas=2,
        ),
    )
    grid = {"grid": "zone-1-db", "service": "zone-1-net-svc", "replicas": 2}
    async with cluster.daemon("node-1") as d1, cluster.daemon("node-2") as d2:
        await eventually(lambda: resolves_like_unit(cluster, d1, unit="zone-1", **grid))
        await eventually(lambda: resolves_like_unit(cluster, d2, unit="zone-2", **grid))
        for daemon in (d1, d2):
            assert all(
                line.startswith(("#", "10.")) and " zone-1-db-" in line
                for line in daemon.path.read_text().splitlines()
                if not line.startswith("#")
            )


async def test_only_ready_pods_unless_publish_not_ready(dns_cluster: Cluster) -> None:
    cluster = dns_cluster
    cluster.api.create(SGS, upstream("servicegrid-demo.yaml"))
    cluster.api.create(SSGS, upstream("statefulsetgrid-demo.yaml"))
    ready_only = cluster.daemon("node-2")
    everything = cluster.daemon(
        "node-2", path=cluster.workdir / "node-2-all" / "hosts", publish_not_ready=True
    )
    (cluster.workdir / "node-2-all").mkdir()
    async with ready_only as strict, everything as lenient:
        await eventually(lambda: resolves_like_unit(cluster, strict, unit="zone-2", replicas=3))
        await eventually(lambda: resolves_like_unit(cluster, lenient, unit="zone-2", replicas=3))
        published = lenient.resolve(names(3))
        # The kubelet of node-2 stops reporting: the node controller marks its pods not Ready.
        cluster.workloads.nodes.set_node_ready("node-2", None)
        await eventually(
            lambda: strict.resolve(names(3)) == dict.fromkeys(names(3), ()),
            what="not-ready pods unpublished",
        )
        assert lenient.resolve(names(3)) == published


async def test_unwritable_path_reports_not_ready_and_recovers(dns_cluster: Cluster) -> None:
    cluster = dns_cluster
    cluster.api.create(SGS, upstream("servicegrid-demo.yaml"))
    cluster.api.create(SSGS, upstream("statefulsetgrid-demo.yaml"))
    directory = cluster.workdir / "later"
    async with cluster.daemon("node-3", path=directory / "hosts") as d3:
        view = d3.daemon.view
        await eventually(
            lambda: (
                d3.metric("servicegroup_dns_errors_total", reason="missing_directory") >= 1
                and view.pods.selector is not None  # the local StatefulSet exists: caches stable
                and view.settled()
            )
        )
        status, body = await readyz(d3)
        assert status == 500
        assert "[-]hosts-file failed" in body
        assert "[+]informers-synced ok" in body
        directory.mkdir()
        await eventually(
            lambda: resolves_like_unit(cluster, d3, unit="zone-3", replicas=3) and d3.idle()
        )
        status, body = await readyz(d3)
        assert status == 200, body


async def test_wrong_node_name_is_not_ready(dns_cluster: Cluster) -> None:
    async with dns_cluster.daemon("no-such-node") as daemon:
        await eventually(lambda: daemon.path.exists(), what="an (empty) block written")
        status, body = await readyz(daemon)
        assert status == 500
        assert "[-]node failed" in body
        assert daemon.metric("servicegroup_dns_records") == 0
