"""How the admin page reaches the daemon: files, the database and a reload signal.

Never imports the DNS or HTTP servers. It builds its own read-only Engine from the
same files the daemon loads (so "why blocked?" shows the very Decision a student
gets), validates policy edits with the same loader before anything is written,
and asks the daemon to reload through filterd.state.control, which waits for the
daemon's own record of what it did (ok, or refused with the loader's message).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from admin_ui.errors import N_, AdminError
from filterd.errors import ConfigError, ConfigErrors, FilterdError
from filterd.state import control
from filterd.state import overrides as overrides_file
from filterd.state.atomic import atomic_write

OVERRIDES_FILE = "overrides.json"
LISTS_LOG = "lists-update.log"
DEFAULT_MAX_OVERRIDE_MINUTES = 90

EngineFactory = Callable[..., Any]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """Whether the daemon took a change; `msgid % params` in English, translated on the page.

    status: the control channel's (ok, refused, failed, not_running, no_answer,
    signal_failed); outcome: the daemon's record of the attempt, when it answered."""

    ok: bool
    msgid: str
    pid: int | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    status: str = ""
    outcome: Any = None

    @property
    def message(self) -> str:
        return self.msgid % dict(self.params) if self.params else self.msgid


@dataclass(frozen=True, slots=True)
class GroupInfo:
    id: str
    label_vi: str
    label_en: str
    abstract: bool = False

    def label(self, lang: str) -> str:
        return (self.label_en if lang == "en" else self.label_vi) or self.id


def _default_factory(config: Any, **kwargs: Any) -> Any:
    from filterd.build import build_engine

    return build_engine(config, **kwargs)


