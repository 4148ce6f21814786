"""Fuzzing of the SPDY core's receive path (`SPDYConnection.receive_data`).

Run it as a module from the repository root::

    python -m tests.fuzz_core --inputs 100000 [--seed S] [--version spdy/3]
        [--side server] [--jobs 2] [--max-seconds 900] [--out fuzz-failures]

By default every version (``spdy/2``, ``spdy/3``, ``spdy/3.1``) and both sides
(``server``, ``client``) are fuzzed; ``--inputs`` is the total, shared evenly.

What goes in
------------

A corpus of *valid sessions* is recorded first: a client and a server
`SPDYConnection` play scenarios (GET, POST with trailers, pushes, flow control
with WINDOW_UPDATE, large windows, resets, SETTINGS, PING, GOAWAY, HEADERS ...)
and each side's inbound byte stream is kept together with the API calls that
side made between its reads (so that, replayed, a client has opened the streams
the server answers). Every input then goes to a fresh connection (after
``initiate_connection``), as one of:

``random``
    random bytes (sometimes behind a plausible control frame header);
``tail``
    a valid session cut at a frame boundary, followed by random bytes;
``mutate``
    a corpus session mutated at the frame level (drop, duplicate, swap, splice
    frames of another session, edit stream ids / flags / versions / types,
    edit the inflated header lists: add, drop, duplicate, upper-case, empty or
    NUL-laden names and values, wrong counts and lengths, garbage), then
    re-compressed with a fresh zlib context (so header blocks stay valid zlib
    unless a mutation says otherwise), then mutated at the byte level (bit
    flips, byte insert / delete / overwrite, 24-bit length edits);
``structured``
    random frames with valid headers: random payloads for every frame type,
    valid zlib header blocks holding random name/value lists, zlib bombs,
    garbage blocks, DATA of random sizes on plausible stream ids.

Each input is delivered in chunks cut at random places (whole, frame by frame,
random cuts, or a byte at a time), with the recorded API calls in between.

What fails
----------

An input *fails* when

* ``receive_data`` raises anything but `~tornado_spdy.spdy.errors.ProtocolError`
  (the documented session error);
* after a `ProtocolError`, ``data_to_send()`` holds no GOAWAY, or a later
  ``receive_data`` does not return ``[]``;
* ``data_to_send()`` returns bytes that are not a sequence of whole frames of
  the session's version;
* the output of one input exceeds ``1 MiB + 4 x`` its input (unbounded growth);
* one input uses more than 1 s of CPU (a hang; re-run once to confirm);
* an API call made the way an application would (acknowledging DATA, the
  recorded calls, and afterwards answering every open stream: a server pushes,
  sends headers and a body; a client ends its streams, resets pushes, pings,
  opens a stream, closes) raises anything but a documented
  `~tornado_spdy.spdy.errors.SPDYError`.

Each distinct failure (exception type and place) is saved to ``--out`` as the
input (``case.repr``, replayable with ``--replay``), its bytes (``data.bin``),
the traceback, and a minimized input found by delta debugging.

CI and the long run
-------------------

``tests/test_fuzz_core.py`` runs 15,000 inputs (all versions and sides, fixed
seed, about 25 s). The long run, about 15 minutes on both cores::

    python -m tests.fuzz_core --inputs 1000000 --jobs 2 --max-seconds 900 --seed 1

Its figures on 2026-11-24 (2 vCPU, shared with other jobs): 326,960 inputs in
903 s (362 inputs/s; about 54,500 per version and side; 48 % of them ended in a
session error), 280 failing inputs, 3 distinct failures, all the same bug: a push
promised with ``push_stream`` but not yet on the wire is forgotten by RST_STREAM,
GOAWAY or a stream error without leaving ``_pending_pushes``, and the next look
at the list raises ``KeyError`` (from ``receive_data``, or from ``send_headers``
/ ``send_data``). Slowest input: 471 ms of CPU; no hang, no output growth, no
malformed output, no missing GOAWAY.
"""

from __future__ import annotations

import argparse
import functools
import random
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from tests import fuzz_common
from tests.fuzz_common import Failure, Hang, failure_from
from tornado_spdy.spdy import VERSIONS, SPDYConfiguration, SPDYConnection
from tornado_spdy.spdy import events as ev
from tornado_spdy.spdy.errors import ProtocolError, SPDYError

ALL_VERSIONS = ("spdy/2", "spdy/3", "spdy/3.1")
ALL_SIDES = ("server", "client")

HANG_SECONDS = 1.0  # CPU seconds one input may take, plus its size's share:
MIN_BYTES_PER_SECOND = 10_000_000  # a large input may take time, linearly
OUTPUT_LIMIT_BASE = 1024 * 1024  # bytes of output allowed per input ...
OUTPUT_LIMIT_FACTOR = 4  # ... plus this many times the input's length

# Configuration presets: the recorded sessions use "default" and "large"; a
# mutated input sometimes runs under another preset, "small" reaching the
# limits (refused streams, oversized header blocks, short frames) sooner.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "large": {
        "initial_window_size": 16 * 1024 * 1024,
        "initial_session_window_size": 16 * 1024 * 1024,
        "max_outbound_frame_size": 64 * 1024,
    },
    "small": {
        "max_concurrent_streams": 2,
        "max_header_list_size": 256,
        "max_header_fields": 8,
        "max_inflate_size": 4096,
        "max_inbound_frame_size": 4096,
        "initial_window_size": 1024,
        "enable_push": False,
    },
    "tight": {
        "max_concurrent_streams": 1,
        "initial_window_size": 100,
        "max_outbound_frame_size": 10,
        "max_header_list_size": 64,
        "max_inflate_size": 64,
    },
}

_HEAD = struct.Struct(">II")
_CTRL = struct.Struct(">HHI")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")

GOAWAY = 7
SYN_STREAM, SYN_REPLY, HEADERS = 1, 2, 8
_BLOCK_TYPES = (SYN_STREAM, SYN_REPLY, HEADERS)

INTERESTING_32 = (
    0,
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x3FFF,
    0x4000,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0xFFFFFF,
    0x1000000,
    0x7FFFFFFE,
    0x7FFFFFFF,
    0x80000000,
    0x80000001,
    0xFFFFFFFE,
    0xFFFFFFFF,
)


# ----------------------------------------------------------------- inputs


@dataclass
class Case(fuzz_common.Replayable):
    """One fuzz input: everything needed to replay it."""

    version: str
    side: str
    preset: str
    data: bytes
    cuts: tuple[int, ...] = ()  # chunk boundaries (offsets into data)
    actions: tuple[
        tuple[int, str, tuple, dict], ...
    ] = ()  # (offset, method, args, kwargs)
    origin: str = ""


# ----------------------------------------------------------- running one


