"""A report of a harmful site, end to end on loopback in real Chromium.

A child opens school A's report form (linked from the block page) and reports a site;
the school's IT person sees it on A's admin page and sends it to the office; `filterd
sync` forwards it; the office accepts it on its queue page; school B blocks the site
after its next `filterd feeds pull` (dig); the office's stored bytes hold no address
or device; school A sees the office's decision. Screenshots: tests/artifacts/reports/.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import dns.message
import dns.query
import pytest

from filterd.sync.office.app import create_app
from filterd.sync.office.enrol import enrol_school
from filterd.sync.office.feeds import office_public_hex
from filterd.sync.office.storage import Storage
from filterd.webauth import hash_password
from tests.sync.conftest import TZ, stop_waitress, wait_until
from tests.test_daemon import Unbound

pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (scripts/apt-packages.txt)",
                allow_module_level=True)
from playwright.sync_api import expect, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]
REPO = Path(__file__).resolve().parents[2]
SITE = "other.test"                 # served by the test's unbound; nobody blocks it at first
PASSWORD = "mật khẩu đủ dài 2026"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class School:
    def __init__(self, tmp: Path, school_id: str, office, upstream, code) -> None:
        self.tmp, self.id = tmp, school_id
        self.dns, self.bp, self.admin = free_port(socket.SOCK_DGRAM), free_port(), free_port()
        data = tmp / "data"
        data.mkdir(parents=True)
        self.config = tmp / "filterd.yaml"
        self.config.write_text(
            f"school_id: {school_id}\ndata_dir: {data}\npolicy_dir: {REPO / 'policies'}\n"
            "appliance_ipv4: 10.0.0.1\n"
            f"dns:\n  listen: ['127.0.0.1:{self.dns}']\n"
            f"  upstreams: ['{upstream[0]}:{upstream[1]}']\n  upstream_timeout: 0.5\n"
            "events:\n  flush_interval: 0.2\n"
            f"http:\n  block_page_listen: '127.0.0.1:{self.bp}'\n  proxy_listen: '127.0.0.1:0'\n"
            f"admin:\n  listen: '127.0.0.1:{self.admin}'\n"
            f"sync:\n  office_url: {office.url}\n", encoding="utf-8")
        self.env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp)}
        self.procs: list[subprocess.Popen] = []
        # what the school's IT person does once: enrol with the office's one-time code;
        # the office's answer brings the key its feeds are signed with
        out = self.cli("enrol", "--code", code)
        assert out.returncode == 0, out.stdout + out.stderr
        assert (data / "office-key.pub").read_text().strip() == office_public_hex(office.dir)
        assert (data / "sync-token").stat().st_mode & 0o077 == 0

    def start(self, *, admin: bool) -> School:
        cmds = [["run"]] + ([["admin", "serve"]] if admin else [])
        for args in cmds:
            log = open(self.tmp / f"{args[0]}.log", "wb")  # noqa: SIM115
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "filterd", *args, "--config", str(self.config)],
                stdout=log, stderr=log, env=self.env, cwd=self.tmp))
        assert wait_until(lambda: self.answer(SITE) is not None, 60), self.log("run")
        if admin:
            from admin_ui.accounts import create_user
            from admin_ui.store import open_admin_db

            db = open_admin_db(self.tmp / "data")
            create_user(db, "thu.ha", PASSWORD, "admin")
            db.conn.close()

            def up() -> bool:
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", self.admin)) == 0
            assert wait_until(up, 60), self.log("admin")
        return self

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def answer(self, name: str) -> list[str] | None:
        try:
            r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.dns,
                              timeout=2, source="127.0.0.1")
        except Exception:
            return None
        return [rr.to_text() for rrset in r.answer for rr in rrset]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "filterd", *args, "--config",
                               str(self.config)], capture_output=True, text=True,
                              env=self.env, cwd=self.tmp, timeout=120)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


class Office:
    def __init__(self, tmp: Path) -> None:
        import waitress

        self.dir = tmp / "office"
        self.storage = Storage(f"sqlite:///{self.dir / 'office.db'}")
        self.storage.migrate()
        self.storage.set_user("phong-gd", hash_password(PASSWORD), "admin")
        self.app = create_app(self.storage, secret=b"k" * 32, timezone=TZ, data_dir=self.dir)
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=0, threads=4)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.effective_port}"

    def stop(self) -> None:
        stop_waitress(self.server, self.thread)
        self.storage.close()


@pytest.fixture
def world(tmp_path):
    up_dir = tmp_path / "unbound"
    up_dir.mkdir()
    unbound = Unbound(up_dir).start()
    office = Office(tmp_path)
    creds = {sid: enrol_school(office.storage, sid, f"THCS {sid}", "Ba Đình", "Hà Nội").code
             for sid in ("school-a", "school-b")}
    a = School(tmp_path / "a", "school-a", office, unbound.address, creds["school-a"])
    b = School(tmp_path / "b", "school-b", office, unbound.address, creds["school-b"])
    try:
        a.start(admin=True)
        b.start(admin=False)
        yield office, a, b
    finally:
        a.stop()
        b.stop()
        office.stop()
        unbound.stop()


def _block_page(school: School, name: str) -> str:
    """The block page a device gets for `name` (DNS steers it to the appliance)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{school.bp}/", headers={"Host": name})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:   # 403: blocked, which is the point
        return exc.read().decode()


