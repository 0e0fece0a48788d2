"""The block page application: routes one HTTP request to a response.

Shared by the block page server (requests DNS steered to the appliance), the SNI
relay's plain-HTTP path and the intercepting addon, so all three show the same
page for the same Decision. Synchronous and small; the review insert is the only
I/O, and the async callers run it off the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from filterd.http.blockpage import (
    REVIEW_PATH,
    BlockPageRenderer,
    CsrfSigner,
    PageContext,
    choose_lang,
)
from filterd.http.ca import SchoolCA
from filterd.http.decider import Decider, is_ip
from filterd.http.http11 import Request, normalize_host
from filterd.http.reportform import REPORT_PATH
from filterd.policy.decision import Decision
from filterd.state.reviews import (
    MAX_MESSAGE,
    RateLimited,
    ReviewError,
    ReviewRequest,
    ReviewStore,
    clean_message,
)
from filterd.words.explain import Words

# What a child can say is wrong with a site, most serious first (catalog ids; the words
# come from the category catalog). "self_harm" is shown only where the catalog has it.
REPORT_CATEGORIES = ("illegal", "adult", "violence", "self_harm", "drugs", "gambling",
                     "scam", "phishing", "malware")

MAX_FORM = 8 * 1024
SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),  # "no-referrer" would make a form post's Origin "null"
    ("X-Frame-Options", "DENY"),
    # No external resources at all; inline style only; forms post to this origin only.
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "base-uri 'none'; "
        "frame-ancestors 'none'",
    ),
]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def all_headers(self) -> list[tuple[str, str]]:
        return [*SECURITY_HEADERS, *self.headers]


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """Where the PAC file points browsers (host empty = the host the PAC was fetched from)."""

    host: str = ""
    port: int = 3128


class BlockApp:
    def __init__(
        self,
        renderer: BlockPageRenderer,
        decider: Decider,
        *,
        csrf: CsrfSigner,
        reviews: ReviewStore | None = None,
        ca: SchoolCA | None = None,
        proxy: ProxyInfo | None = None,
        site_reports=None,
    ) -> None:
        self.renderer = renderer
        self.site_reports = site_reports  # filterd.state.site_reports.SiteReportStore
        self.decider = decider
        self.csrf = csrf
        self.reviews = reviews
        self.ca = ca
        self.proxy = proxy or ProxyInfo()

    # -- routing -------------------------------------------------------------------------
    def respond(
        self,
        req: Request,
        *,
        client_ip: str,
        body: bytes = b"",
        scheme: str = "http",
        decision: Decision | None = None,
        host: str | None = None,
    ) -> Response:
        parts = urlsplit(req.target)
        path = parts.path or "/"
        host = host or normalize_host(req.header("host") or (parts.netloc or None))
        lang = choose_lang(_first(parse_qs(parts.query).get("lang")), req.header("accept-language"))
        if path == REVIEW_PATH:
            return self.review(req, body, client_ip=client_ip, host=host, scheme=scheme, lang=lang)
        if path == REPORT_PATH:
            return self.report(req, body, client_ip=client_ip, host=host, scheme=scheme,
                               lang=lang)
        if path in ("/proxy.pac", "/wpad.dat"):
            return self.pac(host)
        if path == "/ca" or path.startswith("/ca/"):
            return self.ca_page(path, lang)
        if host is None:
            return Response(400, b"400 Bad Request\n", "text/plain; charset=utf-8")
        if decision is None:
            if is_ip(host):
                return self.ca_page("/ca", lang)  # someone typed the appliance's address
            url = f"{scheme}://{host}{req.target if req.target.startswith('/') else path}"
            decision = self.decider.decide(self.decider.query(host, client_ip, "http", url=url))
        if not decision.blocked:
            html = self.renderer.render_notice(lang, "not_blocked", status_ok=True)
            return Response(200, html.encode())
        return self.block_page(
            decision,
            client_ip=client_ip,
            lang=lang,
            target=req.target,
            url=f"{scheme}://{host}{path}",
        )

    def block_page(
        self,
        decision: Decision,
        *,
        client_ip: str,
        lang: str,
        target: str = "/",
        url: str | None = None,
    ) -> Response:
        parts = urlsplit(target)
        ctx = PageContext(
            client_ip=client_ip,
            lang=lang,
            staff=self.decider.is_staff(decision.group),
            url=url,
            csrf_token=self.csrf.token(client_ip, decision.name, time.time())
            if self.reviews
            else None,
            path_and_query=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        )
        try:
            words = Words.for_engine(self.decider.engine_provider())
        except Exception:   # words only: the page still shows with the shipped ones
            words = None
        return Response(403, self.renderer.render(decision, ctx, words).encode())

    # -- review form ---------------------------------------------------------------------
    def review(
        self, req: Request, body: bytes, *, client_ip: str, host: str | None, scheme: str, lang: str
    ) -> Response:
        if req.method != "POST" or self.reviews is None:
            return Response(
                405, b"405 Method Not Allowed\n", "text/plain; charset=utf-8", (("Allow", "POST"),)
            )
        if not _same_origin(req, host, scheme):
            return self._notice(403, lang, "bad_form")
        if len(body) > MAX_FORM:
            return self._notice(413, lang, "review_refused")
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
        name = normalize_host(_first(form.get("name"))) or ""
        token = _first(form.get("csrf")) or ""
        if not name or not self.csrf.check(token, client_ip, name, time.time()):
            return self._notice(403, lang, "bad_form")
        decision = self.decider.decide(self.decider.query(name, client_ip, "http"))
        url = (_first(form.get("url")) or "")[:2000] or None
        message = clean_message((_first(form.get("message")) or "")[: MAX_MESSAGE * 4])
        try:
            self.reviews.add(
                ReviewRequest(
                    name=name,
                    url=url,
                    group_id=decision.group,
                    category=decision.category,
                    reason=decision.reason.value,
                    message=message,
                    client_ip=client_ip,
                )
            )
        except RateLimited:
            return self._notice(429, lang, "too_many")
        except ReviewError:
            return self._notice(400, lang, "review_refused")
        return self._notice(200, lang, "thanks")

    # -- report of a harmful site ---------------------------------------------------------
    def report_categories(self, lang: str) -> list[tuple[str, str]]:
        cats = self.renderer.categories
        return [(c, cats[c].label(lang)) for c in REPORT_CATEGORIES if c in cats]

    def report(self, req: Request, body: bytes, *, client_ip: str, host: str | None,
               scheme: str, lang: str) -> Response:
        from filterd.http.reportform import TEXT, csrf_name, parse_form
        from filterd.state.site_reports import ReportRateLimited, SiteReportError

        if self.site_reports is None:
            return Response(404, b"404 Not Found\n", "text/plain; charset=utf-8")
        t = TEXT[lang if lang in TEXT else "vi"]
        now = time.time()
        values = {"site": "", "note": "", "chosen": (), "error": None, "error_field": None}
        status = 200
        if req.method == "POST":
            if not _same_origin(req, host, scheme):
                return self._report_notice(403, lang, "bad_form")
            if len(body) > MAX_FORM:
                return self._report_notice(413, lang, "bad_form")
            form = parse_form(body)
            token = _first(form.get("csrf")) or ""
            if not self.csrf.check(token, client_ip, csrf_name(), now):
                return self._report_notice(403, lang, "bad_form")
            site = (_first(form.get("site")) or "")[:2000]
            note = (_first(form.get("note")) or "")[:2000]
            chosen = tuple(form.get("category", [])[:20])
            try:
                self.site_reports.add(site, list(chosen), note, client_ip=client_ip,
                                      known_categories={c for c, _ in
                                                        self.report_categories(lang)},
                                      now=now)
            except ReportRateLimited:
                return self._report_notice(429, lang, "too_many")
            except SiteReportError as exc:
                status = 400
                values.update(site=site, note=note[:500], chosen=chosen,
                              error_field=exc.field,
                              error=t["err_categories"] if exc.field == "categories"
                              else t["err_site"])
            else:
                return self._report_notice(200, lang, "thanks")
        elif req.method != "GET":
            return Response(405, b"405 Method Not Allowed\n", "text/plain; charset=utf-8",
                            (("Allow", "GET, POST"),))
        html = self.renderer.render_template(
            "report.html", t=t, lang=lang, other="en" if lang == "vi" else "vi",
            report_path=REPORT_PATH, csrf=self.csrf.token(client_ip, csrf_name(), now),
            categories=self.report_categories(lang), school_name=self.renderer.school_name,
            **values)
        return Response(status, html.encode())

    def _report_notice(self, status: int, lang: str, key: str) -> Response:
        from filterd.http.blockpage import TEXT as PAGE_TEXT
        from filterd.http.reportform import TEXT

        lang = lang if lang in TEXT else "vi"
        html = self.renderer.render_template(
            "notice.html", t=PAGE_TEXT[lang], lang=lang, message=TEXT[lang][key],
            ok=status == 200, school_name=self.renderer.school_name)
        return Response(status, html.encode())

    def _notice(self, status: int, lang: str, key: str) -> Response:
        return Response(
            status, self.renderer.render_notice(lang, key, status_ok=status == 200).encode()
        )

    # -- CA and PAC ----------------------------------------------------------------------
    def ca_page(self, path: str, lang: str) -> Response:
        if self.ca is None:
            return Response(404, b"404 Not Found\n", "text/plain; charset=utf-8")
        if path == "/ca/filterd-ca.pem":
            return Response(
                200,
                self.ca.pem(),
                "application/x-pem-file",
                (("Content-Disposition", 'attachment; filename="filterd-ca.pem"'),),
            )
        if path == "/ca/filterd-ca.crt":
            return Response(
                200,
                self.ca.der(),
                "application/x-x509-ca-cert",
                (("Content-Disposition", 'attachment; filename="filterd-ca.crt"'),),
            )
        html = self.renderer.render_template(
            "ca.html",
            lang=lang,
            fingerprint=self.ca.fingerprint(),
            school_name=self.renderer.school_name,
        )
        return Response(200, html.encode())

    def pac(self, host: str | None) -> Response:
        proxy_host = self.proxy.host or host or "127.0.0.1"
        body = (
            "function FindProxyForURL(url, host) {\n"
            '  if (isPlainHostName(host) || shExpMatch(host, "localhost") ||\n'
            '      isInNet(host, "127.0.0.0", "255.0.0.0")) { return "DIRECT"; }\n'
            f'  return "PROXY {proxy_host}:{self.proxy.port}";\n'
            "}\n"
        )
        return Response(200, body.encode(), "application/x-ns-proxy-autoconfig")


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _same_origin(req: Request, host: str | None, scheme: str) -> bool:
    """A browser's form post carries Origin (or Referer); it must be this very page's origin."""
    origin = req.header("origin")
    if origin is None or origin == "null":
        referer = req.header("referer")
        if referer is None:
            return origin is None  # non-browser clients: the CSRF token alone protects them
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(referer))
    o = urlsplit(origin)
    return o.scheme == scheme and host is not None and normalize_host(o.netloc) == host
