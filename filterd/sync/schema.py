"""The report's wire form: validated against report.schema.json, canonical JSON, gzip.

Both sides use this module: the appliance validates before a report enters the
outbox (a report that does not match the documented schema never leaves), the
office validates every upload before storing it.

Two validators read the same schema file. fastjsonschema compiles it to Python
(about 1 ms for a busy school's report, against 120 ms for jsonschema: the office
validates thousands every morning) and decides; jsonschema, the reference
implementation, names the offending field when a report is refused, and also
checks every report the appliance builds, so a report that either one refuses
never leaves the school.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema

from filterd.errors import FilterdError

SCHEMA_FILE = Path(__file__).with_name("report.schema.json")


class ReportError(FilterdError):
    """A report does not match the schema, or its bytes are not a valid gzip/JSON document."""


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local `{"$ref": "#/$defs/x"}` by the definition: same meaning, and about twice
    as fast to validate (the office validates thousands of reports every morning)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


@cache
def _schema() -> dict[str, Any]:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    return schema


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = _schema()
    return jsonschema.validators.validator_for(schema)(_inline_refs(schema))


@cache
def _fast() -> Any:
    # Inlined, the schema uses only keywords that mean the same in draft 7, which is what
    # fastjsonschema compiles (tests/sync/test_schema.py checks both agree).
    schema = _inline_refs(_schema())
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema.pop("$id", None)
    return fastjsonschema.compile(schema)


def _reference_error(report: Any) -> str | None:
    err = jsonschema.exceptions.best_match(_validator().iter_errors(report))
    if err is None:
        return None
    where = "/".join(str(p) for p in err.absolute_path) or "(root)"
    return f"report does not match schema at {where}: {err.message[:200]}"


def validate(report: Any, *, thorough: bool = False) -> None:
    """Raise ReportError naming the first offending field. `thorough` also runs the
    reference validator on a report the fast one accepts (the appliance, once a day)."""
    try:
        _fast()(report)
    except fastjsonschema.JsonSchemaValueException as exc:
        # the reference validator words it better; the fast one is stricter in one place
        # (`$` in a pattern does not match before a final newline), so it may see nothing
        path = [str(p) for p in (exc.path or [])[1:]]
        raise ReportError(_reference_error(report) or
                          f"report does not match schema at {'/'.join(path) or '(root)'}: "
                          f"{str(exc.message)[:200]}") from None
    if thorough and (message := _reference_error(report)):
        raise ReportError(message)


def dumps(report: dict[str, Any]) -> bytes:
    """Canonical JSON: the same report always gives the same bytes."""
    return json.dumps(report, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()


def encode(report: dict[str, Any]) -> bytes:
    """Validate (both validators), then gzip (mtime 0, so the bytes are reproducible)."""
    validate(report, thorough=True)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(dumps(report))
    return buf.getvalue()


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes; a gzip bomb is refused, never expanded."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ReportError(f"not valid gzip: {exc}") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise ReportError(f"report expands beyond {limit} bytes")
    if not d.eof:
        raise ReportError("truncated gzip")
    if d.unused_data:
        raise ReportError("trailing data after gzip stream")
    return out


def _no_float(text: str) -> Any:
    # every number in the schema is an integer; JSON Schema would accept 3.0 as one, and
    # the office would then index hours and sum counts with floats
    raise ValueError(f"number {text} is not an integer")


def decode(data: bytes, *, limit: int = 4 * 1024 * 1024) -> dict[str, Any]:
    """gunzip (bounded), parse and validate an uploaded report."""
    raw = gunzip_limited(data, limit)
    try:
        report = json.loads(raw, parse_float=_no_float, parse_constant=_no_float)
    except ValueError as exc:
        raise ReportError(f"not valid JSON: {exc}") from exc
    validate(report)
    return report
