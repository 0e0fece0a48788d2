"""A pure TLS ClientHello parser: enough to read the SNI (and ALPN) without decrypting.

The SNI relay reads the first bytes a client sends, and this module says either
"need more bytes", "here is the ClientHello", or "this is not a valid one" (which
the relay refuses: fail closed). Handles a ClientHello split over several TLS
records and records split over several reads. No I/O, no state between calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from filterd.errors import FilterdError

CONTENT_HANDSHAKE = 0x16
HANDSHAKE_CLIENT_HELLO = 0x01
EXT_SERVER_NAME = 0x0000
EXT_ALPN = 0x0010
MAX_HELLO = 64 * 1024  # bigger ClientHellos do not exist in practice; refuse them
MAX_RECORD = 16384 + 2048  # TLSPlaintext limit plus slack for odd stacks

_HOST_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


class ClientHelloError(FilterdError, ValueError):
    """The bytes are not a well-formed TLS ClientHello."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    sni: str | None  # lowercased, trailing dot removed; None when absent
    alpn: tuple[str, ...] = ()
    legacy_version: int = 0x0303
    size: int = 0  # bytes of records consumed (the relay forwards all of them anyway)

    def __post_init__(self) -> None:
        if self.sni is not None and not _HOST_RE.match(self.sni):
            raise ClientHelloError(f"invalid server name {self.sni!r}")


def looks_like_tls(first: bytes) -> bool:
    """True when the first byte(s) start a TLS handshake record (vs. plain HTTP)."""
    return bool(first) and first[0] == CONTENT_HANDSHAKE


