"""Fuzzing of the h2 core (`tornado_spdy.http2.H2Core.receive_data`), each
input run by the core and by its *twin*.

Run it as a module from the repository root::

    python -m tests.fuzz_h2_core --inputs 100000 [--seed S] [--side server]
        [--jobs 2] [--max-seconds 900] [--out fuzz-failures] [--replay FILE]

``--inputs`` is the total, shared by the sides chosen (default both).

Why a twin
----------

h2 parses and checks every frame, but `H2Core` departs from stock h2 in a few
places (see the docstring of `tornado_spdy.http2`). Most of them are
behaviour, tested as such; the HPACK memos are meant to change nothing but
the cost: a block decoded or encoded while the table stood still is
remembered, and a request block equal to one h2 checked skips h2's second
check. Huffman-coded strings are decoded by hpack's state machine run in C
loops, those of a header block that arrives in pieces as they come
(`tornado_spdy.prefetch`), and must decode as hpack would. The twin is an
`H2Core` with hpack's plain coders (nothing remembered, every block checked,
every string decoded by hpack's own function when its block is complete).
Both get the same input and the same calls; any difference between them is
a memo answering for a state it was not made in, or a string decoded
otherwise than hpack decodes it.

What goes in
------------

What an h2 peer would send, from the h2 generator of `tests.fuzz_session`:
recorded conversations (made with the h2 library), as they are, cut short and
followed by random bytes, mutated at the frame and byte level, or random
frames with plausible headers and HPACK blocks of random header lists. Each
input is delivered in pieces cut at random (whole, frame by frame, random
cuts, a byte at a time) to a fresh core made as `tornado_spdy.session.new_core`
makes it (default `SessionParameters`, or a ``small`` preset). A client core
has first opened streams 1 to 9, as the recordings' client did.

A fifth of the inputs are made to reach the memos (`repeated_blocks`): a
header list, then its block again, byte for byte, on stream after stream,
sometimes as trailers or after a block that changed the table, and sometimes
mutated. Recordings and random frames almost never repeat a block that
leaves the table as it was.

Then, as an application would: DATA is acknowledged as it comes; after the
input a server answers every stream (the same response headers each time,
with a never-indexed cookie, then pushes promised with that list as plain
fields, a body), a client resets the pushes and opens streams with the same
requests twice; then a PING, a window update and GOAWAY.

What fails
----------

An input *fails* when

* ``receive_data`` raises anything but h2's ``ProtocolError`` (what `Session`
  takes for a broken session), or raises it with no GOAWAY queued;
* a sending call raises anything but h2's ``H2Error``;
* the output is not whole h2 frames of the types h2 sends, or exceeds
  ``1 MiB + 4 x`` the input;
* one input uses more than 1 s of CPU (a hang; run again to confirm);
* the core and its twin differ (``twin-differs``): in the events (classes,
  attributes, header fields and whether each is never-indexed), in the
  exception a call raised, in the streams they keep, or in a byte of output.

Each distinct failure is saved to ``--out`` (``case.repr``, replayable with
``--replay``, and a minimized input).

CI and the long run
-------------------

``tests/test_fuzz_h2_core.py`` runs a small budget with a fixed seed. A
longer run, on both cores::

    python -m tests.fuzz_h2_core --inputs 1000000 --jobs 2 --max-seconds 900 --seed 1

Its figures are in :doc:`core` (docs/core.rst).
"""

from __future__ import annotations

import enum
import functools
import random
import re
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import h2.events
import h2.exceptions
import hpack
import hpack.hpack
import hpack.huffman_table

from tests import fuzz_common, fuzz_core, fuzz_session
from tests.fuzz_common import Failure, Hang, failure_from
from tornado_spdy.http2 import H2Core, _FieldLimit
from tornado_spdy.session import SessionParameters, new_core

ALL_SIDES = ("server", "client")

HANG_SECONDS = 1.0  # CPU seconds one input may take (both cores), plus ...
MIN_BYTES_PER_SECOND = 10_000_000  # ... its size's share
OUTPUT_LIMIT_BASE = 1024 * 1024  # bytes of output allowed per input ...
OUTPUT_LIMIT_FACTOR = 4  # ... plus this many times the input's length

