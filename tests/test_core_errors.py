"""Bad input gets the protocol's answer.

A hand-driven peer (`tests.core_pair.RawPeer`) sends malformed or illegal
frames to a real `SPDYConnection`; each test checks the exact frame the
connection queued: RST_STREAM with the right status for stream errors (and the
session goes on), GOAWAY plus a raised `ProtocolError` for session errors (and
the session takes no more input).
"""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
import zlib

import pytest

from tests.core_pair import (
    ALL_VERSIONS,
    REQUEST,
    RESPONSE,
    RawPeer,
    parse,
    raw_peer_and,
    request,
)
from tornado_spdy.spdy import VERSIONS
from tornado_spdy.spdy import events as ev
from tornado_spdy.spdy.errors import (
    FrameSizeError,
    GoAwayStatus,
    HeaderBlockError,
    ProtocolError,
    StatusCode,
)
from tornado_spdy.spdy.frames import (
    GoAwayFrame,
    PingFrame,
    RstStreamFrame,
    SynReplyFrame,
    SynStreamFrame,
)

pytestmark = pytest.mark.parametrize("version", ALL_VERSIONS)

# SPDY/2 has RST_STREAM codes 1 to 7 only; the rest fall back (written out
# here rather than read from the profile, so the test checks the profile).
SPDY2_FALLBACK = {
    StatusCode.STREAM_IN_USE: StatusCode.PROTOCOL_ERROR,
    StatusCode.STREAM_ALREADY_CLOSED: StatusCode.INVALID_STREAM,
    StatusCode.FRAME_TOO_LARGE: StatusCode.PROTOCOL_ERROR,
}


def _only_a_local_reset(events):
    """Stream errors are reported as one StreamReset(remote_reset=False),
    also for streams the caller never saw."""
    return (
        len(events) == 1
        and isinstance(events[0], ev.StreamReset)
        and not events[0].remote_reset
    )


def on_wire(version: str, code: int) -> int:
    """The RST_STREAM status ``version`` puts on the wire for ``code``."""
    return SPDY2_FALLBACK.get(code, code) if version == "spdy/2" else code


def server_and_peer(version, **config):
    """A real server and a raw client, the server's SETTINGS already read."""
    return raw_peer_and(version, raw_is_client=True, **config)


def client_and_peer(version, **config):
    """A real client with stream 1 open (FIN sent) and a raw server."""
    peer, c = raw_peer_and(version, raw_is_client=False, **config)
    c.send_headers(1, request(), end_stream=True)
    peer.read_from(c)
    return peer, c


def assert_still_serves(peer, s, stream_id, headers=REQUEST):
    """The session goes on: a further request decodes to the headers sent
    (so the zlib state is still in step with the peer's)."""
    extra = [(b"x-after", b"still in sync"), (b"user-agent", b"raw-peer/1.0")]
    events = s.receive_data(peer.syn_stream(stream_id, [*headers, *extra], fin=True))
    assert [type(e) for e in events] == [ev.RequestReceived, ev.StreamEnded], events
    assert events[0].headers == [*headers, *extra]
    assert peer.read_from(s) == []


def session_error(conn, data, error=ProtocolError):
    """Feed ``data``; it must raise ``error`` (a ProtocolError) and queue one
    GOAWAY PROTOCOL_ERROR; the GOAWAY frame is returned."""
    with pytest.raises(error) as info:
        conn.receive_data(data)
    assert isinstance(info.value, ProtocolError)
    assert info.value.error_code == GoAwayStatus.PROTOCOL_ERROR
    (goaway,) = _frames(conn)
    assert isinstance(goaway, GoAwayFrame), goaway
    assert goaway.status_code == GoAwayStatus.PROTOCOL_ERROR
    # The session is over: more input, even valid, is ignored.
    assert conn.receive_data(PingFrame(1).serialize(conn.profile)) == []
    assert conn.receive_data(data) == []
    assert conn.data_to_send() == b""
    return goaway


def _frames(conn):
    return parse(conn.profile, conn.data_to_send())


# ------------------------------------------------------------ stream errors


def test_data_on_idle_stream(version):
    peer, s = server_and_peer(version)
    assert _only_a_local_reset(s.receive_data(peer.data(1, b"hello")))
    assert peer.read_from(s) == [RstStreamFrame(1, StatusCode.INVALID_STREAM)]
    assert_still_serves(peer, s, 3)


