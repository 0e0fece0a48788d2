"""`filterd sync` and `filterd office ...`: thin click commands over filterd.sync.

Registered on the main group by filterd/cli.py. Exit codes suit a systemd
oneshot service and timer: 0 done (or nothing to do), 75 (EX_TEMPFAIL) when the
office is unreachable (reports stay in the outbox), 1 for anything a person
must fix (configuration, credential, a refused report).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from filterd.errors import FilterdError

EX_TEMPFAIL = 75


def _load_config(path: str | None) -> Any:
    from filterd.config import load_config

    return load_config(path)


def _feed_versions(data_dir: Path, key_file: Path | None) -> tuple[tuple[str, int], ...]:
    """The office feeds this appliance runs (verified), for the daily report."""
    from filterd.sync.feedpull import FeedStore, OfficeKeyError, read_office_key

    if key_file is None or not Path(key_file).exists():
        return ()
    try:
        store = FeedStore(data_dir / "feeds", read_office_key(Path(key_file)))
    except OfficeKeyError:
        return ()
    return tuple(sorted(store.versions().items()))


def _list_info(data_dir: Path, key_file: Path | None = None):
    """The compiled list index's version and build time, if an index is installed, and
    the versions of the office's feeds in use."""
    from filterd.sync.report import ListInfo

    feeds = _feed_versions(data_dir, key_file)
    current = data_dir / "lists" / "current"
    if not current.exists():
        return ListInfo(feeds=feeds)
    version = None
    try:
        from filterd.lists.index import ListIndex

        version = ListIndex.open(current).version
    except Exception:  # an unreadable index is reported as unknown, not fatal
        version = None
    updated = datetime.fromtimestamp(current.resolve().stat().st_mtime, UTC)
    return ListInfo(version=version, updated_at=updated, feeds=feeds)


@click.command("sync")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (default: the embedded defaults).")
@click.option("--dry-run", is_flag=True,
              help="Print exactly what would leave (decompressed, pretty); send nothing.")
@click.option("--now", "ignore_backoff", is_flag=True,
              help="Try the office now even if the last failure asked to wait.")
def sync_cmd(config_path: str | None, dry_run: bool, ignore_backoff: bool) -> None:
    """Build every finished day's anonymized report and deliver the outbox to the office.

    Each day is written to <data_dir>/outbox/ first and removed only when the
    office acknowledges it. Run daily by a systemd timer; safe to run any time.

    Example: filterd sync --dry-run
    """
    from filterd.sync.outbox import Outbox, SyncSettings, run_sync
    from filterd.sync.signing import Credential
    from filterd.sync.uploader import Uploader

    try:
        cfg = _load_config(config_path)
        settings = SyncSettings.from_config(cfg)
        lists = lambda: _list_info(settings.data_dir, cfg.sync.office_key_file)  # noqa: E731
        now = datetime.now(UTC)
        if dry_run:
            items = Outbox(settings, lists=lists).dry_run(now)
            target = settings.office_url or "(no office_url configured: nothing is sent)"
            click.echo(f"# {len(items)} report(s) would be sent to {target}")
            for day, report in items:
                click.echo(f"# --- school {settings.school_id}, day {day} ---")
                click.echo(json.dumps(report, indent=2, ensure_ascii=False, sort_keys=True))
            return
        uploader = None
        if settings.office_url:
            if settings.token_file is None:
                raise click.ClickException("sync.token_file is not set: enrol the school at "
                                           "the office and save its credential there")
            cred = Credential.read(settings.token_file)
            if cred.school_id != settings.school_id:
                raise click.ClickException(
                    f"{settings.token_file} is the key of {cred.school_id!r}, but school_id is "
                    f"{settings.school_id!r}: enrol this appliance again (filterd enrol)")
            uploader = Uploader(settings.office_url, cred)
        result = run_sync(settings, uploader, now=now, lists=lists,
                          respect_backoff=not ignore_backoff)
        if uploader is not None and not result.error:
            _exchange_with_office(cfg, uploader.credential, config_path)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    if result.clock:
        click.echo(f"no report built: {result.clock}", err=True)
    for day in result.built:
        click.echo(f"built report for {day}")
    for day in result.delivered:
        click.echo(f"delivered {day}")
    for day in result.duplicates:
        click.echo(f"delivered {day} (the office already had it; not counted twice)")
    for day, why in result.rejected:
        click.echo(f"REFUSED {day}: {why} (kept in the outbox)", err=True)
    if uploader is None:
        click.echo("no office_url configured: reports stay in the outbox")
    if result.skipped_backoff:
        click.echo(f"waiting before retrying (last error: {result.error}); use --now to retry")
    if result.pending:
        click.echo(f"{len(result.pending)} report(s) waiting in the outbox: "
                   + ", ".join(result.pending))
    if result.rejected:
        sys.exit(1)
    if result.error and result.pending:
        click.echo(f"error: {result.error}", err=True)
        sys.exit(EX_TEMPFAIL)


