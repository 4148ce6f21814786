"""Property tests of the SPDY core: the frame parser against any split of its
input, the header codec against any header list and any sequence of blocks,
and the session against arbitrary input (it may only ever raise
`ProtocolError`)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core_pair import ALL_VERSIONS, RawPeer, make_pair, pieces, pump, request
from tornado_spdy.spdy import VERSIONS, SPDYConfiguration, SPDYConnection
from tornado_spdy.spdy import events as ev
from tornado_spdy.spdy.compression import HeaderCodec
from tornado_spdy.spdy.errors import HeaderListTooLarge, ProtocolError, StatusCode
from tornado_spdy.spdy.frames import (
    CredentialFrame,
    DataFrame,
    FrameParser,
    FrameType,
    GoAwayFrame,
    HeadersFrame,
    NoopFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    UnknownFrame,
    WindowUpdateFrame,
    parsers_for,
)
from tornado_spdy.spdy.profile import VersionProfile

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODERATE = settings(SETTINGS, max_examples=80)
FEW = settings(SETTINGS, max_examples=40)

versions = pytest.mark.parametrize("version", ALL_VERSIONS)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u31 = st.integers(0, 0x7FFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
payloads = st.binary(max_size=300)


def frame_strategy(profile: VersionProfile) -> st.SearchStrategy:
    """Every frame class in frames.py, with the field ranges ``profile`` can
    carry (so that parse(serialize(frame)) == frame)."""
    slot = u8 if profile.has_slot else st.just(0)
    priority = st.integers(0, profile.lowest_priority)
    known = set(parsers_for(profile))
    unknown_types = u16.filter(lambda t: t not in known)
    options = [
        st.builds(DataFrame, u31, payloads, u8),
        st.builds(SynStreamFrame, u31, u31, priority, payloads, u8, slot),
        st.builds(SynReplyFrame, u31, payloads, u8),
        st.builds(HeadersFrame, u31, payloads, u8),
        st.builds(RstStreamFrame, u31, u32),
        st.builds(SettingsFrame, st.lists(st.tuples(u24, u32, u8), max_size=8), u8),
        st.builds(PingFrame, u32),
        st.builds(GoAwayFrame, u31, u32),
        st.builds(WindowUpdateFrame, u31, u31),
        st.builds(UnknownFrame, unknown_types, u8, payloads),
    ]
    if profile.has_noop:
        options.append(st.just(NoopFrame()))
    if profile.has_credential:
        options.append(st.builds(CredentialFrame, payloads))
    return st.one_of(options)


FRAME_LISTS = {
    name: st.lists(frame_strategy(profile), max_size=25)
    for name, profile in VERSIONS.items()
}


def cut_points(data_size: int) -> st.SearchStrategy:
    return st.lists(st.integers(0, max(data_size, 0)), max_size=30)


@versions
def test_every_frame_class_is_covered(version):
    """The strategy above builds every frame type this version parses."""
    profile = VERSIONS[version]
    built = set()
    strategy = frame_strategy(profile)

    @given(strategy)
    @settings(max_examples=300, deadline=None)
    def collect(frame):
        built.add(frame.type if not isinstance(frame, UnknownFrame) else "unknown")

    collect()
    assert built >= set(parsers_for(profile)) | {0, "unknown"}


@versions
@given(data=st.data())
@SETTINGS
def test_frames_round_trip_split_anywhere(version, data):
    profile = VERSIONS[version]
    frames = data.draw(FRAME_LISTS[version])
    wire = b"".join(f.serialize(profile) for f in frames)

    whole = FrameParser(profile).feed(wire)
    assert whole == frames

    parser = FrameParser(profile)
    cuts = data.draw(cut_points(len(wire)))
    split = []
    for piece in pieces(wire, cuts):
        split += parser.feed(piece)
    assert split == whole
    # Nothing left over: a further frame parses on its own.
    assert parser.feed(PingFrame(7).serialize(profile)) == [PingFrame(7)]


@versions
@given(data=st.data())
@MODERATE
def test_frames_fed_byte_by_byte_or_in_random_chunks(version, data):
    profile = VERSIONS[version]
    frames = data.draw(FRAME_LISTS[version])
    wire = b"".join(f.serialize(profile) for f in frames)
    size = data.draw(st.integers(1, 64))
    parser = FrameParser(profile)
    got = []
    for piece in pieces(wire, size):
        got += parser.feed(piece)
    assert got == frames


# Header blocks

# Names the codec renames or drops (pseudo-headers in any version's spelling,
# host, hop-by-hop headers): random lists avoid them; they have their own test.
SPECIAL_NAMES = frozenset(
    {b"host", b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding"}
    | {n for p in VERSIONS.values() for pair in p.wire_names.items() for n in pair}
)

# Names: non-empty, no upper case ASCII (the decoder refuses it), no NUL.
header_names = st.binary(min_size=1, max_size=40).filter(
    lambda n: n == n.lower() and b"\0" not in n and n not in SPECIAL_NAMES
)
header_values = st.binary(max_size=200).filter(lambda v: b"\0" not in v)


def _no_empty_repeats(headers):
    """SPDY forbids an empty value among NUL-separated ones: a repeated name
    keeps only its non-empty values (see test_empty_value_in_repeated_header)."""
    counts: dict[bytes, int] = {}
    for name, _ in headers:
        counts[name] = counts.get(name, 0) + 1
    return [(n, v) for n, v in headers if v or counts[n] == 1]


header_lists = st.lists(
    st.tuples(
        st.one_of(
            header_names, st.sampled_from([b"set-cookie", b"accept", b":x-pseudo"])
        ),
        header_values,
    ),
    max_size=30,
).map(_no_empty_repeats)


def decoded(codec: HeaderCodec, block: bytes, stream_id: int):
    """The header list of ``codec.decode`` (which also returns flags)."""
    result = codec.decode(block, stream_id)
    return result[0] if isinstance(result, tuple) else result


def grouped(headers):
    """What a header list looks like after encode -> decode: repeated names
    are sent as one NUL-joined field at the first one's place."""
    order: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        order.setdefault(name, []).append(value)
    return [(name, value) for name, values in order.items() for value in values]


