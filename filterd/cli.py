"""`filterd ...`: thin click commands over the library.

Every command's help ends with an Example. Commands print plain words and exit
non-zero on error; they never hide a traceback behind a default.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

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


PLUGIN_GROUP = "filterd.commands"


class _Commands(click.Group):
    """filterd's own commands, plus those other packages register under the
    `filterd.commands` entry point (the admin page's `filterd admin`), loaded only when
    named: filterd never imports them."""

    def _plugins(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None and (ep := self._plugins().get(name)) is not None:
            cmd = ep.load()
        return cmd


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filterd")
def main() -> None:
    """filterd: an age-tiered DNS and HTTP content filter for school networks.

    Example: filterd check pornhub.com --client 10.10.1.23
    """


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="filterd.yaml; default: the embedded defaults (everything on 127.0.0.1).",
)
def proxy(config_path: str | None) -> None:
    """Run the HTTP side alone: block page server, SNI relay, mitmproxy for intercepting groups.

    Example: filterd proxy --config /etc/filterd/filterd.yaml
    """
    from filterd.http.service import run_forever

    run_forever(config_path)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Configuration file (default: the embedded defaults, 127.0.0.1:5353).")
@click.option("-v", "--verbose", is_flag=True, help="Log every reload and worker event in detail.")
def run(config_path: str | None, verbose: bool) -> None:
    """Run the filtering daemon (DNS server and event log) until stopped.

    SIGHUP (or `filterd reload`) reloads the policy and lists; an invalid one is
    refused and the running one keeps serving.

    Example: filterd run --config /etc/filterd/filterd.yaml
    """
    import logging

    from filterd import daemon
    from filterd.config import load_config
    from filterd.errors import FilterdError

    daemon.configure_logging(logging.DEBUG if verbose else logging.INFO)
    try:
        config = load_config(config_path)
        code = daemon.run(config, config_path=config_path)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(code)


_wait_option = click.option("--wait", "wait", type=click.FloatRange(1, 600), default=30.0,
                            show_default=True,
                            help="Seconds to wait for the running filter's answer.")


def _say_reply(reply) -> None:
    """Print the daemon's answer; exit 1 unless it took the change."""
    if reply.ok:
        click.echo(reply.message)
        return
    raise click.ClickException(reply.message)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Configuration file of the running daemon (default: the embedded defaults).")
@_wait_option
def reload(config_path: str | None, wait: float) -> None:
    """Tell the running filter to load filterd.yaml, the policy and the lists again,
    and print what it did: reloaded (and which settings need a restart), or refused
    with the loader's message (file, line, key) while the previous policy keeps serving.

    Exits 1 when the filter refused, did not answer or is not running (systemd's
    ExecReload runs this, so `systemctl reload filterd` fails the same way).

    Example: filterd reload --config /etc/filterd/filterd.yaml
    """
    from filterd.config import load_config
    from filterd.errors import FilterdError
    from filterd.state.control import request_reload

    try:
        config = load_config(config_path)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    _say_reply(request_reload(config.data_dir, timeout=wait))


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Configuration file of the running daemon (default: the embedded defaults).")
@click.option("--wait", "wait", type=click.FloatRange(1, 600), default=90.0, show_default=True,
              help="Seconds to wait for the new process to serve.")
def restart(config_path: str | None, wait: float) -> None:
    """Restart the running filter, for settings a reload cannot change (listen addresses).

    Under systemd the unit starts the new process; elsewhere the daemon executes
    itself again. Prints the new process's start record.

    Example: filterd restart --config /etc/filterd/filterd.yaml
    """
    from filterd.config import load_config
    from filterd.errors import FilterdError
    from filterd.state.control import request_restart

    try:
        config = load_config(config_path)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    reply = request_restart(config.data_dir, timeout=wait)
    if reply.ok and reply.outcome is not None:
        click.echo(f"restarted (pid {reply.outcome.pid}, generation {reply.outcome.generation})")
        return
    _say_reply(reply)

# -- filterd lists ... -------------------------------------------------------------------


def _lists_setup(config_path: str | None, data_dir: str | None,
                 sources_file: str | None) -> tuple[Path, Path, Path]:
    """(data_dir, sources_file, categories_file) from --config / the embedded defaults,
    with --data-dir and --sources taking precedence. The categories are always the
    configured ones: --sources names another sources file, not another category map."""
    from filterd.config import load_config

    cfg = load_config(config_path)
    data = Path(data_dir) if data_dir else cfg.data_dir
    sources = Path(sources_file) if sources_file else cfg.sources_file
    return data, sources, cfg.categories_file


def _lists_updater(config_path: str | None, data_dir: str | None, sources_file: str | None):
    from filterd.lists.sources import load_categories, load_sources
    from filterd.lists.updater import Updater

    data, sources, categories = _lists_setup(config_path, data_dir, sources_file)
    return Updater(data, load_sources(sources, load_categories(categories)))


def _reload_lists(data_dir: Path, version: str | None, wait: float) -> None:
    """Ask the running filter to load the index just compiled, and say whether it did."""
    from filterd.state.control import request_reload

    reply = request_reload(data_dir, timeout=wait)
    o = reply.outcome
    if reply.status == "not_running":
        click.echo(f"the filter is not running: it uses list index {version} when it starts")
        return
    if reply.ok and o is not None:
        if o.index_version == version:
            click.echo(f"the running filter loaded list index {version} "
                       f"(pid {o.pid}, generation {o.generation})")
            return
        raise click.ClickException(
            f"the running filter reloaded but serves list index {o.index_version}, "
            f"not {version} (another update may have run meanwhile)")
    raise click.ClickException(f"{reply.message}; it keeps answering from list index "
                               f"{o.index_version if o else 'it had'}")


_reload_option = click.option("--no-reload", is_flag=True,
                               help="Only compile; do not ask the running filter to load it.")


_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                              help="filterd.yaml (default: the embedded defaults).")
_data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                                help="Data directory (overrides the config's data_dir).")
_sources_option = click.option("--sources", "sources_file", type=click.Path(dir_okay=False),
                               help="sources.yaml (overrides the config's sources_file).")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@main.group("lists")
