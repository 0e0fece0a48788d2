"""`filterd doctor`: is this appliance healthy? Each check says what is wrong in plain words
and what to do about it.

Checks: the daemon answers on its ports, the upstream resolvers answer, the clock
is synchronised (schedules such as class hours depend on it), the lists are fresh,
there is disk space, the school CA is valid, the education office is reachable,
the gateway rules are in force. Every probe has a short timeout; `run_checks`
never raises for a failing check.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status.value.upper():4} {self.name}: {self.detail}"
        if self.fix and self.status in (Status.WARN, Status.FAIL):
            line += f"\n     fix: {self.fix}"
        return line


# ---- probes -----------------------------------------------------------------------------

def dns_probe(host: str, port: int, timeout: float = 2.0, name: str = "example.com") -> float:
    """Send one A query over UDP; return the round-trip seconds. Any answer counts."""
    qid = int.from_bytes(os.urandom(2), "big")
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    target = "127.0.0.1" if host == "0.0.0.0" else ("::1" if host == "::" else host)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        start = time.monotonic()
        sock.sendto(packet, (target, port))
        while True:
            data, _ = sock.recvfrom(4096)
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                return time.monotonic() - start


def tcp_probe(host: str, port: int, timeout: float = 2.0) -> None:
    target = "127.0.0.1" if host == "0.0.0.0" else ("::1" if host == "::" else host)
    with socket.create_connection((target, port), timeout=timeout):
        pass


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>: only `status` is read; the padding covers the rest.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("_rest", ctypes.c_byte * 200)]


TIME_ERROR = 5


def kernel_clock_synced() -> bool | None:
    """adjtimex(2) read-only: False when the kernel says the clock is unsynchronised."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    tx = _Timex()
    state = libc.adjtimex(ctypes.byref(tx))
    if state < 0:
        return None
    return state != TIME_ERROR


Runner = Callable[[list[str]], "tuple[int, str]"]


def _run(argv: list[str]) -> tuple[int, str]:
    if not shutil.which(argv[0]):
        return 127, ""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 1, ""
    return proc.returncode, proc.stdout


def clock_status(run: Runner = _run, kernel: Callable[[], bool | None] = kernel_clock_synced
                 ) -> tuple[bool | None, str]:
    """(synchronised?, how we know), trying timedatectl, chrony, then the kernel."""
    code, out = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if code == 0 and out.strip() in ("yes", "no"):
        return out.strip() == "yes", "timedatectl"
    code, out = run(["chronyc", "-n", "tracking"])
    if code == 0 and "Leap status" in out:
        return "Leap status     : Normal" in out or "Leap status : Normal" in out, "chrony"
    synced = kernel()
    return synced, "kernel (adjtimex)"


# ---- checks -----------------------------------------------------------------------------

def check_daemon(config: Any) -> list[Check]:
    out = []
    for host, port in config.dns.listen:
        try:
            rtt = dns_probe(host, port)
        except OSError as exc:
            out.append(Check(f"DNS {host}:{port}", Status.FAIL, f"no answer ({exc})",
                             "start filterd: sudo systemctl start filterd; then read "
                             "journalctl -u filterd -e for why it stopped"))
        else:
            out.append(Check(f"DNS {host}:{port}", Status.OK, f"answers in {rtt * 1000:.0f} ms"))
    encrypted = [("DNS over TLS", ep) for ep in getattr(config.dns, "tls_listen", ())]
    encrypted += [("DNS over HTTPS", ep) for ep in getattr(config.dns, "https_listen", ())]
    for label, (host, port) in (("block page", config.http.block_page_listen),
                                ("admin page", config.admin.listen), *encrypted):
        try:
            tcp_probe(host, port)
        except OSError as exc:
            unit = "filterd-admin" if label == "admin page" else "filterd"
            out.append(Check(f"{label} {host}:{port}", Status.FAIL, f"not listening ({exc})",
                             f"sudo systemctl start {unit}; journalctl -u {unit} -e"))
        else:
            out.append(Check(f"{label} {host}:{port}", Status.OK, "listening"))
    return out


def encrypted_probe(spec: Any, timeout: float, ca_file: Any = None) -> float:
    """Ask an encrypted (DoT/DoH) upstream for the root's NS, certificate verified; the
    round trip in seconds, or OSError saying why (e.g. the certificate was refused)."""
    import asyncio
    import time

    from filterd.dns import wire
    from filterd.dns.upstream import UpstreamError, UpstreamPool

    q = wire.parse_query(wire.HEADER.pack(0, wire.RD, 1, 0, 0, 0) + b"\0\0\x02\0\x01")

    async def go() -> float:
        pool = UpstreamPool([spec], timeout=timeout, ca_file=str(ca_file) if ca_file else None)
        started = time.monotonic()
        try:
            await pool.resolve(q)
        except UpstreamError:
            raise OSError(pool.status()[0].get("error") or "no answer") from None
        finally:
            pool.close()
        return time.monotonic() - started

    return asyncio.run(go())


