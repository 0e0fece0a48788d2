"""A tiny list mirror on loopback for updater tests: ETags, 304s, truncation, corruption."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Mirror:
    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)   # send a Content-Length, then half the body
    status: dict[str, int] = field(default_factory=dict)
    gzipped: set[str] = field(default_factory=set)   # sent with Content-Encoding: gzip
    # send nothing ("" -> before the headers) or half the body ("body"), then hold the
    # connection open until the mirror closes: a stalled server
    stall: dict[str, str] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, If-None-Match)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"


@contextmanager
def list_mirror() -> Iterator[Mirror]:
    mirror = Mirror()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.lstrip("/")
            mirror.requests.append((path, self.headers.get("If-None-Match")))
            if path in mirror.status:
                self.send_error(mirror.status[path])
                return
            body = mirror.files.get(path)
            if mirror.stall.get(path) == "":
                mirror.released.wait(30)
                return
            if body is None:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            if path in mirror.gzipped:
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            if mirror.stall.get(path) == "body":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                mirror.released.wait(30)
                return
            if path in mirror.truncate:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield mirror
    finally:
        mirror.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
