"""SPDY frames as objects that serialize themselves, and an incremental parser.

Frames carry header blocks compressed (`HeaderCodec` turns them into header
lists); the layouts that differ between versions are read from the
`VersionProfile`. The parser accepts input in pieces of any size and hands
DATA payloads on as memoryview slices of its input, without copying them.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import ClassVar

from .errors import FrameSizeError, ProtocolError
from .profile import VersionProfile

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM
FLAG_COMPRESS = 0x02  # DATA, SPDY/2 only; never sent, refused when received
FLAG_SETTINGS_CLEAR = 0x01  # SETTINGS: clear previously persisted settings

SETTINGS_FLAG_PERSIST_VALUE = 0x01
SETTINGS_FLAG_PERSISTED = 0x02

MAX_LENGTH = 0xFFFFFF  # the 24-bit length field
MAX_STREAM_ID = 0x7FFFFFFF

_HEADER = struct.Struct(">II")
_CONTROL = struct.Struct(">HHI")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TWO_U32 = struct.Struct(">II")


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    NOOP = 5  # SPDY/2
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9
    CREDENTIAL = 10  # SPDY/3


class SettingId(enum.IntEnum):
    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8  # SPDY/3


def data_frame_header(stream_id: int, flags: int, length: int) -> bytes:
    """The 8 bytes that precede a DATA payload."""
    return _HEADER.pack(stream_id & MAX_STREAM_ID, (flags << 24) | length)


def _control(profile: VersionProfile, kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError("control frame payload over 2**24 - 1 bytes")
    head = _CONTROL.pack(0x8000 | profile.version, kind, (flags << 24) | len(payload))
    return head + payload


class Frame:
    """Base class of all frames."""

    __slots__ = ()
    type: ClassVar[int]

    def serialize(self, profile: VersionProfile) -> bytes:
        raise NotImplementedError


class DataFrame(Frame):
    __slots__ = ("stream_id", "data", "flags")
    type = 0

    def __init__(self, stream_id: int, data: bytes | memoryview = b"", flags: int = 0):
        self.stream_id = stream_id
        self.data = data
        self.flags = flags

    def serialize(self, profile: VersionProfile | None = None) -> bytes:
        return data_frame_header(self.stream_id, self.flags, len(self.data)) + self.data

    def __repr__(self) -> str:
        return (
            f"DataFrame(stream_id={self.stream_id}, flags={self.flags:#x}, "
            f"length={len(self.data)})"
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DataFrame)
            and (self.stream_id, self.flags) == (other.stream_id, other.flags)
            and bytes(self.data) == bytes(other.data)
        )


class _Simple(Frame):
    """Frames compared and printed by their fields."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]

    def _values(self) -> tuple[object, ...]:
        return tuple(_plain(getattr(self, name)) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Simple)
            and type(other) is type(self)
            and (self._values() == other._values())
        )

    def __repr__(self) -> str:
        values = zip(self._fields, self._values(), strict=True)
        args = ", ".join(f"{n}={v!r}" for n, v in values)
        return f"{type(self).__name__}({args})"


def _plain(value: object) -> object:
    return bytes(value) if isinstance(value, memoryview) else value


class SynStreamFrame(_Simple):
    __slots__ = _fields = (
        "stream_id",
        "associated_stream_id",
        "priority",
        "header_block",
        "flags",
        "slot",
    )
    type = FrameType.SYN_STREAM

    def __init__(
        self,
        stream_id: int,
        associated_stream_id: int = 0,
        priority: int = 0,
        header_block: bytes | memoryview = b"",
        flags: int = 0,
        slot: int = 0,
    ):
        self.stream_id = stream_id
        self.associated_stream_id = associated_stream_id
        self.priority = priority
        self.header_block = header_block
        self.flags = flags
        self.slot = slot

    def serialize(self, profile: VersionProfile) -> bytes:
        shift = 16 - profile.priority_bits
        word = (min(self.priority, profile.lowest_priority) << shift) | (
            self.slot & 0xFF if profile.has_slot else 0
        )
        fixed = _TWO_U32.pack(
            self.stream_id & MAX_STREAM_ID, self.associated_stream_id & MAX_STREAM_ID
        ) + _U16.pack(word)
        return _control(profile, self.type, self.flags, fixed + self.header_block)


