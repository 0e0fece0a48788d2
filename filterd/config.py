"""The appliance configuration, `filterd.yaml`: one frozen dataclass per section.

`load_config(None)` gives the embedded defaults (everything on 127.0.0.1,
unprivileged ports, data under ./var) so `./scripts/run` works with no file.
A file is validated strictly: unknown keys, wrong types, bad addresses, bad
time zones are all collected and raised together as ConfigError(s) naming the
file, line and key. A bad value never falls back to a default: the appliance
fails closed and the running configuration stays.

Relative paths in a file are relative to the file's directory; the embedded
defaults are relative to the current directory. `filterd.example.yaml` at the
repository root documents every key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filterd.errors import ConfigError
from filterd.yamlsrc import Problems, YList, YMap, type_name
from filterd.yamlsrc import load as load_yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

Endpoint = tuple[str, int]


class _Bad(ValueError):
    """A value did not validate; the message says what was expected."""


# --- value kinds: each turns a YAML value into the typed value or raises _Bad --------------

@dataclass(frozen=True)
class _Ctx:
    base: Path                  # directory relative paths are resolved against
    values: dict[str, Any]      # values of the section parsed so far


Kind = Callable[[Any, _Ctx], Any]


def _int(lo: int | None = None, hi: int | None = None) -> Kind:
    def parse(v: Any, ctx: _Ctx) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"expected a whole number, got {type_name(v)}")
        if lo is not None and v < lo:
            raise _Bad(f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise _Bad(f"must be at most {hi}, got {v}")
        return v
    return parse


def _float(lo: float | None = None, hi: float | None = None) -> Kind:
    def parse(v: Any, ctx: _Ctx) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _Bad(f"expected a number, got {type_name(v)}")
        if lo is not None and v < lo:
            raise _Bad(f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise _Bad(f"must be at most {hi}, got {v}")
        return float(v)
    return parse


def _bool(v: Any, ctx: _Ctx) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"expected true or false, got {type_name(v)}")
    return v


def _text(*, empty: bool = False, pattern: str | None = None, hint: str = "") -> Kind:
    rx = re.compile(pattern) if pattern else None

    def parse(v: Any, ctx: _Ctx) -> str:
        if not isinstance(v, str):
            raise _Bad(f"expected text, got {type_name(v)}")
        if not empty and not v.strip():
            raise _Bad("must not be empty")
        if rx and v and not rx.fullmatch(v):
            raise _Bad(f"invalid value {v!r}" + (f": {hint}" if hint else ""))
        return v
    return parse


def _ids(v: Any, ctx: _Ctx) -> tuple[str, ...]:
    """A list of ids (group names): lowercase letters, digits and underscores."""
    if not isinstance(v, list):
        raise _Bad(f"expected a list of names, got {type_name(v)}")
    for i, item in enumerate(v):
        if not isinstance(item, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", item):
            raise _Bad(f"item {i + 1}: expected a group id like thcs, got {item!r}")
    return tuple(v)


def _choice(*options: str) -> Kind:
    def parse(v: Any, ctx: _Ctx) -> str:
        if v not in options:
            raise _Bad(f"must be one of {', '.join(options)}, got {v!r}")
        return v
    return parse


def _path(v: Any, ctx: _Ctx) -> Path:
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"expected a path, got {type_name(v)}")
    p = Path(v).expanduser()
    return p if p.is_absolute() else (ctx.base / p)


def _address(version: int) -> Kind:
    def parse(v: Any, ctx: _Ctx) -> str:
        if not isinstance(v, str):
            raise _Bad(f"expected an IPv{version} address, got {type_name(v)}")
        try:
            addr = ipaddress.ip_address(v)
        except ValueError:
            raise _Bad(f"not an IP address: {v!r}") from None
        if addr.version != version:
            raise _Bad(f"expected an IPv{version} address, got {v!r}")
        return str(addr)
    return parse


def parse_endpoint(v: Any, default_port: int | None = None) -> Endpoint:
    """'1.2.3.4:53', '[::1]:53', or a bare address when `default_port` is given."""
    if not isinstance(v, str) or not v:
        raise _Bad(f"expected 'address:port', got {type_name(v)}")
    host, port_s = v, None
    if v.startswith("["):
        host, sep, rest = v[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _Bad(f"bad address {v!r}; write IPv6 as [addr]:port")
        port_s = rest[1:] if rest else None
    elif v.count(":") == 1:
        host, port_s = v.split(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise _Bad(f"not an IP address: {host!r} (in {v!r})") from None
    if port_s is None:
        if default_port is None:
            raise _Bad(f"missing port in {v!r}; write e.g. 127.0.0.1:5353 or [::1]:5353")
        port = default_port
    else:
        if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
            raise _Bad(f"bad port {port_s!r} in {v!r}")
        port = int(port_s)
    return (str(addr), port)


def _endpoint(v: Any, ctx: _Ctx) -> Endpoint:
    return parse_endpoint(v)


def _endpoints(default_port: int | None, *, empty: bool = False) -> Kind:
    def parse(v: Any, ctx: _Ctx) -> tuple[Endpoint, ...]:
        if not isinstance(v, list):
            raise _Bad(f"expected a list of addresses, got {type_name(v)}")
        if not v and not empty:
            raise _Bad("the list must not be empty")
        out = []
        for i, item in enumerate(v):
            try:
                out.append(parse_endpoint(item, default_port))
            except _Bad as exc:
                raise _Bad(f"item {i + 1}: {exc}") from None
        return tuple(out)
    return parse


_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                       r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.I)


class UpstreamSpec(tuple):
    """An upstream resolver: (address, port) like a plain endpoint, and how to reach it.

    `transport` is "udp" (plain DNS, UDP with TCP on truncation), "tls" (DNS over TLS,
    RFC 7858) or "https" (DNS over HTTPS, RFC 8484); `tls_name` is the name the
    certificate must carry (None: the IP address itself), `path` the DoH path.
    """

    transport: str
    tls_name: str | None
    path: str

    def __new__(cls, host: str, port: int, transport: str = "udp",
                tls_name: str | None = None, path: str = "/dns-query") -> UpstreamSpec:
        self = super().__new__(cls, (host, port))
        self.transport = transport
        self.tls_name = tls_name
        self.path = path
        return self

    def __repr__(self) -> str:
        return f"UpstreamSpec({self.url!r})"

    # Equal to a plain (host, port) only as plain DNS; between specs the transport, the
    # certificate name and the path count too (a reload must see "tls://" become plain).
    def __eq__(self, other: object) -> bool:
        if isinstance(other, UpstreamSpec):
            return (tuple.__eq__(self, other) and self.transport == other.transport
                    and self.tls_name == other.tls_name and self.path == other.path)
        return self.transport == "udp" and tuple.__eq__(self, other) is True

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    @property
    def url(self) -> str:
        host = f"[{self[0]}]" if ":" in self[0] else self[0]
        name = f"#{self.tls_name}" if self.tls_name else ""
        if self.transport == "tls":
            return f"tls://{host}:{self[1]}{name}"
        if self.transport == "https":
            return f"https://{host}:{self[1]}{self.path}{name}"
        return f"{host}:{self[1]}"


def parse_upstream(v: Any) -> UpstreamSpec:
    """'9.9.9.9', '9.9.9.9:53', 'tls://9.9.9.9#dns.quad9.net', 'tls://[2620:fe::fe]:853',
    'https://1.1.1.1/dns-query#cloudflare-dns.com'. The address is an IP: filterd is the
    resolver, there is no other to look a name up with."""
    if not isinstance(v, str) or not v:
        raise _Bad(f"expected an upstream address, got {type_name(v)}")
    scheme, sep, rest = v.partition("://")
    if not sep:
        host, port = parse_endpoint(v, 53)
        return UpstreamSpec(host, port)
    if scheme not in ("tls", "https"):
        raise _Bad(f"unknown scheme {scheme!r} in {v!r}: write an address (plain DNS), "
                   "tls://ADDRESS#NAME (DNS over TLS) or https://ADDRESS/dns-query#NAME")
    rest, _, name = rest.partition("#")
    path = "/dns-query"
    if scheme == "https" and "/" in rest:
        rest, slash, tail = rest.partition("/")
        path = slash + tail
        if any(c in path for c in "?# ") or len(path) > 200:
            raise _Bad(f"bad DNS-over-HTTPS path {path!r} in {v!r}")
    try:
        host, port = parse_endpoint(rest, 853 if scheme == "tls" else 443)
    except _Bad as exc:
        raise _Bad(f"{exc} (the upstream must be an IP address; put the name the "
                   f"certificate carries after '#', e.g. tls://9.9.9.9#dns.quad9.net)") from None
    if name and not _HOSTNAME.fullmatch(name):
        raise _Bad(f"bad certificate name {name!r} in {v!r}")
    return UpstreamSpec(host, port, scheme, name.lower() or None, path)


def _upstreams(v: Any, ctx: _Ctx) -> tuple[UpstreamSpec, ...]:
    if not isinstance(v, list):
        raise _Bad(f"expected a list of upstreams, got {type_name(v)}")
    if not v:
        raise _Bad("the list must not be empty")
    out = []
    for i, item in enumerate(v):
        try:
            out.append(parse_upstream(item))
        except _Bad as exc:
            raise _Bad(f"item {i + 1}: {exc}") from None
    return tuple(out)


def _hostnames(v: Any, ctx: _Ctx) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise _Bad(f"expected a list of host names, got {type_name(v)}")
    for i, item in enumerate(v):
        if not isinstance(item, str) or not _HOSTNAME.fullmatch(item):
            raise _Bad(f"item {i + 1}: expected a host name like dns.school.edu.vn, got {item!r}")
    return tuple(x.lower() for x in v)


def _optional_file(v: Any, ctx: _Ctx) -> Path | None:
    if v in ("", None):
        return None
    p = _path(v, ctx)
    if not p.is_file():
        raise _Bad(f"no such file: {p}")
    return p


def _timezone(v: Any, ctx: _Ctx) -> zoneinfo.ZoneInfo:
    if not isinstance(v, str) or not v:
        raise _Bad(f"expected a time zone name such as Asia/Ho_Chi_Minh, got {type_name(v)}")
    try:
        return zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _Bad(f"unknown time zone {v!r} (expected e.g. Asia/Ho_Chi_Minh)") from None


def _url(*, empty: bool) -> Kind:
    def parse(v: Any, ctx: _Ctx) -> str:
        if not isinstance(v, str):
            raise _Bad(f"expected a URL, got {type_name(v)}")
        if not v and empty:
            return ""
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Bad(f"expected an http:// or https:// URL, got {v!r}")
        return v
    return parse


def _database_url(v: Any, ctx: _Ctx) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad(f"expected a database URL, got {type_name(v)}")
    if not re.match(r"^(sqlite:///.+|postgres(ql)?://.+)$", v):
        raise _Bad(f"expected sqlite:///PATH or postgresql://..., got {v!r}")
    return v


def _k(kind: Kind) -> dict[str, Any]:
    return {"kind": kind}


# --- sections -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DnsConfig:
    listen: tuple[Endpoint, ...] = field(default=(("127.0.0.1", 5353),),
                                         metadata=_k(_endpoints(None)))
    upstreams: tuple[UpstreamSpec, ...] = field(
        default=(UpstreamSpec("1.1.1.1", 53), UpstreamSpec("8.8.8.8", 53)),
        metadata=_k(_upstreams))
    # CA certificates (PEM) that encrypted upstreams' certificates must chain to;
    # empty = the system's trust store.
    upstream_ca_file: Path | None = field(default=None, metadata=_k(_optional_file))
    upstream_timeout: float = field(default=2.0, metadata=_k(_float(0.05, 30)))
    block_ttl: int = field(default=10, metadata=_k(_int(0, 86400)))
    workers: int = field(default=1, metadata=_k(_int(1, 64)))
    cache_size: int = field(default=10000, metadata=_k(_int(0, 10_000_000)))
    cache_min_ttl: int = field(default=0, metadata=_k(_int(0, 86400)))
    cache_max_ttl: int = field(default=86400, metadata=_k(_int(0, 7 * 86400)))
    negative_ttl_max: int = field(default=300, metadata=_k(_int(0, 86400)))
    rate_limit_qps: int = field(default=0, metadata=_k(_int(0, 1_000_000)))
    # Groups whose HTTPS filterd does not filter by name keep `ech` in SVCB/HTTPS answers;
    # every other group gets it removed (docs/dns.md "ECH").
    keep_ech_groups: tuple[str, ...] = field(default=(), metadata=_k(_ids))
    # Serve-stale (RFC 8767): seconds after expiry an answer may still be given (TTL 30)
    # while every upstream fails; 0 = never.
    serve_stale_max: int = field(default=86400, metadata=_k(_int(0, 7 * 86400)))
    # Refresh an answer asked for in the last tenth of its TTL (TTLs of 10 s or more).
    prefetch: bool = field(default=True, metadata=_k(_bool))
    # Serving DNS over TLS (e.g. "0.0.0.0:853") and over HTTPS at /dns-query
    # (e.g. "0.0.0.0:443") to the school's devices; empty = not served.
    tls_listen: tuple[Endpoint, ...] = field(default=(), metadata=_k(_endpoints(
        None, empty=True)))
    https_listen: tuple[Endpoint, ...] = field(default=(), metadata=_k(_endpoints(
        None, empty=True)))
    # A certificate the school installs (PEM chain and key); both empty = one issued by the
    # school CA for appliance_ipv4/ipv6 and tls_names.
    tls_cert_file: Path | None = field(default=None, metadata=_k(_optional_file))
    tls_key_file: Path | None = field(default=None, metadata=_k(_optional_file))
    tls_names: tuple[str, ...] = field(default=(), metadata=_k(_hostnames))

    def check(self) -> list[tuple[str, str]]:
        if self.cache_min_ttl > self.cache_max_ttl:
            return [("cache_min_ttl", "must not be larger than cache_max_ttl")]
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            key = "tls_key_file" if self.tls_key_file is None else "tls_cert_file"
            return [(key, "tls_cert_file and tls_key_file go together: give both or neither")]
        return []


@dataclass(frozen=True)
class EventsConfig:
    retention_days: int = field(default=30, metadata=_k(_int(1, 3650)))
    flush_interval: float = field(default=1.0, metadata=_k(_float(0.01, 60)))
    queue_max: int = field(default=5_000, metadata=_k(_int(100, 10_000_000)))
    store_allowed: bool = field(default=False, metadata=_k(_bool))


@dataclass(frozen=True)
class HttpConfig:
    block_page_listen: Endpoint = field(default=("127.0.0.1", 8080), metadata=_k(_endpoint))
    proxy_listen: Endpoint = field(default=("127.0.0.1", 3128), metadata=_k(_endpoint))
    mode: str = field(default="explicit", metadata=_k(_choice("explicit", "transparent")))
    # None in the dataclass means "<data_dir>/ca"; load_config always fills it in.
    intercept_ca_dir: Path = field(default=None, metadata=_k(_path))  # type: ignore[assignment]
    # Groups whose HTTPS is decrypted (school-managed devices trusting the school CA): opt-in.
    intercept_groups: tuple[str, ...] = field(default=(), metadata=_k(_ids))
    # Groups whose block page shows the matching rule and list (teachers, IT staff).
    staff_groups: tuple[str, ...] = field(default=("giao_vien",), metadata=_k(_ids))


@dataclass(frozen=True)
class AdminConfig:
    listen: Endpoint = field(default=("127.0.0.1", 8081), metadata=_k(_endpoint))
    max_override_minutes: int = field(default=120, metadata=_k(_int(1, 24 * 60)))


@dataclass(frozen=True)
class SyncConfig:
    office_url: str = field(default="", metadata=_k(_url(empty=True)))
    k_anonymity: int = field(default=5, metadata=_k(_int(3, 1000)))
    token_file: Path = field(default=None, metadata=_k(_path))  # type: ignore[assignment]
    # The office's Ed25519 public key (64 hex), saved at enrolment; signs every feed.
    office_key_file: Path = field(default=None, metadata=_k(_path))  # type: ignore[assignment]
    # Send every report of a harmful site to the office at the next sync (false: only
    # those the IT staff choose to forward on the admin page).
    forward_reports: bool = field(default=False, metadata=_k(_bool))


@dataclass(frozen=True)
class OfficeConfig:
    listen: Endpoint = field(default=("127.0.0.1", 8090), metadata=_k(_endpoint))
    database_url: str = field(default="", metadata=_k(_database_url))


def _optional_endpoint(v: Any, ctx: _Ctx) -> Endpoint | None:
    return None if v in ("", None) else parse_endpoint(v)


@dataclass(frozen=True)
class MetricsConfig:
    # Prometheus endpoint (GET /metrics); empty = off. Keep it on loopback or a trusted LAN.
    listen: Endpoint | None = field(default=None, metadata=_k(_optional_endpoint))


def _secret_file(v: Any, ctx: _Ctx) -> Path:
    """A credentials file: it must exist and be readable by its owner (the service) only."""
    import stat

    p = _path(v, ctx)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
    except OSError as exc:
        raise _Bad(f"cannot read {p}: {exc.strerror}") from None
    if mode & 0o077:
        raise _Bad(f"{p} is readable by others (mode {mode:o}): chmod 600 it, owned by the "
                   "service user")
    return p


@dataclass(frozen=True)
class AlertsConfig:
    """Alert delivery (filterd/alerts/): the school's SMTP account, links, timings.

    Which events alert and for whom is the policy's `alerts:`; who the staff are is set
    on the admin page. Nothing here ever reaches the office.
    """

    smtp_host: str = field(default="", metadata=_k(_text(empty=True)))
    smtp_port: int = field(default=587, metadata=_k(_int(1, 65535)))
    smtp_security: str = field(default="starttls", metadata=_k(_choice("starttls", "tls",
                                                                        "none")))
    smtp_user: str = field(default="", metadata=_k(_text(empty=True)))
    smtp_password_file: Path | None = field(default=None, metadata=_k(_secret_file))
    smtp_ca_file: Path | None = field(default=None, metadata=_k(_path))
    mail_from: str = field(default="", metadata=_k(_text(empty=True)))
    admin_url: str = field(default="", metadata=_k(_url(empty=True)))
    hold_seconds: float = field(default=5.0, metadata=_k(_float(0, 300)))
    digest_time: str = field(default="16:30", metadata=_k(_text(
        pattern=r"([01]\d|2[0-3]):[0-5]\d", hint="a time of day like 16:30")))
    retry_initial: float = field(default=30.0, metadata=_k(_float(0.1, 3600)))
    retry_max: float = field(default=900.0, metadata=_k(_float(1, 86400)))
    give_up_hours: float = field(default=72.0, metadata=_k(_float(1, 24 * 30)))
    webhook_timeout: float = field(default=10.0, metadata=_k(_float(0.5, 120)))
    lists_max_age_hours: float = field(default=48.0, metadata=_k(_float(1, 24 * 365)))
    disk_min_free_percent: float = field(default=10.0, metadata=_k(_float(0, 99)))
    health_window_minutes: int = field(default=360, metadata=_k(_int(1, 7 * 24 * 60)))

    def check(self) -> list[tuple[str, str]]:
        out = []
        if self.smtp_user and self.smtp_password_file is None:
            out.append(("smtp_password_file", "smtp_user is set: give the password file too"))
        if self.smtp_host and self.smtp_security == "none" and self.smtp_user:
            out.append(("smtp_security", "a password is never sent without TLS: use "
                                         "starttls or tls"))
        if self.smtp_host and not (self.mail_from or self.smtp_user):
            out.append(("mail_from", "give the address alerts are sent from"))
        if self.retry_initial > self.retry_max:
            out.append(("retry_initial", "must not be larger than retry_max"))
        return out


_SCHOOL_ID = r"[a-z0-9][a-z0-9_.-]{0,63}"


@dataclass(frozen=True)
class Config:
    school_id: str = field(default="dev-school", metadata=_k(_text(
        pattern=_SCHOOL_ID, hint="lowercase letters, digits, '-', '_' or '.', up to 64")))
    school_name: str = field(default="Trường thử nghiệm filterd", metadata=_k(_text()))
    timezone: zoneinfo.ZoneInfo = field(default=zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh"),
                                        metadata=_k(_timezone))
    data_dir: Path = field(default=None, metadata=_k(_path))  # type: ignore[assignment]
    policy_dir: Path = field(default=REPO_ROOT / "policies", metadata=_k(_path))
    sources_file: Path = field(default=REPO_ROOT / "blocklists" / "sources.yaml",
                               metadata=_k(_path))
    categories_file: Path = field(default=REPO_ROOT / "blocklists" / "categories.yaml",
                                  metadata=_k(_path))
    appliance_ipv4: str = field(default="127.0.0.1", metadata=_k(_address(4)))
    appliance_ipv6: str = field(default="::1", metadata=_k(_address(6)))
    dns: DnsConfig = field(default_factory=DnsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    office: OfficeConfig = field(default_factory=OfficeConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    source_file: Path | None = None   # the filterd.yaml this came from; None = embedded defaults

    @property
    def overrides_file(self) -> Path:
        return self.data_dir / "overrides.json"

    @property
    def feeds_dir(self) -> Path:
        return self.data_dir / "feeds"

    @property
    def lists_dir(self) -> Path:
        return self.data_dir / "lists"

    @property
    def db_file(self) -> Path:
        return self.data_dir / "filterd.db"


SECTIONS: dict[str, type] = {
    "dns": DnsConfig, "events": EventsConfig, "http": HttpConfig,
    "admin": AdminConfig, "sync": SyncConfig, "office": OfficeConfig,
    "metrics": MetricsConfig, "alerts": AlertsConfig,
}


def _scalar_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if "kind" in f.metadata}


def _parse_section(cls: type, raw: Any, ctx_base: Path, problems: Problems, prefix: str,
                   where: YMap | None, where_key: str | None) -> dict[str, Any]:
    """Validate one mapping against `cls`'s fields; return the given values only."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(f"expected a mapping of settings, got {type_name(raw)}", where, where_key,
                     path=prefix.rstrip(".") or None)
        return {}
    fields = _scalar_fields(cls)
    values: dict[str, Any] = {}
    ctx = _Ctx(ctx_base, values)
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key in SECTIONS and cls is Config:
            continue
        f = fields.get(key) if isinstance(key, str) else None
        if f is None:
            known = ", ".join(sorted(fields) + (sorted(SECTIONS) if cls is Config else []))
            problems.add(f"unknown key (known keys: {known})", raw, key, path=path)
            continue
        try:
            values[key] = f.metadata["kind"](value, ctx)
        except _Bad as exc:
            problems.add(str(exc), raw, key, path=path)
    return values


