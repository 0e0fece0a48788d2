"""Built-in global tables: resolver-bypass names and safe-search / YouTube rewrite targets.

These are facts about the outside world (which names Firefox, iCloud and
resolvers use; which CNAME each search engine documents for forced safe
search), not school policy, so they ship in code and every group gets them.
"""

from __future__ import annotations

from filterd.policy.decision import BlockMode, RuleSource
from filterd.policy.domains import DomainEntry, DomainTable

BYPASS_SOURCE = RuleSource("builtin", "bypass")
SAFE_SEARCH_SOURCE = RuleSource("builtin", "safe_search")
YOUTUBE_SOURCE = RuleSource("builtin", "youtube")

# Name -> how the answer looks. NXDOMAIN on the canary tells Firefox not to turn on
# DoH; NXDOMAIN on mask*.icloud.com makes iCloud Private Relay fall back to the
# school's resolver; NODATA on resolver.arpa answers DDR (RFC 9462) discovery with
# "no designated resolver", so devices do not upgrade to an encrypted resolver.
BYPASS: dict[str, BlockMode] = {
    "use-application-dns.net": BlockMode.NXDOMAIN,
    "mask.icloud.com": BlockMode.NXDOMAIN,
    "mask-h2.icloud.com": BlockMode.NXDOMAIN,
    "mask-api.icloud.com": BlockMode.NXDOMAIN,
    "resolver.arpa": BlockMode.NODATA,
}

# Every Google Search domain (google.com/supported_domains). Only `google.X` and
# `www.google.X` are rewritten: mail.google.com, docs.google.com … stay untouched.
_GOOGLE_TABLE = """
com ad ae com.af com.ag al am co.ao com.ar as at com.au az ba com.bd be bf bg com.bh bi
bj com.bn com.bo com.br bs bt co.bw by com.bz ca cd cf cg ch ci co.ck cl cm cn com.co
co.cr com.cu cv com.cy cz de dj dk dm com.do dz com.ec ee com.eg es com.et fi com.fj fm
fr ga ge gg com.gh com.gi gl gm gr com.gt gy com.hk hn hr ht hu co.id ie co.il im co.in
iq is it je com.jm jo co.jp co.ke com.kh ki kg co.kr com.kw kz la com.lb li lk co.ls lt
lu lv com.ly co.ma md me mg mk ml com.mm mn com.mt mu mv mw com.mx com.my co.mz com.na
com.ng com.ni ne nl no com.np nr nu co.nz com.om com.pa com.pe com.pg com.ph com.pk pl
pn com.pr ps pt com.py com.qa ro rs ru rw com.sa com.sb sc se com.sg sh si sk com.sl sn
so sm sr st com.sv td tg co.th com.tj tl tm tn to com.tr tt com.tw co.tz com.ua co.ug
co.uk com.uy co.uz com.vc co.ve co.vi com.vn vu ws co.za co.zm co.zw cat
"""
GOOGLE_SUFFIXES = tuple(_GOOGLE_TABLE.split())

# name -> {level: CNAME target}; a level without a DNS target (e.g. moderate on
# Google) is enforced in HTTP only (Action.ENFORCE).
SAFE_SEARCH: dict[str, dict[str, str | None]] = {}
for _sfx in GOOGLE_SUFFIXES:
    for _name in (f"google.{_sfx}", f"www.google.{_sfx}"):
        SAFE_SEARCH[_name] = {"strict": "forcesafesearch.google.com", "moderate": None}
for _name in ("bing.com", "www.bing.com"):
    SAFE_SEARCH[_name] = {"strict": "strict.bing.com", "moderate": None}
for _name in ("duckduckgo.com", "www.duckduckgo.com", "start.duckduckgo.com"):
    SAFE_SEARCH[_name] = {"strict": "safe.duckduckgo.com", "moderate": None}

# Google's documented list of YouTube names for DNS-based restricted mode.
YOUTUBE_NAMES = ("www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                 "youtube.googleapis.com", "www.youtube-nocookie.com")
YOUTUBE: dict[str, dict[str, str | None]] = {
    n: {"strict": "restrict.youtube.com", "moderate": "restrictmoderate.youtube.com"}
    for n in YOUTUBE_NAMES
}


def bypass_table() -> DomainTable:
    # Subdomains too: *.use-application-dns.net must not resolve either.
    return DomainTable(DomainEntry(n, False, BYPASS_SOURCE, mode) for n, mode in BYPASS.items())


def safe_search_table() -> DomainTable:
    return DomainTable(DomainEntry(n, True, SAFE_SEARCH_SOURCE, t) for n, t in SAFE_SEARCH.items())


def youtube_table() -> DomainTable:
    return DomainTable(DomainEntry(n, True, YOUTUBE_SOURCE, t) for n, t in YOUTUBE.items())
