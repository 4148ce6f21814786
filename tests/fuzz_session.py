"""Fuzzing of `tornado_spdy.session.Session` over a real connection.

Run it as a module from the repository root::

    python -m tests.fuzz_session --inputs 100000 [--seed K] [--jobs J]
        [--max-seconds S] [--framing h2|spdy/2|spdy/3|spdy/3.1|all]
        [--side server|client|both] [--out DIR] [--replay FILE]

``--inputs`` is the total, shared round-robin by the framings and sides
chosen (default: all four framings, both sides).

What is fuzzed
--------------

Server side: the `Session` that `SPDYServer.handle_stream` makes for a
cleartext connection by prior knowledge, serving a small application (a fixed
response, a POST/PUT echo, a page that pushes a stylesheet). Client side: the
`Session` that `SPDYClient`'s `SessionPool` makes when five fetches (GETs and
a POST with a body) start on one origin; its TCP client is replaced by one
handing out the end of a socket pair. The fuzzing peer holds the other end of
the ``socket.socketpair()`` (both ends are Tornado IOStreams on one IOLoop,
reused for every input).

Inputs are what the peer would send: recorded valid conversations (SPDY: the
corpus of `tests.fuzz_core`, recorded with `SPDYConnection`; h2: recorded here
with the ``h2`` library: preface and SETTINGS, GETs, POSTs with bodies and
trailers, pushes, pings, window updates, priorities, resets, GOAWAY), as they
are or mutated (SPDY: `tests.fuzz_core.generate`, i.e. frame-level edits of
header lists, ids, flags, types, lengths, splices and byte mutations, random
and structured frames; h2: the same kinds of frame and byte edits, random
frames, HPACK blocks of random header lists). Each input is written in pieces
cut at random (whole, at frame boundaries, random cuts, a byte at a time) with
IOLoop passes between them, and the session reads with a ``chunk_size`` drawn
per input (1 byte to 64 KiB), under the default `SessionParameters` or a
``small`` preset (2 streams, 1 KiB windows, 1000-byte bodies, 5 resets). Half
the server inputs are ``shared``: the server counts a connection more, so
that the session feeds its input in turns at the `InputGate`, as it does
when it is not alone (its first request's read, costly reads), instead of
whole.

The oracle
----------

An input *fails* when

* anything is logged at ERROR or above by Tornado's or asyncio's loggers
  (``Error in <Session ...>`` from the read loop is the usual tell-tale; also
  ``Exception in callback``, ``Uncaught exception``), or reaches the asyncio
  exception handler (``hang-cpu`` when the CPU timer, 3 s of CPU per input,
  fired inside a callback);
* the input left the framing in step (whole frames) and the session neither
  answers a PING sent after it, nor sends GOAWAY, nor closes, within 5 s
  and a second per MB of input (``no-answer``: a hang);
* once the peer closes its end, the session does not close within 5 s
  (``no-close``), keeps streams (``leak``), or stays tracked by its server or
  pool; on the client side a fetch is still pending then (``fetch-hang``) or
  ended with an exception other than Tornado's HTTP and stream errors
  (``fetch-exception``);
* the session wrote frames that are not of its protocol (``malformed-output``).

Failures are grouped by a signature (kind, exception type, innermost
tornado_spdy frame); the first input of each is saved under ``--out`` with a
minimized version (delta debugging, ``--minimize-seconds``), replayable with
``--replay DIR/input.repr``.

CI and the long run
-------------------

``tests/test_fuzz_session.py`` runs every framing and side with a small budget
and a fixed seed. The long run (one process, as the machine is shared)::

    python -m tests.fuzz_session --inputs 10000000 --max-seconds 600 --jobs 1 --seed 7

Its figures on this 2-core shared machine, one process (working tree of the
day, HEAD ee35b8a plus other helpers' uncommitted session.py changes): 56,045
inputs in 600 s (93 inputs/s overall; per framing and side, counting the
harness only, 106-175 inputs/s: h2 client 106, h2 server 132, SPDY clients
127-129, SPDY servers 165-175), about 7,000 per framing and side; after 15-41 %
of the inputs the session still answered the PING, after 27-60 % it had sent
GOAWAY, 23-30 % ended out of step (no PING sent). 781 failing inputs, 5
distinct failures, all bugs in tornado_spdy (see tests/test_fuzz_session.py,
KNOWN_BUGS): peer-controlled headers Tornado refuses end the session's read
loop with ``Error in <Session>`` (client: stream.py response_from_headers,
ValueError on a non-numeric ``:status`` and HTTPInputError; server: stream.py
request_from_headers, HTTPInputError), Tornado's HTTPInputError for a bad Host
logged as ``Uncaught exception``, and a session left open after EOF (no-close).
At this rate 10 million inputs per version is out of reach on this machine
(about 100 hours per version and side per core).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import random
import socket
import struct
import sys
import time
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from tornado import httpclient, iostream, web

from tests import fuzz_common, fuzz_core
from tests.fuzz_common import Failure, Hang, failure_from
from tornado_spdy.client import SPDYClient
from tornado_spdy.server import SPDYServer
from tornado_spdy.session import Session, SessionParameters
from tornado_spdy.spdy import VERSIONS
from tornado_spdy.web import PushMixin

ALL_FRAMINGS = ("h2", "spdy/2", "spdy/3", "spdy/3.1")
ALL_SIDES = ("server", "client")

#: Seconds for the PING answer (or GOAWAY, or EOF), plus the input's share of
#: ``CPU_BYTES_PER_SECOND``: with the CPU shared, a 20 MB input took over 5 s
#: to be read (it replayed in 1.7 s alone) and counted as a hang.
PROBE_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0  # seconds for the session to close after our EOF
READY_TIMEOUT = 5.0  # seconds for a client session to open its streams
CPU_BUDGET = 3.0  # CPU seconds one input may take, plus its size's share:
CPU_BYTES_PER_SECOND = 1_000_000
CLIENT_FETCHES = 5  # streams 1, 3, 5, 7, 9: what the recorded inputs answer

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROBE_H2 = b"fuzzPING"
PROBE_SPDY = {"client": 0x5EED0001, "server": 0x5EED0002}  # the peer's parity
_CTRL = struct.Struct(">HHI")
_U32 = struct.Struct(">I")

PARAMS: dict[str, dict[str, Any]] = {
    "default": {},
    "small": {
        "max_concurrent_streams": 2,
        "initial_window_size": 1024,
        "session_window_size": 65535,
        "max_header_size": 512,
        "max_header_fields": 8,
        "max_frame_size": 100,
        "max_body_size": 1000,
        "write_buffer_size": 2048,
        "reset_burst": 5,
        "max_pushed_responses": 1,
    },
}


# ----------------------------------------------------------------- inputs


@dataclass
class Input(fuzz_common.Replayable):
    """One fuzz input: what the peer writes, how, and to which session."""

    framing: str
    side: str  # the side of the Session under test
    data: bytes
    cuts: tuple[int, ...] = ()  # where the writes are split
    params: str = "default"
    chunk_size: int = 65536
    origin: str = ""
    #: Server side: the server counts another connection, so that the
    #: session is not alone and feeds its reads in turns at the InputGate
    #: (a new session's all of them) instead of whole.
    shared: bool = False


def size_allowance(inp: Input) -> float:
    """Seconds an input's size adds to its CPU budget and to the wait for its
    PING answer: a big input takes long to read without being a hang."""
    return len(inp.data) / CPU_BYTES_PER_SECOND


def h2_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload) & 0xFFFFFF)[1:]
        + bytes((kind & 0xFF, flags & 0xFF))
        + _U32.pack(stream_id & 0xFFFFFFFF)
        + payload
    )


def h2_spans(data: bytes, start: int = 0) -> tuple[list[tuple[int, int]], int]:
    """Frame spans of h2 ``data`` from ``start``, and where the last whole one ends."""
    spans = []
    position = start
    while len(data) - position >= 9:
        end = position + 9 + int.from_bytes(data[position : position + 3], "big")
        if end > len(data):
            break
        spans.append((position, end))
        position = end
    return spans, position


def frame_spans(
    framing: str, side: str, data: bytes
) -> tuple[list[tuple[int, int]], int]:
    """Whole frames the session under test will read from ``data``."""
    if framing != "h2":
        return fuzz_core.walk_frames(data)
    if side == "server":
        if not data.startswith(H2_PREFACE):
            return [], 0
        return h2_spans(data, len(H2_PREFACE))
    return h2_spans(data)


def in_step(inp: Input) -> bool:
    """The input ends at a frame boundary: a PING sent after it is read as one."""
    if inp.framing == "h2" and inp.side == "server" and len(inp.data) < len(H2_PREFACE):
        return False
    return frame_spans(inp.framing, inp.side, inp.data)[1] == len(inp.data)


def choose_cuts(rng: random.Random, data: bytes, ends: list[int]) -> tuple[int, ...]:
    n = len(data)
    r = rng.random()
    if r < 0.3 or n < 2:
        return ()
    if r < 0.55:
        return tuple(ends)
    if r < 0.9 or n > 512:
        return tuple(sorted(rng.randrange(1, n) for _ in range(rng.randint(1, 12))))
    return tuple(range(1, n))


def choose_chunk_size(rng: random.Random, size: int) -> int:
    if size <= 2048 and rng.random() < 0.15:
        return rng.choice((1, 2, 5, 9))
    if size <= 65536 and rng.random() < 0.15:
        return rng.choice((64, 100, 1000, 4096))
    return 65536


def finish_input(
    rng: random.Random, framing: str, side: str, data: bytes, origin: str
) -> Input:
    ends = [end for _, end in frame_spans(framing, side, data)[0]]
    return Input(
        framing,
        side,
        data,
        choose_cuts(rng, data, ends),
        "small" if rng.random() < 0.2 else "default",
        choose_chunk_size(rng, len(data)),
        origin,
        side == "server" and rng.random() < 0.5,
    )


# ------------------------------------------------------------ h2 corpus


H2_PSEUDO = types.SimpleNamespace(
    wire_names={
        n: n for n in (b":method", b":path", b":scheme", b":authority", b":status")
    }
)


def _request(path: str, method: str = "GET") -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method.encode()),
        (b":path", path.encode()),
        (b":scheme", b"http"),
        (b":authority", b"fuzz.test"),
        (b"user-agent", b"fuzz_session"),
        (b"accept-encoding", b"gzip"),
    ]


def _response(status: int = 200, **extra: str) -> list[tuple[bytes, bytes]]:
    fields = [(b":status", b"%d" % status), (b"content-type", b"text/plain")]
    return fields + [
        (k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()
    ]


class _H2Side:
    """One side of a recorded h2 conversation: its connection and inbound bytes."""

    def __init__(self, client_side: bool):
        config = h2.config.H2Configuration(
            client_side=client_side, header_encoding=None
        )
        self.conn = h2.connection.H2Connection(config)
        self.chunks: list[bytes] = []

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.conn, name)(*args, **kwargs)

    def receive(self, data: bytes) -> None:
        self.chunks.append(data)
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )


def _h2_get(c: _H2Side, s: _H2Side) -> None:
    c.conn.send_headers(1, _request("/index.html"), end_stream=True)
    c.conn.send_headers(3, _request("/a"), end_stream=True)
    c.conn.ping(b"12345678")
    fuzz_core.pump(c, s)
    s.conn.push_stream(1, 2, _request("/style.css"))
    s.conn.send_headers(2, _response(content_length="3"))
    s.conn.send_data(2, b"p{}", end_stream=True)
    s.conn.send_headers(1, _response(content_length="13"))
    s.conn.send_data(1, b"Hello, world!", end_stream=True)
    s.conn.send_headers(3, [(b":status", b"404")], end_stream=True)
    s.conn.ping(b"abcdefgh")
    fuzz_core.pump(c, s)
    c.conn.send_headers(5, _request("/b"), end_stream=True)
    fuzz_core.pump(c, s)
    s.conn.send_headers(5, _response(), end_stream=True)
    fuzz_core.pump(c, s)
    c.conn.close_connection()
    fuzz_core.pump(c, s)


def _h2_post_trailers(c: _H2Side, s: _H2Side) -> None:
    c.conn.send_headers(1, _request("/upload", "POST") + [(b"te", b"trailers")])
    c.conn.send_data(1, b"{" + b"a" * 998 + b"}")
    c.conn.send_data(1, b"b" * 5000)
    c.conn.send_headers(1, [(b"x-checksum", b"12345")], end_stream=True)
    fuzz_core.pump(c, s)
    s.conn.send_headers(1, _response(201))
    s.conn.send_data(1, b'{"ok": true}' * 100)
    s.conn.send_headers(1, [(b"x-trailer", b"done")], end_stream=True)
    fuzz_core.pump(c, s)


def _h2_flow(c: _H2Side, s: _H2Side) -> None:
    c.conn.send_headers(1, _request("/big"), end_stream=True)
    c.conn.send_headers(3, _request("/put", "PUT"))
    fuzz_core.pump(c, s)
    s.conn.send_headers(1, _response())
    fuzz_core.send_body(s, 1, bytes(range(256)) * 400, c, s)  # 100 KiB: WINDOW_UPDATEs
    fuzz_core.send_body(c, 3, b"u" * 80_000, c, s)
    s.conn.send_headers(3, [(b":status", b"204")], end_stream=True)
    fuzz_core.pump(c, s)


def _h2_streams(c: _H2Side, s: _H2Side) -> None:
    for stream_id, end in ((1, True), (3, True), (5, False), (7, True)):
        c.conn.send_headers(
            stream_id,
            _request(f"/r{stream_id}", "GET" if end else "POST"),
            end_stream=end,
            priority_weight=16 * stream_id,
        )
    c.conn.prioritize(7, weight=200, depends_on=1, exclusive=True)
    fuzz_core.pump(c, s)
    c.conn.reset_stream(3)
    s.conn.reset_stream(5, 8)
    fuzz_core.pump(c, s)
    s.conn.send_headers(1, _response())
    s.conn.send_headers(7, _response())
    for _ in range(3):
        s.conn.send_data(1, b"one" * 50)
        s.conn.send_data(7, b"seven" * 30)
    s.conn.send_data(1, b"", end_stream=True)
    fuzz_core.pump(c, s)
    c.conn.update_settings(
        {
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 128 * 1024,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 50,
        }
    )
    s.conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 10})
    c.conn.increment_flow_control_window(65536)
    s.conn.increment_flow_control_window(4096)
    fuzz_core.pump(c, s)
    c.conn.send_headers(9, _request("/"), end_stream=True)
    fuzz_core.pump(c, s)
    s.conn.send_headers(9, _response())
    s.conn.send_data(9, b"Hello, world!", end_stream=True)
    s.conn.end_stream(7)
    fuzz_core.pump(c, s)
    s.conn.close_connection(last_stream_id=9)
    fuzz_core.pump(c, s)


def _h2_header_variety(c: _H2Side, s: _H2Side) -> None:
    c.conn.send_headers(
        1,
        _request("/index.html?q=1")
        + [
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"accept", b"a"),
            (b"accept", b"b"),
            (b"x-long", b"v" * 4000),
            (b"x-empty", b""),
            (b"content-length", b"0"),
        ],
        end_stream=True,
    )
    fuzz_core.pump(c, s)
    s.conn.send_headers(
        1,
        [
            (b":status", b"302"),
            (b"location", b"/elsewhere"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"content-encoding", b"gzip"),
            (b"content-length", b"0"),
        ],
        end_stream=True,
    )
    fuzz_core.pump(c, s)
    c.conn.send_headers(3, _request("/", "HEAD"), end_stream=True)
    c.conn.send_headers(5, _request("/form", "POST") + [(b"content-length", b"5")])
    c.conn.send_data(5, b"hello", end_stream=True)
    fuzz_core.pump(c, s)
    s.conn.reset_stream(3, 2)
    s.conn.send_headers(5, _response(content_length="5"))
    s.conn.send_data(5, b"hello", end_stream=True)
    s.conn.ping(b"\0" * 8)
    fuzz_core.pump(c, s)


H2_SCENARIOS: tuple[tuple[str, Callable[[_H2Side, _H2Side], None]], ...] = (
    ("get", _h2_get),
    ("post-trailers", _h2_post_trailers),
    ("flow", _h2_flow),
    ("streams", _h2_streams),
    ("header-variety", _h2_header_variety),
)


@dataclass
class Recording:
    """The inbound bytes of one side of a recorded conversation."""

    side: str
    name: str
    data: bytes
    cuts: tuple[int, ...]


def _chunks_recording(side: str, name: str, chunks: list[bytes]) -> Recording:
    cuts, position = [], 0
    for chunk in chunks:
        position += len(chunk)
        cuts.append(position)
    return Recording(side, name, b"".join(chunks), tuple(cuts[:-1]))


def build_h2_corpus() -> dict[str, list[Recording]]:
    """Record every h2 scenario: what each side received."""
    corpus: dict[str, list[Recording]] = {"server": [], "client": []}
    for name, play in H2_SCENARIOS:
        c, s = _H2Side(True), _H2Side(False)
        c.conn.initiate_connection()
        s.conn.initiate_connection()
        fuzz_core.pump(c, s)
        play(c, s)
        corpus["server"].append(_chunks_recording("server", name, s.chunks))
        corpus["client"].append(_chunks_recording("client", name, c.chunks))
    return corpus


def build_spdy_corpus(version: str) -> dict[str, list[Recording]]:
    """The corpus of `tests.fuzz_core` as plain recordings."""
    corpus: dict[str, list[Recording]] = {"server": [], "client": []}
    for side, sessions in fuzz_core.build_corpus(version).items():
        for session in sessions:
            case = fuzz_core.session_case(session)
            corpus[side].append(Recording(side, session.name, case.data, case.cuts))
    return corpus


# ------------------------------------------------------------ h2 mutators


def _split_h2(rec_data: bytes, side: str) -> tuple[bytes, list[bytes]]:
    start = len(H2_PREFACE) if side == "server" else 0
    spans, _ = h2_spans(rec_data, start)
    return rec_data[:start], [rec_data[a:b] for a, b in spans]


def _edit_h2_frame(rng: random.Random, frame: bytes) -> bytes:
    buf = bytearray(frame)
    op = rng.random()
    if op < 0.2:
        buf[3] = rng.choice(
            (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x10, rng.randrange(256))
        )
    elif op < 0.4:
        buf[4] = rng.choice((0, 1, 4, 5, 8, 0x20, 0x24, 0x25, 0xFF, rng.randrange(256)))
    elif op < 0.6:
        buf[5:9] = _U32.pack(fuzz_core.pick_stream_id(rng) & 0xFFFFFFFF)
    elif op < 0.75:
        length = int.from_bytes(buf[:3], "big")
        new = rng.choice(
            (0, 1, 4, 5, 7, 8, 9, length - 1, length + 1, 16384, 16385, 0xFFFFFF)
        )
        buf[:3] = (new & 0xFFFFFF).to_bytes(3, "big")
    elif len(buf) > 9:
        payload = fuzz_core.mutate_bytes(rng, bytes(buf[9:]), rng.randint(1, 3))
        return h2_frame(buf[3], buf[4], _U32.unpack_from(buf, 5)[0], payload)
    return bytes(buf)


def mutate_h2(rng: random.Random, rec: Recording, others: list[Recording]) -> bytes:
    prefix, frames = _split_h2(rec.data, rec.side)
    ops = rng.choice((1, 1, 1, 2, 2, 3, 4))
    encoder = hpack.Encoder()
    for _ in range(ops):
        if not frames:
            break
        i = rng.randrange(len(frames))
        op = rng.random()
        if op < 0.12:
            del frames[i]
        elif op < 0.22:
            frames.insert(rng.randrange(len(frames)), frames[i])
        elif op < 0.3:
            j = rng.randrange(len(frames))
            frames[i], frames[j] = frames[j], frames[i]
        elif op < 0.4:
            other = _split_h2(rng.choice(others).data, rec.side)[1]
            if other:
                k = rng.randrange(len(other))
                frames[i:i] = other[k : k + rng.randint(1, 4)]
        elif op < 0.55:
            frames.insert(i, random_h2_frame(rng, rec.side, encoder))
        elif op < 0.6:  # a flood of one frame
            frames[i:i] = [frames[i]] * rng.choice((20, 120, 400))
        else:
            frames[i] = _edit_h2_frame(rng, frames[i])
    data = prefix + b"".join(frames)
    if rng.random() < 0.35:
        data = fuzz_core.mutate_bytes(rng, data, rng.choice((1, 1, 2, 3, 8)))
    return data


def random_headers(rng: random.Random, kind: str) -> list[tuple[bytes, bytes]]:
    if kind == "request":
        fields = _request(rng.choice(("/", "/index.html", "/echo", "/x?y=1")))
        fields[0] = (b":method", rng.choice((b"GET", b"POST", b"PUT", b"HEAD", b"GET")))
    elif kind == "response":
        fields = _response(rng.choice((200, 200, 204, 304, 404, 500, 100, 103)))
    else:
        fields = [(b"x-trailer", b"1")]
    for _ in range(rng.choice((0, 0, 1, 2, 4))):
        op = rng.random()
        if op < 0.3 and fields:
            del fields[rng.randrange(len(fields))]
        elif op < 0.7:
            fields.insert(
                rng.randint(0, len(fields)),
                (fuzz_core.random_name(rng, H2_PSEUDO), fuzz_core.random_value(rng)),
            )
        elif fields:
            i = rng.randrange(len(fields))
            fields[i] = (fields[i][0], fuzz_core.random_value(rng))
    if rng.random() < 0.03:
        fields += [(b"x-%d" % i, b"v") for i in range(rng.choice((9, 101, 300)))]
    return fields


#: Header data above this many bytes is encoded without Huffman coding: hpack
#: codes a byte at a time in Python (0.24 ms per KiB here), which made the
#: generator cost more than the input it makes.
HUFFMAN_MAX_BYTES = 1024


def encode_block(encoder: hpack.Encoder, fields: list[tuple[bytes, bytes]]) -> bytes:
    size = sum(len(name) + len(value) for name, value in fields)
    return encoder.encode(fields, huffman=size <= HUFFMAN_MAX_BYTES)


def random_h2_frame(rng: random.Random, side: str, encoder: hpack.Encoder) -> bytes:
    """One h2 frame with a plausible header and a random or plausible payload."""
    kind = rng.choice(
        (0, 0, 1, 1, 1, 2, 3, 4, 4, 5, 6, 7, 8, 8, 9, 10, rng.randrange(256))
    )
    own = (1, 3, 5, 7, 9) if side == "client" else (1, 3, 5, 7, 9, 11)
    stream_id = rng.choice(own) if rng.random() < 0.8 else fuzz_core.pick_stream_id(rng)
    flags = rng.choice((0, 0, 1, 4, 5, 8, 0x20, 0x24, rng.randrange(256)))
    if kind == 0:
        payload = b"d" * rng.choice((0, 1, 13, 1000, 16384, 16385, 70000))
    elif kind in (1, 9):
        block_kind = "response" if side == "client" else "request"
        block = encode_block(
            encoder, random_headers(rng, rng.choice((block_kind, "trailers")))
        )
        payload = block if rng.random() < 0.9 else fuzz_core.random_bytes(rng, 12)
        flags = (
            rng.choice((4, 5, 5, 0, 1, 0x24, 0x25)) if kind == 1 else rng.choice((4, 0))
        )
        if flags & 0x20:
            payload = (
                _U32.pack(rng.choice((0, 1, stream_id)))
                + bytes((rng.randrange(256),))
                + payload
            )
        if flags & 0x8:
            payload = bytes((rng.choice((0, 1, 200)),)) + payload
    elif kind == 2:
        payload = _U32.pack(rng.choice((0, 1, stream_id, 0x80000001))) + bytes(
            (rng.randrange(256),)
        )
    elif kind == 3:
        payload = _U32.pack(rng.choice((0, 1, 2, 7, 8, 0xB, 0xFFFFFFFF)))
    elif kind == 4:
        payload = b"".join(
            struct.pack(
                ">HI",
                rng.choice((1, 2, 3, 4, 5, 6, 8, 9, 0, 0xFFFF)),
                rng.choice(fuzz_core.INTERESTING_32),
            )
            for _ in range(rng.choice((0, 1, 2, 5)))
        )
        stream_id = 0 if rng.random() < 0.9 else stream_id
        flags = rng.choice((0, 0, 1))
    elif kind == 5:
        payload = _U32.pack(rng.choice((2, 4, 6, 1, 0, 0x7FFFFFFE))) + encode_block(
            encoder, random_headers(rng, "request")
        )
        flags = rng.choice((4, 4, 0))
    elif kind == 6:
        payload, stream_id = fuzz_core.random_bytes(rng, rng.choice((8, 8, 8, 0, 9))), 0
    elif kind == 7:
        payload = _U32.pack(rng.choice((0, 1, 3, 0x7FFFFFFF))) + _U32.pack(
            rng.choice((0, 1, 2, 0xB))
        )
        stream_id = 0 if rng.random() < 0.9 else stream_id
    elif kind == 8:
        payload = _U32.pack(rng.choice(fuzz_core.INTERESTING_32))
        stream_id = rng.choice((0, 0, stream_id))
    else:
        payload = fuzz_core.random_bytes(rng, rng.choice((0, 4, 8, rng.randint(0, 64))))
    return h2_frame(kind, flags, stream_id, payload)


def structured_h2(rng: random.Random, side: str) -> bytes:
    encoder = hpack.Encoder()
    parts = [H2_PREFACE] if side == "server" else []
    if rng.random() < 0.9:
        parts.append(h2_frame(4, 0, 0, b""))
    for _ in range(rng.choice((1, 2, 3, 5, 8, 12, 20))):
        frame = random_h2_frame(rng, side, encoder)
        if rng.random() < 0.03:
            parts += [frame] * rng.choice((50, 300))
        else:
            parts.append(frame)
    return b"".join(parts)


def generate_h2(
    rng: random.Random, side: str, corpus: list[Recording]
) -> tuple[bytes, str]:
    r = rng.random()
    rec = rng.choice(corpus)
    if r < 0.05:
        return rec.data, "corpus"
    if r < 0.1:
        prefix = H2_PREFACE if side == "server" and rng.random() < 0.8 else b""
        return prefix + fuzz_core.random_bytes(
            rng, rng.choice((0, 9, rng.randint(0, 2000)))
        ), "random"
    if r < 0.15:
        _, end = frame_spans("h2", side, rec.data)
        spans = frame_spans("h2", side, rec.data)[0]
        cut = rng.choice(spans)[1] if spans else end
        return rec.data[:cut] + fuzz_core.random_bytes(rng, rng.randint(1, 300)), "tail"
    if r < 0.6:
        return mutate_h2(rng, rec, corpus), "mutate"
    return structured_h2(rng, side), "structured"


class Generator:
    """Inputs of one framing and side, from their corpus."""

    def __init__(self, framing: str):
        self.framing = framing
        if framing == "h2":
            self.recordings = build_h2_corpus()
        else:
            self.sessions = fuzz_core.build_corpus(framing)
            self.recordings = build_spdy_corpus(framing)

    def generate(self, rng: random.Random, side: str) -> Input:
        if self.framing == "h2":
            data, origin = generate_h2(rng, side, self.recordings[side])
        else:
            case = fuzz_core.generate(rng, self.framing, side, self.sessions)
            data, origin = case.data, case.origin.split(":")[0]
        return finish_input(rng, self.framing, side, data, origin)

    def corpus_inputs(self, side: str) -> list[Input]:
        """The recordings as they are, in the pieces they were received in."""
        return [
            Input(self.framing, side, rec.data, rec.cuts, origin=f"corpus:{rec.name}")
            for rec in self.recordings[side]
        ]


# ---------------------------------------------------------------- oracle


class _Recorder(logging.Handler):
    """Collects ERROR records of Tornado's and asyncio's loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[Failure] = []

    def emit(self, record: logging.LogRecord) -> None:
        label = f"{record.name}: {str(record.msg)[:40]}: "
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            failure = failure_from("logged-error", exc, label)
            failure.detail = f"{record.getMessage()}: {failure.detail}"
        else:
            failure = Failure(
                "logged-error", record.getMessage(), "", label.rstrip(": ")
            )
        self.failures.append(failure)


