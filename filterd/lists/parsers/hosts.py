"""Hosts files: `0.0.0.0 name [name...]`, `127.0.0.1 name`, `#` comments. Exact hosts."""

from __future__ import annotations

import ipaddress

from filterd.lists.model import ParseResult
from filterd.lists.parsers._lines import Collector, CollectorFactory, text_lines

MALFORMED = "malformed"
BAD_ADDRESS = "bad_address"
LOCAL = "local_name"

# Names every hosts file carries for the machine itself; never list entries.
LOCAL_NAMES = frozenset({
    "localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost",
    "ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters",
    "ip6-allhosts", "0.0.0.0",
})


def parse(data: bytes, *, collector: CollectorFactory = Collector) -> ParseResult:
    c = collector(exact=True)
    for line in text_lines(data):
        if "#" in line:
            line = line.split("#", 1)[0]
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            c.reject(MALFORMED)
            continue
        try:
            ipaddress.ip_address(fields[0])
        except ValueError:
            c.reject(BAD_ADDRESS)
            continue
        for name in fields[1:]:
            if name.lower() in LOCAL_NAMES:
                c.reject(LOCAL)
            else:
                c.add(name)
    return c.result()
