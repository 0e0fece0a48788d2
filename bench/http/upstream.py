"""A fast-enough upstream for the proxy benchmark: TLS on :443 and plain HTTP on :80.

`/small` answers 100 bytes (keep-alive); `/big?mb=N` streams N MiB. uvloop, one process.
Usage: python upstream.py CERT KEY HOST
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import uvloop

SMALL = b"x" * 100
CHUNK = b"y" * (256 * 1024)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            close = b"connection: close" in head.lower()
            if b"/big" in target:
                mb = int(target.rsplit(b"=", 1)[1])
                size = mb * 1024 * 1024
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                for _ in range(size // len(CHUNK)):
                    writer.write(CHUNK)
                    await writer.drain()
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                             + (b"Connection: close\r\n" if close else b"") + b"\r\n" + SMALL)
                await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main() -> None:
    cert, key, host = sys.argv[1], sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    await asyncio.start_server(handle, host, 443, ssl=ctx, backlog=1024)
    await asyncio.start_server(handle, host, 80, backlog=1024)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
