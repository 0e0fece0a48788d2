"""DNS over HTTPS to an upstream (RFC 8484): POSTs multiplexed on one HTTP/2 connection.

Stands where a UDP channel stands in upstream.py, like upstream_tls.TlsChannel:
attempts register by DNS ID and `send()` their query. Each query is one HTTP/2
stream (`POST <path>`, `application/dns-message`) on the connection the channel
keeps open, so many queries are in flight at once and none waits for another. The
query goes out with ID 0 (RFC 8484 4.1, cache-friendly) and the answer gets back
the attempt's ID before it is handed over. Certificate and name are verified as
for DNS over TLS; only HTTP/2 is spoken (ALPN h2), as every public DoH service does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from filterd.dns.upstream_tls import IDLE_CLOSE, UpstreamTlsError, describe

log = logging.getLogger(__name__)

MAX_ANSWER = 65535


class HttpsChannel:
    """One upstream reached over HTTPS (HTTP/2)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: tuple[str, int],
                 tls_name: str | None, path: str, context: ssl.SSLContext,
                 timeout: float) -> None:
        self.loop = loop
        self.address = address
        self.tls_name = tls_name or address[0]
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        self.authority = (tls_name or host) + ("" if address[1] == 443 else f":{address[1]}")
        self.path = path
        self.context = context
        self.timeout = timeout
        self.pending: dict[int, Any] = {}
        self.closed = False
        self.sock = self
        self.last_error = ""
        self.connections = 0
        self._conn: h2.connection.H2Connection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Task | None = None
        self._reader_task: asyncio.Task | None = None
        self._queue: list[tuple[int, bytes]] = []          # (qid, query) not yet on a stream
        self._streams: dict[int, tuple[int, bytearray]] = {}  # stream -> (qid, body so far)
        self._status: dict[int, int] = {}
        self._idle: asyncio.TimerHandle | None = None
        self._pump_soon = False

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
        qid = (msg[0] << 8) | msg[1]
        self._queue.append((qid, b"\0\0" + msg[2:]))
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._conn is not None:
            # After this call returns the attempt registers in `pending`; the queries of
            # one loop iteration then go out in one write.
            if not self._pump_soon:
                self._pump_soon = True
                self.loop.call_soon(self._pump)
        elif self._connecting is None:
            self._connecting = self.loop.create_task(self._connect())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in (self._connecting, self._reader_task):
            if task is not None:
                task.cancel()
        if self._idle is not None:
            self._idle.cancel()
        self._drop()
        self._fail_all(UpstreamTlsError("closed"))

    # -- the connection ----------------------------------------------------------

    async def _connect(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                self.address[0], self.address[1], ssl=self.context,
                server_hostname=self.tls_name, ssl_handshake_timeout=self.timeout),
                self.timeout)
            ssl_obj = writer.get_extra_info("ssl_object")
            if ssl_obj is None or ssl_obj.selected_alpn_protocol() != "h2":
                writer.close()
                raise UpstreamTlsError("the upstream does not speak HTTP/2 (ALPN h2)")
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._connecting = None
            why, self.last_error = self.last_error, describe(exc)
            if why != self.last_error:   # once per reason, not once per query while it lasts
                log.warning("DNS-over-HTTPS upstream %s:%d (%s): %s", *self.address,
                            self.tls_name, self.last_error)
            self._queue.clear()
            self._fail_all(UpstreamTlsError(self.last_error))
            return
        self._connecting = None
        self.connections += 1
        self.last_error = ""
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_inbound_headers=False))
        conn.initiate_connection()
        self._conn, self._writer = conn, writer
        self._pump()
        self._reader_task = self.loop.create_task(self._read(reader, conn))

    def _pump(self) -> None:
        """Open a stream for each waiting query, as far as the server's limit allows."""
        self._pump_soon = False
        conn, writer = self._conn, self._writer
        if conn is None or writer is None:
            return
        limit = conn.remote_settings.max_concurrent_streams
        while self._queue and conn.open_outbound_streams < limit:
            qid, body = self._queue.pop(0)
            if qid not in self.pending:
                continue   # timed out before it could go
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [
                (b":method", b"POST"), (b":scheme", b"https"),
                (b":authority", self.authority.encode()), (b":path", self.path.encode()),
                (b"content-type", b"application/dns-message"),
                (b"accept", b"application/dns-message"),
                (b"content-length", str(len(body)).encode())])
            conn.send_data(sid, body, end_stream=True)
            self._streams[sid] = (qid, bytearray())
        data = conn.data_to_send()
        if data:
            writer.write(data)

    async def _read(self, reader: asyncio.StreamReader, conn: h2.connection.H2Connection
                    ) -> None:
        why: BaseException = UpstreamTlsError("connection closed by the upstream")
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    why = UpstreamTlsError(f"HTTP/2 error: {exc}")
                    break
                ended = False
                for ev in events:
                    if self._event(conn, ev):
                        ended = True
                if ended:
                    why = UpstreamTlsError("the upstream ended the HTTP/2 connection")
                    break
                self._pump()
        except (OSError, ssl.SSLError) as exc:
            why = UpstreamTlsError(describe(exc))
        except asyncio.CancelledError:
            return
        if self._conn is conn:
            self._drop()
            # Streams opened on it fail over; queued queries go on a new connection.
            streams, self._streams = self._streams, {}
            for qid, _ in streams.values():
                attempt = self.pending.pop(qid, None)
                if attempt is not None:
                    attempt.guarded(attempt.failed, why)
            if self._queue and not self.closed and self._connecting is None:
                self._connecting = self.loop.create_task(self._connect())

    def _event(self, conn: h2.connection.H2Connection, ev: Any) -> bool:
        if isinstance(ev, h2.events.ResponseReceived):
            for k, v in ev.headers:
                if k == b":status":
                    self._status[ev.stream_id] = int(v)
        elif isinstance(ev, h2.events.DataReceived):
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            entry = self._streams.get(ev.stream_id)
            if entry is not None:
                entry[1].extend(ev.data)
                if len(entry[1]) > MAX_ANSWER:
                    conn.reset_stream(ev.stream_id)
                    self._finish(ev.stream_id, None, "answer too large")
        elif isinstance(ev, h2.events.StreamEnded):
            entry = self._streams.get(ev.stream_id)
            status = self._status.get(ev.stream_id, 0)
            if entry is not None:
                if status == 200:
                    self._finish(ev.stream_id, bytes(entry[1]), "")
                else:
                    self._finish(ev.stream_id, None, f"HTTP status {status}")
        elif isinstance(ev, h2.events.StreamReset):
            self._finish(ev.stream_id, None, f"stream reset ({ev.error_code})")
        elif isinstance(ev, h2.events.ConnectionTerminated):
            return True
        return False

    def _finish(self, sid: int, data: bytes | None, why: str) -> None:
        self._status.pop(sid, None)
        entry = self._streams.pop(sid, None)
        if entry is None:
            return
        qid = entry[0]
        attempt = self.pending.get(qid)
        if attempt is None:
            return
        if data is None or len(data) < 12 or not data[2] & 0x80 or (
                data[12:12 + len(attempt.question)].lower() != attempt.question):
            del self.pending[qid]
            attempt.guarded(attempt.failed,
                            UpstreamTlsError(why or "not a DNS answer to the query"))
        else:
            del self.pending[qid]
            attempt.guarded(attempt.answered, bytes((qid >> 8, qid & 0xFF)) + data[2:])
        if not self.pending:
            if self._idle is not None:
                self._idle.cancel()
            self._idle = self.loop.call_later(IDLE_CLOSE, self._close_idle)

    def _close_idle(self) -> None:
        self._idle = None
        if not self.pending and self._conn is not None:
            if self._reader_task is not None:
                self._reader_task.cancel()
                self._reader_task = None
            self._drop()

    def _drop(self) -> None:
        conn, writer = self._conn, self._writer
        self._conn = self._writer = None
        if writer is not None:
            if conn is not None:
                try:
                    conn.close_connection()
                    writer.write(conn.data_to_send())
                except Exception:
                    pass
            writer.close()

    def _fail_all(self, exc: BaseException) -> None:
        pending, self.pending = self.pending, {}
        self._streams.clear()
        for attempt in pending.values():
            attempt.guarded(attempt.failed, exc)
