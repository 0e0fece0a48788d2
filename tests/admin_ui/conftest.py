"""Fixtures for the admin page: an app on a temp data dir, a client, and signed-in users."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_ui import create_app
from admin_ui.accounts import create_user
from admin_ui.backend import Backend
from admin_ui.store import open_admin_db
from tests.admin_ui import fakes

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small costs in tests: the same code path, a fraction of the time.
    (The production parameters are argon2-cffi's defaults; the end-to-end test uses them.)"""
    from argon2 import PasswordHasher

    from admin_ui import accounts

    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                            parallelism=1))


@pytest.fixture
def config(tmp_path: Path) -> fakes.FakeConfig:
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "groups.yaml").write_text(fakes.POLICY, encoding="utf-8")
    return fakes.FakeConfig(data_dir=tmp_path / "data", policy_dir=policy_dir,
                            categories_file=REPO / "blocklists" / "categories.yaml",
                            sources_file=tmp_path / "sources.yaml")


@pytest.fixture
def backend(config: fakes.FakeConfig) -> Backend:
    return Backend(config, engine_factory=fakes.fake_build_engine)


@pytest.fixture
def app(backend: Backend) -> Flask:
    return create_app(backend.config, {"TESTING": True, "FILTERD_BACKEND": backend})


def https_client(app: Flask) -> FlaskClient:
    """A test client speaking https: the session cookie is Secure."""
    c = app.test_client()
    c.environ_base["wsgi.url_scheme"] = "https"
    return c


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return https_client(app)


@pytest.fixture
def make_user(app: Flask) -> Callable[..., str]:
    def make(name: str, role: str, groups: tuple[str, ...] = ()) -> str:
        db = open_admin_db(app.extensions["filterd"].data_dir)
        create_user(db, name, PASSWORD, role, groups)
        db.conn.close()
        return name
    return make


def csrf_of(client: FlaskClient) -> str:
    with client.session_transaction() as sess:
        if "csrf" not in sess:
            sess["csrf"] = "test-csrf-token-0123456789"
        return sess["csrf"]


def login(client: FlaskClient, name: str, password: str = PASSWORD):
    client.get("/login")
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf_token": csrf_of(client)})


@pytest.fixture
def as_role(client: FlaskClient, make_user: Callable[..., str]) -> Callable[[str], FlaskClient]:
    """Sign the client in with a fresh account of `role` (teachers teach thcs)."""
    made: set[str] = set()

    def sign_in(role: str) -> FlaskClient:
        name = f"{role}1"
        for who, r in (("first-admin", "admin"), (name, role)):
            if who not in made:
                make_user(who, r, ("thcs",) if r == "teacher" else ())
                made.add(who)
        resp = login(client, name)
        assert resp.status_code == 302, resp.data
        return client
    return sign_in


@pytest.fixture
def policy_file(config: fakes.FakeConfig) -> Path:
    return config.policy_dir / "groups.yaml"


def post(client: FlaskClient, url: str, **data):
    data.setdefault("csrf_token", csrf_of(client))
    return client.post(url, data=data)


__all__ = ["PASSWORD", "csrf_of", "https_client", "login", "post", "shutil"]


DAEMON = """
import os, signal, sys, time
from pathlib import Path
from filterd.errors import ConfigError
from filterd.state import control
log, pid_file = sys.argv[1], Path(sys.argv[2])
def hup(*_):
    # Speaks the real control channel: each SIGHUP gets a recorded outcome, refused while
    # a file named "refuse" lies beside the pid file (its text is the loader's message).
    with open(log, "a") as fh:
        fh.write("HUP\\n")
    attempt = control.Attempt(pid_file.parent, "reload", None)
    refuse = pid_file.parent / "refuse"
    if refuse.exists():
        attempt.refused(ConfigError(refuse.read_text(), file="policies/thcs.yaml", line=7))
    else:
        attempt.ok()
signal.signal(signal.SIGHUP, hup)
pid_file.write_text(str(os.getpid()))
deadline = time.time() + 120
while time.time() < deadline:
    time.sleep(0.05)
"""


@pytest.fixture
def fake_daemon(backend: Backend, tmp_path: Path):
    """A process standing in for the daemon: its pid in filterd.pid; it logs each SIGHUP."""
    import subprocess
    import sys
    import time

    backend.data_dir.mkdir(parents=True, exist_ok=True)
    pid_file = backend.data_dir / "filterd.pid"
    log = tmp_path / "hups.log"
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(log), str(pid_file)])
    deadline = time.time() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "fake daemon did not start"
        time.sleep(0.02)

    def hups(wait: bool = True) -> int:
        for _ in range(100 if wait else 0):
            if log.exists():
                break
            time.sleep(0.02)
        return log.read_text().count("HUP") if log.exists() else 0

    proc.hups = hups  # type: ignore[attr-defined]
    yield proc
    proc.kill()
    proc.wait(timeout=10)


EVENTS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, ts REAL, client_ip TEXT,"
    " client_mac TEXT, group_id TEXT, name TEXT, qtype TEXT, action TEXT, reason TEXT,"
    " category TEXT, rule TEXT, source TEXT, list_version TEXT, path TEXT, url TEXT,"
    " search_term TEXT)",
    "CREATE TABLE IF NOT EXISTS counts (hour TEXT, group_id TEXT, category TEXT, action TEXT,"
    " path TEXT, n INTEGER, PRIMARY KEY (hour, group_id, category, action, path))",
    "CREATE TABLE IF NOT EXISTS reviews (id INTEGER PRIMARY KEY, created_at REAL, name TEXT,"
    " url TEXT, group_id TEXT, category TEXT, reason TEXT, message TEXT, client_ip TEXT,"
    " status TEXT DEFAULT 'open', decided_by TEXT, decided_at REAL, note TEXT)",
)


@pytest.fixture
def shared_db(backend: Backend):
    """The tables other parts own (events, counts, reviews), as CONTRACTS.md describes them."""
    db = open_admin_db(backend.data_dir)
    for stmt in EVENTS_SCHEMA:
        db.execute(stmt)
    yield db
    db.conn.close()
