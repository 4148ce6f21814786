"""`H2Core`, the adapter of the ``h2`` library, with an ``h2`` client and no
I/O: what it changes in ``h2``'s behaviour."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.stream
import hpack
import hyperframe.frame
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tornado_spdy.http2 import H2Core, _MemoDecoder, _MemoEncoder
from tornado_spdy.stream import request_from_headers

REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "a")]


def connected() -> tuple[h2.connection.H2Connection, H2Core]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = H2Core(client_side=False)
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def exchange(
    client: h2.connection.H2Connection, server: H2Core, headers: list[tuple[str, str]]
) -> h2.events.RequestReceived:
    """One request and its empty 200 response; the server's request event."""
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, headers, end_stream=True)
    events = server.receive_data(client.data_to_send())
    (request,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    server.send_headers(stream_id, [(b":status", b"200")], end_stream=True)
    client.receive_data(server.data_to_send())
    return request


def test_closed_streams_are_forgotten_every_few_streams():
    """h2 walks all its streams to forget the closed ones; H2Core lets it do
    so every FORGET_EVERY new streams, so a long connection keeps at most
    that many closed streams, not one per request."""
    client, server = connected()
    for _ in range(5 * H2Core.FORGET_EVERY):
        exchange(client, server, REQUEST)
        assert len(server.streams) <= H2Core.FORGET_EVERY


def test_cookie_crumbs_are_joined_for_tornado():
    """h2's own joining of cookie fields is off: the crumbs a client sends
    (RFC 9113 section 8.2.3) reach the Tornado layer, which joins them."""
    client, server = connected()
    request = exchange(
        client, server, [*REQUEST, ("cookie", "a=1"), ("x", "y"), ("cookie", "b=2")]
    )
    _, _, _, fields = request_from_headers(request.headers)
    assert fields["Cookie"] == "a=1; b=2"
    assert fields["X"] == "y"


def test_a_repeated_request_is_decoded_and_checked_once():
    """A request block byte for byte the same as one already checked, with the
    HPACK table unchanged, is taken from the decoder's memo without h2's
    checks; the same bytes sent as trailers are still checked (and refused:
    trailers carry no pseudo-headers)."""
    client, server = connected()
    exchange(client, server, [*REQUEST, ("x", "1")])  # fills the HPACK tables
    first = exchange(client, server, [*REQUEST, ("x", "1")])
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, [*REQUEST, ("x", "1")])
    block_frames = client.data_to_send()
    assert server.decoder.checked(block_frames[9:])
    (again,) = [
        e
        for e in server.receive_data(block_frames)
        if isinstance(e, h2.events.RequestReceived)
    ]
    assert again.headers == first.headers

    # The same block once more, as the open stream's trailers.
    client.config.validate_outbound_headers = False
    client.send_headers(stream_id, [*REQUEST, ("x", "1")], end_stream=True)
    trailers = client.data_to_send()
    assert trailers[9:] == block_frames[9:]
    events = server.receive_data(trailers)
    (reset,) = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert reset.stream_id == stream_id
    assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR


_FIELD = st.builds(
    lambda indexed, name, value: (
        hpack.HeaderTuple if indexed else hpack.NeverIndexedHeaderTuple
    )(name, value),
    st.booleans(),
    st.sampled_from([b"a", b"bb", b"ccc", b"x-long-" + b"n" * 40]),
    st.sampled_from([b"1", b"22", b"v" * 60]),
)
#: A step: a header list to send, or a new table size for the encoders.
_STEP = st.one_of(st.lists(_FIELD, max_size=5), st.sampled_from([0, 64, 160, 4096]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=30))
@example([[hpack.NeverIndexedHeaderTuple(b"a", b"1")], [hpack.HeaderTuple(b"a", b"1")]])
def test_memo_coders_agree_with_hpack(steps):
    """The remembering HPACK coders give hpack's own bytes and fields at every
    step, through table evictions, size changes and never-indexed twins of
    remembered fields."""
    plain_encoder, memo_encoder = hpack.Encoder(), _MemoEncoder()
    plain_decoder, memo_decoder = hpack.Decoder(), _MemoDecoder()
    for step in steps:
        if isinstance(step, int):
            # Signalled to the decoders in the next block, as over the wire.
            # (hpack 4.2 forgets a pending change when the same size is set
            # again before a block, so a step repeating the size is skipped.)
            if step != plain_encoder.header_table_size:
                plain_encoder.header_table_size = step
                memo_encoder.header_table_size = step
            continue
        block = memo_encoder.encode(step)
        assert block == plain_encoder.encode(step)
        fields = memo_decoder.decode(block, raw=True)
        assert [(type(f), *f) for f in fields] == [
            (type(f), *f) for f in plain_decoder.decode(block, raw=True)
        ]


