"""A client and a server `SPDYConnection` wired together: requests, responses,
pushes, resets, pings, GOAWAY, trailers, flow control (stream and SPDY/3.1
session windows), SETTINGS and stream limits, in every SPDY version."""

from __future__ import annotations

import hashlib
import random

import pytest

from tests.core_pair import (
    ALL_VERSIONS,
    RESPONSE,
    make_pair,
    of_type,
    parse,
    pump,
    raw_peer_and,
    request,
)
from tornado_spdy.spdy import events as ev
from tornado_spdy.spdy.errors import (
    ConnectionClosedError,
    FlowControlError,
    SPDYError,
    StatusCode,
    StreamClosedError,
    TooManyStreamsError,
)
from tornado_spdy.spdy.frames import (
    FLAG_FIN,
    FLAG_UNIDIRECTIONAL,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingId,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)

pytestmark = pytest.mark.parametrize("version", ALL_VERSIONS)

WINDOW = 64 * 1024


def push_request(path: bytes):
    return request(path)


def no_resets(*event_lists):
    for events in event_lists:
        assert not of_type(events, ev.StreamReset), events


# ---------------------------------------------------------------- requests


def test_get_request_and_response(version):
    c, s = make_pair(version)
    sid = c.get_next_available_stream_id()
    assert sid == 1
    headers = request(b"/x?y=1", b"GET", (b"accept", b"text/html"), (b"accept", b"*/*"))
    c.send_headers(sid, headers, end_stream=True)
    ce, se = pump(c, s)
    assert ce == []
    (req,) = of_type(se, ev.RequestReceived)
    assert req.stream_id == sid
    assert req.headers == headers
    assert req.stream_ended == ev.StreamEnded(sid)
    assert of_type(se, ev.StreamEnded) == [ev.StreamEnded(sid)]

    s.send_headers(
        sid, [(b":status", b"404"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    )
    s.send_data(sid, b"not here", end_stream=True)
    ce, se = pump(c, s)
    assert se == []
    resp, data, ended = ce
    assert resp == ev.ResponseReceived(
        sid,
        [(b":status", b"404"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
        reason=b"Not Found",  # SPDY's status line has one; the core adds it
    )
    assert isinstance(data, ev.DataReceived) and bytes(data.data) == b"not here"
    assert data.flow_controlled_length == 8 and data.stream_ended == ended
    assert ended == ev.StreamEnded(sid)
    assert c.streams == {} and s.streams == {}
    assert c.get_next_available_stream_id() == 3


def test_status_reason_phrase(version):
    """SPDY's status line carries a reason phrase: a custom one given with
    the code reaches the client beside ``:status``, which holds the code
    alone, as in h2."""
    c, s = make_pair(version)
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request(), end_stream=True)
    pump(c, s)
    s.send_headers(sid, [(b":status", b"299 Custom Thing")], end_stream=True)
    ce, _ = pump(c, s)
    assert ce[0].headers == [(b":status", b"299")]
    assert ce[0].reason == b"Custom Thing"


def test_post_with_body(version):
    c, s = make_pair(version)
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request(b"/form", b"POST", (b"content-type", b"text/plain")))
    c.send_data(sid, b"hello ")
    c.send_data(sid, b"world", end_stream=True)
    _, se = pump(c, s)
    req, d1, d2, end = se
    assert isinstance(req, ev.RequestReceived) and req.stream_ended is None
    assert dict(req.headers)[b":method"] == b"POST"
    assert [bytes(d.data) for d in (d1, d2)] == [b"hello ", b"world"]
    assert d2.stream_ended == end == ev.StreamEnded(sid)
    s.send_headers(sid, [(b":status", b"201")], end_stream=True)
    ce, _ = pump(c, s)
    assert ce == [
        ev.ResponseReceived(
            sid, [(b":status", b"201")], ev.StreamEnded(sid), reason=b"Created"
        ),
        ev.StreamEnded(sid),
    ]
    with pytest.raises(StreamClosedError):
        c.send_data(sid, b"late")


def test_str_headers_are_accepted(version):
    c, s = make_pair(version)
    c.send_headers(
        1,
        [
            (":method", "GET"),
            (":path", "/"),
            (":scheme", "https"),
            (":authority", "h"),
            ("X-Mixed-Case", "v"),
        ],
        end_stream=True,
    )
    _, se = pump(c, s)
    assert of_type(se, ev.RequestReceived)[0].headers[-1] == (b"x-mixed-case", b"v")


def test_stream_ids_of_a_client_are_odd_and_increasing(version):
    c, s = make_pair(version)
    ids = []
    for _ in range(5):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, request(), end_stream=True)
        ids.append(sid)
    assert ids == [1, 3, 5, 7, 9]
    with pytest.raises(SPDYError):
        c.send_headers(5, request())  # going backwards is the caller's mistake
    _, se = pump(c, s)
    assert [e.stream_id for e in of_type(se, ev.RequestReceived)] == ids


# -------------------------------------------------------------------- push


def test_push_streams(version):
    c, s = make_pair(version)
    c.send_headers(1, request(b"/index.html"), end_stream=True)
    pump(c, s)
    s.send_headers(1, RESPONSE)
    pushes = [(b"/a.js", b"js"), (b"/b.css", b"css"), (b"/c.png", b"png")]
    ids = []
    for path, _ in pushes:
        pid = s.get_next_available_stream_id()
        ids.append(pid)
        s.push_stream(1, pid, push_request(path))
    for pid, (_, body) in zip(ids, pushes, strict=True):
        s.send_headers(pid, [(b":status", b"200"), (b"content-type", b"text/" + body)])
        s.send_data(pid, body, end_stream=True)
    s.send_data(1, b"<html>", end_stream=True)
    wire = s.data_to_send()

    frames = parse(version, wire)
    syns = [f for f in frames if isinstance(f, SynStreamFrame)]
    assert [f.stream_id for f in syns] == ids == [2, 4, 6]
    for f in syns:
        assert f.associated_stream_id == 1
        assert f.flags & FLAG_UNIDIRECTIONAL

    ce = c.receive_data(wire)
    assert not c.data_to_send()  # nothing refused
    pushed = of_type(ce, ev.PushedStreamReceived)
    assert [p.pushed_stream_id for p in pushed] == ids
    for p, (path, _) in zip(pushed, pushes, strict=True):
        assert p.parent_stream_id == 1
        assert sorted(p.headers) == sorted(push_request(path))
    for pid, (_, body) in zip(ids, pushes, strict=True):
        mine = [
            e
            for e in ce
            if getattr(e, "stream_id", None) == pid
            or getattr(e, "pushed_stream_id", None) == pid
        ]
        kinds = [type(e) for e in mine]
        assert kinds == [
            ev.PushedStreamReceived,
            ev.ResponseReceived,
            ev.DataReceived,
            ev.StreamEnded,
        ], mine
        assert mine[1].headers == [
            (b":status", b"200"),
            (b"content-type", b"text/" + body),
        ]
        assert bytes(mine[2].data) == body
    parent = [e for e in ce if getattr(e, "stream_id", None) == 1]
    assert [type(e) for e in parent] == [
        ev.ResponseReceived,
        ev.DataReceived,
        ev.StreamEnded,
    ]
    assert c.streams == {} and s.streams == {}


def test_push_stream_ids_must_be_even_and_increasing(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.push_stream(1, 2, push_request(b"/a"))
    with pytest.raises(SPDYError):
        s.push_stream(1, 2, push_request(b"/again"))
    with pytest.raises(SPDYError):
        s.push_stream(1, 5, push_request(b"/odd"))
    s.push_stream(1, 6, push_request(b"/skip-is-fine"))
    assert s.get_next_available_stream_id() == 8
    with pytest.raises(SPDYError):
        c.push_stream(1, 3, push_request(b"/client"))  # clients cannot push


def test_push_syn_stream_goes_out_before_parent_data(version):
    """The push's SYN_STREAM precedes the parent's DATA even though the push's
    own headers were not sent yet."""
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.send_headers(1, RESPONSE)
    s.push_stream(1, 2, push_request(b"/early.js"))
    s.push_stream(1, 4, push_request(b"/early.css"))
    s.send_data(1, b"<html>")
    wire = s.data_to_send()
    frames = parse(version, wire)
    kinds = [(type(f).__name__, getattr(f, "stream_id", None)) for f in frames]
    assert kinds == [
        ("SynReplyFrame", 1),
        ("SynStreamFrame", 2),
        ("SynStreamFrame", 4),
        ("DataFrame", 1),
    ]
    assert frames[1].associated_stream_id == 1 and frames[2].associated_stream_id == 1
    ce = c.receive_data(wire)
    assert [type(e) for e in ce] == [
        ev.ResponseReceived,
        ev.PushedStreamReceived,
        ev.PushedStreamReceived,
        ev.DataReceived,
    ]
    assert [e.pushed_stream_id for e in ce[1:3]] == [2, 4]
    assert sorted(ce[1].headers) == sorted(push_request(b"/early.js"))
    assert not c.data_to_send()


def test_push_syn_stream_goes_out_before_parent_fin(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.push_stream(1, 2, push_request(b"/early.js"))
    s.send_headers(1, RESPONSE, end_stream=True)
    frames = parse(version, s.data_to_send())
    assert [type(f) for f in frames] == [SynStreamFrame, SynReplyFrame]
    assert frames[1].flags & FLAG_FIN


def test_push_response_after_early_syn_stream(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.send_headers(1, RESPONSE)
    s.push_stream(1, 2, push_request(b"/early.js"))
    s.send_data(1, b"<html>", end_stream=True)  # flushes the push's SYN_STREAM
    ce, _ = pump(c, s)
    assert of_type(ce, ev.PushedStreamReceived)[0].pushed_stream_id == 2
    s.send_headers(2, [(b":status", b"200"), (b"content-type", b"text/javascript")])
    s.send_data(2, b"js", end_stream=True)
    wire = s.data_to_send()
    # The response of a push already announced goes in HEADERS, not SYN_REPLY.
    assert not any(isinstance(f, SynReplyFrame) for f in parse(version, wire))
    ce = c.receive_data(wire)
    assert [type(e) for e in ce] == [
        ev.ResponseReceived,
        ev.DataReceived,
        ev.StreamEnded,
    ]
    assert ce[0].headers == [
        (b":status", b"200"),
        (b"content-type", b"text/javascript"),
    ]


def test_push_refused_when_client_disables_push(version):
    c, s = make_pair(version, client={"enable_push": False})
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.push_stream(1, 2, push_request(b"/a.js"))
    s.send_headers(2, [(b":status", b"200")])
    ce = c.receive_data(s.data_to_send())
    assert not of_type(ce, ev.PushedStreamReceived)
    assert parse(version, c.data_to_send()) == [
        RstStreamFrame(2, StatusCode.REFUSED_STREAM)
    ]


# ------------------------------------------------------------------ resets


def test_client_resets_stream(version):
    c, s = make_pair(version)
    c.send_headers(1, request(b"/up", b"POST"))
    c.send_data(1, b"part")
    pump(c, s)
    c.reset_stream(1, StatusCode.CANCEL)
    wire = c.data_to_send()
    assert parse(version, wire) == [RstStreamFrame(1, StatusCode.CANCEL)]
    se = s.receive_data(wire)
    assert se == [ev.StreamReset(1, StatusCode.CANCEL, remote_reset=True)]
    assert se[0].remote_reset
    assert 1 not in s.streams and 1 not in c.streams
    with pytest.raises(StreamClosedError):
        s.send_data(1, b"reply")
    with pytest.raises(StreamClosedError):
        c.send_data(1, b"more")
    assert s.data_to_send() == b""  # no answer to a reset


def test_send_headers_on_a_reset_stream_raises_stream_closed(version):
    c, s = make_pair(version)
    c.send_headers(1, request(b"/up", b"POST"))
    pump(c, s)
    c.reset_stream(1)
    pump(c, s)
    with pytest.raises(StreamClosedError):
        s.send_headers(1, RESPONSE)  # a handler answering a cancelled request
    with pytest.raises(StreamClosedError):
        c.send_headers(1, request())


def test_server_resets_stream(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    c.send_headers(3, request(), end_stream=True)
    pump(c, s)
    s.reset_stream(3, StatusCode.INTERNAL_ERROR)
    s.send_headers(1, RESPONSE, end_stream=True)
    ce, se = pump(c, s)
    assert ev.StreamReset(3, StatusCode.INTERNAL_ERROR, True) in ce
    assert of_type(ce, ev.ResponseReceived)[0].stream_id == 1
    assert se == []
    assert c.streams == {} and s.streams == {}


def test_reset_status_mapped_to_version(version):
    """Codes SPDY/2 lacks go out as the nearest it has."""
    c, s = make_pair(version)
    c.send_headers(1, request())
    pump(c, s)
    s.reset_stream(1, StatusCode.STREAM_IN_USE)
    (rst,) = parse(version, s.data_to_send())
    expected = (
        StatusCode.PROTOCOL_ERROR if version == "spdy/2" else StatusCode.STREAM_IN_USE
    )
    assert rst == RstStreamFrame(1, expected)


def test_reset_of_promised_push_sends_nothing(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.push_stream(1, 2, push_request(b"/a.js"))
    s.reset_stream(2)
    assert s.data_to_send() == b""
    s.send_headers(1, RESPONSE)
    s.send_data(1, b"x", end_stream=True)
    assert not any(
        isinstance(f, SynStreamFrame) for f in parse(version, s.data_to_send())
    )


def test_client_resetting_a_push(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.push_stream(1, 2, push_request(b"/a.js"))
    s.send_headers(2, [(b":status", b"200")])
    ce, _ = pump(c, s)
    assert of_type(ce, ev.PushedStreamReceived)
    c.reset_stream(2, StatusCode.CANCEL)
    ce, se = pump(c, s)
    assert se == [ev.StreamReset(2, StatusCode.CANCEL, True)]
    with pytest.raises(StreamClosedError):
        s.send_data(2, b"js")


# ------------------------------------------------------------------- pings


def test_pings_both_ways(version):
    c, s = make_pair(version)
    data = c.ping()
    assert len(data) == 4 and int.from_bytes(data, "big") % 2 == 1
    ce, se = pump(c, s)
    assert se == [ev.PingReceived(data)]
    assert ce == [ev.PingAckReceived(data)]

    data = s.ping()
    assert int.from_bytes(data, "big") % 2 == 0
    wire = s.data_to_send()
    assert parse(version, wire) == [PingFrame(int.from_bytes(data, "big"))]
    ce = c.receive_data(wire)
    assert ce == [ev.PingReceived(data)]
    echo = c.data_to_send()
    assert echo == wire  # the echo is the same frame
    assert s.receive_data(echo) == [ev.PingAckReceived(data)]

    chosen = (0x1234567).to_bytes(4, "big")
    assert c.ping(chosen) == chosen
    ce, se = pump(c, s)
    assert se == [ev.PingReceived(chosen)] and ce == [ev.PingAckReceived(chosen)]
    with pytest.raises(SPDYError):
        c.ping((2).to_bytes(4, "big"))  # the server's parity


def test_many_pings_acked_once_each(version):
    c, s = make_pair(version)
    sent = [c.ping() for _ in range(10)]
    ce, se = pump(c, s)
    assert [e.ping_data for e in ce] == sent
    assert len(set(sent)) == 10
    # An echo nobody asked for (a second copy) is ignored.
    assert (
        c.receive_data(PingFrame(int.from_bytes(sent[0], "big")).serialize(c.profile))
        == []
    )


# ------------------------------------------------------------------ GOAWAY


def test_goaway_refuses_streams_above_last_id(version):
    c, s = make_pair(version)
    for sid in (1, 3, 5, 7):
        c.send_headers(sid, request(b"/%d" % sid))
    _, se = pump(c, s)
    assert len(of_type(se, ev.RequestReceived)) == 4
    s.close_connection(last_stream_id=3)
    wire = s.data_to_send()
    assert parse(version, wire) == [GoAwayFrame(3, 0)]
    ce = c.receive_data(wire)
    assert ce[0] == ev.ConnectionTerminated(0, 3)
    assert ce[0].last_stream_id == 3
    assert ce[1:] == [
        ev.StreamReset(5, StatusCode.REFUSED_STREAM, True),
        ev.StreamReset(7, StatusCode.REFUSED_STREAM, True),
    ]
    assert sorted(c.streams) == [1, 3]
    with pytest.raises(ConnectionClosedError):
        c.send_headers(c.get_next_available_stream_id(), request())
    # Streams up to last_stream_id finish normally.
    for sid in (1, 3):
        c.send_data(sid, b"body", end_stream=True)
        s.send_headers(sid, RESPONSE)
        s.send_data(sid, b"ok", end_stream=True)
    ce, se = pump(c, s)
    assert [e.stream_id for e in of_type(ce, ev.StreamEnded)] == [1, 3]
    assert {e.stream_id for e in of_type(se, ev.DataReceived)} == {1, 3}
    no_resets(ce)


def test_goaway_default_last_id_and_status(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    c.send_headers(3, request(), end_stream=True)
    pump(c, s)
    s.close_connection(error_code=2)
    ce, _ = pump(c, s)
    assert ce == [ev.ConnectionTerminated(2, 3)]


def test_client_goaway_stops_pushes(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    c.close_connection()
    _, se = pump(c, s)
    assert se == [ev.ConnectionTerminated(0, 0)]
    with pytest.raises(ConnectionClosedError):
        s.push_stream(1, 2, push_request(b"/a"))
    s.send_headers(1, RESPONSE, end_stream=True)  # the open stream still answers
    ce, _ = pump(c, s)
    assert of_type(ce, ev.ResponseReceived)


def test_new_streams_after_goaway_sent_are_ignored(version):
    peer, s = raw_peer_and(version)
    s.receive_data(peer.syn_stream(1, request()))
    s.close_connection()
    assert parse(version, s.data_to_send()) == [GoAwayFrame(1, 0)]
    assert s.receive_data(peer.syn_stream(3, request())) == []
    assert s.data_to_send() == b""


# ---------------------------------------------------------------- trailers


def test_trailers_both_ways(version):
    c, s = make_pair(version)
    c.send_headers(1, request(b"/up", b"POST"))
    c.send_data(1, b"body")
    c.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
    wire = c.data_to_send()
    assert isinstance(parse(version, wire)[-1], HeadersFrame)
    se = s.receive_data(wire)
    assert [type(e) for e in se] == [
        ev.RequestReceived,
        ev.DataReceived,
        ev.TrailersReceived,
        ev.StreamEnded,
    ]
    assert se[2] == ev.TrailersReceived(1, [(b"x-checksum", b"abc")], ev.StreamEnded(1))

    s.send_headers(1, RESPONSE)
    s.send_data(1, b"reply")
    s.send_headers(
        1, [(b"grpc-status", b"0"), (b"x-t", b"1"), (b"x-t", b"2")], end_stream=True
    )
    ce, _ = pump(c, s)
    assert [type(e) for e in ce] == [
        ev.ResponseReceived,
        ev.DataReceived,
        ev.TrailersReceived,
        ev.StreamEnded,
    ]
    assert ce[2].headers == [(b"grpc-status", b"0"), (b"x-t", b"1"), (b"x-t", b"2")]
    assert ce[2].stream_ended == ev.StreamEnded(1)


def test_trailers_without_fin_then_data_fin(version):
    c, s = make_pair(version)
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.send_headers(1, RESPONSE)
    s.send_headers(1, [(b"x-more", b"1")])
    s.end_stream(1)
    ce, _ = pump(c, s)
    assert [type(e) for e in ce] == [
        ev.ResponseReceived,
        ev.TrailersReceived,
        ev.DataReceived,
        ev.StreamEnded,
    ]
    assert ce[1].stream_ended is None


# ------------------------------------------------------------ flow control


def send_within_window(sender, stream_id, body, pos, end=True):
    """Send ``body[pos:]`` as far as the window allows; the new position."""
    while pos < len(body):
        window = sender.local_flow_control_window(stream_id)
        n = min(len(body) - pos, sender.max_outbound_frame_size, window)
        if n <= 0:
            break
        sender.send_data(
            stream_id, body[pos : pos + n], end_stream=end and pos + n == len(body)
        )
        pos += n
    return pos


def transfer(c, s, sender, stream_id, body):
    """Move ``body`` over ``stream_id`` from ``sender`` (c or s), the receiver
    acknowledging what arrives; returns what the receiver got."""
    receiver = s if sender is c else c
    got = bytearray()
    pos = 0
    ended = False
    idle_rounds = 0
    while not ended:
        before = pos
        pos = send_within_window(sender, stream_id, body, pos)
        ce, se = pump(c, s)
        no_resets(ce, se)
        events = se if receiver is s else ce
        received = 0
        for e in events:
            if isinstance(e, ev.DataReceived) and e.stream_id == stream_id:
                got += e.data
                received += len(e.data)
                receiver.acknowledge_received_data(e.flow_controlled_length, stream_id)
            if isinstance(e, ev.StreamEnded) and e.stream_id == stream_id:
                ended = True
        if stream_id in receiver.streams:
            assert receiver.remote_flow_control_window(stream_id) >= 0
        idle_rounds = 0 if (received or pos != before) else idle_rounds + 1
        assert idle_rounds < 3, f"transfer stalled at {pos} of {len(body)}"
    return bytes(got)


def test_ten_megabytes_both_ways(version):
    c, s = make_pair(version)
    rng = random.Random(version)
    up = rng.randbytes(10 * 1024 * 1024)
    down = rng.randbytes(10 * 1024 * 1024)
    c.send_headers(1, request(b"/echo", b"PUT"))
    pump(c, s)
    got = transfer(c, s, c, 1, up)
    assert hashlib.sha256(got).digest() == hashlib.sha256(up).digest()
    s.send_headers(1, RESPONSE)
    got = transfer(c, s, s, 1, down)
    assert len(got) == len(down) and got == down
    assert c.streams == {} and s.streams == {}


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_flow_control_stops_the_sender(version, direction):
    c, s = make_pair(version)
    c.send_headers(1, request(b"/big", b"POST"))
    pump(c, s)
    if direction == "download":
        s.send_headers(1, RESPONSE)
    sender, receiver = (c, s) if direction == "upload" else (s, c)
    assert sender.local_flow_control_window(1) == WINDOW
    body = bytes(range(256)) * 1024  # 256 KiB, four windows
    pos = send_within_window(sender, 1, body, 0)
    assert pos == WINDOW
    assert sender.local_flow_control_window(1) == 0
    with pytest.raises(FlowControlError):
        sender.send_data(1, b"x")
    ce, se = pump(c, s)
    no_resets(ce, se)
    events = se if receiver is s else ce
    data = of_type(events, ev.DataReceived)
    assert sum(len(d.data) for d in data) == WINDOW
    assert receiver.remote_flow_control_window(1) == 0
    # Without acknowledgement nothing moves, however often we pump.
    assert send_within_window(sender, 1, body, pos) == pos
    assert pump(c, s) == ([], [])

    # Less than half a window back: no WINDOW_UPDATE yet.
    receiver.acknowledge_received_data(1000, 1)
    assert receiver.data_to_send() == b""
    receiver.acknowledge_received_data(WINDOW - 1000, 1)
    wire = receiver.data_to_send()
    updates = parse(version, wire)
    assert WindowUpdateFrame(1, WINDOW) in updates
    if version == "spdy/3.1":
        assert WindowUpdateFrame(0, WINDOW) in updates
    got = sender.receive_data(wire)
    assert ev.WindowUpdated(1, WINDOW) in got
    assert sender.local_flow_control_window(1) == WINDOW
    assert receiver.remote_flow_control_window(1) == WINDOW


def test_initial_window_size_change_applies_to_open_streams(version):
    c, s = make_pair(version, server={"initial_session_window_size": 4 * 1024 * 1024})
    c.send_headers(1, request(b"/a", b"POST"))
    c.send_headers(3, request(b"/b", b"POST"))
    c.send_data(1, b"x" * 10_000)
    pump(c, s)
    assert c.local_flow_control_window(1) == WINDOW - 10_000

    s.update_settings({SettingId.INITIAL_WINDOW_SIZE: 200_000})
    wire = s.data_to_send()
    assert parse(version, wire) == [
        SettingsFrame([(SettingId.INITIAL_WINDOW_SIZE, 200_000, 0)])
    ]
    (changed,) = c.receive_data(wire)
    assert isinstance(changed, ev.RemoteSettingsChanged)
    assert changed.changed_settings[SettingId.INITIAL_WINDOW_SIZE].new_value == 200_000
    delta = 200_000 - WINDOW
    assert c.local_flow_control_window(1) == WINDOW - 10_000 + delta
    assert c.local_flow_control_window(3) == WINDOW + delta
    # The receiver applied its new size too: the whole window can be used.
    body = b"y" * 200_000
    assert send_within_window(c, 1, body, 0, end=False) == 190_000
    assert send_within_window(c, 3, body, 0, end=False) == 200_000
    ce, se = pump(c, s)
    no_resets(ce, se)
    assert s.remote_flow_control_window(1) == 0 == s.remote_flow_control_window(3)
    # A new stream starts with the new size.
    c.send_headers(5, request(b"/c", b"POST"))
    assert c.local_flow_control_window(5) == 200_000

    # Shrinking works the same way, and the other direction too.
    c.update_settings({SettingId.INITIAL_WINDOW_SIZE: 1000})
    s.send_headers(1, RESPONSE)
    pump(c, s)
    assert s.local_flow_control_window(1) == 1000
    s.send_data(1, b"z" * 1000)
    with pytest.raises(FlowControlError):
        s.send_data(1, b"z")
    ce, se = pump(c, s)
    no_resets(ce, se)
    assert c.remote_flow_control_window(1) == 0


def test_max_concurrent_streams_enforced_on_the_opener(version):
    c, s = make_pair(version, server={"max_concurrent_streams": 2})
    assert c.remote_settings[SettingId.MAX_CONCURRENT_STREAMS] == 2
    c.send_headers(1, request(), end_stream=True)
    c.send_headers(3, request(), end_stream=True)
    pump(c, s)
    with pytest.raises(TooManyStreamsError):
        c.send_headers(5, request(), end_stream=True)
    assert c.data_to_send() == b""  # the refusal costs nothing on the wire
    assert 5 not in c.streams
    assert c.get_next_available_stream_id() == 5
    # Closing one makes room.
    s.send_headers(1, RESPONSE, end_stream=True)
    pump(c, s)
    c.send_headers(5, request(), end_stream=True)
    _, se = pump(c, s)
    assert of_type(se, ev.RequestReceived)[0].stream_id == 5


def test_max_concurrent_pushes_enforced_on_the_server(version):
    c, s = make_pair(version, client={"max_concurrent_streams": 1})
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.push_stream(1, 2, push_request(b"/a"))
    with pytest.raises(TooManyStreamsError):
        s.push_stream(1, 4, push_request(b"/b"))
    s.send_headers(2, [(b":status", b"200")], end_stream=True)
    pump(c, s)
    s.push_stream(1, 4, push_request(b"/b"))  # the first push is over


def test_peer_ignoring_max_concurrent_streams_is_refused(version):
    peer, s = raw_peer_and(version, max_concurrent_streams=2)
    se = s.receive_data(peer.syn_stream(1) + peer.syn_stream(3) + peer.syn_stream(5))
    assert [e.stream_id for e in of_type(se, ev.RequestReceived)] == [1, 3]
    assert peer.read_from(s) == [RstStreamFrame(5, StatusCode.REFUSED_STREAM)]
    # Still fine once a stream is done.
    se = s.receive_data(peer.rst(1, StatusCode.CANCEL) + peer.syn_stream(7, fin=True))
    assert of_type(se, ev.RequestReceived)[0].stream_id == 7
    assert peer.read_from(s) == []


def test_server_ignoring_client_max_concurrent_streams_is_refused(version):
    peer, c = raw_peer_and(version, raw_is_client=False, max_concurrent_streams=1)
    c.send_headers(1, request(), end_stream=True)
    peer.read_from(c)
    pushed = [(b":status", b"200"), *push_request(b"/p")]
    ce = c.receive_data(
        peer.syn_reply(1)
        + peer.syn_stream(2, pushed, associated=1)
        + peer.syn_stream(4, pushed, associated=1)
    )
    assert [e.pushed_stream_id for e in of_type(ce, ev.PushedStreamReceived)] == [2]
    assert peer.read_from(c) == [RstStreamFrame(4, StatusCode.REFUSED_STREAM)]


def test_session_window(version):
    """SPDY/3.1: large stream windows, a 64 KiB session window: the sender
    stops at the session window and WINDOW_UPDATE on stream 0 releases it.
    Earlier versions have no session window."""
    big = 1024 * 1024
    c, s = make_pair(version, client={"initial_window_size": big})
    c.send_headers(1, request(), end_stream=True)
    c.send_headers(3, request(), end_stream=True)
    pump(c, s)
    s.send_headers(1, RESPONSE)
    s.send_headers(3, RESPONSE)
    body = b"s" * (2 * big)
    if version != "spdy/3.1":
        assert s.local_flow_control_window(1) == big
        assert send_within_window(s, 1, body, 0, end=False) == big
        assert send_within_window(s, 3, body, 0, end=False) == big
        pump(c, s)
        with pytest.raises(SPDYError):
            c.increment_flow_control_window(1000)
        assert c.receive_data(WindowUpdateFrame(0, 1000).serialize(c.profile)) == []
        return

    assert s.local_flow_control_window(1) == WINDOW
    sent1 = send_within_window(s, 1, body[:40_000], 0, end=False)
    assert sent1 == 40_000
    assert s.local_flow_control_window(3) == WINDOW - 40_000  # shared session
    sent3 = send_within_window(s, 3, body, 0, end=False)
    assert sent3 == WINDOW - 40_000
    assert s.local_flow_control_window(1) == 0 == s.local_flow_control_window(3)
    assert (
        s.streams[1].send_window == big - 40_000
    )  # the stream window is not the limit
    with pytest.raises(FlowControlError):
        s.send_data(1, b"x")
    ce, _ = pump(c, s)
    no_resets(ce)
    for e in of_type(ce, ev.DataReceived):
        c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
    wire = c.data_to_send()
    updates = parse(version, wire)
    assert updates and all(
        isinstance(f, WindowUpdateFrame) and f.stream_id == 0 for f in updates
    )
    assert sum(f.delta_window_size for f in updates) == WINDOW
    se = s.receive_data(wire)
    assert (
        sum(e.delta for e in of_type(se, ev.WindowUpdated) if e.stream_id == 0)
        == WINDOW
    )
    assert s.local_flow_control_window(1) == WINDOW
    # A session window opened by hand.
    c.increment_flow_control_window(100_000)
    wire = c.data_to_send()
    assert parse(version, wire) == [WindowUpdateFrame(0, 100_000)]
    assert s.receive_data(wire) == [ev.WindowUpdated(0, 100_000)]
    assert s.local_flow_control_window(3) == WINDOW + 100_000
    assert send_within_window(s, 3, body, 0, end=False) == WINDOW + 100_000
    ce, _ = pump(c, s)
    no_resets(ce)


def test_session_window_configured_larger(version):
    """initial_session_window_size above 64 KiB is opened with a WINDOW_UPDATE
    on stream 0 (SPDY/3.1 only)."""
    c, s = make_pair(
        version,
        client={"initial_window_size": 1 << 20, "initial_session_window_size": 1 << 20},
    )
    c.send_headers(1, request(), end_stream=True)
    pump(c, s)
    s.send_headers(1, RESPONSE)
    sent = send_within_window(s, 1, b"q" * (2 << 20), 0, end=False)
    assert sent == 1 << 20
    ce, _ = pump(c, s)
    no_resets(ce)


def test_hundred_concurrent_streams(version):
    c, s = make_pair(version)
    ids = []
    for i in range(100):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, request(b"/%d" % i, b"POST"))
        ids.append(sid)
    with pytest.raises(TooManyStreamsError):
        c.send_headers(c.get_next_available_stream_id(), request())
    # Interleave request bodies across all streams.
    for part in range(3):
        for i, sid in enumerate(ids):
            c.send_data(sid, b"%d-%d;" % (i, part), end_stream=part == 2)
    ce, se = pump(c, s)
    no_resets(ce, se)
    assert [e.stream_id for e in of_type(se, ev.RequestReceived)] == ids
    assert s.open_inbound_streams == 100 and c.open_outbound_streams == 100
    bodies: dict[int, bytes] = {}
    for e in of_type(se, ev.DataReceived):
        bodies[e.stream_id] = bodies.get(e.stream_id, b"") + bytes(e.data)
    assert bodies == {sid: b"%d-0;%d-1;%d-2;" % (i, i, i) for i, sid in enumerate(ids)}
    for sid in reversed(ids):
        s.send_headers(sid, RESPONSE)
    for sid in ids:
        s.send_data(sid, b"r%d" % sid, end_stream=True)
    ce, se = pump(c, s)
    no_resets(ce, se)
    assert len(of_type(ce, ev.ResponseReceived)) == 100
    assert sorted(e.stream_id for e in of_type(ce, ev.StreamEnded)) == ids
    assert c.streams == {} and s.streams == {}
    assert c.open_outbound_streams == 0 == s.open_inbound_streams


def test_data_frames_respect_max_outbound_frame_size(version):
    c, s = make_pair(version)
    c.send_headers(1, request(b"/", b"POST"))
    with pytest.raises(SPDYError):
        c.send_data(1, b"x" * (c.max_outbound_frame_size + 1))
    c.send_data(1, b"x" * c.max_outbound_frame_size, end_stream=True)
    frames = parse(version, c.data_to_send())
    assert isinstance(frames[-1], DataFrame)
    assert len(frames[-1].data) == c.max_outbound_frame_size


def test_send_data_frames_cuts_a_chunk_into_frames(version):
    """A chunk larger than a frame goes as frames of max_outbound_frame_size,
    FIN on the last only, queued as views of the caller's bytes; one over
    the window is refused whole."""
    c, s = make_pair(version, max_outbound_frame_size=16384)
    c.send_headers(1, request(b"/", b"POST"))
    chunk = bytes(range(256)) * 160  # 40,960 bytes
    c.send_data_frames(1, memoryview(chunk), end_stream=True)
    buffers = c.buffers_to_send()
    assert any(type(b) is memoryview and b.obj is chunk for b in buffers)
    frames = parse(version, b"".join(buffers))
    data = [f for f in frames if isinstance(f, DataFrame)]
    assert [len(f.data) for f in data] == [16384, 16384, 8192]
    assert [f.flags & FLAG_FIN for f in data] == [0, 0, FLAG_FIN]
    assert b"".join(f.data for f in data) == chunk

    c.send_headers(3, request(b"/", b"POST"))
    c.data_to_send()
    with pytest.raises(SPDYError):
        c.send_data_frames(3, b"x" * (c.local_flow_control_window(3) + 1))
    assert c.data_to_send() == b""
