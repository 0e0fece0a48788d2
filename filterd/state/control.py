"""The control channel between the daemon and everything that asks it to reload.

`filterd reload`, the admin page, `filterd lists update|import` and systemd's
ExecReload all call `request_reload()`: it signals the pid in `<data_dir>/filterd.pid`
(SIGHUP) and waits for the daemon's own record of that attempt in
`<data_dir>/reload.json`. After every attempt (and at start) the daemon writes that
record atomically: a generation number, ok / refused / failed, the loader's message
(file:line: key: message), when, which changed settings took effect and which need a
restart, the list index now serving and a fingerprint of the files it loaded (so the
dashboard can tell when the files on disk differ from what runs). Nothing here needs
the metrics endpoint.

A restart (for settings a reload cannot apply, such as listen addresses) is asked for
the same way with SIGUSR2: under systemd the daemon exits with RESTART_EXIT_STATUS
and the unit restarts it (RestartForceExitStatus); elsewhere it executes itself again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filterd.state.atomic import atomic_write

__all__ = ["OUTCOME_FILE", "PID_FILE", "RESTART_EXIT_STATUS", "ReloadOutcome", "ReloadReply",
           "SettingChanges", "classify_changes", "inputs_fingerprint", "read_outcome",
           "read_pid", "record_outcome", "request_reload", "request_restart", "stale_inputs"]

PID_FILE = "filterd.pid"
OUTCOME_FILE = "reload.json"
RELOAD_SIGNAL = signal.SIGHUP
RESTART_SIGNAL = signal.SIGUSR2
RESTART_EXIT_STATUS = 75   # systemd/filterd.service: RestartForceExitStatus=75
FINAL = ("ok", "refused", "failed")

# Where a changed setting takes effect. The daemon applies LIVE ones on a reload; OTHER
# ones are read by another part when it next runs (its own words on the settings page);
# everything else in filterd.yaml needs the daemon restarted.
LIVE = ("school_name", "timezone", "policy_dir", "categories_file", "http.staff_groups",
        "http.no_intercept", "events.retention_days", "alerts.")
OTHER = {
    "school_id": "sync", "sources_file": "lists", "sync.": "sync", "office.": "office",
    "admin.max_override_minutes": "admin", "admin.listen": "admin-restart",
}


def _matches(key: str, pattern: str) -> bool:
    return key == pattern or (pattern.endswith(".") and key.startswith(pattern))


# -- the pid file ----------------------------------------------------------------------


def pid_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / PID_FILE


def write_pid(data_dir: str | Path, pid: int | None = None) -> Path:
    path = pid_path(data_dir)
    atomic_write(path, f"{pid or os.getpid()}\n")
    return path


def remove_pid(data_dir: str | Path) -> None:
    """Remove the pid file if it still names this process."""
    path = pid_path(data_dir)
    with contextlib.suppress(OSError):
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()


def read_pid(data_dir: str | Path) -> int | None:
    """The daemon's pid, if the pid file names a live process."""
    try:
        pid = int(pid_path(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


# -- what a reload changed -----------------------------------------------------------------


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if f.name == "source_file":
                continue
            out.update(_flatten(getattr(obj, f.name), f"{prefix}{f.name}."))
        return out
    out[prefix[:-1]] = str(getattr(obj, "key", obj))   # ZoneInfo -> its key
    return out


@dataclass(frozen=True, slots=True)
class SettingChanges:
    """Changed filterd.yaml keys by where they take effect."""

    applied: tuple[str, ...] = ()        # the daemon uses the new value now
    elsewhere: tuple[tuple[str, str], ...] = ()   # (key, part): read by another part
    needs_restart: tuple[str, ...] = ()  # the daemon keeps the old value until restarted


def changed_keys(old: Any, new: Any) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def classify_changes(old: Any, new: Any, live: Iterable[str] = LIVE) -> SettingChanges:
    applied, elsewhere, restart = [], [], []
    live = tuple(live)
    for key in changed_keys(old, new):
        if any(_matches(key, p) for p in live):
            applied.append(key)
            continue
        part = next((v for p, v in OTHER.items() if _matches(key, p)), None)
        if part is not None:
            elsewhere.append((key, part))
        else:
            restart.append(key)
    return SettingChanges(tuple(applied), tuple(elsewhere), tuple(restart))


# -- the files a load reads ----------------------------------------------------------------


def _stat(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return [None, None]
    return [st.st_mtime_ns, st.st_size]


def inputs_fingerprint(config: Any) -> dict[str, list[Any]]:
    """path -> [mtime_ns, size] of every file a reload reads (the list index: its target)."""
    paths: list[Path] = []
    src = getattr(config, "source_file", None)
    if src:
        paths.append(Path(src))
    policy_dir = Path(config.policy_dir)
    if policy_dir.is_dir():   # the YAML and the lists it names (protected.txt)
        paths += sorted(p for p in policy_dir.iterdir() if p.is_file())
    data = Path(config.data_dir)
    paths += [data / "overrides.json", Path(config.categories_file)]
    out = {str(p): _stat(p) for p in paths}
    current = data / "lists" / "current"
    target = Path(os.path.realpath(current))
    out[str(current)] = [str(target), *_stat(target / "meta.json")]
    return out


def stale_inputs(config: Any, outcome: ReloadOutcome | None) -> list[str]:
    """Files that differ on disk from what the running daemon loaded (sorted paths)."""
    if outcome is None or not outcome.inputs:
        return []
    now = inputs_fingerprint(config)
    keys = now.keys() | outcome.inputs.keys()
    return sorted(k for k in keys if list(now.get(k, [])) != list(outcome.inputs.get(k, [])))


# -- the record ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReloadOutcome:
    """What the daemon did with one load: at start ("start") or on a reload request."""

    generation: int
    kind: str                 # start | reload | restart
    status: str               # ok | refused | failed
    pid: int
    started_at: float         # unix time
    started_mono: float       # CLOCK_MONOTONIC (system wide): compare with a request
    finished_at: float
    error: str | None = None  # the loader's message: file:line: key: message
    file: str | None = None
    line: int | None = None
    key: str | None = None
    applied: tuple[str, ...] = ()
    elsewhere: tuple[tuple[str, str], ...] = ()
    needs_restart: tuple[str, ...] = ()
    pending_restart: tuple[str, ...] = ()   # every key waiting for a restart since start
    index_version: str | None = None
    inputs: Mapping[str, list[Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, indent=1,
                          sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReloadOutcome:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("applied", "needs_restart", "pending_restart"):
            kw[k] = tuple(kw.get(k) or ())
        kw["elsewhere"] = tuple(tuple(x) for x in kw.get("elsewhere") or ())
        return cls(**kw)


def outcome_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / OUTCOME_FILE


def read_outcome(data_dir: str | Path) -> ReloadOutcome | None:
    try:
        data = json.loads(outcome_path(data_dir).read_text(encoding="utf-8"))
        return ReloadOutcome.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None


def record_outcome(data_dir: str | Path, outcome: ReloadOutcome) -> None:
    atomic_write(outcome_path(data_dir), outcome.to_json(), mode=0o644)


def next_generation(data_dir: str | Path) -> int:
    last = read_outcome(data_dir)
    return (last.generation if last else 0) + 1


class Attempt:
    """The daemon's side of one load: begin() before building, then ok() / refused()."""

    def __init__(self, data_dir: str | Path, kind: str, config: Any) -> None:
        self.data_dir = Path(data_dir)
        self.kind = kind
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        # Taken before the build: a file changed during it shows as "differs on disk".
        self.inputs = _safe_fingerprint(config)

    def _record(self, status: str, **kw: Any) -> ReloadOutcome:
        outcome = ReloadOutcome(generation=next_generation(self.data_dir), kind=self.kind,
                                status=status, pid=os.getpid(), started_at=self.started_at,
                                started_mono=self.started_mono, finished_at=time.time(),
                                inputs=self.inputs, **kw)
        record_outcome(self.data_dir, outcome)
        return outcome

    def ok(self, changes: SettingChanges = SettingChanges(), *,
           pending_restart: Iterable[str] = (), index_version: str | None = None
           ) -> ReloadOutcome:
        return self._record("ok", applied=changes.applied, elsewhere=changes.elsewhere,
                            needs_restart=changes.needs_restart,
                            pending_restart=tuple(sorted(set(pending_restart))),
                            index_version=index_version)

    def refused(self, exc: BaseException, *, failed: bool = False,
                pending_restart: Iterable[str] = (), index_version: str | None = None
                ) -> ReloadOutcome:
        return self._record("failed" if failed else "refused", error=str(exc) or repr(exc),
                            file=getattr(exc, "file", None), line=getattr(exc, "line", None),
                            key=getattr(exc, "key", None),
                            pending_restart=tuple(sorted(set(pending_restart))),
                            index_version=index_version)


def _safe_fingerprint(config: Any) -> dict[str, list[Any]]:
    try:
        return inputs_fingerprint(config)
    except (OSError, AttributeError, TypeError):
        return {}


# -- the requester's side ------------------------------------------------------------------


@dataclass(frozen=True)
class ReloadReply:
    """What became of one request: the daemon's outcome, or why there is none."""

    status: str               # ok | refused | failed | not_running | no_answer | signal_failed
    pid: int | None = None
    outcome: ReloadOutcome | None = None
    detail: str = ""          # for not_running / signal_failed: the OS's words

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def message(self) -> str:
        """One English line (the CLI prints it; the admin page has its own words)."""
        o = self.outcome
        if self.status == "ok" and o is not None:
            text = f"reloaded (generation {o.generation}, pid {o.pid})"
            if o.index_version:
                text += f", list index {o.index_version}"
            if o.applied:
                text += "; now in effect: " + ", ".join(o.applied)
            if o.needs_restart:
                text += "; needs a restart: " + ", ".join(o.needs_restart)
            return text
        if self.status in ("refused", "failed") and o is not None and o.kind != "reload":
            return (f"restart {self.status} (pid {o.pid}): {o.error}"
                    + ("; the running filter keeps serving" if o.kind == "restart" else ""))
        if self.status in ("refused", "failed") and o is not None:
            return (f"reload {self.status} by the running filter (pid {o.pid}); the previous "
                    f"policy keeps serving: {o.error}")
        if self.status == "not_running":
            return f"the filter is not running ({self.detail})"
        if self.status == "signal_failed":
            return f"could not signal the filter (pid {self.pid}): {self.detail}"
        return f"the filter (pid {self.pid}) did not report the reload in time"


def _wait(data_dir: Path, pid: int, since: float, timeout: float) -> ReloadOutcome | None:
    deadline = time.monotonic() + timeout
    while True:
        o = read_outcome(data_dir)
        if o is not None and o.started_mono >= since and o.status in FINAL:
            return o
        if time.monotonic() >= deadline or read_pid(data_dir) is None:
            return None
        time.sleep(0.05)


def request_reload(data_dir: str | Path, *, timeout: float = 30.0) -> ReloadReply:
    """Ask the running daemon to load the files again and wait for its answer."""
    data_dir = Path(data_dir)
    pid = read_pid(data_dir)
    if pid is None:
        return ReloadReply("not_running", detail=f"no live process in {pid_path(data_dir)}")
    since = time.monotonic()
    try:
        os.kill(pid, RELOAD_SIGNAL)
    except OSError as exc:
        return ReloadReply("signal_failed", pid, detail=exc.strerror or str(exc))
    outcome = _wait(data_dir, pid, since, timeout)
    if outcome is None:
        if read_pid(data_dir) is None:
            return ReloadReply("not_running", pid, detail=f"process {pid} stopped")
        return ReloadReply("no_answer", pid)
    return ReloadReply(outcome.status, outcome.pid, outcome)


def request_restart(data_dir: str | Path, *, timeout: float = 60.0) -> ReloadReply:
    """Ask the daemon to restart (systemd restarts it, or it executes itself again) and
    wait for the new process's start record."""
    data_dir = Path(data_dir)
    pid = read_pid(data_dir)
    if pid is None:
        return ReloadReply("not_running", detail=f"no live process in {pid_path(data_dir)}")
    since = time.monotonic()
    try:
        os.kill(pid, RESTART_SIGNAL)
    except OSError as exc:
        return ReloadReply("signal_failed", pid, detail=exc.strerror or str(exc))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        o = read_outcome(data_dir)
        if o is not None and o.started_mono >= since and o.kind in ("start", "restart") \
                and o.status in FINAL:
            return ReloadReply(o.status, o.pid, o)
        time.sleep(0.1)
    return ReloadReply("no_answer", pid)