def check_upstreams(config: Any) -> list[Check]:
    out = []
    for spec in config.dns.upstreams:
        host, port = spec
        try:
            if getattr(spec, "transport", "udp") != "udp":
                host = spec.url
                rtt = encrypted_probe(spec, config.dns.upstream_timeout,
                                      getattr(config.dns, "upstream_ca_file", None))
            else:
                rtt = dns_probe(host, port, timeout=config.dns.upstream_timeout)
        except OSError as exc:
            label = host if "://" in host else f"{host}:{port}"
            out.append(Check(f"upstream {label}", Status.FAIL, f"no answer ({exc})",
                             "check the Internet connection and that the school's router lets "
                             "this appliance reach the resolver on port 53; or pick other "
                             "dns.upstreams in filterd.yaml"))
        else:
            label = host if "://" in host else f"{host}:{port}"
            out.append(Check(f"upstream {label}", Status.OK,
                             f"answers in {rtt * 1000:.0f} ms"))
    return out


def check_clock(run: Runner = _run, kernel: Callable[[], bool | None] = kernel_clock_synced
                ) -> Check:
    synced, how = clock_status(run, kernel)
    if synced is None:
        return Check("clock", Status.WARN, "cannot tell whether the clock is synchronised",
                     "install chrony or enable systemd-timesyncd (timedatectl set-ntp true)")
    if not synced:
        return Check("clock", Status.FAIL, f"not synchronised ({how}); class-hour schedules "
                     "would switch at the wrong time",
                     "sudo timedatectl set-ntp true (a Raspberry Pi has no battery clock: it "
                     "needs NTP after every boot); check that UDP port 123 is allowed out")
    return Check("clock", Status.OK, f"synchronised ({how})")


def check_fastpath() -> Check:
    """Which DNS fast path this installation loads (the daemon's metrics say what it runs)."""
    from filterd.dns import fastpath

    if fastpath.IMPLEMENTATION == "native":
        return Check("DNS fast path", Status.OK, f"native ({fastpath.MODULE}, compiled)")
    detail = f"pure-Python twin ({fastpath.REASON}): same answers, about twice the CPU"
    if os.environ.get("FILTERD_PUREPYTHON", "") not in ("", "0"):
        return Check("DNS fast path", Status.OK, detail)
    return Check("DNS fast path", Status.WARN, detail,
                 "sudo apt-get install gcc libc6-dev python3-dev, then install filterd again "
                 "(sudo scripts/install-gateway); docs/dns.md \"Which fast path runs\"")


def check_lists(config: Any, now: float | None = None, warn_days: float = 3,
                fail_days: float = 14) -> Check:
    current = Path(config.data_dir) / "lists" / "current"
    try:
        built = current.stat().st_mtime
    except OSError:
        return Check("lists", Status.FAIL, f"no compiled list index at {current}",
                     "sudo systemctl start filterd-lists (or: filterd lists update)")
    age_days = ((now or time.time()) - built) / 86400
    text = f"updated {age_days:.1f} days ago"
    if age_days > fail_days:
        return Check("lists", Status.FAIL, text, "sudo systemctl start filterd-lists; "
                     "journalctl -u filterd-lists -e shows why the daily update failed")
    if age_days > warn_days:
        return Check("lists", Status.WARN, text, "check the daily update: systemctl status "
                     "filterd-lists.timer; journalctl -u filterd-lists -e")
    return Check("lists", Status.OK, text)


