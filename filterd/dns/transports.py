"""Which channel reaches an encrypted upstream: DNS over TLS or DNS over HTTPS."""

from __future__ import annotations

import asyncio
import ssl
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=8)
def _context(ca_file: str | None, alpn: tuple[str, ...]) -> ssl.SSLContext:
    from filterd.dns.upstream_tls import client_context

    return client_context(ca_file, list(alpn))


def encrypted_channel(spec: Any, timeout: float, ca_file: str | None) -> Any:
    """A channel for `spec` (a config.UpstreamSpec with transport "tls" or "https")."""
    loop = asyncio.get_running_loop()
    address = (spec[0], int(spec[1]))
    if spec.transport == "tls":
        from filterd.dns.upstream_tls import TlsChannel

        return TlsChannel(loop, address, spec.tls_name, _context(ca_file, ("dot",)), timeout)
    if spec.transport == "https":
        from filterd.dns.upstream_https import HttpsChannel

        return HttpsChannel(loop, address, spec.tls_name, spec.path,
                            _context(ca_file, ("h2",)), timeout)
    raise ValueError(f"unknown upstream transport {spec.transport!r}")
