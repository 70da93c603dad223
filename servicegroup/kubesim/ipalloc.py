"""Service clusterIP and nodePort allocation (the apiserver's service IP and port allocators).

Owns: `ServiceAllocator`, which hands out cluster IPs from a service CIDR (default
10.96.0.0/12; the first host address is reserved for the `kubernetes` Service) and node
ports from 30000-32767, and takes them back when a Service is deleted.

Invariants:
- An address or port is allocated to at most one Service at a time.
- Allocation is deterministic (lowest free first), so test runs are reproducible.
"""

from __future__ import annotations

import ipaddress


class AllocationError(Exception):
    """The requested IP or port cannot be allocated; the message is the apiserver's."""


class ServiceAllocator:
    def __init__(
        self, *, cidr: str = "10.96.0.0/12", node_ports: tuple[int, int] = (30000, 32767)
    ) -> None:
        self.network = ipaddress.ip_network(cidr)
        self._used_ips: set[str] = set()
        self._next_ip = int(self.network.network_address) + 2
        self._port_range = node_ports
        self._used_ports: set[int] = set()

    @property
    def kubernetes_ip(self) -> str:
        """The first host address: the `kubernetes` Service's clusterIP."""
        return str(self.network.network_address + 1)

    def allocate_ip(self, requested: str | None = None, *, dry_run: bool = False) -> str:
        if requested:
            try:
                address = ipaddress.ip_address(requested)
            except ValueError:
                raise AllocationError(
                    f"failed to allocate IP {requested}: must be a valid IP address"
                ) from None
            if address not in self.network:
                raise AllocationError(
                    f"failed to allocate IP {requested}: the provided IP ({requested}) is not "
                    f"in the valid range. The range of valid IPs is {self.network}"
                )
            if requested in self._used_ips:
                raise AllocationError(
                    f"failed to allocate IP {requested}: provided IP is already allocated"
                )
            if not dry_run:
                self._used_ips.add(requested)
            return requested
        last = int(self.network.broadcast_address)
        first = int(self.network.network_address) + 2
        candidate = self._next_ip
        for _ in range(last - first):
            if candidate >= last:
                candidate = first
            text = str(ipaddress.ip_address(candidate))
            if text not in self._used_ips:
                if not dry_run:
                    self._used_ips.add(text)
                    self._next_ip = candidate + 1
                return text
            candidate += 1
        raise AllocationError("failed to allocate a serviceIP: range is full")

    def release_ip(self, address: str | None) -> None:
        if address:
            self._used_ips.discard(address)

    def allocate_port(self, requested: int | None = None, *, dry_run: bool = False) -> int:
        low, high = self._port_range
        if requested:
            if not low <= requested <= high:
                raise AllocationError(
                    f"provided port is not in the valid range. The range of valid ports is "
                    f"{low}-{high}"
                )
            if requested in self._used_ports:
                raise AllocationError("provided port is already allocated")
            if not dry_run:
                self._used_ports.add(requested)
            return requested
        for port in range(low, high + 1):
            if port not in self._used_ports:
                if not dry_run:
                    self._used_ports.add(port)
                return port
        raise AllocationError("range is full")

    def release_port(self, port: int | None) -> None:
        if port:
            self._used_ports.discard(port)
