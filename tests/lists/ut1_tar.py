"""Build UT1-layout tarballs for tests: `<category>/domains`, `domains.N` pieces, urls, usage."""

from __future__ import annotations

import io
import itertools
import tarfile


def ut1_tarball(category: str, files: dict[str, bytes], *, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{prefix}{category}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def split_bytes(data: bytes, cuts: list[int]) -> dict[str, bytes]:
    """Byte-split `data` at `cuts` into `domains.0`, `domains.1`, ... like UT1 does."""
    bounds = [0, *sorted(set(cuts)), len(data)]
    return {f"domains.{i}": data[a:b] for i, (a, b) in enumerate(itertools.pairwise(bounds))}
