"""Serving DNS over HTTPS (RFC 8484) to the school's devices: `/dns-query`, GET and POST.

Browsers' "secure DNS" pointed at the appliance (or told to use it by policy), and
any DoH client, get the same answers as over UDP: each query goes through the same
Resolver and policy, the client identified by its connecting address. HTTP/2 (ALPN
h2, what browsers use; streams answered as they complete) and HTTP/1.1 (keep-alive,
answers in request order) are both spoken.

    GET  /dns-query?dns=<base64url of the query, no padding>
    POST /dns-query   Content-Type: application/dns-message, body = the query

Answers are `200 application/dns-message` with `Cache-Control: max-age` = the
smallest TTL in the answer; a bad request gets 400, another path 404, another
method 405, another content type 415, an over-long body 413.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
import socket
import ssl
import struct
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from filterd.dns import wire
from filterd.dns.resolver import Resolver
from filterd.dns.server import _socket

log = logging.getLogger(__name__)

PATH = "/dns-query"
CONTENT_TYPE = "application/dns-message"
MAX_QUERY = 65535
MAX_HEADER = 16384
IDLE_TIMEOUT = 30.0
MAX_CONNECTIONS = 2000
_TTL = struct.Struct("!I")


class HttpError(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 415: "Unsupported Media Type",
            500: "Internal Server Error", 503: "Service Unavailable"}


def query_of(method: str, target: str, content_type: str | None, body: bytes) -> bytes:
    """The DNS query in a DoH request (RFC 8484 4.1), or HttpError."""
    parts = urlsplit(target)
    if parts.path != PATH:
        raise HttpError(404, f"only {PATH} is served")
    if method == "GET":
        values = parse_qs(parts.query).get("dns")
        if not values:
            raise HttpError(400, "missing dns= parameter")
        raw = values[0]
        if len(raw) > MAX_QUERY * 4 // 3 + 4:
            raise HttpError(413, "query too long")
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            raise HttpError(400, "dns= is not base64url") from None
    elif method == "POST":
        if (content_type or "").split(";")[0].strip().lower() != CONTENT_TYPE:
            raise HttpError(415, f"Content-Type must be {CONTENT_TYPE}")
        data = body
    else:
        raise HttpError(405, "GET or POST")
    if len(data) < 12:
        raise HttpError(400, "not a DNS message")
    return data


def max_age(answer: bytes) -> int:
    """The smallest TTL of the answer's records (RFC 8484 5.1), 0 if unreadable."""
    try:
        lay = wire.scan_response(answer)
    except wire.BadQuery:
        return 0
    ttls = [_TTL.unpack_from(answer, off)[0] for off in lay.ttl_offsets]
    return min(ttls) if ttls else 0


async def answer_for(resolver: Resolver, data: bytes, client: str) -> bytes | None:
    """The resolver's answer (as over TCP: no truncation, REFUSED when rate limited)."""
    res = resolver.handle(data, client, True)
    if inspect.isawaitable(res):
        res = await res
    return res  # type: ignore[return-value]