def walk_frames(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """Frame spans ``(start, end)`` of ``data`` and where the last whole frame ends."""
    spans = []
    position = 0
    end = len(data)
    while end - position >= 8:
        length = _HEAD.unpack_from(data, position)[1] & 0xFFFFFF
        if end - position - 8 < length:
            break
        spans.append((position, position + 8 + length))
        position += 8 + length
    return spans, position


def check_output(out: bytes, version: int) -> int:
    """Raise `Failure` unless ``out`` is whole frames of ``version``; the number
    of GOAWAY frames in it."""
    spans, end = walk_frames(out)
    if end != len(out):
        raise Failure(
            "malformed-output",
            f"{len(out) - end} trailing bytes: {out[end : end + 32].hex()}",
        )
    goaways = 0
    for start, _ in spans:
        first = _U32.unpack_from(out, start)[0]
        if first & 0x80000000:
            frame_version = (first >> 16) & 0x7FFF
            kind = first & 0xFFFF
            if frame_version != version or not 1 <= kind <= 10:
                raise Failure(
                    "malformed-output",
                    f"control frame version {frame_version} type {kind}",
                )
            goaways += kind == GOAWAY
    return goaways


def _api(conn: SPDYConnection, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call an API method as an application would: documented errors are fine."""
    try:
        return getattr(conn, name)(*args, **kwargs)
    except SPDYError:
        return None
    except Hang:
        raise
    except Exception as exc:
        failure = failure_from("api-exception", exc)
        failure.detail = f"{name}(): {failure.detail}"
        failure.label = f"{name}(): {failure.label}"
        raise failure from None


RESPONSE = [
    (":status", "200"),
    ("content-type", "text/plain"),
    ("content-length", "13"),
]


def _push_request(path: str) -> list[tuple[str, str]]:
    return [
        (":method", "GET"),
        (":path", path),
        (":scheme", "https"),
        (":authority", "example.com"),
    ]


def _answer(conn: SPDYConnection) -> bytes:
    """After the input: use the API on whatever streams are left open."""
    body = b"Hello, world!"
    if conn.client_side:
        for stream_id in sorted(conn.streams):
            if stream_id not in conn.streams:
                continue
            if stream_id & 1:
                window = _api(conn, "local_flow_control_window", stream_id) or 0
                _api(
                    conn,
                    "send_data",
                    stream_id,
                    body[: max(0, window)],
                    end_stream=True,
                )
            elif stream_id % 4 == 2:
                _api(conn, "reset_stream", stream_id)
        _api(conn, "ping")
        stream_id = conn.get_next_available_stream_id()
        _api(conn, "send_headers", stream_id, _push_request("/again"), end_stream=True)
    else:
        for stream_id in sorted(conn.streams):
            if stream_id not in conn.streams:
                continue
            if stream_id & 1:
                pushed = conn.get_next_available_stream_id()
                _api(
                    conn, "push_stream", stream_id, pushed, _push_request("/pushed.css")
                )
                if stream_id % 4 == 1:
                    _api(conn, "send_headers", pushed, RESPONSE)
                    _api(conn, "send_data", pushed, body, end_stream=True)
                else:
                    _api(conn, "reset_stream", pushed)  # a promise withdrawn
            _api(conn, "send_headers", stream_id, RESPONSE)
            window = _api(conn, "local_flow_control_window", stream_id) or 0
            _api(conn, "send_data", stream_id, body[: max(0, window)], end_stream=True)
            if stream_id in conn.streams:
                _api(conn, "reset_stream", stream_id)
    for stream_id in sorted(conn.streams)[:4]:
        _api(conn, "remote_flow_control_window", stream_id)
        _api(conn, "increment_flow_control_window", 1024, stream_id)
    _api(conn, "increment_flow_control_window", 1024)
    _api(conn, "close_connection")
    # Part of the output now, the rest at the final drain (joined there).
    return _api(conn, "data_to_send", 20) or b""


def _make_connection(case: Case) -> SPDYConnection:
    config = SPDYConfiguration(
        client_side=case.side == "client", version=case.version, **PRESETS[case.preset]
    )
    return SPDYConnection(config)


@dataclass
class Outcome:
    protocol_error: bool = False
    events: int = 0
    output: int = 0


def run_case(case: Case, connection_factory: Any = None) -> Outcome:
    """Feed ``case`` to a fresh connection; raise `Failure` if a rule breaks."""
    conn = (connection_factory or _make_connection)(case)
    wire_version = conn.profile.version
    outcome = Outcome()
    limit = OUTPUT_LIMIT_BASE + OUTPUT_LIMIT_FACTOR * len(case.data)

    def drain(head: bytes = b"") -> int:
        out = head + conn.data_to_send()
        outcome.output += len(out)
        if outcome.output > limit:
            raise Failure(
                "output-growth", f"{outcome.output} bytes of output (limit {limit})"
            )
        return check_output(out, wire_version)

    _api(conn, "initiate_connection")
    drain()
    data = case.data
    end = len(data)
    actions = sorted(case.actions, key=lambda a: a[0])
    bounds = sorted(
        {c for c in case.cuts if 0 < c < end}
        | {a[0] for a in actions if 0 < a[0] < end}
        | {end}
    )
    position = 0
    next_action = 0
    for bound in bounds:
        while next_action < len(actions) and actions[next_action][0] <= position:
            _, name, args, kwargs = actions[next_action]
            _api(conn, name, *args, **kwargs)
            next_action += 1
            drain()
        chunk = data[position:bound]
        position = bound
        try:
            events = conn.receive_data(chunk)
        except ProtocolError:
            outcome.protocol_error = True
            if not drain():
                raise Failure(
                    "no-goaway", "ProtocolError without a GOAWAY in data_to_send()"
                ) from None
            try:
                after = conn.receive_data(
                    b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
                )
            except Hang:
                raise
            except Exception as exc:
                raise failure_from("after-error", exc) from None
            if after:
                raise Failure(
                    "after-error",
                    f"receive_data after ProtocolError returned {after!r}",
                ) from None
            drain()
            return outcome
        except (Hang, Failure):
            raise
        except Exception as exc:
            raise failure_from("receive-exception", exc) from None
        outcome.events += len(events)
        for event in events:
            if not isinstance(event, ev.Event):
                raise Failure("bad-event", repr(event))
            if isinstance(event, ev.DataReceived):
                _api(
                    conn,
                    "acknowledge_received_data",
                    event.flow_controlled_length,
                    event.stream_id,
                )
        drain()
    for _, name, args, kwargs in actions[next_action:]:
        _api(conn, name, *args, **kwargs)
        drain()
    drain(_answer(conn))
    return outcome


def run_checked(
    case: Case, connection_factory: Any = None
) -> tuple[Outcome | None, Failure | None, float]:
    """`run_case` under a CPU timer: (outcome, failure, CPU seconds)."""
    budget = HANG_SECONDS + len(case.data) / MIN_BYTES_PER_SECOND
    return fuzz_common.run_with_cpu_limit(
        functools.partial(run_case, case, connection_factory), budget
    )


# ---------------------------------------------------------------- corpus


@dataclass
class WireFrame:
    """A frame kept editable: a header block is kept inflated (``block``)."""

    word: int  # the first 32 bits: control bit, version and type, or the stream id
    flags: int
    payload: (
        bytes  # DATA payload, a control frame's payload, or a block frame's fixed part
    )
    block: bytes | None = (
        None  # the inflated header block of SYN_STREAM/SYN_REPLY/HEADERS
    )
    compressed: bytes | None = None  # used as the block on the wire instead, if set
    length: int | None = None  # an explicit length field, if set (else the true length)

    def copy(self) -> WireFrame:
        return WireFrame(
            self.word,
            self.flags,
            self.payload,
            self.block,
            self.compressed,
            self.length,
        )

    @property
    def control(self) -> bool:
        return bool(self.word & 0x80000000)

    @property
    def type(self) -> int:
        return self.word & 0xFFFF if self.control else 0


@dataclass
class Action:
    name: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


CUT = "cut"  # a chunk boundary in a recorded session


@dataclass
class Session:
    """A recorded inbound stream of one side: frames, API calls, chunk cuts."""

    version: str
    side: str
    preset: str
    name: str
    items: list  # WireFrame | Action | CUT


def control_word(version: int, kind: int) -> int:
    return 0x80000000 | (version << 16) | (kind & 0xFFFF)


def block_offset(profile: Any, kind: int) -> int:
    return 10 if kind == SYN_STREAM else 4 + profile.reply_padding


def parse_session(data: bytes, profile: Any) -> list[WireFrame]:
    """Split a valid inbound stream into `WireFrame` objects, inflating blocks."""
    inflater = zlib.decompressobj(zdict=profile.dictionary)
    frames = []
    for start, end in walk_frames(data)[0]:
        word, second = _HEAD.unpack_from(data, start)
        payload = data[start + 8 : end]
        frame = WireFrame(word, second >> 24, payload)
        if frame.control and frame.type in _BLOCK_TYPES:
            offset = block_offset(profile, frame.type)
            frame.payload = payload[:offset]
            frame.block = inflater.decompress(payload[offset:])
        frames.append(frame)
    return frames


class Compressor:
    """The fuzzer's own zlib context for the header blocks of one input."""

    def __init__(self, profile: Any, rng: random.Random | None = None):
        level, wbits, mem, zdict = 6, 15, 8, profile.dictionary
        self.flush = zlib.Z_SYNC_FLUSH
        if rng is not None and rng.random() < 0.2:
            level = rng.randint(0, 9)
            wbits = rng.randint(9, 15)
            mem = rng.randint(1, 9)
            if rng.random() < 0.05:
                zdict = rng.choice(
                    (b"", b"not the dictionary", VERSIONS["spdy/2"].dictionary)
                )
            if rng.random() < 0.1:
                self.flush = rng.choice(
                    (zlib.Z_FULL_FLUSH, zlib.Z_NO_FLUSH, zlib.Z_FINISH)
                )
        self._zdict = zdict
        self._args = (level, zlib.DEFLATED, wbits, mem)
        self._compressor: Any = None

    def block(self, raw: bytes) -> bytes:
        if self._compressor is None:
            if self._zdict:
                self._compressor = zlib.compressobj(*self._args, zdict=self._zdict)
            else:
                self._compressor = zlib.compressobj(*self._args)
        try:
            return self._compressor.compress(raw) + self._compressor.flush(self.flush)
        except zlib.error:  # after Z_FINISH the stream is over: garbage from now on
            return raw


def serialize(
    items: list, profile: Any, compressor: Compressor
) -> tuple[bytes, list[int], list[tuple[int, str, tuple, dict]]]:
    parts = []
    position = 0
    cuts = []
    actions = []
    for item in items:
        if isinstance(item, WireFrame):
            body = item.payload
            if item.block is not None or item.compressed is not None:
                block = (
                    item.compressed
                    if item.compressed is not None
                    else compressor.block(item.block)
                )
                body = body + block
            length = len(body) if item.length is None else item.length
            frame = (
                _HEAD.pack(
                    item.word & 0xFFFFFFFF,
                    ((item.flags & 0xFF) << 24) | (length & 0xFFFFFF),
                )
                + body
            )
            parts.append(frame)
            position += len(frame)
        elif isinstance(item, Action):
            actions.append((position, item.name, item.args, item.kwargs))
        else:
            cuts.append(position)
    return b"".join(parts), cuts, actions


class _Side:
    """One side of a recorded scenario: its connection and its inbound session."""

    def __init__(self, conn: SPDYConnection, session: Session):
        self.conn = conn
        self.session = session
        self.inbound = bytearray()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.session.items.append(Action(name, args, kwargs))
        return getattr(self.conn, name)(*args, **kwargs)

    def receive(self, data: bytes) -> list[ev.Event]:
        self.inbound += data
        self.session.items.append(bytes(data))  # replaced by its frames and a CUT
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, ev.DataReceived):
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        return events


class RecordingSide(Protocol):
    """One side of a recorded conversation (`_Side`, or the h2 one of
    `tests.fuzz_session`): its protocol connection, the API calls it records,
    and what it receives."""

    conn: Any

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any: ...

    def receive(self, data: bytes) -> Any: ...


def pump(client: RecordingSide, server: RecordingSide) -> None:
    """Carry each side's output to the other until neither has any."""
    while True:
        to_server = client.conn.data_to_send()
        to_client = server.conn.data_to_send()
        if not to_server and not to_client:
            return
        if to_server:
            server.receive(to_server)
        if to_client:
            client.receive(to_client)


REQUEST = [
    (":method", "GET"),
    (":path", "/index.html"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    ),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-US,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br"),
    ("cookie", "session=abc123; theme=dark"),
]


def _post(path: str) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":path", path),
        (":scheme", "https"),
        (":authority", "example.com"),
        ("content-type", "application/json"),
    ]


