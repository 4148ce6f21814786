"""The Huffman-coded strings of an h2 header block, decoded as the block's
bytes arrive instead of all at once when it is complete.

``hpack`` decodes Huffman codes in pure Python, about 0.2 µs a byte, and only
once h2 has the whole block: a 42 KB block of Huffman code costs 8 ms in one
piece, during which no other connection is served, however finely the
`Session` slices its peer's input. A block that arrives over several reads is
therefore followed here as it comes: its HPACK representations are walked
(no table is needed to find where each string lies) and each Huffman-coded
string is decoded a slice at a time. When the block is complete, hpack's
decoder takes the strings from `HuffmanPrefetch.decoded`, in the order it
meets them, and decodes the rest of the block as before. A block that
arrives whole in one read is not followed, so an honest client's requests
cost nothing more. Every string,
followed or not, is decoded by `decode_huffman`: hpack's state machine run
in C loops, 2.4 times as fast as hpack's own.

What hpack would answer is kept: a string the table does not decode is
remembered with hpack's own error, a string is taken only if its code is
byte for byte the one decoded (so a walk that went wrong costs time, never a
wrong answer), and anything this walk does not understand stops it, leaving
the block to hpack (and h2's answer to it).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from operator import add, getitem
from typing import Any, Union

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
#: The Huffman-coded strings of a block in order: each code and its result.
Strings = list[tuple[bytes, Decoded]]
#: Bytes as h2's frame buffer holds them.
Buffer = Union[bytes, bytearray, memoryview]  # noqa: UP007

#: The most continuation bytes of an HPACK integer followed (hpack refuses
#: longer ones); past it the block is left to hpack.
_MAX_INTEGER_BYTES = 4


class _Rows:
    """hpack's Huffman state machine (4 bits a step) made into one of 8 bits
    a step that C loops can run: a row per state, a list whose item ``b`` is
    the row of the state after byte ``b``, item ``256 + b`` the symbols that
    byte completes, and item ``512 + b`` whether the string may end there.
    `itertools.accumulate` then walks the states of a string and `map` picks
    its symbols, 2.4 times as fast as hpack's Python loop (42 KB of code:
    3.1 ms, not 7.5). Built at import (37 ms, about 2 MB), not on a first
    request."""

    start: list[Any] = []
    failed: list[Any] = []

    @classmethod
    def build(cls) -> list[Any]:
        rows: list[list[Any]] = [[None] * 768 for _ in range(257)]
        failed = rows[256]  # a code no symbol has: stays failed
        symbols: dict[bytes, bytes] = {}
        for state, row in enumerate(rows[:256]):
            for byte in range(256):
                now, out, ends = state, bytearray(), False
                for nibble in (byte >> 4, byte & 0x0F):
                    now, flags, symbol = HUFFMAN_TABLE[now * 16 + nibble]
                    if flags & HUFFMAN_FAIL:
                        now = 256
                        break
                    if flags & HUFFMAN_EMIT_SYMBOL:
                        out.append(symbol)
                    ends = bool(flags & HUFFMAN_COMPLETE)
                row[byte] = rows[now]
                row[256 + byte] = symbols.setdefault(bytes(out), bytes(out))
                row[512 + byte] = ends and now != 256
        failed[:] = [failed] * 256 + [b""] * 256 + [False] * 256
        cls.failed = failed
        cls.start = rows[0]
        return rows[0]


_Rows.build()
#: Strings of at most this many bytes cost less in hpack's loop (3 bytes:
#: 0.9 us against 1.5; from 8 bytes on, the rows are as fast or faster).
_SHORT = 8
_ABOVE_BYTES = itertools.repeat(256)  # a byte's symbols: row[256 + byte]


class _HuffmanString:
    """One Huffman-coded string, decoded a piece at a time with hpack's own
    state machine, so that the result is hpack's (see `_Rows`)."""

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self._row = _Rows.start
        self._ends = False

    def feed(self, piece: Buffer) -> None:
        if not piece or self._row is _Rows.failed:
            return
        rows = list(itertools.accumulate(piece, getitem, initial=self._row))
        self._out.append(b"".join(map(getitem, rows, map(add, piece, _ABOVE_BYTES))))
        self._ends = rows[-2][512 + piece[-1]]
        self._row = rows[-1]

    def result(self) -> Decoded:
        if self._row is _Rows.failed:
            return HPACKDecodingError("Invalid Huffman string")
        if not self._ends:
            return HPACKDecodingError("Incomplete Huffman string")
        return b"".join(self._out)


def decode_huffman(code: Buffer | None) -> bytes:
    """hpack's ``decode_huffman``: the same answers, errors included, in C
    loops (see `_Rows`)."""
    if not code:
        return b""
    if len(code) <= _SHORT:
        return _hpack_decode_huffman(code)
    string = _HuffmanString()
    string.feed(code)
    result = string.result()
    if isinstance(result, bytes):
        return result
    raise result


class HuffmanPrefetch:
    """Walks the fragments of one header block, fed in order and in pieces of
    any size, decoding its Huffman-coded strings into `decoded` in order. A
    step function per place in the HPACK grammar (RFC 7541 section 6) takes
    bytes from a position and returns the next position."""

    def __init__(self) -> None:
        self.decoded: Strings = []
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
        self._code = bytearray()  # the current Huffman string's code so far

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
        self._code.clear()
        self._step = self._string_body
        if not self._left:
            self._end_of_string()

    def _string_body(self, data: Buffer, position: int) -> int:
        end = min(len(data), position + self._left)
        if self._string is not None:
            piece = data[position:end]
            self._code += piece
            self._string.feed(piece)
        self._left -= end - position
        if not self._left:
            self._end_of_string()
        return end

    def _end_of_string(self) -> None:
        if self._string is not None and self._code:
            self.decoded.append((bytes(self._code), self._string.result()))
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
    IOLoop runs one decoder at once), and how many hpack has asked for."""

    decoded: Strings = []
    asked = 0


def _decode_huffman(code: Buffer | None) -> bytes:
    """hpack's ``decode_huffman``: answered from the active prefetch, or
    decoded by ours. hpack asks for a block's strings in the order the walk
    met them; comparing codes costs a memcmp where a dictionary of them
    hashed every code twice (26 us for a 42 KB one)."""
    if _Active.decoded and code:
        index = _Active.asked
        _Active.asked = index + 1
        if index < len(_Active.decoded):
            walked, found = _Active.decoded[index]
            if walked == code:
                if isinstance(found, bytes):
                    return found
                raise HPACKDecodingError(*found.args)
    return decode_huffman(code)


# hpack's decoder calls the module's function for each Huffman-coded string;
# with no prefetch active (any other decoder) ours decodes it, as hpack would.
setattr(hpack.hpack, "decode_huffman", _decode_huffman)  # noqa: B010


@contextlib.contextmanager
def prefetched(decoded: Strings) -> Iterator[None]:
    """Let hpack take Huffman-coded strings from ``decoded`` meanwhile."""
    _Active.decoded, _Active.asked = decoded, 0
    try:
        yield
    finally:
        _Active.decoded = []
