"""Run inside the gateway namespace of test_transparent.py: upstream servers + the relay.

Usage: python transparent_gateway.py PKI_DIR DATA_DIR UPSTREAM_IP PROXY_PORT
Prints "ready" once everything listens; runs until killed.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import EchoHandler, FakeEngine

from filterd.http.eventsink import MemorySink
from filterd.http.service import HttpService, HttpSettings


def main() -> None:
    pki, data, upstream_ip = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    port = int(sys.argv[4])
    plain = ThreadingHTTPServer((upstream_ip, 80), EchoHandler)
    tls = ThreadingHTTPServer((upstream_ip, 443), EchoHandler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki / "upstream.pem", pki / "upstream.key")
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    for srv in (plain, tls):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    sink = MemorySink()

    async def run() -> None:
        settings = HttpSettings(data_dir=data, mode="transparent",
                                proxy_listen=("0.0.0.0", port), blockpage_listen=("127.0.0.1", 0))
        await HttpService(settings, FakeEngine, sink).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    import uvloop  # as the daemon runs: uvloop's transports and sockets

    uvloop.run(run())


if __name__ == "__main__":
    main()