def send_body(
    sender: RecordingSide,
    stream_id: int,
    body: bytes,
    client: RecordingSide,
    server: RecordingSide,
) -> None:
    """Send ``body`` from ``sender`` (the ``client`` or the ``server``)
    under flow control, pumping when the window closes."""
    position = 0
    while position < len(body):
        n = min(
            len(body) - position,
            sender.conn.max_outbound_frame_size,
            sender.conn.local_flow_control_window(stream_id),
        )
        if n <= 0:
            pump(client, server)
            continue
        sender.call(
            "send_data",
            stream_id,
            body[position : position + n],
            end_stream=position + n == len(body),
        )
        position += n
    pump(client, server)


def _scenario_get(c: _Side, s: _Side) -> None:
    c.call("send_headers", 1, REQUEST, end_stream=True)
    pump(c, s)
    s.call("send_headers", 1, RESPONSE)
    s.call("send_data", 1, b"Hello, world!", end_stream=True)
    pump(c, s)
    c.call("ping")
    s.call("ping")
    pump(c, s)
    c.call("send_headers", 3, REQUEST, end_stream=True)
    pump(c, s)
    s.call(
        "send_headers",
        3,
        [(":status", "404"), ("content-length", "0")],
        end_stream=True,
    )
    pump(c, s)
    c.call("close_connection")
    pump(c, s)


def _scenario_post_trailers(c: _Side, s: _Side) -> None:
    c.call("send_headers", 1, _post("/upload"))
    c.call("send_data", 1, b"{" + b"a" * 998 + b"}")
    c.call("send_data", 1, b"b" * 5000)
    c.call("send_headers", 1, [("x-checksum", "12345")], end_stream=True)
    pump(c, s)
    s.call(
        "send_headers", 1, [(":status", "201"), ("content-type", "application/json")]
    )
    s.call("send_data", 1, b'{"ok": true}' * 100)
    s.call(
        "send_headers",
        1,
        [("x-trailer", "done"), ("grpc-status", "0")],
        end_stream=True,
    )
    pump(c, s)


