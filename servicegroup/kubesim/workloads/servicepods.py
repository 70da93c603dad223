"""What the endpoint controllers share: which Services a pod change concerns, and pod facts.

Owns: `ServiceEndpointsController` (the intake both endpoint controllers use: Service events
queue the Service; pod events queue the Services selecting the pod before or after the
change, skipped when nothing endpoint-relevant changed; a Node's zone change queues the
Services of its pods) and the endpoint helpers upstream's endpointslice util provides:
`should_be_in_endpoints`, `find_port`, `should_set_hostname`, `is_headless`.

Invariants:
- A pod event costs O(labels + matching Services), through the Service selector index;
  never a scan of all Services.
- A pod update that changes none of labels, addresses, readiness, deletion, node, phase,
  hostname/subdomain or container ports queues nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servicegroup.kubesim.store import DELETED, StoreEvent
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.controller import LoopController
from servicegroup.kubesim.workloads.index import (
    NODES,
    PODS,
    SERVICES,
    Key,
    key_of,
    service_selector,
)
from servicegroup.kubesim.workloads.nodes import ZONE_LABEL

Obj = dict[str, Any]

HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def endpoint_view(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """The parts of a pod that endpoints depend on."""
    spec = objects.spec(pod)
    status = objects.status(pod)
    ports = tuple(
        (
            c.get("name"),
            tuple(
                (p.get("name"), p.get("containerPort"), p.get("protocol"))
                for p in c.get("ports") or ()
            ),
        )
        for c in spec.get("containers") or ()
    )
    return (
        tuple(sorted(objects.labels(pod).items())),
        status.get("podIP"),
        objects.is_ready(pod),
        bool(objects.meta(pod).get("deletionTimestamp")),
        spec.get("nodeName"),
        objects.is_terminal(pod),
        spec.get("hostname"),
        spec.get("subdomain"),
        ports,
    )


def should_be_in_endpoints(pod: Mapping[str, Any], *, include_terminating: bool) -> bool:
    if not objects.status(pod).get("podIP"):
        return False
    if objects.is_terminal(pod):
        return False
    return include_terminating or not objects.is_terminating(pod)


def should_set_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    spec = objects.spec(pod)
    return (
        bool(spec.get("hostname"))
        and spec.get("subdomain") == objects.meta(service).get("name")
        and objects.meta(service).get("namespace") == objects.meta(pod).get("namespace")
    )


def is_headless(service: Mapping[str, Any]) -> bool:
    cluster_ip = objects.spec(service).get("clusterIP")
    return cluster_ip in (None, "", "None")


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """podutil.FindPort: a named targetPort resolved against the pod's container ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str):
        if target.isdigit():
            return int(target)
        protocol = service_port.get("protocol") or "TCP"
        for container in objects.spec(pod).get("containers") or ():
            for port in container.get("ports") or ():
                if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                    value = port.get("containerPort")
                    return int(value) if value is not None else None
    return None


class ServiceEndpointsController(LoopController[Key]):
    """Intake shared by the EndpointSlice and Endpoints controllers (keys: Services)."""

    def on_event(self, event: StoreEvent) -> None:
        if event.key == SERVICES:
            self.queue.add(key_of(event.obj))
        elif event.key == PODS:
            old, new = event.old, event.obj
            if (
                event.type != DELETED
                and old is not None
                and endpoint_view(old) == endpoint_view(new)
            ):
                return
            namespace = objects.meta(new).get("namespace", "")
            for pod in (old, new):
                if pod is None:
                    continue
                for name in self.index.services_selecting(namespace, objects.labels(pod)):
                    self.queue.add((namespace, name))
        elif event.key == NODES and event.old is not None:
            if objects.labels(event.old).get(ZONE_LABEL) == objects.labels(event.obj).get(
                ZONE_LABEL
            ):
                return
            for namespace, name in self.index.pods_on_node(objects.meta(event.obj)["name"]):
                pod = self.store.get(PODS, namespace, name)
                if pod is not None:
                    for service in self.index.services_selecting(namespace, objects.labels(pod)):
                        self.queue.add((namespace, service))
        else:
            self.on_own_event(event)

    def on_own_event(self, event: StoreEvent) -> None:
        """Events of the controller's own output kind."""

    def resync(self) -> None:
        for service in self.store.items(SERVICES):
            if service_selector(service) is not None:
                self.queue.add(key_of(service))
