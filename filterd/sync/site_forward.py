"""Forward the school's reports of harmful sites to the office, and bring back its decisions.

What leaves: a random report id, the site, the category ids, the note the
reporter typed (control characters removed, 500 characters at most) and the
day. Never the device, its address, the time of day or who decided. The
office answers the status of every report the school ever forwarded, so a
report accepted there shows as accepted on the school's admin page.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from filterd.state.site_reports import SiteReport, SiteReportStore
from filterd.sync.signing import Credential, sign
from filterd.sync.uploader import OfficeUnreachable, UploadRejected, check_office_url

PATH = "/api/v1/site-reports"
BATCH = 200


@dataclass(frozen=True, slots=True)
class ForwardResult:
    sent: int
    outcomes: int        # reports whose office decision was brought back


def wire_form(r: SiteReport, tz: ZoneInfo) -> dict:
    """Exactly what leaves the school for one report."""
    return {"id": r.id, "site": r.site, "categories": list(r.categories), "note": r.note,
            "reported_on": datetime.fromtimestamp(r.created_at, tz).date().isoformat()}


def forward_reports(store: SiteReportStore, office_url: str, credential: Credential, *,
                    tz: ZoneInfo, automatic: bool, timeout: float = 30.0) -> ForwardResult:
    url = check_office_url(office_url) + PATH
    pending = store.to_forward(automatic=automatic)
    sent = 0
    outcomes: dict = {}
    # An empty request still brings back the office's decisions on earlier reports.
    for start in range(0, max(len(pending), 1), BATCH):
        batch = pending[start:start + BATCH]
        body = json.dumps({"reports": [wire_form(r, tz) for r in batch]},
                          ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "filterd-sync/1"}
        headers.update(sign(credential, body, time.time()))
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                answer = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace")
            if exc.code >= 500:
                raise OfficeUnreachable(f"office at {url} failed ({exc.code})") from exc
            raise UploadRejected(f"office refused the site reports ({exc.code}): {detail}",
                                 exc.code) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
            raise OfficeUnreachable(f"office unreachable at {url}: "
                                    f"{getattr(exc, 'reason', exc)}") from exc
        store.mark_forwarded([r.id for r in batch])
        sent += len(batch)
        if isinstance(answer, dict) and isinstance(answer.get("outcomes"), dict):
            outcomes = answer["outcomes"]
    for rid, o in outcomes.items():
        if isinstance(o, dict):
            store.set_office_outcome(str(rid), str(o.get("status")), o.get("decided_at"))
    return ForwardResult(sent, len(outcomes))