def _scenario_push(c: _Side, s: _Side) -> None:
    c.call("send_headers", 1, REQUEST, end_stream=True)
    pump(c, s)
    s.call("push_stream", 1, 2, _push_request("/style.css"))
    s.call("push_stream", 1, 4, _push_request("/app.js"))
    s.call("push_stream", 1, 6, _push_request("/logo.png"))
    s.call("send_headers", 2, [(":status", "200"), ("content-type", "text/css")])
    s.call("send_data", 2, b"body { color: red }", end_stream=True)
    s.call("send_headers", 1, [(":status", "200"), ("content-type", "text/html")])
    s.call("send_data", 1, b"<html>" + b"x" * 500)
    pump(c, s)
    c.call("reset_stream", 6, 5)
    pump(c, s)
    s.call(
        "send_headers",
        4,
        [(":status", "200"), ("content-type", "application/javascript")],
    )
    s.call("send_data", 4, b"console.log(1)", end_stream=True)
    s.call("send_data", 1, b"</html>", end_stream=True)
    pump(c, s)


def _scenario_push_pending(c: _Side, s: _Side) -> None:
    """Pushes promised but not yet on the wire while the client's frames arrive."""
    c.call("send_headers", 1, REQUEST, end_stream=True)
    pump(c, s)
    s.call("send_headers", 1, [(":status", "200"), ("content-type", "text/html")])
    s.call("push_stream", 1, 2, _push_request("/a.css"))
    s.call("push_stream", 1, 4, _push_request("/b.js"))
    pump(c, s)
    c.call("ping")
    c.call("send_headers", 3, REQUEST, end_stream=True)
    c.call("update_settings", {4: 20})
    pump(c, s)
    s.call("send_headers", 4, RESPONSE)
    s.call("send_data", 4, b"Hello, world!", end_stream=True)
    s.call("send_headers", 2, [(":status", "200"), ("content-type", "text/css")])
    s.call("send_data", 2, b"p {}", end_stream=True)
    s.call("send_headers", 3, RESPONSE, end_stream=True)
    s.call("send_data", 1, b"<html></html>", end_stream=True)
    pump(c, s)


def _scenario_flow(c: _Side, s: _Side) -> None:
    c.call("send_headers", 1, REQUEST, end_stream=True)
    c.call("send_headers", 3, _post("/big"))
    pump(c, s)
    s.call(
        "send_headers",
        1,
        [(":status", "200"), ("content-type", "application/octet-stream")],
    )
    send_body(s, 1, bytes(range(256)) * 600, c, s)  # 150 KiB: WINDOW_UPDATEs
    send_body(c, 3, b"u" * 100_000, c, s)
    s.call("send_headers", 3, [(":status", "204")], end_stream=True)
    pump(c, s)


def _scenario_large_windows(c: _Side, s: _Side) -> None:
    c.call("send_headers", 1, REQUEST, end_stream=True)
    pump(c, s)
    s.call("send_headers", 1, RESPONSE)
    send_body(s, 1, b"L" * 200_000, c, s)


def _scenario_streams(c: _Side, s: _Side) -> None:
    for stream_id, end in ((1, True), (3, True), (5, False), (7, True)):
        c.call(
            "send_headers",
            stream_id,
            REQUEST[:4] + [(":path", f"/r{stream_id}")],
            end_stream=end,
            priority=stream_id % 4,
        )
    pump(c, s)
    c.call("reset_stream", 3)
    s.call("reset_stream", 5, 3)
    pump(c, s)
    s.call("send_headers", 1, RESPONSE)
    s.call("send_headers", 7, RESPONSE)
    for _ in range(4):
        s.call("send_data", 1, b"one" * 50)
        s.call("send_data", 7, b"seven" * 30)
    s.call("send_data", 1, b"", end_stream=True)
    pump(c, s)
    c.call("update_settings", {7: 128 * 1024, 4: 50})
    s.call("update_settings", {4: 10})
    pump(c, s)
    if c.conn.profile.session_flow_control:
        c.call("increment_flow_control_window", 65536)
        s.call("increment_flow_control_window", 4096)
    pump(c, s)
    c.call("send_headers", 9, REQUEST, end_stream=True)
    pump(c, s)
    s.call("close_connection")
    pump(c, s)
    s.call("send_headers", 9, RESPONSE)
    s.call("send_data", 9, b"Hello, world!", end_stream=True)
    s.call("end_stream", 7)
    pump(c, s)


