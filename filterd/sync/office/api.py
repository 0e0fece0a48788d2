"""POST /api/v1/reports: where appliances deliver their daily report; POST /api/v1/enrol:
where an appliance brings its public key with a one-time code (JSON answers only)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from filterd.sync.office.enrol import EnrolmentError, complete_enrolment
from filterd.sync.office.ingest import IngestError, receive
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
