"""kube-controller-manager's EndpointSlice controller for kubesim.

Owns: `EndpointSliceController` - for every Service with a selector, the discovery.k8s.io/v1
EndpointSlices of its pods: `generateName: {service}-`, labels `kubernetes.io/service-name`,
`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` (plus the
Service's own labels and `service.kubernetes.io/headless` for headless Services), a
controller reference to the Service, `addressType: IPv4`, `ports` (targetPort resolved per
pod: pods whose ports resolve differently get different slices), and one endpoint per pod
with an IP that has not finished: `addresses`, `conditions` (`serving` = pod Ready,
`terminating` = being deleted, `ready` = serving and not terminating, or always with
`publishNotReadyAddresses`), `hostname` (pods whose subdomain is the Service),
`targetRef`, `nodeName` and `zone` (the node's `topology.kubernetes.io/zone`).

Invariants:
- At most 100 endpoints per slice; existing slices are updated in place (an endpoint stays
  in the slice it is in), new endpoints fill free room before new slices are created, and
  emptied or foreign-owned slices are deleted; a Service without endpoints keeps exactly one
  placeholder slice (no ports, no endpoints), as upstream.
- A slice is written only when its content differs from the stored one; writes are
  `kube-controller-manager`'s. Slices of a deleted Service go with the garbage collector.
"""

from __future__ import annotations

from typing import Any

import orjson

from servicegroup.kubesim.store import StoreEvent, clone
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.index import (
    MANAGED_BY_LABEL,
    NODES,
    SERVICE_NAME_LABEL,
    SERVICES,
    SLICE_CONTROLLER,
    SLICES,
    Key,
    service_selector,
)
from servicegroup.kubesim.workloads.nodes import ZONE_LABEL
from servicegroup.kubesim.workloads.servicepods import (
    HEADLESS_LABEL,
    TRIGGER_TIME,
    ServiceEndpointsController,
    find_port,
    is_headless,
    should_be_in_endpoints,
    should_set_hostname,
)

Obj = dict[str, Any]

MAX_ENDPOINTS_PER_SLICE = 100
_RESERVED_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL})


def _ports_key(ports: list[Obj]) -> bytes:
    return orjson.dumps(ports, option=orjson.OPT_SORT_KEYS)


def _endpoint_id(endpoint: Obj) -> str:
    ref = endpoint.get("targetRef") or {}
    return str(ref.get("uid") or ref.get("name") or (endpoint.get("addresses") or [""])[0])


def slice_labels(service: Obj) -> dict[str, str]:
    labels = {k: v for k, v in objects.labels(service).items() if k not in _RESERVED_LABELS}
    labels[SERVICE_NAME_LABEL] = objects.meta(service)["name"]
    labels[MANAGED_BY_LABEL] = SLICE_CONTROLLER
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