def _exchange_with_office(cfg: Any, credential: Any, config_path: str | None) -> None:
    """With the daily sync: forward reports of harmful sites, then pull the feeds."""
    from filterd.state.site_reports import SiteReportStore
    from filterd.sync.site_forward import forward_reports
    from filterd.sync.uploader import UploadError

    store = SiteReportStore(cfg.data_dir)
    try:
        fr = forward_reports(store, cfg.sync.office_url, credential, tz=cfg.timezone,
                             automatic=cfg.sync.forward_reports)
        if fr.sent:
            click.echo(f"forwarded {fr.sent} report(s) of harmful sites to the office")
    except UploadError as exc:
        click.echo(f"reports of harmful sites not forwarded (kept for the next sync): {exc}",
                   err=True)
    finally:
        store.close()
    if Path(cfg.sync.office_key_file).exists():
        from filterd.sync.feed_commands import pull_and_apply

        pull_and_apply(cfg, config_path)


@click.command("enrol")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="filterd.yaml (school_id, sync.office_url, sync.token_file).")
@click.option("--code", required=True, help="The one-time code the office gave the school.")
def enrol_cmd(config_path: str | None, code: str) -> None:
    """Make this appliance's signing key and enrol it at the office with a one-time code.

    The private key is written to sync.token_file (0600) and never leaves the appliance;
    the office receives the public key only. Run again with a new code to re-key.

    Example: filterd enrol --config /etc/filterd/filterd.yaml --code K7QM-2XRP-9WTD-HC4N-BF6A
    """
    from filterd.sync.outbox import SyncSettings
    from filterd.sync.signing import Credential
    from filterd.sync.uploader import enrol

    try:
        settings = SyncSettings.from_config(_load_config(config_path))
        if not settings.office_url:
            raise click.ClickException("sync.office_url is not set: where is the office?")
        if settings.token_file is None:
            raise click.ClickException("sync.token_file is not set")
        cred = Credential.generate(settings.school_id)
        answer = enrol(settings.office_url, cred, code)
        cred.write(settings.token_file)   # only once the office has the public key
        feed_key = answer.get("office_feed_key")
        if isinstance(feed_key, str) and len(feed_key) == 64:
            (settings.data_dir / "office-key.pub").write_text(feed_key + "\n")
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"enrolled {settings.school_id} at {settings.office_url}: key {cred.key_id} "
               f"saved in {settings.token_file}")


@click.group("office")
def office_group() -> None:
    """The education office's receiver: enrol schools, receive uploads, dashboard.

    Example: filterd office serve --database-url postgresql://office@db/office
    """


def _office_options(f):
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="filterd.yaml (office.listen, office.database_url, data_dir).")(f)
    return click.option("--database-url", default=None,
                        help="sqlite:///path/office.db or postgresql://user@host/db "
                             "(default: office.database_url)")(f)