def test_data_on_idle_stream_client_side(version):
    peer, c = client_and_peer(version)
    # Stream 3 is the client's next id, stream 2 a push never announced.
    assert _only_a_local_reset(c.receive_data(peer.data(3, b"x")))
    assert peer.read_from(c) == [RstStreamFrame(3, StatusCode.INVALID_STREAM)]
    assert _only_a_local_reset(c.receive_data(peer.data(2, b"x")))
    assert peer.read_from(c) == [RstStreamFrame(2, StatusCode.INVALID_STREAM)]


def test_data_on_stream_zero(version):
    peer, s = server_and_peer(version)
    try:
        s.receive_data(peer.data(0, b"x"))
    except ProtocolError:
        assert isinstance(_frames(s)[0], GoAwayFrame)
        return
    assert peer.read_from(s) == [RstStreamFrame(0, StatusCode.INVALID_STREAM)]


def test_data_after_peer_fin(version):
    peer, s = server_and_peer(version)
    events = s.receive_data(peer.syn_stream(1, fin=True))
    assert [type(e) for e in events] == [ev.RequestReceived, ev.StreamEnded]
    events = s.receive_data(peer.data(1, b"late"))
    assert events == [
        ev.StreamReset(1, StatusCode.STREAM_ALREADY_CLOSED, remote_reset=False)
    ]
    expected = on_wire(version, StatusCode.STREAM_ALREADY_CLOSED)
    assert expected == (
        StatusCode.INVALID_STREAM
        if version == "spdy/2"
        else StatusCode.STREAM_ALREADY_CLOSED
    )
    assert peer.read_from(s) == [RstStreamFrame(1, expected)]
    # More frames the peer sent before seeing our reset are dropped quietly.
    assert s.receive_data(peer.data(1, b"later")) == []
    assert peer.read_from(s) == []
    assert_still_serves(peer, s, 3)


def test_data_after_fin_on_client(version):
    peer, c = client_and_peer(version)
    c.send_headers(3, request(b"/upload", b"POST"))  # our side stays open
    peer.read_from(c)
    events = c.receive_data(peer.syn_reply(3, fin=True) + peer.data(3, b"late"))
    assert [type(e) for e in events] == [
        ev.ResponseReceived,
        ev.StreamEnded,
        ev.StreamReset,
    ]
    assert events[-1] == ev.StreamReset(3, StatusCode.STREAM_ALREADY_CLOSED, False)
    assert peer.read_from(c) == [
        RstStreamFrame(3, on_wire(version, StatusCode.STREAM_ALREADY_CLOSED))
    ]
    # Stream 1 is closed both ways (forgotten): DATA there is refused, no event.
    assert c.receive_data(peer.syn_reply(1, fin=True)) != []
    assert _only_a_local_reset(c.receive_data(peer.data(1, b"late")))
    (rst,) = peer.read_from(c)
    assert rst.stream_id == 1
    assert rst.status_code in (
        StatusCode.INVALID_STREAM,
        on_wire(version, StatusCode.STREAM_ALREADY_CLOSED),
    )


def test_data_overrunning_the_stream_window(version):
    peer, s = server_and_peer(
        version, initial_window_size=1024, initial_session_window_size=1 << 20
    )
    events = s.receive_data(peer.syn_stream(1) + peer.data(1, b"a" * 1000))
    assert [type(e) for e in events] == [ev.RequestReceived, ev.DataReceived]
    assert peer.read_from(s) == []
    events = s.receive_data(peer.data(1, b"b" * 100))  # 1100 > 1024
    assert events == [ev.StreamReset(1, StatusCode.FLOW_CONTROL_ERROR, False)]
    assert peer.read_from(s) == [RstStreamFrame(1, StatusCode.FLOW_CONTROL_ERROR)]
    assert_still_serves(peer, s, 3)


def test_data_overrunning_the_session_window(version):
    """SPDY/3.1: the session window is the limit even when stream windows are
    large; overrunning it is a session error."""
    peer, s = server_and_peer(version, initial_window_size=1 << 20)
    s.receive_data(peer.syn_stream(1) + peer.syn_stream(3))
    chunk = b"z" * 16_000
    for sid in (1, 3, 1, 3):  # 64 000 bytes: within 64 KiB
        s.receive_data(peer.data(sid, chunk))
    assert peer.read_from(s) == []
    over = peer.data(3, b"z" * 2000)  # 66 000 > 65 536
    if version != "spdy/3.1":
        assert [type(e) for e in s.receive_data(over)] == [ev.DataReceived]
        assert peer.read_from(s) == []
        return
    session_error(s, over)