class EndpointSliceController(ServiceEndpointsController):
    name = "endpointslice-controller"

    def on_own_event(self, event: StoreEvent) -> None:
        if event.key == SLICES:
            labels = objects.labels(event.obj)
            service = labels.get(SERVICE_NAME_LABEL)
            if service and labels.get(MANAGED_BY_LABEL) == SLICE_CONTROLLER:
                self.queue.add((objects.meta(event.obj).get("namespace", ""), service))

    # ---- desired state -----------------------------------------------------------------

    def _endpoint(self, service: Obj, pod: Obj) -> Obj:
        pod_meta = objects.meta(pod)
        spec = objects.spec(pod)
        serving = objects.is_ready(pod)
        terminating = objects.is_terminating(pod)
        publish = bool(objects.spec(service).get("publishNotReadyAddresses"))
        endpoint: Obj = {
            "addresses": [objects.status(pod)["podIP"]],
            "conditions": {
                "ready": publish or (serving and not terminating),
                "serving": serving,
                "terminating": terminating,
            },
        }
        if should_set_hostname(pod, service):
            endpoint["hostname"] = spec["hostname"]
        endpoint["targetRef"] = {
            "kind": "Pod",
            "namespace": pod_meta.get("namespace"),
            "name": pod_meta["name"],
            "uid": pod_meta.get("uid"),
        }
        node_name = spec.get("nodeName")
        if node_name:
            endpoint["nodeName"] = node_name
            node = self.store.get(NODES, "", node_name)
            zone = objects.labels(node).get(ZONE_LABEL) if node is not None else None
            if zone:
                endpoint["zone"] = zone
        return endpoint

    def _ports(self, service: Obj, pod: Obj) -> list[Obj]:
        ports: list[Obj] = []
        for service_port in objects.spec(service).get("ports") or ():
            number = find_port(pod, service_port)
            if number is None:
                continue
            port: Obj = {
                "name": service_port.get("name") or "",
                "protocol": service_port.get("protocol") or "TCP",
                "port": number,
            }
            if service_port.get("appProtocol"):
                port["appProtocol"] = service_port["appProtocol"]
            ports.append(port)
        return ports

    def desired(
        self, service: Obj, selector: dict[str, str]
    ) -> dict[bytes, tuple[list[Obj], dict[str, Obj]]]:
        """port-set key -> (ports, endpoint id -> endpoint)."""
        namespace = objects.meta(service).get("namespace", "")
        groups: dict[bytes, tuple[list[Obj], dict[str, Obj]]] = {}
        for pod in self.index.pods_matching(namespace, selector):
            if not should_be_in_endpoints(pod, include_terminating=True):
                continue
            ports = self._ports(service, pod)
            key = _ports_key(ports)
            group = groups.get(key)
            if group is None:
                groups[key] = group = (ports, {})
            endpoint = self._endpoint(service, pod)
            group[1][_endpoint_id(endpoint)] = endpoint
        return groups

    # ---- reconcile ---------------------------------------------------------------------

    def process(self, key: Key) -> None:
        service = self.store.get(SERVICES, *key)
        if service is None:
            return  # the garbage collector removes slices owned by the Service
        selector = service_selector(service)
        if selector is None:
            return
        uid = objects.meta(service).get("uid")
        desired = self.desired(service, selector)
        labels = slice_labels(service)
        existing = self.index.slices_of(*key)
        keep: list[tuple[Obj, list[Obj], list[Obj]]] = []  # (slice, ports, endpoints)
        to_delete: list[Obj] = []
        placed: set[str] = set()
        for found in existing:
            owner = objects.controller_ref(found)
            ports = found.get("ports") or []
            group = desired.get(_ports_key(ports))
            if owner is None or owner.get("uid") != uid or group is None:
                to_delete.append(found)
                continue
            wanted = group[1]
            endpoints = []
            for endpoint in found.get("endpoints") or ():
                ident = _endpoint_id(endpoint)
                if ident in wanted and ident not in placed:
                    endpoints.append(wanted[ident])
                    placed.add(ident)
            keep.append((found, ports, endpoints))
        creates: list[tuple[list[Obj], list[Obj]]] = []
        for ports_key, (ports, wanted) in desired.items():
            pending = [ep for ident, ep in sorted(wanted.items()) if ident not in placed]
            for _, slice_ports, endpoints in keep:
                if not pending:
                    break
                if _ports_key(slice_ports) != ports_key:
                    continue
                room = MAX_ENDPOINTS_PER_SLICE - len(endpoints)
                if room > 0:
                    endpoints.extend(pending[:room])
                    pending = pending[room:]
            for start in range(0, len(pending), MAX_ENDPOINTS_PER_SLICE):
                creates.append((ports, pending[start : start + MAX_ENDPOINTS_PER_SLICE]))
        updates: list[tuple[Obj, list[Obj], list[Obj]]] = []
        for found, ports, endpoints in keep:
            if endpoints:
                updates.append((found, ports, endpoints))
            else:
                to_delete.append(found)
        if not updates and not creates:
            # No endpoints at all: exactly one placeholder slice stays.
            placeholder = next(
                (
                    s
                    for s in to_delete
                    if not s.get("ports")
                    and not s.get("endpoints")
                    and (objects.controller_ref(s) or {}).get("uid") == uid
                ),
                None,
            )
            if placeholder is not None:
                to_delete.remove(placeholder)
                updates.append((placeholder, [], []))
            else:
                creates.append(([], []))
        # As upstream's finalize(): a slice about to be deleted takes a new slice's content
        # instead (one update rather than a delete and a create), when the Service owns it.
        deleting: list[Obj] = []
        for found in to_delete:
            owner = objects.controller_ref(found) or {}
            if creates and owner.get("uid") == uid and found.get("addressType") == "IPv4":
                ports, endpoints = creates.pop()
                updates.append((found, ports, endpoints))
            else:
                deleting.append(found)
        to_delete = deleting
        now = self.now()
        for found, ports, endpoints in updates:
            self._update(found, labels, ports, endpoints, now=now)
        for ports, endpoints in creates:
            self._create(service, labels, ports, endpoints, now=now)
        for found in to_delete:
            meta = objects.meta(found)
            self.writer.delete(SLICES, meta.get("namespace"), meta["name"], uid=meta.get("uid"))

    @staticmethod
    def _body(ports: list[Obj], endpoints: list[Obj]) -> Obj:
        # Empty lists read back as null (no omitempty on these fields).
        return {
            "addressType": "IPv4",
            "endpoints": endpoints or None,
            "ports": ports or None,
        }

    def _create(
        self,
        service: Obj,
        labels: dict[str, str],
        ports: list[Obj],
        endpoints: list[Obj],
        *,
        now: str,
    ) -> None:
        meta = objects.meta(service)
        slice_: Obj = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta.get("namespace"),
                "labels": labels,
                "annotations": {TRIGGER_TIME: now},
                "ownerReferences": [
                    objects.owner_reference(service, api_version="v1", kind="Service")
                ],
            },
            **self._body(ports, endpoints),
        }
        self.writer.create(SLICES, meta.get("namespace"), slice_)

    def _update(
        self,
        found: Obj,
        labels: dict[str, str],
        ports: list[Obj],
        endpoints: list[Obj],
        *,
        now: str,
    ) -> None:
        body = self._body(ports, endpoints)
        if (
            objects.labels(found) == labels
            and found.get("endpoints") == body["endpoints"]
            and found.get("ports") == body["ports"]
            and found.get("addressType") == body["addressType"]
        ):
            return
        updated = clone(found)
        updated.update(body)
        updated["metadata"]["labels"] = labels
        annotations = dict(updated["metadata"].get("annotations") or {})
        annotations[TRIGGER_TIME] = now
        updated["metadata"]["annotations"] = annotations
        self.writer.update(SLICES, updated)
