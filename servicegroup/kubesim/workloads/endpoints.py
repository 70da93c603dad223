"""kube-controller-manager's Endpoints controller (core/v1 Endpoints) for kubesim.

Owns: `EndpointsController` - for every Service with a selector, the Endpoints object of the
same name: the Service's labels (plus `service.kubernetes.io/headless` when it has no
cluster IP), the `endpoints.kubernetes.io/last-change-trigger-time` annotation, and
`subsets` packed as RepackSubsets does (addresses grouped by identical port sets, sorted),
ready pods under `addresses`, the others under `notReadyAddresses`; each address with `ip`,
`hostname` (pods whose subdomain is the Service), `nodeName` and a `targetRef` to the pod.
Pods being deleted are left out unless the Service publishes not-ready addresses.

Invariants:
- Endpoints are written only when subsets or labels differ from the stored object; writes
  are `kube-controller-manager`'s, without ownerReferences (as upstream: the controller
  itself deletes the Endpoints of a Service that is gone).
- At start, Endpoints with no Service of the same name are queued and removed (upstream's
  checkLeftoverEndpoints); leader-election records are left alone.
"""

from __future__ import annotations

from typing import Any

import orjson

from servicegroup.kubesim import errors
from servicegroup.kubesim.store import DELETED, StoreEvent, clone
from servicegroup.kubesim.workloads import objects
from servicegroup.kubesim.workloads.index import ENDPOINTS, SERVICES, Key, key_of, service_selector
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

LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def _address(service: Obj, pod: Obj) -> Obj:
    meta = objects.meta(pod)
    spec = objects.spec(pod)
    address: Obj = {"ip": objects.status(pod)["podIP"]}
    if should_set_hostname(pod, service):
        address["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    address["targetRef"] = {
        "kind": "Pod",
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta.get("uid"),
    }
    return address


def _address_order(address: Obj) -> tuple[str, str]:
    return (str(address.get("ip")), str((address.get("targetRef") or {}).get("uid") or ""))


class EndpointsController(ServiceEndpointsController):
    name = "endpoints-controller"

    def on_own_event(self, event: StoreEvent) -> None:
        if event.key == ENDPOINTS and event.type == DELETED:
            self.queue.add(key_of(event.obj))

    def resync(self) -> None:
        super().resync()
        for endpoints in self.store.items(ENDPOINTS):
            annotations = objects.meta(endpoints).get("annotations") or {}
            if LEADER_ANNOTATION in annotations:
                continue
            key = key_of(endpoints)
            if self.store.get(SERVICES, *key) is None:
                self.queue.add(key)

    def subsets(self, service: Obj, selector: dict[str, str]) -> list[Obj]:
        namespace = objects.meta(service).get("namespace", "")
        spec = objects.spec(service)
        publish = bool(spec.get("publishNotReadyAddresses"))
        service_ports = spec.get("ports") or []
        groups: dict[bytes, tuple[list[Obj], list[Obj], list[Obj]]] = {}
        for pod in self.index.pods_matching(namespace, selector):
            if not should_be_in_endpoints(pod, include_terminating=publish):
                continue
            address = _address(service, pod)
            ready = publish or objects.is_ready(pod)
            port_sets: list[list[Obj]] = []
            if not service_ports:
                if is_headless(service):
                    port_sets.append([])
            else:
                for service_port in service_ports:
                    number = find_port(pod, service_port)
                    if number is None:
                        continue
                    port: Obj = {}
                    if service_port.get("name"):
                        port["name"] = service_port["name"]
                    port["port"] = number
                    port["protocol"] = service_port.get("protocol") or "TCP"
                    if service_port.get("appProtocol"):
                        port["appProtocol"] = service_port["appProtocol"]
                    port_sets.append([port])
            for ports in port_sets:
                key = orjson.dumps(ports, option=orjson.OPT_SORT_KEYS)
                group = groups.get(key)
                if group is None:
                    groups[key] = group = (ports, [], [])
                (group[1] if ready else group[2]).append(address)
        merged = self._repack(groups)
        return merged

    @staticmethod
    def _repack(groups: dict[bytes, tuple[list[Obj], list[Obj], list[Obj]]]) -> list[Obj]:
        """RepackSubsets: one subset per distinct address set, with all its ports."""
        by_addresses: dict[bytes, tuple[list[Obj], list[Obj], list[Obj]]] = {}
        for ports, ready_found, not_ready_found in groups.values():
            ready = sorted(ready_found, key=_address_order)
            not_ready = sorted(not_ready_found, key=_address_order)
            key = orjson.dumps([ready, not_ready], option=orjson.OPT_SORT_KEYS)
            found = by_addresses.get(key)
            if found is None:
                by_addresses[key] = (ready, not_ready, list(ports))
            else:
                found[2].extend(ports)
        subsets: list[Obj] = []
        for ready, not_ready, ports in by_addresses.values():
            subset: Obj = {}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            if ports:
                subset["ports"] = sorted(
                    ports, key=lambda p: (p.get("name", ""), p["port"], p["protocol"])
                )
            subsets.append(subset)
        subsets.sort(key=lambda s: orjson.dumps(s, option=orjson.OPT_SORT_KEYS))
        return subsets

    def process(self, key: Key) -> None:
        service = self.store.get(SERVICES, *key)
        if service is None:
            existing = self.store.get(ENDPOINTS, *key)
            if existing is None:
                return
            annotations = objects.meta(existing).get("annotations") or {}
            if LEADER_ANNOTATION in annotations:
                return
            try:
                self.writer.delete(ENDPOINTS, key[0], key[1])
            except errors.ApiError as err:
                if err.code != 404:
                    raise
            return
        selector = service_selector(service)
        if selector is None:
            return
        subsets = self.subsets(service, selector)
        labels = dict(objects.labels(service))
        if is_headless(service):
            labels[HEADLESS_LABEL] = ""
        else:
            labels.pop(HEADLESS_LABEL, None)
        existing = self.store.get(ENDPOINTS, *key)
        now = self.now()
        if existing is None:
            body: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": key[1],
                    "namespace": key[0],
                    "annotations": {TRIGGER_TIME: now},
                },
            }
            if labels:
                body["metadata"]["labels"] = labels
            if subsets:
                body["subsets"] = subsets
            self.writer.create(ENDPOINTS, key[0], body)
            return
        if (existing.get("subsets") or []) == subsets and objects.labels(existing) == labels:
            return
        updated = clone(existing)
        if subsets:
            updated["subsets"] = subsets
        else:
            updated.pop("subsets", None)
        if labels:
            updated["metadata"]["labels"] = labels
        else:
            updated["metadata"].pop("labels", None)
        annotations = dict(updated["metadata"].get("annotations") or {})
        annotations[TRIGGER_TIME] = now
        updated["metadata"]["annotations"] = annotations
        self.writer.update(ENDPOINTS, updated)
