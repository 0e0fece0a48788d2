from __future__ import annotations

from datetime import UTC, datetime

import pytest
from scapy.arch.common import compile_filter
from scapy.data import DLT_EN10MB
from scapy.error import Scapy_Exception
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from filterd.errors import ConfigError
from filterd.gateway.bypass import (
    BypassAttempt,
    BypassDetector,
    EventLogSink,
    Kind,
    attempt_from_packet,
)
from filterd.gateway.rules import default_doh_list_path, load_address_list, parse_address_list
from filterd.policy.decision import Action
from filterd.state.db import open_db as _open
from filterd.state.eventquery import search_events
from filterd.state.events import EventLog

OWN = ["10.99.1.1", "fd99::1"]
DOH = parse_address_list("10.99.2.3\n2001:db8::53\n")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_classify() -> None:
    d = BypassDetector(OWN, DOH)
    assert d.classify("10.99.1.2", "10.99.2.2", "udp", 53) is Kind.DNS
    assert d.classify("10.99.1.2", "10.99.1.1", "udp", 53) is None       # filterd itself
    assert d.classify("10.99.1.2", "10.99.2.2", "tcp", 853) is Kind.DOT
    assert d.classify("10.99.1.2", "10.99.2.2", "udp", 853) is Kind.DOQ
    assert d.classify("10.99.1.2", "10.99.2.3", "tcp", 443) is Kind.DOH
    assert d.classify("10.99.1.2", "2001:db8::53", "udp", 443) is Kind.DOH
    assert d.classify("10.99.1.2", "10.99.2.2", "tcp", 443) is None      # ordinary HTTPS


def test_dedupe_per_client_kind_server() -> None:
    clock = Clock()
    d = BypassDetector(OWN, DOH, dedupe_seconds=60, clock=clock)
    first = d.observe(src="10.99.1.2", dst="10.99.2.2", proto="udp", dport=53)
    assert first is not None and first.kind is Kind.DNS
    assert d.observe(src="10.99.1.2", dst="10.99.2.2", proto="udp", dport=53) is None
    assert d.observe(src="10.99.1.3", dst="10.99.2.2", proto="udp", dport=53) is not None
    assert d.observe(src="10.99.1.2", dst="10.99.2.2", proto="tcp", dport=853) is not None
    clock.t += 61
    assert d.observe(src="10.99.1.2", dst="10.99.2.2", proto="udp", dport=53) is not None


def test_detector_needs_own_addresses() -> None:
    with pytest.raises(ConfigError):
        BypassDetector([], DOH)
    with pytest.raises(ConfigError):
        BypassDetector(["not-an-ip"], DOH)


def test_bpf_compiles_with_libpcap_for_the_shipped_list() -> None:
    bpf = BypassDetector(OWN, load_address_list(default_doh_list_path())).bpf()
    program = compile_filter(bpf, linktype=DLT_EN10MB)
    assert 0 < program.bf_len < 4096
    assert "not host 10.99.1.1" in bpf and "tcp-syn" in bpf
    with pytest.raises(Scapy_Exception):  # the check above can fail: libpcap really parses
        compile_filter(bpf.replace("dst port", "dst prot", 1), linktype=DLT_EN10MB)


def test_attempt_from_real_frames() -> None:
    d = BypassDetector(OWN, DOH)
    frame = Ether(src="AA:BB:CC:00:11:22") / IP(src="10.99.1.2", dst="10.99.2.2") \
        / TCP(dport=853, flags="S")
    frame.time = 1_700_000_000.5
    got = attempt_from_packet(Ether(bytes(frame)), d)
    assert got is not None
    assert (got.kind, got.client_mac, got.server_port, got.proto) == \
        (Kind.DOT, "aa:bb:cc:00:11:22", 853, "tcp")
    v6 = Ether() / IPv6(src="fd99::2", dst="2001:db8::53") / UDP(dport=443)
    assert attempt_from_packet(Ether(bytes(v6)), d).kind is Kind.DOH
    assert attempt_from_packet(Ether() / IP(src="10.99.1.2", dst="10.99.2.2") / TCP(dport=80),
                               d) is None


def test_event_log_sink_writes_a_bypass_event(tmp_path) -> None:
    db = tmp_path / "filterd.db"
    events = EventLog(db, flush_interval=0.05).start()
    at = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    sink = EventLogSink(events, group_for=lambda ip, mac: "thcs")
    sink.record_bypass(BypassAttempt(at, "10.99.1.2", "aa:bb:cc:00:11:22", Kind.DOT,
                                     "10.99.2.2", 853, "tcp"))
    sink.record_bypass(BypassAttempt(at, "10.99.1.3", None, Kind.DNS, "10.99.2.2", 53, "udp"))
    events.close()
    rows = {r["client_ip"]: r for r in recent(db, limit=10)}
    dot = rows["10.99.1.2"]
    assert (dot["path"], dot["reason"], dot["action"], dot["group_id"]) == \
        ("bypass", "bypass", "block", "thcs")
    assert dot["qtype"] == "DOT" and "dot to 10.99.2.2:853" in dot["rule"]
    assert rows["10.99.1.3"]["action"] == Action.REWRITE.value


def test_unenforced_attempts_are_logged_as_allowed() -> None:
    sink = EventLogSink(events=None, enforced=False)
    decision, query = sink.decision(BypassAttempt(datetime.now(UTC), "10.99.1.2", None, Kind.DOH,
                                                  "10.99.2.3", 443, "tcp"))
    assert decision.action is Action.ALLOW and decision.group == "unknown"
    assert query.path == "bypass"


def recent(path, limit=100):
    """The newest events, through the state package's read query (as the admin page reads)."""
    db = _open(path)
    try:
        return search_events(db, limit=limit)
    finally:
        db.conn.close()
