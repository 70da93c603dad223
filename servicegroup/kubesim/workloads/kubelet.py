"""The kubelets of every simulated node: pod startup, readiness, pod IPs and graceful deletion.

Owns: `Kubelet` - one loop for all nodes over bound pod keys. A pod bound to a Ready node
becomes `Running` and `Ready` with an IP from its node's podCIDR once `start_delay`
seconds of clock time have passed since the kubelet first saw it (with a delay, it first
reports `Pending` / `ContainerCreating`; with 0, Running and Ready come in that same pass,
one write). A pod with a deletionTimestamp is removed (DELETE with grace 0 and a uid
precondition, as the kubelet's status manager does) after `min(its grace period,
termination_grace)`; with `termination_grace=0` at once. A Running pod that someone marked
not Ready (the node controller, while its node was NotReady) is reported Ready again once
its node is Ready. Addresses are released when pods are deleted.

Invariants:
- A kubelet on a node that is not Ready does nothing (it is down): its pods are neither
  started, nor reported Ready, nor finished; the node controller marks them not Ready.
- Writes are status-subresource updates as `kubelet`, only when the reported status
  differs from the stored one, carrying the stored resourceVersion (a racing writer makes
  ours a 409 and the key is retried).
- Timers are keyed to the pod uid: a pod recreated under the same name starts over.
- A pod keeps its IP for its whole life; `hostNetwork` pods report the node's address.
"""

from __future__ import annotations

import hashlib
from typing import Any

from servicegroup.kubesim.store import DELETED, StoreEvent
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.index import NODES, PODS, Key, key_of
from servicegroup.kubesim.workloads.podips import PodIPAllocator

Obj = dict[str, Any]

CONDITION_ORDER = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


def node_is_ready(node: Obj | None) -> bool:
    if node is None:
        return False
    cond = objects.condition(node, "Ready")
    return cond is not None and cond.get("status") == "True"


def node_internal_ip(node: Obj) -> str:
    for address in objects.status(node).get("addresses") or ():
        if address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return ""


def node_pod_cidr(node: Obj) -> str:
    spec = objects.spec(node)
    cidrs = spec.get("podCIDRs") or [spec.get("podCIDR")]
    return str(cidrs[0] or "") if cidrs else ""


def image_name(image: str) -> str:
    """The fully qualified reference containerd reports (`docker.io/library/nginx:latest`)."""
    name, tag = image, ""
    last = image.rsplit("/", 1)[-1]
    if "@" not in image and ":" in last:
        name, _, tag = image.rpartition(":")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if "@" in image:
        return name
    return f"{name}:{tag or 'latest'}"


def image_id(image: str) -> str:
    """A digest reference for the image (stable per image string)."""
    qualified = image_name(image)
    repository = qualified.split("@", 1)[0]
    if "@" not in qualified and ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rpartition(":")[0]
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def container_id(uid: str, name: str) -> str:
    return "containerd://" + hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()


def _conditions(current: list[Obj] | None, wanted: dict[str, Obj], *, now: str) -> list[Obj]:
    """The kubelet's condition list: its own types in its order, others kept after them."""
    existing = {c.get("type"): c for c in current or () if isinstance(c, dict)}
    result: list[Obj] = []
    for type_ in CONDITION_ORDER:
        new = wanted.get(type_)
        old = existing.get(type_)
        if new is None:
            if old is not None:
                result.append(old)
            continue
        cond: Obj = {"type": type_, "status": new["status"], "lastProbeTime": None}
        if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = now
        for field in ("reason", "message"):
            if new.get(field):
                cond[field] = new[field]
        result.append(cond)
    result.extend(c for t, c in existing.items() if t not in CONDITION_ORDER)
    return result


def _unready(names: list[str]) -> tuple[str, str]:
    return "ContainersNotReady", f"containers with unready status: [{' '.join(names)}]"