def lists_group() -> None:
    """Category lists: fetch, compile and inspect the list index.

    Example: filterd lists update --source hostsvn-gambling
    """


@lists_group.command("update")
@_config_option
@_data_dir_option
@_sources_option
@click.option("--source", "only", multiple=True, help="Only this source (repeatable).")
@click.option("--force", is_flag=True,
              help="Recompile even if nothing changed; accept a suspicious shrink.")
@click.option("--strict", is_flag=True, help="Exit 1 when any source failed.")
@_reload_option
@_wait_option
def lists_update(config_path: str | None, data_dir: str | None, sources_file: str | None,
                 only: tuple[str, ...], force: bool, strict: bool, no_reload: bool,
                 wait: float) -> None:
    """Fetch the list sources, compile the index and swap it in atomically.

    A source that fails (unreachable, truncated, corrupt, or shrinking suspiciously)
    keeps its last good data; the command says why (also on stderr) and still exits 0,
    since the index it leaves is good (`--strict` exits 1 instead). `filterd lists
    status` keeps showing the error. A new index is then loaded by the running filter,
    and the command says whether it was (exit 1 when the filter refused it).

    Example: filterd lists update --config /etc/filterd/filterd.yaml
    """
    from filterd.errors import FilterdError

    try:
        updater = _lists_updater(config_path, data_dir, sources_file)
        report = updater.update(only or None, force=force)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from None
    for o in report.outcomes:
        click.echo(f"{o.name}: {o.status.replace('_', ' ')}, {o.count} entries")
        if o.error:
            click.echo(f"  error: {o.error} (last good data kept)")
            click.echo(f"{o.name}: {o.error} (last good data kept)", err=True)
    if report.compiled:
        click.echo(f"index compiled: version {report.index_version}")
        if not no_reload:
            _reload_lists(updater.dir.parent, report.index_version, wait)
    else:
        click.echo(f"index unchanged: version {report.index_version}")
    if report.failed and strict:
        raise SystemExit(1)


