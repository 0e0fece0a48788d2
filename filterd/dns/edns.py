"""EDNS(0) (RFC 6891): read the client's OPT record, build ours.

We never forward a client's EDNS options upstream: the upstream query carries
our own OPT with only the DO bit copied, so EDNS Client Subnet (RFC 7871) and
any other option that could carry a child's address never leaves the school.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

OPT = 41
DO_BIT = 0x8000
OPTION_ECS = 8
OPTION_EDE = 15          # Extended DNS Error, RFC 8914
OUR_UDP_SIZE = 1232      # DNS flag day 2020: avoids IP fragmentation
MIN_UDP_SIZE = 512

_OPT_FIXED = struct.Struct("!HHBBHH")   # type, udp size, ext rcode, version, flags, rdlen
_OPTION = struct.Struct("!HH")


class EdnsFormatError(ValueError):
    """The OPT record is malformed: the query is answered FORMERR."""


@dataclass(frozen=True, slots=True)
class Edns:
    """What a client's OPT record says."""

    udp_size: int
    version: int
    do: bool
    options: tuple[tuple[int, bytes], ...] = ()

    @property
    def max_payload(self) -> int:
        """Largest UDP answer the client accepts (RFC 6891: values below 512 mean 512)."""
        return max(MIN_UDP_SIZE, min(self.udp_size, 65535))

    @property
    def has_client_subnet(self) -> bool:
        return any(code == OPTION_ECS for code, _ in self.options)


def parse_opt(data: bytes, name_start: int, rr_fixed: int) -> Edns:
    """Parse an OPT RR whose owner name starts at `name_start` and fixed part at `rr_fixed`."""
    if rr_fixed != name_start + 1 or data[name_start] != 0:
        raise EdnsFormatError("OPT owner name must be the root")
    if rr_fixed + 10 > len(data):
        raise EdnsFormatError("truncated OPT record")
    _, udp_size, _ext, version, flags, rdlen = _OPT_FIXED.unpack_from(data, rr_fixed)
    rd = rr_fixed + 10
    end = rd + rdlen
    if end > len(data):
        raise EdnsFormatError("OPT RDATA runs past the message")
    options = []
    pos = rd
    while pos < end:
        if pos + 4 > end:
            raise EdnsFormatError("truncated EDNS option header")
        code, olen = _OPTION.unpack_from(data, pos)
        pos += 4
        if pos + olen > end:
            raise EdnsFormatError("EDNS option runs past the OPT RDATA")
        options.append((code, bytes(data[pos:pos + olen])))
        pos += olen
    return Edns(udp_size=udp_size, version=version, do=bool(flags & DO_BIT),
                options=tuple(options))


def build_opt(*, do: bool = False, udp_size: int = OUR_UDP_SIZE, ext_rcode: int = 0,
              options: bytes = b"") -> bytes:
    """An OPT RR (root owner) carrying `options` (already encoded)."""
    return b"\x00" + _OPT_FIXED.pack(OPT, udp_size, ext_rcode, 0, DO_BIT if do else 0,
                                     len(options)) + options


def ede_option(info_code: int, text: str = "") -> bytes:
    """An Extended DNS Error option (RFC 8914): INFO-CODE and UTF-8 EXTRA-TEXT."""
    body = struct.pack("!H", info_code) + text.encode("utf-8")[:400]
    return _OPTION.pack(OPTION_EDE, len(body)) + body