def test_memo_decoder_forgets_what_the_table_no_longer_holds():
    """A block remembered while it referred to the dynamic table is decoded
    afresh, and refused, once a size change has emptied the table."""
    encoder, decoder = hpack.Encoder(), _MemoDecoder()
    fields = [(b"a", b"1")]
    decoder.decode(encoder.encode(fields), raw=True)
    indexed = encoder.encode(fields)
    assert decoder.decode(indexed, raw=True) == fields
    assert decoder.decode(indexed, raw=True) == fields
    decoder.header_table_size = 0
    with pytest.raises(hpack.HPACKDecodingError):
        decoder.decode(indexed, raw=True)


def test_memo_decoder_answers_under_the_current_limit():
    """A remembered block over a header list limit lowered since is refused,
    not answered from the memo."""
    encoder, decoder = hpack.Encoder(), _MemoDecoder()
    fields = [(b"a", b"1" * 100)]
    decoder.decode(encoder.encode(fields), raw=True)
    indexed = encoder.encode(fields)
    assert decoder.decode(indexed, raw=True) == fields
    assert decoder.decode(indexed, raw=True) == fields  # from the memo
    decoder.max_header_list_size = 64
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(indexed, raw=True)


def long_huffman_field(size: int) -> bytes:
    """A never-indexed ``x-long`` field whose value is ``size`` bytes of
    Huffman code (8 "a"s in 5 bytes; hpack's own encoder takes a minute for
    a megabyte)."""
    value = hpack.Encoder().huffman_coder.encode(b"a" * 8) * (size // 5)
    length = hpack.hpack.encode_integer(len(value), 7)
    length[0] |= 0x80  # H: Huffman-coded
    name = b"x-long"
    return b"\x10" + bytes([len(name)]) + name + bytes(length) + value


def block_frames(stream_id: int, block: bytes) -> list[bytes]:
    """A request's HEADERS frame and CONTINUATION frames, 16 KiB each."""
    pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    frames: list[hyperframe.frame.Frame] = []
    for index, piece in enumerate(pieces):
        flags = {"END_HEADERS"} if index == len(pieces) - 1 else set()
        if index:
            kind: Any = hyperframe.frame.ContinuationFrame
        else:
            kind = hyperframe.frame.HeadersFrame
            flags.add("END_STREAM")
        frames.append(kind(stream_id, data=piece, flags=flags))
    return [frame.serialize() for frame in frames]


def test_header_block_longer_than_the_list_limit_is_not_decoded(monkeypatch):
    """A block whose fragments pass the header list limit (64 KiB) on the
    wire is refused at the fragment that passes it, before hpack decodes a
    byte of it: GOAWAY ENHANCE_YOUR_CALM. (A 700 KB block of Huffman code
    took 140 ms of CPU to decode, to be refused all the same.)"""
    client, server = connected()
    decoded: list[bytes] = []
    monkeypatch.setattr(_MemoDecoder, "decode", lambda _, data, raw=False: decoded)
    block = hpack.Encoder().encode(REQUEST) + long_huffman_field(700_000)
    frames = block_frames(1, block)
    for frame in frames[:4]:  # 64 KiB: not over the limit yet
        assert server.receive_data(frame) == []
    with pytest.raises(h2.exceptions.DenialOfServiceError):
        server.receive_data(frames[4])
    assert decoded == []
    (goaway,) = client.receive_data(server.data_to_send())
    assert isinstance(goaway, h2.events.ConnectionTerminated)
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_header_list_at_the_limit_is_decoded():
    """The wire limit refuses nothing hpack would accept: a list of exactly
    64 KiB (names, values and 32 bytes a field) is served."""
    client, server = connected()
    head = hpack.Encoder().encode(REQUEST)
    value = b"v" * (64 * 1024 - _list_size(REQUEST) - len(b"x-long") - 32)
    field = [hpack.NeverIndexedHeaderTuple(b"x-long", value)]
    block = head + hpack.Encoder().encode(field, huffman=False)
    events = server.receive_data(b"".join(block_frames(1, block)))
    (request,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    assert request.headers[-1] == (b"x-long", value)


def _with_fields(count: int, size_updates: int = 0) -> bytes:
    """A request block of ``count`` fields (the four of `REQUEST` first),
    after ``size_updates`` dynamic table size updates (to 4,096)."""
    extra = [hpack.NeverIndexedHeaderTuple(f"x-{i}", "") for i in range(count - 4)]
    update = b"\x3f\xe1\x1f"  # RFC 7541 section 6.3: size 4,096
    return update * size_updates + hpack.Encoder().encode(REQUEST + extra)


@pytest.mark.parametrize("size_updates", [0, 1])
def test_a_block_of_max_header_fields_fields_is_decoded(size_updates):
    """``max_header_fields`` representations in a block are decoded."""
    client, server = connected()
    server.decoder.max_header_fields = 100
    block = _with_fields(100 - size_updates, size_updates)
    events = server.receive_data(b"".join(block_frames(1, block)))
    (request,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    assert len(request.headers) == 100 - size_updates


@pytest.mark.parametrize("size_updates", [0, 1])
def test_a_block_over_max_header_fields_is_refused_as_too_large(size_updates):
    """One representation more (a field or a table size update) and the block
    is refused as a header list too large: GOAWAY ENHANCE_YOUR_CALM, with no
    more than ``max_header_fields`` of them decoded (hpack and h2 spent 10 ms
    on a block of 1,500 short fields)."""
    client, server = connected()
    server.decoder.max_header_fields = 100
    block = _with_fields(101 - size_updates, size_updates)
    with pytest.raises(h2.exceptions.DenialOfServiceError):
        server.receive_data(b"".join(block_frames(1, block)))
    assert server.decoder._fields_left == -1  # stopped at the 101st
    (goaway,) = client.receive_data(server.data_to_send())
    assert isinstance(goaway, h2.events.ConnectionTerminated)
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def _list_size(headers: list[tuple[Any, Any]]) -> int:
    """A header list's size as HPACK counts it (RFC 7541 section 4.1)."""
    return sum(len(name) + len(value) + 32 for name, value in headers)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=300), st.binary(max_size=20000)).map(
            lambda field: hpack.NeverIndexedHeaderTuple(*field)
        ),
        max_size=20,
    )
)
def test_plain_hpack_is_no_longer_than_the_list_size(headers):
    """Why the wire limit may equal the list limit: without Huffman codes an
    HPACK block is never longer than the list's size, for each field costs
    its lengths' few bytes there against 32 in the size."""
    assert len(hpack.Encoder().encode(headers, huffman=False)) <= _list_size(headers)