def check_disk(config: Any, usage: Callable[[str], Any] = shutil.disk_usage,
               min_free_bytes: int = 500 * 2**20, min_free_ratio: float = 0.05) -> Check:
    path = Path(config.data_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    du = usage(str(path))
    free_mb = du.free / 2**20
    text = f"{free_mb:.0f} MB free on {path} ({du.free / du.total:.0%})"
    if du.free < min_free_bytes or du.free / du.total < min_free_ratio:
        return Check("disk", Status.FAIL, text, "free space: lower events.retention_days in "
                     "filterd.yaml, remove old files, or use a larger SD card")
    return Check("disk", Status.OK, text)


def check_ca(config: Any, now: datetime | None = None) -> Check:
    pem = Path(config.http.intercept_ca_dir) / "filterd-ca.pem"
    if not pem.exists():
        return Check("school CA", Status.WARN, f"no CA yet at {pem}",
                     "it is created when filterd first starts; needed only for groups whose "
                     "HTTPS is intercepted (see docs/ca.md)")
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(pem.read_bytes())
    except Exception as exc:
        return Check("school CA", Status.FAIL, f"{pem} is not a readable certificate ({exc})",
                     "move the CA directory aside and restart filterd to create a new one; "
                     "devices must then trust the new CA")
    expires = cert.not_valid_after_utc
    days = (expires - (now or datetime.now(UTC))).days
    if days < 0:
        return Check("school CA", Status.FAIL, f"expired on {expires:%Y-%m-%d}",
                     "create a new CA (move the CA directory aside, restart filterd) and "
                     "install it on the devices again (docs/ca.md)")
    if days < 60:
        return Check("school CA", Status.WARN, f"expires in {days} days",
                     "plan a new CA and its installation on the devices (docs/ca.md)")
    return Check("school CA", Status.OK, f"valid until {expires:%Y-%m-%d}")


def check_office(config: Any, timeout: float = 5.0) -> Check:
    url = config.sync.office_url
    if not url:
        return Check("education office", Status.SKIP, "no sync.office_url configured")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code  # it answered: reachable (the upload itself is authenticated)
    except (urllib.error.URLError, OSError) as exc:
        return Check("education office", Status.FAIL, f"{url} not reachable ({exc})",
                     "check the Internet connection and the address given by the office; "
                     "reports wait in the outbox and are sent when it is back")
    return Check("education office", Status.OK, f"{url} answers (HTTP {code})")


def check_sync(config: Any, now: datetime | None = None, warn_days: float = 2) -> Check:
    if not config.sync.office_url:
        return Check("daily upload", Status.SKIP, "no sync.office_url configured")
    import json

    state_file = Path(config.data_dir) / "sync" / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    last = state.get("last_success_at")
    error = state.get("last_error")
    fix = ("run it now: sudo systemctl start filterd-sync; journalctl -u filterd-sync -e "
           "shows the office's answer")
    if not last:
        return Check("daily upload", Status.WARN, "the office has not acknowledged any upload yet"
                     + (f" (last error: {error})" if error else ""), fix)
    try:
        age = ((now or datetime.now(UTC)) - datetime.fromisoformat(last)).total_seconds() / 86400
    except (TypeError, ValueError):
        return Check("daily upload", Status.WARN, f"unreadable sync state {state_file}", fix)
    text = f"last acknowledged {age:.1f} days ago"
    if age > warn_days:
        return Check("daily upload", Status.WARN, text + (f"; last error: {error}" if error
                                                          else ""), fix)
    return Check("daily upload", Status.OK, text)


def check_gateway_rules(euid: int | None = None) -> Check:
    from filterd.gateway import apply as nft

    # Without root `nft list` fails as if the table were absent: say so, not "not loaded".
    if (os.geteuid() if euid is None else euid) != 0:
        return Check("gateway rules", Status.SKIP, "not checked: reading the firewall needs "
                     "root (sudo filterd doctor ...)")
    try:
        nft._nft()
        installed = nft.installed()
    except nft.GatewayError as exc:
        return Check("gateway rules", Status.WARN, str(exc),
                     "sudo apt-get install nftables, then filterd gateway apply (docs/network.md)")
    except Exception as exc:
        return Check("gateway rules", Status.SKIP, f"cannot read the firewall ({exc})")
    if not installed:
        return Check("gateway rules", Status.WARN, "table inet filterd is not loaded: devices "
                     "can use another DNS server", "filterd gateway apply --design router "
                     "--lan <interface> --save /etc/filterd/gateway.nft (docs/network.md); "
                     "ignore in the dns-only design")
    return Check("gateway rules", Status.OK, "table inet filterd is loaded")


def run_checks(config: Any, *, skip: Iterable[str] = ()) -> list[Check]:
    skip = set(skip)
    checks: list[Check] = []
    steps: list[tuple[str, Callable[[], list[Check] | Check]]] = [
        ("ports", lambda: check_daemon(config)),
        ("upstreams", lambda: check_upstreams(config)),
        ("clock", check_clock),
        ("fastpath", check_fastpath),
        ("lists", lambda: check_lists(config)),
        ("disk", lambda: check_disk(config)),
        ("ca", lambda: check_ca(config)),
        ("office", lambda: check_office(config)),
        ("sync", lambda: check_sync(config)),
        ("rules", check_gateway_rules),
    ]
    for name, step in steps:
        if name in skip:
            continue
        try:
            got = step()
        except Exception as exc:  # a broken probe is itself a finding, not a crash
            got = Check(name, Status.FAIL, f"check failed: {exc!r}",
                        f"run again with --skip {name} to see the other checks, and report "
                        "this message to whoever maintains the appliance")
        checks.extend(got if isinstance(got, list) else [got])
    return checks


CHECK_NAMES = ("ports", "upstreams", "clock", "fastpath", "lists", "disk", "ca", "office",
               "sync", "rules")
