"""`filterd sync` and `filterd office ...` as a person (or systemd) runs them: subprocesses."""

import json
import os
import socket
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from filterd.sync.office.storage import Storage

from .conftest import TZ, free_port, generate_days, make_event_db, wait_until

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def filterd(*args, timeout=60, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "filterd", *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"filterd {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture
def office_proc(tmp_path):
    db = f"sqlite:///{tmp_path / 'office' / 'office.db'}"
    port = free_port()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    proc = subprocess.Popen([sys.executable, "-m", "filterd", "office", "serve", "--database-url",
                             db, "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                return True
        except OSError:
            return False
    try:
        assert wait_until(up, 30), proc.stderr.read1().decode() if proc.poll() else "not up"
        assert b"READY=1" in notify.recv(4096)  # systemd Type=notify learns it is serving
        yield db, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        notify.close()


def appliance_config(tmp_path, office_url: str) -> Path:
    data = tmp_path / "appliance"
    data.mkdir(exist_ok=True)
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"school_id: thcs-ba-dinh-01\ntimezone: Asia/Ho_Chi_Minh\ndata_dir: {data}\n"
                   f"sync:\n  office_url: \"{office_url}\"\n  k_anonymity: 5\n"
                   f"  token_file: {tmp_path / 'token'}\n")
    conn = make_event_db(data / "filterd.db")
    today = datetime.now(TZ).date()
    generate_days(conn, [today - timedelta(days=2), today - timedelta(days=1)], per_day=80)
    conn.close()
    return cfg


def test_enrol_dry_run_sync_end_to_end(tmp_path, office_proc):
    db, url = office_proc
    r = filterd("office", "enrol", "--database-url", db, "--id", "thcs-ba-dinh-01",
                "--name", "THCS Ba Đình", "--district", "Ba Đình", "--province", "Hà Nội")
    code = r.stdout.strip()
    assert len(code) == 24 and code.count("-") == 4 and "not shown again" in r.stderr
    cfg = appliance_config(tmp_path, url)
    # a wrong code is refused and leaves no key behind
    bad = filterd("enrol", "--config", str(cfg), "--code", "AAAA-BBBB-CCCC-DDDD-EEEE",
                  check=False)
    assert bad.returncode == 1 and "wrong enrolment code" in bad.stderr
    assert not (tmp_path / "token").exists()
    out = filterd("enrol", "--config", str(cfg), "--code", code.lower())
    assert "enrolled thcs-ba-dinh-01" in out.stdout
    assert os.stat(tmp_path / "token").st_mode & 0o777 == 0o600
    again = filterd("enrol", "--config", str(cfg), "--code", code, check=False)
    assert again.returncode == 1 and "already used" in again.stderr

    dry = filterd("sync", "--config", str(cfg), "--dry-run")
    assert f"# 2 report(s) would be sent to {url}" in dry.stdout
    assert '"school_id": "thcs-ba-dinh-01"' in dry.stdout and "10.10." not in dry.stdout
    docs = [json.loads(part.split("\n", 1)[1]) for part in dry.stdout.split("# --- ")[1:]]
    assert [d["day"] for d in docs] == sorted(d["day"] for d in docs)
    assert not (tmp_path / "appliance" / "outbox").exists()  # a dry run writes and sends nothing
    st = Storage(db)
    assert st.query("SELECT COUNT(*) FROM reports")[0][0] == 0

    out = filterd("sync", "--config", str(cfg))
    assert out.stdout.count("delivered") == 2, out.stdout
    assert st.query("SELECT COUNT(*) FROM reports")[0][0] == 2
    again = filterd("sync", "--config", str(cfg))
    assert "delivered" not in again.stdout
    state = json.loads((tmp_path / "appliance" / "sync" / "state.json").read_text())
    assert state["last_success_day"] == docs[-1]["day"]

    # revoked: the next upload is refused; re-keyed with a new code: accepted again
    assert "revoked 1 key(s)" in filterd("office", "revoke", "--database-url", db, "--id",
                                         "thcs-ba-dinh-01").stdout
    conn = make_event_db(tmp_path / "appliance" / "filterd.db")
    generate_days(conn, [datetime.now(TZ).date() - timedelta(days=3)], per_day=80, seed=9)
    conn.close()
    (tmp_path / "appliance" / "sync" / "state.json").unlink()
    r = filterd("sync", "--config", str(cfg), "--now", check=False)
    assert r.returncode == 1 and "was revoked" in r.stderr, r.stderr
    code2 = filterd("office", "enrol", "--database-url", db, "--id", "thcs-ba-dinh-01",
                    "--rekey").stdout.strip()
    filterd("enrol", "--config", str(cfg), "--code", code2)
    assert "delivered" in filterd("sync", "--config", str(cfg), "--now").stdout


def test_unreachable_office_exits_75_and_keeps_the_reports(tmp_path):
    from filterd.sync.signing import Credential

    Credential.generate("thcs-ba-dinh-01").write(tmp_path / "token")
    cfg = appliance_config(tmp_path, f"http://127.0.0.1:{free_port()}")
    r = filterd("sync", "--config", str(cfg), check=False, timeout=120)
    assert r.returncode == 75
    assert "office unreachable at http://127.0.0.1:" in r.stderr
    assert "2 report(s) waiting in the outbox" in r.stdout
    assert len(list((tmp_path / "appliance" / "outbox").glob("*.json.gz"))) == 2
    r = filterd("sync", "--config", str(cfg), check=False)  # inside the backoff window
    assert r.returncode == 75 and "waiting before retrying" in r.stdout


def test_missing_credential_is_a_clear_error(tmp_path):
    cfg = appliance_config(tmp_path, "https://office.example")
    r = filterd("sync", "--config", str(cfg), check=False)
    assert r.returncode == 1 and "cannot read the school key" in r.stderr


def test_office_user_and_duplicate_enrolment(tmp_path):
    db = f"sqlite:///{tmp_path / 'o.db'}"
    r = filterd("office", "user", "--database-url", db, "an", "--role", "admin",
                "--password", "mat-khau-dai")
    assert "user an (admin) saved" in r.stdout
    assert Storage(db).user("an")[2] == "admin"
    assert filterd("office", "user", "--database-url", db, "b", "--password", "short",
                   check=False).returncode == 1
    args = ("office", "enrol", "--database-url", db, "--id", "s1", "--name", "A",
            "--district", "D", "--province", "P")
    filterd(*args)
    r = filterd(*args, check=False)
    assert r.returncode == 1 and "already enrolled" in r.stderr
    assert len(filterd("office", "enrol", "--database-url", db, "--id", "s1", "--rekey"
                       ).stdout.strip()) == 24
    r = filterd("office", "enrol", "--database-url", db, "--id", "s2", check=False)
    assert r.returncode == 2 and "required to enrol" in r.stderr


def test_office_settings_command(tmp_path):
    db = f"sqlite:///{tmp_path / 'o.db'}"
    out = filterd("office", "settings", "--database-url", db, "--agency",
                  "Phòng Giáo dục và Đào tạo quận Ba Đình", "--place", "Hà Nội").stdout
    assert "agency: Phòng Giáo dục và Đào tạo quận Ba Đình" in out and "place: Hà Nội" in out
    assert "agency: Phòng Giáo dục" in filterd("office", "settings", "--database-url", db).stdout
