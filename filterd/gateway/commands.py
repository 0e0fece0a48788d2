"""`filterd gateway ...` and `filterd doctor`: thin click commands, registered by filterd.cli."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from filterd.errors import FilterdError
from filterd.gateway import apply as nft
from filterd.gateway.rules import (
    DESIGNS,
    GatewayPlan,
    default_doh_list_path,
    load_address_list,
    render,
    router_advice,
)


def _plan_options(fn):  # type: ignore[no-untyped-def]
    options = [
        click.option("--design", type=click.Choice(DESIGNS), default="router", show_default=True,
                     help="router: traffic passes through filterd; dns-only: the school's "
                          "router hands out filterd as DNS."),
        click.option("--lan", default="eth1", show_default=True, help="LAN interface."),
        click.option("--block-quic", is_flag=True, help="Also block QUIC (UDP 443)."),
        click.option("--transparent-http", is_flag=True,
                     help="Redirect HTTP/HTTPS to the proxy (router design only)."),
        click.option("--dns-port", default=53, show_default=True, help="Port filterd answers on."),
        click.option("--proxy-port", default=3128, show_default=True,
                     help="Port of the transparent proxy."),
        click.option("--doh-list", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="DoH resolver address list (default: the shipped one)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _plan(design: str, lan: str, block_quic: bool, transparent_http: bool, dns_port: int,
          proxy_port: int, doh_list: Path | None) -> GatewayPlan:
    try:
        return GatewayPlan(design=design, lan=lan, block_quic=block_quic,
                           transparent_http=transparent_http, dns_port=dns_port,
                           proxy_port=proxy_port,
                           doh=load_address_list(doh_list or default_doh_list_path()))
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def gateway() -> None:
    """Firewall rules that make every LAN device use filterd.

    Example: filterd gateway rules --design router --lan eth1 --block-quic
    """


@gateway.command("rules")
@_plan_options
@click.option("--advice-for", metavar="IP", default=None,
              help="dns-only: also print what to set on the school's router for this address.")
def rules_cmd(advice_for: str | None, **kw: object) -> None:
    """Print the nftables ruleset (table inet filterd) without applying it.

    Example: filterd gateway rules --design router --lan eth1 --transparent-http
    """
    plan = _plan(**kw)  # type: ignore[arg-type]
    click.echo(render(plan), nl=False)
    if advice_for:
        click.echo("\n" + router_advice(advice_for, plan.doh), nl=False, err=True)


@gateway.command("apply")
@_plan_options
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save the ruleset here so filterd-gateway.service loads it at boot "
                   "(/etc/filterd/gateway.nft).")
def apply_cmd(save: Path | None, **kw: object) -> None:
    """Check and load the ruleset atomically (replaces only table inet filterd).

    Example: filterd gateway apply --design router --lan eth1 --save /etc/filterd/gateway.nft
    """
    try:
        nft.apply(render(_plan(**kw)), save=save)  # type: ignore[arg-type]
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("filterd gateway rules applied" + (f" and saved to {save}" if save else ""))


@gateway.command("show")
def show_cmd() -> None:
    """Print the rules in force, with packet counters.

    Example: filterd gateway show
    """
    try:
        text = nft.show()
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    if not text:
        click.echo("no filterd gateway rules are in force", err=True)
        sys.exit(1)
    click.echo(text, nl=False)


@gateway.command("remove")
def remove_cmd() -> None:
    """Remove the filterd table (other firewall rules are not touched).

    Example: filterd gateway remove
    """
    try:
        removed = nft.remove()
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("removed" if removed else "nothing to remove")


def lan_addresses(iface: str) -> list[str]:
    """The addresses filterd answers on at the LAN interface (`ip -j addr show dev IF`)."""
    import json
    import subprocess

    proc = subprocess.run(["ip", "-j", "addr", "show", "dev", iface], capture_output=True,
                          text=True, timeout=10, check=False)
    if proc.returncode != 0:
        raise click.ClickException(f"no interface {iface}: {proc.stderr.strip()}")
    return [a["local"] for link in json.loads(proc.stdout or "[]")
            for a in link.get("addr_info", ()) if a.get("local")]


@gateway.command("monitor")
@click.option("--lan", required=True, help="LAN interface to watch.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (events go to its data_dir; groups come from its policy).")
@click.option("--doh-list", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="DoH resolver address list (default: the shipped one).")
@click.option("--dedupe", default=60.0, show_default=True,
              help="Seconds before the same client, kind and server is logged again.")
@click.option("--print", "echo", is_flag=True, help="Also print each attempt on stdout.")
def monitor_cmd(lan: str, config_path: str | None, doh_list: Path | None, dedupe: float,
                echo: bool) -> None:
    """Watch the LAN for DNS bypass attempts (other resolvers, DoT, DoH); log each as an event.

    Needs CAP_NET_RAW and CAP_NET_ADMIN (filterd-bypass.service has them).

    Example: filterd gateway monitor --lan eth1 --config /etc/filterd/filterd.yaml --print
    """
    import signal
    import threading

    from filterd import metrics
    from filterd.config import load_config
    from filterd.gateway.bypass import (
        BypassAttempt,
        BypassDetector,
        BypassMonitor,
        EventLogSink,
        ListSink,
    )
    from filterd.sdnotify import Notifier
    from filterd.state.events import open_event_log

    try:
        config = load_config(config_path)
        own = {*lan_addresses(lan), config.appliance_ipv4, config.appliance_ipv6}
        detector = BypassDetector(own, load_address_list(doh_list or default_doh_list_path()),
                                  dedupe_seconds=dedupe)
        group_for = _group_lookup(config)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    # The same construction as the daemon's: the configured retention, not a default.
    events = open_event_log(config).start()
    sink = EventLogSink(events, group_for=group_for, enforced=nft.installed())
    def out(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()  # one line per attempt, also when stdout is a pipe

    printer = ListSink(echo=out) if echo else None
    snapshot = Path(config.data_dir) / "metrics" / metrics.BYPASS_SNAPSHOT

    def counted(attempt: BypassAttempt) -> None:
        metrics.BYPASS_ATTEMPTS.inc(kind=attempt.kind.value)
        try:  # for the daemon's metrics endpoint; the event is what matters
            metrics.REGISTRY.dump(snapshot, names=(metrics.BYPASS_ATTEMPTS.name,))
        except OSError as exc:
            click.echo(f"bypass metrics not written: {exc}", err=True)
        if printer:
            printer.record_bypass(attempt)

    monitor = BypassMonitor(lan, detector, sink, on_attempt=counted).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not monitor.wait_started():
        raise click.ClickException(f"could not capture on {lan} (needs CAP_NET_RAW)")
    click.echo(f"monitoring {lan} for bypass attempts", err=True)
    sys.stderr.flush()
    Notifier().ready(f"monitoring {lan}")   # filterd-bypass.service is Type=notify
    try:
        stop.wait()
    finally:
        monitor.stop()
        events.close()


def _group_lookup(config):  # type: ignore[no-untyped-def]
    """client -> group id from the policy; clients only (no list index needed)."""
    from filterd.build import build_engine
    from filterd.lists.index import MemoryIndex

    engine = build_engine(config, index=MemoryIndex.from_entries({}))
    return lambda ip, mac: engine.group_for(ip, mac).id


@click.command("doctor")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults).")
@click.option("--skip", multiple=True, type=click.Choice(
    ("ports", "upstreams", "clock", "lists", "disk", "ca", "office", "sync", "rules")),
    help="Leave out a check (repeatable).")
def doctor_cmd(config_path: str | None, skip: tuple[str, ...]) -> None:
    """Check the appliance: ports, upstreams, clock, lists, disk, CA, office, firewall rules.

    Prints each check with a plain-words fix; exits 1 if any check failed.

    Example: filterd doctor --config /etc/filterd/filterd.yaml
    """
    from filterd.config import load_config
    from filterd.doctor import Status, run_checks

    try:
        config = load_config(config_path)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    checks = run_checks(config, skip=skip)
    for check in checks:
        click.echo(check.render())
    failed = [c for c in checks if c.status is Status.FAIL]
    click.echo(f"\n{len(failed)} problem(s) found" if failed else "\nall checks passed")
    sys.exit(1 if failed else 0)