def parse(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of `data`; None if more bytes are needed."""
    # Common case first: the whole ClientHello in the first record (no copies).
    if len(data) >= 9 and data[0] == CONTENT_HANDSHAKE and data[1] == 3:
        rlen = (data[3] << 8) | data[4]
        if data[5] == HANDSHAKE_CLIENT_HELLO and 0 < rlen <= MAX_RECORD:
            hlen = (data[6] << 16) | (data[7] << 8) | data[8]
            if 38 <= hlen <= rlen - 4 and len(data) >= 5 + rlen:
                return _parse_body(data[9 : 9 + hlen], 5 + rlen)
    handshake = bytearray()
    pos = 0
    needed: int | None = None
    while needed is None or len(handshake) < needed:
        if len(data) - pos < 5:
            return None
        ctype, major, length = (
            data[pos],
            data[pos + 1],
            int.from_bytes(data[pos + 3 : pos + 5], "big"),
        )
        if ctype != CONTENT_HANDSHAKE:
            raise ClientHelloError(f"record type {ctype:#x} is not a handshake")
        if major != 3:
            raise ClientHelloError(f"record version major {major} is not TLS")
        if length == 0 or length > MAX_RECORD:
            raise ClientHelloError(f"bad record length {length}")
        if len(data) - pos - 5 < length:
            # Partial record: we may still learn enough to reject early.
            handshake += data[pos + 5 :]
            _check_header(handshake)
            return None
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if needed is None and len(handshake) >= 4:
            needed = _check_header(handshake)
    return _parse_body(bytes(handshake[4:needed]), pos)


def _check_header(handshake: bytes | bytearray) -> int | None:
    if not handshake:
        return None
    if handshake[0] != HANDSHAKE_CLIENT_HELLO:
        raise ClientHelloError(f"handshake type {handshake[0]} is not ClientHello")
    if len(handshake) < 4:
        return None
    length = int.from_bytes(handshake[1:4], "big")
    if length > MAX_HELLO:
        raise ClientHelloError(f"ClientHello of {length} bytes is too large")
    if length < 38:
        raise ClientHelloError(f"ClientHello of {length} bytes is too short")
    return 4 + length


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ClientHelloError("truncated ClientHello")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, len_bytes: int) -> bytes:
        return self.take(self.uint(len_bytes))

    @property
    def left(self) -> int:
        return len(self.buf) - self.pos


def _parse_body(body: bytes, consumed: int) -> ClientHello:
    # Index arithmetic instead of a reader object: this runs once per TLS connection
    # on the relay's hot path (a browser's ClientHello has ~15 extensions).
    n = len(body)
    if n < 35:
        raise ClientHelloError("truncated ClientHello")
    version = (body[0] << 8) | body[1]
    p = 35 + body[34]  # random (32 bytes), then the legacy session id
    if p + 2 > n:
        raise ClientHelloError("truncated ClientHello")
    slen = (body[p] << 8) | body[p + 1]
    p += 2
    if p + slen > n:
        raise ClientHelloError("truncated ClientHello")
    if not slen or slen % 2:
        raise ClientHelloError("bad cipher suite list")
    p += slen
    if p >= n:
        raise ClientHelloError("truncated ClientHello")
    p += 1 + body[p]  # compression methods
    if p > n:
        raise ClientHelloError("truncated ClientHello")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    if p < n:
        if p + 2 > n:
            raise ClientHelloError("truncated ClientHello")
        end = p + 2 + ((body[p] << 8) | body[p + 1])
        p += 2
        if end > n:
            raise ClientHelloError("truncated ClientHello")
        seen: set[int] = set()
        while p < end:
            if p + 4 > end:
                raise ClientHelloError("truncated ClientHello")
            etype = (body[p] << 8) | body[p + 1]
            elen = (body[p + 2] << 8) | body[p + 3]
            p += 4
            if p + elen > end:
                raise ClientHelloError("truncated ClientHello")
            if etype in seen:
                raise ClientHelloError(f"duplicate extension {etype}")
            seen.add(etype)
            if etype == EXT_SERVER_NAME:
                sni = _server_name(body[p : p + elen])
            elif etype == EXT_ALPN:
                alpn = _alpn(body[p : p + elen])
            p += elen
    return ClientHello(sni=sni, alpn=alpn, legacy_version=version, size=consumed)


def _server_name(data: bytes) -> str | None:
    n = len(data)
    if n < 2:
        raise ClientHelloError("truncated ClientHello")
    end = 2 + ((data[0] << 8) | data[1])
    if end > n:
        raise ClientHelloError("truncated ClientHello")
    if end < n:
        raise ClientHelloError("trailing bytes in server_name")
    host: str | None = None
    p = 2
    while p < end:
        if p + 3 > end:
            raise ClientHelloError("truncated ClientHello")
        kind = data[p]
        vend = p + 3 + ((data[p + 1] << 8) | data[p + 2])
        if vend > end:
            raise ClientHelloError("truncated ClientHello")
        if kind == 0:
            if host is not None:
                raise ClientHelloError("two host names in server_name")
            try:
                text = data[p + 3 : vend].decode("ascii")
            except UnicodeDecodeError as exc:
                raise ClientHelloError("server name is not ASCII") from exc
            host = text.lower().rstrip(".")
            if not host:
                raise ClientHelloError("empty server name")
        p = vend
    return host


def _alpn(data: bytes) -> tuple[str, ...]:
    r = _Reader(data)
    protos = _Reader(r.vec(2))
    out = []
    while protos.left:
        out.append(protos.vec(1).decode("ascii", "replace"))
    return tuple(out)


def build(
    sni: str | None,
    *,
    alpn: tuple[str, ...] = (),
    record_size: int = 16384,
    session_id: bytes = b"",
    extra_extensions: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """Build a syntactically valid ClientHello (tests and benchmarks; not a real TLS stack)."""
    exts = b""
    if sni is not None:
        name = sni.encode("ascii")
        entry = b"\x00" + len(name).to_bytes(2, "big") + name
        exts += _ext(EXT_SERVER_NAME, len(entry).to_bytes(2, "big") + entry)
    if alpn:
        plist = b"".join(len(p).to_bytes(1, "big") + p.encode() for p in alpn)
        exts += _ext(EXT_ALPN, len(plist).to_bytes(2, "big") + plist)
    for etype, edata in extra_extensions:
        exts += _ext(etype, edata)
    body = (
        b"\x03\x03"
        + bytes(32)
        + len(session_id).to_bytes(1, "big")
        + session_id
        + b"\x00\x02\x13\x01"
        + b"\x01\x00"
        + len(exts).to_bytes(2, "big")
        + exts
    )
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    out = b""
    for i in range(0, len(hs), record_size):
        chunk = hs[i : i + record_size]
        out += b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
    return out


def _ext(etype: int, data: bytes) -> bytes:
    return etype.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
