"""The small adapter that lets `h2.connection.H2Connection` stand where
`tornado_spdy.spdy.SPDYConnection` stands, and the few facts about both cores
that the Tornado layer needs in one place.

Both cores take the same calls and return events with the same names and
attributes; `Session` dispatches on the event classes of both. What differs —
configuration, priorities, the exception classes — is bridged here.

h2 stays the protocol engine: every frame is parsed, checked and answered by
it, and its state machines and windows are the truth. `H2Core` changes only
where h2 costs most on a server's hot path, and each change is tested against
h2's own behaviour:

- DATA (`H2Core.send_data_frames`): h2's checks, state moves and window
  accounting, then each frame queued as its 9-byte header and a view of the
  caller's bytes, not as a hyperframe object copied three times;
- HPACK (`_MemoEncoder`, `_MemoDecoder`): a header list coded without changing
  the table is remembered while the table stays as it was, and a request block
  equal to one h2 has checked skips h2's second check;
- costly header blocks: a block longer than the header list limit on the wire
  is refused before it is decoded; the Huffman-coded strings of a block that
  arrives over several reads are decoded as they come (`tornado_spdy.prefetch`)
  rather than in one piece at its end; h2's check of each received byte of a
  field runs in C (`_reject_illegal_characters`);
- bookkeeping: closed streams are swept every `H2Core.FORGET_EVERY` streams and
  only those closed by a reset are remembered; a graceful GOAWAY lets the
  streams it spares finish; a malformed request resets its stream only.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any, Union

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
import h2.stream
import h2.utilities
import hyperframe.frame
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple, OversizedHeaderListError
from hpack.table import HeaderTable

from tornado_spdy import spdy
from tornado_spdy.prefetch import HuffmanPrefetch, Strings, prefetched
from tornado_spdy.spdy import events as spdy_events
from tornado_spdy.spdy.compression import SENSITIVE_HEADERS

#: A protocol core: h2's connection or ours, driven through the same methods.
Core = Union["H2Core", spdy.SPDYConnection]

#: Errors ``receive_data`` raises for a broken session (GOAWAY already queued).
SESSION_ERRORS = (spdy.ProtocolError, h2.exceptions.ProtocolError)

#: Errors of a sending call on a stream the peer has reset or we closed.
STREAM_GONE = (spdy.StreamClosedError, h2.exceptions.StreamClosedError)

#: The peer's MAX_CONCURRENT_STREAMS stops a new stream.
TOO_MANY_STREAMS = (spdy.TooManyStreamsError, h2.exceptions.TooManyStreamsError)

#: Errors of any sending call (the stream or the session is gone).
SEND_ERRORS = (spdy.SPDYError, h2.exceptions.H2Error)

#: An h2 DATA frame's header: 24-bit length (as 16 + 8 bits), type 0, flags
#: (END_STREAM is 0x1), 31-bit stream id.
_DATA_HEADER = struct.Struct(">HBxBL")

#: The states in which h2's state machines take SEND_DATA without a change
#: or an action (their transition tables say so): there the call is skipped.
_SENDING_CONNECTION = (
    h2.connection.ConnectionState.SERVER_OPEN,
    h2.connection.ConnectionState.CLIENT_OPEN,
)
_SENDING_STREAM = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)

#: RFC 9218's default urgency, used for h2 streams that say nothing.
DEFAULT_URGENCY = 3

#: ``error_code`` values used by the Tornado layer, per core.
CANCEL = {"h2": 0x8, "spdy": spdy.StatusCode.CANCEL}
INTERNAL_ERROR = {"h2": 0x2, "spdy": spdy.StatusCode.INTERNAL_ERROR}
REFUSED_STREAM = {"h2": 0x7, "spdy": spdy.StatusCode.REFUSED_STREAM}
PROTOCOL_ERROR = {"h2": 0x1, "spdy": spdy.StatusCode.PROTOCOL_ERROR}
#: GOAWAY for a peer that abuses the protocol (SPDY has no such status).
ENHANCE_YOUR_CALM = {"h2": 0xB, "spdy": spdy.GoAwayStatus.PROTOCOL_ERROR}


class H2Core(h2.connection.H2Connection):
    """`h2.connection.H2Connection` configured for tornado_spdy.

    :arg client_side: True for the side that sends requests.
    :arg max_concurrent_streams: streams the peer may open at once.
    :arg initial_window_size: our receive window per stream.
    :arg session_window_size: our receive window for the whole connection.
    :arg max_header_list_size: the largest header list we accept.
    :arg max_header_fields: the most fields (and table size updates) of one
        received header block; more is refused as a header list too large
        is (GOAWAY ENHANCE_YOUR_CALM: the HPACK table would no longer be in
        step), after decoding no more than that many.
    :arg enable_push: (client side) whether the server may push.
    :arg max_closed_streams: how many streams closed by a reset h2 remembers
        (to ignore frames still in flight for them). h2 remembers every closed
        stream, 65,536 by default: about 11 MB on a long-lived connection.
    """

    framing = "h2"
    family = "h2"

    #: New inbound streams between two sweeps of h2's closed streams.
    FORGET_EVERY = 16

    encoder: _MemoEncoder
    decoder: _MemoDecoder
    incoming_buffer: _FrameBuffer

    def __init__(
        self,
        client_side: bool,
        max_concurrent_streams: int = 100,
        initial_window_size: int = 65535,
        session_window_size: int = 65535,
        max_header_list_size: int = 64 * 1024,
        enable_push: bool = True,
        max_closed_streams: int = 1000,
        max_header_fields: int = 100,
    ):
        # What we send is built by response_to_headers / request_to_headers:
        # lower-case names, pseudo-headers first, no hop-by-hop fields, and
        # values Tornado has already refused CR and LF in. Checking it again
        # costs a fifth of h2's send_headers. What we receive is checked; h2's
        # one inbound normalization, joining cookie fields, is done by
        # request_from_headers as Tornado wants it.
        config = h2.config.H2Configuration(
            client_side=client_side,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=True,
            normalize_inbound_headers=False,
        )
        self.MAX_CLOSED_STREAMS = max_closed_streams  # read by H2Connection.__init__
        self._goaway_last_id: int | None = None  # our graceful GOAWAY's
        self._until_forget = self.FORGET_EVERY
        super().__init__(config)
        self.encoder = _MemoEncoder()
        self.decoder = _MemoDecoder(max_header_fields)
        self._closed_streams = _ClosedByReset(size_limit=max_closed_streams)
        # Our DATA frames, queued as views after what h2 queued before them.
        self._buffers: list[bytes | memoryview] = []
        self._session_window_size = session_window_size
        # The stream limit is sent as a change, after the first SETTINGS: h2
        # enforces its own limit as a connection error (GOAWAY), also on the
        # streams a client opened before it saw ours; until the client
        # acknowledges it the Session refuses streams over it one by one.
        self._max_concurrent_streams = max_concurrent_streams
        values = {
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
        }
        if client_side:
            values[h2.settings.SettingCodes.ENABLE_PUSH] = int(enable_push)
        self.local_settings = h2.settings.Settings(
            client=client_side, initial_values=values
        )
        # h2 reads the limit from local_settings only when they are changed.
        self.decoder.max_header_list_size = max_header_list_size
        buffer = _FrameBuffer(not client_side, max_header_list_size)
        self.decoder.prefetched = buffer.prefetch.decoded
        buffer.max_frame_size = self.incoming_buffer.max_frame_size
        self.incoming_buffer = buffer

    # h2 treats GOAWAY as the end of everything: sending or receiving one moves
    # its connection to CLOSED, where even the streams the GOAWAY spared can
    # send nothing more. A graceful GOAWAY (NO_ERROR) is therefore sent and
    # received here around h2's state machine, so that those streams finish.

    def close_connection(
        self,
        error_code: int = 0,
        additional_data: bytes | None = None,
        last_stream_id: int | None = None,
    ) -> None:
        """Send GOAWAY. Without an error, a graceful one: streams up to
        ``last_stream_id`` (by default all the peer opened) may finish. A
        later GOAWAY never names a higher stream than an earlier one."""
        if last_stream_id is None:
            last_stream_id = self._last_served_id()
        if error_code:
            super().close_connection(error_code, additional_data, last_stream_id)
            return
        self._goaway_last_id = last_stream_id
        frame = hyperframe.frame.GoAwayFrame(stream_id=0)
        frame.last_stream_id = last_stream_id
        frame.error_code = 0
        frame.additional_data = additional_data or b""
        self._prepare_for_sending([frame])

    def receive_data(self, data: Any) -> list[Any]:
        events = super().receive_data(data)
        self.incoming_buffer.follow_open_block()
        return events

    @property
    def open_inbound_streams(self) -> int:
        """Always 0 for h2's own check: h2 answers a stream over our
        SETTINGS_MAX_CONCURRENT_STREAMS with GOAWAY; the Session refuses it
        alone (RST_STREAM REFUSED_STREAM, RFC 9113 section 5.1.2). Every
        ``FORGET_EVERY`` new streams the count is still taken, for its side
        effect: h2 forgets closed streams then (a walk over all of them,
        too dear for every stream; a closed stream kept a while is about
        half a KiB)."""
        self._until_forget -= 1
        if self._until_forget <= 0:
            self._until_forget = self.FORGET_EVERY
            super().open_inbound_streams  # noqa: B018
        return 0

    def _receive_headers_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        # A block opening a stream (a request: trailers come on open streams)
        # byte for byte the same as a request h2 decoded and checked on this
        # connection, with the HPACK table unchanged since, is the same
        # request: the decoder's memo gives its fields and h2's checks (a
        # fifth of a small request's cost) are not run again.
        checked = (
            not self.config.client_side
            and frame.stream_id not in self.streams
            and self.decoder.checked(frame.data)
        )
        self.config.validate_inbound_headers = not checked
        try:
            frames, events = super()._receive_headers_frame(frame)
        except h2.exceptions.ProtocolError as exc:
            if not self._malformed_message(exc, frame.stream_id):
                raise
            return self._refuse_malformed(frame.stream_id)
        finally:
            self.config.validate_inbound_headers = True
        if not checked and events and type(events[0]) is h2.events.RequestReceived:
            self.decoder.mark_checked(frame.data)
        return frames, events

    def _refuse_malformed(self, stream_id: int) -> tuple[list[Any], list[Any]]:
        # RFC 9113 section 8.1.1: a malformed request or response is a stream
        # error; h2 makes every one a connection error, which would end the
        # other streams (a proxy's other clients) too.
        self.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        event = h2.events.StreamReset(
            stream_id=stream_id,
            error_code=h2.errors.ErrorCodes.PROTOCOL_ERROR,
            remote_reset=False,
        )
        return [], [event]

    def _malformed_message(self, exc: Exception, stream_id: int) -> bool:
        """``exc`` is h2 refusing the fields of a header block it decoded (the
        HPACK state is intact) on a stream it opened: not a decoding error, a
        stream-id or stream-limit error, or a closed connection."""
        stream = self.streams.get(stream_id)
        return (
            type(exc) is h2.exceptions.ProtocolError
            and exc.__cause__ is None
            and stream is not None
            and not stream.closed
            and self.state_machine.state is not h2.connection.ConnectionState.CLOSED
        )

    def _terminate_connection(self, error_code: Any) -> None:
        # h2's GOAWAY for bad input names the highest stream the peer opened;
        # after our graceful GOAWAY that would claim streams we ignored.
        super().close_connection(error_code, last_stream_id=self._last_served_id())

    def _last_served_id(self) -> int:
        if self._goaway_last_id is None:
            return int(self.highest_inbound_stream_id)
        return self._goaway_last_id

    def _receive_goaway_frame(
        self, frame: hyperframe.frame.GoAwayFrame
    ) -> tuple[list[Any], list[Any]]:
        if frame.error_code:
            return super()._receive_goaway_frame(frame)
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors.ErrorCodes.NO_ERROR
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def initiate_connection(self) -> None:
        """Queue the preface, then our stream limit as a SETTINGS change."""
        super().initiate_connection()
        self._after_preface()

    def initiate_upgrade_connection(
        self, settings_header: bytes | None = None
    ) -> bytes | None:
        """h2c by ``Upgrade``: as `initiate_connection`, with the client's
        ``HTTP2-Settings``."""
        result = super().initiate_upgrade_connection(settings_header)
        self._after_preface()
        return result

    def _after_preface(self) -> None:
        self.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self._max_concurrent_streams
            }
        )
        extra = self._session_window_size - 65535
        if extra > 0:
            self.increment_flow_control_window(extra)

    def send_headers(  # type: ignore[override]
        self,
        stream_id: int,
        headers: Any,
        end_stream: bool = False,
        priority: int | None = None,
    ) -> None:
        """h2's send_headers, with a SPDY-style ``priority`` (0 most urgent);
        cookies and credentials are marked never-indexed for HPACK (CRIME)."""
        headers = [
            NeverIndexedHeaderTuple(n, v) if n in SENSITIVE_HEADERS else (n, v)
            for n, v in headers
        ]
        if priority is None:
            super().send_headers(stream_id, headers, end_stream=end_stream)
        else:
            weight = 256 - 32 * min(max(priority, 0), 7)
            super().send_headers(
                stream_id, headers, end_stream=end_stream, priority_weight=weight
            )

    def send_data(
        self,
        stream_id: int,
        data: bytes | memoryview,
        end_stream: bool = False,
        pad_length: int | None = None,
    ) -> None:
        """h2's send_data, for one unpadded frame without h2's frame object:
        the same moves of h2's state machines and windows, and the frame
        queued as its 9-byte header and the data, uncopied until sent. h2's
        own path costs about 27 us a 16 KiB frame here (three copies of the
        data and the frame objects), a third of a download's time. Padding,
        and a frame over the size limit (refused), are left to h2."""
        if pad_length is not None or len(data) > self.max_outbound_frame_size:
            super().send_data(stream_id, data, end_stream, pad_length)
        else:
            self.send_data_frames(stream_id, data, end_stream)

    def send_data_frames(
        self, stream_id: int, data: bytes | memoryview, end_stream: bool = False
    ) -> None:
        """Send ``data`` as DATA frames of at most `max_outbound_frame_size`
        bytes, the last one ending the stream if ``end_stream``; the windows
        must take all of it (h2's errors otherwise, and nothing is sent). One
        call for a chunk of many frames."""
        size = len(data)
        stream = self._get_stream_by_id(stream_id)
        window = min(
            self.outbound_flow_control_window, stream.outbound_flow_control_window
        )
        if size and size > window:
            raise h2.exceptions.FlowControlError(
                f"Cannot send {size} bytes, flow control window is {window}"
            )
        if self.state_machine.state not in _SENDING_CONNECTION:
            self.state_machine.process_input(h2.connection.ConnectionInputs.SEND_DATA)
        if stream.state_machine.state not in _SENDING_STREAM:
            stream.state_machine.process_input(h2.stream.StreamInputs.SEND_DATA)
        if end_stream:
            stream.state_machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        buffers = self._buffers
        if self._data_to_send:  # h2's frames queued before this DATA go first
            buffers.append(memoryview(self._data_to_send))
            self._data_to_send = bytearray()
        start = 0
        frame_size = self.max_outbound_frame_size
        if size > frame_size:
            view = memoryview(data)
            whole = _DATA_HEADER.pack(frame_size >> 8, frame_size & 0xFF, 0, stream_id)
            while size - start > frame_size:
                buffers += (whole, view[start : start + frame_size])
                start += frame_size
            data = view[start:]
        rest = size - start
        buffers += (
            _DATA_HEADER.pack(rest >> 8, rest & 0xFF, end_stream, stream_id),
            data,
        )

    def buffers_to_send(self) -> list[bytes | memoryview]:
        """All the bytes queued for the peer, as buffers: h2's own frames
        and our DATA frames' headers and the caller's data, not copied (see
        `tornado_spdy.spdy.SPDYConnection.buffers_to_send`)."""
        buffers = self._buffers
        if self._data_to_send:
            buffers.append(memoryview(self._data_to_send))
            self._data_to_send = bytearray()
        self._buffers = []
        return buffers

    def data_to_send(self, amount: int | None = None) -> bytes:
        """The bytes queued for the peer (at most ``amount`` of them)."""
        data = b"".join(self.buffers_to_send())
        if amount is not None and len(data) > amount:
            self._data_to_send = bytearray(data[amount:])
            data = data[:amount]
        return data

    def clear_outbound_data_buffer(self) -> None:
        """Drop the bytes queued for sending."""
        super().clear_outbound_data_buffer()
        self._buffers.clear()

    @property
    def can_push(self) -> bool:
        """A push may be promised: we are a server and the client allows pushes."""
        return not self.config.client_side and bool(self.remote_settings.enable_push)

    @property
    def remote_initial_window_size(self) -> int:
        """The window the peer gives each new stream (its SETTINGS)."""
        return int(self.remote_settings.initial_window_size)


_RESETS = frozenset(
    {h2.stream.StreamClosedBy.SEND_RST_STREAM, h2.stream.StreamClosedBy.RECV_RST_STREAM}
)


class _CountedTable(HeaderTable):
    """hpack's dynamic table with a count of its changes: equal counts mean
    equal contents, so an encoding made at one count holds at the other."""

    changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, value)  # type: ignore[attr-defined]


#: Header blocks each HPACK coder remembers while its table is unchanged, and
#: the largest remembered: a block of at most MEMO_BLOCK bytes with at most
#: MEMO_FIELDS fields (a browser's request has about 20). Bounds what a peer
#: can make a connection hold to about 50 KiB.
MEMO_SIZE = 8
MEMO_BLOCK = 1024
MEMO_FIELDS = 64


def _memorable(block: bytes, fields: Any) -> bool:
    return len(block) <= MEMO_BLOCK and len(fields) <= MEMO_FIELDS


class _Memo:
    """What an HPACK coder made while its state (table, limits) stood at one
    value: valid while the state stays, forgotten when it moves."""

    def __init__(self) -> None:
        self._state: Any = None
        self._entries: dict[Any, Any] = {}

    def lookup(self, state: Any, key: Any) -> Any:
        if state != self._state:
            self._entries.clear()
            self._state = state
            return None
        return self._entries.get(key)

    def remember(self, state: Any, key: Any, value: Any) -> None:
        """Keep ``value`` if the state is still the one of the last lookup
        (coding it changed nothing) and there is room."""
        entries = self._entries
        if state == self._state and (key in entries or len(entries) < MEMO_SIZE):
            entries[key] = value


class _MemoEncoder(Encoder):
    """hpack's encoder, remembering the blocks of header lists that it
    encoded without changing its table: while the table stays as it was, the
    same list encodes to the same bytes. Responses repeat their fields (only
    ``date`` changes, once a second), so most are found here."""

    header_table: _CountedTable

    def __init__(self) -> None:
        super().__init__()
        self.header_table = _CountedTable()
        self._memo = _Memo()

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        if table.resized or not huffman or isinstance(headers, dict):
            return super().encode(headers, huffman)
        key = tuple(headers)
        block: bytes | None = self._memo.lookup(table.changes, key)
        if block is not None:
            return block
        block = super().encode(key, huffman)
        # A never-indexed field equals its indexed twin as a tuple: such a
        # list is not remembered, so neither is ever answered for the other.
        if _memorable(block, key) and not any(
            type(field) is NeverIndexedHeaderTuple for field in key
        ):
            self._memo.remember(table.changes, key, block)
        return block


class _FieldLimit(Decoder):
    """hpack's decoder, refusing a block at its representation past
    ``max_header_fields`` (table size updates count too), before decoding
    it, as a header list too large. hpack spends several microseconds on
    each representation, and h2 and Tornado as much again on each field:
    1,500 short fields (within a 64 KiB list) cost 10 ms in one piece."""

    def __init__(self, max_header_fields: int = 100) -> None:
        super().__init__()
        self.max_header_fields = max_header_fields
        self._fields_left = max_header_fields

    def decode(self, data: bytes, raw: bool = False) -> Any:
        self._fields_left = self.max_header_fields
        return super().decode(data, raw)

    def _decode_indexed(self, data: Any) -> Any:
        self._count_field()
        return super()._decode_indexed(data)

    def _decode_literal(self, data: Any, should_index: bool) -> Any:
        self._count_field()
        return super()._decode_literal(data, should_index)

    def _update_encoding_context(self, data: Any) -> Any:
        self._count_field()
        return super()._update_encoding_context(data)

    def _count_field(self) -> None:
        self._fields_left -= 1
        if self._fields_left < 0:
            raise OversizedHeaderListError(
                f"more than {self.max_header_fields} fields in a header block"
            )


class _MemoDecoder(_FieldLimit):
    """hpack's decoder (with `_FieldLimit`), remembering the fields of blocks
    it decoded without changing its table, and whether h2 checked them as a
    request; see `_MemoEncoder`."""

    header_table: _CountedTable

    def __init__(self, max_header_fields: int = 100) -> None:
        super().__init__(max_header_fields)
        self.header_table = _CountedTable()
        self._memo = _Memo()  # block -> (fields, checked as a request)
        #: Strings of the block being received, decoded as they came.
        self.prefetched: Strings = []

    def decode(self, data: bytes, raw: bool = False) -> Any:
        if not raw:
            return super().decode(data, raw)
        found = self._remembered(data)
        if found is not None:
            return list(found[0])
        with prefetched(self.prefetched):
            headers = super().decode(data, raw)
        if _memorable(data, headers):
            self._memo.remember(self._state(), bytes(data), (list(headers), False))
        return headers

    def checked(self, data: bytes) -> bool:
        """``data`` decodes from the memo to fields h2 checked as a request."""
        found = self._remembered(data)
        return found is not None and found[1]

    def mark_checked(self, data: bytes) -> None:
        """h2 checked ``data``'s fields as a request and found them good."""
        found = self._remembered(data)
        if found is not None:
            self._memo.remember(self._state(), data, (found[0], True))

    def _remembered(self, data: bytes) -> Any:
        """The memo's entry for ``data``. A block longer than `MEMO_BLOCK` is
        never remembered, and not hashed to find that out (a 60 KB block
        cost 10 us a lookup)."""
        if len(data) > MEMO_BLOCK:
            return None
        return self._memo.lookup(self._state(), data)

    def _state(self) -> tuple[int, int, int]:
        # What a block's meaning depends on besides its bytes: the table, and
        # the limits the decoder checks it against.
        return (
            self.header_table.changes,
            self.max_allowed_table_size,
            self.max_header_list_size,
        )


class _ClosedByReset(h2.utilities.SizeLimitDict):
    """h2's memory of closed streams, kept only for those a reset closed: a
    frame still in flight for one of them is answered with RST_STREAM, not
    GOAWAY. A stream that ended normally needs no memory (a frame for it is a
    connection error either way), and remembering each one grew a session's
    memory with every request."""

    def __setitem__(self, key: int, value: Any) -> None:
        if value in _RESETS:
            super().__setitem__(key, value)


class _FrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer, refusing an oversized frame from its 9-byte header
    instead of buffering up to 16 MiB of it first, and a header block longer
    on the wire than ``max_header_block_size`` before it is decoded.

    Any header list within SETTINGS_MAX_HEADER_LIST_SIZE fits in that many
    bytes of HPACK: each field costs its name, its value and a few bytes of
    lengths there, against 32 bytes more in the list's size. Only an encoder
    that made its strings longer with Huffman codes could need more. h2 takes
    up to 65 frames of a block (about 1 MiB) and hpack decodes each string
    before it checks the list's size: one such block of Huffman-coded text
    cost 140 ms of CPU, refused afterwards all the same.
    """

    def __init__(self, server: bool, max_header_block_size: int):
        super().__init__(server=server)
        self.max_header_block_size = max_header_block_size
        self.prefetch = HuffmanPrefetch()
        self._following = False  # a header block open across reads
        self._fed = 0  # fragment bytes of the first buffered frame already fed

    def add_data(self, data: Any) -> None:
        super().add_data(data)
        if self._following:
            self._follow()

    def __next__(self) -> Any:
        if len(self._data) >= 9:
            self._validate_frame_length(int.from_bytes(self._data[:3], "big"))
        return super().__next__()

    def follow_open_block(self) -> None:
        """Called once h2 has taken every whole frame: a header block still
        incomplete is followed by `prefetch` from now on, as its bytes come."""
        if self._following:
            return
        if self._headers_buffer:  # its first frames are here, whole
            self.prefetch.reset()
            for frame in self._headers_buffer:
                self.prefetch.feed(frame.data)
        elif len(self._data) >= 9 and self._data[3] in _BLOCK_STARTS:
            self.prefetch.reset()
        else:
            return
        self._following = True
        self._fed = 0
        self._follow()

    def _follow(self) -> None:
        """Feed `prefetch` the fragment bytes of the open block not fed yet,
        from the frames h2 has not taken (the first of them partly fed), up
        to the frame that ends the block."""
        data, position, fed = self._data, 0, self._fed
        while len(data) - position >= 9:
            length = int.from_bytes(data[position : position + 3], "big")
            flags = data[position + 4]
            payload = position + 9
            available = min(length, len(data) - payload)
            bounds = _fragment_bounds(data[position + 3], flags, data, payload, length)
            if bounds is None:
                break  # its pad length has not come yet
            start, end = bounds
            ready = min(end, available)
            if end < start:
                # Not part of a block: h2 ends the connection on it.
                self.prefetch.broken = True
            elif ready > start + fed:
                self.prefetch.feed(data[payload + start + fed : payload + ready])
                fed = ready - start
            if available < length:
                break
            if flags & _END_HEADERS:
                self._following = False
                return
            position, fed = payload + length, 0
        # h2 takes the whole frames before ``position``: this one is next.
        self._fed = fed

    def _update_header_buffer(self, f: Any) -> Any:
        f = super()._update_header_buffer(f)
        if self._headers_buffer:  # a block still waiting for CONTINUATION
            size = sum(len(part.data) for part in self._headers_buffer)
        elif isinstance(f, _BLOCK_FRAMES):
            size = len(f.data)
        else:
            return f
        if size > self.max_header_block_size:
            raise h2.exceptions.DenialOfServiceError(
                f"header block over {self.max_header_block_size} bytes "
                "(the header list limit) on the wire"
            )
        return f


#: Frames that start a header block (the frame buffer joins its CONTINUATIONs
#: into them).
_BLOCK_FRAMES = (hyperframe.frame.HeadersFrame, hyperframe.frame.PushPromiseFrame)

# Frame types and flags of header blocks (RFC 9113 section 6).
_HEADERS, _PUSH_PROMISE, _CONTINUATION = 0x1, 0x5, 0x9
_BLOCK_STARTS = (_HEADERS, _PUSH_PROMISE)
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20


def _fragment_bounds(
    kind: int, flags: int, data: bytearray, payload: int, length: int
) -> tuple[int, int] | None:
    """Where a frame's header block fragment lies in its payload: after the
    pad length, priority or promised stream id, before the padding. None
    while the pad length has not arrived; (0, -1) for a frame that cannot be
    part of a header block."""
    if kind not in (_HEADERS, _PUSH_PROMISE, _CONTINUATION):
        return 0, -1
    if kind == _CONTINUATION:
        return 0, length
    start, padding = 0, 0
    if flags & _PADDED:
        if len(data) <= payload or not length:
            return None if length else (0, -1)
        start, padding = 1, data[payload]
    if kind == _PUSH_PROMISE:
        start += 4
    elif flags & _PRIORITY:
        start += 5
    return start, length - padding


_ILLEGAL_IN_NAME = re.compile(rb"[\x00-\x20A-Z\x7f-\xff]")
_ILLEGAL_IN_VALUE = (b"\x00", b"\n", b"\r")
_SPACES = (0x20, 0x09)


def _reject_illegal_characters(headers: Any, flags: Any) -> Iterator[Any]:
    """h2's check of the characters of received fields (RFC 9113 section
    8.2.1), with h2's errors, in C: h2 loops over every byte in Python, and a
    60,000-byte cookie took 1.5 ms in one piece."""
    for header in headers:
        name, value = header[0], header[1]
        illegal = _ILLEGAL_IN_NAME.search(name)
        if illegal is not None:
            code = name[illegal.start()]
            if 0x41 <= code <= 0x5A:
                raise h2.exceptions.ProtocolError(
                    f"Received uppercase header name {name!r}."
                )
            raise h2.exceptions.ProtocolError(
                f"Illegal character '{chr(code)}' in header name: {name!r}"
            )
        if name.find(b":", 1) != -1:
            raise h2.exceptions.ProtocolError(
                f"Illegal character ':' in header name: {name!r}"
            )
        if value:
            # Three memchr passes: a regular expression is ten times slower.
            if any(map(value.__contains__, _ILLEGAL_IN_VALUE)):
                first = min(i for i in map(value.find, _ILLEGAL_IN_VALUE) if i >= 0)
                raise h2.exceptions.ProtocolError(
                    f"Illegal character '{chr(value[first])}' in header "
                    f"value: {value!r}"
                )
            if value[0] in _SPACES or value[-1] in _SPACES:
                raise h2.exceptions.ProtocolError(
                    f"Received header value surrounded by whitespace {value!r}"
                )
        yield header


#: h2's own check, kept for the test that compares the two.
h2_reject_illegal_characters = getattr(h2.utilities, "_reject_illegal_characters", None)
if h2_reject_illegal_characters is not None:  # h2 >= 4.2; validate_headers calls it
    setattr(h2.utilities, "_reject_illegal_characters", _reject_illegal_characters)  # noqa: B010


def _raw_data_repr(data: bytes | None) -> str:
    """hyperframe's repr of a frame's data (its first 10 bytes in hex, and
    "..." if there are more), from its first 11: h2 formats every frame it
    receives for a trace log line,
    logged or not, and hyperframe turned all of the data into hex first
    (16 us for each 16 KB DATA frame, 52 us for a 60 KB header block)."""
    return h2_raw_data_repr(data[:11] if data else data)


#: hyperframe's own, kept for the test that compares the two.
h2_raw_data_repr = hyperframe.frame._raw_data_repr
setattr(hyperframe.frame, "_raw_data_repr", _raw_data_repr)  # noqa: B010


def core_family(core: Core) -> str:
    """``"h2"`` or ``"spdy"``: which table of error codes applies."""
    return "h2" if isinstance(core, H2Core) else "spdy"


def framing_of(core: Core) -> str:
    """The protocol id of a core: ``"h2"``, ``"spdy/3.1"``, ``"spdy/3"``, ..."""
    if isinstance(core, H2Core):
        return "h2"
    return core.profile.name


def request_priority(core: Core, event: Any) -> int:
    """A received request's urgency, 0 (highest) to 7, from either core.

    SPDY carries it in SYN_STREAM (0-3 in SPDY/2, scaled to 0-7); h2 in the
    PRIORITY information (weight) or RFC 9218's ``priority`` header (``u=``),
    which wins when present.
    """
    if isinstance(core, spdy.SPDYConnection):
        return int(event.priority * 7 // core.profile.lowest_priority)
    for name, value in event.headers:
        if name == b"priority":
            for part in value.split(b","):
                part = part.strip()
                if part.startswith(b"u=") and part[2:].isdigit():
                    return min(int(part[2:]), 7)
    update = getattr(event, "priority_updated", None)
    if update is not None and update.weight:
        return 7 - min((int(update.weight) - 1) // 32, 7)
    return DEFAULT_URGENCY


def wire_priority(core: Core, urgency: int) -> int:
    """An urgency (0 highest to 7) in the core's own range: SPDY/2 has 0-3."""
    if isinstance(core, spdy.SPDYConnection):
        return round(urgency * core.profile.lowest_priority / 7)
    return urgency


def _classes(name: str) -> list[type]:
    """The event classes called ``name`` in h2 and in the SPDY core (some,
    such as ``PriorityUpdated``, exist only in h2)."""
    found = (getattr(h2.events, name, None), getattr(spdy_events, name, None))
    return [cls for cls in found if cls is not None]


def event_table(handlers: dict[str, Any]) -> dict[type, Any]:
    """Map both cores' event classes to ``handlers[name]``; others are ignored."""
    table: dict[type, Any] = {}
    for name, handler in handlers.items():
        classes = _classes(name)
        if not classes:
            raise ValueError(f"no event is called {name!r}")
        for cls in classes:
            table[cls] = handler
    return table
