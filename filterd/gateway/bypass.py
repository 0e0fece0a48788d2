"""Bypass monitor: sees LAN devices trying to get around filterd's DNS, logs each attempt.

Three kinds of attempt, caught on the LAN interface with a tight kernel (BPF)
filter so ordinary traffic never reaches Python:
- dns: plain DNS (port 53) to a resolver other than filterd (in the router
  design the nftables rules redirect it to filterd anyway; the event says who tried);
- dot / doq: DNS over TLS or QUIC (port 853);
- doh: HTTPS or QUIC (443) to a known DNS-over-HTTPS resolver address.

Each becomes a "bypass attempt" event (path `bypass`, reason `bypass`) for that
client, at most once per client, kind and server per `dedupe_seconds`, so a
device retrying in a loop does not flood the event log.

Classification and the filter text are pure; only `BypassMonitor` touches the
network (scapy, imported lazily: it is slow to import and only this process needs it).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from filterd.errors import ConfigError
from filterd.gateway.rules import AddressList
from filterd.policy.decision import Action, Decision, Query, Reason, RuleSource

log = logging.getLogger(__name__)


class Kind(StrEnum):
    DNS = "dns"    # plain DNS to another resolver
    DOT = "dot"    # DNS over TLS (TCP 853)
    DOQ = "doq"    # DNS over QUIC (UDP 853)
    DOH = "doh"    # HTTPS/QUIC to a known DoH resolver address


@dataclass(frozen=True, slots=True)
class BypassAttempt:
    at: datetime
    client_ip: str
    client_mac: str | None
    kind: Kind
    server_ip: str
    server_port: int
    proto: str  # "tcp" | "udp"

    def describe(self) -> str:
        return f"{self.kind.value} to {self.server_ip}:{self.server_port}/{self.proto}"


class BypassSink(Protocol):
    def record_bypass(self, attempt: BypassAttempt) -> None: ...


_SYN_ONLY = "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"


class BypassDetector:
    """Decides which packets are bypass attempts; builds the matching BPF filter."""

    def __init__(self, own_addresses: Iterable[str], doh: AddressList,
                 dedupe_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        try:
            self.own = tuple(sorted({str(ipaddress.ip_address(a)) for a in own_addresses}))
        except ValueError as exc:
            raise ConfigError(f"bad appliance address: {exc}", key="own_addresses") from exc
        if not self.own:
            raise ConfigError("the bypass monitor needs filterd's own LAN address(es)",
                              key="own_addresses")
        self.doh = doh
        self.dedupe_seconds = dedupe_seconds
        self._clock = clock
        self._seen: dict[tuple[str, Kind, str], float] = {}
        self._lock = threading.Lock()

    def classify(self, src: str, dst: str, proto: str, dport: int) -> Kind | None:
        if src in self.own or dst in self.own:
            return None
        if dport == 53:
            return Kind.DNS
        if dport == 853:
            return Kind.DOT if proto == "tcp" else Kind.DOQ
        if dport == 443 and dst in self.doh:
            return Kind.DOH
        return None

    def observe(self, *, src: str, dst: str, proto: str, dport: int, mac: str | None = None,
                at: datetime | None = None) -> BypassAttempt | None:
        """The attempt this packet shows, or None (not one, or already seen recently)."""
        kind = self.classify(src, dst, proto, dport)
        if kind is None:
            return None
        now = self._clock()
        key = (src, kind, dst)
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self.dedupe_seconds:
                return None
            self._seen[key] = now
            if len(self._seen) > 10_000:  # forget old keys; bounded memory on a busy LAN
                cutoff = now - self.dedupe_seconds
                self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
        return BypassAttempt(at or datetime.now(UTC), src, mac, kind, dst, dport, proto)

    def bpf(self) -> str:
        """The kernel filter: only candidate packets, TCP only on its first SYN (IPv4)."""
        own4 = [a for a in self.own if ":" not in a]
        own6 = [a for a in self.own if ":" in a]

        def not_own(addrs: list[str]) -> str:
            return "".join(f" and not host {a}" for a in addrs)

        v4 = (f"(ip{not_own(own4)} and ("
              f"udp dst port 53 or udp dst port 853"
              f" or (tcp and (dst port 53 or dst port 853) and {_SYN_ONLY})")
        if self.doh.v4:
            nets = " or ".join(f"dst net {n}" for n in self.doh.v4)
            v4 += f" or (({nets}) and (udp dst port 443 or (tcp dst port 443 and {_SYN_ONLY})))"
        v4 += "))"
        # libpcap cannot read TCP flags over IPv6: match the ports, the dedupe does the rest.
        v6 = f"(ip6{not_own(own6)} and (dst port 53 or dst port 853"
        if self.doh.v6:
            nets = " or ".join(f"dst net {n}" for n in self.doh.v6)
            v6 += f" or (({nets}) and dst port 443)"
        v6 += "))"
        return f"{v4} or {v6}"


def attempt_from_packet(pkt: Any, detector: BypassDetector) -> BypassAttempt | None:
    """A scapy packet -> attempt (the MAC comes from the frame, so it needs no lookup)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    net = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    if net is None:
        return None
    l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
    if l4 is None:
        return None
    proto = "tcp" if l4.name == "TCP" else "udp"
    mac = pkt[Ether].src.lower() if pkt.haslayer(Ether) else None
    at = datetime.fromtimestamp(float(pkt.time), UTC)
    return detector.observe(src=str(net.src), dst=str(net.dst), proto=proto,
                            dport=int(l4.dport), mac=mac, at=at)


