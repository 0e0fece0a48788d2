"""The alerts pages in headless Chromium (1280 and 390 px, Vietnamese and English), on the
real engine and the shipped policy; screenshots in tests/artifacts/alerts/."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.admin_ui.conftest import REPO

pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (scripts/apt-packages.txt)",
                allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
PASSWORD = "một mật khẩu dài"


@pytest.fixture
def served(tmp_path):
    from werkzeug.serving import make_server

    from admin_ui import create_app
    from admin_ui.accounts import create_user
    from admin_ui.store import open_admin_db
    from filterd.state import alerts as store

    shutil.copytree(REPO / "policies", tmp_path / "policies")
    (tmp_path / "policies" / "alerts.yaml").write_text(
        (REPO / "policies" / "alerts.yaml").read_text().replace(
            "    # 10.10.36.201: Phòng Tin học, máy 1",
            "    10.10.40.23: Máy tính bảng 10A-01"), encoding="utf-8")
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"school_id: test-school\ndata_dir: {tmp_path / 'data'}\n"
                   f"policy_dir: {tmp_path / 'policies'}\n", encoding="utf-8")
    app = create_app(cfg, {"TESTING": True})
    db = open_admin_db(tmp_path / "data")
    create_user(db, "admin1", PASSWORD, "admin")
    db.conn.close()
    db = store.open_alerts_db(tmp_path / "data")
    now = time.time()
    for device, rule, group, cat, n, names in (
            ("10.10.40.23", "tu_hai", "thpt", "self_harm", 3, ("example-selfharm.test",)),
            ("10.10.32.41", "bao_ve", "thcs", "illegal", 12, ("protected.test",)),
            ("aa:bb:cc:00:11:22", "vuot_loc", "tieu_hoc", "vpn", 7, ("vpn.example",))):
        with db.conn:
            store.record_hits(db.conn, [store.Hit(
                rule, device, device if "." in device else "10.10.20.9",
                None if "." in device else device, group, cat, now - 600, now - 300, n, names,
                1, False, 600, False)], hold=0)
        aid = db.conn.execute("SELECT MAX(id) FROM alerts").fetchone()[0]
        store.queue_messages(db, [
            (store.Outgoing(1, "Cô Lan (Hiệu trưởng)", "email", "hieutruong@truong.edu.vn", now),
             [aid]),
            (store.Outgoing(2, "Cô Mai (tư vấn)", "webhook",
                            "https://api.telegram.org/bot123:SECRET/sendMessage?chat_id=1", now),
             [aid])], [aid], now=now)
        first, second = (r[0] for r in db.conn.execute(
            "SELECT id FROM alert_messages WHERE alert_id = ? ORDER BY id", [aid]))
        store.mark_sent(db, first, "s", now)
        store.mark_failed(db, second, "the webhook answered 502 Bad Gateway", now + 120, now)
    store.raise_health(db, "upstreams", "không máy chủ nào trả lời: 1.1.1.1:53, 8.8.8.8:53",
                       now=now, window=3600)
    store.save_recipient(db, {"name": "Thầy Nam (chủ nhiệm 10A)", "role": "class_teacher",
                              "email": "nam@truong.edu.vn", "webhook": "", "groups": "thpt",
                              "quiet": "21:00-06:30", "enabled": 1})
    db.conn.close()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_alerts_pages_in_chromium(served, artifacts_dir):
    shots = artifacts_dir / "alerts"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(served + "/login")
            page.fill("#name", "admin1")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.goto(served + "/alerts")
            text = page.inner_text("main")
            assert "Tìm đến nội dung tự hại, tự tử" in text and "Máy tính bảng 10A-01" in text
            assert "Tự hại, tự tử" in text and "THPT (15–17 tuổi)" in text
            assert "Máy chủ DNS phía trên không trả lời" in text
            assert "SECRET" not in page.content()          # webhook tokens never shown
            page.screenshot(path=str(shots / "alerts-vi-1280.png"), full_page=True)
            # mark one handled with a note
            page.fill("main article:first-of-type input[name=note]", "Đã gặp em và phụ huynh")
            page.click("main article:first-of-type button[type=submit]")
            assert "Đã đánh dấu là đã xử lý." in page.inner_text("main")
            page.goto(served + "/alerts/recipients")
            page.fill("#name", "Cô Hoa")
            page.fill("#email", "not-an-address")
            page.click("#form button[type=submit]")
            assert "Đây không phải là địa chỉ thư điện tử." in page.inner_text("main")
            page.screenshot(path=str(shots / "recipients-error-vi-1280.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            for path, name in (("/alerts?view=all", "alerts"), ("/alerts/recipients",
                                                                "recipients")):
                page.goto(served + path)
                assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
                page.screenshot(path=str(shots / f"{name}-vi-390.png"), full_page=True)
            page.goto(served + "/lang/en?next=/alerts")
            page.goto(served + "/alerts")
            assert "Self-harm or suicide content" in page.inner_text("main")
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=str(shots / "alerts-en-1280.png"), full_page=True)
        finally:
            browser.close()