@lists_group.command("import")
@_config_option
@_data_dir_option
@_sources_option
@click.option("--force", is_flag=True, help="Accept a suspicious shrink.")
@_reload_option
@_wait_option
@click.argument("source")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def lists_import(config_path: str | None, data_dir: str | None, sources_file: str | None,
                 force: bool, no_reload: bool, wait: float, source: str, file: str) -> None:
    """Use a local FILE as the data of SOURCE (for schools without a good connection).

    The file is checked like a download; if good, the index is recompiled with it and
    the running filter asked to load it (the command says whether it did).

    Example: filterd lists import ut1-adult /media/usb/adult.tar.gz
    """
    from filterd.errors import FilterdError

    try:
        updater = _lists_updater(config_path, data_dir, sources_file)
        report = updater.import_file(source, file, force=force)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from None
    (o,) = report.outcomes
    if o.error:
        raise click.ClickException(f"{o.error} (last good data kept)")
    click.echo(f"{o.name}: imported, {o.count} entries")
    click.echo(f"index compiled: version {report.index_version}")
    if not no_reload:
        _reload_lists(updater.dir.parent, report.index_version, wait)


@lists_group.command("compile")
@_config_option
@_data_dir_option
@_sources_option
@_reload_option
@_wait_option
def lists_compile(config_path: str | None, data_dir: str | None,
                  sources_file: str | None, no_reload: bool, wait: float) -> None:
    """Recompile the index from the last good downloads and the seed lists (no network).

    Useful after enabling or disabling a source in sources.yaml. The running filter is
    asked to load the new index (the command says whether it did).

    Example: filterd lists compile --data-dir /var/lib/filterd
    """
    from filterd.errors import FilterdError

    try:
        updater = _lists_updater(config_path, data_dir, sources_file)
        version = updater.compile()
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"index compiled: version {version}")
    if not no_reload:
        _reload_lists(updater.dir.parent, version, wait)


@lists_group.command("status")
@_config_option
@_data_dir_option
@_sources_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lists_status(config_path: str | None, data_dir: str | None, sources_file: str | None,
                 as_json: bool) -> None:
    """Show each source's age, entry count and last error, and the live index.

    Example: filterd lists status --json
    """
    import json
    import time

    from filterd.errors import FilterdError
    from filterd.lists.index import ListIndex

    try:
        updater = _lists_updater(config_path, data_dir, sources_file)
        from filterd.lists.updater import status

        rows = status(updater.dir.parent, updater.sources)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        index = ListIndex.open(updater.dir / "current")
        index_info: dict[str, object] = {"version": index.version, **index.counts,
                                         "shards": index.shards}
    except FilterdError as exc:
        index_info = {"error": str(exc)}
    now = time.time()
    if as_json:
        click.echo(json.dumps({"index": index_info, "sources": [
            {"name": r.name, "category": r.category, "enabled": r.enabled, "count": r.count,
             "fetched": r.fetched, "checked": r.checked, "age_seconds": r.age(now),
             "error": r.error, "rejects": dict(r.rejects)} for r in rows]}, indent=1))
        return
    if "error" in index_info:
        click.echo(f"index: {index_info['error']}")
    else:
        click.echo(f"index: version {index_info['version']}, {index_info['subtree']} domains, "
                   f"{index_info['exact']} exact hosts, {index_info['ips']} IPs, "
                   f"{index_info['urls']} URLs"
                   + (f", names in {index_info['shards']} shards" if index_info["shards"] else ""))
    for r in rows:
        state = "" if r.enabled else " (disabled)"
        click.echo(f"{r.name}{state}: {r.category}, {r.count} entries, age {_age(r.age(now))}")
        if r.rejects:
            click.echo("  skipped: " + ", ".join(f"{n} {why}" for why, n in
                                                 sorted(r.rejects.items(), key=lambda x: -x[1])))
        if r.error:
            click.echo(f"  error: {r.error}")


