"""DNS over TLS to an upstream (RFC 7858): one verified connection, reused and pipelined.

A `TlsChannel` stands where a UDP channel stands in upstream.py: attempts take an
ID with `new_id()`, register in `pending` and `send()` their query; the channel
frames it (RFC 1035 4.2.2 length prefix), writes it on the one connection it keeps
to the upstream, and hands each answer to the attempt waiting for its ID, in
whatever order the upstream answers (RFC 7766 pipelining). Timeouts and failover
stay with the attempt.

The certificate is verified against the system's trust store (or `ca_file`) and
must carry `tls_name` (or the upstream's IP address when none is given); a
connection that fails verification fails every query waiting on it, so the pool
marks the upstream down and the client gets SERVFAIL or the next upstream's
answer, never an unverified one. The reason is kept in `last_error` for status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import struct
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_LEN = struct.Struct("!H")
# How long an unused connection stays open (the upstream usually closes sooner).
IDLE_CLOSE = 30.0


class UpstreamTlsError(ConnectionError):
    """The TLS connection to an upstream failed (refused, certificate, closed)."""


def client_context(ca_file: Path | str | None = None, alpn: list[str] | None = None
                   ) -> ssl.SSLContext:
    """Verifying client context: the system store, or only `ca_file` when given."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not accepted: {exc.verify_message or exc.reason}"
    if isinstance(exc, TimeoutError):
        return "TLS connection timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class TlsChannel:
    """One upstream reached over TLS on port 853 (or as configured)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: tuple[str, int],
                 tls_name: str | None, context: ssl.SSLContext, timeout: float) -> None:
        self.loop = loop
        self.address = address
        self.tls_name = tls_name or address[0]
        self.context = context
        self.timeout = timeout
        self.pending: dict[int, Any] = {}
        self.closed = False
        self.sock = self   # the attempt calls chan.sock.send(query), as for UDP
        self.last_error = ""
        self.connections = 0   # connections opened so far (reuse shows as 1 for many queries)
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Task | None = None
        self._reader_task: asyncio.Task | None = None
        self._queue: list[bytes] = []
        self._sent: dict[int, bytes] = {}     # qid -> framed query, for one resend
        self._resent: set[int] = set()
        self._idle: asyncio.TimerHandle | None = None

    # -- what an attempt uses ----------------------------------------------------

    def new_id(self) -> int:
        for _ in range(100):
            qid = random.getrandbits(16)
            if qid not in self.pending:
                return qid
        from filterd.dns.upstream import UpstreamError

        raise UpstreamError("too many queries in flight")

    def send(self, msg: bytes) -> None:
        if self.closed:
            raise UpstreamTlsError("closed")
        frame = _LEN.pack(len(msg)) + msg
        sent = self._sent
        if len(sent) > 2 * len(self.pending) + 64:   # forget queries that timed out
            self._sent = sent = {q: f for q, f in sent.items() if q in self.pending}
        sent[(msg[0] << 8) | msg[1]] = frame
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame)
        else:
            self._queue.append(frame)
            if self._connecting is None:
                self._connecting = self.loop.create_task(self._connect())
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in (self._connecting, self._reader_task):
            if task is not None:
                task.cancel()
        if self._idle is not None:
            self._idle.cancel()
        self._drop_connection()
        self._fail_all(UpstreamTlsError("closed"))

    # -- the connection ----------------------------------------------------------

    async def _connect(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                self.address[0], self.address[1], ssl=self.context,
                server_hostname=self.tls_name, ssl_handshake_timeout=self.timeout),
                self.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._connecting = None
            why, self.last_error = self.last_error, describe(exc)
            if why != self.last_error:   # once per reason, not once per query while it lasts
                log.warning("DNS-over-TLS upstream %s:%d (%s): %s", *self.address, self.tls_name,
                            self.last_error)
            self._queue.clear()
            self._fail_all(UpstreamTlsError(self.last_error))
            return
        except asyncio.CancelledError:
            raise
        self._connecting = None
        self.connections += 1
        self.last_error = ""
        self._writer = writer
        for frame in self._queue:
            writer.write(frame)
        self._queue.clear()
        self._reader_task = self.loop.create_task(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        why: BaseException = UpstreamTlsError("connection closed by the upstream")
        try:
            while True:
                size = _LEN.unpack(await reader.readexactly(2))[0]
                data = await reader.readexactly(size)
                self._dispatch(data)
        except asyncio.IncompleteReadError:
            pass
        except (OSError, ssl.SSLError) as exc:
            why = UpstreamTlsError(describe(exc))
        except asyncio.CancelledError:
            return
        if self._writer is writer:
            self._drop_connection()
        self._lost(why)

    def _dispatch(self, data: bytes) -> None:
        if len(data) < 12 or not data[2] & 0x80:
            return
        qid = (data[0] << 8) | data[1]
        self._sent.pop(qid, None)
        self._resent.discard(qid)
        attempt = self.pending.get(qid)
        if attempt is None:
            return   # late (timed out) or never asked
        if data[12:12 + len(attempt.question)].lower() != attempt.question:
            return
        del self.pending[qid]
        attempt.guarded(attempt.answered, data)
        if not self.pending:
            self._arm_idle()

    def _lost(self, why: BaseException) -> None:
        """The connection ended: queries sent on it go once more on a new one (the
        upstream may close an idle connection just as we reuse it), then fail."""
        for qid in list(self._sent):
            if qid not in self.pending:
                del self._sent[qid]
        again = [q for q in self._sent if q not in self._resent]
        failed = [q for q in self._sent if q in self._resent]
        for qid in failed:
            del self._sent[qid]
            self._resent.discard(qid)
            attempt = self.pending.pop(qid, None)
            if attempt is not None:
                attempt.guarded(attempt.failed, why)
        if again and not self.closed:
            self._resent.update(again)
            frames = [self._sent[q] for q in again]
            if self._writer is not None and not self._writer.is_closing():
                for frame in frames:   # a newer connection is already up: use it
                    self._writer.write(frame)
                return
            self._queue.extend(frames)
            if self._connecting is None:
                self._connecting = self.loop.create_task(self._connect())

    def _drop_connection(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self.loop.call_later(IDLE_CLOSE, self._close_idle)

    def _close_idle(self) -> None:
        self._idle = None
        if not self.pending and self._writer is not None:
            if self._reader_task is not None:
                self._reader_task.cancel()
                self._reader_task = None
            self._drop_connection()

    def _fail_all(self, exc: BaseException) -> None:
        pending, self.pending = self.pending, {}
        self._sent.clear()
        self._resent.clear()
        for attempt in pending.values():
            attempt.guarded(attempt.failed, exc)