def _storage(config_path: str | None, database_url: str | None):
    from filterd.sync.office.storage import Storage

    url, data_dir = database_url, None
    if url is None or config_path:
        cfg = _load_config(config_path)
        data_dir = Path(cfg.data_dir)
        url = url or cfg.office.database_url or f"sqlite:///{data_dir / 'office' / 'office.db'}"
    storage = Storage(url)
    storage.migrate()
    if data_dir is None:
        data_dir = storage.path.parent if storage.backend == "sqlite" else Path("var/office")
    return storage, data_dir


@office_group.command("serve")
@_office_options
@click.option("--listen", default=None, help="host:port (default: office.listen)")
@click.option("--timezone", "tz", default="Asia/Ho_Chi_Minh", show_default=True,
              help="Office time zone: which day is 'today' on the dashboard.")
@click.option("--https-cookies/--no-https-cookies", default=False,
              help="Mark session cookies Secure (behind an HTTPS reverse proxy).")
@click.option("--k", "k", type=int, default=5, show_default=True,
              help="The office's k: reports built with a smaller one are refused (>= 3).")
@click.option("--pdf-engine", type=click.Choice(["auto", "chromium", "weasyprint"]),
              default="auto", show_default=True,
              help="What prints the reports: auto = chromium when installed, else weasyprint.")
def office_serve(config_path, database_url, listen, tz, https_cookies, k, pdf_engine) -> None:
    """Serve the receiver (uploads API and dashboard) with waitress, in the foreground.

    Put it behind an HTTPS reverse proxy; appliances refuse plain http except on loopback.

    Example: filterd office serve --listen 127.0.0.1:8090
    """
    from filterd.sync.office.app import create_app, secret_key, serve
    from filterd.sync.office.ingest import Limits

    try:
        limits = Limits(k=k)
        storage, data_dir = _storage(config_path, database_url)
        if listen is None:
            cfg = _load_config(config_path)
            host, port = cfg.office.listen
        else:
            host, _, p = listen.rpartition(":")
            host, port = host.strip("[]") or "127.0.0.1", int(p)
        app = create_app(storage, secret=secret_key(data_dir / "office_secret"),
                         timezone=ZoneInfo(tz), https=https_cookies, data_dir=data_dir,
                         limits=limits, pdf_engine=pdf_engine)
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"office receiver on http://{host}:{port}/ ({storage.backend})", err=True)
    serve(app, host, port)


@office_group.command("enrol")
@_office_options
@click.option("--id", "school_id", required=True, help="School id (letters, digits, . _ -).")
@click.option("--name", help="The school's name.")
@click.option("--district", help="Quận/huyện.")
@click.option("--province", help="Tỉnh/thành phố.")
@click.option("--rekey", is_flag=True,
              help="Revoke the school's keys and issue a new one-time code.")
def office_enrol(config_path, database_url, school_id, name, district, province, rekey) -> None:
    """Enrol a school and print its one-time enrolment code (valid 14 days, shown once).

    On the appliance: filterd enrol --code <code>. The office stores only the code's hash
    and, once used, the appliance's public key.

    Example: filterd office enrol --id bd-01 --name "THCS A" --district "Ba Dinh" --province HN
    """
    from filterd.sync.office.enrol import enrol_school, rekey_school

    try:
        storage, _ = _storage(config_path, database_url)
        if rekey:
            cred = rekey_school(storage, school_id)
        elif not (name and district and province):
            raise click.UsageError("--name, --district and --province are required to enrol")
        else:
            cred = enrol_school(storage, school_id, name, district, province)
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(cred.code)
    click.echo(f"# one-time enrolment code for {school_id}, valid until {cred.expires_at}; "
               f"on the appliance: filterd enrol --code {cred.code} (not shown again)", err=True)


@office_group.command("revoke")
@_office_options
@click.option("--id", "school_id", required=True, help="School id.")
def office_revoke(config_path, database_url, school_id) -> None:
    """Refuse every upload signed with the school's current keys, at once.

    Example: filterd office revoke --id bd-01
    """
    from filterd.sync.office.enrol import revoke_school

    try:
        storage, _ = _storage(config_path, database_url)
        n = revoke_school(storage, school_id)
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {n} key(s) of {school_id}; issue a new code with "
               f"'filterd office enrol --id {school_id} --rekey'")