class Kubelet(LoopController[Key]):
    name = "kubelet"
    manager = "kubelet"

    def __init__(
        self,
        *,
        start_delay: float,
        termination_grace: float | None,
        ips: PodIPAllocator,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_delay = start_delay
        self.termination_grace = termination_grace
        self.ips = ips
        self._seen: dict[str, float] = {}  # uid -> clock time the kubelet first saw it bound
        self._deleting: dict[str, float] = {}  # uid -> clock time it saw the deletion

    # ---- intake ------------------------------------------------------------------------

    def on_event(self, event: StoreEvent) -> None:
        if event.key == PODS:
            if event.type == DELETED:
                uid = objects.meta(event.obj).get("uid", "")
                self.ips.release(uid)
                self._seen.pop(uid, None)
                self._deleting.pop(uid, None)
            elif objects.spec(event.obj).get("nodeName"):
                self.queue.add(key_of(event.obj))
        elif event.key == NODES and event.type != DELETED:
            ready = node_is_ready(event.obj)
            old = event.old
            if not ready:
                return
            if (
                old is None
                or not node_is_ready(old)
                or node_pod_cidr(old) != node_pod_cidr(event.obj)
            ):
                for key in self.index.pods_on_node(objects.meta(event.obj)["name"]):
                    self.queue.add(key)

    def resync(self) -> None:
        for pod in self.store.items(PODS):
            node_name = objects.spec(pod).get("nodeName")
            if not node_name:
                continue
            address = objects.status(pod).get("podIP")
            node = self.store.get(NODES, "", node_name)
            if address and node is not None and not objects.spec(pod).get("hostNetwork"):
                cidr = node_pod_cidr(node)
                if cidr:
                    self.ips.reserve(cidr, address, uid=objects.meta(pod).get("uid", ""))
            self.queue.add(key_of(pod))

    # ---- sync --------------------------------------------------------------------------

    def process(self, key: Key) -> None:
        pod = self.store.get(PODS, *key)
        if pod is None:
            return
        node_name = objects.spec(pod).get("nodeName")
        node = self.store.get(NODES, "", node_name) if node_name else None
        if node is None or not node_is_ready(node):
            return
        uid = str(objects.meta(pod).get("uid") or "")
        if objects.is_terminating(pod):
            self._finish(key, pod, uid)
            return
        if objects.is_terminal(pod):
            return
        now_mono = self.clock.monotonic()
        seen = self._seen.setdefault(uid, now_mono)
        status = objects.status(pod)
        running = status.get("phase") == "Running" and bool(status.get("podIP"))
        if running or now_mono - seen >= self.start_delay:
            desired = self._running_status(pod, node, uid)
        else:
            desired = self._creating_status(pod, node)
            self.queue.add_after(key, seen + self.start_delay - now_mono)
        if desired is not None and desired != status:
            self._write(pod, desired)

    def _finish(self, key: Key, pod: Obj, uid: str) -> None:
        meta = objects.meta(pod)
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        if self.termination_grace is not None:
            grace = min(grace, self.termination_grace)
        now_mono = self.clock.monotonic()
        since = self._deleting.setdefault(uid, now_mono)
        remaining = since + grace - now_mono
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return
        self.writer.delete(PODS, key[0], key[1], uid=uid, grace_period_seconds=0)

    def _write(self, pod: Obj, status: Obj) -> None:
        meta = objects.meta(pod)
        self.writer.update_status(
            PODS,
            {
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta.get("namespace"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "status": status,
            },
        )

    # ---- statuses ----------------------------------------------------------------------

    def _base(self, pod: Obj, node: Obj) -> Obj:
        status = dict(objects.status(pod))
        host_ip = node_internal_ip(node)
        if host_ip:
            status["hostIP"] = host_ip
            status["hostIPs"] = [{"ip": host_ip}]
        status.setdefault("startTime", self.now())
        return status

    def _creating_status(self, pod: Obj, node: Obj) -> Obj:
        current = objects.status(pod)
        if current.get("phase") == "Pending" and current.get("containerStatuses"):
            return current  # already reported ContainerCreating
        spec = objects.spec(pod)
        now = self.now()
        status = self._base(pod, node)
        status["phase"] = "Pending"
        names = [c.get("name", "") for c in spec.get("containers") or ()]
        init = spec.get("initContainers") or []
        not_ready = _unready(names)
        wanted: dict[str, Obj] = {
            "PodReadyToStartContainers": {"status": "False"},
            "Initialized": {"status": "True"}
            if not init
            else {
                "status": "False",
                "reason": "ContainersNotInitialized",
                "message": "containers with incomplete status: "
                f"[{' '.join(c.get('name', '') for c in init)}]",
            },
            "Ready": {"status": "False", "reason": not_ready[0], "message": not_ready[1]},
            "ContainersReady": {"status": "False", "reason": not_ready[0], "message": not_ready[1]},
        }
        status["conditions"] = _conditions(current.get("conditions"), wanted, now=now)
        status["containerStatuses"] = [
            {
                "image": image_name(str(c.get("image", ""))),
                "imageID": "",
                "lastState": {},
                "name": c.get("name", ""),
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }
            for c in spec.get("containers") or ()
        ]
        return status

    def _running_status(self, pod: Obj, node: Obj, uid: str) -> Obj | None:
        spec = objects.spec(pod)
        current = objects.status(pod)
        now = self.now()
        status = self._base(pod, node)
        if current.get("phase") == "Running" and current.get("podIP"):
            address = str(current["podIP"])
        elif spec.get("hostNetwork"):
            address = status.get("hostIP", "")
        else:
            cidr = node_pod_cidr(node)
            allocated = self.ips.allocate(cidr, uid=uid) if cidr else None
            if allocated is None:
                return None  # no podCIDR (or a full one) yet: the network is not ready
            address = allocated
        status["phase"] = "Running"
        status["podIP"] = address
        status["podIPs"] = [{"ip": address}]
        wanted: dict[str, Obj] = {
            "PodReadyToStartContainers": {"status": "True"},
            "Initialized": {"status": "True"},
            "Ready": {"status": "True"},
            "ContainersReady": {"status": "True"},
        }
        status["conditions"] = _conditions(current.get("conditions"), wanted, now=now)
        previous = {
            s.get("name"): s for s in current.get("containerStatuses") or () if isinstance(s, dict)
        }
        statuses: list[Obj] = []
        for container in spec.get("containers") or ():
            name = container.get("name", "")
            old = previous.get(name)
            if old is not None and "running" in (old.get("state") or {}):
                statuses.append({**old, "ready": True, "started": True})
                continue
            image = str(container.get("image", ""))
            statuses.append(
                {
                    "containerID": container_id(uid, name),
                    "image": image_name(image),
                    "imageID": image_id(image),
                    "lastState": {},
                    "name": name,
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
            )
        status["containerStatuses"] = statuses
        init = spec.get("initContainers") or []
        if init:
            previous_init = {
                s.get("name"): s
                for s in current.get("initContainerStatuses") or ()
                if isinstance(s, dict)
            }
            status["initContainerStatuses"] = [
                previous_init.get(c.get("name"))
                or {
                    "containerID": container_id(uid, c.get("name", "")),
                    "image": image_name(str(c.get("image", ""))),
                    "imageID": image_id(str(c.get("image", ""))),
                    "lastState": {},
                    "name": c.get("name", ""),
                    "ready": True,
                    "restartCount": 0,
                    "started": False,
                    "state": {
                        "terminated": {
                            "containerID": container_id(uid, c.get("name", "")),
                            "exitCode": 0,
                            "finishedAt": now,
                            "reason": "Completed",
                            "startedAt": now,
                        }
                    },
                }
                for c in init
            ]
        return status