class _Peer:
    """The fuzzing end of the socket pair: writes inputs, reads the session's
    frames and notes the PING answer, GOAWAY and EOF."""

    def __init__(self, stream: iostream.IOStream, framing: str, side: str):
        self.stream = stream
        self.framing = framing
        self.side = side  # the side of the session under test
        self.buffer = bytearray()
        self.position = len(H2_PREFACE) if framing == "h2" and side == "client" else 0
        self.answered = asyncio.Event()  # PING ACK, GOAWAY or EOF
        self.how = ""
        self.malformed = ""
        self.task = asyncio.ensure_future(self._read())

    def probe(self) -> bytes:
        if self.framing == "h2":
            return h2_frame(6, 0, 0, PROBE_H2)
        version = VERSIONS[self.framing].version
        ping_id = PROBE_SPDY["server" if self.side == "client" else "client"]
        return _CTRL.pack(0x8000 | version, 6, 4) + _U32.pack(ping_id)

    def _note(self, how: str) -> None:
        if not self.answered.is_set():
            self.how = how
            self.answered.set()

    async def _read(self) -> None:
        try:
            while True:
                self.buffer += await self.stream.read_bytes(65536, partial=True)
                self._parse()
        except iostream.StreamClosedError:
            self._note("eof")

    def _parse(self) -> None:
        data = self.buffer
        if self.framing == "h2":
            spans, self.position = h2_spans(bytes(data), self.position)
            for start, end in spans:
                kind, flags = data[start + 3], data[start + 4]
                if kind > 9:
                    self.malformed = f"h2 frame type {kind}"
                if kind == 7:
                    self._note("goaway")
                elif kind == 6 and flags & 1 and data[start + 9 : end] == PROBE_H2:
                    self._note("ping")
            return
        version = VERSIONS[self.framing].version
        while len(data) - self.position >= 8:
            start = self.position
            end = start + 8 + (_U32.unpack_from(data, start + 4)[0] & 0xFFFFFF)
            if end > len(data):
                break
            self.position = end
            first = _U32.unpack_from(data, start)[0]
            if not first & 0x80000000:
                continue
            kind = first & 0xFFFF
            if (first >> 16) & 0x7FFF != version or not 1 <= kind <= 10:
                self.malformed = f"control frame {first:08x}"
            if kind == 7:
                self._note("goaway")
            elif kind == 6 and end - start == 12:
                if _U32.unpack_from(data, start + 8)[0] in PROBE_SPDY.values():
                    self._note("ping")


