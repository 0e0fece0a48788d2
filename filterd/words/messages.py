"""Error messages by code, with parameters, in Vietnamese and English.

The policy loader, the YAML reader, the category catalog, the list sources and
the list updater raise errors carrying a code and parameters
(`ConfigError.code`, `.params`; `ListError` likewise). `str(error)` stays
English for logs; `render_error(error, lang)` gives the reader's language, the
file:line and key kept in front ("policies/policy.yaml:67: groups.thcs.extends:
nhóm «thtp» được kế thừa nhưng chưa được định nghĩa").

Parameters named `*_type` hold a YAML type code (see `type_code`) and are put
into words too; every other parameter is shown as given (file names, keys,
values the person wrote).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_M = dict[str, tuple[str, str]]   # code -> (vi, en) templates with {named} parameters

TYPES: _M = {
    "bool": ("đúng/sai (true/false)", "true/false"),
    "int": ("một số", "a number"),
    "float": ("một số thập phân", "a decimal number"),
    "text": ("chữ", "text"),
    "map": ("một bảng khoá: giá trị", "a mapping"),
    "list": ("một danh sách", "a list"),
    "none": ("giá trị trống", "nothing (empty)"),
    "other": ("một giá trị lạ", "an unknown value"),
}

# PyYAML's problem phrases, in words an IT person reads (the raw text follows in brackets).
_YAML_PROBLEMS = (
    ("expected <block end>", "thụt lề không khớp: một dòng lùi vào hoặc lùi ra sai chỗ",
     "indentation does not match: a line is indented too far or not far enough"),
    ("mapping values are not allowed", "dấu hai chấm «:» không đúng chỗ (thiếu dấu cách "
     "sau «:» hoặc cần đặt giá trị trong ngoặc kép?)",
     "a colon is in the wrong place (missing space after ':' or a value needing quotes?)"),
    ("could not find expected ':'", "thiếu dấu hai chấm «:» sau tên khoá",
     "a ':' is missing after a key"),
    ("that cannot start any token", "có ký tự không được phép (thường là phím Tab: YAML chỉ "
     "dùng dấu cách để thụt lề)", "a character that cannot be here (often a Tab: YAML indents "
     "with spaces only)"),
    ("found unexpected end of stream", "tệp kết thúc giữa chừng (thiếu dấu ngoặc hoặc "
     "ngoặc kép đóng?)", "the file ends too early (a closing quote or bracket missing?)"),
    ("while scanning a quoted scalar", "thiếu dấu ngoặc kép đóng", "a closing quote is missing"),
    ("expected ',' or ']'", "danh sách trong ngoặc vuông chưa đóng đúng",
     "a [list] is not closed properly"),
    ("expected ',' or '}'", "bảng trong ngoặc nhọn chưa đóng đúng",
     "a {mapping} is not closed properly"),
    ("found undefined alias", "dùng bí danh «*» chưa được định nghĩa", "an undefined *alias"),
)

MESSAGES: _M = {
    # --- reading files -------------------------------------------------------------------
    "file.unreadable": ("không đọc được tệp: {error}", "cannot read: {error}"),
    "yaml.syntax": ("YAML sai cú pháp: {problem_vi}", "invalid YAML: {problem}"),
    "yaml.key_not_plain": ("khoá phải là một giá trị đơn", "a key must be a plain value"),
    "yaml.duplicate_key": ("khoá bị lặp lại (lần đầu ở dòng {first})",
                           "duplicate key (first on line {first})"),
    "json.syntax": ("JSON sai cú pháp: {problem}", "invalid JSON: {problem}"),
    # --- shapes ----------------------------------------------------------------------------
    "shape.unknown_key": ("khoá không hợp lệ (các khoá được dùng: {known})",
                          "unknown key (known keys: {known})"),
    "shape.top_mapping": ("đầu tệp phải là một bảng khoá: giá trị, ở đây là {got_type}",
                          "expected a mapping at the top, got {got_type}"),
    "shape.mapping": ("cần một bảng khoá: giá trị, ở đây là {got_type}",
                      "expected a mapping, got {got_type}"),
    "shape.mapping_of": ("cần một bảng các {what}, ở đây là {got_type}",
                         "expected a mapping of {what}, got {got_type}"),
    "shape.domain_list": ("cần một danh sách tên miền, ở đây là {got_type}",
                          "expected a list of domains, got {got_type}"),
    "shape.domain": ("cần một tên miền, ở đây là {got_type}", "expected a domain, got {got_type}"),
    "shape.category_list": ("cần một danh sách loại nội dung, ở đây là {got_type}",
                            "expected a list of categories, got {got_type}"),
    "shape.text": ("cần chữ, ở đây là {got_type}", "expected text, got {got_type}"),
    "shape.bool": ("cần true hoặc false", "expected true or false"),
    "shape.group_id": ("cần tên (mã) của một nhóm, ở đây là {got_type}",
                       "expected a group id, got {got_type}"),
    "shape.one_of": ("phải là một trong: {options}; ở đây là {value!r}",
                     "must be one of {options}, got {value!r}"),
    "shape.block": ("cần một bảng có always: và/hoặc during:, ở đây là {got_type}",
                    "expected a mapping with always: and/or during:, got {got_type}"),
    "shape.during": ("cần một bảng: tên khung giờ -> các loại nội dung",
                     "expected a mapping: schedule name -> categories"),
    "shape.clients": ("cần một danh sách địa chỉ IP, dải CIDR, khoảng địa chỉ hoặc MAC, "
                      "ở đây là {got_type}",
                      "expected a list of IPs, CIDRs, ranges or MACs, got {got_type}"),
    "shape.protected": ("cần một bảng có files: và có thể có feed:",
                        "expected a mapping with files: and optionally feed:"),
    "shape.file_list": ("cần một danh sách tên tệp", "expected a list of file names"),
    "shape.file_name": ("cần một tên tệp", "expected a file name"),
    "shape.file_path": ("cần một đường dẫn tệp", "expected a file path"),
    "shape.missing_text": ("thiếu chữ", "missing text"),
    # --- the policy ------------------------------------------------------------------------
    "policy.not_found": ("không thấy thư mục hoặc tệp chính sách",
                         "policy directory or file not found"),
    "policy.no_files": ("không có tệp chính sách *.yaml nào", "no *.yaml policy files found"),
    "policy.version": ("phiên bản chính sách {value!r} không được hỗ trợ (filterd này đọc "
                       "phiên bản 1)",
                       "unsupported policy version {value!r} (this filterd reads version 1)"),
    "policy.setting_twice": ("đã được đặt ở {place}", "already set in {place}"),
    "policy.defined_twice": ("{what} {name!r} đã được định nghĩa ở {place}",
                             "{what} {name!r} is already defined in {place}"),
    "policy.group_id": ("tên nhóm chỉ gồm chữ thường, chữ số và dấu _",
                        "group ids are lowercase letters, digits and _"),
    "policy.schedule_id": ("tên khung giờ chỉ gồm chữ, chữ số và dấu _",
                           "schedule names are letters, digits and _"),
    "policy.label_missing": ("thiếu (mỗi nhóm cần label_vi và label_en)",
                             "missing (every group needs label_vi and label_en)"),
    "policy.unknown_category": ("loại nội dung {value!r} không có trong danh mục (có: {known})",
                                "unknown category {value!r} (known: {known})"),
    "policy.unknown_schedule": ("khung giờ {value!r} chưa được định nghĩa (đã có: {known})",
                                "unknown schedule {value!r} (defined: {known})"),
    "policy.extends_cycle": ("kế thừa vòng tròn: {cycle}", "extends makes a cycle: {cycle}"),
    "policy.extends_unknown": ("kế thừa nhóm {value!r}, nhưng nhóm này chưa được định nghĩa",
                               "extends an unknown group {value!r}"),
    "policy.abstract_clients": ("nhóm mẫu (abstract) không được có thiết bị",
                                "an abstract group cannot have clients"),
    "policy.client_twice": ("{value} đã thuộc nhóm {group!r} ({place})",
                            "{value} is already in group {group!r} ({place})"),
    "policy.default_group_unknown": ("default_group {value!r} không phải là một nhóm đã định "
                                     "nghĩa", "default_group {value!r} is not a defined group"),
    "policy.default_group_abstract": ("default_group {value!r} là nhóm mẫu (abstract)",
                                      "default_group {value!r} is abstract"),
    "policy.protected_missing": ("không thấy tệp danh sách bảo vệ: {file_path}",
                                 "protected list file not found: {file_path}"),
    "policy.feed_missing": ("không thấy tệp nguồn cấp danh sách bảo vệ: {file_path} (bỏ dòng "
                            "`feed:` nếu trường chưa có nguồn cấp)",
                            "protected feed file not found: {file_path} (remove `feed:` if the "
                            "school has no feed yet)"),
    "policy.domain_file_unreadable": ("không đọc được tệp {what}: {error}",
                                      "cannot read the {what} file: {error}"),
    "policy.unknown_intercept_group": ("có nhóm không nằm trong chính sách: {groups}",
                                       "names group(s) not in the policy: {groups}"),
    # --- names, addresses, times -------------------------------------------------------------
    "name.not_text": ("tên miền phải là chữ", "a domain name must be text"),
    "name.is_ip": ("{value!r} là địa chỉ IP, không phải tên miền",
                   "{value!r} is an IP address, not a domain name"),
    "name.invalid": ("tên miền {value!r} không hợp lệ: {why_vi}",
                     "invalid name {value!r}: {why}"),
    "name.wildcard": ("hãy viết {domain!r} (một tên miền đã gồm mọi tên miền con) thay cho "
                      "{value!r}",
                      "write {domain!r} (a domain covers its subdomains) instead of {value!r}"),
    "client.empty": ("cần một địa chỉ IP, dải CIDR, khoảng a-b hoặc địa chỉ MAC",
                     "expected an IP, a CIDR, a range a-b or a MAC address"),
    "client.mac": ("không phải địa chỉ MAC: {value!r}", "not a MAC address: {value!r}"),
    "client.cidr": ("dải CIDR sai {value!r}: {error}", "bad CIDR {value!r}: {error}"),
    "client.range": ("khoảng địa chỉ sai {value!r} (viết ví dụ 10.10.6.1-10.10.6.99)",
                     "bad range {value!r} (write e.g. 10.10.6.1-10.10.6.99)"),
    "client.range_mixed": ("khoảng {value!r} trộn IPv4 với IPv6",
                           "range {value!r} mixes IPv4 and IPv6"),
    "client.range_backwards": ("khoảng {value!r} bị ngược (đầu lớn hơn cuối)",
                               "range {value!r} runs backwards"),
    "client.invalid": ("không phải địa chỉ IP, dải CIDR, khoảng địa chỉ hay MAC: {value!r}",
                       "not an IP, CIDR, range or MAC address: {value!r}"),
    "schedule.shape": ("cần một bảng có windows, ở đây là {got_type}",
                       "expected a mapping with windows, got {got_type}"),
    "schedule.text": ("cần chữ", "expected text"),
    "schedule.windows": ("cần một danh sách các khoảng (ngày và giờ)",
                         "expected a list of windows (days and times)"),
    "schedule.window": ("cần một bảng có days và times, ở đây là {got_type}",
                        "expected a mapping with days and times, got {got_type}"),
    "schedule.times": ("cần các giờ như [\"07:00-11:30\", \"13:30-17:00\"]",
                       "expected times such as [\"07:00-11:30\", \"13:30-17:00\"]"),
    "schedule.days_shape": ("cần các ngày như mon-sat hoặc [mon, wed], ở đây là {got_type}",
                            "expected days such as mon-sat or [mon, wed], got {got_type}"),
    "schedule.day": ("ngày sai {value!r} (dùng mon, tue, wed, thu, fri, sat, sun)",
                     "bad day {value!r} (use mon, tue, wed, thu, fri, sat, sun)"),
    "schedule.day_range": ("khoảng ngày sai {value!r} (dùng mon, tue, wed, thu, fri, sat, sun)",
                           "bad day range {value!r} (use mon, tue, wed, thu, fri, sat, sun)"),
    "schedule.day_backwards": ("khoảng ngày {value!r} bị ngược",
                               "day range {value!r} runs backwards"),
    "schedule.no_days": ("chưa có ngày nào", "no days given"),
    "schedule.time": ("giờ sai {value!r} (dùng HH:MM, 24 giờ)",
                      "bad time {value!r} (use HH:MM, 24-hour)"),
    "schedule.span": ("cần một khoảng giờ như 07:00-11:30, ở đây là {value!r}",
                      "expected a time span such as 07:00-11:30, got {value!r}"),
    "schedule.span_24": ("khoảng giờ không bắt đầu lúc 24:00 được: {value!r}",
                         "a span cannot start at 24:00: {value!r}"),
    "schedule.span_empty": ("khoảng giờ rỗng {value!r}", "empty time span {value!r}"),
    "schedule.overlap": ("khoảng {value!r} trùng với khoảng ở dòng {other} ({day} {time})",
                         "window {value!r} overlaps the window on line {other} ({day} {time})"),
    # --- the category catalog ----------------------------------------------------------------
    "catalog.version": ("cần version: 1", "expected version: 1"),
    "catalog.categories": ("cần một bảng các loại nội dung", "expected a mapping of categories"),
    "catalog.id": ("mã loại nội dung gồm chữ thường, chữ số và dấu _",
                   "category ids are lowercase letters, digits and _"),
    # --- overrides ---------------------------------------------------------------------------
    "overrides.shape": ('cần {{"version": 1, "overrides": [...]}}',
                        'expected {{"version": 1, "overrides": [...]}}'),
    "overrides.invalid": ("lệnh mở tạm thời không hợp lệ: {error}", "invalid override: {error}"),
    "overrides.unknown_group": ("lệnh mở tạm thời {value!r} ghi một nhóm không có {group!r}",
                                "override {value!r} names an unknown group {group!r}"),
    # --- list sources and updates ------------------------------------------------------------
    "sources.unknown_category": ("loại nội dung {value!r} không có trong danh mục",
                                 "unknown category {value!r}"),
    "lists.unknown_sources": ("không có nguồn danh sách: {names}", "unknown source(s): {names}"),
    "lists.disabled_sources": ("nguồn đang tắt trong tệp nguồn: {names}",
                               "disabled in the sources file: {names}"),
    "lists.unreadable": ("không đọc được {file_path}: {error}", "cannot read {file_path}: {error}"),
    "lists.empty_download": ("bản tải về không có mục nào ({rejected} dòng bị loại)",
                             "no entries in the download ({rejected} lines rejected)"),
    "lists.shrunk": ("danh sách giảm từ {old} xuống {new} mục (hơn {share}), đáng ngờ: giữ "
                     "bản tốt gần nhất (`filterd lists update --force --source {name}` để "
                     "nhận bản mới)",
                     "shrank from {old} to {new} entries (more than {share}); suspicious, "
                     "keeping the last good list (`filterd lists update --force --source "
                     "{name}` accepts it)"),
    "lists.busy": ("đang có một lần cập nhật danh sách khác", "another list update is running"),
    "fetch.too_big": ("bản tải về lớn hơn giới hạn {limit} byte",
                      "download exceeds the {limit} byte cap"),
    "fetch.truncated": ("tải về bị cắt giữa chừng: {got} trên {expected} byte",
                        "truncated download: {got} of {expected} bytes"),
    "fetch.closed": ("tải về bị cắt giữa chừng: máy chủ đóng kết nối sau {got} trên {expected} "
                     "byte", "truncated download: connection closed after {got} of {expected} "
                     "bytes"),
    "fetch.too_big_announced": ("bản tải về có {size} byte, lớn hơn giới hạn {limit} byte",
                                "download is {size} bytes, more than the {limit} cap"),
    "fetch.http": ("máy chủ {url} trả lời lỗi HTTP {status} {why}",
                   "HTTP {status} {why} from {url}"),
    "fetch.unreachable": ("không kết nối được {url}: {error}", "cannot reach {url}: {error}"),
    "fetch.timeout": ("quá {seconds} giây không nhận được dữ liệu từ {url}",
                      "timed out after {seconds} s without data from {url}"),
    "fetch.failed": ("tải về thất bại: {error}", "download failed: {error}"),
    "fetch.gzip": ("dữ liệu nén gzip bị hỏng: {error}", "broken gzip transfer encoding: {error}"),
}


def type_code(value: Any) -> str:
    """The TYPES code of a YAML value, for `*_type` parameters."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "none"
    return "other"