@lists_group.command("lookup")
@_config_option
@_data_dir_option
@click.argument("name")
def lists_lookup(config_path: str | None, data_dir: str | None, name: str) -> None:
    """Show every list entry that matches NAME or a parent domain (most specific first).

    Compiles the seed lists first when there is no index yet, as the daemon does.

    Example: filterd lists lookup www.example.com --data-dir var
    """
    from filterd.errors import FilterdError
    from filterd.lists.normalize import IP, NAME, classify
    from filterd.lists.seed import ensure_index

    data, _, _ = _lists_setup(config_path, data_dir, sources_file="-")
    kind, value = classify(name)
    if kind not in (NAME, IP):
        raise click.ClickException(f"{name!r} is not a valid name ({value})")
    try:
        index = ensure_index(data / "lists")
        ip_hit = index.ips.get(value) if kind == IP else None
        hits = (ip_hit,) if ip_hit else index.lookup(value) if kind == NAME else ()
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from None
    if not hits:
        click.echo(f"{value}: in no list")
    for h in hits:
        what = "address" if kind == IP else "exact host" if h.exact else "domain and subdomains"
        cats = ", ".join(sorted(h.categories)) or "-"
        allow = f", allow: {', '.join(sorted(h.allow_categories))}" if h.allow_categories else ""
        click.echo(f"{h.domain} ({what}): {cats}{allow} [{', '.join(h.sources)}]")


# -- filterd check / filterd policy ----------------------------------------------------


@main.command()
@click.argument("name")
@click.option("--client", "client_ip", default=None,
              help="The client's IP address (or use --group).")
@click.option("--group", "group_id", default=None,
              help="Decide as a device of this group (e.g. thcs) instead of --client.")
@click.option("--mac", "client_mac", default=None, help="The client's MAC address, if known.")
@click.option("--url", default=None,
              help="A full URL, as the web proxy sees it (checks URL list entries too).")
@click.option("--at", "at_text", default=None,
              help="When (ISO 8601). Without a zone: the school's time zone. Default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print the Decision as JSON.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
              help="Language of the explanation.")
@click.option("--child", is_flag=True, help="Show what the student reads (no rule or source).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults).")
def check(name: str, client_ip: str | None, group_id: str | None, client_mac: str | None,
          url: str | None, at_text: str | None,
          as_json: bool, lang: str, child: bool, config_path: str | None) -> None:
    """Show the decision for NAME asked by a client, and why.

    This is the same Decision the DNS server, the block page and the teacher's
    "why blocked" page use.

    Example: filterd check tiktok.com --client 10.10.41.7 --at 2026-11-25T09:30
    """
    from filterd.build import build_engine
    from filterd.config import load_config
    from filterd.policy.decision import Query, QueryError
    from filterd.words.explain import Words

    if (client_ip is None) == (group_id is None):
        raise click.UsageError("give exactly one of --client IP or --group GROUP")
    try:
        config = load_config(config_path)
        engine = build_engine(config)
        at = _parse_at(at_text, config.timezone)
        query = Query(name, client_ip or "192.0.2.1", at, client_mac=client_mac,
                      path="http" if url else "check", url=url)
        if group_id is not None:
            if group_id not in engine.groups:
                raise click.BadParameter(f"unknown group {group_id!r} (groups: "
                                         f"{', '.join(engine.groups)})", param_hint="--group")
            decision = engine.decide_for_group(query, group_id)
        else:
            decision = engine.decide(query)
    except QueryError as exc:
        raise click.BadParameter(str(exc)) from None
    except FilterdError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(decision.to_json())
    else:
        click.echo(Words.for_engine(engine).explain(decision, lang, for_staff=not child))


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
    """Validate the policy (a directory of *.yaml files, or one file), the config and
    the teachers' overrides: everything a reload checks except the list index.

    Prints every problem as FILE:LINE: KEY: MESSAGE and exits 1 if there is any.

    Example: filterd policy validate /etc/filterd/policies
    """
    from filterd.build import build_engine
    from filterd.config import load_config
    from filterd.policy.engine import EmptyIndex

    try:
        config = load_config(config_path)
        engine = build_engine(config, index=EmptyIndex(),
                              policy_dir=Path(path) if path else None)
    except FilterdError as exc:
        _fail(exc)
        return
    pol = engine.policy
    groups = [g for g in pol.groups.values() if not g.abstract]
    click.echo(f"OK: {len(pol.files)} file(s), {len(groups)} groups, "
               f"{len(pol.schedules)} schedules, {len(pol.clients.rules)} client entries, "
               f"{len(pol.education)} education entries, {len(pol.protected)} protected entries, "
               f"{len(pol.alerts.rules)} alert rules; unknown clients -> {pol.default_group}")