#: The share of inputs made by `repeated_blocks`.
REPEATED_SHARE = 0.2
#: The streams a client core opens before its input (the recordings' own).
CLIENT_STREAMS = (1, 3, 5, 7, 9)
PREFACE_SIZE = len(fuzz_session.H2_PREFACE)
H2_FRAME_TYPES = range(10)  # DATA to CONTINUATION: all h2 ever sends
GOAWAY = 7

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/index.html"),
    (b":scheme", b"https"),
    (b":authority", b"fuzz.test"),
]
#: Sent by `H2Core.send_headers` as a never-indexed field, by ``push_stream``
#: as given: the encoder memo must not answer one form for the other.
COOKIE = (b"cookie", b"a=1")
RESPONSE = [
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
]
BODY = b"Hello, world!"
#: An object's address in an error message (hpack names the memoryview it
#: read): not part of what core and twin must agree on.
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


# ----------------------------------------------------------------- inputs


@dataclass
class Case(fuzz_common.Replayable):
    """One fuzz input: everything needed to replay it."""

    side: str
    preset: str
    data: bytes
    cuts: tuple[int, ...] = ()  # where the input is split into pieces
    origin: str = ""


def generate(
    rng: random.Random, side: str, corpus: dict[str, list[fuzz_session.Recording]]
) -> Case:
    if rng.random() < REPEATED_SHARE:
        data, origin = repeated_blocks(rng, side), "repeat"
    else:
        data, origin = fuzz_session.generate_h2(rng, side, corpus[side])
    ends = [end for _, end in fuzz_session.frame_spans("h2", side, data)[0]]
    preset = "small" if rng.random() < 0.2 else "default"
    cuts = fuzz_session.choose_cuts(rng, data, ends)
    return Case(side, preset, data, cuts, origin)


def repeated_blocks(rng: random.Random, side: str) -> bytes:
    """Header blocks sent again byte for byte, as the memos see them: a list
    encoded once (its fields enter the table), then the same list's block,
    now all references, on stream after stream (requests, or responses to
    the client's streams), sometimes as trailers of an open stream or after
    a block that changed the table; some lists are malformed. Recordings
    and random frames almost never repeat a block that leaves the table as
    it was, so without these the memos are hardly reached."""
    encoder = hpack.Encoder()
    kind = "request" if side == "server" else "response"
    fields = fuzz_session.random_headers(rng, kind)
    parts = [fuzz_session.H2_PREFACE] if side == "server" else []
    parts.append(fuzz_session.h2_frame(4, 0, 0, b""))
    streams = iter(range(1, 200, 2) if side == "server" else CLIENT_STREAMS)
    first = fuzz_session.encode_block(encoder, fields)
    parts.append(fuzz_session.h2_frame(1, 0x5, next(streams), first))
    again = fuzz_session.encode_block(encoder, fields)
    for stream_id in streams:
        r = rng.random()
        if r < 0.15:  # the block again as trailers of a stream left open
            parts.append(fuzz_session.h2_frame(1, 0x4, stream_id, again))
            parts.append(fuzz_session.h2_frame(1, 0x5, stream_id, again))
        elif r < 0.3:  # another list changes the table, and with it the block
            other = fuzz_session.random_headers(rng, kind)
            block = fuzz_session.encode_block(encoder, other)
            parts.append(fuzz_session.h2_frame(1, 0x5, stream_id, block))
        else:
            parts.append(fuzz_session.h2_frame(1, 0x5, stream_id, again))
        if rng.random() < 0.25:
            break
    data = b"".join(parts)
    if rng.random() < 0.2:
        data = fuzz_core.mutate_bytes(rng, data, rng.randint(1, 3))
    return data


# ------------------------------------------------------------ the twins


class _PlainDecoder(_FieldLimit):
    """hpack's decoder (with the field limit), answering `H2Core`'s two
    questions to its memo decoder as if nothing had been seen: every request
    block is checked. Its Huffman strings are decoded by hpack's own
    function, not by the faster one `tornado_spdy.prefetch` gives hpack."""

    def decode(self, data: bytes, raw: bool = False) -> Any:
        ours = hpack.hpack.decode_huffman
        hpack.hpack.decode_huffman = hpack.huffman_table.decode_huffman
        try:
            return super().decode(data, raw)
        finally:
            hpack.hpack.decode_huffman = ours

    def checked(self, data: bytes) -> bool:
        return False

    def mark_checked(self, data: bytes) -> None:
        pass