class _BlockFrame(_Simple):
    """SYN_REPLY and HEADERS: a stream id and a header block."""

    __slots__ = _fields = ("stream_id", "header_block", "flags")

    def __init__(
        self, stream_id: int, header_block: bytes | memoryview = b"", flags: int = 0
    ):
        self.stream_id = stream_id
        self.header_block = header_block
        self.flags = flags

    def serialize(self, profile: VersionProfile) -> bytes:
        fixed = _U32.pack(self.stream_id & MAX_STREAM_ID) + bytes(profile.reply_padding)
        return _control(profile, self.type, self.flags, fixed + self.header_block)


class SynReplyFrame(_BlockFrame):
    __slots__ = ()
    type = FrameType.SYN_REPLY


class HeadersFrame(_BlockFrame):
    __slots__ = ()
    type = FrameType.HEADERS


class RstStreamFrame(_Simple):
    __slots__ = _fields = ("stream_id", "status_code")
    type = FrameType.RST_STREAM

    def __init__(self, stream_id: int, status_code: int):
        self.stream_id = stream_id
        self.status_code = status_code

    def serialize(self, profile: VersionProfile) -> bytes:
        payload = _TWO_U32.pack(self.stream_id & MAX_STREAM_ID, self.status_code)
        return _control(profile, self.type, 0, payload)


class SettingsFrame(_Simple):
    """SETTINGS; ``settings`` is a list of ``(id, value, flags)``."""

    __slots__ = _fields = ("settings", "flags")
    type = FrameType.SETTINGS

    def __init__(
        self, settings: list[tuple[int, int, int]] | None = None, flags: int = 0
    ):
        self.settings = settings if settings is not None else []
        self.flags = flags

    def serialize(self, profile: VersionProfile) -> bytes:
        entry = struct.Struct(profile.settings_id_format)
        payload = [_U32.pack(len(self.settings))]
        for setting_id, value, flags in self.settings:
            payload.append(entry.pack((flags << 24) | setting_id) + _U32.pack(value))
        return _control(profile, self.type, self.flags, b"".join(payload))


class NoopFrame(_Simple):
    __slots__ = _fields = ()
    type = FrameType.NOOP

    def serialize(self, profile: VersionProfile) -> bytes:
        return _control(profile, self.type, 0, b"")


class PingFrame(_Simple):
    __slots__ = _fields = ("ping_id",)
    type = FrameType.PING

    def __init__(self, ping_id: int):
        self.ping_id = ping_id

    def serialize(self, profile: VersionProfile) -> bytes:
        return _control(profile, self.type, 0, _U32.pack(self.ping_id))


class GoAwayFrame(_Simple):
    __slots__ = _fields = ("last_good_stream_id", "status_code")
    type = FrameType.GOAWAY

    def __init__(self, last_good_stream_id: int, status_code: int = 0):
        self.last_good_stream_id = last_good_stream_id
        self.status_code = status_code

    def serialize(self, profile: VersionProfile) -> bytes:
        # Always the 8-byte form: SPDY/2 peers send and expect the status too.
        payload = _TWO_U32.pack(
            self.last_good_stream_id & MAX_STREAM_ID, self.status_code
        )
        return _control(profile, self.type, 0, payload)


class WindowUpdateFrame(_Simple):
    __slots__ = _fields = ("stream_id", "delta_window_size")
    type = FrameType.WINDOW_UPDATE

    def __init__(self, stream_id: int, delta_window_size: int):
        self.stream_id = stream_id
        self.delta_window_size = delta_window_size

    def serialize(self, profile: VersionProfile) -> bytes:
        payload = _TWO_U32.pack(
            self.stream_id & MAX_STREAM_ID, self.delta_window_size & MAX_STREAM_ID
        )
        return _control(profile, self.type, 0, payload)


class CredentialFrame(_Simple):
    """CREDENTIAL (SPDY/3): kept whole, never interpreted."""

    __slots__ = _fields = ("payload",)
    type = FrameType.CREDENTIAL

    def __init__(self, payload: bytes | memoryview = b""):
        self.payload = payload

    def serialize(self, profile: VersionProfile) -> bytes:
        return _control(profile, self.type, 0, bytes(self.payload))


