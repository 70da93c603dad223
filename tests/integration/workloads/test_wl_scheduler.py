"""The simulated kube-scheduler: filters, spreading, Unschedulable reporting, retries."""

from __future__ import annotations

from collections import Counter

import pytest
from wl_support import SimEnv, condition, deployment, pod_ready

from servicegroup.kubesim.workloads import NodeSpec, WorkloadOptions


def _pod(name: str, **spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "pause"}], **spec},
    }


async def test_replicas_spread_evenly_over_eligible_nodes(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=8))
    await env.eventually(lambda: len([p for p in env.pods("app=web") if pod_ready(p)]) == 8)
    per_node = Counter(p["spec"]["nodeName"] for p in env.pods("app=web"))
    assert sorted(per_node.values()) == [2, 2, 2, 2]


async def test_bound_pods_carry_the_scheduled_condition(env: SimEnv) -> None:
    env.create("pods", _pod("solo"))
    await env.eventually(lambda: (env.get("pods", "solo") or {}).get("spec", {}).get("nodeName"))
    pod = env.get("pods", "solo")
    assert pod is not None
    scheduled = condition(pod, "PodScheduled")
    assert scheduled is not None
    assert scheduled["status"] == "True"
    assert "reason" not in scheduled


async def test_an_unschedulable_pod_reports_why_and_waits(env: SimEnv) -> None:
    env.workloads.nodes.cordon_node("node-0")
    env.create("pods", _pod("picky", nodeSelector={"disk": "ssd"}))

    def reported() -> dict[str, object] | None:
        pod = env.get("pods", "picky")
        cond = condition(pod, "PodScheduled") if pod else None
        return cond if cond is not None and cond.get("reason") == "Unschedulable" else None

    cond = await env.eventually(reported)
    assert cond["status"] == "False"
    assert cond["message"] == (
        "0/4 nodes are available: 3 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) were unschedulable. preemption: 0/4 nodes are available: "
        "4 Preemption is not helpful for scheduling."
    )
    pod = env.get("pods", "picky")
    assert pod is not None
    managers = {(e["manager"], e.get("subresource")) for e in pod["metadata"]["managedFields"]}
    assert ("kube-scheduler", "status") in managers
    writes = env.workloads.controller("scheduler").writer.writes

    # Unrelated node changes retry the pod but do not rewrite an unchanged condition.
    env.workloads.nodes.relabel_node("node-1", {"unrelated": "x"})
    await env.workloads.settle()
    assert env.workloads.controller("scheduler").writer.writes == writes

    env.workloads.nodes.relabel_node("node-2", {"disk": "ssd"})
    await env.eventually(lambda: pod_ready(env.get("pods", "picky") or {}))
    assert env.get("pods", "picky")["spec"]["nodeName"] == "node-2"  # type: ignore[index]


async def test_tolerations_let_pods_onto_tainted_nodes(env: SimEnv) -> None:
    for name in ("node-0", "node-1", "node-2", "node-3"):
        env.workloads.nodes.taint_node(name, [("dedicated", "edge", "NoSchedule")])
    env.create("pods", _pod("plain"))
    env.create(
        "pods",
        _pod(
            "tolerant",
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}
            ],
        ),
    )
    await env.eventually(lambda: pod_ready(env.get("pods", "tolerant") or {}))
    plain = await env.eventually(
        lambda: (
            (c := condition(env.get("pods", "plain") or {}, "PodScheduled"))
            and c.get("reason") == "Unschedulable"
            and c
        )
    )
    assert "4 node(s) had untolerated taint {dedicated: edge}" in plain["message"]


async def test_required_node_affinity_is_honoured(env: SimEnv) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "topology.kubernetes.io/zone",
                                "operator": "NotIn",
                                "values": ["zone-a"],
                            }
                        ]
                    }
                ]
            }
        }
    }
    d = deployment("web", replicas=4)
    d["spec"]["template"]["spec"]["affinity"] = affinity
    env.create("deployments.apps", d)
    await env.eventually(lambda: len([p for p in env.pods("app=web") if pod_ready(p)]) == 4)
    assert {p["spec"]["nodeName"] for p in env.pods("app=web")} == {"node-2", "node-3"}


@pytest.mark.parametrize("wl_nodes", [[]])
async def test_a_full_node_takes_no_more_pods(env: SimEnv) -> None:
    env.workloads.nodes.add_node(
        NodeSpec("tiny", {}), capacity={"cpu": "1", "memory": "1Gi", "pods": "2"}
    )
    for name in ("a", "b", "c"):
        env.create("pods", _pod(name))
    await env.eventually(
        lambda: (
            sum(1 for n in "abc" if (env.get("pods", n) or {}).get("spec", {}).get("nodeName")) == 2
        )
    )
    left = next(n for n in "abc" if not env.get("pods", n)["spec"].get("nodeName"))  # type: ignore[index]
    cond = await env.eventually(
        lambda: (
            (c := condition(env.get("pods", left) or {}, "PodScheduled")) and c.get("reason") and c
        )
    )
    assert cond["message"].startswith("0/1 nodes are available: 1 Too many pods.")
    assert cond["message"].endswith("1 No preemption victims found for incoming pod.")

    # A bound pod going away frees the room.
    env.client.delete("pods", "a", namespace="default")
    await env.eventually(
        lambda: (env.get("pods", left) or {}).get("spec", {}).get("nodeName") == "tiny"
    )


@pytest.mark.parametrize("wl_nodes", [[]])
async def test_pods_wait_for_the_first_node(env: SimEnv) -> None:
    env.create("pods", _pod("early"))
    cond = await env.eventually(
        lambda: (
            (c := condition(env.get("pods", "early") or {}, "PodScheduled"))
            and c.get("reason")
            and c
        )
    )
    assert cond["message"] == "no nodes available to schedule pods"
    env.workloads.nodes.add_node("late")
    await env.eventually(lambda: pod_ready(env.get("pods", "early") or {}))


@pytest.mark.parametrize("wl_options", [WorkloadOptions(scheduler=False)])
async def test_with_the_scheduler_off_pods_stay_pending(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=2))
    await env.eventually(lambda: len(env.pods("app=web")) == 2)
    await env.workloads.settle()
    pods = env.pods("app=web")
    assert all(not p["spec"].get("nodeName") for p in pods)
    assert all(p["status"]["phase"] == "Pending" for p in pods)
    assert all(condition(p, "PodScheduled") is None for p in pods)


async def test_adding_a_toleration_to_a_waiting_pod_schedules_it(env: SimEnv) -> None:
    for name in ("node-0", "node-1", "node-2", "node-3"):
        env.workloads.nodes.taint_node(name, [("dedicated", "edge", "NoSchedule")])
    env.create("pods", _pod("late"))
    await env.eventually(
        lambda: (
            (c := condition(env.get("pods", "late") or {}, "PodScheduled"))
            and c.get("reason") == "Unschedulable"
        )
    )
    env.client.patch(
        "pods",
        "late",
        {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}},
        namespace="default",
    )
    await env.eventually(lambda: pod_ready(env.get("pods", "late") or {}))
