"""A Decision in plain words, Vietnamese or English, for a child or for staff.

The one module every reader goes through: `filterd check`, the teacher's "why
blocked" page, the block page, the DNS answer's Extended DNS Error text and the
office all call `Words.explain` (or its parts), so a teacher never reads another
reason than the student got. `Words` holds the school's own words: the category
catalog the daemon loaded (the configured categories file, not the source
tree's), the policy's group and schedule names and the school's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from filterd.policy.decision import Action, Decision, Reason, RuleSource
from filterd.words.dates import SCHOOL_TZ, format_datetime
from filterd.words.terms import term

HOTLINE_VI = ("Nếu em thấy lo lắng hoặc cần giúp đỡ, hãy nói với thầy cô hoặc gọi "
              "Tổng đài quốc gia bảo vệ trẻ em 111 (miễn phí, 24/7).")
HOTLINE_EN = ("If you feel worried or need help, talk to a teacher or call the national "
              "child protection hotline 111 (free, 24/7).")
_BUNDLED_CATALOG = Path(__file__).resolve().parents[2] / "blocklists" / "categories.yaml"
# Who publishes a list, by the prefix of its source name (blocklists/sources.yaml).
_PUBLISHERS = {"ut1": ("UT1, Đại học Toulouse", "UT1, University of Toulouse"),
               "seed": ("có sẵn trong filterd", "shipped with filterd"),
               "feed": ("nguồn cấp của Sở/Phòng GD&ĐT", "the education office's feed")}


@lru_cache(maxsize=1)
def bundled_catalog() -> Mapping[str, Any]:
    """The shipped catalog: only for callers that have no loaded one (tests, stand-ins)."""
    from filterd.policy.catalog import load_catalog

    try:
        return load_catalog(_BUNDLED_CATALOG)
    except Exception:  # words only: an explanation must never fail because of the catalog
        return {}


@dataclass(frozen=True, slots=True)
class Field:
    """One labelled line of a Decision for a page: ("Lý do", "Loại nội dung luôn bị chặn")."""

    label: str
    value: str
    code: str = ""     # the internal value, for a `data-code` attribute (never shown)


_LABELS = {
    "action": ("Kết quả", "Result"), "reason": ("Lý do", "Reason"),
    "category": ("Loại nội dung", "Kind of content"), "group": ("Nhóm", "Group"),
    "rule": ("Quy tắc", "Rule"), "source": ("Nguồn", "Source"), "time": ("Thời điểm", "Time"),
    "schedule": ("Khung giờ", "Schedule"), "also": ("Tên miền thuộc các loại",
                                                    "Categories of this name"),
    "until": ("Kết quả này đúng đến", "This answer holds until"),
}


def label(key: str, lang: str) -> str:
    pair = _LABELS[key]
    return pair[1] if lang == "en" else pair[0]


class Words:
    """The school's words plus the fixed ones; cheap to build, immutable once built."""

    def __init__(self, catalog: Mapping[str, Any] | None = None, *,
                 groups: Mapping[str, Any] | None = None,
                 schedules: Mapping[str, Any] | None = None,
                 tz: tzinfo | None = None,
                 list_categories: Mapping[str, str] | None = None,
                 overrides: Any = None) -> None:
        self.catalog = catalog if catalog is not None else bundled_catalog()
        self.groups = groups or {}
        self.schedules = schedules or {}
        self.tz = tz or SCHOOL_TZ
        self.list_categories = dict(list_categories or {})   # list source -> its category
        self._overrides = {o.id: o for o in overrides if hasattr(o, "id")} if overrides else {}

    @classmethod
    def for_engine(cls, engine: Any) -> Words:
        """The words of a running Engine (cached on it: an Engine is immutable)."""
        cache = getattr(engine, "__dict__", None)
        overrides = getattr(engine, "overrides", None)
        if cache is not None:
            hit = cache.get("_words")
            if hit is not None and hit[0] is overrides:
                return hit[1]
        sources = getattr(getattr(engine, "index", None), "sources", {}) or {}
        words = cls(getattr(engine, "catalog", None), groups=getattr(engine, "groups", None),
                    schedules=getattr(engine, "schedules", None),
                    tz=getattr(engine, "timezone", None),
                    list_categories={n: getattr(i, "category", None) or ""
                                     for n, i in sources.items()},
                    overrides=overrides)
        if cache is not None:
            cache["_words"] = (overrides, words)
        return words

    # -- single words -----------------------------------------------------------------------

    def category(self, cid: str | None, lang: str = "vi") -> str:
        if not cid:
            return ""
        c = self.catalog.get(cid)
        return c.label(lang) if c is not None else cid

    def category_child(self, cid: str | None, lang: str = "vi") -> str:
        c = self.catalog.get(cid or "")
        return c.child(lang) if c is not None else ""

    def sensitive(self, cid: str | None) -> bool:
        c = self.catalog.get(cid or "")
        return bool(c is not None and c.sensitive)

    def group(self, gid: str | None, lang: str = "vi", decision: Decision | None = None) -> str:
        g = self.groups.get(gid or "")
        if g is not None:
            text = g.label_en if lang == "en" else g.label_vi
            if text:
                return text
        if decision is not None:
            text = ((getattr(decision, "group_label_en", None) if lang == "en" else None)
                    or getattr(decision, "group_label", None))
            if text:
                return text
        return gid or ""

    def schedule(self, sid: str | None, lang: str = "vi", decision: Decision | None = None
                 ) -> str:
        s = self.schedules.get(sid or "")
        if s is not None:
            return s.label_en if lang == "en" else s.label_vi
        if decision is not None:
            text = decision.schedule_label_en if lang == "en" else decision.schedule_label
            if text:
                return text
        return sid or ""

    def term(self, kind: str, code: object, lang: str = "vi") -> str:
        return term(kind, code, lang)

    def when(self, at: Any, lang: str = "vi", *, weekday: bool = False) -> str:
        return format_datetime(at, lang, self.tz, weekday=weekday)

    def source(self, src: RuleSource | None, lang: str = "vi", category: str | None = None
               ) -> str:
        """Where the rule is written, in words: a list by its category, a file and line…

        `category` is the Decision's (the list that matched is a list of that category)."""
        if src is None:
            return ""
        if not isinstance(src, RuleSource):
            return str(src)
        en = lang == "en"
        if src.kind == "list":
            prefix = src.name.split("-", 1)[0]
            cid = self.list_categories.get(src.name) or category or (
                src.name.split("-", 1)[1] if prefix == "seed" and "-" in src.name else "")
            what = self.category(cid, lang) if cid else ""
            pub = _PUBLISHERS.get(prefix)
            who = (pub[1] if en else pub[0]) if pub else src.name
            if src.version and src.version != "seed":
                who += f", version {src.version}" if en else f", bản {src.version}"
            if en:
                return f"the list “{what}” ({who})" if what else f"the list {who}"
            return f"danh sách «{what}» ({who})" if what else f"danh sách {who}"
        if src.kind == "policy":
            where = Path(src.name).name
            if src.line:
                return (f"the policy file {where}, line {src.line}" if en
                        else f"tệp chính sách {where}, dòng {src.line}")
            return f"the policy file {where}" if en else f"tệp chính sách {where}"
        if src.kind == "override":
            o = self._overrides.get(src.name)
            if o is not None:
                until = self.when(o.expires_at, lang)
                by = o.created_by or ("a teacher" if en else "giáo viên")
                return (f"a temporary opening by {by}, until {until}" if en
                        else f"lệnh mở tạm thời của {by}, đến {until}")
            return "a teacher's temporary opening" if en else "lệnh mở tạm thời của giáo viên"
        if src.kind == "builtin":
            return term("builtin_source", src.name, lang)
        if src.kind == "feed":
            what = term("feed", src.name, lang)
            if src.version:
                return f"{what}, version {src.version}" if en else f"{what}, bản {src.version}"
            return what
        if src.kind == "report":
            return ("a report of a harmful site, blocked by the school's IT staff" if en
                    else "báo cáo trang có hại, cán bộ CNTT của trường đã chặn")
        return str(src)

    def rule(self, d: Decision, lang: str = "vi") -> str:
        """The entry that matched, in words (a domain stays a domain)."""
        reason = _code(d.reason)
        if reason in (Reason.SAFE_SEARCH, Reason.YOUTUBE):
            level = (d.rule or "").rpartition(": ")[2]
            return f"{term('reason', reason, lang)}: {term('level', level, lang).lower()}"
        if reason == Reason.DEFAULT or not d.rule:
            return ""
        if d.rule.startswith("="):
            return (f"{d.rule[1:]} (only this name)" if lang == "en"
                    else f"{d.rule[1:]} (chỉ đúng tên này)")
        return d.rule

    # -- sentences --------------------------------------------------------------------------

    def headline(self, d: Decision, lang: str = "vi") -> str:
        return (_headline_en if lang == "en" else _headline_vi)(self, d)

    def explain(self, d: Decision, lang: str = "vi", *, for_staff: bool = True) -> str:
        """Plain words for a Decision. Children get kind words; staff also get rule and source."""
        lang = "en" if lang == "en" else "vi"
        lines = [self.headline(d, lang)]
        if not for_staff:
            if d.blocked:
                child = self.category_child(d.category, lang)
                if child:
                    lines.append(child)
                lines.append("If you need this page for your schoolwork, ask your teacher."
                             if lang == "en" else
                             "Nếu em cần trang này cho việc học, hãy hỏi thầy cô.")
                if self.sensitive(d.category) or d.reason is Reason.PROTECTED:
                    lines.append(HOTLINE_EN if lang == "en" else HOTLINE_VI)
            return "\n".join(lines)
        group = self.group(d.group, lang, d)
        when = self.when(d.at, lang, weekday=True)
        rule, source = self.rule(d, lang), self.source(d.source, lang, d.category)
        if lang == "en":
            lines.append(f"Group: {group}. Time: {when}.")
            if rule:
                lines.append(f"Rule: {rule} — source: {source}.")
        else:
            lines.append(f"Nhóm: {group}. Thời điểm: {when}.")
            if rule:
                lines.append(f"Quy tắc: {rule} — nguồn: {source}.")
        if d.categories:
            lines.append(label("also", lang) + ": "
                         + ", ".join(self.category(c, lang) for c in d.categories) + ".")
        until = getattr(d, "valid_until", None)
        if until is not None:
            lines.append(f"{label('until', lang)}: {self.when(until, lang)}.")
        return "\n".join(lines)

    def fields(self, d: Decision, lang: str = "vi") -> list[Field]:
        """The Decision as labelled lines for a page (no internal code among the values)."""
        out = [Field(label("action", lang), term("action", d.action, lang), _code(d.action)),
               Field(label("reason", lang), term("reason", d.reason, lang), _code(d.reason))]
        if d.category:
            out.append(Field(label("category", lang), self.category(d.category, lang),
                             d.category))
        if getattr(d, "schedule", None):
            out.append(Field(label("schedule", lang), self.schedule(d.schedule, lang, d),
                             d.schedule))
        rule = self.rule(d, lang)
        if rule:
            out.append(Field(label("rule", lang), rule))
            out.append(Field(label("source", lang), self.source(d.source, lang, d.category)))
        out.append(Field(label("group", lang), self.group(d.group, lang, d), d.group))
        if getattr(d, "at", None) is not None:
            out.append(Field(label("time", lang), self.when(d.at, lang, weekday=True)))
        if getattr(d, "valid_until", None) is not None:
            out.append(Field(label("until", lang), self.when(d.valid_until, lang)))
        return out

    def ede(self, d: Decision) -> str:
        """The Extended DNS Error text (RFC 8914) of a blocked answer: English words, short."""
        what = self.category(d.category, "en") if d.category else term("reason", d.reason, "en")
        return f"filterd: {what}; group {self.group(d.group, 'en', d)}"[:200]


