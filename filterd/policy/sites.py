"""Sites, not hosts: what a teacher's override, an allow entry or an approved review opens.

A teacher types "www.facebook.com" and means Facebook: the page, its other hosts
(m.facebook.com) and the domains its pages load from (fbcdn.net). So a name is
widened to its *site*: the registrable domain under the Public Suffix List
(`publicsuffixlist`, whose data ships inside the package: nothing is downloaded
at run time), and for a known service, the service's companion domains too.

SERVICES is the documented catalog (docs/policies.md "Sites and services"). A
service is entered by any of its domains; a service inside a big provider
(Google Classroom, Meet) is entered by its own host, never by the provider's
registrable domain, so "classroom.google.com" opens Classroom, not all of Google
(www.google.com stays in safe search).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from filterd.policy.names import normalize_name


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    name: str                    # shown as is in both languages ("YouTube")
    domains: tuple[str, ...]     # the first is the one written in overrides.json / policy


# Companion domains are the ones the service's own pages load from (checked in a
# browser's network panel); each covers its subdomains.
SERVICES: tuple[Service, ...] = (
    Service("youtube", "YouTube", ("youtube.com", "youtu.be", "googlevideo.com", "ytimg.com",
                                   "youtube-nocookie.com", "youtubei.googleapis.com",
                                   "youtube.googleapis.com", "ggpht.com")),
    Service("facebook", "Facebook", ("facebook.com", "fbcdn.net", "facebook.net", "fb.com",
                                     "fb.watch", "fbsbx.com", "messenger.com")),
    Service("instagram", "Instagram", ("instagram.com", "cdninstagram.com", "fbcdn.net")),
    Service("tiktok", "TikTok", ("tiktok.com", "tiktokcdn.com", "tiktokv.com",
                                 "tiktokcdn-us.com", "ttwstatic.com", "byteoversea.com",
                                 "ibytedtos.com", "muscdn.com")),
    Service("google_classroom", "Google Classroom", (
        "classroom.google.com", "accounts.google.com", "apis.google.com", "drive.google.com",
        "docs.google.com", "gstatic.com", "googleusercontent.com", "fonts.googleapis.com",
        "classroom.googleapis.com")),
    Service("google_meet", "Google Meet", (
        "meet.google.com", "accounts.google.com", "apis.google.com", "gstatic.com",
        "googleusercontent.com", "meet.googleapis.com", "fonts.googleapis.com")),
    Service("zoom", "Zoom", ("zoom.us", "zoom.com", "zoomcdn.com", "zoomgov.com")),
    Service("zalo", "Zalo", ("zalo.me", "zaloapp.com", "zadn.vn", "zdn.vn", "zalo.vn")),
    Service("khan_academy", "Khan Academy", ("khanacademy.org", "kastatic.org",
                                             "kasandbox.org")),
    # Vietnamese learning platforms (their pages load from their own domains)
    Service("olm", "OLM", ("olm.vn",)),
    Service("hocmai", "HOCMAI", ("hocmai.vn",)),
    Service("vietjack", "VietJack", ("vietjack.com",)),
    Service("hoc247", "HOC247", ("hoc247.net",)),
    Service("k12online", "K12Online", ("k12online.vn",)),
    Service("azota", "Azota", ("azota.vn",)),
    Service("shub", "SHub Classroom", ("shub.edu.vn",)),
    Service("vnedu", "vnEdu", ("vnedu.vn",)),
    Service("violympic", "ViOlympic", ("violympic.vn",)),
    Service("ioe", "IOE", ("ioe.vn",)),
    Service("spotify", "Spotify", ("spotify.com", "scdn.co", "spotifycdn.com")),
    Service("netflix", "Netflix", ("netflix.com", "nflxvideo.net", "nflximg.net",
                                   "nflxext.com", "nflxso.net")),
)
_BY_ROOT = {s.domains[0]: s for s in SERVICES}
# A name enters the service whose domain is its longest matching suffix; companions
# shared by two services (fbcdn.net) enter the first listed.
_BY_DOMAIN: dict[str, Service] = {}
for _s in SERVICES:
    for _d in _s.domains:
        _BY_DOMAIN.setdefault(_d, _s)


@dataclass(frozen=True, slots=True)
class Site:
    """What opening `typed` opens: `root` (stored) and every domain it covers."""

    typed: str
    root: str
    domains: tuple[str, ...]
    service: Service | None = None

    def label(self, lang: str = "vi") -> str:
        """"YouTube (8 tên miền)" / "YouTube (8 domains)"; a plain site is its root."""
        if self.service is None or len(self.domains) == 1:
            return self.service.name if self.service else self.root
        n = len(self.domains)
        return (f"{self.service.name} ({n} domains)" if lang == "en"
                else f"{self.service.name} ({n} tên miền)")


@lru_cache(maxsize=1)
def _psl():  # type: ignore[no-untyped-def]
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()   # the list shipped in the package; never fetched


def registrable(name: str) -> str:
    """The registrable domain ("www.bbc.co.uk" -> "bbc.co.uk"); the name itself for a
    public suffix or a single label."""
    return _psl().privatesuffix(name) or name


def service_for(name: str) -> Service | None:
    labels = name.split(".")
    for i in range(len(labels) - 1):
        s = _BY_DOMAIN.get(".".join(labels[i:]))
        if s is not None:
            return s
    return None


def site_for(typed: str) -> Site:
    """The site a typed name opens. Raises InvalidName (a ValueError) for a bad name."""
    name = normalize_name(typed)
    service = service_for(name)
    if service is not None:
        return Site(typed, service.domains[0], service.domains, service)
    root = registrable(name)
    return Site(typed, root, (root,))


def site_domains(root: str) -> tuple[str, ...]:
    """Every domain an override or allow entry for `root` covers (root first)."""
    s = _BY_ROOT.get(root)
    return s.domains if s is not None else (root,)
