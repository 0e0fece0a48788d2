"""Every fixed word a person reads, by kind and code, in Vietnamese and English.

Codes are what files, the database and the wire carry (`scheduled_category`,
`override.create`); people read the words here. Words that a school writes
itself (category names in categories.yaml, group and schedule names in the
policy) are not here: `filterd.words.Words` reads them from the loaded files.

A code with no word falls back to the code itself, so a new code shows up
instead of disappearing; tests/words check that every code of every kind the
code base uses has both words.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

LANGS = ("vi", "en")

_T = dict[str, tuple[str, str]]   # code -> (vi, en)

REASON: _T = {
    "protected": ("Nội dung vi phạm pháp luật (danh sách bảo vệ)",
                  "Illegal content (protected list)"),
    "bypass": ("Cách vượt qua bộ lọc", "A way around the filter"),
    "override": ("Giáo viên mở tạm thời", "Teacher's temporary opening"),
    "education": ("Trang giáo dục được cho phép", "Allowed education site"),
    "group_allow": ("Danh sách cho phép của nhóm", "The group's allowlist"),
    "group_deny": ("Danh sách chặn của nhóm", "The group's blocklist"),
    "feed_allow": ("Danh sách cho phép của cơ quan quản lý giáo dục",
                   "The education office's allowlist"),
    "feed_deny": ("Danh sách chặn của cơ quan quản lý giáo dục",
                  "The education office's blocklist"),
    "reported": ("Trang bị báo cáo có hại, nhà trường đã chặn",
                 "Reported as harmful, blocked by the school"),
    "category": ("Loại nội dung luôn bị chặn", "Kind of content always blocked"),
    "scheduled_category": ("Loại nội dung bị chặn trong khung giờ",
                           "Kind of content blocked at this time"),
    "safe_search": ("Tìm kiếm an toàn", "Safe search"),
    "youtube": ("Chế độ hạn chế của YouTube", "YouTube restricted mode"),
    "default": ("Không có quy tắc nào chặn", "No rule blocks it"),
}

ACTION: _T = {
    "allow": ("Cho phép", "Allowed"),
    "block": ("Đã chặn", "Blocked"),
    "rewrite": ("Chuyển sang tìm kiếm an toàn", "Sent to safe search"),
    "enforce": ("Cho phép, có hạn chế", "Allowed with restrictions"),
}

BLOCK_MODE: _T = {
    "address": ("Chuyển đến trang thông báo chặn", "Show the block page"),
    "nxdomain": ("Trả lời «không có tên miền này»", "Answer “no such name”"),
    "null": ("Trả lời địa chỉ rỗng (0.0.0.0)", "Answer an empty address (0.0.0.0)"),
    "nodata": ("Trả lời rỗng", "Answer with no address"),
}

LEVEL: _T = {   # safe search and YouTube restriction
    "off": ("Tắt", "Off"),
    "moderate": ("Vừa phải", "Moderate"),
    "strict": ("Nghiêm ngặt", "Strict"),
}

ROLE: _T = {
    "admin": ("quản trị", "admin"),
    "teacher": ("giáo viên", "teacher"),
    "viewer": ("chỉ xem", "viewer"),
}

AUDIT: _T = {
    "account.first_admin": ("Tạo tài khoản quản trị đầu tiên", "First admin account created"),
    "account.create": ("Tạo tài khoản", "Account created"),
    "account.update": ("Sửa tài khoản", "Account changed"),
    "account.password": ("Đổi mật khẩu", "Password changed"),
    "policy.edit": ("Sửa chính sách lọc", "Filter policy edited"),
    "review.approve": ("Chấp nhận đề nghị xem xét", "Review request approved"),
    "review.decline": ("Từ chối đề nghị xem xét", "Review request declined"),
    "lists.update": ("Cập nhật danh sách chặn", "Block lists updated"),
    "lists.import": ("Nhập danh sách chặn", "Block lists imported"),
    "settings.save": ("Lưu cài đặt", "Settings saved"),
    "override.create": ("Mở tạm thời một trang", "Site opened for a lesson"),
    "override.refused": ("Không cho mở tạm thời", "Temporary opening refused"),
    "override.revoke": ("Gỡ bỏ lệnh mở tạm thời", "Temporary opening removed"),
    "reload": ("Nạp lại bộ lọc", "Filter reloaded"),
    "restart": ("Khởi động lại bộ lọc", "Filter restarted"),
    "session.logout": ("Đăng xuất", "Signed out"),
    "site_report.block": ("Chặn trang bị báo cáo cho toàn trường",
                          "Reported site blocked for the school"),
    "site_report.dismiss": ("Bỏ qua báo cáo trang có hại", "Harmful-site report dismissed"),
    "site_report.forward": ("Gửi báo cáo trang có hại lên Phòng/Sở",
                            "Harmful-site report sent to the office"),
    "alerts.save": ("Lưu cài đặt cảnh báo", "Alert settings saved"),
    "alerts.test": ("Gửi thử cảnh báo", "Test alert sent"),
    "filter.reload": ("Nạp lại bộ lọc", "Filter reloaded"),
    "filter.restart": ("Khởi động lại bộ lọc", "Filter restarted"),
    "alert.handle": ("Đánh dấu cảnh báo đã xử lý", "Alert marked handled"),
    "alert.recipient.create": ("Thêm người nhận cảnh báo", "Alert recipient added"),
    "alert.recipient.update": ("Sửa người nhận cảnh báo", "Alert recipient changed"),
    "alert.recipient.delete": ("Xoá người nhận cảnh báo", "Alert recipient removed"),
}

OUTCOME: _T = {
    "ok": ("thành công", "done"),
    "refused": ("bị từ chối", "refused"),
    "error": ("lỗi", "error"),
}

REVIEW_STATUS: _T = {
    "open": ("Đang chờ", "Waiting"),
    "approved": ("Đã chấp nhận", "Approved"),
    "declined": ("Đã từ chối", "Declined"),
}

ACCOUNT_STATE: _T = {
    "active": ("đang dùng", "active"),
    "disabled": ("đã khoá", "locked"),
}

LIST_STATE: _T = {
    "enabled": ("đang dùng", "in use"),
    "disabled": ("đang tắt", "turned off"),
    "never": ("chưa tải lần nào", "never downloaded"),
    "ok": ("tốt", "fine"),
    "error": ("lỗi lần tải gần nhất", "last download failed"),
}

LIST_FORMAT: _T = {
    "domains": ("danh sách tên miền", "domain list"),
    "hosts": ("tệp hosts", "hosts file"),
    "adblock": ("danh sách kiểu adblock", "adblock-style list"),
    "ut1": ("gói UT1", "UT1 bundle"),
}

PATH: _T = {   # which part of the appliance saw the request
    "dns": ("DNS", "DNS"),
    "http": ("Web (HTTP)", "Web (HTTP)"),
    "sni": ("Web (HTTPS)", "Web (HTTPS)"),
    "intercept": ("Web (HTTPS, giải mã)", "Web (HTTPS, decrypted)"),
    "check": ("Kiểm tra", "Check"),
    "bypass": ("Vượt bộ lọc", "Bypass"),
}

BUILTIN_SOURCE: _T = {   # RuleSource("builtin", name)
    "bypass": ("bảng tên miền vượt bộ lọc có sẵn", "built-in table of bypass names"),
    "safe_search": ("bảng tìm kiếm an toàn có sẵn", "built-in safe-search table"),
    "youtube": ("bảng YouTube có sẵn", "built-in YouTube table"),
    "default": ("mặc định: cho phép", "default: allowed"),
    "default_group": ("nhóm mặc định có sẵn (lọc nghiêm nhất)",
                      "built-in default group (strictest)"),
    "policy": ("chính sách có sẵn", "built-in policy"),
}

ALERT_ROLE: _T = {   # who receives alerts (filterd/policy/alert_rules.py ROLES)
    "principal": ("Ban giám hiệu", "School leadership"),
    "counsellor": ("Giáo viên tư vấn tâm lý", "Counsellor"),
    "class_teacher": ("Giáo viên chủ nhiệm", "Class teacher"),
    "it": ("Cán bộ phụ trách CNTT", "IT staff"),
}

ALERT_PROBLEM: _T = {   # appliance health alerts (filterd/alerts/health.py)
    "upstreams": ("Máy chủ DNS phía trên không trả lời", "Upstream DNS servers do not answer"),
    "lists_stale": ("Danh sách chặn lâu chưa được cập nhật",
                    "The block lists have not been updated for long"),
    "feeds_stale": ("Lâu chưa tải được danh sách của Phòng/Sở (bản cũ vẫn dùng)",
                    "The education office's feeds have not been pulled for long "
                    "(the last good ones still apply)"),
    "disk": ("Ổ đĩa của thiết bị lọc sắp đầy", "The appliance's disk is nearly full"),
    "events_dropped": ("Có sự kiện không ghi kịp và bị bỏ",
                       "Events were dropped (not written in time)"),
    "reload_refused": ("Chính sách mới bị từ chối khi nạp lại (chính sách cũ vẫn chạy)",
                       "A new policy was refused on reload (the old one still runs)"),
    "test": ("Thử gửi cảnh báo (filterd alerts test)", "Test alert (filterd alerts test)"),
}

ALERT_DELIVERY: _T = {   # a message's state in the alert queue (filterd/state/alerts.py)
    "pending": ("đang chờ gửi", "waiting to be sent"),
    "sending": ("đang gửi", "being sent"),
    "sent": ("đã gửi đến", "delivered"),
    "failed": ("không gửi được (đã ngừng thử)", "not delivered (given up)"),
}

ALERT_CHANNEL: _T = {
    "email": ("thư điện tử", "e-mail"),
    "webhook": ("webhook (Zalo, Telegram…)", "webhook (Zalo, Telegram…)"),
}

FEED: _T = {   # the education office's signed feeds (filterd/sync/feed.py)
    "protected": ("Danh sách nội dung vi phạm pháp luật của cơ quan quản lý",
                  "The authorities' list of illegal content"),
    "deny": ("Danh sách chặn bổ sung của Phòng/Sở", "The education office's deny additions"),
    "allow": ("Danh sách cho phép bổ sung của Phòng/Sở",
              "The education office's allow additions"),
    "education": ("Danh sách trang giáo dục bổ sung của Phòng/Sở",
                  "The education office's education allowlist additions"),
    "notices": ("Thông báo của Phòng/Sở cho cán bộ CNTT",
                "The education office's notices for IT staff"),
}

SITE_REPORT_STATUS: _T = {   # filterd/state/site_reports.py
    "new": ("mới", "new"),
    "blocked": ("đã chặn cho toàn trường", "blocked for the school"),
    "dismissed": ("đã bỏ qua", "dismissed"),
    "pending": ("đã gửi, chờ Phòng/Sở", "sent, waiting for the office"),
    "accepted": ("Phòng/Sở đã chấp nhận: chặn ở mọi trường",
                 "accepted by the office: blocked in every school"),
    "rejected": ("Phòng/Sở đã từ chối", "rejected by the office"),
}

KINDS: Mapping[str, _T] = MappingProxyType({
    "reason": REASON, "action": ACTION, "block_mode": BLOCK_MODE, "level": LEVEL,
    "role": ROLE, "audit": AUDIT, "outcome": OUTCOME, "review_status": REVIEW_STATUS,
    "account_state": ACCOUNT_STATE, "list_state": LIST_STATE, "list_format": LIST_FORMAT,
    "path": PATH, "builtin_source": BUILTIN_SOURCE, "alert_role": ALERT_ROLE,
    "alert_problem": ALERT_PROBLEM, "alert_delivery": ALERT_DELIVERY,
    "alert_channel": ALERT_CHANNEL,
    "feed": FEED, "site_report_status": SITE_REPORT_STATUS,
})


def term(kind: str, code: object, lang: str = "vi") -> str:
    """The word for `code` of `kind` (e.g. term("reason", "category", "en")); else the code."""
    code = str(getattr(code, "value", code) or "")
    pair = KINDS[kind].get(code)
    if pair is None:
        return code
    return pair[1] if lang == "en" else pair[0]


def terms(kind: str, lang: str = "vi") -> dict[str, str]:
    """code -> word for every code of `kind`, in catalog order (for select boxes)."""
    i = 1 if lang == "en" else 0
    return {code: pair[i] for code, pair in KINDS[kind].items()}