def _h2_send_data(core: H2Core, *args: object, **kwargs: object) -> None:
    h2.connection.H2Connection.send_data(core, *args, **kwargs)


def _h2_send_data_frames(core: H2Core, stream_id: int, data: bytes, end: bool) -> None:
    """What send_data_frames stands for: h2's send_data frame by frame."""
    size = core.max_outbound_frame_size
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    for n, piece in enumerate(pieces):
        _h2_send_data(core, stream_id, piece, end_stream=end and n == len(pieces) - 1)


def _answering() -> H2Core:
    """A server that has sent the head of its response on stream 1."""
    client, server = connected()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")])
    server.data_to_send()
    return server


def _state(server: H2Core) -> tuple[Any, ...]:
    stream = server.streams.get(1)
    return (
        server.outbound_flow_control_window,
        stream and stream.outbound_flow_control_window,
        stream and stream.state_machine.state,
    )


@pytest.mark.parametrize(
    "steps",
    [
        [(b"a" * 100, False), (b"", False), (b"b" * 16384, True)],
        [(memoryview(b"c" * 20000)[:16384], False), (b"", True)],
        [(b"d" * 16385, False)],  # over the frame size
        [(b"e" * 16384, False)] * 4 + [(b"f", False)],  # over the 65,535 window
        [(b"g", True), (b"h", False)],  # after the end of the stream
    ],
    ids=["small", "view", "too-large", "over-window", "after-end"],
)
def test_send_data_is_h2s_own(steps):
    """H2Core's lean send_data queues the bytes h2's own queues, in order
    with h2's frames around them (a PING after each), moves the same windows
    and states, and refuses what h2 refuses, with h2's errors."""
    results = []
    for send in (H2Core.send_data, _h2_send_data):
        server = _answering()
        outcome = []
        for data, end in steps:
            try:
                send(server, 1, data, end_stream=end)
            except h2.exceptions.H2Error as exc:
                outcome.append(type(exc))
            server.ping(b"12345678")
            outcome.append(_state(server))
        results.append([*outcome, server.data_to_send()])
    assert results[0] == results[1]


@pytest.mark.parametrize(
    "data, end",
    [(b"a" * 40000, True), (memoryview(b"b" * 50000)[1:32769], False)],
    ids=["ending", "two-whole-frames"],
)
def test_send_data_frames_is_h2s_send_data_frame_by_frame(data, end):
    """send_data_frames cuts a chunk into frames as h2's send_data would send
    them one by one, with END_STREAM on the last."""
    results = []
    for send in (H2Core.send_data_frames, _h2_send_data_frames):
        server = _answering()
        send(server, 1, data, end)
        results.append((server.data_to_send(), _state(server)))
    assert results[0] == results[1]


def test_send_data_frames_over_the_window_sends_nothing():
    server = _answering()
    before = _state(server)
    with pytest.raises(h2.exceptions.FlowControlError):
        server.send_data_frames(1, b"c" * 70000)
    assert (server.data_to_send(), _state(server)) == (b"", before)


def test_skipped_state_machine_calls_change_nothing_in_h2():
    """send_data_frames does not call h2's state machines in the states where
    their tables map SEND_DATA to the same state with no action: true of the
    installed h2 (this test fails if a new h2 says otherwise)."""
    from tornado_spdy.http2 import _SENDING_CONNECTION, _SENDING_STREAM

    connection_table = h2.connection.H2ConnectionStateMachine._transitions
    for state in _SENDING_CONNECTION:
        key = (state, h2.connection.ConnectionInputs.SEND_DATA)
        assert connection_table[key] == (None, state)
    for state in _SENDING_STREAM:
        key = (state, h2.stream.StreamInputs.SEND_DATA)
        assert h2.stream._transitions[key] == (None, state)
