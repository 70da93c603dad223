"""A test stand-in for CoreDNS's `hosts` plugin: parse a hosts file and answer queries as it does.

CoreDNS is not available in the test environment, so this module reproduces the documented
behaviour of the plugin (facts from its README and source, no code copied):
- parsing: on each line everything from the first `#` is a comment; the rest is split on
  whitespace; lines with fewer than two fields are ignored; the first field is an IP address
  (an IPv6 zone `%eth0` is discarded; anything unparsable drops the line); every further field
  is a name, lower-cased and made absolute (trailing dot); names outside the plugin's zones are
  ignored. An address that is an IPv4 address (IPv4-mapped IPv6 included) serves A queries,
  any other AAAA queries. A name listed several times gets all its addresses, in file order.
- reloading: the file is parsed again only when its modification time or size changed.
- answering (`ServeDNS`): a query outside the zones goes to the next plugin; A / AAAA answer
  from the maps; no answer and the name unknown to both maps -> the next plugin when
  `fallthrough` covers the name, else SERVFAIL (the plugin has no SOA to send NXDOMAIN);
  a name known only in the other family -> NOERROR with no answer (NODATA).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Rcode = Literal["NOERROR", "SERVFAIL", "NEXT"]


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _in_zone(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Answer:
    rcode: Rcode
    addresses: tuple[str, ...] = ()


@dataclass
class HostsPlugin:
    """`hosts FILE ZONES... { fallthrough [ZONES...] }` of one server block."""

    zones: tuple[str, ...] = (".",)
    fallthrough: tuple[str, ...] | None = None  # None: off; (): every zone of the plugin
    names4: dict[str, list[str]] = field(default_factory=dict)
    names6: dict[str, list[str]] = field(default_factory=dict)
    _stamp: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.zones = tuple(_absolute(zone) for zone in self.zones)
        if self.fallthrough is not None:
            self.fallthrough = tuple(_absolute(zone) for zone in self.fallthrough)

    def _zone_of(self, name: str) -> str | None:
        matches = [zone for zone in self.zones if _in_zone(name, zone)]
        return max(matches, key=len) if matches else None

    def parse(self, text: str) -> None:
        """Replace the maps with the content of `text`."""
        names4: dict[str, list[str]] = {}
        names6: dict[str, list[str]] = {}
        for raw in text.split("\n"):
            line = raw.split("#", 1)[0]
            fields = line.split()
            if len(fields) < 2:
                continue
            address = _parse_ip(fields[0])
            if address is None:
                continue
            target = names4 if address.version == 4 else names6
            for name in fields[1:]:
                absolute = _absolute(name)
                if self._zone_of(absolute) is None:
                    continue
                target.setdefault(absolute, []).append(str(address))
        self.names4, self.names6 = names4, names6

    def reload(self, path: str | os.PathLike[str]) -> bool:
        """Re-read `path` when its mtime or size changed; True when it did."""
        try:
            stat = Path(path).stat()
        except FileNotFoundError:
            return False  # CoreDNS keeps serving what it had
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        self.parse(Path(path).read_text(errors="surrogateescape"))
        self._stamp = stamp
        return True

    def query(self, name: str, qtype: Literal["A", "AAAA"] = "A") -> Answer:
        qname = _absolute(name)
        if self._zone_of(qname) is None:
            return Answer("NEXT")
        addresses = (self.names4 if qtype == "A" else self.names6).get(qname, [])
        if not addresses and qname not in self.names4 and qname not in self.names6:
            if self.fallthrough is not None and (
                not self.fallthrough or any(_in_zone(qname, z) for z in self.fallthrough)
            ):
                return Answer("NEXT")
            return Answer("SERVFAIL")
        return Answer("NOERROR", tuple(addresses))


def resolve(text: str, name: str, qtype: Literal["A", "AAAA"] = "A") -> tuple[str, ...]:
    """The addresses a `hosts` plugin for every zone, with fallthrough, answers for `name`."""
    plugin = HostsPlugin(fallthrough=())
    plugin.parse(text)
    return plugin.query(name, qtype).addresses
