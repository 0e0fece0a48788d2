"""UT1 category tarballs (http://dsi.ut-capitole.fr/blacklists/download/<category>.tar.gz).

A tarball holds `<category>/domains` (domain and subdomains, squidGuard semantics),
maybe byte-split into `domains.N` pieces (a piece may end mid-line, so the pieces
are joined BEFORE parsing), `urls` (`host/path` prefixes for the HTTP proxy),
`expressions` (URL regexes) and `usage` (`black`: block list, `white`: allow list).
A broken gzip or tar stream, or a tarball without a `domains` file, is a ListError:
the updater then keeps the last good data for the source.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zlib
from pathlib import PurePosixPath

from filterd.errors import ListError
from filterd.lists.model import ParseResult
from filterd.lists.parsers import domains as plain
from filterd.lists.parsers._lines import Collector, CollectorFactory, Window, text_lines

MAX_UNPACKED = 2 * 1024 ** 3   # a decompression bomb stops here
BAD_URL = "bad_url"
BAD_EXPRESSION = "bad_expression"

_PIECE = re.compile(r"domains\.(\d+)|urls\.(\d+)")


def parse(data: bytes, *, category: str | None = None, source: str | None = None,
          max_unpacked: int = MAX_UNPACKED,
          collector: CollectorFactory = Collector) -> ParseResult:
    files = _read_members(data, category, source, max_unpacked)
    if "domains" not in files:
        raise ListError(f"no {category or '<category>'}/domains in the tarball", source=source)
    c = collector(exact=False)
    plain.feed(files.pop("domains"), c)   # the big member goes as soon as it is read
    for line in text_lines(files.pop("urls", b"")):
        entry = _normalize_url(line)
        if entry is None:
            if line.strip() and not line.lstrip().startswith("#"):
                c.reject(BAD_URL)
        else:
            c.add_url(entry)
    for line in text_lines(files.pop("expressions", b"")):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            re.compile(line)
        except re.error:
            c.reject(BAD_EXPRESSION)
            continue
        c.add_expression(line)
    words = set(files.get("usage", b"").decode("utf-8", "replace").split())
    usage = "white" if "white" in words and "black" not in words else "black"
    return c.result(usage)


def _read_members(data: bytes, category: str | None, source: str | None,
                  max_unpacked: int) -> dict[str, bytes | Window]:
    """{'domains': joined bytes, 'urls': ..., 'expressions': ..., 'usage': ...} of one category."""
    pieces: dict[str, list[tuple[int, bytes | Window]]] = {}
    dirs: set[str] = set()
    total = 0
    try:
        if data[:2] == b"\x1f\x8b":
            # Unpack the gzip layer whole first: only reading to its end checks the CRC
            # and length trailer, which is what catches a download cut short.
            # Read in steps into one growing buffer: gz.read(max_unpacked + 1) would ask
            # for a 2 GiB buffer up front, and a list of pieces joined would be two copies.
            unpacked = io.BytesIO()
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                while chunk := gz.read(1 << 20):
                    unpacked.write(chunk)
                    if unpacked.tell() > max_unpacked:
                        raise ListError(f"tarball unpacks to more than {max_unpacked} bytes",
                                        source=source)
            data = unpacked.getvalue()   # the buffer itself, no copy
            del unpacked
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            # An uncompressed tar read from `data` itself (a gzip layer was unpacked above;
            # bz2 or xz would be decompressed by tarfile, and offsets be theirs, not data's).
            in_place = type(tar.fileobj) is io.BytesIO
            for m in members:
                path = PurePosixPath(m.name)
                if path.name in ("domains", "urls", "expressions", "usage") or \
                        _PIECE.fullmatch(path.name):
                    dirs.add(path.parent.name)
            if category is None or category not in dirs:
                if len(dirs) != 1:
                    raise ListError(f"tarball holds categories {sorted(dirs)}, "
                                    f"expected {category!r}", source=source)
                category = next(iter(dirs))
            for m in members:
                path = PurePosixPath(m.name)
                if path.parent.name != category:
                    continue
                piece = _PIECE.fullmatch(path.name)
                if piece and piece[1]:
                    kind, order = "domains", int(piece[1])
                elif piece:
                    kind, order = "urls", int(piece[2])
                elif path.name in ("domains", "urls", "expressions", "usage"):
                    kind, order = path.name, -1
                else:
                    continue
                total += m.size
                if total > max_unpacked:
                    raise ListError(f"tarball unpacks to more than {max_unpacked} bytes",
                                    source=source)
                if kind == "domains" and order == -1 and in_place and not m.issparse():
                    # The one big member, read in place in the unpacked tar (no copy).
                    if m.offset_data + m.size > len(data):
                        raise ListError(f"{m.name}: truncated in the tarball", source=source)
                    pieces.setdefault(kind, []).append(
                        (order, Window(data, m.offset_data, m.offset_data + m.size)))
                    continue
                f = tar.extractfile(m)
                if f is None:
                    continue
                content = f.read()
                if len(content) != m.size:
                    raise ListError(f"{m.name}: truncated in the tarball", source=source)
                pieces.setdefault(kind, []).append((order, content))
    except ListError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ListError(f"broken tarball ({type(exc).__name__}: {exc})", source=source) from exc
    # Byte-split pieces are joined in order before any line is read: a piece may
    # end in the middle of a name.
    return {kind: parts[0][1] if len(parts) == 1 and isinstance(parts[0][1], Window) else
            b"".join(bytes(content) for _, content in sorted(parts, key=lambda p: p[0]))
            for kind, parts in pieces.items()}


def _normalize_url(line: str) -> str | None:
    """A UT1 `urls` entry: `host/path` with the host lowercased (paths are case-sensitive)."""
    line = line.strip()
    if not line or line.startswith("#") or " " in line:
        return None
    if "://" in line:
        line = line.split("://", 1)[1]
    host, sep, path = line.partition("/")
    host = host.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if not host or not sep or not path:
        return None
    return f"{host}/{path}"