def shoot(page, shots: Path, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width + 1, f"{name} scrolls sideways at {width} px ({scroll})"
    page.set_viewport_size({"width": 1280, "height": 900})


def test_report_from_one_school_blocks_the_site_in_another(world, artifacts_dir):
    office, a, b = world
    shots = artifacts_dir / "reports"
    shots.mkdir(parents=True, exist_ok=True)
    assert b.answer(SITE) and not any(x.endswith("10.0.0.1") for x in b.answer(SITE))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
            page.set_default_timeout(20_000)
            # --- the child: from the block page to the report form ---------------------------
            blocked = _block_page(a, "pornhub.com")
            assert 'href="/_filterd/report?lang=vi"' in blocked
            page.goto(f"http://127.0.0.1:{a.bp}/_filterd/report")
            expect(page.locator("h1")).to_have_text("Báo cáo trang web có hại")
            expect(page.locator(".hotline")).to_contain_text("111")
            shoot(page, shots, "report-form-vi")
            page.fill("#site", "not a site")
            page.check("input[name=category][value=violence]")
            page.get_by_role("button", name="Gửi báo cáo").click()
            expect(page.locator("#error")).to_contain_text("không phải là địa chỉ")
            expect(page.locator("input[name=category][value=violence]")).to_be_checked()
            page.fill("#site", f"https://{SITE}/bai-viet?id=1")
            page.fill("#note", "Có hình ảnh bạo lực <b>ghê sợ</b>")
            page.get_by_role("button", name="Gửi báo cáo").click()
            expect(page.locator("h1")).to_contain_text("Cảm ơn em")
            shoot(page, shots, "report-thanks-vi")
            # --- the school's IT person: the admin page --------------------------------------
            admin = f"http://127.0.0.1:{a.admin}"
            page.goto(admin + "/login")
            page.fill("#name", "thu.ha")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.goto(admin + "/site-reports")
            card = page.locator("article.review").first
            expect(card).to_contain_text(SITE)
            expect(card).to_contain_text("Bạo lực")
            expect(card.locator("blockquote")).to_have_text("Có hình ảnh bạo lực <b>ghê sợ</b>")
            shoot(page, shots, "admin-site-reports-vi")
            card.get_by_role("button", name="Gửi lên cơ quan quản lý giáo dục").click()
            expect(page.locator(".flash.ok")).to_contain_text("sẽ được gửi")
            # --- the daily sync forwards it ---------------------------------------------------
            out = a.cli("sync")
            assert out.returncode in (0, 75), out.stdout + out.stderr
            assert "forwarded 1 report" in out.stdout, out.stdout + out.stderr
            # --- the office accepts it on its queue --------------------------------------------
            page.goto(office.url + "/login")
            page.fill("input[name=username]", "phong-gd")
            page.fill("input[name=password]", PASSWORD)
            page.locator("form button").last.click()
            page.goto(office.url + "/site-reports")
            row = page.locator("tbody tr").first
            expect(row).to_contain_text(SITE)
            expect(row).to_contain_text("Bạo lực")
            shoot(page, shots, "office-site-reports-vi")
            row.get_by_role("button", name="Chấp nhận: chặn ở mọi trường").click()
            expect(page.locator("p.ok")).to_contain_text(SITE)
            page.goto(office.url + "/feeds")
            shoot(page, shots, "office-feeds-vi")
        finally:
            browser.close()
    # --- school B blocks the site at its next pull, A sees the outcome ----------------------
    out = b.cli("feeds", "pull")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "deny: updated (version 1)" in out.stdout
    assert wait_until(lambda: any(x.endswith("10.0.0.1") or x.endswith("0.0.0.0")
                                  for x in (b.answer(SITE) or [])) or b.answer(SITE) == [],
                      20), b.answer(SITE)
    out = a.cli("sync")
    assert out.returncode in (0, 75), out.stdout + out.stderr
    from filterd.state.site_reports import SiteReportStore

    store = SiteReportStore(a.tmp / "data")
    try:
        [r] = store.all()
        assert r.office_status == "accepted" and r.forwarded_at is not None
    finally:
        store.close()
    # --- what reached the office: no address, no device --------------------------------------
    stored = b"".join(f.read_bytes() for f in office.dir.glob("office.db*"))
    assert SITE.encode() in stored
    for secret in ("127.0.0.1", "thu.ha"):   # the reporting device's address, the staff
        assert secret.encode() not in stored, secret