def make_core(side: str, preset: str, plain: bool = False) -> H2Core:
    """A core as a `Session` of ``side`` has it; with ``plain``, the twin."""
    core = new_core(
        "h2", side == "client", SessionParameters(**fuzz_session.PARAMS[preset])
    )
    assert isinstance(core, H2Core)
    if plain:
        decoder = _PlainDecoder()
        decoder.max_header_list_size = core.decoder.max_header_list_size
        decoder.max_allowed_table_size = core.decoder.max_allowed_table_size
        decoder.max_header_fields = core.decoder.max_header_fields
        core.decoder = decoder  # type: ignore[assignment]
        core.encoder = hpack.Encoder()  # type: ignore[assignment]
    return core


def normal(value: Any) -> Any:
    """``value`` (events, header lists, settings ...) as plain comparable
    data: a header field keeps its class (never-indexed or not)."""
    if isinstance(value, h2.events.Event):
        fields = sorted((k, normal(v)) for k, v in vars(value).items())
        return (type(value).__name__, tuple(fields))
    if isinstance(value, hpack.HeaderTuple):
        return (type(value).__name__, tuple(value))
    if isinstance(value, (list, tuple)):
        return tuple(normal(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((repr(k), normal(v)) for k, v in value.items()))
    if value is None or isinstance(value, (bool, int, bytes, str, float, enum.Enum)):
        return value
    return repr(value)


def check_output(out: bytes) -> int:
    """Raise `Failure` unless ``out`` is whole h2 frames; their GOAWAYs."""
    spans, end = fuzz_session.h2_spans(out)
    if end != len(out):
        raise Failure(
            "malformed-output",
            f"{len(out) - end} trailing bytes: {out[end : end + 32].hex()}",
        )
    kinds = [out[start + 3] for start, _ in spans]
    wrong = [k for k in kinds if k not in H2_FRAME_TYPES]
    if wrong:
        raise Failure("malformed-output", f"frame type {wrong[0]}")
    return kinds.count(GOAWAY)


@dataclass
class Outcome:
    protocol_error: bool = False
    events: int = 0
    output: int = 0


class Pair:
    """The core and its twin, given the same calls; every call's result,
    exception and output must be the same for both."""

    def __init__(self, case: Case):
        self.core = make_core(case.side, case.preset)
        self.twin = make_core(case.side, case.preset, plain=True)
        self.outcome = Outcome()
        self.limit = OUTPUT_LIMIT_BASE + OUTPUT_LIMIT_FACTOR * len(case.data)
        self.client_preface = case.side == "client"  # leads the first output
        self.head = b""  # the first bytes received, where a preface belongs

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``name(*args, **kwargs)`` on both, as an application calls it (an
        ``H2Error`` is an answer); the core's result."""
        results = [
            self._call_one(conn, name, args, kwargs) for conn in (self.core, self.twin)
        ]
        self.same(name, normal(results[0][1]), normal(results[1][1]))
        self.drain()
        return results[0][0]

    def _call_one(
        self, conn: H2Core, name: str, args: tuple, kwargs: dict
    ) -> tuple[Any, Any]:
        try:
            result = getattr(conn, name)(*args, **kwargs)
        except h2.exceptions.H2Error as exc:
            return None, (type(exc).__name__, _ADDRESS.sub("", str(exc)))
        except Hang:
            raise
        except Exception as exc:
            failure = failure_from("api-exception", exc, f"{name}(): ")
            raise failure from None
        return result, result

    def receive(self, data: bytes) -> list[Any] | None:
        """Both cores receive ``data``: the core's events, or None after a
        session error (GOAWAY checked)."""
        self.head = (self.head + data[:PREFACE_SIZE])[:PREFACE_SIZE]
        (answer, events), (twin_answer, _) = (
            self._receive_one(conn, data) for conn in (self.core, self.twin)
        )
        self.same("receive_data", answer, twin_answer)
        goaways = self.drain()
        self.same("streams", sorted(self.core.streams), sorted(self.twin.streams))
        if events is None:
            self.outcome.protocol_error = True
            if not goaways and self._preface_seen():
                raise Failure("no-goaway", "ProtocolError without a GOAWAY queued")
            return None
        self.outcome.events += len(events)
        return events

    @staticmethod
    def _receive_one(conn: H2Core, data: bytes) -> tuple[Any, list[Any] | None]:
        """(what ``conn.receive_data(data)`` answered, comparable; its events)."""
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            return (type(exc).__name__, _ADDRESS.sub("", str(exc))), None
        except (Hang, Failure):
            raise
        except Exception as exc:
            raise failure_from("receive-exception", exc) from None
        return normal(events), events

    def _preface_seen(self) -> bool:
        """A client sent its preface. Before, a session error needs no GOAWAY
        (RFC 9113 section 3.4: such a peer does not speak h2)."""
        return self.core.config.client_side or self.head == fuzz_session.H2_PREFACE

    def drain(self) -> int:
        """Take both outputs, which must be equal; the GOAWAYs in them."""
        out = self.core.data_to_send()
        self.same("data_to_send", out, self.twin.data_to_send())
        if self.client_preface and out:
            if not out.startswith(fuzz_session.H2_PREFACE):
                raise Failure("malformed-output", f"no preface: {out[:32].hex()}")
            out = out[PREFACE_SIZE:]
            self.client_preface = False
        self.outcome.output += len(out)
        if self.outcome.output > self.limit:
            raise Failure(
                "output-growth", f"{self.outcome.output} bytes (limit {self.limit})"
            )
        return check_output(out)

    @staticmethod
    def same(what: str, core: Any, twin: Any) -> None:
        if core != twin:
            where, detail = _difference(core, twin)
            raise Failure("twin-differs", f"{what}: {detail}", label=what, where=where)


def _difference(core: Any, twin: Any) -> tuple[str, str]:
    """Where ``core`` and ``twin`` (`normal` forms) first differ: the class of
    the event there (or ""), and both from there on."""
    if isinstance(core, tuple) and isinstance(twin, tuple):
        for index, (mine, theirs) in enumerate(zip(core, twin, strict=False)):
            if mine != theirs:
                where = mine[0] if mine and isinstance(mine[0], str) else ""
                return where, f"item {index}: core {mine} / twin {theirs}"[:2000]
        return "", f"core {len(core)} items / twin {len(twin)}: {core} / {twin}"[:2000]
    return "", f"core {core!r:.1000} / twin {twin!r:.1000}"


def _acknowledge(pair: Pair, events: list[Any]) -> None:
    for event in events:
        if isinstance(event, h2.events.DataReceived):
            pair.call(
                "acknowledge_received_data",
                event.flow_controlled_length,
                event.stream_id,
            )


def _answer(pair: Pair) -> None:
    """After the input: use the sending API on whatever streams are left.
    Lists are sent more than once, so that the encoder's memo serves them."""
    core = pair.core
    if core.config.client_side:
        for stream_id in sorted(core.streams):
            if stream_id % 2 == 0:
                pair.call("reset_stream", stream_id)
        for request in (REQUEST, REQUEST, [*REQUEST, COOKIE], [*REQUEST, COOKIE]):
            stream_id = pair.call("get_next_available_stream_id")
            pair.call("send_headers", stream_id, request, end_stream=True)
    else:
        asked = [stream_id for stream_id in sorted(core.streams) if stream_id % 2]
        for stream_id in asked:  # cookies never indexed
            pair.call("send_headers", stream_id, [*RESPONSE, COOKIE])
        for stream_id in asked[::2] if core.can_push else ():
            pushed = pair.call("get_next_available_stream_id")
            # The list just sent, with its cookie as a plain field.
            pair.call("push_stream", stream_id, pushed, [*RESPONSE, COOKIE])
            pair.call("send_headers", pushed, RESPONSE)
            pair.call("send_data", pushed, BODY, end_stream=True)
        for stream_id in asked:
            window = pair.call("local_flow_control_window", stream_id) or 0
            pair.call("send_data", stream_id, BODY[: max(0, window)], end_stream=True)
    pair.call("ping", b"fuzzfuzz")
    pair.call("increment_flow_control_window", 1024)
    pair.call("close_connection")


def run_case(case: Case, make_pair: Any = Pair) -> Outcome:
    """Feed ``case`` to a fresh core and twin; raise `Failure` if a rule breaks."""
    pair = make_pair(case)
    pair.call("initiate_connection")
    if case.side == "client":
        for stream_id in CLIENT_STREAMS:
            pair.call("send_headers", stream_id, REQUEST, end_stream=True)
    for piece in case.pieces():
        events = pair.receive(piece)
        if events is None:
            return pair.outcome
        _acknowledge(pair, events)
    _answer(pair)
    return pair.outcome


def run_checked(
    case: Case, make_pair: Any = Pair
) -> tuple[Outcome | None, Failure | None, float]:
    """`run_case` under a CPU timer: (outcome, failure, CPU seconds)."""
    budget = HANG_SECONDS + len(case.data) / MIN_BYTES_PER_SECOND
    return fuzz_common.run_with_cpu_limit(
        functools.partial(run_case, case, make_pair), budget
    )


# ------------------------------------------------------------ minimizing


def _signature_of(case: Case) -> str | None:
    failure = run_checked(case)[1]
    return failure.signature if failure else None


def minimize(case: Case, signature: str, budget: float) -> Case:
    """A smaller input failing the same way, found within ``budget`` seconds."""
    deadline = time.monotonic() + budget

    def still_fails(candidate: Case) -> bool:
        return time.monotonic() < deadline and _signature_of(candidate) == signature

    best = case
    if still_fails(replace(best, cuts=())):
        best = replace(best, cuts=())
    start = len(fuzz_session.H2_PREFACE) if case.side == "server" else 0
    frames = fuzz_session.h2_spans(best.data, start)[0]
    return fuzz_common.shrink_data(
        best, frames, _drop_bytes, _drop_bytes, still_fails, deadline
    )


def _drop_bytes(case: Case, start: int, end: int) -> Case:
    data = case.data[:start] + case.data[end:]
    return replace(case, data=data, cuts=tuple(c for c in case.cuts if c <= len(data)))


def describe(case: Case) -> str:
    return (
        f"h2 {case.side}, preset {case.preset}, origin {case.origin}, cuts {case.cuts}"
    )


def save_reproducer(out_dir: str, case: Case, failure: Failure, budget: float) -> str:
    """Save ``case`` and its minimized version; return the directory."""
    return fuzz_common.save_case(
        out_dir,
        ("h2", case.side),
        case,
        failure,
        lambda c: minimize(c, failure.signature, budget) if budget > 0 else c,
        describe,
    )


# ------------------------------------------------------------- campaign


class Stats(fuzz_common.CaseStats):
    """An h2 core campaign's figures (see `fuzz_common.CaseStats`)."""

    title: ClassVar[str] = "tornado_spdy h2 core fuzzing: H2Core against its twin"


def campaign(
    inputs: int, seed: int, combos: list[tuple[str, str]], **options: Any
) -> Stats:
    """Run ``inputs`` inputs round-robin over ``combos``; the statistics.
    ``options``: those of `fuzz_common.run_campaign`."""
    corpus = fuzz_session.build_h2_corpus()

    def make(rng: random.Random, combo: tuple[str, str]) -> Case:
        return generate(rng, combo[1], corpus)

    return fuzz_common.run_campaign(
        Stats(), make, run_checked, save_reproducer, inputs, seed, combos, **options
    )


def run(
    inputs: int, seed: int = 0, sides: tuple[str, ...] = ALL_SIDES, **options: Any
) -> Stats:
    """A campaign over the sides chosen. ``options``: ``jobs`` (processes,
    see `fuzz_common.run_jobs`) and those of `campaign`."""
    return fuzz_common.run_jobs(campaign, inputs, seed, ("h2",), sides, **options)


def replay(path: str) -> int:
    """Run the saved case at ``path`` and print what happens; 1 if it fails."""
    return fuzz_common.replay_case(path, Case.from_repr, run_checked, describe)


def main(argv: list[str] | None = None) -> int:
    parser = fuzz_common.campaign_parser(
        "tests.fuzz_h2_core", __doc__, "tornado_spdy-fuzz-h2", 20.0, "case.repr"
    )
    parser.add_argument(
        "--side", choices=ALL_SIDES, action="append", help="repeatable; default both"
    )
    return fuzz_common.command(
        parser,
        argv,
        replay,
        lambda args, options: run(
            args.inputs, args.seed, tuple(args.side or ALL_SIDES), **options
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