class UnknownFrame(_Simple):
    """A control frame type this version does not define."""

    __slots__ = _fields = ("frame_type", "flags", "payload")

    def __init__(
        self, frame_type: int, flags: int = 0, payload: bytes | memoryview = b""
    ):
        self.frame_type = frame_type
        self.flags = flags
        self.payload = payload

    def serialize(self, profile: VersionProfile) -> bytes:
        return _control(profile, self.frame_type, self.flags, bytes(self.payload))


# Parsing: one function per control frame type; each checks the fixed length.


def _need(payload: memoryview, kind: str, size: int, exact: bool = False) -> None:
    if len(payload) < size or (exact and len(payload) != size):
        raise FrameSizeError(f"{kind} frame of {len(payload)} bytes")


def _parse_syn_stream(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    _need(payload, "SYN_STREAM", 10)
    stream_id, associated = _TWO_U32.unpack_from(payload)
    word = _U16.unpack_from(payload, 8)[0]
    priority = word >> (16 - p.priority_bits)
    slot = word & 0xFF if p.has_slot else 0
    return SynStreamFrame(
        stream_id & MAX_STREAM_ID,
        associated & MAX_STREAM_ID,
        priority,
        payload[10:],
        flags,
        slot,
    )


Parser = Callable[[VersionProfile, int, memoryview], Frame]


def _parse_block(cls: type[_BlockFrame]) -> Parser:
    def parse(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
        fixed = 4 + p.reply_padding
        _need(payload, FrameType(cls.type).name, fixed)
        stream_id = _U32.unpack_from(payload)[0] & MAX_STREAM_ID
        return cls(stream_id, payload[fixed:], flags)

    return parse


def _parse_rst_stream(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    _need(payload, "RST_STREAM", 8, exact=True)
    stream_id, status = _TWO_U32.unpack_from(payload)
    return RstStreamFrame(stream_id & MAX_STREAM_ID, status)


def _parse_settings(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    _need(payload, "SETTINGS", 4)
    count = _U32.unpack_from(payload)[0]
    _need(payload, "SETTINGS", 4 + 8 * count, exact=True)
    entry = struct.Struct(p.settings_id_format)
    settings = []
    for offset in range(4, 4 + 8 * count, 8):
        word = entry.unpack_from(payload, offset)[0]
        value = _U32.unpack_from(payload, offset + 4)[0]
        settings.append((word & 0xFFFFFF, value, word >> 24))
    return SettingsFrame(settings, flags)


def _parse_noop(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    return NoopFrame()


def _parse_ping(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    _need(payload, "PING", 4, exact=True)
    return PingFrame(_U32.unpack_from(payload)[0])


def _parse_goaway(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    if p.short_goaway and len(payload) == 4:
        return GoAwayFrame(_U32.unpack_from(payload)[0] & MAX_STREAM_ID)
    _need(payload, "GOAWAY", 8, exact=True)
    last_good, status = _TWO_U32.unpack_from(payload)
    return GoAwayFrame(last_good & MAX_STREAM_ID, status)


def _parse_window_update(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    _need(payload, "WINDOW_UPDATE", 8, exact=True)
    stream_id, delta = _TWO_U32.unpack_from(payload)
    return WindowUpdateFrame(stream_id & MAX_STREAM_ID, delta & MAX_STREAM_ID)


def _parse_credential(p: VersionProfile, flags: int, payload: memoryview) -> Frame:
    return CredentialFrame(payload)


_PARSERS: dict[int, Parser] = {
    FrameType.SYN_STREAM: _parse_syn_stream,
    FrameType.SYN_REPLY: _parse_block(SynReplyFrame),
    FrameType.RST_STREAM: _parse_rst_stream,
    FrameType.SETTINGS: _parse_settings,
    FrameType.NOOP: _parse_noop,
    FrameType.PING: _parse_ping,
    FrameType.GOAWAY: _parse_goaway,
    FrameType.HEADERS: _parse_block(HeadersFrame),
    FrameType.WINDOW_UPDATE: _parse_window_update,
    FrameType.CREDENTIAL: _parse_credential,
}


def parsers_for(profile: VersionProfile) -> dict[int, Parser]:
    """The control frame types ``profile`` defines, with their parse functions."""
    parsers = dict(_PARSERS)
    if not profile.has_noop:
        del parsers[FrameType.NOOP]
    if not profile.has_credential:
        del parsers[FrameType.CREDENTIAL]
    return parsers


class FrameParser:
    """Turns bytes, fed in pieces of any size, into frames.

    :arg profile: the session's version; a control frame of another version is
        a session error.
    :arg max_frame_size: the longest frame payload accepted; longer is a
        session error (`FrameSizeError`), found from the 8-byte header alone.
    """

    def __init__(self, profile: VersionProfile, max_frame_size: int = MAX_LENGTH):
        self.profile = profile
        self.max_frame_size = max_frame_size
        self._parsers = parsers_for(profile)
        self._pending: list[bytes] = []
        self._pending_length = 0
        self._needed = 8
        self._error: ProtocolError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Parse every complete frame in what was fed so far.

        A malformed frame after good ones in the same input is reported by
        `raise_pending`, once the good ones are handled, so that the outcome
        does not depend on how the bytes were split.
        """
        self.raise_pending()
        if self._pending:
            self._pending.append(data)
            self._pending_length += len(data)
            if self._pending_length < self._needed:
                return []
            data = b"".join(self._pending)
            self._pending.clear()
        view = memoryview(data)
        end = len(data)
        position = 0
        frames: list[Frame] = []
        append = frames.append
        unpack = _HEADER.unpack_from
        while end - position >= 8:
            first, second = unpack(view, position)
            length = second & MAX_LENGTH
            if length > self.max_frame_size:
                return self._fail(
                    frames,
                    FrameSizeError(
                        f"frame of {length} bytes over the limit of "
                        f"{self.max_frame_size}"
                    ),
                )
            start = position + 8
            if end - start < length:
                break
            position = start + length
            if first & 0x80000000:
                try:
                    frame = self._control(first, second >> 24, view[start:position])
                except ProtocolError as exc:
                    return self._fail(frames, exc)
                append(frame)
            else:
                append(DataFrame(first, view[start:position], second >> 24))
        if position < end:
            rest = data[position:]
            self._pending = [rest]
            self._pending_length = len(rest)
            self._needed = 8
            if len(rest) >= 8:
                self._needed = 8 + (_HEADER.unpack_from(rest)[1] & MAX_LENGTH)
        else:
            self._pending_length = 0
        return frames

    def pending_control(self) -> tuple[int, int] | None:
        """The type and length of the control frame of this version that has
        begun to arrive (its header is here), if any."""
        if self._pending_length < 8 or len(self._pending[0]) < 8:
            return None
        first, second = _HEADER.unpack_from(self._pending[0])
        if not first & 0x80000000 or (first >> 16) & 0x7FFF != self.profile.version:
            return None
        return first & 0xFFFF, second & MAX_LENGTH

    def pending_bytes(self, start: int) -> bytes:
        """What has come of the pending frame from offset ``start`` (its
        header included) on: the newest pieces only are joined."""
        pieces = []
        end = self._pending_length
        for piece in reversed(self._pending):
            if end <= start:
                break
            begin = end - len(piece)
            pieces.append(piece[max(start - begin, 0) :])
            end = begin
        pieces.reverse()
        return b"".join(pieces)

    def _fail(self, frames: list[Frame], error: ProtocolError) -> list[Frame]:
        """Stop at a bad frame: raise now, or after the good frames before it."""
        self._pending.clear()
        self._pending_length = 0
        if not frames:
            raise error
        self._error = error
        return frames

    def raise_pending(self) -> None:
        """Raise the error found after the frames the last `feed` returned."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _control(self, first: int, flags: int, payload: memoryview) -> Frame:
        version = (first >> 16) & 0x7FFF
        kind = first & 0xFFFF
        if version != self.profile.version:
            raise ProtocolError(
                f"SPDY/{version} frame on a {self.profile.name} session"
            )
        parse = self._parsers.get(kind)
        if parse is None:
            return UnknownFrame(kind, flags, payload)
        return parse(self.profile, flags, payload)
