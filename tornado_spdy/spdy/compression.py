"""Header blocks: the name/value list, compressed with zlib and each version's
preset dictionary, one zlib context per direction for the whole session.

Inflating is bounded: a block whose header data exceeds
``max_header_list_size`` (or holds more than ``max_header_fields`` fields) is
refused for its stream, yet inflated to the end so that the session's zlib
state stays in step with the peer's. A block that would inflate past
``max_inflate_size`` costs too much to follow and ends the session.

On our API header names are h2's (``:method``, ``:path``, ``:scheme``,
``:authority``, ``:status``); the codec renames them to the version's names on
the way out and back on the way in, in the same pass that (de)serializes them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import Any

from .errors import HeaderBlockError, HeaderListTooLarge, StatusCode, StreamError
from .profile import CONNECTION_HEADERS, REASONS, Headers, VersionProfile

HeaderInput = Iterable[tuple[bytes | str, bytes | str]]

# Our own compressor keeps a small window: 2 KiB of history (the dictionary
# still fits) and memLevel 1 cost about 15 KiB a session instead of 262 KiB.
# Peers inflate any window up to 32 KiB, so this is only our choice.
COMPRESS_WINDOW_BITS = 11
COMPRESS_MEM_LEVEL = 1

_DRAIN_CHUNK = 64 * 1024


#: Header values never compressed (CRIME): an attacker who can add data to a
#: request would otherwise learn them from the compressed length.
SENSITIVE_HEADERS = frozenset((b"cookie", b"authorization", b"proxy-authorization"))

# Bits of `HeaderCodec.decode`'s second result: which pseudo-headers a block had.
HAS_METHOD = 1
HAS_PATH = 2
HAS_STATUS = 4
HAS_AUTHORITY = 8
_HAS_HOST = 16  # a plain ``host`` header (where ``:authority`` is another name)
_PSEUDO_BITS = {
    b":method": HAS_METHOD,
    b":path": HAS_PATH,
    b":status": HAS_STATUS,
    b":authority": HAS_AUTHORITY,
    b"host": _HAS_HOST,
}


class HeaderCodec:
    """One session's header compression, both directions.

    :arg profile: the SPDY version.
    :arg max_header_list_size: the most inflated header-block bytes accepted for
        one stream.
    :arg max_header_fields: the most name/value pairs accepted in one block.
    :arg max_inflate_size: the most a block may inflate to before the session
        is ended rather than followed.
    :arg compression_level: zlib level of our own blocks.
    :arg sensitive_headers: names whose values are sent uncompressed and are
        never matched against (CRIME): cookies and credentials by default.
    """

    def __init__(
        self,
        profile: VersionProfile,
        max_header_list_size: int = 64 * 1024,
        max_header_fields: int = 100,
        max_inflate_size: int = 1024 * 1024,
        compression_level: int = 6,
        sensitive_headers: frozenset[bytes] = SENSITIVE_HEADERS,
    ):
        self.profile = profile
        self.sensitive_headers = sensitive_headers
        self.max_header_list_size = max_header_list_size
        self.max_header_fields = max_header_fields
        self.max_inflate_size = max(max_inflate_size, max_header_list_size)
        self.compression_level = compression_level
        self._length = struct.Struct(">H" if profile.length_size == 2 else ">I")
        self._status_name = profile.wire_names[b":status"]
        # Received names that need more than a check: pseudo-headers in this
        # version's spelling -> their h2 name, and the connection headers.
        self._special: dict[bytes, bytes] = dict(profile.h2_names)
        self._special.update((name, b"") for name in CONNECTION_HEADERS)
        self._special.setdefault(b"host", b"host")
        # Shared by every session of this version: what each name seen so far
        # stands for, so that a field costs one lookup, and whole blocks seen
        # lately, since the same requests and responses recur.
        memo = _MEMOS.get(profile.name)
        if memo is None:
            memo = _MEMOS[profile.name] = _Memo()
        self._names_in = memo.names_in
        self._names_out = memo.names_out
        self._blocks_in = memo.blocks_in
        self._blocks_out = memo.blocks_out
        # Created on first use: an idle session holds no zlib state.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._ahead: _Inflating | None = None  # a block whose frame is arriving

    # ----------------------------------------------------------------- out

    def encode(
        self,
        headers: HeaderInput,
        defaults: Iterable[tuple[bytes, bytes]] = (),
    ) -> bytes:
        """Serialize and compress a header list.

        Names are lower-cased and h2 pseudo-header names renamed to this
        version's; hop-by-hop headers are dropped; values of a repeated name are
        joined with NUL into one field, as SPDY requires; ``defaults`` (wire
        names) fill in what is missing; a bare ``:status`` code gets its reason
        phrase. Names and values may be str (UTF-8 encoded, as h2 does).

        :raises ValueError: an empty name, a value containing NUL, or a field
            longer than the version's lengths allow (SPDY/2: 65,535 bytes).
        """
        items = tuple(headers)
        key: Any = (items, tuple(defaults), self.sensitive_headers)
        try:
            raw = self._blocks_out.get(key)
        except TypeError:  # an unhashable header list: not remembered
            key = raw = None
        if raw is None:
            raw = self._serialize(items, defaults)
            if key is not None and len(raw[0]) <= _BLOCK_MEMO_SIZE:
                _remember(self._blocks_out, key, raw)
        return self.compress(*raw)

    def _serialize(
        self, headers: HeaderInput, defaults: Iterable[tuple[bytes, bytes]]
    ) -> tuple[bytes, tuple[tuple[int, int], ...]]:
        """The serialized block, and where its sensitive values lie in it."""
        names = self._names_out
        fields: dict[bytes, bytes] = {}
        for name, value in headers:
            if type(name) is not bytes:
                name = _to_bytes(name)
            if type(value) is not bytes:
                value = _to_bytes(value)
            wire_name = names.get(name)
            if wire_name is None:
                wire_name = self._learn_out(name)
            if not wire_name:
                continue
            name = wire_name
            if b"\0" in value:
                raise ValueError(f"header {name!r}: NUL in value")
            previous = fields.get(name)
            if previous is None or not previous:
                fields[name] = value
            elif value:
                # SPDY joins repeated names with NUL and forbids empty parts.
                fields[name] = previous + b"\0" + value
        for name, value in defaults:
            fields.setdefault(name, value)
        status = fields.get(self._status_name)
        if status is not None and b" " not in status:
            reason = REASONS.get(status)
            if reason is not None:
                fields[self._status_name] = reason
        pack = self._length.pack
        size = self._length.size
        parts = [pack(len(fields))]
        offset = size
        secrets: list[tuple[int, int]] = []
        sensitive = self.sensitive_headers
        try:
            for name, value in fields.items():
                parts += (pack(len(name)), name, pack(len(value)), value)
                offset += 2 * size + len(name)
                if name in sensitive and value:
                    secrets.append((offset, offset + len(value)))
                offset += len(value)
        except struct.error:
            raise ValueError(
                f"a header field longer than {self.profile.name}'s "
                f"{8 * size}-bit lengths allow"
            ) from None
        return b"".join(parts), tuple(secrets)

    def _learn_out(self, name: bytes) -> bytes:
        """The wire name of a name given to `encode` (b"" to drop it)."""
        if not name:
            raise ValueError("empty header name")
        lower = name.lower()
        wire_name = self.profile.wire_names.get(lower, lower)
        if wire_name in CONNECTION_HEADERS:
            wire_name = b""
        if len(self._names_out) < _NAME_CACHE:
            self._names_out[name] = wire_name
        return wire_name

    def compress(self, raw: bytes, secrets: tuple[tuple[int, int], ...] = ()) -> bytes:
        """Compress a serialized header block, ending at a sync flush.

        The ``secrets`` ranges of ``raw`` (values of `sensitive_headers`) are
        never compressed (CRIME): before each, a full flush empties the
        compressor's history, and the value goes out in stored blocks the
        compressor never sees, so it is matched against nothing, then or later.
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.compression_level,
                zlib.DEFLATED,
                COMPRESS_WINDOW_BITS,
                COMPRESS_MEM_LEVEL,
                zdict=self.profile.dictionary,
            )
        if not secrets:
            return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)
        out = []
        position = 0
        for start, end in secrets:
            out.append(compressor.compress(raw[position:start]))
            out.append(compressor.flush(zlib.Z_FULL_FLUSH))
            out.append(_stored_blocks(raw[start:end]))
            position = end
        out.append(compressor.compress(raw[position:]))
        out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
        return b"".join(out)

    # ------------------------------------------------------------------ in

    def decode(
        self, block: bytes | memoryview, stream_id: int
    ) -> tuple[Headers, int, bytes]:
        """Inflate and parse a header block received for ``stream_id``.

        :returns: the headers with h2 names (``:status`` the code alone), the
            ``HAS_*`` bits of the pseudo-headers found, and the reason phrase
            of the status (b"" if none).
        :raises HeaderListTooLarge: over the limits (the zlib state is in sync).
        :raises StreamError: a malformed list (PROTOCOL_ERROR for the stream).
        :raises HeaderBlockError: zlib failed; the session cannot go on.
        """
        raw = self.inflate(block, stream_id)
        known = self._blocks_in.get(raw)
        if known is not None and known[2] <= self.max_header_fields:
            return list(known[0]), known[1], known[3]
        headers, found, reason = self.parse(raw, stream_id)
        if len(raw) <= _BLOCK_MEMO_SIZE:
            count = self._length.unpack_from(raw)[0]
            _remember(self._blocks_in, raw, (tuple(headers), found, count, reason))
        return headers, found, reason

    def inflate(self, block: bytes | memoryview, stream_id: int) -> bytes:
        """Inflate one block, bounded by ``max_header_list_size``; the part
        `inflate_ahead` took while its frame arrived is not fed again.

        A compressed block larger than the limit allows (stored blocks add 5
        bytes in 64 KiB) is garbage or padding meant to burn CPU in zlib:
        following it is refused outright, which ends the session.
        """
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            self._check_block_length(len(block))
            ahead = _Inflating()
        self._inflate(ahead, block[ahead.fed :])
        if ahead.refused:
            raise HeaderListTooLarge(
                f"header block over {self.max_header_list_size} bytes",
                stream_id,
                StatusCode.FRAME_TOO_LARGE,
            )
        return b"".join(ahead.raw)  # one piece: that piece, not a copy

    def inflate_ahead(self, piece: bytes | memoryview, block_length: int) -> None:
        """Inflate ``piece``, the next bytes of a ``block_length``-byte block
        whose frame is still arriving; `inflate` finishes the block. A zlib
        bomb then costs each slice of its sender's input that slice's worth
        of inflating, not all of it in the slice that ends the frame.

        :raises HeaderBlockError: as `inflate` would for the whole block.
        """
        ahead = self._ahead
        if ahead is None:
            self._check_block_length(block_length)
            ahead = self._ahead = _Inflating()
        self._inflate(ahead, piece)

    @property
    def inflated_ahead(self) -> int:
        """Bytes of the block still arriving that `inflate_ahead` took."""
        return self._ahead.fed if self._ahead is not None else 0

    def _check_block_length(self, length: int) -> None:
        if length > self.max_header_list_size + _BLOCK_OVERHEAD:
            raise HeaderBlockError(
                f"header block of {length} bytes for a "
                f"{self.max_header_list_size}-byte limit"
            )

    def _inflate(self, block: _Inflating, data: bytes | memoryview) -> None:
        """Inflate ``data`` into ``block``; past the limit, on to the end of
        the data without keeping it, to stay in sync."""
        decompressor = self._decompressor
        if decompressor is None:
            # wbits 0: take the window from the stream header, whatever the peer's.
            decompressor = self._decompressor = zlib.decompressobj(
                0, zdict=self.profile.dictionary
            )
        block.fed += len(data)
        try:
            if not block.refused:
                room = self.max_header_list_size + 1 - block.inflated
                out = decompressor.decompress(data, room)
                _check_not_ended(decompressor)
                block.raw.append(out)
                block.inflated += len(out)
                if len(out) < room and not decompressor.unconsumed_tail:
                    return
                block.refused = True
                block.raw.clear()
                data = decompressor.unconsumed_tail
            block.inflated = self._drain(decompressor, data, block.inflated)
        except zlib.error as exc:
            raise HeaderBlockError(f"header block does not inflate: {exc}") from None

    def _drain(
        self, decompressor: zlib._Decompress, data: bytes | memoryview, inflated: int
    ) -> int:
        """Inflate ``data`` of a refused block, discarding it, to stay in sync;
        the block's inflated size so far."""
        while True:
            produced = len(decompressor.decompress(data, _DRAIN_CHUNK))
            _check_not_ended(decompressor)
            inflated += produced
            if inflated > self.max_inflate_size:
                raise HeaderBlockError(
                    f"header block inflates past {self.max_inflate_size} bytes"
                )
            data = decompressor.unconsumed_tail
            # Output space left over and no input left: all of it is out.
            if produced < _DRAIN_CHUNK and not data:
                return inflated

    def _learn_in(self, name: bytes) -> tuple[bytes | None, int]:
        """What a received name stands for: (h2 name or None, HAS_* bit)."""
        if not name or (not name.islower() and name != name.lower()):
            raise ValueError("empty or upper-case header name")
        h2_name = self._special.get(name)
        if h2_name is None:
            entry: tuple[bytes | None, int] = (name, 0)
        elif not h2_name or h2_name == b":version":
            entry = (None, _DROP)
        else:
            entry = (h2_name, _PSEUDO_BITS.get(h2_name, 0) or _RENAMED)
        if len(self._names_in) < _NAME_CACHE:
            self._names_in[name] = entry
        return entry

    def parse(self, raw: bytes, stream_id: int) -> tuple[Headers, int, bytes]:
        """Parse an inflated header block: one pair per NUL-separated value,
        names in h2's spelling; see `decode`."""
        size = self._length.size
        unpack = self._length.unpack_from
        names = self._names_in
        headers: Headers = []
        found = 0
        reason = b""
        try:
            count = unpack(raw)[0]
            if count > self.max_header_fields:
                raise HeaderListTooLarge(
                    f"{count} header fields", stream_id, StatusCode.FRAME_TOO_LARGE
                )
            position = size
            for _ in range(count):
                end = position + size + unpack(raw, position)[0]
                name = raw[position + size : end]
                position = end + size + unpack(raw, end)[0]
                value = raw[end + size : position]
                entry = names.get(name)
                if entry is None:
                    entry = self._learn_in(name)
                h2_name, bit = entry
                if bit:
                    if h2_name is None:
                        continue  # hop-by-hop, or implied by the protocol
                    found |= bit
                    if bit == HAS_STATUS:
                        value, _, reason = value.partition(b" ")
                    elif bit == HAS_PATH and b"://" in value[:9]:
                        found |= _ABSOLUTE_PATH
                else:
                    h2_name = name
                if b"\0" in value:
                    parts = value.split(b"\0")
                    if b"" in parts:
                        raise ValueError  # an empty value between NULs
                    headers.extend((h2_name, part) for part in parts)
                else:
                    headers.append((h2_name, value))
        except (struct.error, ValueError):
            raise StreamError(
                "malformed header block", stream_id, StatusCode.PROTOCOL_ERROR
            ) from None
        # Lengths that overran the block leave position past its end.
        if position != len(raw):
            raise StreamError(
                "trailing bytes in header block", stream_id, StatusCode.PROTOCOL_ERROR
            )
        if found & _ABSOLUTE_PATH or found & _HOST_ONLY == _HAS_HOST:
            headers = _normalize_authority(headers)
            found |= HAS_AUTHORITY
        return headers, found & _PUBLIC_BITS, reason