def _defaults_fill(cfg: Config) -> Config:
    """Fill the defaults that depend on data_dir."""
    data = cfg.data_dir
    http = cfg.http if cfg.http.intercept_ca_dir else dataclasses.replace(
        cfg.http, intercept_ca_dir=data / "ca")
    sync = cfg.sync if cfg.sync.token_file else dataclasses.replace(
        cfg.sync, token_file=data / "sync-token")
    if sync.office_key_file is None:
        sync = dataclasses.replace(sync, office_key_file=data / "office-key.pub")
    office = cfg.office if cfg.office.database_url else dataclasses.replace(
        cfg.office, database_url=f"sqlite:///{data / 'office.db'}")
    return dataclasses.replace(cfg, http=http, sync=sync, office=office)


def default_config() -> Config:
    """The embedded defaults: 127.0.0.1, unprivileged ports, data under ./var."""
    return _defaults_fill(Config(data_dir=Path.cwd() / "var"))


def parse_config(raw: Any, *, file: str, base: Path) -> Config:
    """Validate a parsed filterd.yaml document; raise ConfigError(s) listing every problem."""
    problems = Problems()
    if raw is None:
        raw = YMap()
        raw.file, raw.line, raw.key_lines = file, 1, {}
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of settings at the top, got {type_name(raw)}",
                          file=file, line=getattr(raw, "line", 1))
    top = _parse_section(Config, raw, base, problems, "", None, None)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        if name not in raw:
            continue
        values = _parse_section(cls, raw[name], base, problems, f"{name}.", raw, name)
        try:
            section = cls(**values)
        except TypeError as exc:  # pragma: no cover - fields and kinds are kept in step
            problems.add(str(exc), raw, name)
            continue
        check = getattr(section, "check", None)
        for key, message in (check() if check else []):
            src = raw[name] if isinstance(raw[name], YMap) else raw
            problems.add(message, src, key, path=f"{name}.{key}")
        sections[name] = section
    problems.raise_if_any()
    top.setdefault("data_dir", base / "var")
    cfg = Config(**top, **sections, source_file=Path(file))
    return _defaults_fill(cfg)


def load_config(path: str | Path | None) -> Config:
    """Load `filterd.yaml` (strict), or the embedded defaults when `path` is None."""
    if path is None:
        return default_config()
    path = Path(path)
    raw = load_yaml(path)
    return parse_config(raw, file=str(path), base=path.resolve().parent)


__all__ = [
    "AdminConfig", "AlertsConfig", "Config", "DnsConfig", "EventsConfig", "HttpConfig",
    "MetricsConfig", "OfficeConfig", "SyncConfig", "UpstreamSpec", "YList", "default_config",
    "load_config", "parse_config", "parse_endpoint", "parse_upstream",
]
