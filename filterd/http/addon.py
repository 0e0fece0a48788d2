"""The mitmproxy addon for groups that intercept (school-managed devices trusting the school CA).

Only connections the SNI relay hands over arrive here: each starts with a CONNECT that
names the real client (proven by a per-process token, since mitmproxy only sees the
relay's loopback address). Per request: one engine decision on Host + URL, the HTTPS
block page, safe-search parameters, the YouTube-Restrict header, search-term capture.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qsl, urlencode, urlsplit

from mitmproxy import http

from filterd.http import eventsink
from filterd.http.blockapp import BlockApp
from filterd.http.blockpage import choose_lang
from filterd.http.decider import Decider, domain_matches
from filterd.http.eventsink import EventSink
from filterd.http.http11 import Request
from filterd.policy.decision import Action, Decision, Reason

log = logging.getLogger(__name__)

CLIENT_HEADER = "X-Filterd-Client"
TOKEN_HEADER = "X-Filterd-Token"
NAME_HEADER = "X-Filterd-Name"
YOUTUBE_HOSTS = (
    "youtube.com",
    "youtube-nocookie.com",
    "youtubei.googleapis.com",
    "youtube.googleapis.com",
    "m.youtube.com",
)
# search engine -> (path prefix, query parameter of the search, parameters that force safe search)
SEARCH_ENGINES: dict[str, tuple[str, str, dict[str, str]]] = {
    "google": ("/search", "q", {"safe": "active"}),
    "bing.com": ("/search", "q", {"adlt": "strict"}),
    "duckduckgo.com": ("/", "q", {"kp": "1"}),
    "youtube.com": ("/results", "search_query", {}),
}


def search_engine(host: str) -> str | None:
    labels = host.split(".")
    if "google" in labels[:-1] and (
        labels[-2] == "google"
        or labels[-3:-1] == ["google", "com"]
        or labels[-3:-1] == ["google", "co"]
    ):
        return "google"
    for key in ("bing.com", "duckduckgo.com", "youtube.com"):
        if domain_matches(host, (key,)):
            return key
    return None


class Addon:
    def __init__(self, decider: Decider, app: BlockApp, sink: EventSink) -> None:
        self.decider = decider
        self.app = app
        self.sink = sink
        self._clients: dict[str, str] = {}  # mitmproxy client connection id -> real client IP

    def load(self, loader) -> None:
        loader.add_option(
            "filterd_token",
            str,
            "",
            "Shared secret the SNI relay sends with each handed-over connection.",
        )
        loader.add_option(
            "filterd_youtube_restrict",
            str,
            "Moderate",
            "Value of the YouTube-Restrict header (Moderate or Strict).",
        )
        loader.add_option(
            "filterd_safe_search",
            bool,
            True,
            "Add safe-search parameters when the engine enforces safe search.",
        )

    # -- connection setup ----------------------------------------------------------------
    def http_connect(self, flow: http.HTTPFlow) -> None:
        from mitmproxy import ctx

        token = flow.request.headers.get(TOKEN_HEADER, "")
        client = flow.request.headers.get(CLIENT_HEADER, "")
        expected = ctx.options.filterd_token
        if not expected or not hmac.compare_digest(token, expected) or not client:
            flow.response = http.Response.make(403, b"forbidden\n")
            return
        self._clients[flow.client_conn.id] = client
        for h in (TOKEN_HEADER, CLIENT_HEADER, NAME_HEADER):
            flow.request.headers.pop(h, None)

    def client_disconnected(self, client) -> None:
        self._clients.pop(client.id, None)

    # -- requests ------------------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> None:
        from mitmproxy import ctx

        client_ip = self._clients.get(flow.client_conn.id)
        if client_ip is None:
            flow.response = http.Response.make(403, b"forbidden\n")
            return
        req = flow.request
        host = req.pretty_host.lower().rstrip(".")
        url = req.pretty_url
        query = self.decider.query(host, client_ip, "intercept", url=url[:2000])
        decision = self.decider.decide(query)
        term = self._search_term(host, req.path)
        if decision.blocked or req.path.startswith("/_filterd/"):
            self._block(flow, decision, client_ip, host)
            if decision.blocked:
                eventsink.record(self.sink, decision, query, search_term=term)
            return
        enforced = False
        engine = search_engine(host)
        if (
            decision.reason is Reason.SAFE_SEARCH
            and decision.action in (Action.REWRITE, Action.ENFORCE)
            and ctx.options.filterd_safe_search
            and engine
        ):
            enforced = self._safe_search(req, engine)
        if decision.reason is Reason.YOUTUBE or (
            decision.action in (Action.REWRITE, Action.ENFORCE)
            and domain_matches(host, YOUTUBE_HOSTS)
        ):
            req.headers["YouTube-Restrict"] = youtube_level(
                decision, ctx.options.filterd_youtube_restrict
            )
            enforced = True
        if enforced or term is not None:
            eventsink.record(
                self.sink, _as_enforce(decision) if enforced else decision, query, search_term=term
            )

    def _block(self, flow: http.HTTPFlow, decision: Decision, client_ip: str, host: str) -> None:
        req = flow.request
        ours = Request(
            req.method,
            req.path,
            "HTTP/1.1",
            tuple((k, v) for k, v in req.headers.items(multi=True)),
        )
        resp = self.app.respond(
            ours,
            client_ip=client_ip,
            body=req.raw_content or b"",
            scheme="https",
            decision=decision,
            host=host,
        )
        headers = {"Content-Type": resp.content_type, **dict(resp.all_headers())}
        flow.response = http.Response.make(resp.status, resp.body, headers)

    @staticmethod
    def _search_term(host: str, path: str) -> str | None:
        engine = search_engine(host)
        if engine is None:
            return None
        prefix, param, _ = SEARCH_ENGINES[engine]
        parts = urlsplit(path)
        if not parts.path.startswith(prefix):
            return None
        for k, v in parse_qsl(parts.query):
            if k == param and v.strip():
                return v.strip()[:200]
        return None

    @staticmethod
    def _safe_search(req: http.Request, engine: str) -> bool:
        force = SEARCH_ENGINES[engine][2]
        if not force:
            return False
        parts = urlsplit(req.path)
        query = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in force
        ]
        query += list(force.items())
        req.path = parts.path + "?" + urlencode(query)
        return True


def _as_enforce(decision: Decision) -> Decision:
    from dataclasses import replace

    return (
        decision if decision.action is Action.ENFORCE else replace(decision, action=Action.ENFORCE)
    )


def lang_of(flow: http.HTTPFlow) -> str:
    return choose_lang(None, flow.request.headers.get("accept-language"))


def youtube_level(decision: Decision, default: str) -> str:
    """The group's level from the engine's rule ("youtube: strict"), else the option."""
    if decision.reason is Reason.YOUTUBE:
        level = decision.rule.rpartition(":")[2].strip().lower()
        if level in ("strict", "moderate"):
            return level.capitalize()
    return default
