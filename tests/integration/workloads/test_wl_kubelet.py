"""The simulated kubelets, on a fake clock: startup delay, statuses, pod IPs, graceful deletion."""

from __future__ import annotations

import ipaddress

import pytest
from wl_support import SimEnv, condition, eventually, pod_ready, service

from servicegroup.clock import FakeClock
from servicegroup.kubesim.workloads import WorkloadOptions
from servicegroup.kubesim.workloads.index import NODES

Obj = dict


@pytest.fixture
def wl_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wl_options() -> WorkloadOptions:
    return WorkloadOptions(pod_start_delay=2.0, termination_grace=None)


def _pod(name: str, **spec: object) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"app": "k"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}
            ],
            **spec,
        },
    }


def _get(env: SimEnv, name: str) -> Obj:
    pod = env.get("pods", name)
    assert pod is not None
    return pod


async def _settled(env: SimEnv) -> None:
    await env.workloads.settle()


async def test_a_bound_pod_starts_after_the_delay(env: SimEnv, wl_clock: FakeClock) -> None:
    env.create("pods", _pod("p"))
    creating = await env.eventually(
        lambda: (pod := _get(env, "p"))["status"].get("containerStatuses") and pod
    )
    status = creating["status"]
    assert status["phase"] == "Pending"
    assert "podIP" not in status
    assert status["hostIP"]
    waiting = status["containerStatuses"][0]
    assert waiting["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert waiting["ready"] is False
    ready = condition(creating, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    assert ready["message"] == "containers with unready status: [main]"

    wl_clock.advance(1.5)
    await _settled(env)
    assert _get(env, "p")["status"]["phase"] == "Pending"

    wl_clock.advance(0.5)
    running = await env.eventually(lambda: pod_ready(pod := _get(env, "p")) and pod)
    status = running["status"]
    assert status["phase"] == "Running"
    node = env.sim.engine.store.get(NODES, "", running["spec"]["nodeName"])
    assert node is not None
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(node["spec"]["podCIDR"])
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == next(
        a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"
    )
    main = status["containerStatuses"][0]
    assert main["ready"] is True
    assert main["started"] is True
    assert "running" in main["state"]
    assert main["containerID"].startswith("containerd://")
    assert main["image"] == "docker.io/library/nginx:1.25"
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert status["qosClass"] == "BestEffort"
    managers = {(e["manager"], e.get("subresource")) for e in running["metadata"]["managedFields"]}
    assert ("kubelet", "status") in managers


async def test_pod_ips_are_unique_per_node(env: SimEnv, wl_clock: FakeClock) -> None:
    for i in range(12):
        env.create("pods", _pod(f"p{i}"))
    await env.eventually(lambda: len(env.pods("app=k")) == 12)
    await _settled(env)
    wl_clock.advance(2)
    await env.eventually(lambda: all(pod_ready(p) for p in env.pods("app=k")))
    addresses = [p["status"]["podIP"] for p in env.pods("app=k")]
    assert len(set(addresses)) == 12


async def test_deleted_pods_go_after_their_grace_period(env: SimEnv, wl_clock: FakeClock) -> None:
    env.create("pods", _pod("p", terminationGracePeriodSeconds=30))
    env.create("services", service("k", selector={"app": "k"}))
    await env.eventually(lambda: _get(env, "p")["status"].get("containerStatuses"))
    wl_clock.advance(2)
    running = await env.eventually(lambda: pod_ready(pod := _get(env, "p")) and pod)
    uid = running["metadata"]["uid"]
    assert env.workloads.ips.address_of(uid) == running["status"]["podIP"]

    env.client.delete("pods", "p", namespace="default")
    terminating = _get(env, "p")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30

    def endpoint() -> Obj | None:
        slices = env.client.list(
            "endpointslices.discovery.k8s.io",
            namespace="default",
            label_selector="kubernetes.io/service-name=k",
        )
        found = [e for s in slices for e in s.get("endpoints") or ()]
        return found[0] if found else None

    ep = await env.eventually(lambda: (e := endpoint()) and e["conditions"]["terminating"] and e)
    assert ep["conditions"] == {"ready": False, "serving": True, "terminating": True}

    wl_clock.advance(29)
    await _settled(env)
    assert env.get("pods", "p") is not None
    wl_clock.advance(1)
    await env.eventually(lambda: env.get("pods", "p") is None)
    assert env.workloads.ips.address_of(uid) is None
    await env.eventually(lambda: endpoint() is None)


async def test_host_network_pods_use_the_node_address(env: SimEnv, wl_clock: FakeClock) -> None:
    env.create("pods", _pod("h", hostNetwork=True))
    await env.eventually(lambda: _get(env, "h")["status"].get("containerStatuses"))
    wl_clock.advance(2)
    pod = await env.eventually(lambda: pod_ready(p := _get(env, "h")) and p)
    assert pod["status"]["podIP"] == pod["status"]["hostIP"]


async def test_a_kubelet_on_a_not_ready_node_starts_nothing(
    env: SimEnv, wl_clock: FakeClock
) -> None:
    env.workloads.nodes.set_node_ready("node-3", False)
    env.create("pods", _pod("pinned", nodeName="node-3"))
    await _settled(env)
    wl_clock.advance(5)
    await _settled(env)
    assert _get(env, "pinned")["status"] == {"phase": "Pending", "qosClass": "BestEffort"}

    env.workloads.nodes.set_node_ready("node-3", True)
    await env.eventually(lambda: _get(env, "pinned")["status"].get("containerStatuses"))
    wl_clock.advance(2)
    await env.eventually(lambda: pod_ready(_get(env, "pinned")))


@pytest.mark.parametrize("wl_options", [WorkloadOptions(pod_start_delay=0, termination_grace=0)])
async def test_zero_delay_means_running_and_ready_in_one_write(env: SimEnv) -> None:
    env.create("pods", _pod("fast"))
    await env.eventually(lambda: pod_ready(_get(env, "fast")))
    assert env.workloads.controller("kubelet").writer.writes == 1
    env.client.delete("pods", "fast", namespace="default")
    await eventually(lambda: env.get("pods", "fast") is None)
