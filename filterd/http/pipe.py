"""Byte-for-byte splicing at the transport level: no tasks, no stream buffers per chunk.

After the relay has decided, each side's transport gets a `_Pipe` protocol that
writes whatever arrives straight into the other transport. Back-pressure: when one
transport's write buffer fills, reading from the other pauses until it drains.
Half-close is forwarded (EOF one way keeps the other way open); the splice ends
when both ways saw EOF or either connection is lost.
"""

from __future__ import annotations

import asyncio


class _Pipe(asyncio.Protocol):
    __slots__ = ("own", "peer", "state")

    def __init__(self, state: _State) -> None:
        self.state = state
        self.own: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.own = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        peer = self.peer
        if peer is not None and not peer.is_closing() and peer.can_write_eof():
            peer.write_eof()
        self.state.eofs += 1
        if self.state.eofs >= 2:
            self.state.finish()
            return False
        return True  # keep our side open: the other way may still carry data

    def pause_writing(self) -> None:   # our transport is full: stop reading the other side
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and not self.peer.is_closing():
            self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.finish()


class _State:
    __slots__ = ("done", "eofs", "finished", "replaced", "transports")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.eofs = 0
        self.finished = False
        self.transports: list[asyncio.Transport] = []
        self.replaced: list[asyncio.BaseProtocol] = []

    def finish(self) -> None:
        # Not `done.done()`: a cancelled splice (shutdown) cancels `done` too, and must
        # still close both sides and release the stream protocols.
        if self.finished:
            return
        self.finished = True
        for t in self.transports:
            if not t.is_closing():
                t.close()
        # The stream protocols we took the transports from never see connection_lost
        # otherwise, and StreamWriter.wait_closed() would wait forever.
        for proto in self.replaced:
            proto.connection_lost(None)
        if not self.done.done():
            self.done.set_result(None)

    async def wait(self) -> None:
        try:
            await self.done
        finally:
            self.finish()  # cancelled (shutdown): close both sides now


def _adopt(transport: asyncio.Transport, state: _State) -> _Pipe:
    pipe = _Pipe(state)
    pipe.own = transport
    state.replaced.append(transport.get_protocol())
    transport.set_protocol(pipe)
    state.transports.append(transport)
    return pipe


def _leftover(reader: asyncio.StreamReader) -> bytes:
    # Bytes the stream already read but nobody consumed (CPython/uvloop StreamReader buffer).
    buf = getattr(reader, "_buffer", b"")
    data = bytes(buf)
    if data:
        buf.clear()
    return data


class Upstream:
    """An upstream connection opened for a splice; `run` splices the client with it.

    Opening and running are apart so the caller can open under its own timeout and
    splice outside it (a splice lasts as long as the client wants).
    """

    __slots__ = ("pipe", "state", "transport")

    def __init__(self, transport: asyncio.Transport, pipe: _Pipe, state: _State) -> None:
        self.transport = transport
        self.pipe = pipe
        self.state = state

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  first: bytes) -> None:
        try:
            _link(reader, writer, self.transport, self.pipe, first, self.state)
        except BaseException:
            self.transport.close()
            raise
        await self.state.wait()

    async def run_transport(self, client: asyncio.Transport, first: bytes, *,
                            client_eof: bool = False) -> None:
        """Splice a bare client transport (the relay's fast path, no streams).

        The client's current protocol sees connection_lost when the splice ends.
        """
        state = self.state
        try:
            client_pipe = _adopt(client, state)
            if self.transport not in state.transports:
                state.transports.append(self.transport)
            client_pipe.peer = self.transport
            self.pipe.peer = client
            self.pipe.own = self.transport
            if first:
                self.transport.write(first)
            if client_eof:
                client_pipe.eof_received()
            client.resume_reading()
        except BaseException:
            self.transport.close()
            raise
        await state.wait()

    def close(self) -> None:
        self.transport.close()


async def open_upstream(host: str, port: int) -> Upstream:
    loop = asyncio.get_running_loop()
    state = _State(loop)
    up_pipe = _Pipe(state)
    up, _ = await loop.create_connection(lambda: up_pipe, host, port)
    return Upstream(up, up_pipe, state)


async def splice_to(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes,
                    host: str, port: int, *, connect_timeout: float) -> None:
    """Connect to host:port, send `first`, then splice the client with it until both close."""
    async with asyncio.timeout(connect_timeout):
        upstream = await open_upstream(host, port)
    await upstream.run(reader, writer, first)


async def splice_streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         ureader: asyncio.StreamReader, uwriter: asyncio.StreamWriter,
                         first: bytes) -> None:
    """Splice two already-open stream pairs (e.g. after a CONNECT to mitmproxy)."""
    state = _State(asyncio.get_running_loop())
    up = uwriter.transport
    up_pipe = _adopt(up, state)
    pending = _leftover(ureader)
    _link(reader, writer, up, up_pipe, first, state)
    if pending:
        writer.transport.write(pending)
    up.resume_reading()
    await state.wait()


def _link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: asyncio.Transport,
          up_pipe: _Pipe, first: bytes, state: _State) -> None:
    client = writer.transport
    client_pipe = _adopt(client, state)
    if up not in state.transports:
        state.transports.append(up)
    client_pipe.peer = up
    up_pipe.peer = client
    up_pipe.own = up
    data = first + _leftover(reader)
    if data:
        up.write(data)
    if reader.at_eof():   # the client already half-closed while we were deciding
        client_pipe.eof_received()
    client.resume_reading()
