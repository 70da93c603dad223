"""Pod IP addresses out of each node's podCIDR (the CNI plugin's host-local IPAM).

Owns: `PodIPAllocator` - per-CIDR sets of addresses in use, keyed to the pod uid holding
them: `allocate(cidr, uid=...)` gives the pod its address (the same one when asked again),
`release(uid)` frees it when the pod is gone, `reserve(...)` re-registers addresses of pods
that already exist (at start).

Invariants:
- An address belongs to at most one pod uid at a time; the network address, the first host
  (the node bridge's gateway) and the broadcast address are never handed out.
- Allocation is deterministic: the next free address after the last one given in that CIDR,
  wrapping around, so a freed address is not reused at once (as host-local IPAM does).
- Pools are keyed by the CIDR string, not the node: two nodes that claim the same podCIDR
  still never get the same pod address.
"""

from __future__ import annotations

import ipaddress


class PodIPAllocator:
    def __init__(self) -> None:
        self._used: dict[str, set[int]] = {}
        self._next: dict[str, int] = {}
        self._by_uid: dict[str, tuple[str, int]] = {}

    def address_of(self, uid: str) -> str | None:
        held = self._by_uid.get(uid)
        return str(ipaddress.ip_address(held[1])) if held else None

    def allocate(self, cidr: str, *, uid: str) -> str | None:
        """The pod's address in `cidr`; None when the block is full."""
        held = self._by_uid.get(uid)
        if held is not None and held[0] == cidr:
            return str(ipaddress.ip_address(held[1]))
        if held is not None:
            self.release(uid)
        network = ipaddress.ip_network(cidr, strict=False)
        first = int(network.network_address) + 2
        last = int(network.broadcast_address) - 1
        if last < first:
            return None
        used = self._used.setdefault(cidr, set())
        candidate = self._next.get(cidr, first)
        for _ in range(last - first + 1):
            if candidate > last or candidate < first:
                candidate = first
            if candidate not in used:
                used.add(candidate)
                self._by_uid[uid] = (cidr, candidate)
                self._next[cidr] = candidate + 1
                return str(ipaddress.ip_address(candidate))
            candidate += 1
        return None

    def reserve(self, cidr: str, address: str, *, uid: str) -> bool:
        """Record an address a pod already has; False when it is taken or outside `cidr`."""
        try:
            value = int(ipaddress.ip_address(address))
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return False
        if ipaddress.ip_address(value) not in network:
            return False
        used = self._used.setdefault(cidr, set())
        if value in used:
            return self._by_uid.get(uid) == (cidr, value)
        used.add(value)
        self._by_uid[uid] = (cidr, value)
        return True

    def release(self, uid: str) -> None:
        held = self._by_uid.pop(uid, None)
        if held is not None:
            used = self._used.get(held[0])
            if used is not None:
                used.discard(held[1])

    def in_use(self, cidr: str) -> int:
        return len(self._used.get(cidr, ()))
