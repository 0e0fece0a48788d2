"""`filterd feeds ...` (appliance) and `filterd office feed ...` (office): thin click layers.

Exit codes suit a systemd timer: 0 done, 75 (EX_TEMPFAIL) when the office is
unreachable (the last good feeds stay), 1 when a feed was refused or a setting
must be fixed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from filterd.errors import FilterdError

EX_TEMPFAIL = 75


@click.group("feeds")
def feeds_group() -> None:
    """The office's signed feeds on this appliance: pull them, see what runs.

    Example: filterd feeds pull --config /etc/filterd/filterd.yaml
    """


def _store(config):
    from filterd.sync.feedpull import FeedStore, read_office_key

    return FeedStore(config.feeds_dir, read_office_key(Path(config.sync.office_key_file)))


@feeds_group.command("pull")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults).")
@click.option("--no-reload", is_flag=True, help="Install new versions but do not ask the "
              "running daemon to load them.")
def feeds_pull(config_path: str | None, no_reload: bool) -> None:
    """Ask the office for new feed versions; verify, install, and reload the daemon.

    A feed that fails its signature, is older than the one running, or is too large
    is refused and the last good version keeps working.

    Example: filterd feeds pull
    """
    from filterd.config import load_config

    try:
        config = load_config(config_path)
        if not config.sync.office_url:
            raise click.ClickException("sync.office_url is not set: this appliance has no "
                                       "office to pull feeds from")
        outcomes = pull_and_apply(config, config_path, reload=not no_reload)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    if any(o.result == "refused" for o in outcomes):
        sys.exit(1)
    if outcomes and all(o.result == "unreachable" for o in outcomes):
        sys.exit(EX_TEMPFAIL)


def pull_and_apply(config, config_path: str | None, *, reload: bool = True):
    """Pull every feed, say what happened to each, reload the daemon if one changed."""
    from filterd.sync.feedpull import pull_feeds

    outcomes = pull_feeds(_store(config), config.sync.office_url, config.school_id)
    for o in outcomes:
        version = f"version {o.version}" if o.version is not None else "no version yet"
        line = f"{o.kind}: {o.result} ({version})"
        click.echo(line + (f": {o.message}" if o.message else ""),
                   err=o.result in ("refused", "unreachable"))
    if reload and any(o.result == "updated" for o in outcomes):
        _reload(config)
    return outcomes


def _reload(config) -> None:
    """Ask the running daemon to load the new feeds (the control channel); say what it did."""
    from filterd.state.control import request_reload

    reply = request_reload(config.data_dir)
    if reply.status == "not_running":
        click.echo(f"feeds installed; {reply.message}: they take effect when filterd starts")
        return
    if not reply.ok:
        raise click.ClickException(f"feeds installed but not in use: {reply.message}")
    click.echo(reply.message)


@feeds_group.command("status")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults).")
def feeds_status(config_path: str | None) -> None:
    """Each feed's running version, its age, and the last error.

    Example: filterd feeds status
    """
    from filterd.config import load_config

    try:
        config = load_config(config_path)
        store = _store(config)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    for kind, st in store.statuses().items():
        version = st.version if st.version is not None else "-"
        click.echo(f"{kind:<10} version {version:<6} issued {st.issued_at or '-':<21} "
                   f"checked {st.checked_at or '-'}" + (f"  ERROR: {st.error}" if st.error
                                                        else ""))


# -- the office's side ----------------------------------------------------------------------

@click.group("feed")
def office_feed_group() -> None:
    """Publish the signed feeds every school's appliance pulls.

    Example: filterd office feed publish protected --file bo-tt-tt.txt
    """


def _office_storage(config_path, database_url):
    from filterd.sync.commands import _storage

    return _storage(config_path, database_url)


def _office_options(f):
    from filterd.sync.commands import _office_options as opts

    return opts(f)


@office_feed_group.command("key")
@_office_options
def office_feed_key(config_path, database_url) -> None:
    """Print the office's feed public key (64 hex) for the appliances' office-key file.

    Example: filterd office feed key > office-key.pub
    """
    from filterd.sync.office.feeds import office_public_hex

    try:
        _, data_dir = _office_storage(config_path, database_url)
        click.echo(office_public_hex(data_dir))
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc


@office_feed_group.command("publish")
@_office_options
@click.argument("kind", type=click.Choice(["protected", "deny", "allow", "education"]))
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), required=True,
              help="One domain per line ('#' comments allowed): the whole new version.")
@click.option("--scope", default="", help="Who it is for, in words (e.g. 'Sở GD&ĐT Hà Nội').")
def office_feed_publish(config_path, database_url, kind, file_, scope) -> None:
    """Sign and publish the next version of a feed holding exactly the names in --file.

    Example: filterd office feed publish deny --file them.txt --scope "Phòng GD&ĐT Ba Đình"
    """
    from filterd.sync.office.feeds import FeedPublisher

    names = [line.split("#", 1)[0].strip() for line in file_]
    try:
        storage, data_dir = _office_storage(config_path, database_url)
        p = FeedPublisher(storage, data_dir).publish(kind, [n for n in names if n],
                                                     scope=scope)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{kind}: version {p.version} published ({p.entries} names, {p.issued_at})")
