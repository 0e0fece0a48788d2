"""The SNI relay's connection helpers: reading a ClientHello, the names and addresses of a
connection, and the original destination of a redirected one (SO_ORIGINAL_DST)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct

from filterd.http.clienthello import MAX_HELLO, ClientHello, ClientHelloError, parse
from filterd.http.decider import is_ip
from filterd.http.http11 import (
    HttpError,
    normalize_host,
)

log = logging.getLogger(__name__)

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IP6T_SO_ORIGINAL_DST = 80  # linux/netfilter_ipv6/ip6_tables.h
TLS_ALERT_ACCESS_DENIED = b"\x15\x03\x01\x00\x02\x02\x31"  # fatal alert 49
CHUNK = 65536


# -- helpers -------------------------------------------------------------------------------


async def _read_hello(reader: asyncio.StreamReader, buf: bytearray) -> ClientHello:
    while True:
        # Reparse only once the first record is complete: byte-by-byte costs O(n), not O(n^2).
        if len(buf) >= 5 and len(buf) < 5 + int.from_bytes(buf[3:5], "big") and buf[0] == 0x16:
            pass
        else:
            hello = parse(bytes(buf))
            if hello is not None:
                return hello
        if len(buf) > MAX_HELLO + 1024:
            raise ClientHelloError("ClientHello too large")
        chunk = await reader.read(CHUNK)
        if not chunk:
            raise ClientHelloError("closed before the ClientHello ended")
        buf += chunk


def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def _names(connect_host: str | None, hello: ClientHello) -> list[str]:
    names: list[str] = []
    if hello.sni:
        names.append(hello.sni)
    if connect_host and connect_host not in names and not (is_ip(connect_host) and names):
        names.append(connect_host)
    return names


def _authority(target: str) -> tuple[str, int]:
    host_part, sep, port_s = target.rpartition(":")
    if not sep or not port_s.isdigit() or not (0 < int(port_s) < 65536):
        raise HttpError(400, "CONNECT needs host:port")
    host = normalize_host(host_part.strip("[]") if host_part.startswith("[") else host_part)
    if host is None:
        raise HttpError(400, "bad CONNECT host")
    return host, int(port_s)


def _peer_ip(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    ip = peer[0] if peer else "0.0.0.0"
    if ip.startswith("::ffff:"):
        ip = ip[7:]
    return ip


def original_dst(sock: socket.socket | None) -> tuple[str, int] | None:
    """The address a redirected connection was really for (netfilter's SO_ORIGINAL_DST)."""
    if sock is None:
        return None
    try:
        if sock.family == socket.AF_INET6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
            port = struct.unpack_from("!H", raw, 2)[0]
            return str(ipaddress.IPv6Address(raw[8:24])), port
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return None
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port


