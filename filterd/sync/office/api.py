"""POST /api/v1/reports: where appliances deliver their daily report; POST /api/v1/enrol:
where an appliance brings its public key with a one-time code (JSON answers only)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from filterd.sync.feed import KINDS
from filterd.sync.office.enrol import EnrolmentError, complete_enrolment
from filterd.sync.office.ingest import IngestError, authenticate, receive, use_nonce
from filterd.sync.office.storage import StorageError
from filterd.sync.signing import SCHOOL_RE, b64d

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _error(status: int, message: str):
    current_app.logger.warning("upload refused (%s) from %s: %s", status, request.remote_addr,
                               message)
    return jsonify({"status": "refused", "error": message}), status


@bp.post("/reports")
def upload():
    office = current_app.extensions["office"]
    limit = office["limits"].max_gzip
    if request.content_length is not None and request.content_length > limit:
        return _error(413, f"upload too large: {request.content_length} bytes (limit {limit})")
    body = request.stream.read(limit + 1)
    if request.headers.get("Content-Encoding", "").lower() != "gzip":
        return _error(415, "the report must be sent gzip-compressed (Content-Encoding: gzip)")
    try:
        ack = receive(office["storage"], request.headers, body, limits=office["limits"])
    except IngestError as exc:
        return _error(exc.status, exc.message)
    except StorageError as exc:
        # Nothing was committed: the appliance keeps the day and sends it again.
        current_app.logger.warning("office database error during an upload: %s", exc)
        resp, status = _error(503, "office database unavailable; send the report again later")
        resp.headers["Retry-After"] = "60"
        return resp, status
    return jsonify(ack), 200


def _feed_key() -> str | None:
    """The office's feed signing key (filterd/sync/office/feeds.py), when that part exists."""
    data_dir = current_app.extensions["office"].get("data_dir")
    if data_dir is None:
        return None
    try:
        from filterd.sync.office.feeds import office_public_hex
    except ImportError:
        return None
    return office_public_hex(data_dir)


@bp.post("/enrol")
def enrol():
    from filterd.sync.office.auth import Throttle

    office = current_app.extensions["office"]
    throttle = office.setdefault("enrol_throttle", Throttle())
    addr = "addr:" + str(request.remote_addr)
    if throttle.blocked(addr):
        return _error(429, "too many wrong enrolment codes from this address; wait 15 minutes")
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str)
                                             for k in ("school_id", "code", "public_key")):
        return _error(400, "send JSON with school_id, code and public_key (base64url)")
    if not SCHOOL_RE.match(data["school_id"]) or len(data["code"]) > 64:
        return _error(400, "malformed school id or code")
    try:
        public = b64d(data["public_key"])
    except ValueError:
        return _error(400, "public_key is not base64url")
    try:
        kid = complete_enrolment(office["storage"], data["school_id"], data["code"], public)
    except EnrolmentError as exc:
        throttle.fail(addr)
        return _error(403, str(exc))
    current_app.logger.info("school %s enrolled key %s", data["school_id"], kid)
    return jsonify({"status": "enrolled", "school_id": data["school_id"], "key_id": kid,
                    "office_feed_key": _feed_key()}), 200


@bp.get("/health")
def health():
    return jsonify({"status": "ok"})


def _office_dir():
    """Where the office keeps its own files; feeds need it (set by `filterd office serve`)."""
    data_dir = current_app.extensions["office"].get("data_dir")
    if data_dir is None:
        raise StorageError("the office has no data directory for its feed key "
                           "(start it with filterd office serve --config)")
    return data_dir


@bp.get("/feeds/<kind>")
def feed(kind: str):
    """The latest signed version of a feed; `If-None-Match: "v<n>"` answers 304 if current."""
    from filterd.sync.office.feeds import FeedPublisher

    office = current_app.extensions["office"]
    if kind not in KINDS:
        return jsonify({"status": "refused", "error": f"no feed {kind!r}"}), 404
    publisher = FeedPublisher(office["storage"], _office_dir())
    latest = publisher.latest(kind)
    if latest is None:
        return jsonify({"status": "none", "error": f"the office has published no {kind} feed"
                        }), 404
    school = request.headers.get("X-Filterd-School", "")
    if school and SCHOOL_RE.match(school):
        publisher.record_pull(school, kind, latest.version)
    etag = f'"v{latest.version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match", "") == etag:
        return Response(status=304, headers=headers)
    return Response(latest.envelope, status=200, mimetype="application/json", headers=headers)


@bp.post("/site-reports")
def site_reports():
    """Reports of harmful sites forwarded by a school (signed like the daily report).

    Answers the outcome of every report this school forwarded so far, so the school
    sees what the office decided.
    """
    import json
    from datetime import UTC, datetime

    from filterd.sync.office.site_reports import SiteReportQueue, SiteReportRefused

    office = current_app.extensions["office"]
    body = request.stream.read(256 * 1024 + 1)
    if len(body) > 256 * 1024:
        return _error(413, "too many reports in one request")
    now = datetime.now(UTC)
    try:
        school_id, nonce, ts = authenticate(office["storage"], request.headers, body, now)
        doc = json.loads(body)
        answer = SiteReportQueue(office["storage"], _office_dir()).receive(
            school_id, doc, first=lambda tx: use_nonce(tx, school_id, nonce, ts, now))
    except IngestError as exc:
        return _error(exc.status, exc.message)
    except (ValueError, SiteReportRefused) as exc:
        return _error(400, f"site reports refused: {exc}")
    except StorageError as exc:
        current_app.logger.warning("office database error during site reports: %s", exc)
        resp, status = _error(503, "office database unavailable; send the reports again later")
        resp.headers["Retry-After"] = "60"
        return resp, status
    return jsonify(answer), 200
