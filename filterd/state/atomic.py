"""The one atomic file write: readers see the old file or the new one, never half of one.

A temp file in the same directory is written and fsynced, renamed over the target,
then the directory is fsynced so the rename itself survives a power cut (an SD card
on a Pi loses power more often than a server does). Every file the processes share
(policies, overrides.json, state files, reports, keys, the reload outcome) is written
through here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "create_exclusive", "fsync_dir"]


def fsync_dir(path: str | Path) -> None:
    """Make a rename or create in `path` durable (ignored where the OS refuses)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp(path: Path, raw: bytes, mode: int, durable: bool) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: str | Path, data: str | bytes, *, mode: int = 0o644,
                 keep_previous: bool = False, durable: bool = True) -> None:
    """Replace `path` with `data` (str is written as UTF-8).

    mode: the new file's permissions (0o600 for secrets). keep_previous: copy the
    file being replaced to `<name>.prev` first (policy files: one step of undo).
    durable=False skips the fsyncs, for files rewritten every few seconds whose loss
    in a power cut costs nothing (metrics snapshots); the rename stays atomic.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = _temp(path, raw, mode, durable)
    try:
        if keep_previous and path.exists():
            shutil.copy2(path, path.with_name(path.name + ".prev"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def create_exclusive(path: str | Path, data: str | bytes, *, mode: int = 0o600) -> bool:
    """Create `path` with `data` unless it exists; True if this call created it.

    Complete or absent, never half written, and when two processes race exactly one
    wins (the file is linked into place, which fails if the name is taken). For
    secrets made on first start.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = _temp(path, raw, mode, True)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True