_BLOCK_OVERHEAD = 4096  # zlib framing a compressed block may add, at most


class _Inflating:
    """A received header block, inflated so far."""

    __slots__ = ("fed", "raw", "refused", "inflated")

    def __init__(self) -> None:
        self.fed = 0  # compressed bytes inflated
        self.raw: list[bytes] = []  # what they gave, while within the limit
        self.inflated = 0  # bytes they gave
        self.refused = False  # over the limit: drained, not kept


_NAME_CACHE = 512  # distinct names remembered per direction and version
_BLOCK_MEMO = 256  # header blocks remembered per direction and version
_BLOCK_MEMO_SIZE = 1024  # the largest block remembered, serialized


class _Memo:
    """What the codecs of one version remember, shared by all sessions."""

    def __init__(self) -> None:
        self.names_in: dict[bytes, tuple[bytes | None, int]] = {}
        self.names_out: dict[bytes, bytes] = {}
        self.blocks_in: dict[
            bytes, tuple[tuple[tuple[bytes, bytes], ...], int, int, bytes]
        ] = {}
        self.blocks_out: dict[Any, tuple[bytes, tuple[tuple[int, int], ...]]] = {}


_MEMOS: dict[str, _Memo] = {}


def _stored_blocks(data: bytes) -> bytes:
    """``data`` as deflate stored blocks (after a flush, so byte-aligned)."""
    blocks = []
    for start in range(0, len(data), 0xFFFF):
        chunk = data[start : start + 0xFFFF]
        # BFINAL 0, BTYPE 00, then LEN and its one's complement, little-endian.
        blocks.append(b"\0" + struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF))
        blocks.append(chunk)
    return b"".join(blocks)