# ----------------------------------------------------------------- harness


class _PushPage(PushMixin, web.RequestHandler):
    def get(self) -> None:
        self.push("/style.css")
        self.write("<html>page</html>")


class _Echo(web.RequestHandler):
    """A fixed response to GET, the body back to POST and PUT."""

    def get(self, *args: str) -> None:
        self.write("Hello, world!")

    def post(self, *args: str) -> None:
        self.write(self.request.body)

    put = post


class _Server(SPDYServer):
    """`SPDYServer` that remembers the last session it made, and counts one
    connection more than it has when ``shared``."""

    shared = False

    def track(self, connection: Session) -> None:
        super().track(connection)
        self.last_session = connection

    def connections_in_process(self) -> int:  # type: ignore[override]
        # This server's own: other tests' servers may still be in the process.
        return len(self._connections) + len(self._arriving) + int(self.shared)


class _Connector:
    """Stands for the client's `TCPClient`: hands out one end of a socket pair."""

    def __init__(self) -> None:
        self.stream: iostream.IOStream | None = None

    async def connect(self, host: str, port: int, **kwargs: Any) -> iostream.IOStream:
        stream, self.stream = self.stream, None
        if stream is None:
            raise ConnectionRefusedError(
                "the fuzz connector has one connection per input"
            )
        return stream

    def close(self) -> None:
        pass