def _code(value: object) -> str:
    return str(getattr(value, "value", value) or "")


def _headline_vi(w: Words, d: Decision) -> str:
    group = w.group(d.group, "vi", d)
    label_ = w.category(d.category, "vi")
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
    if r is Reason.FEED_ALLOW:
        return f"Cho phép {d.name}: cơ quan quản lý giáo dục đã đưa trang vào danh sách cho phép."
    if r is Reason.FEED_DENY:
        return f"Đã chặn {d.name}: cơ quan quản lý giáo dục đã đưa trang vào danh sách chặn."
    if r is Reason.REPORTED:
        return (f"Đã chặn {d.name}: trang bị báo cáo là có hại và nhà trường đã chặn trang "
                "cho toàn trường.")
    if r is Reason.CATEGORY:
        return f"Đã chặn {d.name}: thuộc loại «{label_}», luôn bị chặn với nhóm {group}."
    if r is Reason.SCHEDULED_CATEGORY:
        return (f"Đã chặn {d.name}: thuộc loại «{label_}», bị chặn trong khung giờ "
                f"«{w.schedule(d.schedule, 'vi', d)}» với nhóm {group}.")
    if r is Reason.SAFE_SEARCH:
        if d.action is Action.REWRITE:
            return (f"{d.name}: tìm kiếm được chuyển sang chế độ tìm kiếm an toàn "
                    f"({d.rewrite_target}) cho nhóm {group}.")
        return f"{d.name}: bật tìm kiếm an toàn cho nhóm {group}."
    if r is Reason.YOUTUBE:
        mode = "hạn chế vừa" if "moderate" in (d.rule or "") else "hạn chế nghiêm ngặt"
        return f"{d.name}: YouTube ở chế độ {mode} cho nhóm {group}."
    return f"Cho phép {d.name}: không có quy tắc nào chặn trang này với nhóm {group}."


def _headline_en(w: Words, d: Decision) -> str:
    group = w.group(d.group, "en", d)
    label_ = w.category(d.category, "en")
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
    if r is Reason.FEED_ALLOW:
        return f"Allowed {d.name}: the education office added it to its allowlist."
    if r is Reason.FEED_DENY:
        return f"Blocked {d.name}: the education office added it to its blocklist."
    if r is Reason.REPORTED:
        return (f"Blocked {d.name}: it was reported as harmful and the school blocked it "
                "for everyone.")
    if r is Reason.CATEGORY:
        return f"Blocked {d.name}: it is in the category “{label_}”, always blocked for {group}."
    if r is Reason.SCHEDULED_CATEGORY:
        return (f"Blocked {d.name}: it is in the category “{label_}”, blocked during "
                f"“{w.schedule(d.schedule, 'en', d)}” for {group}.")
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
            tz: tzinfo | None = None, *, words: Words | None = None) -> str:
    """`Words.explain` with the given words (or the bundled catalog and `tz`)."""
    if words is None:
        words = Words(tz=tz)
    return words.explain(decision, lang, for_staff=for_staff)
