"""Just enough HTTP/1.1 for the block page server and the plain-HTTP proxy path.

Strict and bounded: a request head larger than `MAX_HEAD`, too many headers, bad
request lines or ambiguous framing (Content-Length with Transfer-Encoding, two
different Content-Lengths) are refused with a status code instead of guessed at.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from filterd.errors import FilterdError

MAX_HEAD = 32 * 1024
MAX_HEADERS = 100
STREAM_LIMIT = 64 * 1024  # asyncio reader limit; above MAX_HEAD so we answer 431, not crash
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,252})$")


class HttpError(FilterdError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status} {message}")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def keep_alive(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def content_length(self) -> int:
        """Body length; chunked request bodies are refused (no client of ours needs them)."""
        if self.header("transfer-encoding") is not None:
            raise HttpError(411, "chunked request bodies are not supported")
        values = {v.strip() for k, v in self.headers if k.lower() == "content-length"}
        if not values:
            return 0
        if len(values) > 1 or not next(iter(values)).isdigit():
            raise HttpError(400, "bad Content-Length")
        return int(next(iter(values)))


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """Read one request head (through the blank line); None on a clean EOF before any byte."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "connection closed inside the request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError(431, "request head too large") from exc
    if len(raw) > MAX_HEAD:
        raise HttpError(431, "request head too large")
    return raw


def parse_head(raw: bytes) -> Request:
    lines = raw[:-4].split(b"\r\n")
    while lines and not lines[0]:  # tolerate stray CRLF before a request (RFC 9112 2.2)
        lines.pop(0)
    if not lines:
        raise HttpError(400, "empty request")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "bad request line")
    method, target, version = parts
    if not _TOKEN.match(method) or not target or version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(400, "bad request line")
    if any(c <= 0x20 or c == 0x7F for c in target):
        raise HttpError(400, "bad request target")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "too many headers")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, "bad header line")
        if b"\r" in value or b"\n" in value or b"\x00" in value:
            raise HttpError(400, "bad header value")
        headers.append((name.decode("ascii"), value.strip().decode("latin-1")))
    return Request(
        method.decode("ascii"),
        target.decode("ascii", "strict"),
        version.decode("ascii"),
        tuple(headers),
    )


def normalize_host(value: str | None) -> str | None:
    """The name part of a Host header or authority, lowercased; None if it is not a sane name."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):  # IPv6 literal
        end = value.find("]")
        return value[1:end] if end > 1 else None
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    host = host.rstrip(".")
    return host if _HOST.match(host) else None


def split_absolute(target: str) -> tuple[str, str, int, str]:
    """Absolute-form target -> (scheme, host, port, path-and-query)."""
    parts = urlsplit(target)
    if parts.scheme not in ("http",) or not parts.hostname:
        raise HttpError(400, "only absolute http:// URLs can be proxied")
    host = normalize_host(parts.hostname)
    if host is None:
        raise HttpError(400, "bad host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise HttpError(400, "bad port") from exc
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, host, port, path


def response(
    status: int,
    body: bytes = b"",
    *,
    content_type: str = "text/html; charset=utf-8",
    headers: list[tuple[str, str]] | None = None,
    keep_alive: bool = False,
) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Status"
    head = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    if body or content_type:
        head.append(f"Content-Type: {content_type}")
    head += [f"{k}: {v}" for k, v in headers or ()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def error_response(err: HttpError) -> bytes:
    known = err.status in HTTPStatus._value2member_map_
    text = f"{err.status} {HTTPStatus(err.status).phrase if known else ''}\n"
    return response(err.status, text.encode(), content_type="text/plain; charset=utf-8")
