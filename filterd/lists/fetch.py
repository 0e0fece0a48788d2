"""Download one list: timeouts, a size cap, conditional requests, truncation checks.

Returns the bytes (or "not modified"); every failure is a ListError that says why,
so the updater can keep the last good data and report it.
"""

from __future__ import annotations

import gzip
import http.client
import io
import ipaddress
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from filterd import __version__
from filterd.errors import ListError

CHUNK = 1 << 16
USER_AGENT = f"filterd/{__version__} (school content filter list updater)"


@dataclass(frozen=True)
class Fetched:
    """A download: `data` is None when the server said 304 Not Modified."""

    data: bytes | None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.data is None


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None,
          timeout: float = 120.0, max_bytes: int = 300 * 1024 * 1024,
          source: str | None = None) -> Fetched:
    """GET `url`. `etag` / `last_modified` from the previous download make it conditional."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT,
                                                   "Accept-Encoding": "identity"})
    if etag:
        request.add_header("If-None-Match", etag)
    if last_modified:
        request.add_header("If-Modified-Since", last_modified)
    handlers: list[urllib.request.BaseHandler] = []
    if _is_loopback(url):
        handlers.append(urllib.request.ProxyHandler({}))  # a local mirror never goes via a proxy
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            if expected is not None and expected > max_bytes:
                raise ListError.coded("fetch.too_big_announced", source=source, size=expected,
                                      limit=max_bytes)
            chunks: list[bytes] = []
            size = 0
            while True:
                try:
                    chunk = response.read(CHUNK)
                except http.client.IncompleteRead as exc:
                    raise ListError.coded("fetch.closed", source=source,
                                          got=size + len(exc.partial),
                                          expected=expected) from exc
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise ListError.coded("fetch.too_big", source=source, limit=max_bytes)
                chunks.append(chunk)
            if expected is not None and size != expected:
                raise ListError.coded("fetch.truncated", source=source, got=size,
                                      expected=expected)
            body = b"".join(chunks)
            if response.headers.get("Content-Encoding", "identity").lower() in ("gzip", "x-gzip"):
                body = _gunzip(body, max_bytes, source)   # sent compressed despite "identity"
            return Fetched(body, response.headers.get("ETag"),
                           response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(None, exc.headers.get("ETag") or etag,
                           exc.headers.get("Last-Modified") or last_modified)
        raise ListError.coded("fetch.http", source=source, status=exc.code, why=exc.reason,
                              url=url) from exc
    except urllib.error.URLError as exc:
        raise ListError.coded("fetch.unreachable", source=source, url=url,
                              error=str(exc.reason)) from exc
    except TimeoutError as exc:
        raise ListError.coded("fetch.timeout", source=source, seconds=f"{timeout:g}",
                              url=url) from exc
    except (http.client.HTTPException, OSError) as exc:
        raise ListError.coded("fetch.failed", source=source,
                              error=f"{type(exc).__name__}: {exc}") from exc


def _gunzip(body: bytes, max_bytes: int, source: str | None) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as gz:
            out = gz.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ListError.coded("fetch.gzip", source=source, error=str(exc)) from exc
    if len(out) > max_bytes:
        raise ListError.coded("fetch.too_big", source=source, limit=max_bytes)
    return out


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