@versions
@given(blocks=st.lists(header_lists, min_size=1, max_size=12), level=st.integers(0, 9))
@MODERATE
def test_header_blocks_round_trip_on_shared_zlib_state(version, blocks, level):
    profile = VERSIONS[version]
    sender = HeaderCodec(profile, compression_level=level)
    receiver = HeaderCodec(profile)
    for stream_id, headers in enumerate(blocks, start=1):
        block = sender.encode(headers)
        assert decoded(receiver, block, stream_id) == grouped(headers)


@versions
@given(blocks=st.lists(header_lists, min_size=1, max_size=8))
@FEW
def test_header_blocks_both_directions_interleaved(version, blocks):
    """Two codecs talking both ways: each direction has its own zlib stream."""
    profile = VERSIONS[version]
    a, b = HeaderCodec(profile), HeaderCodec(profile)
    for i, headers in enumerate(blocks):
        src, dst = (a, b) if i % 2 else (b, a)
        assert decoded(dst, src.encode(headers), i + 1) == grouped(headers)
        assert decoded(src, dst.encode(headers[::-1]), i + 1) == grouped(headers[::-1])


@versions
@given(
    values=st.lists(header_values.filter(bool), min_size=2, max_size=10),
    others=header_lists,
)
@FEW
def test_repeated_names_are_nul_joined_and_split(version, values, others):
    profile = VERSIONS[version]
    sender, receiver = HeaderCodec(profile), HeaderCodec(profile)
    headers = [(b"x-multi", v) for v in values] + [
        (n, v) for n, v in others if n != b"x-multi"
    ]
    block = sender.encode(headers)
    raw = receiver.inflate(block, 1)
    assert b"\0".join(values) in raw
    parsed = receiver.parse(raw, 1)
    parsed = parsed[0] if isinstance(parsed, tuple) else parsed
    assert parsed == grouped(headers)