def yaml_problem_vi(problem: str) -> str:
    for phrase, vi, _en in _YAML_PROBLEMS:
        if phrase in problem:
            return f"{vi} ({problem})"
    return problem


def _params(code: str, params: dict[str, Any], lang: str) -> dict[str, Any]:
    out = dict(params)
    i = 1 if lang == "en" else 0
    for k, v in params.items():
        if k.endswith("_type"):
            out[k] = TYPES.get(str(v), TYPES["other"])[i]
    if code == "yaml.syntax":
        out.setdefault("problem_vi", yaml_problem_vi(str(params.get("problem", ""))))
    if code == "name.invalid":
        out.setdefault("why_vi", params.get("why", ""))
    return out


def message(code: str, lang: str = "en", **params: Any) -> str:
    """The message for `code` in `lang`; an unknown code or a missing parameter never raises."""
    pair = MESSAGES.get(code)
    if pair is None:
        return params.get("text") or code
    template = pair[1] if lang == "en" else pair[0]
    values = _params(code, params, lang)
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template.format_map(_Lenient(values))


class _Lenient(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def where(file: str | None, line: int | None, key: str | None) -> str:
    out = file or "<config>"
    if line is not None:
        out += f":{line}"
    if key:
        out += f": {key}"
    return out


def render_error(error: BaseException, lang: str = "vi") -> str:
    """One error (or every error of a ConfigErrors) in the reader's language, one per line."""
    many = getattr(error, "errors", None)
    if many:
        return "\n".join(render_error(e, lang) for e in many)
    code = getattr(error, "code", None)
    if code is None:
        return str(error)
    text = message(code, lang, **getattr(error, "params", {}))
    if hasattr(error, "line"):        # ConfigError
        return f"{where(error.file, error.line, error.key)}: {text}"   # type: ignore[attr-defined]
    source = getattr(error, "source", None)   # ListError
    return f"{source}: {text}" if source else text


def render_errors(errors: Iterable[BaseException], lang: str = "vi") -> list[str]:
    return [render_error(e, lang) for e in errors]
