"""Events returned by `SPDYConnection.receive_data`, named as h2 names them.

Header lists use h2's names whatever the SPDY version on the wire: requests carry
``:method``, ``:path``, ``:scheme`` and ``:authority``; responses carry
``:status`` with the code alone (``b"200"``). Names and values are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A header list: (name, value) pairs of bytes, h2's names.
Headers = list[tuple[bytes, bytes]]


class Event:
    """Base class of every event."""

    __slots__ = ()


@dataclass(slots=True)
class RequestReceived(Event):
    """A client opened a stream (server side)."""

    stream_id: int
    headers: Headers
    priority: int = 0
    stream_ended: StreamEnded | None = None


@dataclass(slots=True)
class ResponseReceived(Event):
    """The response headers of a stream arrived (client side).

    For a pushed stream this follows `PushedStreamReceived`, from the same
    SYN_STREAM or from a later HEADERS frame. ``reason`` is the reason phrase
    of SPDY's status line (``:status`` holds the code alone, as in h2, which
    has no reason phrase).
    """

    stream_id: int
    headers: Headers
    stream_ended: StreamEnded | None = None
    reason: bytes = b""


@dataclass(slots=True)
class TrailersReceived(Event):
    """A HEADERS frame arrived after the request or response headers."""

    stream_id: int
    headers: Headers
    stream_ended: StreamEnded | None = None


@dataclass(slots=True)
class PushedStreamReceived(Event):
    """The server pushed a stream (client side).

    :attr headers: the request the push answers (``:method``, ``:path``,
        ``:scheme``, ``:authority``).
    """

    pushed_stream_id: int
    parent_stream_id: int
    headers: Headers
    priority: int = 0


@dataclass(slots=True)
class DataReceived(Event):
    """DATA arrived.

    ``data`` may be a memoryview slice of what was passed to ``receive_data``
    (no copy); call ``bytes()`` on it to keep it. Give ``flow_controlled_length``
    back through `SPDYConnection.acknowledge_received_data` once consumed.
    """

    stream_id: int
    data: bytes | memoryview
    flow_controlled_length: int
    stream_ended: StreamEnded | None = None


@dataclass(slots=True)
class StreamEnded(Event):
    """The peer closed its side of the stream (FIN)."""

    stream_id: int


@dataclass(slots=True)
class StreamReset(Event):
    """The stream was reset.

    :attr remote_reset: True when the peer sent RST_STREAM, False when the core
        reset the stream because of bad input (the RST_STREAM is queued); the
        latter also for streams never reported, such as a refused SYN_STREAM.
    """

    stream_id: int
    error_code: int
    remote_reset: bool = True


@dataclass(slots=True)
class WindowUpdated(Event):
    """The peer opened a send window; ``stream_id`` 0 is the session (SPDY/3.1)."""

    stream_id: int
    delta: int


@dataclass(slots=True)
class ChangedSetting:
    """One setting of a `RemoteSettingsChanged` event.

    :attr setting: the setting id (SPDY's ``SETTINGS`` ids).
    :attr original_value: the value before, None if the peer had not set it.
    :attr new_value: the value the peer sent.
    """

    setting: int
    original_value: int | None
    new_value: int


@dataclass(slots=True)
class RemoteSettingsChanged(Event):
    """The peer sent SETTINGS; keyed by setting id."""

    changed_settings: dict[int, ChangedSetting] = field(default_factory=dict)


@dataclass(slots=True)
class PingReceived(Event):
    """The peer sent a PING; the echo is already queued."""

    ping_data: bytes


@dataclass(slots=True)
class PingAckReceived(Event):
    """The peer echoed one of our PINGs."""

    ping_data: bytes


@dataclass(slots=True)
class ConnectionTerminated(Event):
    """The peer sent GOAWAY.

    Streams we opened with ids above ``last_stream_id`` were not processed and
    may be retried elsewhere.
    """

    error_code: int
    last_stream_id: int
    additional_data: bytes | None = None


@dataclass(slots=True)
class UnknownFrameReceived(Event):
    """A control frame this version does not define (ignored, as the spec says),
    or a CREDENTIAL frame (parsed and ignored)."""

    frame_type: int