def test_duplicate_syn_reply(version):
    peer, c = client_and_peer(version)
    events = c.receive_data(peer.syn_reply(1))
    assert [type(e) for e in events] == [ev.ResponseReceived]
    events = c.receive_data(peer.syn_reply(1))
    assert events == [ev.StreamReset(1, StatusCode.STREAM_IN_USE, remote_reset=False)]
    expected = on_wire(version, StatusCode.STREAM_IN_USE)
    assert expected == (
        StatusCode.PROTOCOL_ERROR if version == "spdy/2" else StatusCode.STREAM_IN_USE
    )
    assert peer.read_from(c) == [RstStreamFrame(1, expected)]
    # The client carries on: a new request and its reply.
    c.send_headers(3, request(b"/next"), end_stream=True)
    peer.read_from(c)
    assert peer.decoded[-1][0] == 3  # its header block inflated fine on our side
    events = c.receive_data(peer.syn_reply(3, fin=True))
    assert [type(e) for e in events] == [ev.ResponseReceived, ev.StreamEnded]
    assert events[0].headers == list(RESPONSE)


def test_duplicate_syn_stream(version):
    peer, s = server_and_peer(version)
    s.receive_data(peer.syn_stream(1))
    events = s.receive_data(peer.syn_stream(1))
    assert events == [ev.StreamReset(1, StatusCode.PROTOCOL_ERROR, False)]
    assert peer.read_from(s) == [RstStreamFrame(1, StatusCode.PROTOCOL_ERROR)]


def test_header_block_over_max_header_list_size(version):
    peer, s = server_and_peer(version, max_header_list_size=4096)
    big = os.urandom(6000).hex().encode()  # does not compress much
    events = s.receive_data(peer.syn_stream(1, [*REQUEST, (b"x-big", big)]))
    assert _only_a_local_reset(events)
    expected = on_wire(version, StatusCode.FRAME_TOO_LARGE)
    assert expected == (
        StatusCode.PROTOCOL_ERROR if version == "spdy/2" else StatusCode.FRAME_TOO_LARGE
    )
    assert peer.read_from(s) == [RstStreamFrame(1, expected)]
    # The zlib state stayed in step: the next request (whose block refers back
    # to the refused one's history) decodes exactly.
    assert_still_serves(peer, s, 3)
    # A block that compresses very well but inflates over the limit, too.
    events = s.receive_data(peer.syn_stream(5, [*REQUEST, (b"x-big", b"a" * 60_000)]))
    assert _only_a_local_reset(events)
    assert peer.read_from(s) == [RstStreamFrame(5, expected)]
    assert_still_serves(peer, s, 7)


def test_reply_over_max_header_list_size_on_client(version):
    peer, c = client_and_peer(version, max_header_list_size=2048)
    events = c.receive_data(peer.syn_reply(1, [*RESPONSE, (b"x-big", b"v" * 5000)]))
    assert events == [ev.StreamReset(1, StatusCode.FRAME_TOO_LARGE, False)]
    assert peer.read_from(c) == [
        RstStreamFrame(1, on_wire(version, StatusCode.FRAME_TOO_LARGE))
    ]
    c.send_headers(3, request(), end_stream=True)
    peer.read_from(c)
    events = c.receive_data(
        peer.syn_reply(3, [*RESPONSE, (b"x-ok", b"v" * 500)], fin=True)
    )
    assert events[0] == ev.ResponseReceived(
        3, [*RESPONSE, (b"x-ok", b"v" * 500)], ev.StreamEnded(3)
    )


def test_more_than_max_header_fields(version):
    peer, s = server_and_peer(version, max_header_fields=10)
    many = [(b"x-h%d" % i, b"v") for i in range(20)]
    assert _only_a_local_reset(s.receive_data(peer.syn_stream(1, [*REQUEST, *many])))
    assert peer.read_from(s) == [
        RstStreamFrame(1, on_wire(version, StatusCode.FRAME_TOO_LARGE))
    ]
    assert_still_serves(peer, s, 3, REQUEST)


def test_repeated_values_count_as_one_field(version):
    """NUL-joined values are one field on the wire."""
    peer, s = server_and_peer(version, max_header_fields=10)
    cookies = [(b"cookie", b"c%d" % i) for i in range(30)]
    events = s.receive_data(peer.syn_stream(1, [*REQUEST, *cookies], fin=True))
    assert events[0].headers == [*REQUEST, *cookies]


