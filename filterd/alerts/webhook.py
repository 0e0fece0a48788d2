"""The webhook channel: one HTTP POST of a documented JSON body per message.

Body (docs/admin.md "Webhook"): {"version": 1, "id": <stable key>, "type": "alert" |
"digest" | "health", "school": {"id", "name"}, "subject", "text", "alerts": [...]}.
The key is also the Idempotency-Key header: a resend after a crash is the same message.
Any 2xx is delivered; 4xx other than 408/429 is permanent (the URL or token is wrong);
the rest is tried again later.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from filterd.alerts.email import DeliveryError
from filterd.alerts.render import Rendered


class WebhookChannel:
    def __init__(self, timeout: float = 10.0, user_agent: str = "filterd-alerts/1") -> None:
        self.timeout = timeout
        self.user_agent = user_agent

    def send(self, url: str, rendered: Rendered, key: str) -> None:
        data = json.dumps(rendered.body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Idempotency-Key": key,
            "User-Agent": self.user_agent})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read(65536)
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise DeliveryError(f"the webhook answered {exc.code} {exc.reason}",
                                permanent=permanent) from None
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"cannot reach the webhook: {reason}") from None
