"""Wires the alerts into a daemon worker: the event writer's hook, the deliverer, health.

Every worker counts its own events into the alerts (inside its event batches); one
worker (the one serving HTTP) delivers and checks health, so no message is sent twice
by two processes. Rules, group and category words come from the running engine, so a
reload changes them with the policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filterd.alerts.aggregate import AlertSink
from filterd.alerts.email import EmailChannel, SmtpSettings
from filterd.alerts.health import HealthChecks
from filterd.alerts.queue import Deliverer, DeliverySettings
from filterd.alerts.render import Words
from filterd.alerts.webhook import WebhookChannel
from filterd.policy.alert_rules import NO_ALERTS, AlertRules
from filterd.state import alerts as store
from filterd.state.db import db_path, open_db

log = logging.getLogger(__name__)


def init_db(data_dir: str | Path) -> None:
    db = open_db(db_path(data_dir))
    try:
        store.init_db(db)
    finally:
        db.conn.close()


def words_for(config: Any, engine: Any) -> Words:
    """The words of the running policy: rules, group labels, category labels."""
    policy = getattr(engine, "policy", None)
    catalog = getattr(engine, "catalog", None) or {}
    rules: AlertRules = getattr(policy, "alerts", NO_ALERTS) if policy is not None else NO_ALERTS
    groups = {gid: g.label_vi for gid, g in (policy.groups.items() if policy else ())}
    cats = {cid: c.vi for cid, c in catalog.items()}
    from filterd.words.explain import Words as CatalogWords

    words = CatalogWords.for_engine(engine) if engine is not None else None
    a = config.alerts
    admin_url = a.admin_url
    if not admin_url:
        host, port = config.admin.listen
        host = config.appliance_ipv4 if host in ("0.0.0.0", "::") else host
        admin_url = f"http://{host}:{port}"
    return Words(school_name=config.school_name, school_id=config.school_id,
                 tz=config.timezone, admin_url=admin_url, rules=rules, groups=groups,
                 categories=cats, words=words)


def email_channel(config: Any) -> EmailChannel | None:
    a = config.alerts
    if not a.smtp_host:
        return None
    return EmailChannel(SmtpSettings(host=a.smtp_host, port=a.smtp_port,
                                     security=a.smtp_security, user=a.smtp_user,
                                     password_file=a.smtp_password_file,
                                     mail_from=a.mail_from, ca_file=a.smtp_ca_file),
                        config.school_id)


def delivery_settings(config: Any) -> DeliverySettings:
    a = config.alerts
    return DeliverySettings(hold=a.hold_seconds, digest_time=a.digest_time,
                            retry_initial=a.retry_initial, retry_max=a.retry_max,
                            give_up=a.give_up_hours * 3600)


def upstreams_down(pool: Any) -> Callable[[], str | None]:
    def check() -> str | None:
        status = pool.status()
        if status and not any(s["healthy"] for s in status):
            return "không máy chủ nào trả lời: " + ", ".join(str(s["address"]) for s in status)
        return None
    return check


def reload_refused(config: Any, message: str) -> None:
    """A health alert for a refused reload (the daemon, or the supervisor of its workers)."""
    import time

    try:
        db = open_db(db_path(config.data_dir))
    except Exception:
        log.exception("alerts: the refused reload was not recorded")
        return
    try:
        store.init_db(db)
        # Each refused edit matters (the next may fail differently): ten minutes, not hours.
        store.raise_health(db, "reload_refused", message[:400], now=time.time(),
                           window=min(600.0, config.alerts.health_window_minutes * 60.0))
    except Exception:
        log.exception("alerts: the refused reload was not recorded")
    finally:
        db.conn.close()


class AlertService:
    def __init__(self, config: Any, engine_of: Callable[[], Any], events: Any, *,
                 deliver: bool, pool: Any = None) -> None:
        self.config = config
        self.engine_of = engine_of
        init_db(config.data_dir)
        self.deliverer: Deliverer | None = None
        self.health: HealthChecks | None = None
        if deliver:
            a = config.alerts
            self.deliverer = Deliverer(db_path(config.data_dir), self.words,
                                       delivery_settings(config), email=email_channel(config),
                                       webhook=WebhookChannel(timeout=a.webhook_timeout))
            self.health = HealthChecks(
                self.deliverer.db, Path(config.data_dir),
                upstreams_down=upstreams_down(pool) if pool is not None else None,
                dropped=(lambda: events.dropped), lists_max_age=a.lists_max_age_hours,
                disk_min_free=a.disk_min_free_percent, window=a.health_window_minutes * 60.0,
                on_raise=self.deliverer.wake)
            self.deliverer.extra.append(self.health)
        self.sink = AlertSink(self.rules, hold=config.alerts.hold_seconds,
                              on_due=self.deliverer.wake if self.deliverer else None)
        events.on_batch = self.sink

    def apply(self, config: Any) -> None:
        """A reload's new filterd.yaml: the mail account, timings and links change at once."""
        self.config = config
        self.sink.hold = config.alerts.hold_seconds
        if self.deliverer is not None:
            self.deliverer.email = email_channel(config)
            self.deliverer.webhook = WebhookChannel(timeout=config.alerts.webhook_timeout)
            self.deliverer.settings = delivery_settings(config)

    def rules(self) -> AlertRules:
        policy = getattr(self.engine_of(), "policy", None)
        return getattr(policy, "alerts", NO_ALERTS) if policy is not None else NO_ALERTS

    def words(self) -> Words:
        return words_for(self.config, self.engine_of())

    def start(self) -> AlertService:
        if self.deliverer is not None:
            self.deliverer.start()
        return self

    def reload_refused(self, message: str) -> None:
        """Called on the event loop: its own connection, not the deliverer thread's."""
        if self.deliverer is None:
            return
        reload_refused(self.config, message)
        self.deliverer.wake()

    def close(self) -> None:
        if self.deliverer is not None:
            self.deliverer.stop()
