"""A teacher's override opens the site, through the admin page, on the running daemon.

`filterd run` against a real unbound; the admin app on the same filterd.yaml. The
teacher types "www.facebook.com", sees what will open (Facebook and its companion
domains) before saving, saves; dig then shows facebook.com, m.facebook.com and an
fbcdn.net name answered from the upstream for that group only, with TTLs that never
outlive the override, and nothing else opened.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound

from tests.admin_ui.conftest import https_client, login
from tests.test_daemon import Daemon

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
STUDENT, OTHER = "127.0.0.2", "127.0.0.1"
POLICY = """\
version: 1
default_group: khach
groups:
  khach:
    label_vi: Khách
    label_en: Guests
    block:
      always: [social_networks, adult]
    block_mode: nxdomain
  thcs:
    label_vi: Trung học cơ sở
    label_en: Lower secondary
    clients: [127.0.0.2]
    block:
      always: [social_networks, adult]
    block_mode: nxdomain
"""
ZONE = {"facebook.com": "198.51.100.1", "www.facebook.com": "198.51.100.2",
        "m.facebook.com": "198.51.100.3", "static.xx.fbcdn.net": "198.51.100.4",
        "instagram.com": "198.51.100.5"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    extra = "\n".join(f'  local-data: "{n}. 300 IN A {a}"' for n, a in ZONE.items())
    unbound = Unbound(tmp_path_factory.mktemp("unbound"), extra=extra).start()
    d = Daemon(tmp_path_factory.mktemp("filterd"), unbound.address)
    (d.policy_dir / "policy.yaml").write_text(POLICY, encoding="utf-8")
    d.start()
    try:
        yield d
    finally:
        d.stop()
        unbound.stop()


def dig(d: Daemon, name: str, source: str) -> tuple[str, list[tuple[int, str]]]:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(d.port), "-b", source, "+tries=1",
                          "+time=3", name], capture_output=True, text=True, timeout=20).stdout
    status = out.split("status: ", 1)[1].split(",", 1)[0]
    rows = []
    if ";; ANSWER SECTION:" in out:
        for line in out.split(";; ANSWER SECTION:", 1)[1].strip().split("\n\n")[0].splitlines():
            parts = line.split()
            if parts[3] == "A":
                rows.append((int(parts[1]), parts[4]))
    return status, rows


def test_override_of_www_facebook_opens_the_site_and_nothing_else(setup):
    d = setup
    for name in ("facebook.com", "m.facebook.com", "static.xx.fbcdn.net"):
        assert dig(d, name, STUDENT)[0] == "NXDOMAIN"
    from admin_ui import create_app
    from admin_ui.accounts import create_user
    from admin_ui.store import open_admin_db

    app = create_app(d.config, {"TESTING": True})
    db = open_admin_db(app.extensions["filterd"].data_dir)
    create_user(db, "co.lan", "a long password", "teacher", ("thcs",))
    db.conn.close()
    c = https_client(app)
    assert login(c, "co.lan", "a long password").status_code == 302

    # Step 1 -> 2: the teacher sees what will open before anything is saved.
    page = c.get("/overrides?site=www.facebook.com&group=thcs").get_data(as_text=True)
    assert "Facebook (7 tên miền)" in page and "<code>fbcdn.net</code>" in page
    assert "cho nhóm Trung học cơ sở" in page
    assert not (Path(app.extensions["filterd"].data_dir) / "overrides.json").exists()

    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = c.post("/overrides", data={"csrf_token": token, "site": "www.facebook.com",
                                   "group": "thcs", "minutes": "2", "reason": "Bài giảng"})
    assert r.status_code == 302
    saved = time.time()
    deadline = time.monotonic() + 20
    while dig(d, "facebook.com", STUDENT)[0] != "NOERROR":
        assert time.monotonic() < deadline, "the daemon did not take the override"
        time.sleep(0.3)
    left = 120 - (time.time() - saved)
    for name in ("facebook.com", "m.facebook.com", "www.facebook.com", "static.xx.fbcdn.net"):
        status, rows = dig(d, name, STUDENT)
        assert status == "NOERROR" and [a for _, a in rows] == [ZONE[name]], name
        assert all(0 <= ttl <= left + 1 for ttl, _ in rows), (name, rows, left)  # not 300
    # nothing else: another blocked site, and the same site for another group
    assert dig(d, "instagram.com", STUDENT)[0] == "NXDOMAIN"
    assert dig(d, "facebook.com", OTHER)[0] == "NXDOMAIN"
    page = c.get("/overrides").get_data(as_text=True)
    visible = re.sub(r"<[^>]+>", " ", page.split("<main", 1)[1])
    assert "Facebook (7 tên miền)" in visible and "thcs" not in visible   # words, not ids
    stored = (Path(app.extensions["filterd"].data_dir) / "overrides.json").read_text()
    assert '"domain": "facebook.com"' in stored
    assert datetime.fromisoformat(stored.split('"expires_at": "', 1)[1].split('"', 1)[0])
