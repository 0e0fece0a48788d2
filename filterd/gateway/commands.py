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