class ListSink:
    """Keeps attempts in memory (tests; `filterd gateway monitor --print`)."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.attempts: list[BypassAttempt] = []
        self._echo = echo

    def record_bypass(self, attempt: BypassAttempt) -> None:
        self.attempts.append(attempt)
        if self._echo:
            self._echo(f"{attempt.at.isoformat()} {attempt.client_ip} "
                       f"{attempt.client_mac or '-'} {attempt.describe()}")


GroupFor = Callable[[str, "str | None"], str]


class EventLogSink:
    """Writes attempts to the event log as Decisions with reason `bypass` and path `bypass`.

    `enforced`: the gateway rules are in force, so DoT/DoH were refused (action
    block) and plain DNS was answered by filterd (action rewrite). Without the
    rules the attempt went through (action allow) and the event says so.
    """

    SOURCE = RuleSource(kind="builtin", name="bypass-monitor")

    def __init__(self, events: Any, group_for: GroupFor | None = None,
                 enforced: bool = True) -> None:
        self.events = events
        self.group_for = group_for
        self.enforced = enforced

    def decision(self, attempt: BypassAttempt) -> tuple[Decision, Query]:
        group = "unknown"
        if self.group_for is not None:
            try:
                group = self.group_for(attempt.client_ip, attempt.client_mac)
            except Exception:  # an unknown client still gets its event
                log.exception("no group for %s", attempt.client_ip)
        if not self.enforced:
            action = Action.ALLOW
        else:
            action = Action.REWRITE if attempt.kind is Kind.DNS else Action.BLOCK
        decision = Decision(action=action, reason=Reason.BYPASS, name=attempt.server_ip,
                            group=group, at=attempt.at, rule=f"bypass: {attempt.describe()}",
                            source=self.SOURCE,
                            category="doh" if attempt.kind is not Kind.DNS else None)
        query = Query(name=attempt.server_ip, client_ip=attempt.client_ip, at=attempt.at,
                      client_mac=attempt.client_mac, qtype=attempt.kind.value.upper(),
                      path="bypass")
        return decision, query

    def record_bypass(self, attempt: BypassAttempt) -> None:
        self.events.record(*self.decision(attempt))


class BypassMonitor:
    """Sniffs `iface` with the detector's BPF filter in a thread; sends attempts to `sink`."""

    def __init__(self, iface: str, detector: BypassDetector, sink: BypassSink,
                 on_attempt: Callable[[BypassAttempt], None] | None = None) -> None:
        self.iface = iface
        self.detector = detector
        self.sink = sink
        self.on_attempt = on_attempt
        self._sniffer: Any = None

    def _handle(self, pkt: Any) -> None:
        try:
            attempt = attempt_from_packet(pkt, self.detector)
            if attempt is not None:
                self.sink.record_bypass(attempt)
                if self.on_attempt:
                    self.on_attempt(attempt)
        except Exception:  # one odd packet must not stop the monitor
            log.exception("bypass monitor: packet not handled")

    def start(self) -> BypassMonitor:
        # The layers register the link types: without them the capture socket cannot tell
        # an Ethernet frame from raw bytes and every packet would go unparsed.
        import scapy.layers.inet
        import scapy.layers.inet6
        import scapy.layers.l2  # noqa: F401
        from scapy.sendrecv import AsyncSniffer

        self._sniffer = AsyncSniffer(iface=self.iface, filter=self.detector.bpf(),
                                     prn=self._handle, store=False)
        self._sniffer.start()
        return self

    def wait_started(self, timeout: float = 10.0) -> bool:
        """True once the capture socket is open (packets sent before that are not seen)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sniffer is not None and getattr(self._sniffer, "running", False) \
                    and getattr(self._sniffer, "stop_cb", None) is not None:
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self._sniffer is not None and self._sniffer.running:
            self._sniffer.stop()
