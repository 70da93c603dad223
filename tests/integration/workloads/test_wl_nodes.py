"""Simulated nodes: what they look like and what adding, relabelling, cordoning, readiness
changes and deletion do to them and to their pods."""

from __future__ import annotations

import ipaddress

from wl_support import SimEnv, condition, deployment, pod_ready, service

from servicegroup.kubesim.workloads import Taint
from servicegroup.kubesim.workloads.index import NODES

Obj = dict


def _node(env: SimEnv, name: str) -> Obj:
    found = env.sim.engine.store.get(NODES, "", name)
    assert found is not None
    return found


def _taint_keys(node: Obj) -> list[str]:
    return [t["key"] for t in node["spec"].get("taints") or ()]


async def test_added_nodes_look_like_kubelet_registered_ones(env: SimEnv) -> None:
    nodes = [_node(env, f"node-{i}") for i in range(4)]
    cidrs = [n["spec"]["podCIDR"] for n in nodes]
    assert len(set(cidrs)) == 4
    for node in nodes:
        name = node["metadata"]["name"]
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
        assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]
        assert ipaddress.ip_network(node["spec"]["podCIDR"]).prefixlen == 24
        assert ipaddress.ip_network(node["spec"]["podCIDR"]).subnet_of(
            ipaddress.ip_network("10.244.0.0/14")
        )
        ready = condition(node, "Ready")
        assert ready is not None
        assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
        status = node["status"]
        assert status["capacity"]["pods"] == "110"
        assert status["allocatable"] == status["capacity"]
        assert {a["type"] for a in status["addresses"]} == {"InternalIP", "Hostname"}
        managers = {e["manager"] for e in node["metadata"].get("managedFields") or ()}
        assert "kubelet" in managers
    assert cidrs[0] == "10.244.0.0/24"


async def test_node_api_accepts_the_sim_flag_syntax(env: SimEnv) -> None:
    created = env.workloads.nodes.add_node("edge-9:site=b,tier=edge")
    assert created["metadata"]["labels"]["site"] == "b"
    assert created["metadata"]["labels"]["tier"] == "edge"
    assert created["metadata"]["labels"]["kubernetes.io/hostname"] == "edge-9"


async def test_relabel_sets_removes_and_replaces_labels(env: SimEnv) -> None:
    api = env.workloads.nodes
    api.relabel_node("node-0", {"site": "a", "tier": "edge"})
    assert _node(env, "node-0")["metadata"]["labels"]["site"] == "a"
    api.relabel_node("node-0", {"site": None})
    assert "site" not in _node(env, "node-0")["metadata"]["labels"]
    api.relabel_node("node-0", {"only": "this"}, replace=True)
    labels = _node(env, "node-0")["metadata"]["labels"]
    assert labels["only"] == "this"
    assert "tier" not in labels
    assert "topology.kubernetes.io/zone" not in labels
    assert labels["kubernetes.io/hostname"] == "node-0"


async def test_cordoned_nodes_get_the_unschedulable_taint_and_no_new_pods(env: SimEnv) -> None:
    for name in ("node-1", "node-2", "node-3"):
        env.workloads.nodes.cordon_node(name)
    await env.eventually(
        lambda: all(
            "node.kubernetes.io/unschedulable" in _taint_keys(_node(env, n))
            for n in ("node-1", "node-2", "node-3")
        )
    )
    env.create("deployments.apps", deployment("web", replicas=4))
    await env.eventually(lambda: len([p for p in env.pods("app=web") if pod_ready(p)]) == 4)
    assert {p["spec"]["nodeName"] for p in env.pods("app=web")} == {"node-0"}

    env.workloads.nodes.cordon_node("node-1", cordoned=False)
    await env.eventually(lambda: not _taint_keys(_node(env, "node-1")))
    assert _node(env, "node-1")["spec"].get("unschedulable") is None