def _scenario_header_variety(c: _Side, s: _Side) -> None:
    c.call(
        "send_headers",
        1,
        REQUEST
        + [
            ("Accept", "a"),
            ("accept", "b"),
            ("x-long", "v" * 4000),
            ("x-empty", ""),
            ("x-utf8", "caf\u00e9"),
        ],
        end_stream=True,
    )
    pump(c, s)
    s.call(
        "send_headers",
        1,
        [
            (":status", "302"),
            ("location", "/elsewhere"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("connection", "close"),
            ("x-spaces", "a b  c"),
        ],
    )
    s.call("send_data", 1, b"", end_stream=True)
    pump(c, s)
    c.call("send_headers", 3, REQUEST, end_stream=True)
    pump(c, s)
    s.call("reset_stream", 3, 6)
    s.call("ping")
    pump(c, s)


SCENARIOS = (
    ("get", "default", _scenario_get),
    ("post-trailers", "default", _scenario_post_trailers),
    ("push", "default", _scenario_push),
    ("push-pending", "default", _scenario_push_pending),
    ("flow", "default", _scenario_flow),
    ("large-windows", "large", _scenario_large_windows),
    ("streams", "default", _scenario_streams),
    ("header-variety", "default", _scenario_header_variety),
)


def build_corpus(version: str) -> dict[str, list[Session]]:
    """Record every scenario in ``version``: the sessions of each side."""
    profile = VERSIONS[version]
    corpus: dict[str, list[Session]] = {"server": [], "client": []}
    for name, preset, play in SCENARIOS:
        config = PRESETS[preset]
        client = _Side(
            SPDYConnection(
                SPDYConfiguration(client_side=True, version=version, **config)
            ),
            Session(version, "client", preset, name, []),
        )
        server = _Side(
            SPDYConnection(
                SPDYConfiguration(client_side=False, version=version, **config)
            ),
            Session(version, "server", preset, name, []),
        )
        client.conn.initiate_connection()
        server.conn.initiate_connection()
        pump(client, server)
        play(client, server)
        for side in (client, server):
            # The chunks hold whole frames; parse them all with one inflater.
            frames = iter(parse_session(bytes(side.inbound), profile))
            items: list = []
            for item in side.session.items:
                if isinstance(item, bytes):
                    items.extend(next(frames) for _ in walk_frames(item)[0])
                    items.append(CUT)
                else:
                    items.append(item)
            side.session.items = items
            corpus[side.session.side].append(side.session)
    return corpus


def session_case(
    session: Session, compressor: Compressor | None = None, origin: str = "corpus"
) -> Case:
    """The unmutated `Case` of a recorded session."""
    profile = VERSIONS[session.version]
    data, cuts, actions = serialize(
        session.items, profile, compressor or Compressor(profile)
    )
    return Case(
        session.version,
        session.side,
        session.preset,
        data,
        tuple(cuts),
        tuple(actions),
        origin,
    )


# --------------------------------------------------------- header lists


def pseudo_names(profile: Any) -> list[bytes]:
    return list(profile.wire_names.values())


COMMON_NAMES = [
    b"content-type",
    b"content-length",
    b"cookie",
    b"set-cookie",
    b"accept",
    b"host",
    b"user-agent",
    b"location",
    b"connection",
    b"transfer-encoding",
    b"keep-alive",
    b"x-a",
    b"te",
    b"trailer",
]


def random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def random_value(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.4:
        return rng.choice(
            (
                b"GET",
                b"POST",
                b"/",
                b"/index.html",
                b"https",
                b"HTTP/1.1",
                b"200",
                b"200 OK",
                b"example.com",
                b"text/html",
                b"13",
                b"0",
            )
        )
    if r < 0.5:
        return b""
    if r < 0.6:
        return (
            b"a\0b"
            if rng.random() < 0.5
            else rng.choice((b"\0", b"a\0", b"\0a", b"a\0\0b"))
        )
    if r < 0.65:
        return b"v" * rng.choice((255, 256, 4096, 65535, 70000))
    if r < 0.75:
        return rng.choice(
            (
                b"999",
                b"abc",
                b"-1",
                b"200 ",
                b" 200",
                b"http://h/p",
                b"https://h",
                b"://",
                b"1" * 40,
            )
        )
    return random_bytes(rng, rng.randint(1, 24))


def random_name(rng: random.Random, profile: Any) -> bytes:
    r = rng.random()
    if r < 0.35:
        return rng.choice(pseudo_names(profile))
    if r < 0.7:
        return rng.choice(COMMON_NAMES)
    if r < 0.78:
        return b""
    if r < 0.86:
        return rng.choice((b"Content-Type", b":STATUS", b"X-Upper", b"METHOD"))
    if r < 0.9:
        return b"a\0b"
    return random_bytes(rng, rng.randint(1, 12))


def plausible_headers(
    rng: random.Random, profile: Any, kind: str
) -> list[tuple[bytes, bytes]]:
    names = profile.wire_names
    if kind == "request":
        headers = [
            (names[b":method"], b"GET"),
            (names[b":path"], b"/"),
            (names[b":version"], b"HTTP/1.1"),
            (names[b":scheme"], b"https"),
            (names[b":authority"], b"example.com"),
        ]
    elif kind == "push":
        if profile.absolute_push_url:
            headers = [
                (
                    names[b":path"],
                    rng.choice(
                        (b"https://example.com/p.css", b"/p.css", b"http://h", b"x://")
                    ),
                )
            ]
        else:
            headers = [
                (names[b":path"], b"/p.css"),
                (names[b":scheme"], b"https"),
                (names[b":authority"], b"example.com"),
            ]
        if rng.random() < 0.6:
            headers += [
                (names[b":status"], b"200 OK"),
                (names[b":version"], b"HTTP/1.1"),
            ]
    elif kind == "response":
        headers = [
            (names[b":status"], b"200 OK"),
            (names[b":version"], b"HTTP/1.1"),
            (b"content-type", b"text/html"),
        ]
    else:
        headers = [(b"x-trailer", b"1")]
    rng.shuffle(headers)
    for _ in range(rng.choice((0, 0, 1, 2, 5))):
        op = rng.random()
        if op < 0.3 and headers:
            del headers[rng.randrange(len(headers))]
        elif op < 0.6:
            headers.insert(
                rng.randint(0, len(headers)),
                (random_name(rng, profile), random_value(rng)),
            )
        elif op < 0.75 and headers:
            headers.append(rng.choice(headers))
        elif headers:
            i = rng.randrange(len(headers))
            headers[i] = (headers[i][0], random_value(rng))
    if rng.random() < 0.03:
        headers += [(b"x-%d" % i, b"v") for i in range(rng.choice((9, 100, 101, 300)))]
    return headers


def build_raw(
    headers: list[tuple[bytes, bytes]], size: int, rng: random.Random | None = None
) -> bytes:
    fmt = ">H" if size == 2 else ">I"
    limit = 0xFFFF if size == 2 else 0xFFFFFFFF
    count = len(headers)
    parts = []
    for name, value in headers:
        parts += (
            struct.pack(fmt, min(len(name), limit)),
            name,
            struct.pack(fmt, min(len(value), limit)),
            value,
        )
    raw = b"".join(parts)
    if rng is not None and rng.random() < 0.15:
        r = rng.random()
        if r < 0.3:
            count = rng.choice(
                (0, count + 1, max(0, count - 1), limit, 0x7FFFFFFF & limit)
            )
        elif r < 0.5:
            raw = raw[: rng.randint(0, len(raw))]
        elif r < 0.7:
            raw += random_bytes(rng, rng.randint(1, 8))
        elif r < 0.85 and raw:
            raw = bytearray(raw)
            i = rng.randrange(len(raw))
            raw[i] = rng.randrange(256)
            raw = bytes(raw)
        else:
            return random_bytes(rng, rng.randint(0, 40))
    return struct.pack(fmt, count) + raw


def parse_raw(raw: bytes, size: int) -> list[tuple[bytes, bytes]] | None:
    fmt = ">H" if size == 2 else ">I"
    try:
        count = struct.unpack_from(fmt, raw)[0]
        position = size
        headers = []
        for _ in range(count):
            n = struct.unpack_from(fmt, raw, position)[0]
            name = raw[position + size : position + size + n]
            position += size + n
            n = struct.unpack_from(fmt, raw, position)[0]
            value = raw[position + size : position + size + n]
            position += size + n
            headers.append((name, value))
        return headers
    except struct.error:
        return None


def mutate_block(rng: random.Random, raw: bytes, profile: Any) -> bytes:
    size = profile.length_size
    headers = parse_raw(raw, size)
    if headers is None or rng.random() < 0.2:
        return mutate_bytes(rng, raw, 1)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.2 and headers:
            del headers[rng.randrange(len(headers))]
        elif op < 0.4:
            headers.insert(
                rng.randint(0, len(headers)),
                (random_name(rng, profile), random_value(rng)),
            )
        elif op < 0.55 and headers:
            i = rng.randrange(len(headers))
            headers[i] = (headers[i][0], random_value(rng))
        elif op < 0.7 and headers:
            i = rng.randrange(len(headers))
            headers[i] = (random_name(rng, profile), headers[i][1])
        elif op < 0.8 and headers:
            headers.append(rng.choice(headers))
        elif op < 0.9:
            rng.shuffle(headers)
        else:
            headers = [
                (n, v)
                for n, v in headers
                if not n.startswith(b":")
                and n not in (b"method", b"url", b"status", b"version")
            ]
    return build_raw(headers, size, rng)


# ------------------------------------------------------------- mutators


def mutate_bytes(rng: random.Random, data: bytes, count: int) -> bytes:
    buf = bytearray(data)
    for _ in range(count):
        op = rng.random()
        if op < 0.35 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op < 0.5 and buf:
            i = rng.randrange(len(buf))
            buf[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op < 0.65:
            i = rng.randint(0, len(buf))
            buf[i:i] = random_bytes(
                rng, rng.choice((1, 1, 2, 4, 8, rng.randint(1, 64)))
            )
        elif op < 0.8 and buf:
            i = rng.randrange(len(buf))
            del buf[i : i + rng.choice((1, 1, 2, 4, 8, rng.randint(1, 64)))]
        elif op < 0.9 and len(buf) >= 4:
            i = rng.randrange(len(buf) - 3)
            buf[i : i + 4] = _U32.pack(rng.choice(INTERESTING_32))
        elif buf:
            i = rng.randrange(len(buf))
            j = rng.randint(i, min(len(buf), i + 64))
            k = rng.randint(0, len(buf))
            buf[k:k] = buf[i:j]
    return bytes(buf)


def mutate_lengths(rng: random.Random, data: bytes) -> bytes:
    """Edit the 24-bit length field of a frame (the stream no longer lines up)."""
    spans = walk_frames(data)[0]
    if not spans:
        return data
    start, end = rng.choice(spans)
    length = end - start - 8
    new = rng.choice(
        (
            0,
            1,
            3,
            4,
            7,
            8,
            9,
            10,
            12,
            length - 1,
            length + 1,
            length + rng.randint(-16, 16),
            0xFFFFFF,
            16384,
            16385,
            1 << 20,
            (1 << 20) + 1,
            rng.randrange(1 << 24),
        )
    )
    buf = bytearray(data)
    buf[start + 5 : start + 8] = (new & 0xFFFFFF).to_bytes(3, "big")
    return bytes(buf)


def pick_stream_id(rng: random.Random) -> int:
    return rng.choice(
        (
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            9,
            11,
            99,
            100,
            0x7FFFFFFF,
            0x7FFFFFFE,
            rng.randrange(1 << 32),
        )
    )


def mutate_frame_fields(rng: random.Random, frame: WireFrame, profile: Any) -> None:
    op = rng.random()
    if op < 0.15:
        frame.flags = rng.choice((0, 1, 2, 3, 0xFF, rng.randrange(256)))
    elif op < 0.25 and frame.control:
        kind = rng.choice(
            (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0xFFFF, rng.randrange(1 << 16))
        )
        frame.word = control_word((frame.word >> 16) & 0x7FFF, kind)
        if frame.block is not None and kind not in _BLOCK_TYPES:
            frame.payload = frame.payload + Compressor(profile).block(frame.block)
            frame.block = None
    elif op < 0.3 and frame.control:
        frame.word = control_word(rng.choice((1, 2, 3, 4, 0x7FFF)), frame.word & 0xFFFF)
    elif op < 0.35:
        frame.word ^= 0x80000000  # a control frame read as DATA, or the reverse
    elif op < 0.5 and not frame.control:
        frame.word = pick_stream_id(rng)
    elif op < 0.6 and not frame.control:
        frame.payload = (
            frame.payload[: rng.randint(0, len(frame.payload))]
            if rng.random() < 0.5
            else frame.payload + b"x" * rng.choice((1, 1000, 70000))
        )
    elif frame.payload and len(frame.payload) >= 4:
        buf = bytearray(frame.payload)
        offset = (
            rng.randrange(0, len(buf) - 3) & ~3
            if rng.random() < 0.8
            else rng.randrange(len(buf) - 3)
        )
        value = (
            pick_stream_id(rng) if rng.random() < 0.5 else rng.choice(INTERESTING_32)
        )
        buf[offset : offset + 4] = _U32.pack(value & 0xFFFFFFFF)
        frame.payload = bytes(buf)
    elif frame.payload:
        frame.payload = mutate_bytes(rng, frame.payload, 1)
    else:
        frame.payload = random_bytes(rng, rng.choice((1, 4, 8, 12)))


def copy_items(items: list) -> list:
    return [item.copy() if isinstance(item, WireFrame) else item for item in items]


def mutate_session(rng: random.Random, session: Session, others: list[Session]) -> Case:
    profile = VERSIONS[session.version]
    items = copy_items(session.items)
    frame_positions = [i for i, item in enumerate(items) if isinstance(item, WireFrame)]
    ops = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        op = rng.random()
        frame_positions = [
            i for i, item in enumerate(items) if isinstance(item, WireFrame)
        ]
        if not frame_positions:
            break
        i = rng.choice(frame_positions)
        if op < 0.1:
            del items[i]
            ops.append("drop")
        elif op < 0.18:
            items.insert(rng.choice(frame_positions), items[i].copy())
            ops.append("dup")
        elif op < 0.25:
            j = rng.choice(frame_positions)
            items[i], items[j] = items[j], items[i]
            ops.append("swap")
        elif op < 0.35:
            other = rng.choice(others)
            other_frames = [item for item in other.items if isinstance(item, WireFrame)]
            if rng.random() < 0.5:
                k = rng.randrange(len(other_frames))
                j = rng.randint(k, min(len(other_frames), k + 4))
                items[i:i] = copy_items(other_frames[k:j])
            else:
                items = items[:i] + copy_items(
                    other_frames[rng.randrange(len(other_frames)) :]
                )
            ops.append("splice")
        elif op < 0.45:
            items.insert(
                i, random_frame(rng, profile, session.side, _StructState(session.side))
            )
            ops.append("insert")
        elif op < 0.7:
            blocks = [k for k in frame_positions if items[k].block is not None]
            if blocks:
                k = rng.choice(blocks)
                items[k].block = mutate_block(rng, items[k].block, profile)
                ops.append("block")
        else:
            mutate_frame_fields(rng, items[i], profile)
            ops.append("field")
    compressor = Compressor(profile, rng)
    data, cuts, actions = serialize(items, profile, compressor)
    if rng.random() < 0.4:
        data = mutate_bytes(rng, data, rng.choice((1, 1, 2, 3, 8)))
        ops.append("bytes")
    if rng.random() < 0.15:
        data = mutate_lengths(rng, data)
        ops.append("length")
    preset = session.preset if rng.random() < 0.85 else rng.choice(list(PRESETS))
    case = Case(
        session.version,
        session.side,
        preset,
        data,
        tuple(cuts),
        tuple(actions),
        "mutate:" + "+".join(ops),
    )
    return rechunk(rng, case)


def rechunk(rng: random.Random, case: Case) -> Case:
    r = rng.random()
    n = len(case.data)
    if r < 0.3:
        return case  # as recorded (or as generated)
    if r < 0.45:
        cuts: tuple[int, ...] = ()
    elif r < 0.6:
        cuts = tuple(end for _, end in walk_frames(case.data)[0])
    elif r < 0.9 or n > 4096:
        cuts = tuple(sorted(rng.randrange(n + 1) for _ in range(rng.randint(1, 12))))
    else:
        cuts = tuple(range(1, n))
    return replace(case, cuts=cuts)


# ------------------------------------------------------ structured frames


class _StructState:
    """What the structured generator has made so far in one input."""

    def __init__(self, side: str):
        self.side = side
        self.next_id = 1 if side == "server" else 2


def _block_frame(
    rng: random.Random, profile: Any, kind: int, fixed: bytes, headers_kind: str
) -> WireFrame:
    frame = WireFrame(control_word(profile.version, kind), 0, fixed)
    r = rng.random()
    if r < 0.85:
        frame.block = build_raw(
            plausible_headers(rng, profile, headers_kind), profile.length_size, rng
        )
    elif r < 0.9:  # a zlib bomb
        size = rng.choice((70_000, 300_000, 1_100_000, 3_000_000))
        if size > 1024 * 1024:
            frame.compressed = _bomb(size)  # over max_inflate_size: the session ends
        else:
            frame.block = b"a" * size
    elif r < 0.95:
        frame.compressed = random_bytes(rng, rng.randint(0, 40))
    else:
        frame.compressed = b""
    return frame


_BOMBS: dict[int, bytes] = {}


def _bomb(size: int) -> bytes:
    """Raw deflate blocks inflating to ``size`` bytes, compressed once: after
    the sync flush that ends every block they continue any zlib stream."""
    if size not in _BOMBS:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        _BOMBS[size] = deflate.compress(b"a" * size) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return _BOMBS[size]


def random_frame(
    rng: random.Random, profile: Any, side: str, state: _StructState
) -> WireFrame:
    version = profile.version
    r = rng.random()
    if r < 0.2:
        stream_id = (
            pick_stream_id(rng) if rng.random() < 0.3 else rng.choice((1, 3, 5, 2, 4))
        )
        flags = rng.choice((0, 0, 1, 1, 2, 3, rng.randrange(256)))
        size = rng.choice((0, 1, 13, 100, 1000, 16384, 65535, 65536, 70000))
        return WireFrame(
            stream_id & 0x7FFFFFFF if rng.random() < 0.95 else stream_id,
            flags,
            b"d" * size,
        )
    kind = rng.choice(
        (1, 1, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 9, 10, 11, rng.randrange(1 << 16))
    )
    if kind == SYN_STREAM:
        if rng.random() < 0.8:
            stream_id = state.next_id
            state.next_id += 2
        else:
            stream_id = pick_stream_id(rng)
        associated = (
            rng.choice((0, 1, 3, 5, 2, pick_stream_id(rng)))
            if side == "client"
            else rng.choice((0, 0, 0, 1, pick_stream_id(rng)))
        )
        word = rng.randrange(1 << 16) if rng.random() < 0.2 else rng.randrange(8) << 13
        fixed = _HEAD.pack(stream_id & 0xFFFFFFFF, associated & 0xFFFFFFFF) + _U16.pack(
            word
        )
        if rng.random() < 0.05:
            fixed = fixed[: rng.randrange(10)]
        frame = _block_frame(
            rng, profile, kind, fixed, "push" if side == "client" else "request"
        )
        frame.flags = rng.choice((0, 1, 2, 3, 3, rng.randrange(256)))
        return frame
    if kind in (SYN_REPLY, HEADERS):
        stream_id = rng.choice((1, 3, 5, 2, 4, pick_stream_id(rng)))
        fixed = _U32.pack(stream_id) + bytes(profile.reply_padding)
        if rng.random() < 0.05:
            fixed = fixed[: rng.randrange(len(fixed))]
        frame = _block_frame(
            rng,
            profile,
            kind,
            fixed,
            "response" if kind == SYN_REPLY else rng.choice(("response", "trailers")),
        )
        frame.flags = rng.choice((0, 1, 1, rng.randrange(256)))
        return frame
    if kind == 3:
        payload = _HEAD.pack(
            pick_stream_id(rng),
            rng.choice((0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 0xFFFFFFFF)),
        )
    elif kind == 4:
        count = rng.choice((0, 1, 2, 3, 8))
        entry_fmt = struct.Struct(profile.settings_id_format)
        entries = b"".join(
            entry_fmt.pack(
                (rng.choice((0, 0, 1, 2, 3, 0xFF)) << 24)
                | rng.choice((1, 2, 3, 4, 4, 5, 6, 7, 7, 7, 8, 0, 9, 0xFFFFFF))
            )
            + _U32.pack(rng.choice(INTERESTING_32))
            for _ in range(count)
        )
        declared = (
            count
            if rng.random() < 0.85
            else rng.choice((count + 1, count - 1 & 0xFFFFFFFF, 0xFFFFFFFF, 0x1FFFFFFF))
        )
        payload = _U32.pack(declared) + entries
    elif kind == 6:
        payload = _U32.pack(
            rng.choice((1, 2, 3, 4, 0, 0xFFFFFFFF, rng.randrange(1 << 32)))
        )
    elif kind == 7:
        payload = _HEAD.pack(pick_stream_id(rng), rng.choice((0, 1, 2, 3, 0xFFFFFFFF)))
        if rng.random() < 0.3:
            payload = payload[:4]
    elif kind == 9:
        payload = _HEAD.pack(
            rng.choice((0, 1, 3, 2, pick_stream_id(rng))), rng.choice(INTERESTING_32)
        )
    else:
        payload = random_bytes(rng, rng.choice((0, 0, 4, 8, 16, rng.randint(0, 100))))
    if rng.random() < 0.1:
        payload = mutate_bytes(rng, payload, 1)
    frame_version = version if rng.random() < 0.97 else rng.choice((1, 2, 3, 4, 0x7FFF))
    return WireFrame(
        control_word(frame_version, kind),
        rng.choice((0, 0, 0, 1, 2, rng.randrange(256))),
        payload,
    )


CLIENT_PROLOGUE = (
    Action("send_headers", (1, REQUEST)),
    Action("send_headers", (3, REQUEST), {"end_stream": True}),
    Action("send_headers", (5, _post("/form"))),
    Action("ping", ()),
)


# API calls made between structured frames: pushes left pending while frames
# arrive, resets, GOAWAY sent before more frames come.
MID_ACTIONS = {
    "server": (
        Action("send_headers", (1, RESPONSE)),
        Action("push_stream", (1, 2, _push_request("/a.css"))),
        Action("push_stream", (1, 4, _push_request("/b.js"))),
        Action("push_stream", (3, 6, _push_request("/c.js"))),
        Action("send_data", (1, b"Hello, world!")),
        Action("send_headers", (2, RESPONSE)),
        Action("reset_stream", (1,)),
        Action("close_connection", ()),
        Action("ping", ()),
        Action("update_settings", ({7: 10},)),
    ),
    "client": (
        Action("send_data", (1, b"Hello, world!")),
        Action("send_headers", (7, REQUEST), {"end_stream": True}),
        Action("reset_stream", (3,)),
        Action("reset_stream", (2,)),
        Action("close_connection", ()),
        Action("ping", ()),
        Action("update_settings", ({7: 1 << 20},)),
    ),
}


def structured_case(rng: random.Random, version: str, side: str) -> Case:
    profile = VERSIONS[version]
    state = _StructState(side)
    items: list = []
    if side == "client":
        items += CLIENT_PROLOGUE
    if rng.random() < 0.7:
        items.append(
            WireFrame(
                control_word(profile.version, 4),
                0,
                _U32.pack(1)
                + struct.pack(profile.settings_id_format, 4)
                + _U32.pack(100),
            )
        )
    for _ in range(rng.choice((1, 2, 3, 5, 8, 12, 20))):
        r = rng.random()
        if r < 0.04:
            # A flood: one frame many times (resets remembered, output bounds).
            frame = random_frame(rng, profile, side, state)
            copies = [frame.copy() for _ in range(rng.choice((50, 130, 300)))]
            if not frame.control and rng.random() < 0.5:
                for k, copy in enumerate(copies):  # distinct idle streams
                    copy.word = 101 + 2 * k
            items += copies
        elif r < 0.14:
            items.append(rng.choice(MID_ACTIONS[side]))
        else:
            items.append(random_frame(rng, profile, side, state))
        if rng.random() < 0.1:
            items.append(CUT)
    preset = rng.choice(("default", "default", "default", "large", "small", "tight"))
    data, cuts, actions = serialize(items, profile, Compressor(profile, rng))
    if rng.random() < 0.1:
        data = mutate_bytes(rng, data, rng.randint(1, 3))
    return rechunk(
        rng,
        Case(version, side, preset, data, tuple(cuts), tuple(actions), "structured"),
    )


def random_case(
    rng: random.Random, version: str, side: str, corpus: list[Session]
) -> Case:
    profile = VERSIONS[version]
    size = rng.choice(
        (
            0,
            1,
            7,
            8,
            9,
            16,
            rng.randint(0, 64),
            rng.randint(0, 1024),
            rng.randint(0, 8192),
        )
    )
    data = random_bytes(rng, size)
    if rng.random() < 0.5 and size >= 8:
        # A plausible control frame header in front.
        kind = rng.choice((1, 2, 3, 4, 6, 7, 8, 9, 10))
        data = (
            _CTRL.pack(
                0x8000 | profile.version,
                kind,
                rng.randrange(256) << 24 | min(size - 8, rng.randrange(1 << 24)),
            )
            + data[8:]
        )
    actions = (
        tuple((0, a.name, a.args, a.kwargs) for a in CLIENT_PROLOGUE)
        if side == "client"
        else ()
    )
    return rechunk(
        rng, Case(version, side, rng.choice(list(PRESETS)), data, (), actions, "random")
    )


def tail_case(rng: random.Random, session: Session) -> Case:
    case = session_case(session, origin="tail")
    spans = walk_frames(case.data)[0]
    cut = rng.choice(spans)[1] if spans else 0
    data = case.data[:cut] + random_bytes(
        rng, rng.choice((1, 8, 12, rng.randint(1, 300)))
    )
    actions = tuple(a for a in case.actions if a[0] <= cut)
    cuts = tuple(c for c in case.cuts if c <= cut)
    return rechunk(
        rng, Case(case.version, case.side, case.preset, data, cuts, actions, "tail")
    )


def generate(
    rng: random.Random, version: str, side: str, corpus: dict[str, list[Session]]
) -> Case:
    sessions = corpus[side]
    r = rng.random()
    if r < 0.08:
        return random_case(rng, version, side, sessions)
    if r < 0.13:
        return tail_case(rng, rng.choice(sessions))
    if r < 0.6:
        return mutate_session(rng, rng.choice(sessions), sessions)
    return structured_case(rng, version, side)


# ------------------------------------------------------------ minimizing


def _signature_of(case: Case) -> str | None:
    _, failure, _ = run_checked(case)
    return None if failure is None else failure.signature


def minimize(case: Case, signature: str, budget: float = 20.0) -> Case:
    """Delta debugging: a smaller input with the same failure signature."""
    deadline = time.monotonic() + budget

    def still_fails(candidate: Case) -> bool:
        return time.monotonic() < deadline and _signature_of(candidate) == signature

    best = case
    for simpler in (replace(best, cuts=()), replace(best, actions=())):
        if still_fails(simpler):
            best = simpler
    for i in reversed(range(len(best.actions))):
        candidate = replace(best, actions=best.actions[:i] + best.actions[i + 1 :])
        if i < len(best.actions) and still_fails(candidate):
            best = candidate
    frames = walk_frames(best.data)[0]
    return fuzz_common.shrink_data(
        best, frames, _drop_frame, _drop_bytes, still_fails, deadline
    )


def _drop_frame(case: Case, start: int, end: int) -> Case:
    """``case`` without a frame: later chunk cuts and actions move back."""

    def shift(offset: int) -> int:
        return offset if offset <= start else max(start, offset - (end - start))

    return replace(
        case,
        data=case.data[:start] + case.data[end:],
        cuts=tuple(shift(c) for c in case.cuts),
        actions=tuple((shift(a[0]),) + a[1:] for a in case.actions),
    )


def _drop_bytes(case: Case, start: int, end: int) -> Case:
    """``case`` without some bytes: cuts and actions past the end are cut."""
    data = case.data[:start] + case.data[end:]
    return replace(
        case,
        data=data,
        cuts=tuple(c for c in case.cuts if c <= len(data)),
        actions=tuple((min(a[0], len(data)),) + a[1:] for a in case.actions),
    )


# ------------------------------------------------------------- campaign


class Stats(fuzz_common.CaseStats):
    """A core campaign's figures (see `fuzz_common.CaseStats`)."""

    title: ClassVar[str] = (
        "tornado_spdy core fuzzing: receive_data, then the sending API"
    )


def describe(case: Case) -> str:
    return (
        f"{case.version} {case.side}, preset {case.preset}, origin {case.origin}, "
        f"chunks at {case.cuts}, actions {case.actions}"
    )


def save_reproducer(out_dir: str, case: Case, failure: Failure, budget: float) -> str:
    """Save ``case`` and its minimized version; return the directory."""
    return fuzz_common.save_case(
        out_dir,
        (case.version, case.side),
        case,
        failure,
        lambda c: minimize(c, failure.signature, budget) if budget > 0 else c,
        describe,
    )


def campaign(
    inputs: int, seed: int, combos: list[tuple[str, str]], **options: Any
) -> Stats:
    """Run ``inputs`` inputs round-robin over ``combos``; the statistics.
    ``options``: those of `fuzz_common.run_campaign`."""
    corpora = {version: build_corpus(version) for version in {v for v, _ in combos}}

    def make(rng: random.Random, combo: tuple[str, str]) -> Case:
        version, side = combo
        return generate(rng, version, side, corpora[version])

    return fuzz_common.run_campaign(
        Stats(), make, run_checked, save_reproducer, inputs, seed, combos, **options
    )


def run(
    inputs: int,
    seed: int = 0,
    versions: tuple[str, ...] = ALL_VERSIONS,
    sides: tuple[str, ...] = ALL_SIDES,
    **options: Any,
) -> Stats:
    """A campaign over every version and side chosen. ``options``: ``jobs``
    (processes, see `fuzz_common.run_jobs`) and those of `campaign`."""
    return fuzz_common.run_jobs(campaign, inputs, seed, versions, sides, **options)


def replay(path: str) -> int:
    """Run the saved case at ``path`` and print what happens; 1 if it fails."""
    return fuzz_common.replay_case(path, Case.from_repr, run_checked, describe)


def main(argv: list[str] | None = None) -> int:
    parser = fuzz_common.campaign_parser(
        "tests.fuzz_core", __doc__, "tornado_spdy-fuzz", 20.0, "case.repr"
    )
    parser.add_argument(
        "--version",
        choices=ALL_VERSIONS,
        action="append",
        help="repeatable; default all",
    )
    parser.add_argument(
        "--side", choices=ALL_SIDES, action="append", help="repeatable; default both"
    )

    def run_chosen(args: argparse.Namespace, options: dict[str, Any]) -> Stats:
        versions = tuple(args.version or ALL_VERSIONS)
        sides = tuple(args.side or ALL_SIDES)
        return run(args.inputs, args.seed, versions, sides, **options)

    return fuzz_common.command(parser, argv, replay, run_chosen)


if __name__ == "__main__":
    sys.exit(main())