def test_uppercase_header_name(version):
    peer, s = server_and_peer(version)
    wire = peer.wire_headers(REQUEST, "request") + [(b"X-Upper", b"1")]
    assert _only_a_local_reset(s.receive_data(peer.syn_stream(1, wire, raw=True)))
    assert peer.read_from(s) == [RstStreamFrame(1, StatusCode.PROTOCOL_ERROR)]
    assert_still_serves(peer, s, 3)


@pytest.mark.parametrize("missing", [b":method", b":path"])
def test_request_without_method_or_path(version, missing):
    peer, s = server_and_peer(version)
    headers = [(n, v) for n, v in REQUEST if n != missing]
    assert _only_a_local_reset(s.receive_data(peer.syn_stream(1, headers, fin=True)))
    assert peer.read_from(s) == [RstStreamFrame(1, StatusCode.PROTOCOL_ERROR)]
    assert 1 not in s.streams
    assert_still_serves(peer, s, 3)


def test_malformed_header_block(version):
    """A block that inflates but does not parse is a stream error."""
    peer, s = server_and_peer(version)
    raw = peer.serialize(peer.wire_headers(REQUEST, "request"))
    fmt = ">H" if peer.profile.length_size == 2 else ">I"
    overrun = struct.pack(fmt, 1) + struct.pack(fmt, 100) + b"ab"
    for sid, bad in ((1, raw[:-3]), (3, raw + b"junk"), (5, overrun), (7, b"")):
        assert _only_a_local_reset(
            s.receive_data(
                peer.frame(SynStreamFrame(sid, 0, 0, peer.codec.compress(bad)))
            )
        )
        assert peer.read_from(s) == [RstStreamFrame(sid, StatusCode.PROTOCOL_ERROR)]
    assert_still_serves(peer, s, 9)


# ----------------------------------------------------------- session errors


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\xff" * 64,
    ],
    ids=["http1", "h2-preface", "ones"],
)
def test_garbage_bytes(version, garbage):
    peer, s = server_and_peer(version)
    assert session_error(s, garbage) == GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR)


def test_garbage_on_client(version):
    peer, c = client_and_peer(version)
    goaway = session_error(c, b"HTTP/1.1 200 OK\r\n\r\n")
    assert goaway == GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR)


def test_frame_over_max_inbound_frame_size(version):
    peer, s = server_and_peer(version)
    header_only = struct.pack(">II", 1, 2 * 1024 * 1024)  # DATA, 2 MiB announced
    # Refused from the 8-byte header alone, before the payload arrives.
    session_error(s, header_only, FrameSizeError)


@pytest.mark.parametrize("kind", ["data", "syn_stream"])
def test_frame_over_configured_limit(version, kind):
    peer, s = server_and_peer(version, max_inbound_frame_size=1000)
    s.receive_data(peer.syn_stream(1))
    ok = peer.data(1, b"x" * 1000)
    assert [type(e) for e in s.receive_data(ok)] == [ev.DataReceived]
    if kind == "data":
        big = peer.data(1, b"x" * 1001)
    else:
        big = peer.frame(SynStreamFrame(3, 0, 0, os.urandom(991)))  # 10 + 991
    session_error(s, big[:20], FrameSizeError)


def test_wrong_version(version):
    peer, s = server_and_peer(version)
    other = VERSIONS["spdy/2" if version != "spdy/2" else "spdy/3"]
    goaway = session_error(s, PingFrame(1).serialize(other))
    assert goaway == GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR)
    # The GOAWAY itself speaks the session's version.
    peer2, s2 = server_and_peer(version)
    with pytest.raises(ProtocolError):
        s2.receive_data(
            b"\x80\x04\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
        )  # SPDY/4 PING
    (frame,) = peer2.read_from(s2)
    assert frame == GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR)


def test_syn_stream_with_even_id_from_client(version):
    peer, s = server_and_peer(version)
    s.receive_data(peer.syn_stream(1))
    goaway = session_error(s, peer.syn_stream(2))
    assert goaway == GoAwayFrame(1, GoAwayStatus.PROTOCOL_ERROR)


def test_syn_stream_with_id_zero(version):
    peer, s = server_and_peer(version)
    session_error(s, peer.syn_stream(0))


