"""The SNI relay's plain HTTP forwarding: request heads in origin form, responses relayed
with their framing (length, chunked, to EOF), hop-by-hop headers dropped."""

from __future__ import annotations

import asyncio
import logging

from filterd.http.blockapp import Response
from filterd.http.blockpage import choose_lang
from filterd.http.http11 import (
    HttpError,
    Request,
    response,
    split_absolute,
)

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
CHUNK = 65536


async def _copy_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    while n > 0:
        data = await reader.read(min(n, CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        writer.write(data)
        n -= len(data)
        await writer.drain()


def _request_head(req: Request, path: str) -> bytes:
    drop = HOP_BY_HOP | {
        v.strip().lower() for k, v in req.headers if k.lower() == "connection" for v in v.split(",")
    }
    lines = [f"{req.method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in req.headers if k.lower() not in drop]
    if req.header("host") is None:
        lines.append(f"Host: {split_absolute(req.target)[1]}")
    lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _origin_form(req: Request, path: str) -> Request:
    return Request(req.method, path, req.version, req.headers)


async def _send(writer: asyncio.StreamWriter, resp: Response, *, keep_alive: bool) -> None:
    writer.write(
        response(
            resp.status,
            resp.body,
            content_type=resp.content_type,
            headers=resp.all_headers(),
            keep_alive=keep_alive,
        )
    )
    await writer.drain()


async def relay_response(
    ur: asyncio.StreamReader, cw: asyncio.StreamWriter, req: Request
) -> tuple[bool, bool]:
    """Relay one response; returns (upstream reusable, client connection may continue)."""
    while True:
        try:
            raw = await ur.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise HttpError(502, "upstream response head too large") from exc
        except asyncio.IncompleteReadError as exc:
            raise HttpError(502, "upstream closed") from exc
        lines = raw[:-4].split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
            raise HttpError(502, "bad upstream status line")
        code = int(status[1])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise HttpError(502, "bad upstream header")
            headers.append((name.decode("latin-1").strip(), value.strip().decode("latin-1")))
        if 100 <= code < 200 and code != 101:
            cw.write(raw)
            continue
        break
    lower = [(k.lower(), v) for k, v in headers]
    conn = ",".join(v for k, v in lower if k == "connection").lower()
    te = ",".join(v for k, v in lower if k == "transfer-encoding").lower()
    lengths = {v for k, v in lower if k == "content-length"}
    up_keep = "close" not in conn and status[0] == b"HTTP/1.1"
    if req.method == "HEAD" or code in (204, 304) or code < 200:
        framing, length = "none", 0
    elif "chunked" in te:
        framing, length = "chunked", 0
    elif len(lengths) == 1 and next(iter(lengths)).isdigit():
        framing, length = "length", int(next(iter(lengths)))
    elif lengths:
        raise HttpError(502, "conflicting upstream Content-Length")
    else:
        framing, length, up_keep = "close", 0, False
    client_keep = framing != "close"
    drop = {"connection", "keep-alive", "proxy-connection"} | {t.strip() for t in conn.split(",")}
    out = [lines[0].decode("latin-1")]
    out += [f"{k}: {v}" for k, v in headers if k.lower() not in drop]
    out.append(f"Connection: {'keep-alive' if client_keep else 'close'}")
    cw.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
    if framing == "length":
        await _copy_exact(ur, cw, length)
    elif framing == "chunked":
        await _copy_chunked(ur, cw)
    elif framing == "close":
        await _pipe_to_eof(ur, cw)
    await cw.drain()
    return up_keep, client_keep


async def _copy_chunked(ur: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
    while True:
        line = await ur.readuntil(b"\r\n")
        cw.write(line)
        size_s = line.split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError as exc:
            raise HttpError(502, "bad chunk size") from exc
        if size == 0:
            while True:  # trailers, then the final blank line
                trailer = await ur.readuntil(b"\r\n")
                cw.write(trailer)
                if trailer == b"\r\n":
                    return
        await _copy_exact(ur, cw, size + 2)


async def _pipe_to_eof(ur: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
    while data := await ur.read(CHUNK):
        cw.write(data)
        await cw.drain()


def _lang(req: Request) -> str:
    return choose_lang(None, req.header("accept-language"))