class _Connection:
    """One client connection: HTTP/2 or HTTP/1.1 as the TLS handshake chose."""

    count = 0

    def __init__(self, resolver: Resolver, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.resolver = resolver
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        ssl_obj = self.writer.get_extra_info("ssl_object")
        proto = ssl_obj.selected_alpn_protocol() if ssl_obj is not None else None
        try:
            if proto == "h2":
                await self._h2()
            else:
                await self._http11()
        except (ConnectionError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            for t in self.tasks:
                t.cancel()
            self.writer.close()

    async def _respond(self, method: str, target: str, ctype: str | None,
                       body: bytes) -> tuple[int, bytes, list[tuple[str, str]]]:
        try:
            query = query_of(method, target, ctype, body)
        except HttpError as exc:
            return exc.status, (str(exc) + "\n").encode(), [("content-type", "text/plain")]
        try:
            out = await answer_for(self.resolver, query, self.client)
        except Exception:
            log.exception("DoH query from %s failed", self.client)
            return 500, b"", []
        if out is None:   # never answered (e.g. a response sent as a query)
            return 400, b"not a DNS query\n", [("content-type", "text/plain")]
        return 200, out, [("content-type", CONTENT_TYPE),
                          ("cache-control", f"max-age={max_age(out)}")]

    # -- HTTP/1.1 ------------------------------------------------------------------

    async def _http11(self) -> None:
        reader, writer = self.reader, self.writer
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
            except asyncio.IncompleteReadError:
                return
            if len(head) > MAX_HEADER:
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ")
            except ValueError:
                writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"
                             b"connection: close\r\n\r\n")
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = headers.get("content-length", "0")
            if not length.isdigit() or "transfer-encoding" in headers:
                status, body, extra = 400, b"Content-Length required\n", []
                close = True
            elif int(length) > MAX_QUERY:
                status, body, extra = 413, b"query too long\n", []
                close = True
            else:
                data = await asyncio.wait_for(reader.readexactly(int(length)), IDLE_TIMEOUT)
                status, body, extra = await self._respond(method, target,
                                                          headers.get("content-type"), data)
                close = (headers.get("connection", "").lower() == "close"
                         or version == "HTTP/1.0")
            out = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
                   f"content-length: {len(body)}"]
            out += [f"{k}: {v}" for k, v in extra]
            if close:
                out.append("connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + body)
            await writer.drain()
            if close:
                return

    # -- HTTP/2 --------------------------------------------------------------------

    async def _h2(self) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
        conn.initiate_connection()
        self.writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[bytes, bytes], bytearray]] = {}
        self.unsent: dict[int, bytes] = {}
        self.conn = conn
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), IDLE_TIMEOUT * 2)
            if not data:
                return
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.writer.write(conn.data_to_send())
                return
            for ev in events:
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = (dict(ev.headers), bytearray())
                    if ev.stream_ended:
                        self._h2_request(ev.stream_id, streams.pop(ev.stream_id))
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    entry = streams.get(ev.stream_id)
                    if entry is not None:
                        entry[1].extend(ev.data)
                        if len(entry[1]) > MAX_QUERY:
                            streams.pop(ev.stream_id)
                            conn.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                elif isinstance(ev, h2.events.StreamEnded):
                    entry = streams.pop(ev.stream_id, None)
                    if entry is not None:
                        self._h2_request(ev.stream_id, entry)
                elif isinstance(ev, h2.events.StreamReset):
                    streams.pop(ev.stream_id, None)
                    self.unsent.pop(ev.stream_id, None)
                elif isinstance(ev, h2.events.WindowUpdated):
                    self._h2_flush()
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.writer.write(conn.data_to_send())
                    return
            self.writer.write(conn.data_to_send())

    def _h2_request(self, sid: int, entry: tuple[dict[bytes, bytes], bytearray]) -> None:
        headers, body = entry
        method = headers.get(b":method", b"").decode("latin-1")
        target = headers.get(b":path", b"").decode("latin-1")
        ctype = headers.get(b"content-type")
        task = asyncio.get_running_loop().create_task(self._h2_answer(
            sid, method, target, ctype.decode("latin-1") if ctype else None, bytes(body)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _h2_answer(self, sid: int, method: str, target: str, ctype: str | None,
                         body: bytes) -> None:
        status, out, extra = await self._respond(method, target, ctype, body)
        conn = self.conn
        try:
            conn.send_headers(sid, [(b":status", str(status).encode()),
                                    (b"content-length", str(len(out)).encode()),
                                    *((k.encode(), v.encode()) for k, v in extra)])
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self.unsent[sid] = out
        self._h2_flush()
        self.writer.write(conn.data_to_send())

    def _h2_flush(self) -> None:
        """Send what flow control allows of each answer; the rest on WINDOW_UPDATE."""
        conn = self.conn
        for sid in list(self.unsent):
            data = self.unsent[sid]
            try:
                while data:
                    room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                    if room <= 0:
                        break
                    conn.send_data(sid, data[:room])
                    data = data[room:]
                if data:
                    self.unsent[sid] = data
                    continue
                conn.end_stream(sid)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass
            del self.unsent[sid]


async def serve_https(resolver: Resolver, listen: Sequence[tuple[str, int]],
                      context: ssl.SSLContext, *, reuse_port: bool = False
                      ) -> list[tuple[asyncio.AbstractServer, tuple[str, int]]]:
    """A DoH listener on every address (`context` should offer ALPN h2 and http/1.1)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if _Connection.count >= MAX_CONNECTIONS:
            writer.close()
            return
        _Connection.count += 1
        try:
            await _Connection(resolver, reader, writer).run()
        finally:
            _Connection.count -= 1

    out = []
    for host, port in listen:
        sock = _socket(host, port, socket.SOCK_STREAM, reuse_port)
        sock.listen(1024)
        server = await asyncio.start_server(handle, sock=sock, ssl=context,
                                            ssl_handshake_timeout=10, limit=MAX_HEADER + 1024)
        out.append((server, (host, sock.getsockname()[1])))
    return out


__all__ = ["CONTENT_TYPE", "PATH", "HttpError", "max_age", "query_of", "serve_https"]