# What a fetch may end with when its server misbehaves.
# (OSError: a fetch the session refused is sent again on a new connection,
# which the connector refuses.)
EXPECTED_FETCH_ERRORS = (httpclient.HTTPError, iostream.StreamClosedError, OSError)


@dataclass
class Result:
    """What happened to one input that did not fail."""

    answer: str  # "ping", "goaway", "eof", or "" when no PING could be sent


class Harness:
    """One IOLoop, one server and one client, reused by every input."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.recorder = _Recorder()
        self.loop_failures: list[Failure] = []
        self.loop.set_exception_handler(self._on_loop_exception)
        self._loggers = [logging.getLogger(n) for n in ("tornado", "asyncio")]
        self._saved = [(lg.level, lg.propagate) for lg in self._loggers]
        for logger in self._loggers:
            logger.addHandler(self.recorder)
            logger.setLevel(logging.ERROR)  # INFO lines cost time at this rate
            logger.propagate = False
        self.count = 0
        self.loop.run_until_complete(self._setup())

    async def _setup(self) -> None:
        app = web.Application(
            [(r"/index\.html", _PushPage), (r"/(.*)", _Echo)],
            log_function=lambda handler: None,
        )
        self.server = _Server(app, plain_protocol="h2")
        self.client = SPDYClient(force_instance=True, max_clients=50)
        self.connector = _Connector()
        self.client.pool.tcp_client = self.connector  # type: ignore[assignment]

    def close(self) -> None:
        self.client.close()
        for logger, (level, propagate) in zip(self._loggers, self._saved, strict=True):
            logger.removeHandler(self.recorder)
            logger.setLevel(level)
            logger.propagate = propagate
        self.loop.close()
        asyncio.set_event_loop(None)

    def _on_loop_exception(self, loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, Hang):
            self.loop_failures.append(failure_from("hang-cpu", exc))
        elif exc is not None:
            failure = failure_from("loop-exception", exc)
            failure.detail = f"{context.get('message')}: {failure.detail}"
            self.loop_failures.append(failure)
        else:
            self.loop_failures.append(
                Failure("loop-exception", str(context.get("message")))
            )

    def run(self, inp: Input) -> tuple[Result | None, Failure | None]:
        """Run one input; its result, or the first failure it caused."""
        self.recorder.failures.clear()
        self.loop_failures.clear()
        self.count += 1
        budget = CPU_BUDGET + size_allowance(inp)
        result: Result | None = None
        failure: Failure | None = None
        try:
            with fuzz_common.cpu_limit(budget):
                result = self.loop.run_until_complete(self._run(inp))
        except Failure as exc:
            failure = exc
        except Hang as exc:
            failure = failure_from("hang-cpu", exc)
        except Exception as exc:
            failure = failure_from("harness", exc)
        found = self.loop_failures + self.recorder.failures
        if found:
            failure = found[0]
        return (None, failure) if failure else (result, None)

    async def _run(self, inp: Input) -> Result:
        params = SessionParameters(**PARAMS[inp.params])
        params.chunk_size = inp.chunk_size
        ours, theirs = socket.socketpair()
        session_stream, peer_stream = iostream.IOStream(ours), iostream.IOStream(theirs)
        fetches: list[asyncio.Future[Any]] = []
        try:
            if inp.side == "server":
                session = await self._start_server(inp, params, session_stream)
            else:
                session = await self._start_client(inp, params, session_stream, fetches)
            peer = _Peer(peer_stream, inp.framing, inp.side)
            try:
                answer = await self._feed(inp, peer)
            finally:
                peer_stream.close()
            await self._check_closed(session, fetches)
            await peer.task
            if peer.malformed:
                raise Failure("malformed-output", peer.malformed)
        finally:
            # Whatever happened, nothing of this input may linger into the next.
            session_stream.close()
            peer_stream.close()
            if fetches:
                await asyncio.wait(fetches, timeout=CLOSE_TIMEOUT)
            for _ in range(3):  # callbacks the close scheduled log their errors now
                await asyncio.sleep(0)
        return Result(answer)

    async def _start_server(
        self, inp: Input, params: SessionParameters, stream: iostream.IOStream
    ) -> Session:
        self.server.plain_protocol = inp.framing
        self.server.session_params = params
        self.server.shared = inp.shared
        await self.server.handle_stream(
            stream, ("127.0.0.1", 40000 + self.count % 20000)
        )
        return self.server.last_session

    async def _start_client(
        self,
        inp: Input,
        params: SessionParameters,
        stream: iostream.IOStream,
        fetches: list[asyncio.Future[Any]],
    ) -> Session:
        """Five fetches on a new origin; the session once their heads are out."""
        pool = self.client.pool
        pool.params = params
        self.connector.stream = stream
        url = f"http://fuzz-{self.count}.test"
        common = {"raise_error": False, "protocol": inp.framing, "request_timeout": 120}
        for path, extra in (
            ("/index.html", {}),
            ("/a", {}),
            ("/form", {"method": "POST", "body": b"x" * 300}),
            ("/style.css", {}),
            ("/b", {}),
        ):
            future = asyncio.ensure_future(
                self.client.fetch(url + path, **common, **extra)
            )
            future.add_done_callback(_retrieve)
            fetches.append(future)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:  # until the five heads (and the POST body) are written
            session = next((s for s in pool._open if s.stream is stream), None)
            if session is not None and len(session.core.streams) >= CLIENT_FETCHES:
                if not session._ready and not session._flush_scheduled:
                    return session
            if time.monotonic() > deadline:
                raise Failure(
                    "client-not-ready", f"{session!r} after {READY_TIMEOUT} s"
                )
            await asyncio.sleep(0)

    async def _feed(self, inp: Input, peer: _Peer) -> str:
        for piece in inp.pieces():
            if peer.stream.closed():
                return "eof"
            peer.stream.write(piece)
            # Two IOLoop passes: the session reads this piece before the next.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        if peer.stream.closed() or not in_step(inp):
            return ""
        peer.stream.write(peer.probe())
        timeout = PROBE_TIMEOUT + size_allowance(inp)
        try:
            await asyncio.wait_for(peer.answered.wait(), timeout)
        except TimeoutError:
            raise Failure(
                "no-answer", f"no PING answer, GOAWAY or EOF in {timeout:.1f} s"
            ) from None
        return peer.how

    async def _check_closed(self, session: Session, fetches: list[Any]) -> None:
        try:
            await asyncio.wait_for(
                asyncio.shield(session._closed_future), CLOSE_TIMEOUT
            )
        except TimeoutError:
            raise Failure(
                "no-close", f"{session!r} open {CLOSE_TIMEOUT} s after EOF"
            ) from None
        if fetches:
            # A client's complete responses may still be on their way to their
            # fetches: their streams close as the fetches take them.
            done, pending = await asyncio.wait(fetches, timeout=CLOSE_TIMEOUT)
            if pending:
                raise Failure(
                    "fetch-hang", f"{len(pending)} fetches pending after close"
                )
            for future in done:
                exc = future.exception()
                if exc is not None and not isinstance(exc, EXPECTED_FETCH_ERRORS):
                    raise failure_from("fetch-exception", exc)
            await asyncio.sleep(0)
        if session.streams:
            raise Failure(
                "leak", f"streams left after close: {sorted(session.streams)}"
            )
        if session in self.server._connections or session in self.client.pool._open:
            raise Failure("leak", f"{session!r} still tracked after close")


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a fetch's exception retrieved: the oracle looks at it, not the GC."""
    if not future.cancelled():
        future.exception()


