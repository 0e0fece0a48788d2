"""In headless Chromium against `filterd run` and `filterd admin serve`, metrics off (the
default) and on: a policy file broken on disk -> the dashboard's banner with the loader's
message; a settings save whose reload the daemon refuses -> "bị từ chối" with that message
(never "reloaded"); the file fixed -> "files differ" banner, *Nạp lại ngay* -> reloaded,
and the block page shows the school name saved meanwhile, without a restart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.admin_ui.conftest import REPO
from tests.admin_ui.test_e2e_browser import (
    CHROMIUM,
    STAFF_CLIENT,
    UPSTREAM_IP,
    FakeUpstream,
    ask,
    free_port,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "mật khẩu đủ dài 2026"
BROKEN = "    mau_sac: do\n"


@pytest.fixture(params=[False, True], ids=["metrics-off", "metrics-on"])
def stack(tmp_path, request):
    upstream = FakeUpstream()
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    dns_port, admin_port, bp_port = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(
        f"school_id: e2e-school\nschool_name: Trường Cũ\ndata_dir: {tmp_path / 'data'}\n"
        f"policy_dir: {tmp_path / 'policies'}\nappliance_ipv4: 10.0.0.1\n"
        f"dns:\n  listen: ['127.0.0.1:{dns_port}']\n  upstreams: ['127.0.0.1:{upstream.port}']\n"
        "  upstream_timeout: 0.5\n"
        f"http:\n  block_page_listen: '127.0.0.1:{bp_port}'\n  proxy_listen: '127.0.0.1:0'\n"
        f"admin:\n  listen: '127.0.0.1:{admin_port}'\n"
        + (f"metrics:\n  listen: '127.0.0.1:{free_port()}'\n" if request.param else ""),
        encoding="utf-8")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "filterd", "admin", "create-user", "thu.ha", "--role",
                    "admin", "--password-stdin", "--config", str(cfg)], input=PASSWORD + "\n",
                   text=True, env=env, check=True, capture_output=True, timeout=60)
    logs = {n: open(tmp_path / f"{n}.log", "wb") for n in ("daemon", "admin")}  # noqa: SIM115
    procs = [subprocess.Popen([sys.executable, "-m", "filterd", *args, "--config", str(cfg)],
                              stdout=logs[n], stderr=logs[n], env=env, cwd=tmp_path)
             for n, args in (("daemon", ["run"]), ("admin", ["admin", "serve"]))]
    try:
        def up() -> bool:
            for p, n in zip(procs, logs, strict=True):
                assert p.poll() is None, (tmp_path / f"{n}.log").read_text()
            try:
                ok = ask(dns_port, "example.org")[1] == [UPSTREAM_IP]
            except Exception:
                return False
            with socket.socket() as s:
                return ok and s.connect_ex(("127.0.0.1", admin_port)) == 0 and \
                    (tmp_path / "data" / "reload.json").exists()

        wait_for(up, 60, "the daemon and the admin page")
        yield {"url": f"http://127.0.0.1:{admin_port}", "tmp": tmp_path,
               "blockpage": f"http://127.0.0.1:{bp_port}", "metrics": request.param}
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for fh in logs.values():
            fh.close()
        upstream.close()


def block_page_footer(blockpage: str) -> str:
    out = subprocess.run(["curl", "-sS", "--max-time", "15", "--interface", STAFF_CLIENT,
                          "-H", "Host: bet365.com", blockpage + "/"], capture_output=True,
                         text=True, timeout=30).stdout
    return out.split("<footer>", 1)[1].split("</footer>", 1)[0] if "<footer>" in out else out


def test_refused_reload_and_broken_file_in_chromium(stack, artifacts_dir):
    shots = artifacts_dir / "admin"
    shots.mkdir(parents=True, exist_ok=True)
    tag = "metrics-on" if stack["metrics"] else "metrics-off"
    url = stack["url"]
    policy = stack["tmp"] / "policies" / "policy.yaml"
    good = policy.read_text(encoding="utf-8")
    # Someone edits the file by hand and breaks it: an unknown category for the guests.
    assert "  khach:\n" in good
    broken = good.replace("  khach:\n", "  khach:\n" + BROKEN, 1)
    line = broken.splitlines().index("    mau_sac: do") + 1
    policy.write_text(broken, encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(url + "/login")
            page.fill("#name", "thu.ha")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(url + "/")
            # The dashboard names the broken file before anyone reloads.
            banner = page.locator("#disk-broken")
            expect(banner).to_contain_text("Các tệp trên đĩa không nạp được")
            expect(banner).to_contain_text(f"policy.yaml:{line}")
            expect(banner).to_contain_text("mau_sac")
            expect(page.locator("#filter-tile")).to_contain_text(
                "Bộ lọc đang chạy theo chính sách cũ")
            page.screenshot(path=str(shots / f"reload-disk-broken-{tag}.png"), full_page=True)
            # A settings save: the file is saved, the daemon refuses the reload.
            page.goto(url + "/settings")
            page.fill("#school_name", "THCS Nguyễn Du")
            page.fill("#reason", "đổi tên trường")
            page.get_by_role("button", name="Lưu").click()
            flash = page.locator(".flash.error").first
            expect(flash).to_contain_text("Bộ lọc không nạp lại: bị từ chối")
            expect(flash).to_contain_text(f"policy.yaml:{line}")
            expect(page.locator(".flash.ok")).not_to_contain_text("đã nạp lại")
            page.goto(url + "/")
            refused = page.locator("#reload-refused")
            expect(refused).to_contain_text("Lần nạp lại gần nhất bị từ chối")
            expect(refused).to_contain_text("mau_sac")
            page.screenshot(path=str(shots / f"reload-refused-{tag}.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(shots / f"reload-refused-{tag}-390.png"), full_page=True)
            page.set_viewport_size({"width": 1280, "height": 900})
            assert "Trường Cũ" in block_page_footer(stack["blockpage"])   # old one still serves
            # Fixed by hand: the page says the files differ from what runs; reload from it.
            policy.write_text(good, encoding="utf-8")
            page.goto(url + "/")
            expect(page.locator("#disk-differs")).to_contain_text("policy.yaml")
            page.get_by_role("button", name="Nạp lại ngay").click()
            expect(page.locator(".flash.ok").first).to_contain_text("Bộ lọc đã nạp lại")
            expect(page.locator("#disk-differs")).to_have_count(0)
            expect(page.locator("#reload-refused")).to_have_count(0)
            expect(page.locator("#filter-tile")).to_contain_text("đã nhận")
        finally:
            browser.close()
    # The school name saved during the refused reload is live now, with no restart.
    assert "THCS Nguyễn Du" in block_page_footer(stack["blockpage"])
