"""POST /api/v1/reports: where appliances deliver their daily report (JSON answers only)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from filterd.sync.office.ingest import IngestError, receive
from filterd.sync.office.storage import StorageError

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


@bp.get("/health")
def health():
    return jsonify({"status": "ok"})