# ------------------------------------------------------------ minimizing


def minimize(
    harness: Harness, inp: Input, signature: str, budget: float = 30.0
) -> Input:
    """Delta debugging: a smaller input with the same failure signature."""
    deadline = time.monotonic() + budget

    def fails(candidate: Input) -> bool:
        if time.monotonic() > deadline:
            return False
        failure = harness.run(candidate)[1]
        return failure is not None and failure.signature == signature

    best = inp
    for simpler in (
        replace(best, chunk_size=65536),
        replace(best, params="default"),
        replace(best, cuts=()),
    ):
        if fails(simpler):
            best = simpler
    frames = frame_spans(best.framing, best.side, best.data)[0]
    return fuzz_common.shrink_data(best, frames, _drop, _drop, fails, deadline)


def _drop(inp: Input, start: int, end: int) -> Input:
    """``inp`` without the bytes ``[start, end)``; later cuts move back."""
    data = inp.data[:start] + inp.data[end:]
    shifted = (c if c <= start else max(start, c - (end - start)) for c in inp.cuts)
    cuts = tuple(sorted({c for c in shifted if 0 < c < len(data)}))
    return replace(inp, data=data, cuts=cuts)


# -------------------------------------------------------------- campaign


@dataclass
class Stats(fuzz_common.Stats):
    """A session campaign's figures: also the time each combo took and how
    the session answered the probe after each input."""

    seconds: Counter = field(default_factory=Counter)  # wall time by combo
    answers: Counter = field(default_factory=Counter)  # by (framing, side, answer)

    title: ClassVar[str] = "tornado_spdy session fuzzing over a socket pair"
    counters: ClassVar[tuple[str, ...]] = (
        *fuzz_common.Stats.counters,
        "seconds",
        "answers",
    )

    def table(self) -> list[str]:
        lines = [
            f"{'framing':<10}{'side':<8}{'inputs':>9}{'inputs/s':>10}"
            f"{'ping':>7}{'goaway':>8}{'eof':>6}{'unprobed':>9}{'failures':>10}"
        ]
        for combo, n in sorted(self.executed.items()):
            rate = n / self.seconds[combo] if self.seconds[combo] else 0.0
            shares = [
                self.answers[(*combo, a)] / n if n else 0.0
                for a in ("ping", "goaway", "eof", "")
            ]
            lines.append(
                f"{combo[0]:<10}{combo[1]:<8}{n:>9}{rate:>10.0f}"
                + "".join(
                    f"{s:>{w}.0%}" for s, w in zip(shares, (7, 8, 6, 9), strict=True)
                )
                + f"{self.combo_failures[combo]:>10}"
            )
        return lines