class Backend:
    """The daemon's files as the admin page sees them."""

    def __init__(self, config: Any, *, config_path: Path | None = None,
                 engine_factory: EngineFactory | None = None) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self.data_dir = Path(config.data_dir)
        self.policy_dir = Path(config.policy_dir)
        self._factory = engine_factory or _default_factory
        self._engine: Any = None
        self._engine_key: tuple | None = None
        self._engine_error: str | None = None
        self._lock = threading.Lock()
        self._lock_overrides = threading.Lock()
        self._update_proc: subprocess.Popen | None = None

    # ---- configuration values the page shows -------------------------------------------

    @property
    def max_override_minutes(self) -> int:
        admin = getattr(self.config, "admin", None)
        value = getattr(admin, "max_override_minutes", None)
        return int(value) if value else DEFAULT_MAX_OVERRIDE_MINUTES

    def categories(self) -> dict[str, dict[str, Any]]:
        """The category map: id -> {vi, en, ...}."""
        path = Path(getattr(self.config, "categories_file", "") or "")
        if not path.is_file():
            return {}
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return dict(data.get("categories") or {})

    # ---- the engine ---------------------------------------------------------------------

    def _inputs_key(self) -> tuple:
        """What the engine was built from: a change in any of these means rebuild."""
        policy_files = sorted(p for p in self.policy_dir.iterdir() if p.is_file()) \
            if self.policy_dir.is_dir() else []   # YAML and the lists they name (protected.txt)
        paths = [*policy_files,
                 self.data_dir / OVERRIDES_FILE, self.data_dir / "lists" / "current",
                 Path(getattr(self.config, "categories_file", "") or "/nonexistent")]
        key = []
        for p in paths:
            try:
                st = p.stat()
                key.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                key.append((str(p), None, None))
        return tuple(key)

    def engine(self) -> Any:
        """The Engine built from the files on disk now (cached until one of them changes)."""
        with self._lock:
            key = self._inputs_key()
            if self._engine is None or key != self._engine_key:
                try:
                    self._engine = self._factory(self.config)
                    self._engine_error = None
                except FilterdError as exc:
                    self._engine_error = str(exc)
                    if self._engine is None:
                        raise
                self._engine_key = key
            return self._engine

    def groups(self, *, include_abstract: bool = False) -> list[GroupInfo]:
        """The policy's groups; abstract ones (templates no client is in) only on request."""
        try:
            eng = self.engine()
        except FilterdError:
            return []
        out = []
        for gid, grp in eng.groups.items():
            abstract = bool(getattr(grp, "abstract", False))
            if abstract and not include_abstract:
                continue
            out.append(GroupInfo(gid, getattr(grp, "label_vi", "") or gid,
                                 getattr(grp, "label_en", "") or gid, abstract))
        return out

    def client_for_group(self, group_id: str) -> tuple[str, str | None]:
        """A client (ip, mac) the engine puts in `group_id`: decide() as that group's student."""
        eng = self.engine()
        if group_id not in eng.groups:
            raise AdminError(N_("Unknown group %(group)s."), group=group_id)
        candidates: list[tuple[str, str | None]] = []
        policy = getattr(eng, "policy", None)
        rules = getattr(getattr(policy, "clients", None), "rules", ())
        for rule in rules:
            if rule.group != group_id:
                continue
            if rule.kind == "mac":
                candidates.append(("192.0.2.1", rule.text))
            else:
                first = rule.first + 1 if rule.kind == "cidr" and rule.size > 2 else rule.first
                cls = ipaddress.IPv6Address if rule.version == 6 else ipaddress.IPv4Address
                candidates.append((str(cls(first)), None))
        candidates += [(ip, None) for ip in ("192.0.2.1", "198.51.100.1", "203.0.113.1",
                                             "2001:db8::1")]
        for ip, mac in candidates:
            try:
                if eng.group_for(ip, mac).id == group_id:
                    return ip, mac
            except (FilterdError, ValueError):
                continue
        raise AdminError(N_("No client address belongs to group %(group)s."), group=group_id)

    def decide(self, name: str, group_id: str, at: datetime | None = None) -> Any:
        from filterd.policy.decision import Query

        eng = self.engine()
        ip, mac = self.client_for_group(group_id)
        return eng.decide(Query(name=name, client_ip=ip, client_mac=mac, at=at or datetime.now(UTC),
                                path="check"))

    def explain(self, decision: Any, lang: str) -> str:
        """The Decision in words, exactly as `filterd check` prints it (school's time zone)."""
        from filterd.policy.decision import Decision

        if not isinstance(decision, Decision):  # a stand-in engine's answer (tests)
            return decision.text(lang, for_staff=True)
        return self.words().explain(decision, lang, for_staff=True)

    def words(self) -> Any:
        """The running policy's words (configured catalog, group names, school zone)."""
        from filterd.words.explain import Words

        try:
            return Words.for_engine(self.engine())
        except FilterdError:
            return Words(tz=getattr(self.config, "timezone", None))

    # ---- policy files -------------------------------------------------------------------

    def policy_files(self) -> list[Path]:
        return sorted(p for p in self.policy_dir.glob("*.y*ml") if p.is_file())

    def policy_path(self, filename: str) -> Path:
        """A policy file by its bare name; refuses anything that would leave policy_dir."""
        if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
            raise AdminError(N_("Bad policy file name %(name)s."), name=filename)
        if not filename.endswith((".yaml", ".yml")):
            raise AdminError(N_("Policy file names end in .yaml: %(name)s."), name=filename)
        return self.policy_dir / filename

    def validate_policies(self, changes: Mapping[str, str | None]) -> None:
        """Build a complete engine from policy_dir with `changes` applied (None = delete).

        Raises the loader's ConfigError unchanged, naming file, line and key. The
        candidate lives in a temp copy, so nothing under policies/ is touched.
        """
        with tempfile.TemporaryDirectory(prefix="filterd-policy-") as tmp:
            cand = Path(tmp) / "policies"
            shutil.copytree(self.policy_dir, cand)
            for name, text in changes.items():
                target = cand / self.policy_path(name).name
                if text is None:
                    target.unlink(missing_ok=True)
                else:
                    target.write_text(text, encoding="utf-8")
            try:
                cfg = dataclasses.replace(self.config, policy_dir=cand)
            except TypeError:
                cfg = _Overlay(self.config, policy_dir=cand)
            try:
                self._factory(cfg)
            except ConfigError as exc:   # every problem, each with its code and real path
                mapped = [ConfigError(e.message, file=_unmap(e.file, cand, self.policy_dir),
                                      line=e.line, key=e.key, code=e.code, params=e.params)
                          for e in (getattr(exc, "errors", None) or [exc])]
                raise (mapped[0] if len(mapped) == 1 else ConfigErrors(mapped)) from exc

    def write_policies(self, changes: Mapping[str, str]) -> None:
        """Validate, then write each file atomically (previous version kept as .prev)."""
        self.validate_policies(changes)
        for name, text in changes.items():
            atomic_write(self.policy_path(name), text, keep_previous=True)

    # ---- overrides ----------------------------------------------------------------------

    @property
    def overrides_path(self) -> Path:
        return self.data_dir / OVERRIDES_FILE

    def read_overrides(self) -> list[dict[str, Any]]:
        try:
            return overrides_file.read_items(self.overrides_path)
        except ConfigError as exc:
            raise AdminError(N_("%(path)s is not valid JSON: %(error)s"),
                             path=str(self.overrides_path), error=str(exc)) from exc

    @contextlib.contextmanager
    def overrides_lock(self) -> Iterator[None]:
        """One read-modify-write of overrides.json at a time (waitress serves in threads,
        and two teachers may press the button in the same second)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock_overrides, open(self.data_dir / ".overrides.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def write_overrides(self, items: list[dict[str, Any]]) -> None:
        overrides_file.write_items(self.overrides_path, items)

    # ---- the daemon ---------------------------------------------------------------------

    def daemon_pid(self) -> int | None:
        return control.read_pid(self.data_dir)

    def last_outcome(self) -> Any:
        """The daemon's record of its last load (start or reload), or None."""
        return control.read_outcome(self.data_dir)

    def stale_files(self, outcome: Any = None) -> list[str]:
        """Files on disk that differ from what the running daemon loaded."""
        return control.stale_inputs(self.config, outcome or self.last_outcome())

    def disk_error(self) -> str | None:
        """The loader's message when the files on disk do not load (what a reload would say)."""
        try:
            self.engine()
        except FilterdError as exc:
            return str(exc)
        return self._engine_error

    def metrics(self) -> list[tuple[str, dict[str, str], float]] | None:
        """The daemon's Prometheus samples (name, labels, value); None when the endpoint is off."""
        listen = getattr(getattr(self.config, "metrics", None), "listen", None)
        if not listen:
            return None
        host, port = (listen[0], listen[1]) if isinstance(listen, tuple) else \
            str(listen).rsplit(":", 1)
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                text = resp.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return None
        out = []
        for m in _SAMPLE.finditer(text):
            labels = dict(_LABEL.findall(m.group(2) or ""))
            try:
                out.append((m.group(1), labels, float(m.group(3))))
            except ValueError:
                continue
        return out

    def upstream_health(self) -> list[dict[str, Any]] | None:
        """Per upstream resolver: answers and errors since the daemon started, and whether
        it answers now (`up`: None when the daemon does not say), from the metrics."""
        samples = self.metrics()
        if samples is None:
            return None
        ups: dict[str, dict[str, Any]] = {}
        for name, labels, value in samples:
            up = labels.get("upstream")
            if not up:
                continue
            row = ups.setdefault(up, {"upstream": up, "answers": 0, "errors": 0, "up": None})
            if name == "filterd_upstream_latency_seconds_count":
                row["answers"] += int(value)
            elif name == "filterd_upstream_errors_total":
                row["errors"] += int(value)
            elif name == "filterd_upstream_up":   # now, not since start: what the school sees
                row["up"] = value >= 1
        return sorted(ups.values(), key=lambda r: r["upstream"])

    def event_log_health(self) -> dict[str, Any] | None:
        """Whether the daemon's event log is being written now, and how many events it lost
        (queue full, disk full) since it started; None when the metrics endpoint is off."""
        samples = self.metrics()
        if samples is None:
            return None
        out: dict[str, Any] = {"writable": None, "dropped": 0}
        for name, _labels, value in samples:
            if name == "filterd_event_log_writable":
                out["writable"] = value >= 1
            elif name == "filterd_events_dropped_total":
                out["dropped"] += int(value)
        return out

    def reload(self, wait: float = 30.0) -> ReloadResult:
        """Ask the daemon to reload and wait for its own record of what it did."""
        return _result(control.request_reload(self.data_dir, timeout=wait), wait)

    def restart(self, wait: float = 90.0) -> ReloadResult:
        """Ask the daemon to restart (through systemd when it runs under systemd)."""
        return _result(control.request_restart(self.data_dir, timeout=wait), wait)

    # ---- lists --------------------------------------------------------------------------

    def lists_status(self) -> dict[str, Any]:
        """Index version, age and per-source counts, from the compiled index and sources.yaml."""
        out: dict[str, Any] = {"version": None, "updated": None, "sources": [], "error": None}
        current = self.data_dir / "lists" / "current"
        with contextlib.suppress(OSError):
            out["updated"] = current.stat().st_mtime
        try:
            from filterd.lists.index import ListIndex

            index = ListIndex.open(current)
            out["version"] = index.version
            for name, info in sorted(index.sources.items()):
                out["sources"].append({"name": name, "category": getattr(info, "category", ""),
                                       "version": getattr(info, "version", ""),
                                       "count": getattr(info, "count", None),
                                       "license": getattr(info, "license", "")})
        except (ImportError, AttributeError):
            out["error"] = "list index module not available"
        except (FilterdError, OSError) as exc:
            out["error"] = str(exc)
        out["configured"] = self._source_status()
        log = self.data_dir / LISTS_LOG
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if len(text) > 4000:  # the command line, then the end of the output
            first, _, rest = text.partition("\n")
            text = f"{first}\n…\n{rest[-4000:]}"
        out["log"] = text
        out["running"] = self.lists_update_running()
        return out

    def _source_status(self) -> list[dict[str, Any]]:
        """Each configured source: entries, last download, last check, last error (state.json)."""
        path = Path(getattr(self.config, "sources_file", "") or "")
        if not path.is_file():
            return []
        try:
            from filterd.lists.sources import load_categories, load_sources
            from filterd.lists.updater import status

            cats_file = Path(getattr(self.config, "categories_file", "") or "")
            cats = load_categories(cats_file) if cats_file.is_file() else None
            rows = status(self.data_dir, load_sources(path, cats))
        except (ImportError, FilterdError, OSError, ValueError) as exc:
            return [{"name": str(path), "category": "", "enabled": True, "count": None,
                     "fetched": None, "checked": None, "error": str(exc)}]
        return [{"name": r.name, "category": r.category, "enabled": r.enabled, "count": r.count,
                 "fetched": r.fetched, "checked": r.checked, "error": r.error,
                 "error_code": getattr(r, "error_code", None),
                 "error_params": dict(getattr(r, "error_params", {}) or {})} for r in rows]

    def lists_update_running(self) -> bool:
        return self._update_proc is not None and self._update_proc.poll() is None

    def start_lists_update(self) -> bool:
        """Run `filterd lists update` in the background; False if one is already running."""
        if self.lists_update_running():
            return False
        cmd = [sys.executable, "-m", "filterd", "lists", "update"]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        # Always explicit: the update must land where this page (and the daemon) reads it.
        cmd += ["--data-dir", str(self.data_dir)]
        sources = getattr(self.config, "sources_file", None)
        if sources:
            cmd += ["--sources", str(sources)]
        log = open(self.data_dir / LISTS_LOG, "w", encoding="utf-8")  # noqa: SIM115 (child owns it)
        log.write(f"$ {' '.join(cmd[1:])}\n")
        log.flush()
        self._update_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=os.getcwd())
        log.close()
        return True


