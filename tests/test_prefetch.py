"""`tornado_spdy.prefetch`: Huffman-coded strings of h2 header blocks decoded
as the block arrives, and the checks of `H2Core` that keep such a block from
costing milliseconds in one piece once it is complete. The fuzzer
(`tests.fuzz_h2_core`) compares cores that use the prefetch with twins that
do not."""

from __future__ import annotations

import random
from typing import Any

import h2.events
import h2.exceptions
import h2.utilities
import hpack
import hyperframe.frame
import pytest
from hpack.huffman_table import decode_huffman
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.test_http2_core import REQUEST, block_frames, connected
from tornado_spdy import http2, prefetch
from tornado_spdy.prefetch import HuffmanPrefetch, prefetched

_TEXT = st.binary(min_size=1, max_size=400)


def pieces(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` cut at random places."""
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 12)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def hpack_answer(code: bytes) -> Any:
    """What hpack's ``decode_huffman`` makes of ``code``: bytes, or its error."""
    try:
        return decode_huffman(code)
    except hpack.HPACKDecodingError as exc:
        return ("error", str(exc))


def prefetch_answer(code: bytes, seed: int) -> Any:
    string = prefetch._HuffmanString()
    for piece in pieces(code, random.Random(seed)):
        string.feed(piece)
    result = string.result()
    return result if isinstance(result, bytes) else ("error", str(result))


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.integers(0, 2**32))
@example(b"\xff\xff\xff\xff", 0)  # EOS: hpack refuses it
@example(b"\x1f", 0)  # a code cut short
def test_a_string_decodes_as_hpack_decodes_it(code, seed):
    """Any bytes, fed in any pieces, decode to what hpack's decode_huffman
    makes of them, its error included."""
    assert prefetch_answer(code, seed) == hpack_answer(code)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
@example(b"")
@example(b"\xff\xff\xff\xff")
def test_whole_strings_decode_as_hpack_decodes_them(code):
    """`prefetch.decode_huffman`, which hpack now calls for every string it
    is not given, answers as hpack's own does."""
    try:
        ours: Any = prefetch.decode_huffman(code)
    except hpack.HPACKDecodingError as exc:
        ours = ("error", str(exc))
    assert ours == hpack_answer(code)
    assert hpack.hpack.decode_huffman is prefetch._decode_huffman


@settings(max_examples=200, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=5), st.integers(0, 2**32))
def test_valid_code_decodes_to_its_text(texts, seed):
    """Huffman code of any text decodes to that text, in any pieces."""
    coder = hpack.Encoder().huffman_coder
    for text in texts:
        assert prefetch_answer(coder.encode(text), seed) == text


_NAME = st.sampled_from([b"a", b"x-long", b"cookie", b"user-agent", b"x-" + b"n" * 130])
_VALUE = st.binary(max_size=300)
_FIELD = st.builds(
    lambda sensitive, name, value: (
        hpack.NeverIndexedHeaderTuple if sensitive else hpack.HeaderTuple
    )(name, value),
    st.booleans(),
    _NAME,
    _VALUE,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(_FIELD, max_size=8), min_size=1, max_size=4),
    st.sampled_from([0, 256, 4096]),
    st.integers(0, 2**32),
)
def test_every_huffman_string_of_a_block_is_prefetched(lists, table_size, seed):
    """The walk finds every Huffman-coded string of real blocks (indexed
    fields, literals with and without a new name, table size updates), cut
    anywhere: hpack decodes them without decoding one itself."""
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    encoder.header_table_size = table_size
    rng = random.Random(seed)
    for fields in lists:
        block = encoder.encode(fields, huffman=True)
        walk = HuffmanPrefetch()
        for piece in pieces(block, rng) if len(block) > 1 else [block]:
            walk.feed(piece)
        assert not walk.broken
        with _hpack_forbidden(), prefetched(walk.decoded):
            decoded = decoder.decode(block, raw=True)
        assert [(bytes(n), bytes(v)) for n, v in decoded] == [
            (bytes(n), bytes(v)) for n, v in fields
        ]


class _hpack_forbidden:
    """Decoding a Huffman string when hpack asks (not ahead) is refused
    meanwhile."""

    def __enter__(self) -> None:
        self._saved = prefetch.decode_huffman
        prefetch.decode_huffman = self._refuse

    def __exit__(self, *exc: object) -> None:
        prefetch.decode_huffman = self._saved

    @staticmethod
    def _refuse(code: object) -> bytes:
        if not code:
            return b""
        raise AssertionError(f"hpack decoded {code!r} itself")


def test_a_refused_string_gets_hpacks_error():
    """A string the walk could not decode is answered with hpack's error,
    without hpack decoding it again."""
    walk = HuffmanPrefetch()
    block = b"\x00\x01a\x84\xff\xff\xff\xff"  # new name "a", value: EOS
    walk.feed(block)
    with _hpack_forbidden(), prefetched(walk.decoded):
        with pytest.raises(hpack.HPACKDecodingError, match="Invalid Huffman string"):
            hpack.Decoder().decode(block)


def test_a_string_is_taken_only_if_its_code_is_the_one_walked():
    """Strings are taken in the order they were walked, each only if its code
    is the same: results walked for other codes (a walk gone wrong, a block
    before) are not given, and the string is decoded as hpack would."""
    fields = [(b"x-one", b"first value"), (b"x-two", b"second value")]
    block = hpack.Encoder().encode(fields, huffman=True)
    other = HuffmanPrefetch()
    other.feed(hpack.Encoder().encode([(b"x-one", b"other value")], huffman=True))
    walked = other.decoded + HuffmanPrefetch().decoded
    with prefetched(walked):
        decoded = hpack.Decoder().decode(block, raw=True)
    assert [(bytes(n), bytes(v)) for n, v in decoded] == fields


def huffman_request(size: int, path: bytes = b"/x") -> bytes:
    """A request block (a new ``:path`` literal first) with a never-indexed,
    Huffman-coded cookie of ``size`` characters."""
    cookie = hpack.NeverIndexedHeaderTuple(b"cookie", b"ab" * (size // 2))
    fields = [(b":path", path), *[f for f in REQUEST if f[0] != ":path"], cookie]
    return hpack.Encoder().encode(fields, huffman=True)


@pytest.mark.parametrize("piece_size", [1, 300, 16384 + 9])
def test_blocks_arriving_in_pieces_are_decoded_as_they_come(piece_size):
    """Requests whose 20 KB blocks (HEADERS and a CONTINUATION) arrive in
    pieces: hpack decodes no Huffman string when a block is complete, each
    request is h2's, and the walk keeps only the last block's strings."""
    client, server = connected()
    for number in range(4):
        path = f"/{number}".encode() * 50
        block = huffman_request(30000 + number * 2, path)
        frames = b"".join(block_frames(1 + 2 * number, block))
        events: list[Any] = []
        data = [frames[i : i + piece_size] for i in range(0, len(frames), piece_size)]
        for piece in data[:-1]:
            events += server.receive_data(piece)
        with _hpack_forbidden():
            events += server.receive_data(data[-1])
        (request,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
        assert request.headers[0] == (b":path", path)
        assert request.headers[-1] == (b"cookie", b"ab" * (15000 + number))
        assert len(server.incoming_buffer.prefetch.decoded) <= 5


def test_a_block_arriving_whole_is_not_walked(monkeypatch):
    """An honest client's request in one read costs no walk."""
    fed: list[bytes] = []
    monkeypatch.setattr(HuffmanPrefetch, "feed", lambda _, data: fed.append(data))
    client, server = connected()
    frames = b"".join(block_frames(1, huffman_request(30000)))
    events = server.receive_data(frames)
    assert any(isinstance(e, h2.events.RequestReceived) for e in events)
    assert fed == []


def test_padded_and_prioritised_frames_are_walked_to_their_fragment():
    """Pad length, priority fields and padding are not taken for HPACK."""
    import hyperframe.frame as hf

    block = huffman_request(4000)
    head = hf.HeadersFrame(1, data=block[:100], flags={"PADDED", "PRIORITY"})
    head.pad_length, head.depends_on, head.stream_weight = 7, 3, 0
    rest = hf.ContinuationFrame(1, data=block[100:], flags={"END_HEADERS"})
    frames = head.serialize() + rest.serialize()
    client, server = connected()
    events: list[Any] = []
    for i in range(0, len(frames) - 50, 50):
        events += server.receive_data(frames[i : i + 50])
    with _hpack_forbidden():
        events += server.receive_data(frames[i + 50 :])
    assert any(isinstance(e, h2.events.RequestReceived) for e in events)


def test_a_frame_that_breaks_the_block_gets_h2s_answer():
    """A DATA frame in the middle of a block, arriving a byte at a time: the
    walk stops, h2 ends the connection as it would (PROTOCOL_ERROR)."""
    import hyperframe.frame as hf

    block = huffman_request(4000)
    head = hf.HeadersFrame(1, data=block[:1000]).serialize()
    data = hf.DataFrame(1, data=b"x" * 30).serialize()
    client, server = connected()
    server.receive_data(head)
    with pytest.raises(h2.exceptions.ProtocolError):
        for byte in range(len(data)):
            server.receive_data(data[byte : byte + 1])
    (goaway,) = client.receive_data(server.data_to_send())
    assert goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR


_HEADER_BYTES = st.binary(max_size=12).map(
    lambda b: b.replace(b"q", b"A").replace(b"r", b" ").replace(b"s", b":")
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_HEADER_BYTES, _HEADER_BYTES), max_size=4))
@example([(b"a", b"\x00 ")])
@example([(b"Ab\x00", b"")])
@example([(b"a", b" x")])
def test_illegal_characters_are_refused_as_h2_refuses_them(headers):
    """The C-speed character check yields and refuses exactly what h2's own
    does, with h2's message."""
    original = http2.h2_reject_illegal_characters
    assert original is not None and original is not http2._reject_illegal_characters
    assert h2.utilities._reject_illegal_characters is http2._reject_illegal_characters
    assert _outcome(original, headers) == _outcome(
        http2._reject_illegal_characters, headers
    )


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=40)))
@example(b"0123456789")
@example(b"0123456789a")
def test_frame_data_is_shown_as_hyperframe_shows_it(data):
    """The repr of frame data made from its first bytes is hyperframe's own."""
    assert hyperframe.frame._raw_data_repr is http2._raw_data_repr
    assert http2._raw_data_repr(data) == http2.h2_raw_data_repr(data)


def _outcome(check: Any, headers: list[tuple[bytes, bytes]]) -> Any:
    try:
        return list(check(iter(headers), None))
    except h2.exceptions.ProtocolError as exc:
        return ("refused", str(exc))


def test_a_push_promise_arriving_in_pieces_is_decoded_as_it_comes():
    """A client's core walks PUSH_PROMISE blocks past the promised stream id."""
    import h2.config
    import h2.connection
    import hyperframe.frame as hf

    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client = http2.H2Core(client_side=True)
    server.initiate_connection()
    client.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    block = huffman_request(4000)
    promise = hf.PushPromiseFrame(1, promised_stream_id=2, data=block)
    promise.flags.add("END_HEADERS")
    frames = promise.serialize()
    events: list[Any] = []
    for i in range(0, len(frames) - 50, 50):
        events += client.receive_data(frames[i : i + 50])
    with _hpack_forbidden():
        events += client.receive_data(frames[i + 50 :])
    (pushed,) = [e for e in events if isinstance(e, h2.events.PushedStreamReceived)]
    assert pushed.headers[-1] == (b"cookie", b"ab" * 2000)
