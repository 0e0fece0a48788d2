"""The deliverer: from the durable queue in filterd.db to the staff, once, whatever happens.

Every second (or at once when woken) one pass:
1. windows that ended below their threshold expire;
2. due alerts of immediate rules become one message per recipient channel (roles from
   the rule, class teachers only for their groups, quiet hours push `next_try`);
3. at the digest time, each recipient's due digest alerts become one digest message;
4. messages whose time has come are claimed, rendered with the alert's count as it is
   now, sent, and marked sent only after the receiver accepted them. A failed try goes
   back with exponential backoff (retry_initial doubling up to retry_max) until
   `give_up` seconds after it was queued.

Nothing is held in memory: a restart (or kill -9) resumes from the tables. A message
claimed when the process died is sent again with the same key (Message-ID,
Idempotency-Key), so the receiver sees one message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from filterd.alerts.email import DeliveryError, EmailChannel, new_key
from filterd.alerts.recipients import Recipient
from filterd.alerts.render import Words, next_digest, render
from filterd.policy.alert_rules import ROLES
from filterd.state import alerts as store
from filterd.state.db import open_db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliverySettings:
    hold: float = 5.0
    digest_time: str = "16:30"
    retry_initial: float = 30.0
    retry_max: float = 900.0
    give_up: float = 3 * 86400.0
    poll: float = 1.0
    keep_days: float = 400.0    # alerts and their messages: a school year and its review


    def backoff(self, tries: int) -> float:
        return min(self.retry_max, self.retry_initial * (2 ** max(0, tries - 1)))


class Deliverer:
    def __init__(self, db_path: str | Path, words_of: Callable[[], Words],
                 settings: DeliverySettings, *, email: EmailChannel | None,
                 webhook: Any, clock: Callable[[], float] = time.time) -> None:
        self.db_path = Path(db_path)
        self.words_of = words_of
        self.settings = settings
        self.email = email
        self.webhook = webhook
        self.clock = clock
        self.extra: list[Callable[[float], None]] = []   # health checks run in the same pass
        self.sent = 0
        self.failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._db: Any = None
        self._token: str | None = None
        self._next_purge = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Deliverer:
        db = self.db()
        store.release_all_claims(db)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-deliverer",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self, *_: Any) -> None:
        self._wake.set()

    def db(self) -> Any:
        if self._db is None:
            self._db = open_db(self.db_path)
            store.init_db(self._db)
        return self._db

    def _run(self) -> None:
        from filterd.state.events import lower_priority

        lower_priority()   # never ahead of the query path
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("alerts: delivery pass failed; trying again")
            self._wake.wait(self.settings.poll)
            self._wake.clear()

    # -- one pass ---------------------------------------------------------------------------

    def key(self, message_id: int) -> str:
        if self._token is None:
            db = self.db()
            tok = store.get_meta(db, "key_token")
            if tok is None:
                tok = new_key()[:12]
                store.set_meta(db, "key_token", tok)
            self._token = tok
        return f"alert-{self._token}-{message_id}"

    def run_once(self) -> None:
        now = self.clock()
        db = self.db()
        store.expire_pending(db, now)
        if now >= self._next_purge:
            store.purge(db, now - self.settings.keep_days * 86400)
            self._next_purge = now + 86400
        words = self.words_of()
        for check in self.extra:    # health checks first: what they raise goes out now
            try:
                check(now)
            except Exception:
                log.exception("alerts: a health check failed")
        self.fan_out(db, words, now)
        self.digest(db, words, now)
        self.send_due(db, words, now)

    def _recipients(self, db: Any) -> list[Recipient]:
        out = []
        for row in store.recipients(db, enabled_only=True):
            try:
                out.append(Recipient.from_row(row))
            except ValueError:   # a row edited by hand: skipped, the page shows it
                log.warning("alerts: recipient %s is not valid; skipped", row.get("id"))
        return out

    def _roles_for(self, alert: dict[str, Any], words: Words) -> tuple[str, ...]:
        if alert["kind"] == store.HEALTH:
            if alert["rule"] == "test":   # `filterd alerts test`: everyone, to check the setup
                return ROLES
            return words.rules.health_to
        rule = words.rules.by_id(alert["rule"])
        return rule.to if rule else ()

    def _plan(self, alert: dict[str, Any], people: list[Recipient], words: Words, now: float
              ) -> list[store.Outgoing]:
        roles = self._roles_for(alert, words)
        out = []
        for p in people:
            if p.role not in roles:
                continue
            if alert["kind"] != store.HEALTH and not p.hears_of(alert.get("group_id")):
                continue
            for channel, address in p.channels():
                out.append(store.Outgoing(p.id, p.name, channel, address,
                                          p.not_before(now, words.tz)))
        return out

    def fan_out(self, db: Any, words: Words, now: float) -> int:
        due = store.due_alerts(db, now, digest=False)
        if not due:
            return 0
        people = self._recipients(db)
        n = 0
        for alert in due:
            plan = self._plan(alert, people, words, now)
            if not plan:
                log.warning("alerts: alert %d (%s) has no recipient: set them on the admin "
                            "page", alert["id"], alert["rule"])
            n += store.queue_messages(db, [(o, [alert["id"]]) for o in plan], [alert["id"]],
                                      now=now)
        return n

    def digest(self, db: Any, words: Words, now: float) -> int:
        at = store.get_meta(db, "next_digest")
        if at is None:
            store.set_meta(db, "next_digest", str(next_digest(now, words.tz,
                                                              self.settings.digest_time)))
            return 0
        if now < float(at):
            return 0
        due = store.due_alerts(db, now, digest=True)
        plan = []
        for p in self._recipients(db):
            ids = [a["id"] for a in due if a["rule"] in {
                r.id for r in words.rules.rules if p.role in r.to} and p.hears_of(a["group_id"])]
            if ids:
                for channel, address in p.channels():
                    plan.append((store.Outgoing(p.id, p.name, channel, address,
                                                p.not_before(now, words.tz)), ids))
        n = store.queue_messages(db, plan, [a["id"] for a in due], now=now, digest=True) \
            if due else 0
        store.set_meta(db, "next_digest", str(next_digest(now, words.tz,
                                                          self.settings.digest_time)))
        return n

    def send_due(self, db: Any, words: Words, now: float) -> int:
        store.release_stale_claims(db, now)
        sent = 0
        for msg in store.claim_due_messages(db, now):
            if self._stop.is_set():
                store.mark_failed(db, msg["id"], "stopped before sending", msg["next_try"], now)
                continue
            key = self.key(msg["id"])
            alerts = store.message_alerts(db, msg)
            rendered = render(alerts, words, key=key, digest=bool(msg["is_digest"]),
                              recipient=msg["recipient"])
            try:
                if msg["channel"] == "email":
                    if self.email is None:
                        raise DeliveryError("no mail server is set (alerts.smtp_host in "
                                            "filterd.yaml)")
                    self.email.send(msg["address"], rendered, key)
                else:
                    self.webhook.send(msg["address"], rendered, key)
            except Exception as exc:   # anything else is a bug here: a failed try, not a loop
                if not isinstance(exc, DeliveryError):
                    log.exception("alerts: message %d: unexpected error", msg["id"])
                    exc = DeliveryError(f"unexpected error: {exc!r}")
                self.failures += 1
                done = self.clock()
                give_up = exc.permanent or done - msg["created_ts"] >= self.settings.give_up
                retry = None if give_up else done + self.settings.backoff(msg["tries"] + 1)
                store.mark_failed(db, msg["id"], str(exc), retry, done)
                log.warning("alerts: message %d to %s by %s not delivered (%s); %s",
                            msg["id"], msg["recipient"], msg["channel"], exc,
                            "given up" if retry is None else
                            f"next try {datetime.fromtimestamp(retry, words.tz):%H:%M:%S}")
                continue
            store.mark_sent(db, msg["id"], rendered.subject, self.clock())
            self.sent += 1
            sent += 1
            log.info("alerts: message %d delivered to %s by %s", msg["id"], msg["recipient"],
                     msg["channel"])
        return sent
