"""`filterd alerts ...`: thin click commands over filterd.alerts and filterd.state.alerts.

Registered on the main group by filterd/cli.py. The running daemon delivers: these
commands only put a test alert in the queue and show what the queue holds.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click

from filterd.errors import FilterdError


def _config(path: str | None) -> Any:
    from filterd.config import load_config

    try:
        return load_config(path)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("alerts")
def alerts_group() -> None:
    """Alerts to the school's staff (delivered by the running filterd).

    Example: filterd alerts status --config /etc/filterd/filterd.yaml
    """


@alerts_group.command("test")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="filterd.yaml (default: the embedded defaults).")
def test_cmd(config_path: str | None) -> None:
    """Queue a test alert for every recipient; the running filterd sends it within seconds.

    Example: filterd alerts test --config /etc/filterd/filterd.yaml
    """
    from filterd.state import alerts as store

    config = _config(config_path)
    db = store.open_alerts_db(config.data_dir)
    try:
        people = store.recipients(db, enabled_only=True)
        if not people:
            raise click.ClickException("nobody receives alerts yet: add recipients on the "
                                       "admin page (Alerts -> Who receives alerts)")
        aid = store.raise_health(db, "test", "Thử gửi cảnh báo từ filterd", now=time.time(),
                                 window=1.0)
    finally:
        db.conn.close()
    click.echo(f"test alert {aid} queued for {len(people)} recipient(s); "
               "see `filterd alerts status` or the admin page")


@alerts_group.command("status")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="filterd.yaml (default: the embedded defaults).")
@click.option("--limit", default=20, show_default=True, help="Messages shown.")
def status_cmd(config_path: str | None, limit: int) -> None:
    """The newest messages in the alert queue: to whom, how, delivered or why not.

    Example: filterd alerts status --limit 50
    """
    from filterd.state import alerts as store

    config = _config(config_path)
    db = store.open_alerts_db(config.data_dir)
    try:
        rows = store.recent_messages(db, limit)
        counts = store.message_counts(db)
    finally:
        db.conn.close()
    tz = config.timezone
    click.echo("queue: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
               if counts else "queue: empty")
    for m in rows:
        when = datetime.fromtimestamp(m["sent_ts"] or m["next_try"], tz).strftime("%d/%m %H:%M")
        line = f"#{m['id']} {m['state']:<7} {when} {m['recipient']} ({m['channel']})"
        if m["last_error"] and m["state"] != "sent":
            line += f" - {m['last_error']}"
        click.echo(line)