def test_stream_ids_going_backwards(version):
    peer, s = server_and_peer(version)
    events = s.receive_data(peer.syn_stream(5, fin=True))
    assert [type(e) for e in events] == [ev.RequestReceived, ev.StreamEnded]
    goaway = session_error(s, peer.syn_stream(3, fin=True))
    assert goaway == GoAwayFrame(5, GoAwayStatus.PROTOCOL_ERROR)


def test_push_ids_going_backwards(version):
    peer, c = client_and_peer(version)
    c.receive_data(peer.syn_reply(1))
    pushed = [(b":status", b"200"), *request(b"/a")]
    c.receive_data(peer.syn_stream(4, pushed, associated=1))
    session_error(c, peer.syn_stream(2, pushed, associated=1))


def test_header_block_that_does_not_inflate(version):
    peer, s = server_and_peer(version)
    block = b"\x78\xbb" + os.urandom(40)  # a zlib header, then noise
    session_error(s, peer.frame(SynStreamFrame(1, 0, 0, block)), HeaderBlockError)


def test_header_block_with_the_wrong_dictionary(version):
    peer, s = server_and_peer(version)
    other = VERSIONS["spdy/2" if version != "spdy/2" else "spdy/3"]
    co = zlib.compressobj(zdict=other.dictionary)
    block = co.compress(peer.serialize(REQUEST)) + co.flush(zlib.Z_SYNC_FLUSH)
    session_error(s, peer.frame(SynStreamFrame(1, 0, 0, block)), HeaderBlockError)


@pytest.mark.parametrize("size", [10, 100 * 1024])
def test_header_block_that_ends_the_zlib_stream(version, size):
    """A block compressed to the end (a final deflate block), here with a
    byte after it: the session's inflater can take no later block, so the
    session ends at once. (Found by the fuzzer: over the header limit, the
    drain of such a block looped forever, zlib keeping the byte after the
    end unconsumed.)"""
    peer, s = server_and_peer(version)
    profile = VERSIONS[version]
    fmt = ">H" if profile.length_size == 2 else ">I"
    value = b"v" * min(size, 0xFFFF if profile.length_size == 2 else size)
    raw = struct.pack(fmt, 1) + struct.pack(fmt, 1) + b"x"
    raw += struct.pack(fmt, len(value)) + value
    co = zlib.compressobj(zdict=profile.dictionary)
    block = co.compress(raw) + co.flush(zlib.Z_FINISH) + b"\0"
    started = time.process_time()
    session_error(s, peer.frame(SynStreamFrame(1, 0, 0, block)), HeaderBlockError)
    assert time.process_time() - started < 1.0


