"""The block page server: answers every HTTP request DNS steered to the appliance.

It re-asks the engine for this client and Host (so the page shows the same
Decision the DNS answer came from) and renders it; it also serves /ca, the PAC
and WPAD files and takes review requests. Plain asyncio, bounded reads, timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from filterd.http.blockapp import MAX_FORM, BlockApp
from filterd.http.http11 import (
    STREAM_LIMIT,
    HttpError,
    error_response,
    parse_head,
    read_head,
    response,
)

log = logging.getLogger(__name__)


class BlockPageServer:
    def __init__(
        self, app: BlockApp, *, head_timeout: float = 15.0, max_requests: int = 100
    ) -> None:
        self.app = app
        self.head_timeout = head_timeout
        self.max_requests = max_requests
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> asyncio.Server:
        self.server = await asyncio.start_server(
            self._conn, host, port, limit=STREAM_LIMIT, reuse_address=True
        )
        return self.server

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        client_ip = peer[0].removeprefix("::ffff:") if peer else "0.0.0.0"
        try:
            for _ in range(self.max_requests):
                try:
                    async with asyncio.timeout(self.head_timeout):
                        head = await read_head(reader)
                    if head is None:
                        return
                    req = parse_head(head)
                    length = req.content_length()
                    if length > MAX_FORM:
                        raise HttpError(413, "body too large")
                    async with asyncio.timeout(self.head_timeout):
                        body = await reader.readexactly(length) if length else b""
                except HttpError as err:
                    writer.write(error_response(err))
                    await writer.drain()
                    return
                resp = await asyncio.to_thread(
                    self.app.respond, req, client_ip=client_ip, body=body
                )
                keep = req.keep_alive
                writer.write(
                    response(
                        resp.status,
                        b"" if req.method == "HEAD" else resp.body,
                        content_type=resp.content_type,
                        headers=resp.all_headers(),
                        keep_alive=keep,
                    )
                )
                await writer.drain()
                if not keep:
                    return
        except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("block page request failed")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