async def test_user_taints_repel_pods_without_tolerations(env: SimEnv) -> None:
    for name in ("node-0", "node-1", "node-2"):
        env.workloads.nodes.taint_node(name, [Taint("dedicated", "db")])
    env.create("deployments.apps", deployment("web", replicas=2))
    await env.eventually(lambda: len([p for p in env.pods("app=web") if pod_ready(p)]) == 2)
    assert {p["spec"]["nodeName"] for p in env.pods("app=web")} == {"node-3"}


async def test_a_not_ready_node_gets_tainted_and_its_pods_lose_readiness(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=4))
    env.create("services", service("web", selector={"app": "web"}))
    await env.eventually(lambda: len([p for p in env.pods("app=web") if pod_ready(p)]) == 4)
    victim = env.pods("app=web")[0]["spec"]["nodeName"]
    on_victim = {
        p["metadata"]["name"] for p in env.pods("app=web") if p["spec"]["nodeName"] == victim
    }

    env.workloads.nodes.set_node_ready(victim, False)

    await env.eventually(lambda: "node.kubernetes.io/not-ready" in _taint_keys(_node(env, victim)))
    await env.eventually(
        lambda: all(
            not pod_ready(p) for p in env.pods("app=web") if p["metadata"]["name"] in on_victim
        )
    )
    others = [p for p in env.pods("app=web") if p["metadata"]["name"] not in on_victim]
    assert all(pod_ready(p) for p in others)
    pod = next(p for p in env.pods("app=web") if p["metadata"]["name"] in on_victim)
    managers = {(e["manager"], e.get("subresource")) for e in pod["metadata"]["managedFields"]}
    assert ("kube-controller-manager", "status") in managers

    def slice_ready_by_pod() -> dict[str, bool]:
        slices = env.client.list(
            "endpointslices.discovery.k8s.io",
            namespace="default",
            label_selector="kubernetes.io/service-name=web",
        )
        return {
            e["targetRef"]["name"]: e["conditions"]["ready"]
            for s in slices
            for e in s.get("endpoints") or ()
        }

    await env.eventually(
        lambda: {n for n, ready in slice_ready_by_pod().items() if not ready} == on_victim
    )

    env.workloads.nodes.set_node_ready(victim, True)
    await env.eventually(lambda: all(pod_ready(p) for p in env.pods("app=web")))
    await env.eventually(lambda: not _taint_keys(_node(env, victim)))
    assert {p["metadata"]["name"] for p in env.pods("app=web")} >= on_victim


async def test_unknown_readiness_means_the_unreachable_taint(env: SimEnv) -> None:
    node = env.workloads.nodes.set_node_ready("node-2", None)
    assert condition(node, "Ready")["status"] == "Unknown"  # type: ignore[index]
    await env.eventually(
        lambda: "node.kubernetes.io/unreachable" in _taint_keys(_node(env, "node-2"))
    )


async def test_deleting_a_node_moves_its_pods_elsewhere(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=4))
    await env.eventually(lambda: len([p for p in env.pods("app=web") if pod_ready(p)]) == 4)
    victim = "node-0"
    before = {p["metadata"]["uid"] for p in env.pods("app=web")}
    lost = {p["metadata"]["uid"] for p in env.pods("app=web") if p["spec"]["nodeName"] == victim}
    assert lost

    env.workloads.nodes.delete_node(victim)

    def moved() -> bool:
        pods = env.pods("app=web")
        return (
            len(pods) == 4
            and all(pod_ready(p) for p in pods)
            and all(p["spec"]["nodeName"] != victim for p in pods)
        )

    await env.eventually(moved)
    after = {p["metadata"]["uid"] for p in env.pods("app=web")}
    assert not lost & after
    assert before - lost <= after


async def test_nodes_created_through_the_api_without_a_cidr_get_one(env: SimEnv) -> None:
    env.client.create(
        "nodes",
        {
            "metadata": {"name": "bare"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    await env.eventually(lambda: (_node(env, "bare").get("spec") or {}).get("podCIDR"))
    cidrs = {
        _node(env, n)["spec"]["podCIDR"] for n in ("node-0", "node-1", "node-2", "node-3", "bare")
    }
    assert len(cidrs) == 5
