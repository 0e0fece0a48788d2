"""The words of an alert: the e-mail subject and text, and the webhook's JSON body.

Everything a person reads is in Vietnamese words: the rule's label, the category and
group labels from the catalog and the policy, the device as the school names it, the
time in the school's zone. The only address in an alert is the device's own (in the
link to its events on the admin page, when the school has not named the device).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

from filterd.policy.alert_rules import NO_ALERTS, AlertRules
from filterd.words import format_datetime, term

NAMES_SHOWN = 5
SCHEMA_VERSION = 1

@dataclass(frozen=True)
class Words:
    """What rendering needs to know of the school and its policy (from the running engine)."""

    school_name: str
    school_id: str
    tz: tzinfo
    admin_url: str = ""
    rules: AlertRules = NO_ALERTS
    groups: Mapping[str, str] = field(default_factory=dict)      # id -> label (fallback)
    categories: Mapping[str, str] = field(default_factory=dict)  # id -> label (fallback)
    lang: str = "vi"   # messages are Vietnamese; the admin page may show English
    words: Any = None  # filterd.words.explain.Words of the running engine: the one catalog

    def when(self, ts: float) -> str:
        return format_datetime(ts, self.lang, self.tz, weekday=True)

    def local_input(self, ts: float) -> str:
        """The admin page's datetime-local form value, in the school's zone."""
        return datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%dT%H:%M")

    def group(self, gid: str | None) -> str:
        if self.words is not None and gid:
            return self.words.group(gid, self.lang)
        return self.groups.get(gid or "", "") or gid or ""

    def category(self, cid: str | None) -> str:
        if not cid:
            return ""
        if self.words is not None:
            return self.words.category(cid, self.lang)
        return self.categories.get(cid, "") or cid

    def device(self, alert: Mapping[str, Any]) -> str:
        named = self.rules.device_name(alert.get("client_ip"), alert.get("client_mac"))
        if named:
            return named
        en = self.lang == "en"
        if alert.get("client_mac"):
            return (f"unnamed device (MAC {alert['client_mac']}, address {alert['client_ip']})"
                    if en else f"thiết bị chưa đặt tên (MAC {alert['client_mac']}, "
                               f"địa chỉ {alert['client_ip']})")
        return (f"unnamed device (address {alert.get('client_ip')})" if en
                else f"thiết bị chưa đặt tên (địa chỉ {alert.get('client_ip')})")

    def rule_label(self, alert: Mapping[str, Any]) -> str:
        en = self.lang == "en"
        if alert.get("kind") == "health":
            return term("alert_problem", alert["rule"], self.lang)
        r = self.rules.by_id(alert["rule"])
        if r is not None:
            return r.label(self.lang)
        return (f"Rule {alert['rule']} (no longer in the policy)" if en else
                f"Quy tắc {alert['rule']} (không còn trong chính sách)")

    def events_link(self, alert: Mapping[str, Any]) -> str:
        if not self.admin_url or alert.get("kind") == "health":
            return ""
        q = {"client": alert["client_ip"], "since": self.local_input(alert["first_ts"]),
             "until": self.local_input(alert["last_ts"] + 60)}
        return f"{self.admin_url.rstrip('/')}/events?{urlencode(q)}"

    def alert_link(self, alert: Mapping[str, Any]) -> str:
        return f"{self.admin_url.rstrip('/')}/alerts/{alert['id']}" if self.admin_url else ""


def _names(alert: Mapping[str, Any]) -> list[str]:
    names = alert.get("names") or "[]"
    return json.loads(names) if isinstance(names, str) else list(names)


def alert_dict(alert: Mapping[str, Any], w: Words) -> dict[str, Any]:
    """One alert as the webhook carries it (and the text is written from)."""
    out: dict[str, Any] = {
        "id": alert["id"], "kind": alert.get("kind", "safeguarding"), "rule": alert["rule"],
        "rule_label": w.rule_label(alert),
        "first_seen": datetime.fromtimestamp(alert["first_ts"], w.tz).isoformat(),
        "last_seen": datetime.fromtimestamp(alert["last_ts"], w.tz).isoformat(),
        "first_seen_text": w.when(alert["first_ts"]), "attempts": alert["attempts"],
        "link": w.alert_link(alert)}
    if out["kind"] == "health":
        out["detail"] = alert.get("detail", "")
        return out
    out.update({
        "category": alert.get("category"), "category_label": w.category(alert.get("category")),
        "group": alert.get("group_id"), "group_label": w.group(alert.get("group_id")),
        "device": w.device(alert), "names": _names(alert)[:NAMES_SHOWN],
        "events_link": w.events_link(alert)})
    return out


def _attempts(n: int) -> str:
    return f"{n} lần"


def _alert_lines(a: dict[str, Any], w: Words) -> list[str]:
    if a["kind"] == "health":
        lines = [f"Sự cố:          {a['rule_label']}", f"Lúc:            {a['first_seen_text']}"]
        if a.get("detail"):
            lines.append(f"Chi tiết:       {a['detail']}")
        if a["link"]:
            lines.append(f"Xem và đánh dấu đã xử lý: {a['link']}")
        return lines
    lines = [f"Việc gì:        {a['rule_label']}"]
    if a["category_label"]:
        lines.append(f"Loại nội dung:  {a['category_label']}")
    lines += [f"Lúc:            {a['first_seen_text']}",
              f"Nhóm:           {a['group_label']}",
              f"Thiết bị:       {a['device']}",
              f"Số lần:         {_attempts(a['attempts'])}"]
    if a["names"]:
        lines.append(f"Trang:          {', '.join(a['names'])}")
    if a["events_link"]:
        lines.append(f"Xem các lần truy cập: {a['events_link']}")
    if a["link"]:
        lines.append(f"Đánh dấu đã xử lý:    {a['link']}")
    return lines


FOOTER = ("Tin này chỉ gửi cho cán bộ của trường, không gửi lên Phòng/Sở. Hãy trao đổi với "
          "học sinh một cách nhẹ nhàng; đường dây nóng bảo vệ trẻ em: 111.")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    body: dict[str, Any]     # the webhook JSON


def render(alerts: Sequence[Mapping[str, Any]], w: Words, *, key: str, digest: bool = False,
           recipient: str = "") -> Rendered:
    items = [alert_dict(a, w) for a in alerts]
    school = w.school_name
    if digest:
        kind = "digest"
        subject = f"[filterd] Tổng hợp cảnh báo trong ngày — {len(items)} cảnh báo — {school}"
        head = [f"Tổng hợp cảnh báo trong ngày — {school}", ""]
        body_lines = []
        for i, a in enumerate(items, 1):
            body_lines += [f"{i}.", *_alert_lines(a, w), ""]
    elif items and items[0]["kind"] == "health":
        kind = "health"
        a = items[0]
        if a["rule"] == "test":
            subject = f"[filterd] Thử gửi cảnh báo — {school}"
            head = [f"Thử gửi cảnh báo — {school}", "",
                    "Nếu bạn đọc được tin này, cảnh báo của trường đến được với bạn.", ""]
        else:
            subject = f"[filterd] Sự cố thiết bị lọc: {a['rule_label']} — {school}"
            head = [f"Sự cố thiết bị lọc — {school}", ""]
        body_lines = [*_alert_lines(a, w), ""]
    else:
        kind = "alert"
        a = items[0]
        subject = (f"[filterd] Cảnh báo: {a['rule_label']} — {a['group_label']} — "
                   f"{a['device']} ({_attempts(a['attempts'])})")
        head = [f"Cảnh báo an toàn cho học sinh — {school}", ""]
        body_lines = [*_alert_lines(a, w), ""]
    text = "\n".join([*head, *body_lines, FOOTER if kind != "health" else
                      "Tin này gửi cho cán bộ CNTT của trường."]) + "\n"
    body = {"version": SCHEMA_VERSION, "id": key, "type": kind,
            "school": {"id": w.school_id, "name": school}, "recipient": recipient,
            "subject": subject, "text": text, "alerts": items}
    return Rendered(subject, text, body)


def next_digest(now: float, tz: tzinfo, at: str) -> float:
    """The next time of day `at` ("16:30") after `now`, in the school's zone."""
    h, m = (int(x) for x in at.split(":"))
    local = datetime.fromtimestamp(now, tz)
    t = local.replace(hour=h, minute=m, second=0, microsecond=0)
    if t <= local:
        t += timedelta(days=1)
    return t.timestamp()