@office_group.command("settings")
@_office_options
@click.option("--parent-agency", help="Governing body, e.g. 'UBND thành phố Hà Nội'.")
@click.option("--agency", help="Issuing agency, e.g. 'Sở Giáo dục và Đào tạo Hà Nội'.")
@click.option("--symbol", help="Document symbol after the number, e.g. BC-SGDĐT.")
@click.option("--place", help="Place in the date line, e.g. 'Hà Nội'.")
@click.option("--signer-title", help="e.g. 'Giám đốc' or 'KT. Giám đốc / Phó Giám đốc'.")
@click.option("--signer-name", help="The signer's full name.")
@click.option("--recipients", help="'Kính gửi' line.")
def office_settings_cmd(config_path, database_url, **values) -> None:
    """Show or set what the office's reports say about it (Decree 30 header and signature).

    Example: filterd office settings --agency "Sở Giáo dục và Đào tạo Hà Nội" --place "Hà Nội"
    """
    from filterd.sync.office.document import OfficeSettings

    try:
        storage, _ = _storage(config_path, database_url)
        changed = {k: v.strip() for k, v in values.items() if v is not None}
        if changed:
            storage.set_settings(changed)
        current = OfficeSettings.load(storage)
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for k in OfficeSettings.FIELDS:
        click.echo(f"{k}: {getattr(current, k)}")


@office_group.group("token")
def office_token() -> None:
    """Tokens for the read-only export API (docs/export-api.md).

    Example: filterd office token create --name "Sở KH&CN Hà Nội"
    """


@office_token.command("create")
@_office_options
@click.option("--name", required=True, help="Who uses it (one token per name).")
def office_token_create(config_path, database_url, name) -> None:
    """Make a token and print it once (the office keeps only its SHA-256).

    Example: filterd office token create --name "Sở KH&CN Hà Nội"
    """
    from filterd.sync.office.export import create_token

    try:
        storage, _ = _storage(config_path, database_url)
        click.echo(create_token(storage, name))
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"# export API token for {name}: shown once; send it as "
               "'Authorization: Bearer <token>'", err=True)


@office_token.command("revoke")
@_office_options
@click.option("--name", required=True)
def office_token_revoke(config_path, database_url, name) -> None:
    """Refuse the named token from now on.

    Example: filterd office token revoke --name "Sở KH&CN Hà Nội"
    """
    from filterd.sync.office.export import revoke_token

    try:
        storage, _ = _storage(config_path, database_url)
        n = revoke_token(storage, name)
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not n:
        raise click.ClickException(f"no token in use named {name!r}")
    click.echo(f"revoked the token of {name}")


@office_token.command("list")
@_office_options
def office_token_list(config_path, database_url) -> None:
    """Every token's name, creation, revocation and last use (never the token).

    Example: filterd office token list
    """
    from filterd.sync.office.export import list_tokens

    try:
        storage, _ = _storage(config_path, database_url)
        rows = list_tokens(storage)
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for name, created, revoked, used in rows:
        click.echo(f"{name}\tcreated {created}\t"
                   f"{'revoked ' + revoked if revoked else 'in use'}\tlast used {used or '-'}")


@office_group.command("user")
@_office_options
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer",
              show_default=True, help="admin may enrol schools; viewer reads.")
@click.password_option(help="The password (asked twice when not given).")
def office_user(config_path, database_url, username, role, password) -> None:
    """Create a dashboard user, or reset their password and role.

    Example: filterd office user phong-gd --role admin
    """
    from filterd.webauth import hash_password

    try:
        storage, _ = _storage(config_path, database_url)
        storage.set_user(username, hash_password(password), role)
    except (FilterdError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {username} ({role}) saved")
