"""Alerts end to end: dig from a student's address -> the running daemon -> a real SMTP
server and a webhook receiver on loopback, through the durable queue.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.alerts.harness import AlertDaemon, SmtpSink, WebhookSink
from tests.dns.dnshelpers import Unbound, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def running(tmp_path_factory, unbound):
    """One daemon with three staff by e-mail, one by webhook, and the SMTP server up."""
    tmp = tmp_path_factory.mktemp("alerts")
    smtp = SmtpSink().start()
    hook = WebhookSink()
    d = AlertDaemon(tmp, unbound.address, smtp.port)
    d.add_recipient("Cô Lan (Hiệu trưởng)", "principal", email="hieutruong@truong.test")
    d.add_recipient("Thầy Nam (chủ nhiệm 10A)", "class_teacher", email="gvcn10a@truong.test",
                    groups="thpt")
    d.add_recipient("Cô Hoa (chủ nhiệm 6A)", "class_teacher", email="gvcn6a@truong.test",
                    groups="thcs")
    d.add_recipient("Cô Mai (tư vấn)", "counsellor", webhook=hook.url)
    d.add_recipient("Anh Tuấn (CNTT)", "it", email="it@truong.test")
    d.start()
    yield d, smtp, hook
    d.stop()
    smtp.stop()
    hook.stop()


def mails_to(smtp: SmtpSink, address: str) -> list:
    return [m for m in smtp.messages if m["To"] == address]


def test_protected_query_reaches_staff_by_mail_and_webhook(running):
    d, smtp, hook = running
    # another device's traffic in the same minutes must never appear in the alert
    d.dig("allowed.test", "127.0.0.5")
    d.dig("plain-deny.test", "127.0.0.5")
    started = time.monotonic()
    assert d.dig("protected.test", "127.0.0.2") == "10.0.0.1"   # the block page address
    smtp.wait(2, timeout=10)
    took = time.monotonic() - started
    print(f"dig to both mails: {took:.2f} s")
    assert took < 10
    principal = mails_to(smtp, "hieutruong@truong.test")
    teacher = mails_to(smtp, "gvcn10a@truong.test")
    assert len(principal) == 1 and len(teacher) == 1
    assert not mails_to(smtp, "gvcn6a@truong.test")      # not their class
    assert not mails_to(smtp, "it@truong.test")          # not their rule
    m = principal[0]
    body = m.get_content()
    assert "Truy cập trang trong danh sách bảo vệ" in m["Subject"]
    assert "Máy tính bảng 10A-01" in m["Subject"] and "(1 lần)" in m["Subject"]
    for words in ("Trường THPT Thử Nghiệm", "THPT (15–17 tuổi)", "Máy tính bảng 10A-01",
                  "Nội dung vi phạm pháp luật", "Số lần:         1 lần", "protected.test",
                  "https://quantri.truong.test/events?client=127.0.0.2&since=",
                  "https://quantri.truong.test/alerts/"):
        assert words in body, (words, body)
    assert "127.0.0.5" not in body and "plain-deny" not in body and "allowed.test" not in body
    assert m["Message-ID"].startswith("<alert-") and m["From"] == "canhbao@truong.test"
    # the time, in the school's zone (Asia/Ho_Chi_Minh, UTC+7)
    assert " Thứ " in body or "Chủ nhật" in body

    hook.wait(1)
    j = hook.bodies[0]
    assert j["type"] == "alert" and j["version"] == 1
    assert hook.headers[0]["Idempotency-Key"] == j["id"]
    a = j["alerts"][0]
    assert a["rule"] == "bao_ve" and a["attempts"] == 1
    assert a["device"] == "Máy tính bảng 10A-01" and a["group"] == "thpt"
    assert a["group_label"] == "THPT (15–17 tuổi)"
    assert a["category_label"] == "Nội dung vi phạm pháp luật"
    assert a["names"] == ["protected.test"] and a["first_seen"].endswith("+07:00")
    assert "127.0.0.5" not in str(j)
    # recorded: to whom, delivered (marked once the receiver has accepted it)
    d.wait_for("SELECT 1 WHERE (SELECT COUNT(*) FROM alert_messages WHERE state = 'sent') = 3",
               timeout=5)
    rows = d.query("SELECT recipient, channel, state FROM alert_messages ORDER BY id")
    assert sorted(rows) == sorted([("Cô Lan (Hiệu trưởng)", "email", "sent"),
                                   ("Thầy Nam (chủ nhiệm 10A)", "email", "sent"),
                                   ("Cô Mai (tư vấn)", "webhook", "sent")])


def test_ten_queries_make_one_alert_saying_ten_attempts(running):
    d, smtp, _hook = running
    before = len(mails_to(smtp, "hieutruong@truong.test"))
    for _ in range(10):
        d.dig("forbidden.test", "127.0.0.6")
    smtp.wait(len(smtp.messages) + 1, timeout=10)
    time.sleep(3)   # longer than the hold: nothing more comes for these ten
    new = mails_to(smtp, "hieutruong@truong.test")[before:]
    assert len(new) == 1, [m["Subject"] for m in new]
    assert "(10 lần)" in new[0]["Subject"] and "Số lần:         10 lần" in new[0].get_content()
    assert "thiết bị chưa đặt tên (địa chỉ 127.0.0.6)" in new[0].get_content()
    # the eleventh within ten minutes is counted into the same alert, not a new mail
    d.dig("forbidden.test", "127.0.0.6")
    d.wait_for("SELECT 1 FROM alerts WHERE client_ip = '127.0.0.6' AND attempts = 11")
    time.sleep(3)
    assert len(mails_to(smtp, "hieutruong@truong.test")[before:]) == 1


def test_staff_and_other_groups_do_not_alert(running):
    d, smtp, _ = running
    n = len(smtp.messages)
    d.dig("protected.test", "127.0.0.3")     # a teacher's laptop: not a rule's group
    d.dig("xvideos.com", "127.0.0.4")         # blocked (adult), but no rule for it
    time.sleep(3.5)
    assert len(smtp.messages) == n


def test_smtp_down_then_up_delivers_once_with_two_workers(tmp_path, unbound):
    """Two DNS worker processes count into the same alert; only one of them delivers."""
    port = free_port()
    d = AlertDaemon(tmp_path, unbound.address, port, workers=2)
    d.add_recipient("Cô Lan", "principal", email="hieutruong@truong.test")
    d.start()
    smtp = None
    try:
        for _ in range(10):   # dig's random source ports spread these over both workers
            d.dig("protected.test", "127.0.0.7")
        # the mail server refuses: tried, failed, tried again with backoff
        d.wait_for("SELECT 1 FROM alert_messages WHERE tries >= 2 AND state = 'pending'"
                   " AND last_error LIKE 'cannot reach the mail server%'", timeout=20)
        smtp = SmtpSink(port).start()
        smtp.wait(1, timeout=10)
        time.sleep(2)
        assert len(smtp.messages) == 1
        assert "(10 lần)" in smtp.messages[0]["Subject"]
        assert d.query("SELECT state, last_error FROM alert_messages") == [("sent", "")]
        pids = {int(line.split("[")[1].split("]")[0]) for line in d.logtext().splitlines()
                if "filterd DNS serving" in line}
        assert len(pids) == 2, d.logtext()[-2000:]
    finally:
        d.stop()
        if smtp:
            smtp.stop()


def test_kill9_between_query_and_delivery_still_delivers_once(tmp_path, unbound):
    port = free_port()
    d = AlertDaemon(tmp_path, unbound.address, port)
    d.add_recipient("Cô Lan", "principal", email="hieutruong@truong.test")
    d.start()
    smtp = None
    try:
        d.dig("protected.test", "127.0.0.8")
        # logged and queued, not delivered (the mail server is not up yet)
        d.wait_for("SELECT 1 FROM alerts WHERE client_ip = '127.0.0.8'", timeout=10)
        d.kill9()
        smtp = SmtpSink(port).start()
        d.start()
        smtp.wait(1, timeout=15)
        time.sleep(2)
        assert len(smtp.messages) == 1
        assert "(1 lần)" in smtp.messages[0]["Subject"]
        assert d.query("SELECT state FROM alert_messages") == [("sent",)]
    finally:
        if d.proc is not None:
            d.stop()
        if smtp:
            smtp.stop()


def test_a_bad_rule_is_refused_on_reload_old_rules_keep_alerting_and_it_staff_hear(running):
    d, smtp, _ = running
    good = (d.policy_dir / "alerts.yaml").read_text()
    (d.policy_dir / "alerts.yaml").write_text(good.replace("when: protected", "when: sometimes"))
    try:
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while not mails_to(smtp, "it@truong.test"):
            assert time.monotonic() < deadline, d.logtext()[-2000:]
            time.sleep(0.1)
        (m,) = mails_to(smtp, "it@truong.test")
        assert "Chính sách mới bị từ chối" in m["Subject"]
        body = m.get_content()
        assert "alerts.yaml:8" in body and "alerts.rules.bao_ve.when" in body, body
        # the running rules still alert
        n = len(mails_to(smtp, "hieutruong@truong.test"))
        d.dig("protected.test", "127.0.0.9")
        deadline = time.monotonic() + 10
        while len(mails_to(smtp, "hieutruong@truong.test")) == n:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        (d.policy_dir / "alerts.yaml").write_text(good)
        d.proc.send_signal(signal.SIGHUP)


def test_a_new_mail_server_in_filterd_yaml_applies_on_reload(running):
    d, smtp, _ = running
    other = SmtpSink().start()
    text = d.config.read_text()
    try:
        d.config.write_text(text.replace(f"smtp_port: {smtp.port}", f"smtp_port: {other.port}"))
        before = d.logtext().count("reloaded policy")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while d.logtext().count("reloaded policy") == before:
            assert time.monotonic() < deadline, d.logtext()[-2000:]
            time.sleep(0.1)
        d.dig("protected.test", "127.0.0.7")
        other.wait(2, timeout=10)
        assert {m["To"] for m in other.messages} == {"hieutruong@truong.test",
                                                      "gvcn10a@truong.test"}
    finally:
        d.config.write_text(text)
        d.proc.send_signal(signal.SIGHUP)
        other.stop()


def test_filterd_alerts_test_reaches_everyone_and_status_shows_it(running):
    import subprocess
    import sys

    d, smtp, hook = running
    n, h = len(smtp.messages), len(hook.bodies)
    env = d.env()
    run = subprocess.run([sys.executable, "-m", "filterd", "alerts", "test", "--config",
                          str(d.config)], capture_output=True, text=True, timeout=60, env=env,
                         cwd=str(d.tmp))
    assert run.returncode == 0, run.stderr
    assert "queued for 5 recipient(s)" in run.stdout
    smtp.wait(n + 4, timeout=10)      # four by e-mail, one by webhook
    hook.wait(h + 1)
    assert all("Thử gửi cảnh báo" in m["Subject"] for m in smtp.messages[n:])
    assert hook.bodies[-1]["type"] == "health" and hook.bodies[-1]["alerts"][0]["rule"] == "test"
    time.sleep(1)
    status = subprocess.run([sys.executable, "-m", "filterd", "alerts", "status", "--config",
                             str(d.config)], capture_output=True, text=True, timeout=60,
                            env=env, cwd=str(d.tmp))
    assert status.returncode == 0 and "sent" in status.stdout, status
