"""The Huffman-coded strings of an h2 header block, decoded as the block's
bytes arrive instead of all at once when it is complete.

``hpack`` decodes Huffman codes in pure Python, about 0.2 µs a byte, and only
once h2 has the whole block: a 42 KB block of Huffman code costs 8 ms in one
piece, during which no other connection is served, however finely the
`Session` slices its peer's input. A block that arrives over several reads is
therefore followed here as it comes: its HPACK representations are walked
(no table is needed to find where each string lies) and each Huffman-coded
string is decoded a slice at a time. When the block is complete, hpack's
decoder takes the strings from `HuffmanPrefetch.decoded` and decodes the rest
of the block as before. A block that arrives whole in one read is not
followed, so an honest client's requests cost nothing more.

What hpack would answer is kept: a string the table does not decode is
remembered with hpack's own error, and anything this walk does not
understand stops it, leaving the block to hpack (and h2's answer to it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Union

import hpack.hpack
from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import (
    HUFFMAN_COMPLETE,
    HUFFMAN_EMIT_SYMBOL,
    HUFFMAN_FAIL,
    HUFFMAN_TABLE,
)
from hpack.huffman_table import decode_huffman as _hpack_decode_huffman

#: What a followed string decoded to: its bytes, or hpack's error for it.
Decoded = Union[bytes, HPACKDecodingError]  # noqa: UP007 (a runtime alias)
#: Bytes as h2's frame buffer holds them.
Buffer = Union[bytes, bytearray, memoryview]  # noqa: UP007

#: The most continuation bytes of an HPACK integer followed (hpack refuses
#: longer ones); past it the block is left to hpack.
_MAX_INTEGER_BYTES = 4


class _HuffmanString:
    """One Huffman-coded string, decoded a piece at a time with hpack's own
    state machine (4 bits a step), so that the result is hpack's."""

    def __init__(self) -> None:
        self.code = bytearray()
        self._out = bytearray()
        self._state = 0
        self._flags = 0
        self._failed = False

    def feed(self, piece: Buffer) -> None:
        self.code += piece
        if self._failed:
            return
        state, flags, out, table = self._state, self._flags, self._out, HUFFMAN_TABLE
        for byte in piece:
            state, flags, symbol = table[state * 16 + (byte >> 4)]
            if flags & HUFFMAN_FAIL:
                self._failed = True
                return
            if flags & HUFFMAN_EMIT_SYMBOL:
                out.append(symbol)
            state, flags, symbol = table[state * 16 + (byte & 0x0F)]
            if flags & HUFFMAN_FAIL:
                self._failed = True
                return
            if flags & HUFFMAN_EMIT_SYMBOL:
                out.append(symbol)
        self._state, self._flags = state, flags

    def result(self) -> Decoded:
        if self._failed:
            return HPACKDecodingError("Invalid Huffman string")
        if not self._flags & HUFFMAN_COMPLETE:
            return HPACKDecodingError("Incomplete Huffman string")
        return bytes(self._out)


class HuffmanPrefetch:
    """Walks the fragments of one header block, fed in order and in pieces of
    any size, decoding its Huffman-coded strings into `decoded` (code ->
    result). A step function per place in the HPACK grammar (RFC 7541
    section 6) takes bytes from a position and returns the next position."""

    def __init__(self) -> None:
        self.decoded: dict[bytes, Decoded] = {}
        self.reset()

    def reset(self) -> None:
        """Start a new block (forgetting the strings of the last one)."""
        self.decoded.clear()
        self.broken = False
        self._step: Callable[[Buffer, int], int] = self._representation
        self._strings = 0  # strings still to come in this representation
        self._integer = 0
        self._shift = 0
        self._integer_bytes = 0
        self._after_integer: Callable[[], None] = self._end_of_representation
        self._huffman_flag = False
        self._left = 0  # bytes of the current string still to come
        self._string: _HuffmanString | None = None

    def feed(self, fragment: Buffer) -> None:
        position, end = 0, len(fragment)
        while position < end and not self.broken:
            position = self._step(fragment, position)

    # Each representation starts with an integer of a 4 to 7-bit prefix; the
    # literal ones carry their name (when the index is 0) and their value.

    def _representation(self, data: Buffer, position: int) -> int:
        first = data[position]
        if first & 0x80:  # indexed field
            prefix, strings = 0x7F, 0
        elif first & 0x40:  # literal, incremental indexing
            prefix, strings = 0x3F, 1
        elif first & 0x20:  # dynamic table size update
            prefix, strings = 0x1F, 0
        else:  # literal, without indexing or never indexed
            prefix, strings = 0x0F, 1
        index = first & prefix
        if strings and index == 0:
            strings = 2  # a new name: the name's string comes first
        self._strings = strings
        self._start_integer(index, prefix, self._end_of_representation)
        return position + 1

    def _end_of_representation(self) -> None:
        self._step = self._string_length if self._strings else self._representation

    def _string_length(self, data: Buffer, position: int) -> int:
        first = data[position]
        self._huffman_flag = bool(first & 0x80)
        self._start_integer(first & 0x7F, 0x7F, self._string_start)
        return position + 1

    def _string_start(self) -> None:
        self._left = self._integer
        self._string = _HuffmanString() if self._huffman_flag else None
        self._step = self._string_body
        if not self._left:
            self._end_of_string()

    def _string_body(self, data: Buffer, position: int) -> int:
        end = min(len(data), position + self._left)
        if self._string is not None:
            self._string.feed(data[position:end])
        self._left -= end - position
        if not self._left:
            self._end_of_string()
        return end

    def _end_of_string(self) -> None:
        if self._string is not None and self._string.code:
            self.decoded[bytes(self._string.code)] = self._string.result()
        self._string = None
        self._strings -= 1
        self._step = self._string_length if self._strings else self._representation

    # HPACK integers (RFC 7541 section 5.1): a prefix, then 7 bits a byte
    # while the high bit is set.

    def _start_integer(self, value: int, prefix: int, then: Callable[[], None]) -> None:
        self._integer = value
        self._after_integer = then
        if value < prefix:
            then()
        else:
            self._shift = 0
            self._integer_bytes = 0
            self._step = self._integer_continuation

    def _integer_continuation(self, data: Buffer, position: int) -> int:
        byte = data[position]
        self._integer += (byte & 0x7F) << self._shift
        self._shift += 7
        self._integer_bytes += 1
        if self._integer_bytes > _MAX_INTEGER_BYTES:
            self.broken = True  # hpack refuses it; nothing to save
        elif not byte & 0x80:
            self._after_integer()
        return position + 1


class _Active:
    """The strings of the block hpack is decoding now (one at a time: the
    IOLoop runs one decoder at once)."""

    decoded: dict[bytes, Decoded] | None = None


def _decode_huffman(code: Buffer | None) -> bytes:
    """hpack's ``decode_huffman``, answered from the active prefetch."""
    if _Active.decoded and code:
        found = _Active.decoded.get(bytes(code))
        if isinstance(found, bytes):
            return found
        if found is not None:
            raise HPACKDecodingError(*found.args)
    return _hpack_decode_huffman(code)


# hpack's decoder calls the module's function for each Huffman-coded string;
# with no prefetch active (any other decoder) it is hpack's own.
setattr(hpack.hpack, "decode_huffman", _decode_huffman)  # noqa: B010


@contextlib.contextmanager
def prefetched(decoded: dict[bytes, Decoded]) -> Iterator[None]:
    """Let hpack take Huffman-coded strings from ``decoded`` meanwhile."""
    _Active.decoded = decoded
    try:
        yield
    finally:
        _Active.decoded = None