@versions
@pytest.mark.parametrize(
    "headers",
    [
        [(b"set-cookie", b"a=1"), (b"set-cookie", b"")],
        [(b"x-empty", b""), (b"x-empty", b"")],
        [(b"vary", b""), (b"vary", b"accept")],
    ],
)
def test_empty_value_in_repeated_header(version, headers):
    profile = VERSIONS[version]
    sender, receiver = HeaderCodec(profile), HeaderCodec(profile)
    got = decoded(receiver, sender.encode(headers), 1)  # must not refuse the block
    assert [v for _, v in got if v] == [v for _, v in headers if v]


@versions
@given(data=st.data())
@settings(FEW, max_examples=25)
def test_requests_through_a_session_pair_keep_headers(version, data):
    """Header lists of many requests survive SPDYConnection on both ends
    (renamed to the wire names and back)."""
    c, s = make_pair(version)
    for _ in range(data.draw(st.integers(1, 6))):
        extra = data.draw(
            st.lists(
                st.tuples(
                    header_names.filter(lambda n: not n.startswith(b":")), header_values
                ),
                max_size=10,
            ).map(_no_empty_repeats)
        )
        headers = request(b"/p", b"GET", *extra)
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, headers, end_stream=True)
        _, server_events = pump(c, s)
        (received,) = [e for e in server_events if isinstance(e, ev.RequestReceived)]
        assert sorted(received.headers) == sorted(grouped(headers))
        s.send_headers(sid, [(b":status", b"204")], end_stream=True)
        pump(c, s)


# Sessions against arbitrary input


def normalise(events):
    out = []
    for e in events:
        if isinstance(e, ev.DataReceived):
            out.append(
                (
                    "data",
                    e.stream_id,
                    bytes(e.data),
                    e.flow_controlled_length,
                    e.stream_ended is not None,
                )
            )
        else:
            out.append(e)
    return out


@versions
@given(data=st.data())
@FEW
def test_session_events_do_not_depend_on_how_bytes_are_split(version, data):
    bodies = data.draw(st.lists(st.binary(max_size=3000), min_size=1, max_size=5))

    def run(split):
        c, s = make_pair(version)
        ids = []
        for body in bodies:
            sid = c.get_next_available_stream_id()
            ids.append(sid)
            c.send_headers(sid, request(b"/up", b"POST"))
            c.send_data(sid, body, end_stream=True)
        ce, se = pump(c, s, split)
        for sid, body in zip(ids, bodies, strict=True):
            s.send_headers(sid, [(b":status", b"200")])
            s.send_data(sid, body[::-1], end_stream=True)
        c.ping()
        ce2, se2 = pump(c, s, split)
        return normalise(ce + ce2), normalise(se + se2)

    cuts = data.draw(
        st.one_of(st.integers(1, 50), st.lists(st.integers(0, 4000), max_size=20))
    )
    assert run(cuts) == run(None)


@versions
@given(data=st.data())
@FEW
def test_header_blocks_inflated_as_they_arrive_keep_the_session_in_step(version, data):
    """Requests with header values under and over the server's limit (2 KiB;
    highly compressible, like a zlib bomb), each block inflated as its frame
    arrives in pieces: the same events as whole delivery, refused streams and
    the requests after them alike."""
    sizes = data.draw(st.lists(st.integers(0, 12000), min_size=1, max_size=5))
    fills = data.draw(st.lists(st.sampled_from([b"a", b"xyz", b"\x00q"]), min_size=5))

    def run(split):
        c, s = make_pair(version, server={"max_header_list_size": 2048})
        for size, fill in zip(sizes, fills, strict=False):
            value = (fill * size)[:size].replace(b"\x00", b"z")
            sid = c.get_next_available_stream_id()
            c.send_headers(
                sid, request(b"/", b"GET", (b"x-fill", value)), end_stream=True
            )
        return normalise(pump(c, s, split)[1])

    cuts = data.draw(st.one_of(st.integers(1, 40), st.lists(st.integers(0, 600))))
    assert run(cuts) == run(None)