def describe(inp: Input) -> str:
    return (
        f"{inp.framing} {inp.side}, params {inp.params}, chunk_size "
        f"{inp.chunk_size}, origin {inp.origin}, shared {inp.shared}, "
        f"cuts {inp.cuts}"
    )


def save_reproducer(
    out_dir: str, harness: Harness, inp: Input, failure: Failure, budget: float
) -> str:
    """Save ``inp`` and its minimized version; return the directory."""
    return fuzz_common.save_case(
        out_dir,
        (inp.framing, inp.side),
        inp,
        failure,
        lambda i: minimize(harness, i, failure.signature, budget) if budget > 0 else i,
        describe,
        name="input.repr",
    )


# A failure of these kinds may be a slow moment of the shared machine: the
# input runs again before it counts.
TIMEOUT_KINDS = ("no-answer", "no-close", "fetch-hang")


def campaign(
    inputs: int,
    seed: int,
    combos: list[tuple[str, str]],
    max_seconds: float | None = None,
    out_dir: str | None = None,
    job: int = 0,
    minimize_budget: float = 30.0,
    max_saved: int = 20,
) -> Stats:
    """Run ``inputs`` inputs round-robin over ``combos`` in this process."""
    stats = Stats()
    generators = {f: Generator(f) for f in {f for f, _ in combos}}
    harness = Harness()
    start = time.monotonic()
    try:
        for combo, case_seed in fuzz_common.schedule(
            inputs, seed, combos, job, max_seconds
        ):
            inp = generators[combo[0]].generate(random.Random(case_seed), combo[1])
            began = time.monotonic()
            result, failure = harness.run(inp)
            if failure is not None and failure.kind in TIMEOUT_KINDS:
                result, failure = harness.run(inp)
            stats.seconds[combo] += time.monotonic() - began
            stats.executed[combo] += 1
            stats.origins[inp.origin.split(":")[0]] += 1
            if result is not None:
                stats.answers[(*combo, result.answer)] += 1
            if failure is None:
                continue
            if failure.kind == "hang-cpu":  # the loop may be in any state: start afresh
                harness.close()
                harness = Harness()
            save = functools.partial(
                save_reproducer,
                harness=harness,
                inp=inp,
                failure=failure,
                budget=minimize_budget,
            )
            stats.add_failure(combo, failure, case_seed, save, out_dir, max_saved)
    finally:
        harness.close()
    stats.elapsed = time.monotonic() - start
    return stats


