"""A Decision in plain words, Vietnamese or English, for a child or for staff.

The same function renders `filterd check`, the block page and the teacher's
"why blocked" page, so everyone reads the same reason. `for_staff=True` adds
the group, the time, the rule that matched and where it is written.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from filterd.policy.decision import Action, Decision, Reason

DISPLAY_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HOTLINE_VI = ("Nếu em thấy lo lắng hoặc cần giúp đỡ, hãy nói với thầy cô hoặc gọi "
              "Tổng đài quốc gia bảo vệ trẻ em 111 (miễn phí, 24/7).")
HOTLINE_EN = ("If you feel worried or need help, talk to a teacher or call the national "
              "child protection hotline 111 (free, 24/7).")
_DAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
_DAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CATALOG_FILE = Path(__file__).resolve().parent.parent.parent / "blocklists" / "categories.yaml"


@lru_cache(maxsize=1)
def _catalog():
    from filterd.policy.catalog import load_catalog
    try:
        return load_catalog(_CATALOG_FILE)
    except Exception:  # words only: an explanation must never fail because of the catalog
        return {}


def category_words(category: str | None, lang: str) -> tuple[str, str, bool]:
    """(label, child sentence, sensitive) for a category; the id itself if unknown."""
    if not category:
        return ("", "", False)
    c = _catalog().get(category)
    if c is None:
        return (category, "", False)
    return (c.label(lang), c.child(lang), c.sensitive)


def _when(d: Decision, lang: str, tz: tzinfo) -> str:
    t = d.at.astimezone(tz)
    if lang == "en":
        return f"{_DAYS_EN[t.weekday()]} {t:%Y-%m-%d %H:%M}"
    return f"{_DAYS_VI[t.weekday()]}, {t:%d/%m/%Y %H:%M}"


def _headline_vi(d: Decision, group: str) -> str:
    label, _, _ = category_words(d.category, "vi")
    r = d.reason
    if r is Reason.PROTECTED:
        return (f"Đã chặn {d.name}: trang nằm trong danh sách nội dung vi phạm pháp luật. "
                "Không nhóm, danh sách cho phép hay lệnh mở tạm thời nào mở được trang này.")
    if r is Reason.BYPASS:
        return (f"Đã chặn {d.name}: tên miền này dùng để vượt qua bộ lọc của trường "
                "(DNS mã hoá hoặc chuyển tiếp riêng tư).")
    if r is Reason.OVERRIDE:
        return f"Cho phép {d.name}: giáo viên đã mở tạm thời cho nhóm {group}."
    if r is Reason.EDUCATION:
        return f"Cho phép {d.name}: trang giáo dục trong danh sách cho phép chung."
    if r is Reason.GROUP_ALLOW:
        return f"Cho phép {d.name}: trang nằm trong danh sách cho phép của nhóm {group}."
    if r is Reason.GROUP_DENY:
        return f"Đã chặn {d.name}: trang nằm trong danh sách chặn của nhóm {group}."
    if r is Reason.CATEGORY:
        return f"Đã chặn {d.name}: thuộc loại «{label}», luôn bị chặn với nhóm {group}."
    if r is Reason.SCHEDULED_CATEGORY:
        sched = d.schedule_label or d.schedule or ""
        return (f"Đã chặn {d.name}: thuộc loại «{label}», bị chặn trong khung giờ "
                f"«{sched}» với nhóm {group}.")
    if r is Reason.SAFE_SEARCH:
        if d.action is Action.REWRITE:
            return (f"{d.name}: tìm kiếm được chuyển sang chế độ tìm kiếm an toàn "
                    f"({d.rewrite_target}) cho nhóm {group}.")
        return f"{d.name}: bật tìm kiếm an toàn cho nhóm {group}."
    if r is Reason.YOUTUBE:
        mode = "hạn chế vừa" if "moderate" in (d.rule or "") else "hạn chế nghiêm ngặt"
        return f"{d.name}: YouTube ở chế độ {mode} cho nhóm {group}."
    return f"Cho phép {d.name}: không có quy tắc nào chặn trang này với nhóm {group}."


def _headline_en(d: Decision, group: str) -> str:
    label, _, _ = category_words(d.category, "en")
    r = d.reason
    if r is Reason.PROTECTED:
        return (f"Blocked {d.name}: it is on the list of illegal content. No group, allowlist "
                "or teacher override can unblock it.")
    if r is Reason.BYPASS:
        return (f"Blocked {d.name}: this name is used to get around the school's filter "
                "(encrypted DNS or a private relay).")
    if r is Reason.OVERRIDE:
        return f"Allowed {d.name}: a teacher opened it for a short time for the group {group}."
    if r is Reason.EDUCATION:
        return f"Allowed {d.name}: an education site on the shared allowlist."
    if r is Reason.GROUP_ALLOW:
        return f"Allowed {d.name}: it is on the allowlist of the group {group}."
    if r is Reason.GROUP_DENY:
        return f"Blocked {d.name}: it is on the blocklist of the group {group}."
    if r is Reason.CATEGORY:
        return f"Blocked {d.name}: it is in the category “{label}”, always blocked for {group}."
    if r is Reason.SCHEDULED_CATEGORY:
        sched = d.schedule_label_en or d.schedule or ""
        return (f"Blocked {d.name}: it is in the category “{label}”, blocked during "
                f"“{sched}” for {group}.")
    if r is Reason.SAFE_SEARCH:
        if d.action is Action.REWRITE:
            return (f"{d.name}: searches go to the safe-search version "
                    f"({d.rewrite_target}) for {group}.")
        return f"{d.name}: safe search is enforced for {group}."
    if r is Reason.YOUTUBE:
        mode = "moderate" if "moderate" in (d.rule or "") else "strict"
        return f"{d.name}: YouTube is in {mode} restricted mode for {group}."
    return f"Allowed {d.name}: no rule blocks it for {group}."


def explain(decision: Decision, lang: str = "vi", for_staff: bool = True,
            tz: tzinfo | None = None) -> str:
    """Plain words for a Decision. Children get kind words; staff also get rule and source."""
    lang = "en" if lang == "en" else "vi"
    d = decision
    tz = tz or DISPLAY_TZ
    if lang == "en":
        group = d.group_label_en or d.group_label or d.group
    else:
        group = d.group_label or d.group
    lines = [_headline_en(d, group) if lang == "en" else _headline_vi(d, group)]
    _, child, sensitive = category_words(d.category, lang)
    if not for_staff:
        if d.blocked:
            if child:
                lines.append(child)
            if lang == "en":
                lines.append("If you need this page for your schoolwork, ask your teacher.")
            else:
                lines.append("Nếu em cần trang này cho việc học, hãy hỏi thầy cô.")
            if sensitive or d.reason is Reason.PROTECTED:
                lines.append(HOTLINE_EN if lang == "en" else HOTLINE_VI)
        return "\n".join(lines)
    if lang == "en":
        lines.append(f"Group: {group} ({d.group}). Time: {_when(d, lang, tz)}.")
        if d.rule:
            lines.append(f"Rule: {d.rule} — source: {d.source}.")
        if d.categories:
            lines.append("Categories of this name: " + ", ".join(
                category_words(c, lang)[0] for c in d.categories) + ".")
    else:
        lines.append(f"Nhóm: {group} ({d.group}). Thời điểm: {_when(d, lang, tz)}.")
        if d.rule:
            lines.append(f"Quy tắc: {d.rule} — nguồn: {d.source}.")
        if d.categories:
            lines.append("Tên miền thuộc các loại: " + ", ".join(
                category_words(c, lang)[0] for c in d.categories) + ".")
    return "\n".join(lines)