def _result(reply: control.ReloadReply, wait: float) -> ReloadResult:
    o = reply.outcome
    if reply.status == "ok":
        return ReloadResult(True, N_("reloaded"), reply.pid, status="ok", outcome=o)
    if reply.status == "refused" and o is not None:
        return ReloadResult(False, N_(
            "refused: the filter (process %(pid)s) kept the previous policy. %(error)s"),
            reply.pid, {"pid": reply.pid, "error": o.error}, status="refused", outcome=o)
    if reply.status == "failed" and o is not None:
        return ReloadResult(False, N_(
            "the filter (process %(pid)s) failed to load the new files and kept the previous "
            "policy: %(error)s"), reply.pid, {"pid": reply.pid, "error": o.error},
            status="failed", outcome=o)
    if reply.status == "not_running":
        return ReloadResult(False, N_("the filter is not running (no live process in "
                                      "filterd.pid)"), reply.pid, status="not_running")
    if reply.status == "signal_failed":
        return ReloadResult(False, N_("could not signal process %(pid)s: %(error)s"), reply.pid,
                            {"pid": reply.pid, "error": reply.detail}, status="signal_failed")
    return ReloadResult(False, N_(
        "the filter (process %(pid)s) did not report a reload within %(n)s s"), reply.pid,
        {"pid": reply.pid, "n": int(wait)}, status="no_answer")


class _Overlay:
    """A config with one attribute replaced, for configs that are not dataclasses."""

    def __init__(self, base: Any, **changes: Any) -> None:
        self._base = base
        self._changes = changes

    def __getattr__(self, name: str) -> Any:
        if name in self._changes:
            return self._changes[name]
        return getattr(self._base, name)


def _unmap(file: str | None, cand: Path, real: Path) -> str | None:
    """Name the real policy file in an error about its temp copy."""
    if file and file.startswith(str(cand)):
        return str(real) + file[len(str(cand)):]
    return file