def run(
    inputs: int,
    seed: int = 0,
    framings: tuple[str, ...] = ALL_FRAMINGS,
    sides: tuple[str, ...] = ALL_SIDES,
    **options: Any,
) -> Stats:
    """A campaign over every framing and side chosen. ``options``: ``jobs``
    (processes, see `fuzz_common.run_jobs`) and those of `campaign`."""
    return fuzz_common.run_jobs(campaign, inputs, seed, framings, sides, **options)


def replay(path: str) -> int:
    """Run the saved input at ``path`` and print what happens; 1 if it fails."""
    with open(path) as f:
        inp = Input.from_repr(f.read())
    harness = Harness()
    try:
        result, failure = harness.run(inp)
    finally:
        harness.close()
    about = f"{describe(inp)}: {len(inp.data)} bytes"
    return fuzz_common.print_replay(about, result, failure)


def main(argv: list[str] | None = None) -> int:
    parser = fuzz_common.campaign_parser(
        "tests.fuzz_session", __doc__, "tornado_spdy-fuzz-session", 30.0, "input.repr"
    )
    parser.add_argument(
        "--framing",
        choices=(*ALL_FRAMINGS, "all"),
        action="append",
        help="repeatable; default all",
    )
    parser.add_argument("--side", choices=(*ALL_SIDES, "both"), default="both")

    def run_chosen(args: argparse.Namespace, options: dict[str, Any]) -> Stats:
        framings = args.framing or ["all"]
        chosen = ALL_FRAMINGS if "all" in framings else tuple(dict.fromkeys(framings))
        sides = ALL_SIDES if args.side == "both" else (args.side,)
        return run(args.inputs, args.seed, chosen, sides, **options)

    return fuzz_common.command(parser, argv, replay, run_chosen)


if __name__ == "__main__":
    sys.exit(main())