def zlib_bomb(profile, size=100 * 1024 * 1024) -> bytes:
    """A header block that inflates to ``size`` bytes, built without holding
    them (1 MiB at a time)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=profile.dictionary)
    fmt = ">H" if profile.length_size == 2 else ">I"
    value_length = min(size, 0xFFFF if profile.length_size == 2 else size)
    parts = [
        co.compress(
            struct.pack(fmt, 1)
            + struct.pack(fmt, 1)
            + b"x"
            + struct.pack(fmt, value_length)
        )
    ]
    chunk = b"\0" * (1024 * 1024)
    for _ in range(size // len(chunk)):
        parts.append(co.compress(chunk))
    parts.append(co.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)


@pytest.mark.parametrize("frame", ["syn_stream", "syn_reply"])
def test_zlib_bomb(version, frame):
    profile = VERSIONS[version]
    block = zlib_bomb(profile)
    assert len(block) < 1024 * 1024  # it fits the default frame size limit
    if frame == "syn_stream":
        peer, conn = server_and_peer(version)
        wire = peer.frame(SynStreamFrame(1, 0, 0, block))
    else:
        peer, conn = client_and_peer(version)
        wire = peer.frame(SynReplyFrame(1, block))
    del block
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ProtocolError) as info:
            conn.receive_data(wire)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(info.value, HeaderBlockError)
    assert elapsed < 2.0
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"
    assert _frames(conn) == [GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR)]
    assert conn.receive_data(wire) == []


def test_unknown_control_frames_are_ignored(version):
    peer, s = server_and_peer(version)
    unknown = (
        b"\x80" + bytes([VERSIONS[version].version]) + b"\x00\x63\x00\x00\x00\x03abc"
    )
    assert s.receive_data(unknown) == [ev.UnknownFrameReceived(0x63)]
    assert peer.read_from(s) == []
    assert_still_serves(peer, s, 1)


# ------------------------------------------- what is ignored without a word


def test_reset_of_finished_stream_is_ignored(version):
    peer, s = server_and_peer(version)
    s.receive_data(peer.syn_stream(1, fin=True))
    s.send_headers(1, RESPONSE, end_stream=True)
    peer.read_from(s)
    assert 1 not in s.streams
    # Reported (a refused push tells a server something), never answered.
    assert s.receive_data(peer.rst(1, StatusCode.CANCEL)) == [
        ev.StreamReset(1, StatusCode.CANCEL, True)
    ]
    assert s.receive_data(peer.rst(1, StatusCode.INTERNAL_ERROR)) == [
        ev.StreamReset(1, StatusCode.INTERNAL_ERROR, True)
    ]
    assert s.data_to_send() == b""


def test_reset_of_finished_stream_on_client_is_ignored(version):
    peer, c = client_and_peer(version)
    c.receive_data(peer.syn_reply(1, fin=True))
    assert c.receive_data(peer.rst(1, StatusCode.CANCEL)) == [
        ev.StreamReset(1, StatusCode.CANCEL, True)
    ]
    assert c.data_to_send() == b""


def test_window_update_for_closed_stream_is_ignored(version):
    peer, s = server_and_peer(version)
    s.receive_data(peer.syn_stream(1, fin=True))
    s.send_headers(1, RESPONSE)
    s.send_data(1, b"x" * 100, end_stream=True)
    peer.read_from(s)
    assert s.receive_data(peer.window_update(1, 100)) == []
    assert s.data_to_send() == b""
    # and for a stream we reset
    s.receive_data(peer.syn_stream(3))
    s.reset_stream(3)
    peer.read_from(s)
    assert s.receive_data(peer.window_update(3, 1000)) == []
    assert s.data_to_send() == b""


def test_window_update_overflowing_a_stream_window(version):
    peer, s = server_and_peer(version)
    s.receive_data(peer.syn_stream(1))
    events = s.receive_data(peer.window_update(1, 0x7FFFFFFF))
    assert events == [ev.StreamReset(1, StatusCode.FLOW_CONTROL_ERROR, False)]
    assert peer.read_from(s) == [RstStreamFrame(1, StatusCode.FLOW_CONTROL_ERROR)]


def test_frames_after_our_reset_are_dropped(version):
    peer, s = server_and_peer(version)
    s.receive_data(peer.syn_stream(1))
    s.reset_stream(1, StatusCode.CANCEL)
    peer.read_from(s)
    # The peer sent these before it saw the reset.
    events = s.receive_data(
        peer.data(1, b"in flight")
        + peer.headers(1, [(b"x", b"y")])
        + peer.window_update(1, 10)
    )
    assert events == []
    assert peer.read_from(s) == []
    assert_still_serves(peer, s, 3)


def test_receive_data_raises_only_protocol_errors(version):
    """A catalogue of session errors, each a ProtocolError with a GOAWAY."""

    def cases(peer):
        return [
            b"\x00\x00\x00\x01\x00\xff\xff\xff",  # DATA of 16 MiB
            b"\x80\x09\x00\x01\x00\x00\x00\x00",  # SPDY/9
            peer.frame(SynStreamFrame(1, 0, 0, b"nonsense")),
            # PING, RST_STREAM and WINDOW_UPDATE of the wrong length
            peer.frame(PingFrame(1))[:7] + b"\x07" + b"\x00" * 7,
            peer.rst(1, 5)[:7] + b"\x04" + b"\x00" * 4,
            peer.window_update(1, 5)[:7] + b"\x0c" + b"\x00" * 12,
            # SETTINGS whose count says more entries than it has
            peer.settings({4: 100})[:8]
            + b"\x00\x00\x00\x05"
            + peer.settings({4: 100})[12:],
            peer.frame(SynStreamFrame(1, 0, 0, b""))[:7] + b"\x04" + b"\x00" * 4,
        ]

    for index in range(len(cases(RawPeer(version)))):
        peer, s = server_and_peer(version)
        data = cases(peer)[index]
        try:
            s.receive_data(data)
        except ProtocolError:
            frames = _frames(s)
            assert frames and isinstance(frames[-1], GoAwayFrame)
        except Exception as exc:  # pragma: no cover
            pytest.fail(f"case {index}: {exc!r} is not a ProtocolError")
        else:
            pytest.fail(f"case {index} raised nothing")
