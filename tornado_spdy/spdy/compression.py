"""Header blocks: the name/value list, compressed with zlib and each version's
preset dictionary, one zlib context per direction for the whole session.

Inflating is bounded: a block whose header data exceeds
``max_header_list_size`` (or holds more than ``max_header_fields`` fields) is
refused for its stream, yet inflated to the end so that the session's zlib
state stays in step with the peer's. A block that would inflate past
``max_inflate_size`` costs too much to follow and ends the session.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from .errors import HeaderBlockError, HeaderListTooLarge, StatusCode, StreamError
from .profile import Headers, VersionProfile

# Our own compressor keeps a small window: 2 KiB of history (the dictionary
# still fits) and memLevel 1 cost about 15 KiB a session instead of 262 KiB.
# Peers inflate any window up to 32 KiB, so this is only our choice.
COMPRESS_WINDOW_BITS = 11
COMPRESS_MEM_LEVEL = 1

_DRAIN_CHUNK = 64 * 1024


class HeaderCodec:
    """One session's header compression, both directions.

    :arg profile: the SPDY version.
    :arg max_header_list_size: the most inflated header-block bytes accepted for
        one stream.
    :arg max_header_fields: the most name/value pairs accepted in one block.
    :arg max_inflate_size: the most a block may inflate to before the session
        is ended rather than followed.
    :arg compression_level: zlib level of our own blocks.
    """

    def __init__(
        self,
        profile: VersionProfile,
        max_header_list_size: int = 64 * 1024,
        max_header_fields: int = 100,
        max_inflate_size: int = 1024 * 1024,
        compression_level: int = 6,
    ):
        self.profile = profile
        self.max_header_list_size = max_header_list_size
        self.max_header_fields = max_header_fields
        self.max_inflate_size = max(max_inflate_size, max_header_list_size)
        self.compression_level = compression_level
        self._length = struct.Struct(">H" if profile.length_size == 2 else ">I")
        # Created on first use: an idle session holds no zlib state.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def encode(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """Serialize and compress a header list.

        Values of a repeated name are joined with NUL into one field, as SPDY
        requires; names must already be lower case.
        """
        grouped: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            values = grouped.get(name)
            if values is None:
                grouped[name] = [value]
            else:
                values.append(value)
        pack = self._length.pack
        parts = [pack(len(grouped))]
        for name, values in grouped.items():
            value = values[0] if len(values) == 1 else b"\0".join(values)
            parts += (pack(len(name)), name, pack(len(value)), value)
        return self.compress(b"".join(parts))

    def compress(self, raw: bytes) -> bytes:
        """Compress a serialized header block, ending at a sync flush."""
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.compression_level,
                zlib.DEFLATED,
                COMPRESS_WINDOW_BITS,
                COMPRESS_MEM_LEVEL,
                zdict=self.profile.dictionary,
            )
        return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, block: bytes | memoryview, stream_id: int) -> Headers:
        """Inflate and parse a header block received for ``stream_id``.

        :raises HeaderListTooLarge: over the limits (the zlib state is in sync).
        :raises StreamError: a malformed list (PROTOCOL_ERROR for the stream).
        :raises HeaderBlockError: zlib failed; the session cannot go on.
        """
        return self.parse(self.inflate(block, stream_id), stream_id)

    def inflate(self, block: bytes | memoryview, stream_id: int) -> bytes:
        decompressor = self._decompressor
        if decompressor is None:
            # wbits 0: take the window from the stream header, whatever the peer's.
            decompressor = self._decompressor = zlib.decompressobj(
                0, zdict=self.profile.dictionary
            )
        limit = self.max_header_list_size
        try:
            raw = decompressor.decompress(block, limit + 1)
            if len(raw) <= limit and not decompressor.unconsumed_tail:
                return raw
            self._drain(decompressor, len(raw))
        except zlib.error as exc:
            raise HeaderBlockError(f"header block does not inflate: {exc}") from None
        raise HeaderListTooLarge(
            f"header block over {limit} bytes", stream_id, StatusCode.FRAME_TOO_LARGE
        )

    def _drain(self, decompressor: zlib._Decompress, inflated: int) -> None:
        """Inflate the rest of a refused block, discarding it, to stay in sync."""
        while True:
            produced = len(
                decompressor.decompress(decompressor.unconsumed_tail, _DRAIN_CHUNK)
            )
            inflated += produced
            if inflated > self.max_inflate_size:
                raise HeaderBlockError(
                    f"header block inflates past {self.max_inflate_size} bytes"
                )
            # Output space left over and no input left: the block is done.
            if produced < _DRAIN_CHUNK and not decompressor.unconsumed_tail:
                return

    def parse(self, raw: bytes, stream_id: int) -> Headers:
        """Parse an inflated header block into ``(name, value)`` pairs, one pair
        for each NUL-separated value."""
        size = self._length.size
        unpack = self._length.unpack_from
        try:
            count = unpack(raw)[0]
            if count > self.max_header_fields:
                raise HeaderListTooLarge(
                    f"{count} header fields", stream_id, StatusCode.FRAME_TOO_LARGE
                )
            headers: Headers = []
            position = size
            for _ in range(count):
                length = unpack(raw, position)[0]
                position += size
                name = raw[position : position + length]
                position += length
                length = unpack(raw, position)[0]
                position += size
                value = raw[position : position + length]
                position += length
                if len(value) != length or not name or name != name.lower():
                    raise ValueError
                if b"\0" in value:
                    headers.extend((name, part) for part in value.split(b"\0"))
                else:
                    headers.append((name, value))
        except (struct.error, ValueError):
            raise StreamError(
                "malformed header block", stream_id, StatusCode.PROTOCOL_ERROR
            ) from None
        if position != len(raw):
            raise StreamError(
                "trailing bytes in header block", stream_id, StatusCode.PROTOCOL_ERROR
            )
        return headers
