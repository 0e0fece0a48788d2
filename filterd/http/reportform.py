"""The report form on the block page's host: "this site is harmful", from anyone on the network.

GET REPORT_PATH shows a short form (the site's address, what is wrong with it in
plain words, an optional note) with hotline 111 and what it is for beside it;
POST stores the report in the school's queue (filterd/state/site_reports.py).
The reporter is never recorded; one device may send a few reports an hour.
Every value is checked (an address that is not a web site, an unknown category,
an oversized note is refused with the field named); the page escapes everything.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import parse_qs

REPORT_PATH = "/_filterd/report"
MAX_FORM = 8 * 1024

TEXT: Mapping[str, Mapping[str, str]] = {
    "vi": {
        "title": "Báo cáo trang web có hại",
        "intro": "Em thấy một trang web có nội dung xấu, đáng sợ hoặc nguy hiểm? Hãy báo cho "
                 "nhà trường. Không ai biết em là người báo cáo.",
        "site": "Địa chỉ trang web",
        "site_hint": "Ví dụ: trangxau.example hoặc https://trangxau.example/bai-viet",
        "what": "Trang có gì không ổn? (chọn một hoặc nhiều)",
        "note": "Em muốn nói thêm điều gì? (không bắt buộc, tối đa 500 ký tự)",
        "send": "Gửi báo cáo",
        "hotline_h": "Cần giúp đỡ ngay?",
        "hotline": "Gọi Tổng đài Quốc gia Bảo vệ trẻ em 111: miễn phí, 24/7. Tổng đài lắng nghe "
                   "và giúp khi em hoặc bạn em bị bắt nạt, bị đe doạ, bị xâm hại, kể cả trên mạng.",
        "thanks": "Cảm ơn em. Báo cáo đã được gửi đến thầy cô phụ trách CNTT của trường.",
        "too_many": "Thiết bị này đã gửi nhiều báo cáo. Hãy thử lại sau một giờ.",
        "bad_form": "Biểu mẫu đã hết hạn. Hãy tải lại trang và gửi lại.",
        "err_site": "Đây không phải là địa chỉ của một trang web.",
        "err_categories": "Hãy chọn ít nhất một điều không ổn.",
        "back": "Quay lại",
        "other_lang": "English",
        "privacy": "Nhà trường chỉ lưu địa chỉ trang, điều em chọn và lời nhắn. Địa chỉ máy "
                   "của em không được lưu và không gửi ra khỏi trường.",
    },
    "en": {
        "title": "Report a harmful website",
        "intro": "Did you see a site with bad, frightening or dangerous content? Tell the "
                 "school. Nobody will know you reported it.",
        "site": "The site's address",
        "site_hint": "For example: badsite.example or https://badsite.example/post",
        "what": "What is wrong with it? (choose one or more)",
        "note": "Anything to add? (optional, at most 500 characters)",
        "send": "Send report",
        "hotline_h": "Need help now?",
        "hotline": "Call the National Child Protection Hotline 111: free, 24/7. It listens and "
                   "helps when you or a friend are bullied, threatened or abused, online too.",
        "thanks": "Thank you. Your report was sent to the school's IT staff.",
        "too_many": "This device has sent many reports. Please try again in an hour.",
        "bad_form": "The form has expired. Reload the page and send it again.",
        "err_site": "This is not a website's address.",
        "err_categories": "Choose at least one thing that is wrong.",
        "back": "Back",
        "other_lang": "Tiếng Việt",
        "privacy": "The school keeps only the site's address, what you chose and your note. "
                   "Your device's address is not kept and never leaves the school.",
    },
}


def parse_form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body[:MAX_FORM].decode("utf-8", "replace"), max_num_fields=20)


def csrf_name() -> str:
    """The CSRF token of the report form is bound to the device and this fixed name."""
    return "report-form"


def now() -> float:
    return time.time()
