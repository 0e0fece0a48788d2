"""Serving DNS over TLS (RFC 7858) to the school's devices: the TCP server behind TLS.

Android's "Private DNS: automatic" tries DoT on port 853 of the resolver DHCP gave
it; answering there keeps those devices filtered (same Resolver, same policy, the
client identified by its address as for UDP) and their queries private on the
Wi-Fi. Framing, pipelining and limits are server.TcpServer's; only the idle time is
longer, as RFC 7858 3.4 asks, since a TLS connection costs a handshake.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

from filterd.dns.resolver import Resolver
from filterd.dns.server import TcpServer, _socket

DOT_IDLE_TIMEOUT = 30.0


def server_context(cert_file: str | Path, key_file: str | Path,
                   alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """TLS 1.2+ server context for the certificate chain and key (PEM files)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


async def serve_tls(resolver: Resolver, listen: Sequence[tuple[str, int]],
                    context: ssl.SSLContext, *, reuse_port: bool = False,
                    idle_timeout: float = DOT_IDLE_TIMEOUT
                    ) -> list[tuple[asyncio.AbstractServer, tuple[str, int]]]:
    """A DoT listener on every address; returns each server with the address it got."""
    loop = asyncio.get_running_loop()
    out = []
    for host, port in listen:
        sock = _socket(host, port, socket.SOCK_STREAM, reuse_port)
        sock.listen(1024)
        server = await loop.create_server(lambda: TcpServer(resolver, idle_timeout), sock=sock,
                                          ssl=context, ssl_handshake_timeout=10)
        out.append((server, (host, sock.getsockname()[1])))
    return out
