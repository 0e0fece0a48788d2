"""Which group a client belongs to: MAC addresses, single IPs, CIDRs and ranges.

Most specific wins: a MAC address, then an exact IP, then the smallest network
or range that contains the address (a /28 beats a /24; an IPv6 /64 beats a /48;
a 20-address range beats a /24). The same MAC, IP, CIDR or range (or a range
covering exactly a CIDR's addresses) in two groups is an error at load; between
a CIDR and a range of equal size that differ, the CIDR wins. Unknown clients
get the policy's default group.
IPv4-mapped IPv6 addresses (::ffff:10.0.0.5, seen on dual-stack sockets) are
treated as the IPv4 address.

MAC addresses come from a NeighbourTable (the gateway supplies the kernel's
`ip neigh`; tests use StaticNeighbours). A MAC can be spoofed, so it should
only be used to move a device to a *stricter* or a known group, never as the
sole proof that a device is a teacher's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from filterd.errors import CodedValueError

_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_MAC_DOTTED = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")


class NeighbourTable(Protocol):
    def mac_for(self, ip: str) -> str | None:
        """The MAC address currently seen for `ip` on the LAN, or None."""


def normalize_mac(text: str) -> str:
    """'AA-BB-CC-DD-EE-FF' / 'aabb.ccdd.eeff' -> 'aa:bb:cc:dd:ee:ff'; ValueError if not a MAC."""
    t = text.strip().lower()
    if _MAC.match(t):
        return t.replace("-", ":")
    if _MAC_DOTTED.match(t):
        h = t.replace(".", "")
        return ":".join(h[i:i + 2] for i in range(0, 12, 2))
    raise CodedValueError("client.mac", value=text)


def looks_like_mac(text: str) -> bool:
    t = text.strip().lower()
    return bool(_MAC.match(t) or _MAC_DOTTED.match(t))


class StaticNeighbours:
    """A fixed IP -> MAC map (tests, and static DHCP leases)."""

    def __init__(self, table: Mapping[str, str] | None = None) -> None:
        self._table = {str(ipaddress.ip_address(ip)): normalize_mac(mac)
                       for ip, mac in (table or {}).items()}

    def mac_for(self, ip: str) -> str | None:
        return self._table.get(ip)


@dataclass(frozen=True, slots=True)
class ClientRule:
    """One `clients:` entry of a group, with where it was written."""

    text: str          # as written, normalised (e.g. '10.10.0.0/16')
    kind: str          # mac | ip | cidr | range
    group: str
    file: str
    line: int
    version: int = 0   # 4 or 6 for address rules
    first: int = 0     # first address (int)
    last: int = 0      # last address (int)

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    a = ipaddress.ip_address(text.strip())
    if a.version == 6 and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def parse_client(text: object, group: str, file: str, line: int) -> ClientRule:
    """Parse one entry: MAC, IP, CIDR ('10.0.0.0/8', '2001:db8::/48') or range 'a-b'."""
    if not isinstance(text, str) or not text.strip():
        raise CodedValueError("client.empty")
    t = text.strip()
    if looks_like_mac(t):
        return ClientRule(normalize_mac(t), "mac", group, file, line)
    if "/" in t:
        try:
            net = ipaddress.ip_network(t, strict=True)
        except ValueError as exc:
            raise CodedValueError("client.cidr", value=t, error=str(exc)) from None
        return ClientRule(str(net), "cidr", group, file, line, net.version,
                          int(net.network_address), int(net.broadcast_address))
    if "-" in t:
        a_s, _, b_s = t.partition("-")
        try:
            a, b = _addr(a_s), _addr(b_s)
        except ValueError:
            raise CodedValueError("client.range", value=t) from None
        if a.version != b.version:
            raise CodedValueError("client.range_mixed", value=t)
        if int(b) < int(a):
            raise CodedValueError("client.range_backwards", value=t)
        return ClientRule(f"{a}-{b}", "range", group, file, line, a.version, int(a), int(b))
    try:
        a = _addr(t)
    except ValueError:
        raise CodedValueError("client.invalid", value=t) from None
    return ClientRule(str(a), "ip", group, file, line, a.version, int(a), int(a))


class ClientMap:
    """Immutable lookup from (ip, mac) to the most specific ClientRule."""

    def __init__(self, rules: list[ClientRule]) -> None:
        self.rules = tuple(rules)
        self._mac: dict[str, ClientRule] = {}
        self._ip: dict[tuple[int, int], ClientRule] = {}
        # per IP version: [(prefix_len, {network_int: rule})], longest prefix first
        cidr: dict[int, dict[int, dict[int, ClientRule]]] = {4: {}, 6: {}}
        ranges: list[ClientRule] = []
        for r in rules:
            if r.kind == "mac":
                self._mac[r.text] = r
            elif r.kind == "ip":
                self._ip[(r.version, r.first)] = r
            elif r.kind == "cidr":
                bits = 32 if r.version == 4 else 128
                plen = bits - (r.size.bit_length() - 1)
                cidr[r.version].setdefault(plen, {})[r.first] = r
            else:
                ranges.append(r)
        self._cidr = {v: tuple((plen, (32 if v == 4 else 128) - plen, table)
                               for plen, table in sorted(by.items(), reverse=True))
                      for v, by in cidr.items()}
        self._ranges = {v: tuple(sorted((r for r in ranges if r.version == v),
                                        key=lambda r: r.size)) for v in (4, 6)}
        self.has_mac_rules = bool(self._mac)

    @staticmethod
    def conflicts(rules: list[ClientRule]) -> list[tuple[ClientRule, ClientRule]]:
        """Pairs of rules that name exactly the same clients (so neither is more specific)."""
        seen: dict[tuple, ClientRule] = {}
        out = []
        for r in rules:
            key = (r.kind == "mac", r.text) if r.kind == "mac" else (r.version, r.first, r.last,
                                                                    r.kind == "ip")
            if key in seen:
                out.append((seen[key], r))
            else:
                seen[key] = r
        return out

    def lookup(self, ip: str, mac: str | None = None) -> ClientRule | None:
        if mac is not None and self._mac:
            try:
                r = self._mac.get(normalize_mac(mac))
            except ValueError:
                r = None
            if r is not None:
                return r
        a = _addr(ip)
        v, n = a.version, int(a)
        r = self._ip.get((v, n))
        if r is not None:
            return r
        best: ClientRule | None = None
        for _plen, host_bits, table in self._cidr[v]:
            best = table.get((n >> host_bits) << host_bits)
            if best is not None:
                break
        for rr in self._ranges[v]:
            if best is not None and rr.size >= best.size:
                break
            if rr.first <= n <= rr.last:
                best = rr
                break
        return best