def test_a_bomb_is_inflated_before_its_frame_is_complete():
    """A SYN_STREAM whose block inflates past the limit, fed a byte at a
    time: all but its last byte are inflated before the frame is complete."""
    c, s = make_pair("spdy/3.1")
    c.send_headers(
        1, request(b"/", b"GET", (b"x-big", b"a" * 200_000)), end_stream=True
    )
    wire = c.data_to_send()
    for offset in range(len(wire) - 1):
        assert s.receive_data(wire[offset : offset + 1]) == []
    assert s.codec.inflated_ahead == len(wire) - 1 - 8 - 10  # header, fixed fields
    (reset,) = s.receive_data(wire[-1:])
    assert (reset.stream_id, reset.error_code) == (1, StatusCode.FRAME_TOO_LARGE)
    assert s.codec.inflated_ahead == 0
    # Every byte of the bomb was inflated: the next block is read in step.
    c.send_headers(3, request(b"/after"), end_stream=True)
    received = s.receive_data(c.data_to_send())
    assert received[0].headers[1] == (b":path", b"/after")


@pytest.mark.parametrize("pieces_of", [None, 1, 7])
@pytest.mark.parametrize("size", [2047, 2048, 2049])
def test_inflate_limit_is_exact(size, pieces_of):
    """A block inflating to the limit (2 KiB) is kept; one byte more is
    refused, whole or inflated as it arrives."""
    profile = VERSIONS["spdy/3.1"]
    sender = HeaderCodec(profile)
    receiver = HeaderCodec(profile, max_header_list_size=2048)
    block = sender.compress(b"v" * size)
    if pieces_of:
        for start in range(0, len(block) - 1, pieces_of):
            receiver.inflate_ahead(
                block[start : min(start + pieces_of, len(block) - 1)], len(block)
            )
    if size <= 2048:
        assert receiver.inflate(block, 1) == b"v" * size
    else:
        with pytest.raises(HeaderListTooLarge):
            receiver.inflate(block, 1)
    # In step for the next block either way.
    assert receiver.inflate(sender.compress(b"next"), 3) == b"next"


@pytest.mark.parametrize("rest", [1, 50, 300, 1000])
def test_a_refused_block_is_drained_to_its_last_byte(rest):
    """A refused block inflating ``rest`` bytes past a whole drain step, and
    ending without a flush marker (legal: the deflate stream goes on in the
    next block), is drained to its last byte: the next block reads in step."""
    profile = VERSIONS["spdy/3.1"]
    sender = HeaderCodec(profile)
    receiver = HeaderCodec(profile, max_header_list_size=2048)
    block = sender.compress(b"v" * (2049 + 64 * 1024 + rest))
    block, marker = block[:-4], block[-4:]
    with pytest.raises(HeaderListTooLarge):
        receiver.inflate(block, 1)
    assert receiver.inflate(marker + sender.compress(b"next"), 3) == b"next"


def _fresh(version: str, client_side: bool) -> SPDYConnection:
    conn = SPDYConnection(SPDYConfiguration(client_side=client_side, version=version))
    conn.initiate_connection()
    conn.data_to_send()
    return conn


def _only_protocol_errors(conn: SPDYConnection, chunks) -> None:
    for chunk in chunks:
        try:
            conn.receive_data(chunk)
        except ProtocolError as exc:
            assert isinstance(exc.error_code, int)
            # After a session error the connection takes no more input.
            assert conn.receive_data(chunk) == []
            return
        except Exception as exc:  # pragma: no cover - the failure we look for
            raise AssertionError(
                f"receive_data raised {exc!r}, not a ProtocolError"
            ) from exc


@versions
@pytest.mark.parametrize("client_side", [True, False], ids=["client", "server"])
@given(chunks=st.lists(st.binary(max_size=200), max_size=10))
@FEW
def test_random_bytes_raise_only_protocol_error(version, client_side, chunks):
    _only_protocol_errors(_fresh(version, client_side), chunks)


