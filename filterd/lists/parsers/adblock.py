"""Adblock-style lists: only pure domain rules `||domain^` are kept (domain and subdomains).

Anything else (comments, cosmetic `##` rules, `@@` exceptions, paths, wildcards,
rules with `$options`) is counted per reason and skipped: a DNS filter cannot
honour it, and guessing would block more than the list author meant.
"""

from __future__ import annotations

from filterd.lists.model import ParseResult
from filterd.lists.parsers._lines import Collector, CollectorFactory, text_lines

COSMETIC = "cosmetic"
EXCEPTION = "exception"
OPTIONS = "options"
NOT_DOMAIN_RULE = "not_domain_rule"

_HARMLESS_OPTIONS = frozenset({"important", "all", "document", "doc"})


def parse(data: bytes, *, collector: CollectorFactory = Collector) -> ParseResult:
    c = collector(exact=False)
    for line in text_lines(data):
        line = line.strip()
        if not line or (line.startswith(("!", "[", "#")) and not line.startswith(("##", "#@#"))):
            continue
        if "##" in line or "#@#" in line or "#?#" in line or "#$#" in line:
            c.reject(COSMETIC)
            continue
        if line.startswith("@@"):
            c.reject(EXCEPTION)
            continue
        if not line.startswith("||"):
            c.reject(NOT_DOMAIN_RULE)
            continue
        rule = line[2:]
        if "$" in rule:
            rule, _, options = rule.partition("$")
            if not set(options.split(",")) <= _HARMLESS_OPTIONS:
                c.reject(OPTIONS)
                continue
        if rule.endswith("^|"):
            rule = rule[:-2]
        elif rule.endswith("^"):
            rule = rule[:-1]
        else:
            c.reject(NOT_DOMAIN_RULE)
            continue
        if any(ch in rule for ch in "/*^|:?=&"):
            c.reject(NOT_DOMAIN_RULE)
            continue
        c.add(rule)
    return c.result()
