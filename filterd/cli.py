"""`filterd ...`: thin click commands over the library.

Every command's help ends with an Example. Commands print plain words and exit
non-zero on error; they never hide a traceback behind a default.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from filterd import __version__
from filterd.errors import ConfigError, ConfigErrors, FilterdError


def _fail(exc: FilterdError) -> None:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    for e in errors:
        click.echo(f"error: {ConfigError.__str__(e) if isinstance(e, ConfigError) else e}",
                   err=True)
    sys.exit(1)


def _parse_at(text: str | None, tz) -> datetime:
    if not text:
        return datetime.now(tz)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: use ISO time, e.g. 2026-11-25T09:30 or "
                                 "2026-11-25T02:30Z", param_hint="--at") from None
    return at if at.tzinfo else at.replace(tzinfo=tz)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filterd")
def main() -> None:
    """filterd: an age-tiered DNS and HTTP content filter for school networks.

    Example: filterd check pornhub.com --client 10.10.1.23
    """


@main.command()
@click.argument("name")
@click.option("--client", "client_ip", required=True, help="The client's IP address.")
@click.option("--mac", "client_mac", default=None, help="The client's MAC address, if known.")
@click.option("--at", "at_text", default=None,
              help="When (ISO 8601). Without a zone: the school's time zone. Default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print the Decision as JSON.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
              help="Language of the explanation.")
@click.option("--child", is_flag=True, help="Show what the student reads (no rule or source).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults).")
def check(name: str, client_ip: str, client_mac: str | None, at_text: str | None,
          as_json: bool, lang: str, child: bool, config_path: str | None) -> None:
    """Show the decision for NAME asked by a client, and why.

    This is the same Decision the DNS server, the block page and the teacher's
    "why blocked" page use.

    Example: filterd check tiktok.com --client 10.10.41.7 --at 2026-11-25T09:30
    """
    from filterd.config import load_config
    from filterd.policy.build import build_engine
    from filterd.policy.decision import Query, QueryError
    from filterd.policy.explain import explain

    try:
        config = load_config(config_path)
        engine = build_engine(config)
        at = _parse_at(at_text, config.timezone)
        decision = engine.decide(Query(name, client_ip, at, client_mac=client_mac, path="check"))
    except QueryError as exc:
        raise click.BadParameter(str(exc)) from None
    except FilterdError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(decision.to_json())
    else:
        click.echo(explain(decision, lang=lang, for_staff=not child, tz=config.timezone))


@main.group()
def policy() -> None:
    """Check the school policy files.

    Example: filterd policy validate policies/
    """


@policy.command()
@click.argument("path", required=False, type=click.Path())
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults); validated too.")
def validate(path: str | None, config_path: str | None) -> None:
    """Validate the policy (a directory of *.yaml files, or one file) and the config.

    Prints every problem as FILE:LINE: KEY: MESSAGE and exits 1 if there is any.

    Example: filterd policy validate /etc/filterd/policies
    """
    from filterd.config import load_config
    from filterd.policy.build import build_policy

    try:
        config = load_config(config_path)
        _, pol = build_policy(config, policy_dir=Path(path) if path else None)
    except FilterdError as exc:
        _fail(exc)
        return
    groups = [g for g in pol.groups.values() if not g.abstract]
    click.echo(f"OK: {len(pol.files)} file(s), {len(groups)} groups, "
               f"{len(pol.schedules)} schedules, {len(pol.clients.rules)} client entries, "
               f"{len(pol.education)} education entries, {len(pol.protected)} protected entries; "
               f"unknown clients -> {pol.default_group}")