@policy.command("show")
@click.argument("group_id", required=False)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def policy_show(group_id: str | None, config_path: str | None, as_json: bool) -> None:
    """Show each group as filterd sees it, after `extends:` is applied.

    Example: filterd policy show thcs
    """
    import json

    from filterd.build import build_policy
    from filterd.config import load_config
    from filterd.policy.summary import group_summary

    try:
        config = load_config(config_path)
        _, pol = build_policy(config)
    except FilterdError as exc:
        _fail(exc)
        return
    if group_id is not None and group_id not in pol.groups:
        raise click.BadParameter(f"unknown group {group_id!r} (groups: "
                                 f"{', '.join(pol.groups)})", param_hint="GROUP_ID")
    ids = [group_id] if group_id else list(pol.groups)
    rows = [group_summary(pol, gid) for gid in ids]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        head = f"{r['id']}: {r['label_vi']} / {r['label_en']}"
        if r["abstract"]:
            head += " (abstract: a base for other groups)"
        if r["default"]:
            head += " (unknown devices)"
        click.echo(head + (f", extends {r['extends']}" if r["extends"] else ""))
        if r["clients"]:
            click.echo(f"  clients: {', '.join(r['clients'])}")
        click.echo(f"  always blocked: {', '.join(r['block_always']) or '-'}")
        for sid, cats in r["block_during"].items():
            click.echo(f"  blocked during {sid}: {', '.join(cats)}")
        if r["allow"]:
            click.echo(f"  allow: {', '.join(r['allow'])}")
        if r["deny"]:
            click.echo(f"  deny: {', '.join(r['deny'])}")
        click.echo(f"  safe search: {r['safe_search']}, YouTube: {r['youtube']}, "
                   f"blocked answers: {r['block_mode']}, HTTPS interception: "
                   f"{'yes' if r['intercept'] else 'no'}")


def _register_gateway() -> None:
    from filterd.gateway.commands import doctor_cmd, gateway

    main.add_command(gateway)
    main.add_command(doctor_cmd)


_register_gateway()


def _register_sync() -> None:
    from filterd.sync.commands import enrol_cmd, office_group, sync_cmd
    from filterd.sync.feed_commands import feeds_group, office_feed_group

    main.add_command(sync_cmd)
    main.add_command(enrol_cmd)
    main.add_command(feeds_group)
    office_group.add_command(office_feed_group)
    main.add_command(office_group)


_register_sync()


def _register_alerts() -> None:
    from filterd.alerts.commands import alerts_group

    main.add_command(alerts_group)


_register_alerts()
