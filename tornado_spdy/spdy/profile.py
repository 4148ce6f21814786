"""`VersionProfile`: every wire difference between SPDY versions, one field each.

The frame codec, header codec and session logic are written once and read the
profile where versions differ; `tornado_spdy.spdy.v2` and
`tornado_spdy.spdy.v3` hold the values.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import StatusCode

Headers = list[tuple[bytes, bytes]]

# Headers that describe one hop of HTTP/1.1 and have no meaning in SPDY
# (SPDY/3 section 3.2.1 forbids them); dropped when sending and receiving.
CONNECTION_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding")
)

_REASONS = {status.value: status.phrase.encode("ascii") for status in http.HTTPStatus}


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
        return (1 << self.priority_bits) - 1

    def wire_status(self, code: int) -> int:
        """The RST_STREAM status to send for ``code`` in this version."""
        return self.status_fallback.get(code, code)

    # Header lists: h2 names on our API, this version's names on the wire.

    def request_to_wire(self, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
        """A request's headers as a SYN_STREAM carries them."""
        return self._to_wire(headers, ((b":version", b"HTTP/1.1"),))

    def response_to_wire(self, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
        """A response's headers as SYN_REPLY (or a push SYN_STREAM) carries them."""
        wire = self._to_wire(headers, ((b":version", b"HTTP/1.1"),))
        status_name = self.wire_names[b":status"]
        for index, (name, value) in enumerate(wire):
            if name == status_name:
                reason = _REASONS.get(int(value.split(b" ", 1)[0] or b"0"))
                if reason and b" " not in value:
                    wire[index] = (name, value + b" " + reason)
        return wire

    def push_to_wire(
        self,
        request: Iterable[tuple[bytes, bytes]],
        response: Iterable[tuple[bytes, bytes]],
    ) -> Headers:
        """A pushed SYN_STREAM's headers: the request it answers and, where
        known, the response status (real clients want both in one frame)."""
        request = list(request)
        if self.absolute_push_url:
            fields = dict(request)
            url = (
                fields.get(b":scheme", b"https")
                + b"://"
                + fields.get(b":authority", b"")
                + fields.get(b":path", b"/")
            )
            request = [(n, v) for n, v in request if n not in _URL_PARTS]
            request.append((b":path", url))
        wire = self._to_wire(request, ())
        wire.extend(self.response_to_wire(response))
        return wire

    def trailers_to_wire(self, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers of a HEADERS frame: no pseudo-headers to rename."""
        return self._to_wire(headers, ())

    def _to_wire(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        defaults: tuple[tuple[bytes, bytes], ...],
    ) -> Headers:
        wire_names = self.wire_names
        wire: Headers = []
        seen: set[bytes] = set()
        for name, value in headers:
            name = name.lower()
            if name in CONNECTION_HEADERS:
                continue
            name = wire_names.get(name, name)
            seen.add(name)
            wire.append((name, value))
        for name, value in defaults:
            name = wire_names[name]
            if name not in seen:
                wire.append((name, value))
        return wire

    def headers_from_wire(self, wire: Headers) -> Headers:
        """A received header list with h2 names.

        ``:version`` is dropped, ``:status`` keeps the code alone, a ``host``
        header stands in for a missing ``:authority``, and an absolute URL in
        the path (SPDY/2 pushes) is split into scheme, authority and path.
        """
        h2_names = self.h2_names
        headers: Headers = []
        path = authority = host = None
        for name, value in wire:
            name = h2_names.get(name, name)
            if name == b":version" or name in CONNECTION_HEADERS:
                continue
            if name == b":status":
                value = value.split(b" ", 1)[0]
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b"host":
                host = value
                continue
            headers.append((name, value))
        if path is not None and b"://" in path[:9]:
            headers = [(n, v) for n, v in headers if n not in _URL_PARTS]
            scheme, _, rest = path.partition(b"://")
            url_authority, slash, url_path = rest.partition(b"/")
            headers.append((b":scheme", scheme))
            headers.append((b":authority", url_authority))
            headers.append((b":path", slash + url_path))
            authority = url_authority
        if host is not None:
            if authority is None:
                headers.append((b":authority", host))
            else:
                headers.append((b"host", host))
        return headers


_URL_PARTS = frozenset((b":scheme", b":authority", b":path"))

# Status codes added in SPDY/3, for the versions that lack them.
SPDY2_STATUS_FALLBACK = {
    StatusCode.STREAM_IN_USE: StatusCode.PROTOCOL_ERROR,
    StatusCode.STREAM_ALREADY_CLOSED: StatusCode.INVALID_STREAM,
    StatusCode.INVALID_CREDENTIALS: StatusCode.PROTOCOL_ERROR,
    StatusCode.FRAME_TOO_LARGE: StatusCode.PROTOCOL_ERROR,
}