def _check_not_ended(decompressor: zlib._Decompress) -> None:
    """A header block that ends the session's deflate stream (a final block)
    leaves nothing to inflate the next ones with; and zlib, once ended, keeps
    the rest as ``unused_data`` without consuming it (a loop that waits for
    the input to be used would never end)."""
    if decompressor.eof:
        raise HeaderBlockError("header block ends the zlib stream")


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _BLOCK_MEMO:
        del memo[next(iter(memo))]  # the oldest
    memo[key] = value


_DROP = 64  # a received name that is dropped (hop-by-hop, :version)


def _normalize_authority(headers: Headers) -> Headers:
    """Split an absolute URL in ``:path`` (SPDY/2 pushes) into scheme,
    authority and path; let ``host`` stand in for a missing ``:authority``."""
    fields = dict(headers)
    path = fields.get(b":path", b"")
    if b"://" in path[:9]:
        scheme, _, rest = path.partition(b"://")
        authority, slash, path = rest.partition(b"/")
        headers = [(n, v) for n, v in headers if n not in _URL_PARTS]
        headers += (
            (b":scheme", scheme),
            (b":authority", authority),
            (b":path", slash + path),
        )
    elif b"host" in fields and b":authority" not in fields:
        headers = [(b":authority" if n == b"host" else n, v) for n, v in headers]
    return headers


_URL_PARTS = frozenset((b":scheme", b":authority", b":path"))
_ABSOLUTE_PATH = 32  # ``:path`` is an absolute URL (SPDY/2 pushes)
_HOST_ONLY = _HAS_HOST | HAS_AUTHORITY
_RENAMED = 128  # a pseudo-header renamed without a HAS_* bit (:scheme)
_PUBLIC_BITS = HAS_METHOD | HAS_PATH | HAS_STATUS | HAS_AUTHORITY


def _to_bytes(text: bytes | str) -> bytes:
    if isinstance(text, str):
        return text.encode("utf-8")
    return bytes(text)
