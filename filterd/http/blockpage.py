"""The block page: one Decision, explained in words a child understands.

Vietnamese by default, English on request (`?lang=en` or Accept-Language). Staff
(teachers, IT) also see the rule and the list that matched. Everything is inline
(no external resources) so the page works offline and on any phone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from filterd.http.categories import CategoryWords
from filterd.http.reportform import REPORT_PATH
from filterd.policy.decision import Decision, Reason
from filterd.words.dates import format_datetime
from filterd.words.explain import Words
from filterd.words.terms import term

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANGS = ("vi", "en")
REVIEW_PATH = "/_filterd/review"
MAX_NAME_SHOWN = 253

TEXT: Mapping[str, Mapping[str, str]] = {
    "vi": {
        "title": "Trang này đã bị chặn",
        "blocked": "Trang bạn muốn mở đã bị chặn trên mạng của trường.",
        "site": "Trang web",
        "category": "Loại nội dung",
        "group": "Nhóm",
        "time": "Thời gian",
        "ref": "Mã tham chiếu",
        "generic": "Trang này không được phép dùng trên mạng của trường.",
        "kind": "Nếu em đã thấy điều gì làm em lo lắng hay sợ hãi, đó không phải lỗi của em. "
        "Hãy nói với thầy cô, bố mẹ, hoặc gọi miễn phí Tổng đài Quốc gia Bảo vệ trẻ em 111.",
        "hotline": "Tổng đài Quốc gia Bảo vệ trẻ em: gọi 111 (miễn phí, 24/7).",
        "staff": "Dành cho thầy cô và cán bộ",
        "reason": "Lý do",
        "rule": "Quy tắc",
        "source": "Danh sách / tệp",
        "review_h": "Đề nghị xem xét lại",
        "review_p": "Nếu em nghĩ trang này cần cho việc học, hãy gửi đề nghị. "
        "Thầy cô phụ trách CNTT sẽ xem xét.",
        "message": "Lời nhắn (không bắt buộc, tối đa 500 ký tự)",
        "send": "Gửi đề nghị",
        "other_lang": "English",
        "thanks": "Cảm ơn em. Đề nghị đã được gửi đến thầy cô phụ trách.",
        "review_refused": "Chưa gửi được đề nghị.",
        "too_many": "Em đã gửi nhiều đề nghị. Hãy thử lại sau.",
        "bad_form": "Biểu mẫu đã hết hạn. Hãy tải lại trang và gửi lại.",
        "back": "Quay lại",
        "not_blocked": "Trang này hiện không bị chặn. Hãy tải lại trang.",
        "report_link": "Báo cáo một trang web có hại",
    },
    "en": {
        "title": "This page is blocked",
        "blocked": "The page you tried to open is blocked on the school network.",
        "site": "Website",
        "category": "Kind of content",
        "group": "Group",
        "time": "Time",
        "ref": "Reference",
        "generic": "This page is not allowed on the school network.",
        "kind": "If you saw something that worried or scared you, it is not your fault. "
        "Tell a teacher or a parent, or call the free National Child Protection Hotline 111.",
        "hotline": "National Child Protection Hotline: call 111 (free, 24/7).",
        "staff": "For teachers and staff",
        "reason": "Reason",
        "rule": "Rule",
        "source": "List / file",
        "review_h": "Ask for a review",
        "review_p": "If you think this page is needed for learning, send a request. "
        "The school's IT staff will look at it.",
        "message": "Message (optional, at most 500 characters)",
        "send": "Send request",
        "other_lang": "Tiếng Việt",
        "thanks": "Thank you. Your request was sent to the staff.",
        "review_refused": "The request was not sent.",
        "too_many": "You have sent many requests. Please try again later.",
        "bad_form": "The form has expired. Reload the page and send it again.",
        "back": "Back",
        "not_blocked": "This page is not blocked now. Please reload it.",
        "report_link": "Report a harmful website",
    },
}

def choose_lang(query_lang: str | None, accept_language: str | None) -> str:
    """`?lang=` wins; then the first supported language in Accept-Language; else Vietnamese."""
    if query_lang in LANGS:
        return query_lang
    if accept_language:
        ranked = []
        for i, part in enumerate(accept_language[:512].split(",")):
            tag, _, params = part.strip().partition(";")
            q = 1.0
            if params.strip().startswith("q="):
                try:
                    q = float(params.strip()[2:])
                except ValueError:
                    q = 0.0
            ranked.append((-q, i, tag.strip().lower()[:2]))
        for _, _, tag in sorted(ranked):
            if tag in LANGS:
                return tag
    return "vi"


def reference_id(decision: Decision, client_ip: str) -> str:
    """Short ID a student can read out to a teacher; the same inputs give the same ID."""
    raw = f"{decision.at.isoformat()}|{decision.name}|{client_ip}|{decision.rule}"
    return hashlib.sha256(raw.encode()).hexdigest()[:8].upper()


class CsrfSigner:
    """Form tokens bound to the client and the blocked name, valid for one to two hours."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("CSRF secret too short")
        self._secret = secret

    def token(self, client_ip: str, name: str, now: float) -> str:
        return self._sign(client_ip, name, int(now // 3600))

    def check(self, token: str, client_ip: str, name: str, now: float) -> bool:
        bucket = int(now // 3600)
        return any(
            hmac.compare_digest(token, self._sign(client_ip, name, b)) for b in (bucket, bucket - 1)
        )

    def _sign(self, client_ip: str, name: str, bucket: int) -> str:
        msg = f"{client_ip}|{name}|{bucket}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PageContext:
    """What the request adds to the Decision: who asks, how, in which language."""

    client_ip: str
    lang: str = "vi"
    staff: bool = False
    url: str | None = None
    csrf_token: str | None = None
    path_and_query: str = "/"


class BlockPageRenderer:
    def __init__(
        self,
        categories: Mapping[str, CategoryWords],
        *,
        school_name: str = "",
        timezone: ZoneInfo | None = None,
    ) -> None:
        self.categories = categories
        self.school_name = school_name
        self.timezone = timezone or ZoneInfo("Asia/Ho_Chi_Minh")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, decision: Decision, ctx: PageContext, words: Words | None = None) -> str:
        """The page for `decision`; `words` are the running engine's (its catalog, groups)."""
        lang = ctx.lang if ctx.lang in LANGS else "vi"
        w = words if words is not None else Words(self.categories, tz=self.timezone)
        other = "en" if lang == "vi" else "vi"
        rule = w.rule(decision, lang)
        return self.env.get_template("block.html").render(
            t=TEXT[lang],
            lang=lang,
            other=other,
            other_href=_with_lang(ctx.path_and_query, other),
            name=decision.name[:MAX_NAME_SHOWN],
            url=(ctx.url or "")[:2000],
            category_label=w.category(decision.category, lang) or None,
            child_text=w.category_child(decision.category, lang) or TEXT[lang]["generic"],
            sensitive=w.sensitive(decision.category) or decision.reason is Reason.PROTECTED,
            group=w.group(decision.group, lang, decision),
            time=w.when(decision.at, lang),
            ref=reference_id(decision, ctx.client_ip),
            staff=ctx.staff,
            reason_words=term("reason", decision.reason, lang),
            reason_code=decision.reason.value,
            rule=rule,
            source=w.source(decision.source, lang, decision.category) if rule else "",
            review_path=REVIEW_PATH,
            report_path=REPORT_PATH,
            csrf=ctx.csrf_token,
            school_name=self.school_name,
        )

    def render_notice(self, lang: str, key: str, *, status_ok: bool) -> str:
        lang = lang if lang in LANGS else "vi"
        return self.env.get_template("notice.html").render(
            t=TEXT[lang],
            lang=lang,
            message=TEXT[lang][key],
            ok=status_ok,
            school_name=self.school_name,
        )

    def local_time(self, at: datetime, lang: str = "vi") -> str:
        return format_datetime(at, lang, self.timezone)

    def render_template(self, name: str, **values: object) -> str:
        return self.env.get_template(name).render(**values)


def _with_lang(path_and_query: str, lang: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(path_and_query)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    query.append(("lang", lang))
    return (parts.path or "/") + "?" + urlencode(query)