def _stateful_frames(profile: VersionProfile) -> st.SearchStrategy:
    """Frames with small stream ids (so they hit real streams) and header
    blocks that are real compressed header lists or garbage."""
    sid = st.integers(0, 9)
    priority = st.integers(0, profile.lowest_priority)
    flags = st.sampled_from([0, 1, 2, 3])
    headers = st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b":method",
                    b":path",
                    b":status",
                    b":host",
                    b"host",
                    b"method",
                    b"url",
                    b"status",
                    b"version",
                    b":version",
                    b"x",
                    b"X-Upper",
                    b"set-cookie",
                    b":scheme",
                ]
            ),
            st.sampled_from(
                [
                    b"GET",
                    b"/",
                    b"200",
                    b"200 OK",
                    b"http://a/b",
                    b"",
                    b"HTTP/1.1",
                    b"https",
                    b"a\0b",
                ]
            ),
        ),
        max_size=8,
    )
    block = st.one_of(headers, st.binary(max_size=20))
    setting = st.tuples(
        st.integers(0, 9), st.integers(0, 0xFFFFFFFF), st.integers(0, 3)
    )
    return st.one_of(
        st.tuples(st.just("syn_stream"), sid, sid, priority, block, flags),
        st.tuples(st.just("syn_reply"), sid, block, flags),
        st.tuples(st.just("headers"), sid, block, flags),
        st.tuples(st.just("data"), sid, st.binary(max_size=100), flags),
        st.builds(RstStreamFrame, sid, st.integers(0, 12)),
        st.builds(SettingsFrame, st.lists(setting, max_size=3), st.integers(0, 1)),
        st.builds(PingFrame, st.integers(0, 6)),
        st.builds(GoAwayFrame, sid, st.integers(0, 2)),
        st.builds(WindowUpdateFrame, sid, st.one_of(st.integers(0, 70000), u31)),
        st.builds(
            UnknownFrame,
            st.sampled_from([FrameType.NOOP, FrameType.CREDENTIAL, 11, 99]),
        ),
    )


def _serialize(peer: RawPeer, item) -> bytes:
    if not isinstance(item, tuple):
        return peer.frame(item)
    kind = item[0]

    def block(b):
        return peer.block(b) if isinstance(b, list) else b

    if kind == "syn_stream":
        _, stream_id, assoc, priority, b, flags = item
        return peer.frame(SynStreamFrame(stream_id, assoc, priority, block(b), flags))
    if kind == "syn_reply":
        _, stream_id, b, flags = item
        return peer.frame(SynReplyFrame(stream_id, block(b), flags))
    if kind == "headers":
        _, stream_id, b, flags = item
        return peer.frame(HeadersFrame(stream_id, block(b), flags))
    _, stream_id, payload, flags = item
    return peer.frame(DataFrame(stream_id, payload, flags))


@versions
@pytest.mark.parametrize("client_side", [True, False], ids=["client", "server"])
@given(data=st.data())
@MODERATE
def test_random_frame_sequences_raise_only_protocol_error(version, client_side, data):
    """Structurally valid frames in any order, with header blocks that inflate
    (or not): receive_data returns events or raises a ProtocolError, nothing
    else, and what it queued always parses."""
    profile = VERSIONS[version]
    conn = _fresh(version, client_side)
    # Give the connection some streams of its own to talk about.
    if client_side:
        for _ in range(data.draw(st.integers(0, 3))):
            conn.send_headers(
                conn.get_next_available_stream_id(),
                request(),
                end_stream=data.draw(st.booleans()),
            )
    conn.data_to_send()
    peer = RawPeer(version, client_side=not client_side)
    items = data.draw(st.lists(_stateful_frames(profile), max_size=20))
    wire = b"".join(_serialize(peer, item) for item in items)
    cuts = data.draw(cut_points(len(wire)))
    _only_protocol_errors(conn, pieces(wire, cuts))
    # Whatever was queued is well formed.
    FrameParser(profile).feed(conn.data_to_send())
