"""Errors raised by the SPDY core, each carrying the status it puts on the wire.

Session errors (`ProtocolError` and its subclasses raised from
`SPDYConnection.receive_data`) mean a GOAWAY carrying ``error_code`` has already
been queued in `SPDYConnection.data_to_send`; the caller sends it and closes the
transport. Stream errors are never raised from ``receive_data``: the core queues
RST_STREAM and reports a `StreamReset` event with ``remote_reset=False``.

Errors raised from the sending API (``send_headers``, ``send_data`` ...) are
mistakes of the caller and change nothing on the wire.
"""

from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """RST_STREAM status codes (SPDY/3 numbering; SPDY/2 has codes 1 to 7)."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(enum.IntEnum):
    """GOAWAY status codes."""

    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SPDYError(Exception):
    """The base class of every error the core raises."""


class ProtocolError(SPDYError):
    """The peer broke the protocol; the session is over.

    :arg error_code: the GOAWAY status already queued for the peer.
    """

    def __init__(self, message: str, error_code: int = GoAwayStatus.PROTOCOL_ERROR):
        super().__init__(message)
        self.error_code = error_code


class FrameSizeError(ProtocolError):
    """A frame is longer than ``max_inbound_frame_size`` or shorter than its
    fixed fields."""


class HeaderBlockError(ProtocolError):
    """A header block could not be inflated: the shared zlib state is lost."""


class StreamError(SPDYError):
    """A problem confined to one stream, answered with RST_STREAM.

    Used inside the core and by `HeaderCodec`; `SPDYConnection.receive_data`
    turns it into RST_STREAM and a `StreamReset` event.

    :arg stream_id: the stream to reset.
    :arg error_code: the RST_STREAM status (SPDY/3 numbering; the profile maps it
        to SPDY/2's smaller set).
    """

    def __init__(self, message: str, stream_id: int, error_code: int):
        super().__init__(message)
        self.stream_id = stream_id
        self.error_code = error_code


class HeaderListTooLarge(StreamError):
    """An inflated header block is over ``max_header_list_size`` or
    ``max_header_fields``; the zlib state was kept in sync."""


# Errors of the caller (the sending API), as h2 names them.


class StreamClosedError(SPDYError):
    """The stream is closed (or was never opened) for what the caller tried."""

    def __init__(self, stream_id: int):
        super().__init__(f"stream {stream_id} is closed")
        self.stream_id = stream_id


class NoSuchStreamError(StreamClosedError):
    """No stream with that id was ever opened."""


class FlowControlError(SPDYError):
    """The data does not fit the flow-control window."""


class TooManyStreamsError(SPDYError):
    """Opening the stream would exceed the peer's MAX_CONCURRENT_STREAMS."""


class FrameTooLargeError(SPDYError):
    """The data is longer than ``max_outbound_frame_size``."""


class ConnectionClosedError(SPDYError):
    """The session is closed or closing: no new streams."""
