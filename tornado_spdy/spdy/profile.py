"""`VersionProfile`: every wire difference between SPDY versions, one field each.

The frame codec, header codec and session logic are written once and read the
profile where versions differ; `tornado_spdy.spdy.v2` and
`tornado_spdy.spdy.v3` hold the values.
"""

from __future__ import annotations

import http
from dataclasses import dataclass, field

from .errors import StatusCode

Headers = list[tuple[bytes, bytes]]

# Headers that describe one hop of HTTP/1.1 and have no meaning in SPDY
# (SPDY/3 section 3.2.1 forbids them); dropped when sending and receiving.
CONNECTION_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding")
)

#: ``b"200"`` -> ``b"200 OK"``: SPDY status lines carry the reason phrase.
REASONS = {
    str(status.value).encode("ascii"): b"%d %s" % (status.value, status.phrase.encode())
    for status in http.HTTPStatus
}


@dataclass(frozen=True)
class VersionProfile:
    """What one SPDY version puts on the wire.

    :arg name: the ALPN / NPN protocol id, e.g. ``"spdy/3.1"``.
    :arg version: the number in the control frame header (2 or 3).
    :arg dictionary: the zlib preset dictionary of header blocks.
    :arg length_size: bytes of each length field in a header block (2 or 4).
    :arg priority_bits: width of the SYN_STREAM priority field (2 or 3).
    :arg has_slot: SYN_STREAM carries a CREDENTIAL slot byte (SPDY/3).
    :arg reply_padding: unused bytes after the stream id of SYN_REPLY and
        HEADERS (2 in SPDY/2).
    :arg settings_id_format: struct format of a SETTINGS entry's flags and id
        word: SPDY/2 peers write it little-endian.
    :arg session_flow_control: a session-wide window (SPDY/3.1).
    :arg has_noop: the NOOP frame exists (SPDY/2).
    :arg has_credential: the CREDENTIAL frame exists (SPDY/3).
    :arg short_goaway: a 4-byte GOAWAY (no status) is accepted (SPDY/2).
    :arg status_fallback: RST_STREAM codes this version lacks, mapped to the
        nearest it has.
    :arg wire_names: h2 pseudo-header name -> this version's name.
    :arg absolute_push_url: a pushed stream names its resource by one absolute
        ``url`` header (SPDY/2) instead of scheme, host and path.
    """

    name: str
    version: int
    dictionary: bytes
    length_size: int
    priority_bits: int
    has_slot: bool
    reply_padding: int
    settings_id_format: str
    session_flow_control: bool
    has_noop: bool
    has_credential: bool
    short_goaway: bool
    status_fallback: dict[int, int]
    wire_names: dict[bytes, bytes]
    absolute_push_url: bool
    h2_names: dict[bytes, bytes] = field(init=False)

    def __post_init__(self) -> None:
        reverse = {wire: h2 for h2, wire in self.wire_names.items()}
        object.__setattr__(self, "h2_names", reverse)

    @property
    def lowest_priority(self) -> int:
        """The least urgent SYN_STREAM priority of this version: 3 in SPDY/2,
        7 in SPDY/3 (0 is the most urgent in both)."""
        return (1 << self.priority_bits) - 1

    def wire_status(self, code: int) -> int:
        """The RST_STREAM status to send for ``code`` in this version."""
        return self.status_fallback.get(code, code)

    def push_url(self, request: Headers) -> Headers:
        """A push's request headers as this version names the resource: one
        absolute URL in SPDY/2, scheme, host and path in SPDY/3."""
        if not self.absolute_push_url:
            return request
        fields = dict(request)
        url = (
            fields.get(b":scheme", b"https")
            + b"://"
            + fields.get(b":authority", b"")
            + fields.get(b":path", b"/")
        )
        kept = [(n, v) for n, v in request if n not in _URL_PARTS]
        return [*kept, (b":path", url)]


_URL_PARTS = frozenset((b":scheme", b":authority", b":path"))

# Status codes added in SPDY/3, for the versions that lack them.
SPDY2_STATUS_FALLBACK = {
    StatusCode.STREAM_IN_USE: StatusCode.PROTOCOL_ERROR,
    StatusCode.STREAM_ALREADY_CLOSED: StatusCode.INVALID_STREAM,
    StatusCode.INVALID_CREDENTIALS: StatusCode.PROTOCOL_ERROR,
    StatusCode.FRAME_TOO_LARGE: StatusCode.PROTOCOL_ERROR,
}
