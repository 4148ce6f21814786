"""`SPDYConnection`: one SPDY session, client or server side, without I/O.

Its API is `h2.connection.H2Connection`'s: feed received bytes to
`~SPDYConnection.receive_data`, act on the events it returns, call the sending
methods, and write out `~SPDYConnection.data_to_send` after each of them.
Header lists use h2's pseudo-header names whatever the version on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import events as ev
from .compression import (
    HAS_METHOD,
    HAS_PATH,
    HAS_STATUS,
    HeaderCodec,
    HeaderInput,
    _to_bytes,
)
from .config import DEFAULT_WINDOW, SPDYConfiguration
from .errors import (
    ConnectionClosedError,
    FlowControlError,
    FrameTooLargeError,
    GoAwayStatus,
    NoSuchStreamError,
    ProtocolError,
    SPDYError,
    StatusCode,
    StreamClosedError,
    StreamError,
    TooManyStreamsError,
)
from .flow import MAX_WINDOW, InboundWindow
from .frames import (
    FLAG_COMPRESS,
    FLAG_FIN,
    FLAG_UNIDIRECTIONAL,
    SETTINGS_FLAG_PERSISTED,
    CredentialFrame,
    DataFrame,
    Frame,
    FrameParser,
    FrameType,
    GoAwayFrame,
    HeadersFrame,
    NoopFrame,
    PingFrame,
    RstStreamFrame,
    SettingId,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    UnknownFrame,
    WindowUpdateFrame,
    data_frame_header,
)
from .profile import Headers, VersionProfile
from .state import CAN_RECEIVE, CAN_SEND, TRANSITIONS, StreamInput, StreamState

_REQUIRED_REQUEST = HAS_METHOD | HAS_PATH
_PUSH_REQUEST_NAMES = frozenset((b":method", b":path", b":scheme", b":authority"))

# How many streams we reset are remembered, so that frames the peer sent before
# it saw our RST_STREAM are dropped quietly instead of answered again.
_RECENT_RESETS = 128


class SPDYStream:
    """What the session knows of one stream."""

    __slots__ = (
        "stream_id",
        "state",
        "priority",
        "associated_stream_id",
        "send_window",
        "inbound",
        "local_headers_sent",
        "response_pending",
        "remote_headers_received",
        "push_request",
        "push_response",
        "push_reason",
    )

    def __init__(self, stream_id: int, send_window: int, receive_window: int):
        self.stream_id = stream_id
        self.state = StreamState.IDLE
        self.priority = 0
        self.associated_stream_id = 0
        self.send_window = send_window
        self.inbound = InboundWindow(receive_window)
        # SYN_STREAM or SYN_REPLY sent / received: later header blocks go in
        # HEADERS frames and are trailers (or, on a push, the response).
        self.local_headers_sent = False
        # A push whose SYN_STREAM went out before its response headers: they
        # follow in HEADERS, with the response's defaults.
        self.response_pending = False
        self.remote_headers_received = False
        self.push_request: Headers | None = None  # a promised push, not yet sent
        self.push_response: Headers = []  # response headers of a received push
        self.push_reason = b""  # and its status's reason phrase

    def advance(self, stream_input: StreamInput) -> bool:
        """Apply ``stream_input``; False (and no change) if it is illegal."""
        following = TRANSITIONS.get((self.state, stream_input))
        if following is None:
            return False
        self.state = following
        return True


class SPDYConnection:
    """A SPDY/2, SPDY/3 or SPDY/3.1 session.

    :arg config: the session's `SPDYConfiguration`; by default the client side
        of SPDY/3.1.
    """

    def __init__(self, config: SPDYConfiguration | None = None):
        from . import VERSIONS

        self.config = config = config or SPDYConfiguration()
        self.profile: VersionProfile = VERSIONS[config.version]
        self.client_side = config.client_side
        self.codec = HeaderCodec(
            self.profile,
            max_header_list_size=config.max_header_list_size,
            max_header_fields=config.max_header_fields,
            max_inflate_size=config.max_inflate_size,
            compression_level=config.compression_level,
            sensitive_headers=config.sensitive_headers,
        )
        self._version_header = ((self.profile.wire_names[b":version"], b"HTTP/1.1"),)
        self._parser = FrameParser(self.profile, config.max_inbound_frame_size)
        # Where the header block starts in the payload of each frame with one.
        reply = 4 + self.profile.reply_padding
        self._block_offsets: dict[int, int] = {
            FrameType.SYN_STREAM: 10,
            FrameType.SYN_REPLY: reply,
            FrameType.HEADERS: reply,
        }
        self.streams: dict[int, SPDYStream] = {}
        self._open_streams = [0, 0]  # open streams by the parity of their ids
        self._out: list[bytes | memoryview] = []
        self._local_parity = 1 if self.client_side else 0
        self._highest_outbound_id = 0
        self._highest_inbound_id = 0
        self._next_ping_id = 1 if self.client_side else 2
        self._pings_in_flight: set[int] = set()
        self._recent_resets: dict[int, None] = {}
        # Settings: what we told the peer, and what the peer told us.
        self.local_settings: dict[int, int] = {
            SettingId.MAX_CONCURRENT_STREAMS: config.max_concurrent_streams,
            SettingId.INITIAL_WINDOW_SIZE: config.initial_window_size,
        }
        self.remote_settings: dict[int, int] = {}
        self._remote_initial_window = DEFAULT_WINDOW
        self._remote_max_concurrent = 2**31 - 1
        # Session flow control (SPDY/3.1); unused but harmless in other versions.
        self._session_flow = self.profile.session_flow_control
        self._session_send_window = DEFAULT_WINDOW
        self._session_inbound = InboundWindow(DEFAULT_WINDOW)
        # GOAWAY, either way.
        self._goaway_sent_last_id: int | None = None
        self._goaway_received = False
        self._terminated = False
        self._pending_pushes: list[int] = []  # reserved push ids, SYN_STREAM unsent

    # ------------------------------------------------------------------ state

    @property
    def max_outbound_frame_size(self) -> int:
        """The longest DATA payload we send in one frame."""
        return self.config.max_outbound_frame_size

    @property
    def open_outbound_streams(self) -> int:
        """Streams we opened (or pushed) that are not closed."""
        return self._open_streams[self._local_parity]

    @property
    def open_inbound_streams(self) -> int:
        """Streams the peer opened (or pushed) that are not closed."""
        return self._open_streams[self._local_parity ^ 1]

    def get_next_available_stream_id(self) -> int:
        """The id the next stream we open (or push we promise) must use."""
        if self._highest_outbound_id:
            return self._highest_outbound_id + 2
        return 1 if self.client_side else 2

    def local_flow_control_window(self, stream_id: int) -> int:
        """How many DATA bytes may be sent on ``stream_id`` now."""
        window = self._stream(stream_id).send_window
        if self._session_flow and self._session_send_window < window:
            return self._session_send_window
        return window

    @property
    def remote_initial_window_size(self) -> int:
        """The window the peer gives each new stream (its SETTINGS)."""
        return self._remote_initial_window

    def remote_flow_control_window(self, stream_id: int) -> int:
        """How many DATA bytes the peer may still send on ``stream_id``."""
        window = self._stream(stream_id).inbound.window
        if self._session_flow:
            return min(window, self._session_inbound.window)
        return window

    # -------------------------------------------------------------- the wire

    def data_to_send(self, amount: int | None = None) -> bytes:
        """The bytes queued for the peer (at most ``amount`` of them)."""
        data = b"".join(self.buffers_to_send())
        if amount is not None and len(data) > amount:
            self._out.append(data[amount:])
            data = data[:amount]
        return data

    def buffers_to_send(self) -> list[bytes | memoryview]:
        """All the bytes queued for the peer, as the buffers they were queued
        in (DATA as the caller's own views), for a vectored write that copies
        nothing; `data_to_send` is their join."""
        out = self._out
        self._out = []
        return out

    def clear_outbound_data_buffer(self) -> None:
        """Drop the bytes queued for sending (h2's method of the same name)."""
        self._out.clear()

    def _send(self, frame: Frame) -> None:
        self._out.append(frame.serialize(self.profile))

    # --------------------------------------------------------------- sending

    def initiate_connection(self) -> None:
        """Queue our SETTINGS (and, in SPDY/3.1, the session window)."""
        settings: list[tuple[int, int, int]] = [
            (SettingId.MAX_CONCURRENT_STREAMS, self.config.max_concurrent_streams, 0)
        ]
        if self.config.initial_window_size != DEFAULT_WINDOW:
            settings.append(
                (SettingId.INITIAL_WINDOW_SIZE, self.config.initial_window_size, 0)
            )
        self._send(SettingsFrame(settings))
        extra = self.config.initial_session_window_size - DEFAULT_WINDOW
        if self._session_flow and extra > 0:
            self.increment_flow_control_window(extra)

    def update_settings(self, new_settings: dict[int, int]) -> None:
        """Send SETTINGS; SPDY has no acknowledgement, so they apply at once."""
        for setting, value in new_settings.items():
            if setting == SettingId.INITIAL_WINDOW_SIZE:
                for stream in self.streams.values():
                    stream.inbound.resize(value)
                self.config.initial_window_size = value
            elif setting == SettingId.MAX_CONCURRENT_STREAMS:
                self.config.max_concurrent_streams = value
            self.local_settings[setting] = value
        self._send(SettingsFrame([(k, v, 0) for k, v in new_settings.items()]))

    def send_headers(
        self,
        stream_id: int,
        headers: HeaderInput,
        end_stream: bool = False,
        priority: int | None = None,
    ) -> None:
        """Send a header block on ``stream_id``.

        On a new stream (client side) it opens the stream with SYN_STREAM; on a
        stream the peer opened it is the reply (SYN_REPLY); on a promised push it
        sends the push's SYN_STREAM with the request and these response headers;
        afterwards it sends HEADERS.

        :arg priority: of a new stream: 0 (highest) to 3 (SPDY/2) or 7.
        """
        flags = FLAG_FIN if end_stream else 0
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id <= self._highest_id_of(stream_id):
                raise StreamClosedError(stream_id)
            self._open_stream(stream_id, headers, flags, priority or 0)
            return
        if stream.state is StreamState.RESERVED_LOCAL:
            self._send_push(stream, headers, flags)
            return
        if not stream.advance(StreamInput.SEND_HEADERS):
            raise StreamClosedError(stream_id)
        if end_stream:
            self._flush_pushes(stream_id)
        if stream.local_headers_sent:
            defaults = self._version_header if stream.response_pending else ()
            stream.response_pending = False
            block = self.codec.encode(headers, defaults)
            self._send(HeadersFrame(stream_id, block, flags))
        else:
            stream.local_headers_sent = True
            block = self.codec.encode(headers, self._version_header)
            self._send(SynReplyFrame(stream_id, block, flags))
        if end_stream:
            self._end_local(stream)

    def _open_stream(
        self, stream_id: int, headers: HeaderInput, flags: int, priority: int
    ) -> None:
        if not self.client_side:
            raise SPDYError("a server opens streams only by push_stream()")
        self._check_new_outbound(stream_id)
        stream = self._new_stream(stream_id)
        stream.advance(StreamInput.SEND_SYN_STREAM)
        stream.priority = priority
        stream.local_headers_sent = True
        block = self.codec.encode(headers, self._version_header)
        self._send(SynStreamFrame(stream_id, 0, priority, block, flags))
        if flags & FLAG_FIN:
            self._end_local(stream)

    def _check_new_outbound(self, stream_id: int) -> None:
        if self._terminated or self._goaway_received:
            raise ConnectionClosedError("the session is closing")
        if (
            stream_id & 1 != self._local_parity
            or stream_id <= self._highest_outbound_id
        ):
            raise SPDYError(
                f"stream {stream_id} is not the next stream id of this side "
                f"(expected {self.get_next_available_stream_id()} or above)"
            )
        if self.open_outbound_streams >= self._remote_max_concurrent:
            raise TooManyStreamsError(
                f"the peer allows {self._remote_max_concurrent} concurrent streams"
            )

    def _new_stream(self, stream_id: int) -> SPDYStream:
        stream = SPDYStream(
            stream_id, self._remote_initial_window, self.config.initial_window_size
        )
        self.streams[stream_id] = stream
        self._open_streams[stream_id & 1] += 1
        if stream_id & 1 == self._local_parity:
            self._highest_outbound_id = stream_id
        else:
            self._highest_inbound_id = stream_id
        return stream

    def push_stream(
        self, stream_id: int, promised_stream_id: int, request_headers: HeaderInput
    ) -> None:
        """Promise a push of ``request_headers`` on ``promised_stream_id``,
        associated with the peer's ``stream_id``.

        SPDY has no PUSH_PROMISE: the push's SYN_STREAM goes out with its
        response headers at the first `send_headers` on ``promised_stream_id``,
        or, carrying the request alone, before the parent stream's next DATA or
        FIN (a client must learn of a push before it could ask for it).
        """
        if self.client_side:
            raise SPDYError("clients cannot push")
        parent = self._stream(stream_id)
        if parent.state not in CAN_SEND or stream_id & 1 == self._local_parity:
            raise StreamClosedError(stream_id)
        self._check_new_outbound(promised_stream_id)
        request = [(_to_bytes(n).lower(), _to_bytes(v)) for n, v in request_headers]
        stream = self._new_stream(promised_stream_id)
        stream.advance(StreamInput.RESERVE_PUSH)
        stream.associated_stream_id = stream_id
        stream.priority = min(parent.priority + 1, self.profile.lowest_priority)
        stream.push_request = request
        self._pending_pushes.append(promised_stream_id)

    def _send_push(self, stream: SPDYStream, response: HeaderInput, flags: int) -> None:
        self._flush_pushes_up_to(stream.stream_id - 2)
        self._pending_pushes.remove(stream.stream_id)
        self._emit_push(stream, response, flags)

    def _emit_push(self, stream: SPDYStream, response: HeaderInput, flags: int) -> None:
        assert stream.push_request is not None
        # Only what names the resource: in SPDY a push carries no request
        # headers of its own, and any others would read as the response's.
        named = [(n, v) for n, v in stream.push_request if n[:1] == b":"]
        request = self.profile.push_url(named)
        response = list(response)
        stream.push_request = None
        stream.local_headers_sent = True
        stream.response_pending = not response
        stream.advance(StreamInput.SEND_PUSH)
        defaults = self._version_header if response else ()
        block = self.codec.encode([*request, *response], defaults)
        self._send(
            SynStreamFrame(
                stream.stream_id,
                stream.associated_stream_id,
                stream.priority,
                block,
                flags | FLAG_UNIDIRECTIONAL,
            )
        )
        if flags & FLAG_FIN:
            self._end_local(stream)

    def _flush_pushes(self, parent_id: int) -> None:
        """Send the SYN_STREAMs still owed for pushes promised on ``parent_id``
        (before its DATA or FIN: a client must learn of a push before it could
        ask for the resource itself)."""
        owed = [
            p
            for p in self._pending_pushes
            if self.streams[p].associated_stream_id == parent_id
        ]
        if owed:
            self._flush_pushes_up_to(owed[-1])

    def _flush_pushes_up_to(self, last_id: int) -> None:
        """Send every owed push SYN_STREAM with an id up to ``last_id``: stream
        ids must reach the peer in increasing order."""
        pending = self._pending_pushes
        while pending and pending[0] <= last_id:
            self._emit_push(self.streams[pending.pop(0)], [], 0)

    def send_data(
        self, stream_id: int, data: bytes | memoryview, end_stream: bool = False
    ) -> None:
        """Send one DATA frame.

        ``data`` must fit `max_outbound_frame_size` and
        `local_flow_control_window`; it is not copied until `data_to_send`, so
        it must not change before then.
        """
        stream = self.streams.get(stream_id)
        if stream is None or stream.state not in CAN_SEND:
            raise StreamClosedError(stream_id)
        length = len(data)
        if length > self.config.max_outbound_frame_size:
            raise FrameTooLargeError(
                f"{length} bytes over max_outbound_frame_size "
                f"{self.config.max_outbound_frame_size}"
            )
        if length > self.local_flow_control_window(stream_id):
            raise FlowControlError(
                f"{length} bytes do not fit the window of stream {stream_id}"
            )
        if self._pending_pushes:
            self._flush_pushes(stream_id)
        stream.send_window -= length
        if self._session_flow:
            self._session_send_window -= length
        self._out.append(
            data_frame_header(stream_id, FLAG_FIN if end_stream else 0, length)
        )
        if length:
            self._out.append(data)
        if end_stream:
            self._end_local(stream)

    def send_data_frames(
        self, stream_id: int, data: bytes | memoryview, end_stream: bool = False
    ) -> None:
        """Send ``data`` as DATA frames of at most `max_outbound_frame_size`
        bytes, the last one ending the stream if ``end_stream``; the windows
        must take all of it (nothing is sent otherwise)."""
        length = len(data)
        frame_size = self.config.max_outbound_frame_size
        if length <= frame_size:
            self.send_data(stream_id, data, end_stream)
            return
        if length > self.local_flow_control_window(stream_id):
            raise FlowControlError(
                f"{length} bytes do not fit the window of stream {stream_id}"
            )
        view = memoryview(data)
        for start in range(0, length, frame_size):
            piece = view[start : start + frame_size]
            self.send_data(
                stream_id, piece, end_stream and start + len(piece) == length
            )

    def end_stream(self, stream_id: int) -> None:
        """Close our side of ``stream_id`` with an empty DATA frame."""
        self.send_data(stream_id, b"", end_stream=True)

    def _end_local(self, stream: SPDYStream) -> None:
        stream.advance(StreamInput.SEND_END_STREAM)
        if stream.state is StreamState.CLOSED:
            self._forget(stream)

    def reset_stream(self, stream_id: int, error_code: int = StatusCode.CANCEL) -> None:
        """Reset ``stream_id``. A promised push not yet on the wire just goes."""
        stream = self._stream(stream_id)
        if not stream.advance(StreamInput.SEND_RST_STREAM):
            raise StreamClosedError(stream_id)
        if stream.push_request is None:
            self._send_rst(stream_id, error_code)
        self._forget(stream)

    def _send_rst(self, stream_id: int, error_code: int) -> None:
        self._send(RstStreamFrame(stream_id, self.profile.wire_status(error_code)))
        self._recent_resets[stream_id] = None
        if len(self._recent_resets) > _RECENT_RESETS:
            del self._recent_resets[next(iter(self._recent_resets))]

    def _forget(self, stream: SPDYStream) -> None:
        """The stream is closed: drop it, and with it any push it promised
        that never reached the wire (or the promise itself, if it is one)."""
        stream.state = StreamState.CLOSED
        if self.streams.pop(stream.stream_id, None) is not None:
            self._open_streams[stream.stream_id & 1] -= 1
        if stream.push_request is not None:
            stream.push_request = None
            self._pending_pushes.remove(stream.stream_id)
        elif self._pending_pushes:
            for push_id in [
                p
                for p in self._pending_pushes
                if self.streams[p].associated_stream_id == stream.stream_id
            ]:
                self._forget(self.streams[push_id])

    def ping(self, opaque_data: bytes | None = None) -> bytes:
        """Send a PING; its 4-byte id is returned (and echoed in
        `PingAckReceived`). ``opaque_data`` picks the id; its parity must be
        this side's (odd for clients)."""
        if opaque_data is None:
            ping_id = self._next_ping_id
            self._next_ping_id = ping_id + 2
            if self._next_ping_id > 0xFFFFFFFF:
                self._next_ping_id = 1 if self.client_side else 2
        else:
            ping_id = int.from_bytes(opaque_data, "big")
            if len(opaque_data) != 4 or ping_id & 1 != self._local_parity:
                raise SPDYError("a SPDY ping id is 4 bytes of this side's parity")
        self._pings_in_flight.add(ping_id)
        self._send(PingFrame(ping_id))
        return ping_id.to_bytes(4, "big")

    def close_connection(
        self,
        error_code: int = GoAwayStatus.OK,
        additional_data: bytes | None = None,
        last_stream_id: int | None = None,
    ) -> None:
        """Send GOAWAY. Streams the peer opened up to ``last_stream_id`` (by
        default, all so far) may finish; later ones are ignored."""
        if last_stream_id is None:
            last_stream_id = self._highest_inbound_id
        self._goaway_sent_last_id = last_stream_id
        self._send(GoAwayFrame(last_stream_id, error_code))

    def acknowledge_received_data(self, acknowledged_size: int, stream_id: int) -> None:
        """Give back DATA bytes the application consumed; WINDOW_UPDATEs follow
        once half a window is free.

        The session's update goes first: a peer that has sent everything but
        its FIN may be waiting on the session window, and some peers
        (spdy-transport) answer a late stream update with RST_STREAM, which
        must not overtake that FIN.
        """
        self._acknowledge_session(acknowledged_size)
        stream = self.streams.get(stream_id)
        if stream is not None and stream.state in CAN_RECEIVE:
            increment = stream.inbound.acknowledge(acknowledged_size)
            if increment:
                self._send(WindowUpdateFrame(stream_id, increment))

    def _acknowledge_session(self, size: int) -> None:
        if self._session_flow:
            increment = self._session_inbound.acknowledge(size)
            if increment:
                self._send(WindowUpdateFrame(0, increment))

    def increment_flow_control_window(
        self, increment: int, stream_id: int | None = None
    ) -> None:
        """Open a receive window by ``increment`` (the session's when
        ``stream_id`` is None, SPDY/3.1 only)."""
        if not 1 <= increment <= MAX_WINDOW:
            raise ValueError(f"window increment {increment} out of range")
        if stream_id is None or stream_id == 0:
            if not self._session_flow:
                raise SPDYError(f"{self.profile.name} has no session window")
            self._session_inbound.window += increment
            self._session_inbound.size += increment
            self._send(WindowUpdateFrame(0, increment))
        else:
            self._stream(stream_id).inbound.window += increment
            self._send(WindowUpdateFrame(stream_id, increment))

    def _stream(self, stream_id: int) -> SPDYStream:
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self._highest_id_of(stream_id):
                raise NoSuchStreamError(stream_id)
            raise StreamClosedError(stream_id)
        return stream

    def _highest_id_of(self, stream_id: int) -> int:
        if stream_id & 1 == self._local_parity:
            return self._highest_outbound_id
        return self._highest_inbound_id

    # ------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> list[ev.Event]:
        """Process bytes from the peer; the events they cause.

        :raises ProtocolError: a session error; the GOAWAY saying so is queued
            and the session takes no more input.
        """
        if self._terminated:
            return []
        if not isinstance(data, bytes):
            data = bytes(data)
        events: list[ev.Event] = []
        try:
            for frame in self._parser.feed(data):
                try:
                    self._handlers[type(frame)](self, frame, events)
                except StreamError as exc:
                    self._stream_error(exc, events)
            self._parser.raise_pending()
            self._inflate_ahead()
        except ProtocolError as exc:
            self._terminated = True
            self.close_connection(exc.error_code)
            raise
        return events

    def _inflate_ahead(self) -> None:
        """Inflate what has come of a header block whose frame is still
        arriving: a zlib bomb costs each read (each slice the Session hands
        us) its own share of the inflating, not all of it in the last one."""
        pending = self._parser.pending_control()
        if pending is None:
            return
        kind, length = pending
        fixed = self._block_offsets.get(kind)
        if fixed is None or length < fixed:
            return  # not a header block, or a frame the parser will refuse
        start = 8 + fixed + self.codec.inflated_ahead
        piece = self._parser.pending_bytes(start)
        if piece:
            self.codec.inflate_ahead(piece, length - fixed)

    def _stream_error(self, exc: StreamError, events: list[ev.Event]) -> None:
        # Reported even for streams the caller never saw (a refused
        # SYN_STREAM, DATA for an unknown stream), so that it can log them.
        stream = self.streams.get(exc.stream_id)
        if stream is not None:
            self._forget(stream)
        events.append(ev.StreamReset(exc.stream_id, exc.error_code, False))
        self._send_rst(exc.stream_id, exc.error_code)

    def _on_syn_stream(self, frame: SynStreamFrame, events: list[ev.Event]) -> None:
        stream_id = frame.stream_id
        # Inflate first, whatever happens next, to keep the zlib state in step.
        headers, found, reason = self.codec.decode(frame.header_block, stream_id)
        if stream_id == 0 or stream_id & 1 == self._local_parity:
            raise ProtocolError(f"SYN_STREAM with stream id {stream_id}")
        if self.client_side:
            self._on_push(frame, headers, found, reason, events)
            return
        if stream_id <= self._highest_inbound_id:
            if stream_id in self.streams:
                raise StreamError(
                    "stream id in use", stream_id, StatusCode.PROTOCOL_ERROR
                )
            raise ProtocolError(f"SYN_STREAM {stream_id} reuses or goes back")
        if (
            self._goaway_sent_last_id is not None
            and stream_id > self._goaway_sent_last_id
        ):
            return  # after GOAWAY new streams are ignored, as the spec allows
        self._highest_inbound_id = stream_id
        if self.open_inbound_streams >= self.config.max_concurrent_streams:
            raise StreamError("too many streams", stream_id, StatusCode.REFUSED_STREAM)
        if found & _REQUIRED_REQUEST != _REQUIRED_REQUEST:
            raise StreamError(
                "request without :method or :path", stream_id, StatusCode.PROTOCOL_ERROR
            )
        stream = self._new_stream(stream_id)
        stream.advance(StreamInput.RECV_SYN_STREAM)
        stream.priority = frame.priority
        stream.remote_headers_received = True
        event = ev.RequestReceived(stream_id, headers, frame.priority)
        events.append(event)
        if frame.flags & FLAG_FIN:
            event.stream_ended = self._end_remote(stream, events)

    def _on_push(
        self,
        frame: SynStreamFrame,
        headers: Headers,
        found: int,
        reason: bytes,
        events: list[ev.Event],
    ) -> None:
        stream_id = frame.stream_id
        if stream_id <= self._highest_inbound_id:
            raise ProtocolError(f"pushed stream {stream_id} reuses or goes back")
        self._highest_inbound_id = stream_id
        parent = self.streams.get(frame.associated_stream_id)
        if not self.config.enable_push:
            raise StreamError("push disabled", stream_id, StatusCode.REFUSED_STREAM)
        if parent is None or frame.associated_stream_id & 1 != self._local_parity:
            raise StreamError(
                "push for a stream that is not open",
                stream_id,
                StatusCode.INVALID_STREAM,
            )
        if self.open_inbound_streams >= self.config.max_concurrent_streams:
            raise StreamError("too many pushes", stream_id, StatusCode.REFUSED_STREAM)
        request = [(n, v) for n, v in headers if n in _PUSH_REQUEST_NAMES]
        if not found & HAS_PATH:
            raise StreamError(
                "push without a path", stream_id, StatusCode.PROTOCOL_ERROR
            )
        if not found & HAS_METHOD:
            request.insert(0, (b":method", b"GET"))
        # Tolerated: pushes without FLAG_UNIDIRECTIONAL (spdy-transport's).
        stream = self._new_stream(stream_id)
        stream.advance(StreamInput.RECV_PUSH)
        stream.associated_stream_id = frame.associated_stream_id
        stream.priority = frame.priority
        stream.push_response = [
            (n, v) for n, v in headers if n not in _PUSH_REQUEST_NAMES
        ]
        stream.push_reason = reason
        events.append(
            ev.PushedStreamReceived(
                stream_id, parent.stream_id, request, frame.priority
            )
        )
        self._push_response_ready(stream, events)
        if frame.flags & FLAG_FIN:
            self._end_remote(stream, events)

    def _push_response_ready(
        self, stream: SPDYStream, events: list[ev.Event]
    ) -> ev.ResponseReceived | None:
        """Report a received push's response once its status is known."""
        if not any(n == b":status" for n, _ in stream.push_response):
            return None
        stream.remote_headers_received = True
        event = ev.ResponseReceived(
            stream.stream_id, stream.push_response, reason=stream.push_reason
        )
        events.append(event)
        stream.push_response = []
        return event

    def _on_syn_reply(self, frame: SynReplyFrame, events: list[ev.Event]) -> None:
        stream_id = frame.stream_id
        headers, found, reason = self.codec.decode(frame.header_block, stream_id)
        stream = self._receiving_stream(stream_id, StreamInput.RECV_HEADERS)
        if stream is None:
            return
        if not self.client_side or stream_id & 1 != self._local_parity:
            raise StreamError(
                "SYN_REPLY to the peer's stream", stream_id, StatusCode.PROTOCOL_ERROR
            )
        if stream.remote_headers_received:
            raise StreamError("second SYN_REPLY", stream_id, StatusCode.STREAM_IN_USE)
        if not found & HAS_STATUS:
            raise StreamError(
                "reply without status", stream_id, StatusCode.PROTOCOL_ERROR
            )
        stream.remote_headers_received = True
        event = ev.ResponseReceived(stream_id, headers, reason=reason)
        events.append(event)
        if frame.flags & FLAG_FIN:
            event.stream_ended = self._end_remote(stream, events)

    def _on_headers(self, frame: HeadersFrame, events: list[ev.Event]) -> None:
        stream_id = frame.stream_id
        headers, found, reason = self.codec.decode(frame.header_block, stream_id)
        stream = self._receiving_stream(stream_id, StreamInput.RECV_HEADERS)
        if stream is None:
            return
        event: ev.ResponseReceived | ev.TrailersReceived | None
        if stream.remote_headers_received:
            event = ev.TrailersReceived(stream_id, headers)
            events.append(event)
        elif stream.associated_stream_id and self.client_side:
            # A push whose status comes after its SYN_STREAM, as SPDY/3 has it.
            stream.push_response.extend(headers)
            stream.push_reason = reason or stream.push_reason
            event = self._push_response_ready(stream, events)
        else:
            raise StreamError(
                "HEADERS before SYN_REPLY", stream_id, StatusCode.PROTOCOL_ERROR
            )
        if frame.flags & FLAG_FIN:
            if event is None:
                raise StreamError(
                    "push ended without a status", stream_id, StatusCode.PROTOCOL_ERROR
                )
            event.stream_ended = self._end_remote(stream, events)

    def _receiving_stream(
        self, stream_id: int, stream_input: StreamInput
    ) -> SPDYStream | None:
        """The stream a received frame is for, or None to drop the frame;
        raises the stream error that an illegal frame calls for."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.advance(stream_input):
            return stream
        if stream_id == 0:
            raise ProtocolError("a stream frame for stream 0")
        if stream_id in self._recent_resets or self._goaway_sent_last_id is not None:
            return None
        if stream is None and stream_id > self._highest_id_of(stream_id):
            raise StreamError(
                "frame for an idle stream", stream_id, StatusCode.INVALID_STREAM
            )
        raise StreamError(
            "frame after the stream closed", stream_id, StatusCode.STREAM_ALREADY_CLOSED
        )

    def _on_data(self, frame: DataFrame, events: list[ev.Event]) -> None:
        length = len(frame.data)
        stream_id = frame.stream_id
        if self._session_flow and not self._session_inbound.consume(length):
            raise ProtocolError("DATA overran the session window")
        try:
            stream = self._receiving_stream(stream_id, StreamInput.RECV_DATA)
            if stream is None:
                self._acknowledge_session(length)
                return
            if not stream.remote_headers_received:
                raise StreamError(
                    "DATA before the reply", stream_id, StatusCode.PROTOCOL_ERROR
                )
            if frame.flags & FLAG_COMPRESS and self.profile.version == 2:
                raise StreamError(
                    "compressed DATA", stream_id, StatusCode.PROTOCOL_ERROR
                )
            if not stream.inbound.consume(length):
                raise StreamError(
                    "DATA overran the window", stream_id, StatusCode.FLOW_CONTROL_ERROR
                )
        except StreamError:
            self._acknowledge_session(length)
            raise
        event = ev.DataReceived(stream_id, frame.data, length)
        events.append(event)
        if frame.flags & FLAG_FIN:
            event.stream_ended = self._end_remote(stream, events)

    def _end_remote(self, stream: SPDYStream, events: list[ev.Event]) -> ev.StreamEnded:
        stream.advance(StreamInput.RECV_END_STREAM)
        if stream.state is StreamState.CLOSED:
            self._forget(stream)
        ended = ev.StreamEnded(stream.stream_id)
        events.append(ended)
        return ended

    def _on_rst_stream(self, frame: RstStreamFrame, events: list[ev.Event]) -> None:
        stream = self.streams.get(frame.stream_id)
        if stream is not None:
            stream.advance(StreamInput.RECV_RST_STREAM)
            self._forget(stream)
        # Reported even for streams already finished (resets crossing our FIN
        # are normal): a refused push tells a server the client wants none.
        events.append(ev.StreamReset(frame.stream_id, frame.status_code, True))

    def _on_settings(self, frame: SettingsFrame, events: list[ev.Event]) -> None:
        changed: dict[int, ev.ChangedSetting] = {}
        for setting, value, flags in frame.settings:
            if flags & SETTINGS_FLAG_PERSISTED:
                continue  # a value we once asked to persist: about us, not the peer
            if setting == SettingId.INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(f"INITIAL_WINDOW_SIZE {value}")
                delta = value - self._remote_initial_window
                self._remote_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif setting == SettingId.MAX_CONCURRENT_STREAMS:
                self._remote_max_concurrent = value
            changed[setting] = ev.ChangedSetting(
                setting, self.remote_settings.get(setting), value
            )
            self.remote_settings[setting] = value
        events.append(ev.RemoteSettingsChanged(changed))

    def _on_ping(self, frame: PingFrame, events: list[ev.Event]) -> None:
        data = frame.ping_id.to_bytes(4, "big")
        if frame.ping_id & 1 != self._local_parity:
            self._send(frame)
            events.append(ev.PingReceived(data))
        elif frame.ping_id in self._pings_in_flight:
            self._pings_in_flight.discard(frame.ping_id)
            events.append(ev.PingAckReceived(data))
        # An unsolicited PING of our own parity is ignored, as the spec says.

    def _on_goaway(self, frame: GoAwayFrame, events: list[ev.Event]) -> None:
        self._goaway_received = True
        last = frame.last_good_stream_id
        events.append(ev.ConnectionTerminated(frame.status_code, last))
        parity = self._local_parity
        for stream_id in sorted(self.streams):
            if stream_id & 1 == parity and stream_id > last:
                self._forget(self.streams[stream_id])
                events.append(
                    ev.StreamReset(stream_id, StatusCode.REFUSED_STREAM, True)
                )

    def _on_window_update(
        self, frame: WindowUpdateFrame, events: list[ev.Event]
    ) -> None:
        stream_id, delta = frame.stream_id, frame.delta_window_size
        if stream_id == 0:
            if not self._session_flow:
                return
            self._session_send_window += delta
            if self._session_send_window > MAX_WINDOW:
                raise ProtocolError("session window over 2**31 - 1")
        else:
            stream = self.streams.get(stream_id)
            if stream is None:
                return  # updates can cross our FIN or RST_STREAM on the wire
            stream.send_window += delta
            if stream.send_window > MAX_WINDOW:
                raise StreamError(
                    "window over 2**31 - 1", stream_id, StatusCode.FLOW_CONTROL_ERROR
                )
        events.append(ev.WindowUpdated(stream_id, delta))

    def _on_ignored(self, frame: Frame, events: list[ev.Event]) -> None:
        if isinstance(frame, UnknownFrame):
            events.append(ev.UnknownFrameReceived(frame.frame_type))
        elif isinstance(frame, CredentialFrame):
            events.append(ev.UnknownFrameReceived(frame.type))

    _handlers: dict[
        type[Frame], Callable[[SPDYConnection, Any, list[ev.Event]], None]
    ] = {
        SynStreamFrame: _on_syn_stream,
        SynReplyFrame: _on_syn_reply,
        HeadersFrame: _on_headers,
        DataFrame: _on_data,
        RstStreamFrame: _on_rst_stream,
        SettingsFrame: _on_settings,
        PingFrame: _on_ping,
        GoAwayFrame: _on_goaway,
        WindowUpdateFrame: _on_window_update,
        NoopFrame: _on_ignored,
        CredentialFrame: _on_ignored,
        UnknownFrame: _on_ignored,
    }
