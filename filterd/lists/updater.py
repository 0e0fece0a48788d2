"""`filterd lists update`: fetch every source, parse, compile, swap in atomically.

Under `<data_dir>/lists/`:
- `sources/<name>.data`  the last good download of each source (raw bytes)
- `state.json`           per source: ETag / Last-Modified, when it was last fetched and
                         checked, its entry count, reject counts and the last error
- `index-<version>/`     compiled indexes; `current` is a symlink to the live one
- `update.lock`          one update at a time
- `.scratch-*/`          sorted runs of the update running now (names on disk, not in
                         memory); removed when it ends, or by the next one

A source whose download fails, is truncated or corrupt, does not parse, is empty,
or shrank by more than its `max_shrink` keeps its last good data (the index keeps
serving it) and the error is recorded in the state file and reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filterd.errors import FilterdError, IndexFormatError, ListError
from filterd.lists.fetch import Fetched, fetch
from filterd.lists.index import CompileSource, ListIndex, compile_index, swap_current
from filterd.lists.model import SourceInfo
from filterd.lists.parsers import spool
from filterd.lists.seed import SEED_DIR, seed_sources
from filterd.lists.sources import Source
from filterd.lists.spool import SpooledResult
from filterd.state.atomic import atomic_write

log = logging.getLogger(__name__)

STATE = "state.json"
UPDATED = "updated"
NOT_MODIFIED = "not_modified"
FAILED = "failed"


@dataclass
class SourceState:
    """What the updater remembers about one source between runs (state.json)."""

    etag: str | None = None
    last_modified: str | None = None
    fetched: float | None = None     # when the data in use was downloaded
    checked: float | None = None     # last attempt, successful or not
    count: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    usage: str = "black"
    version: str = ""                # sha256 prefix of the data in use
    error: str | None = None         # the last attempt's error, None when it succeeded
    error_at: float | None = None
    error_code: str | None = None    # the error's message code and parameters, so a page
    error_params: dict[str, Any] = field(default_factory=dict)   # shows it in its language

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourceState:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Outcome:
    """What happened to one source in one update."""

    name: str
    status: str                      # updated | not_modified | failed
    count: int
    error: str | None = None


@dataclass(frozen=True)
class UpdateReport:
    outcomes: tuple[Outcome, ...]
    index_version: str | None
    compiled: bool

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == FAILED)


Fetcher = Callable[..., Fetched]


class Updater:
    """Keeps `<data_dir>/lists` up to date with `sources`."""

    def __init__(self, data_dir: str | os.PathLike[str], sources: Iterable[Source], *,
                 seed_dir: Path | None = SEED_DIR, fetcher: Fetcher = fetch,
                 clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(data_dir) / "lists"
        self.sources = tuple(sources)
        self.seed_dir = seed_dir
        self._fetch = fetcher
        self._now = clock

    # -- state ---------------------------------------------------------------------

    def load_state(self) -> dict[str, SourceState]:
        try:
            raw = json.loads((self.dir / STATE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.dir / STATE, exc)
            return {}
        return {name: SourceState.from_dict(d) for name, d in raw.get("sources", {}).items()}

    def _save_state(self, state: Mapping[str, SourceState]) -> None:
        body = {"sources": {name: asdict(s) for name, s in sorted(state.items())}}
        atomic_write(self.dir / STATE, json.dumps(body, indent=1, sort_keys=True).encode())

    def data_path(self, name: str) -> Path:
        return self.dir / "sources" / f"{name}.data"

    # -- update --------------------------------------------------------------------

    def update(self, only: Iterable[str] | None = None, *, force: bool = False) -> UpdateReport:
        """Fetch the enabled sources (or those named in `only`), then compile if anything changed.

        `force` recompiles even when nothing changed and accepts a suspicious shrink.
        """
        wanted = set(only) if only is not None else None
        by_name = {s.name: s for s in self.sources}
        if wanted is not None:
            unknown = wanted - set(by_name)
            if unknown:
                raise ListError.coded("lists.unknown_sources", names=", ".join(sorted(unknown)))
            disabled = sorted(n for n in wanted if not by_name[n].enabled)
            if disabled:
                raise ListError.coded("lists.disabled_sources", names=", ".join(disabled))
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            state = self.load_state()
            outcomes: list[Outcome] = []
            changed = False
            for source in self.sources:
                if not source.enabled or (wanted is not None and source.name not in wanted):
                    continue
                st = state.setdefault(source.name, SourceState())
                outcome, result = self._update_one(source, st, force=force)
                outcomes.append(outcome)
                changed = changed or result is not None
                del result   # parsed again, one source at a time, when compiling (memory)
                self._save_state(state)
            need = force or changed or not self._current_ok()
            version = None
            if need:
                version = self._compile(state)
            else:
                with contextlib.suppress(FilterdError):
                    version = ListIndex.open(self.dir / "current").version
            return UpdateReport(tuple(outcomes), version, need)

    def import_file(self, name: str, path: str | os.PathLike[str], *,
                    force: bool = False) -> UpdateReport:
        """Use a local copy of source `name` (e.g. a UT1 tarball brought on a USB stick).

        Checked exactly like a download (parse, emptiness, suspicious shrink); on success
        it becomes the source's kept data and the index is recompiled.
        """
        source = {s.name: s for s in self.sources}.get(name)
        if source is None:
            raise ListError.coded("lists.unknown_sources", names=name)
        try:
            box = [Path(path).read_bytes()]
        except OSError as exc:
            raise ListError.coded("lists.unreadable", source=name, file_path=str(path),
                                  error=str(exc.strerror)) from exc

        def local(url: str, **_: object) -> Fetched:
            return Fetched(box.pop())   # not kept here: the compile runs without the file

        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            state = self.load_state()
            st = state.setdefault(name, SourceState())
            outcome, result = Updater(self.dir.parent, (source,), seed_dir=None, fetcher=local,
                                      clock=self._now)._update_one(source, st, force=force)
            if result is not None:
                st.etag = st.last_modified = None   # the next download must not be conditional
            self._save_state(state)
            version = self._compile(state) if result is not None else None
            return UpdateReport((outcome,), version, result is not None)

    def compile(self) -> str:
        """Recompile from the last good downloads (and the seed lists) without fetching."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            return self._compile(self.load_state())

    def _update_one(self, source: Source, st: SourceState, *,
                    force: bool) -> tuple[Outcome, SpooledResult | None]:
        now = self._now()
        st.checked = now
        have_data = self.data_path(source.name).is_file()
        try:
            got = self._fetch(source.url, etag=st.etag if have_data else None,
                              last_modified=st.last_modified if have_data else None,
                              timeout=source.timeout, max_bytes=source.max_bytes,
                              source=source.name)
            if got.not_modified:
                st.error = st.error_at = st.error_code = None
                return Outcome(source.name, NOT_MODIFIED, st.count), None
            assert got.data is not None
            # Parsed into sorted runs (the names never held in memory), then dropped: the
            # compile parses the kept copy again, one source at a time.
            with self._scratch() as scratch:
                result = spool(source.format, got.data, scratch, exact=source.exact,
                               category=source.ut1_category, source=source.name)
                result.discard()
            if result.count == 0:
                raise ListError.coded("lists.empty_download", source=source.name,
                                      rejected=result.rejected)
            floor = st.count * (1 - source.max_shrink)
            if st.count and result.count < floor and not force:
                raise ListError.coded("lists.shrunk", source=source.name, old=st.count,
                                      new=result.count, share=f"{source.max_shrink:.0%}",
                                      name=source.name)
            atomic_write(self.data_path(source.name), got.data)
        except ListError as exc:
            st.error = str(exc)
            st.error_code = getattr(exc, "code", None)
            st.error_params = dict(getattr(exc, "params", {}) or {})
            st.error_at = now
            log.warning("list %s: %s", source.name, exc)
            return Outcome(source.name, FAILED, st.count, st.error), None
        st.etag, st.last_modified = got.etag, got.last_modified
        st.fetched = now
        st.count = result.count
        st.rejects = dict(result.rejects)
        st.usage = result.usage
        st.version = hashlib.sha256(got.data).hexdigest()[:12]
        st.error = st.error_at = st.error_code = None
        return Outcome(source.name, UPDATED, result.count), result

    def _compile(self, state: Mapping[str, SourceState]) -> str:
        # A generator: each source is parsed from its kept data only when the compiler
        # reaches it, into sorted runs on the data disk (never all names in memory).
        with self._scratch() as scratch:
            built = compile_index(self._compile_inputs(state, scratch), self.dir)
        swap_current(self.dir, built)
        return ListIndex.open(self.dir / "current").version

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[Path]:
        """A scratch directory for sorted runs, in the lists directory (the data disk, not
        /tmp, which may be RAM on a Pi); removed afterwards, whatever happened."""
        for stale in self.dir.glob(".scratch-*"):   # left by a killed update (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix=".scratch-", dir=self.dir))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _compile_inputs(self, state: Mapping[str, SourceState],
                        scratch: Path) -> Iterator[CompileSource]:
        if self.seed_dir is not None:
            yield from seed_sources(self.seed_dir)
        for source in self.sources:
            if not source.enabled:
                continue
            st = state.get(source.name) or SourceState()   # a lost state file loses no data
            path = self.data_path(source.name)
            if not path.is_file():
                continue
            try:
                result = spool(source.format, path.read_bytes(), scratch, exact=source.exact,
                               category=source.ut1_category, source=source.name)
            except ListError as exc:  # the kept copy itself went bad: leave it out, say so
                log.error("kept data of %s no longer parses: %s", source.name, exc)
                continue
            box = [CompileSource(SourceInfo(
                name=source.name, category=source.category, version=st.version,
                count=result.count, license=source.license, fetched=st.fetched,
                usage=result.usage, url=source.url), result)]
            del result
            # Hand it over without keeping a reference in this (suspended) frame: only the
            # compiler holds the parsed list, so it can drop it before building the trie.
            yield box.pop()

    def _current_ok(self) -> bool:
        try:
            index = ListIndex.open(self.dir / "current")
        except IndexFormatError:
            return False
        # An index without a source whose download is kept is rebuilt even if no source
        # changed: e.g. the seed lists that `ensure_index` compiled at start in place of
        # an index this filterd refused (of an older index format, after an upgrade).
        return all(s.name in index.sources for s in self.sources
                   if s.enabled and self.data_path(s.name).is_file())

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.dir / "update.lock", "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ListError.coded("lists.busy") from exc
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SourceStatus:
    """One row of `filterd lists status`."""

    name: str
    category: str
    enabled: bool
    count: int
    fetched: float | None
    checked: float | None
    error: str | None
    rejects: Mapping[str, int]
    error_code: str | None = None    # filterd.words.messages code of `error`, and its
    error_params: Mapping[str, Any] = field(default_factory=dict)   # parameters

    def age(self, now: float) -> float | None:
        return None if self.fetched is None else max(0.0, now - self.fetched)


def status(data_dir: str | os.PathLike[str], sources: Iterable[Source]) -> list[SourceStatus]:
    state = Updater(data_dir, ()).load_state()
    rows = []
    for s in sources:
        st = state.get(s.name, SourceState())
        rows.append(SourceStatus(s.name, s.category, s.enabled, st.count, st.fetched, st.checked,
                                 st.error, dict(st.rejects), st.error_code,
                                 dict(st.error_params or {})))
    return rows
