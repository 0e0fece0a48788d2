"""A list change reaches the running filter: `filterd lists import` and the admin page's
"Cập nhật ngay" with a custom sources file (no categories.yaml beside it) compile the
index, ask the daemon to load it, say that it did, and dig shows the new verdict."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.admin_ui.conftest import https_client, login, post
from tests.dns.dnshelpers import Unbound
from tests.lists.http_server import list_mirror
from tests.test_daemon import Daemon, dig

pytestmark = pytest.mark.integration

SOURCES = """version: 1
sources:
  - name: truong-them
    url: {url}
    format: domains
    category: adult
    license: school's own list
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    up = Unbound(tmp_path_factory.mktemp("unbound"), extra=(
        '  local-data: "nhap-tay.test. 300 IN A 192.0.2.30"\n'
        '  local-data: "qua-cap-nhat.test. 300 IN A 192.0.2.31"\n')).start()
    tmp = tmp_path_factory.mktemp("lists")
    with list_mirror() as mirror:
        mirror.files["them.txt"] = b"qua-cap-nhat.test\n"
        custom = tmp / "custom"   # a school's own sources file, no categories.yaml beside it
        custom.mkdir()
        (custom / "sources.yaml").write_text(SOURCES.format(url=mirror.url("them.txt")))
        (tmp / "d").mkdir()
        d = Daemon(tmp / "d", up.address, extra=f"sources_file: {custom / 'sources.yaml'}\n")
        d.start()
        try:
            yield d, custom / "sources.yaml", mirror
        finally:
            d.stop()
            up.stop()


def status(d: Daemon, name: str) -> str:
    out = dig(d, name)
    return out.split("status: ", 1)[1].split(",", 1)[0] if "status: " in out else out


def test_lists_import_is_loaded_by_the_running_filter(stack, tmp_path):
    d, sources, _mirror = stack
    assert status(d, "nhap-tay.test") == "NOERROR"
    local = tmp_path / "them.txt"
    local.write_text("nhap-tay.test\n")
    res = subprocess.run([sys.executable, "-m", "filterd", "lists", "import", "--config",
                          str(d.config), "--sources", str(sources), "truong-them", str(local)],
                         capture_output=True, text=True, env=d.env(), cwd=d.tmp, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "truong-them: imported, 1 entries" in res.stdout
    assert "the running filter loaded list index" in res.stdout
    assert status(d, "nhap-tay.test") == "NXDOMAIN"   # no `filterd reload`, no restart


def test_update_now_on_the_lists_page_reaches_dig(stack):
    from admin_ui import create_app
    from admin_ui.accounts import create_user
    from admin_ui.store import open_admin_db

    d, _sources, mirror = stack
    mirror.files["them.txt"] = b"qua-cap-nhat.test\nnhap-tay.test\n"
    assert status(d, "qua-cap-nhat.test") == "NOERROR"
    app = create_app(d.config, {"TESTING": True})
    db = open_admin_db(d.tmp / "var")
    create_user(db, "thu.ha", "a long password", "admin")
    db.conn.close()
    c = https_client(app)
    assert login(c, "thu.ha", "a long password").status_code == 302
    assert post(c, "/lists/update").status_code == 302
    backend = app.extensions["filterd"]
    deadline = time.monotonic() + 120
    while backend.lists_update_running():
        assert time.monotonic() < deadline, "list update did not finish"
        time.sleep(0.2)
    page = c.get("/lists").get_data(as_text=True)
    assert "Traceback" not in page and "FileNotFoundError" not in page
    assert "the running filter loaded list index" in page, page[-3000:]
    assert status(d, "qua-cap-nhat.test") == "NXDOMAIN"
