"""`Session`: one multiplexed connection (h2 or SPDY) over a Tornado IOStream.

The session owns the IOStream and a protocol core. Its read loop feeds the
core and dispatches the core's events to `StreamConnection` objects; it never
waits on a stream's handler. Its write pump runs once per IOLoop pass: it hands
the core what the streams have queued, most urgent first and round-robin among
equals, within the flow-control windows and a bound on the bytes waiting in the
IOStream, then writes everything the core produced in one ``write()``.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tornado import gen, iostream
from tornado.concurrent import Future, future_set_result_unless_cancelled
from tornado.gen import convert_yielded
from tornado.ioloop import IOLoop
from tornado.log import app_log, gen_log

from tornado_spdy import spdy
from tornado_spdy.fairness import InputGate
from tornado_spdy.http2 import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    SEND_ERRORS,
    SESSION_ERRORS,
    Core,
    H2Core,
    core_family,
    event_table,
    framing_of,
    request_priority,
)
from tornado_spdy.stream import Headers, StreamConnection

if TYPE_CHECKING:
    from tornado_spdy.server import SPDYServer

#: ``request.version`` of each protocol.
VERSION_STRINGS = {
    "h2": "HTTP/2",
    "spdy/3.1": "SPDY/3.1",
    "spdy/3": "SPDY/3",
    "spdy/2": "SPDY/2",
}

#: Seconds a closing session waits for the peer to close first.
LINGER = 1.0

_RESET_CODES = {
    "cancel": CANCEL,
    "internal": INTERNAL_ERROR,
    "refused": REFUSED_STREAM,
    "protocol": PROTOCOL_ERROR,
}

#: The highest stream id: after it a connection can open no more streams.
MAX_STREAM_ID = 2**31 - 1

#: Seconds a byte of a new peer's input is assumed to cost until measured
#: (see ``fair_share``): its first slice is ``fair_share / this`` bytes.
FIRST_BYTE_COST = 1e-5
#: The smallest slice of input handed to the core.
MIN_SLICE = 32
#: A read of at most this many slices is handed to the core whole, without
#: waiting at the `InputGate`: an honest request, with a WINDOW_UPDATE or a
#: PING beside it, is not queued behind the costly input of others. (Not
#: before the connection's first request has started: see `Session`.)
LIGHT_READ_SLICES = 2
#: The share of its reset or control budget (``reset_burst``,
#: ``control_burst``) a peer spends before its input is slowed down: 20 of
#: the default 1,000, more than a browser spends on a page.
SUSPECT_SPENDING = 0.02
#: Streams of a lost connection told per turn at the `InputGate` (each may
#: run a handler's ``on_connection_close``).
TEARDOWN_BATCH = 1
#: IOLoop passes a suspect peer lets go by after each slice of its input: on
#: a busy server it gets one slice in this many passes, on an idle one it
#: loses little.
SUSPECT_TURNS = 10
#: The most IOLoop passes a peer lets go by after a slice of its input that
#: took several times ``fair_share`` (see `Session._turns_after`).
MAX_OVERRUN_TURNS = 10

#: Held requests started per turn at the `InputGate` when other connections
#: share the process (see `Session._start_held`).
START_BATCH = 2
#: Finished messages after which the write pump runs without waiting for
#: its IOLoop pass (see `Session.stream_finished`).
FLUSH_BATCH = 16
#: A write of at least this many bytes goes out with one ``sendmsg`` of the
#: core's buffers (see `Session._send_queued`); a smaller one is joined, which
#: costs less than the copy it would save.
VECTORED_MIN_BYTES = 8192
#: ... and of at most this many buffers (the kernel takes up to 1,024).
VECTORED_BUFFERS = 64


@dataclass
class SessionParameters:
    """Limits and timeouts of multiplexed sessions, with safe defaults.

    :arg max_concurrent_streams: streams a peer may have open at once
        (advertised); more are refused.
    :arg initial_window_size: our receive window per stream: how much a peer
        may send ahead of a slow handler.
    :arg session_window_size: our receive window for the whole connection (h2
        and SPDY/3.1).
    :arg max_header_size: bytes of one received header list (after inflate).
    :arg max_header_fields: fields of one received header list (h2: and
        HPACK table size updates; more is a connection error there).
    :arg chunk_size: bytes read from the socket at a time.
    :arg max_frame_size: the largest DATA frame payload we send (SPDY; an h2
        peer sets its own), and the round robin's quantum.
    :arg max_body_size: the largest request body accepted; a larger one resets
        its stream.
    :arg body_timeout: seconds a request body may take to arrive.
    :arg idle_connection_timeout: seconds a session with no open stream stays.
    :arg decompress: gunzip request bodies sent with ``Content-Encoding: gzip``.
    :arg write_buffer_size: bytes that may wait in the IOStream before the
        write pump pauses (and the read loop with it).
    :arg enable_push: (clients) accept server pushes.
    :arg max_pushed_responses: (clients) pushed responses kept for later
        fetches on one session; more pushes are refused.
    :arg reset_burst: stream resets a peer may cause at once (Rapid Reset,
        CVE-2023-44487; reset floods, CVE-2019-9514): a token bucket of this
        many, refilled at ``reset_rate`` a second, pays for each stream the
        peer resets or that we reset for its bad input; when it runs dry the
        session ends with GOAWAY (h2: ENHANCE_YOUR_CALM; SPDY: PROTOCOL_ERROR),
        as nghttp2 does with the same figures.
    :arg reset_rate: tokens a second added back to that bucket.
    :arg control_burst: frames a peer may send at once that bring no request
        and no data: PING, SETTINGS (and their acknowledgements), PRIORITY,
        empty DATA that does not end its stream, HEADERS that neither start
        nor end a stream, unknown frame types, and each DATA frame shorter
        than ``min_data_frame`` that a peer's tiny window forces on us. Ping
        floods (CVE-2019-9512), settings floods (9515), empty frames (9518),
        priority churn (9513) and data dribble (9511) all pay from this
        bucket; when it runs dry the session ends as for resets.
    :arg control_rate: tokens a second added back to that bucket.
    :arg min_data_frame: a DATA frame the peer's window would cut to fewer
        bytes than this waits for more window instead, when the peer's
        initial window is at least twice as large (an honest peer will open
        it); otherwise it is sent and pays a control token.
    :arg max_requests: streams a peer may open on one connection; then the
        session says GOAWAY, finishes what it accepted and closes.
    :arg handshake_timeout: seconds for a new connection's TLS handshake and
        the peer's first frame (h2: its preface).
    :arg stall_timeout: seconds a stream with data to send may wait for the
        peer to open its flow-control window; then it is reset (CANCEL).
    :arg fair_share: seconds of work one peer's input may take before the
        other connections get a turn. Each read is handed to the core in
        slices sized from what the peer's bytes have cost so far (a DATA
        stream's whole read at once; a flood of costly HEADERS or resets a few
        dozen bytes at a time), each slice in its turn at the process's
        `~tornado_spdy.fairness.InputGate`, which lets about one share of
        such work through per IOLoop pass in all. A peer that has spent 2% of
        its reset or control budget gets slices a tenth as long and lets ten
        IOLoop passes go by before each: on a busy server a flood gets about
        a tenth of it, and honest clients the rest. A read handed to the core
        whole that took several shares (a header block that came in one
        piece) makes its peer let one pass go by per share, up to
        `MAX_OVERRUN_TURNS`; a connection alone is not sliced, but lets one
        pass go by after a read that took more than a share, so that others
        can be accepted at all. A new connection is set up in a turn, and
        its reads are all sliced until its first request has started.
    """

    max_concurrent_streams: int = 100
    initial_window_size: int = 256 * 1024
    session_window_size: int = 16 * 1024 * 1024
    max_header_size: int = 64 * 1024
    max_header_fields: int = 100
    chunk_size: int = 64 * 1024
    max_frame_size: int = 64 * 1024
    max_body_size: int = 100 * 1024 * 1024
    body_timeout: float | None = None
    idle_connection_timeout: float = 3600.0
    decompress: bool = False
    write_buffer_size: int = 1024 * 1024
    enable_push: bool = True
    max_pushed_responses: int = 100
    reset_burst: int = 1000
    reset_rate: float = 33.0
    control_burst: int = 1000
    control_rate: float = 100.0
    min_data_frame: int = 1024
    max_requests: int = 100_000
    handshake_timeout: float = 10.0
    stall_timeout: float = 60.0
    fair_share: float = 0.00005


class TokenBucket:
    """``burst`` tokens refilled at ``rate`` a second: how much a peer may
    cost us at once, and over time.

    :arg clock: seconds, monotonic (``IOLoop.time``).
    """

    def __init__(self, burst: int, rate: float, clock: Callable[[], float]):
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._tokens = float(burst)
        self._time = clock()

    def level(self) -> float:
        """The share of the burst left now (1.0: untouched)."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._time) * self.rate)
        return tokens / self.burst if self.burst else 1.0

    def spend(self) -> bool:
        """Take one token; False when there is none."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._time) * self.rate)
        self._time = now
        if tokens < 1:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1
        return True


def new_core(framing: str, client_side: bool, params: SessionParameters) -> Core:
    """A protocol core for ``framing`` (``"h2"`` or a SPDY version)."""
    if framing == "h2":
        return H2Core(
            client_side,
            max_concurrent_streams=params.max_concurrent_streams,
            initial_window_size=params.initial_window_size,
            session_window_size=params.session_window_size,
            max_header_list_size=params.max_header_size,
            enable_push=params.enable_push,
            max_header_fields=params.max_header_fields,
        )
    config = spdy.SPDYConfiguration(
        client_side=client_side,
        version=framing,
        max_concurrent_streams=params.max_concurrent_streams,
        initial_window_size=params.initial_window_size,
        initial_session_window_size=params.session_window_size,
        max_header_list_size=params.max_header_size,
        max_header_fields=params.max_header_fields,
        max_outbound_frame_size=params.max_frame_size,
        enable_push=params.enable_push,
    )
    return spdy.SPDYConnection(config)


class Session:
    """One h2 or SPDY connection serving Tornado's delegates.

    :arg stream: the connection (TLS handshake done).
    :arg core: the protocol core, from `new_core`.
    :arg params: limits and timeouts.
    :arg context: the connection's request context (remote address, scheme).
    :arg server: on a server, the `SPDYServer` whose ``start_request`` makes
        delegates; on a client, the owner told of the end by ``on_close``.
    """

    def __init__(
        self,
        stream: iostream.IOStream,
        core: Core,
        params: SessionParameters,
        context: Any,
        server: SPDYServer | Any,
    ):
        self.stream = stream
        self.core = core
        self.params = params
        self.context = context
        self.server = server
        self.framing = framing_of(core)
        self.version = VERSION_STRINGS[self.framing]
        #: The HTTP version of the messages: SPDY carries HTTP/1.1's.
        self.http_version = "HTTP/2" if self.framing == "h2" else "HTTP/1.1"
        self.family = core_family(core)
        self.client_side = bool(core.config.client_side)
        self.scheme = "https" if isinstance(stream, iostream.SSLIOStream) else "http"
        # A plain IOStream's socket takes vectored writes; TLS needs one buffer.
        self._vectored = stream.socket if type(stream) is iostream.IOStream else None
        self._next_stream_id = 1  # client side: ids are ours to hand out
        self._next_push_id = 2
        self.pushed_paths: set[bytes] = set()  # never the same URL twice
        self._push_refused = False
        self._open_pushes: set[StreamConnection] = set()  # heads sent, not ended
        #: Client side: called with (parent, pushed stream, request headers) for
        #: each push; returns the pushed response's delegate, or None to refuse.
        self.accept_push: Any = None
        #: Called with ("recv" or "send", bytes) for everything on the wire
        #: (``python -m tornado_spdy fetch -v`` prints frames from it).
        self.trace: Any = None
        self.io_loop = IOLoop.current()
        self.streams: dict[int, StreamConnection] = {}
        self._ready: dict[StreamConnection, None] = {}  # streams with output
        self._flush_scheduled = False
        self._pumping = False
        self._finished_waiting = 0  # see stream_finished
        self._unflushed = 0  # bytes handed to the IOStream, not yet on the wire
        self._draining = False  # GOAWAY sent: no new streams
        self._closed = False
        self._closed_future: Future[None] = Future()
        self._last_activity = self.io_loop.time()
        self._idle_timer: object | None = None
        self._drained: Future[None] | None = None
        self._closing = False  # _close_after_flush has begun
        self._cut_off = False  # the peer spent a budget: its input is ignored
        self._inbound = 0  # open streams the peer started (server side)
        self._requests = 0  # streams the peer started, ever (server side)
        clock = self.io_loop.time
        self._resets = TokenBucket(params.reset_burst, params.reset_rate, clock)
        self._controls = TokenBucket(params.control_burst, params.control_rate, clock)
        self._preface_timer: object | None = None  # until the peer's first frame
        self._stalled: dict[StreamConnection, float] = {}  # stream -> since when
        self._stall_timer: object | None = None
        self._byte_cost = FIRST_BYTE_COST  # seconds per byte of input, recent
        #: Requests of the input being read, not started yet: stream id ->
        #: [RequestReceived, and its StreamEnded if that came too].
        self._held: dict[int, list[Any]] = {}
        self._start_scheduled = False  # _start_more is due
        self._highest_request = 0  # the highest stream id of a request received
        self._last_served = 0  # after our GOAWAY: the last stream we serve
        self._holding = False  # a read is being fed in slices: hold requests
        #: Server side, until the peer's first request has started: every
        #: read is fed in turns at the `InputGate`, however light. An honest
        #: request of an established connection is then never queued behind
        #: a burst of new connections' first requests, which look just as
        #: light. (Not until the response ends: a first response that streams
        #: for minutes would keep its WINDOW_UPDATEs waiting their turn.)
        self._unproven = not self.client_side
        self._peer_went_away = False  # the peer sent GOAWAY
        self._events = event_table(
            {
                "RequestReceived": self._on_request,
                "ResponseReceived": self._on_response,
                "PushedStreamReceived": self._on_push,
                "DataReceived": self._on_data,
                "StreamEnded": self._on_stream_ended,
                "StreamReset": self._on_stream_reset,
                "TrailersReceived": self._on_trailers,
                "WindowUpdated": self._on_window,
                "RemoteSettingsChanged": self._on_settings,
                "ConnectionTerminated": self._on_goaway,
                "PingReceived": self._on_control_frame,
                "PingAckReceived": self._on_control_frame,
                "SettingsAcknowledged": self._on_control_frame,
                "PriorityUpdated": self._on_control_frame,
                "UnknownFrameReceived": self._on_control_frame,
            }
        )

    #: Sessions of this process started and not yet closed.
    live = 0

    def __repr__(self) -> str:
        return f"<Session {self.framing} {self.context}>"

    def start(
        self, initial_data: bytes = b"", upgrade: tuple[bytes, Headers] | None = None
    ) -> None:
        """Send our preface and serve.

        :arg initial_data: bytes already read from the connection (sniffed).
        :arg upgrade: for h2c by ``Upgrade``: the client's ``HTTP2-Settings``
            and the upgraded request, which becomes stream 1.
        """
        self.stream.set_nodelay(True)
        Session.live += 1
        if upgrade is None:
            self.core.initiate_connection()
        else:
            settings, headers = upgrade
            assert isinstance(self.core, H2Core)
            self.core.initiate_upgrade_connection(settings)
            stream = StreamConnection(self, 1)
            self.streams[1] = stream
            self._inbound += 1
            stream.start_request(headers)
            stream.end_received()
        self._arm_idle_timer()
        timeout = self.params.handshake_timeout
        if timeout and not self.client_side:
            self._preface_timer = self.io_loop.call_later(timeout, self._no_preface)
        future = convert_yielded(self._read_loop(initial_data))
        self.io_loop.add_future(future, lambda f: f.result())

    # ------------------------------------------------------------ reading

    async def _read_loop(self, data: bytes) -> None:
        try:
            self._flush()
            while True:
                if data:
                    if self._alone():
                        # Still one pass after costly input: while the peer
                        # keeps the socket full, each read completes at once,
                        # and nobody else could even be accepted.
                        if self._receive_timed(data) > self.params.fair_share:
                            await asyncio.sleep(0)
                    elif (
                        self._unproven
                        or len(data) > LIGHT_READ_SLICES * self._slice_size()
                        or self._suspect()
                    ):
                        await self._receive_fairly(data)
                    else:
                        cost = self._receive_timed(data)
                        # The next read may complete at once, without a pass.
                        turns = self._turns_after(cost) - 1
                        if turns:
                            await self._give_turns(turns)
                if self._closed:
                    return
                if self._flush_scheduled:
                    # Write what this input caused now: a read that completes
                    # at once does not yield, and the bound below must see
                    # the replies of a peer that does not read them.
                    self._flush()
                if self._unflushed > self.params.write_buffer_size:
                    await self._wait_drained()  # a peer that does not read
                data = await self.stream.read_bytes(
                    self.params.chunk_size, partial=True
                )
                self._last_activity = self.io_loop.time()
        except iostream.StreamClosedError:
            pass
        except Exception:
            app_log.error("Error in %r", self, exc_info=True)
        finally:
            self._connection_lost()

    def _alone(self) -> bool:
        """No other connection in the process to be fair to (a client's
        sessions always share fairly)."""
        if Session.live > 1:
            return False
        count = getattr(self.server, "connections_in_process", None)
        return count is not None and count() <= 1

    def _slice_size(self, suspect: bool = False) -> int:
        share = self.params.fair_share
        if suspect:
            share /= SUSPECT_TURNS
        return max(MIN_SLICE, int(share / self._byte_cost))

    async def _receive_fairly(self, data: bytes) -> None:
        """Feed ``data`` in slices of about ``fair_share`` seconds of work,
        each in its turn at the process's `InputGate`; a suspect peer's
        slices are a tenth as long, and it lets `SUSPECT_TURNS` IOLoop passes
        go by before each."""
        start = 0
        self._holding = True
        gate = InputGate.current()
        try:
            suspect = self._suspect()
            while start < len(data):
                # Once the peer's FIN has come, what was read before it is
                # handled at once, without turns (a client's last response).
                if not self.stream.closed():
                    if suspect:
                        await self._give_turns(SUSPECT_TURNS - 1)
                    await gate.turn(self.params.fair_share)
                    if self._closed or self._cut_off:
                        return
                end = start + self._slice_size(suspect)
                earlier = list(self._held)
                with gate.charging():
                    began = time.perf_counter()
                    self._receive(data[start:end])
                    # Requests held from the slice before start now: a reset
                    # sent right behind its request has come in this slice.
                    self._start_held(earlier)
                    self._learn_cost(began, end - start)
                    if end >= len(data) and not (self._closed or self._cut_off):
                        self._start_held()  # the last slice's, in its turn
                        self.schedule_flush()
                if self._closed or self._cut_off:
                    return
                start = end
                suspect = self._suspect()
        finally:
            self._holding = False

    def _suspect(self) -> bool:
        """The peer has lately spent more of its reset or control budget than
        an honest one would (`SUSPECT_SPENDING`): its input gets one IOLoop
        pass in `SUSPECT_TURNS` until the buckets refill."""
        floor = 1.0 - SUSPECT_SPENDING
        return self._resets.level() < floor or self._controls.level() < floor

    def _turns_after(self, cost: float) -> int:
        """IOLoop passes to let go by after a read handed to the core whole
        that took ``cost`` seconds: one (the other connections' turn), and
        one for each ``fair_share`` it took, up to `MAX_OVERRUN_TURNS`: a
        frame's work cannot always be cut smaller (a header block that came
        whole is decoded in one call), but its sender can wait in
        proportion."""
        share = self.params.fair_share
        overrun = min(int(cost / share), MAX_OVERRUN_TURNS) if share > 0 else 0
        return max(1, overrun)

    async def _give_turns(self, turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)  # the other connections' turn

    def _receive_timed(self, data: bytes) -> float:
        """`_receive`, learning what a byte of this peer's input costs; the
        seconds it took."""
        began = time.perf_counter()
        self._receive(data)
        return self._learn_cost(began, len(data))

    def _learn_cost(self, began: float, size: int) -> float:
        """Learn from input of ``size`` bytes handed to the core at ``began``;
        the seconds it took."""
        elapsed = time.perf_counter() - began
        cost = elapsed / max(size, 1)
        # Up at once, down by halves: one cheap slice (a frame's tail) must not
        # let a flood's next slice run long.
        self._byte_cost = max(cost, self._byte_cost / 2, 1e-10)
        return elapsed

    def _receive(self, data: bytes) -> None:
        if self._cut_off:
            return
        if self.trace is not None:
            self.trace("recv", data)
        try:
            events = self.core.receive_data(data)
        except SESSION_ERRORS as exc:
            self._cut_off = True  # the core has said GOAWAY: nothing more is read
            # str(): a record holding the exception would keep the session alive.
            gen_log.info(
                "%s from %s: %s; closing", self.framing, self.context, str(exc)
            )
            self._close_after_flush()
            return
        if events and self._preface_timer is not None:
            self.io_loop.remove_timeout(self._preface_timer)
            self._preface_timer = None
        table = self._events
        on_request = self._on_request
        held: dict[Any, Any] = self._held
        for event in events:
            handler = table.get(type(event))
            if handler is None:
                continue
            if handler == on_request:
                request_id = int(getattr(event, "stream_id", 0))
                held[request_id] = [event]  # started after
                self._highest_request = max(self._highest_request, request_id)
                continue
            if held:
                stream_id = getattr(event, "stream_id", None)
                entry = held.get(stream_id)
                if entry is not None:
                    if handler == self._on_stream_ended:
                        entry.append(event)  # delivered when it starts
                        continue
                    if handler != self._on_stream_reset:
                        self._start_request(held.pop(stream_id))
            handler(event)
            if self._cut_off:
                held.clear()
                break  # the peer went too far: the rest is not served
        if held and not self._holding:
            self._start_held()
        self.schedule_flush()

    def _start_held(self, stream_ids: list[int] | None = None) -> None:
        """Start the held requests (those of ``stream_ids``, or all) that were
        not reset meanwhile: Rapid Reset's streams, opened and reset at once,
        never reach the application."""
        held = self._held
        waiting = list(held) if stream_ids is None else stream_ids
        if (
            len(waiting) > START_BATCH
            and len(held) <= self.params.max_concurrent_streams
            and not self._alone()
        ):
            # A burst waits its turn like any other input: the rest start on
            # later IOLoop passes, between the other connections' reads. (A
            # backlog above the stream limit, which no honest peer makes,
            # starts at once: those over the limit are refused, and what is
            # held stays bounded.)
            waiting = waiting[:START_BATCH]
            if not self._start_scheduled:
                self._start_scheduled = True
                self.io_loop.add_callback(self._start_more)
        for stream_id in waiting:
            entry = held.pop(stream_id, None)
            if entry is not None:
                self._start_request(entry)

    async def _start_more(self) -> None:
        """Start the held requests `START_BATCH` at a time, each batch in its
        turn at the `InputGate`, until none is left or a read in slices
        (which starts them itself) begins."""
        gate = InputGate.current()
        try:
            while self._held:
                await gate.turn(self.params.fair_share)
                if self._holding or self._closed or self._cut_off:
                    return
                with gate.charging():
                    self._start_held()
                    self.schedule_flush()
        finally:
            self._start_scheduled = False

    def _start_request(self, entry: list[Any]) -> None:
        """Start a held request, then end its body if that came too."""
        self._unproven = False
        self._on_request(entry[0])
        if len(entry) > 1:
            self._on_stream_ended(entry[1])

    def _no_preface(self) -> None:
        self._preface_timer = None
        if self._holding:
            # The peer's first bytes came in time and wait their turn at the
            # InputGate: the wait is ours, not the peer's.
            timeout = self.params.handshake_timeout
            self._preface_timer = self.io_loop.call_later(timeout, self._no_preface)
            return
        gen_log.info(
            "%s from %s: no preface in %ss; closing",
            self.framing,
            self.context,
            self.params.handshake_timeout,
        )
        self.stream.close()

    def _on_request(self, event: Any) -> None:
        stream_id = event.stream_id
        if (
            self._draining and stream_id > self._last_served
        ) or self._inbound >= self.params.max_concurrent_streams:
            if self._spend(self._resets, "refused streams"):
                self._reset(stream_id, "refused")
            return
        self._inbound += 1
        self._requests += 1
        if self._requests >= self.params.max_requests:
            gen_log.debug("%r: %s requests; draining", self, self._requests)
            self.start_draining(last_stream_id=stream_id)
        priority = request_priority(self.core, event)
        stream = StreamConnection(self, stream_id, priority)
        self.streams[stream_id] = stream
        self._disarm_idle_timer()
        stream.start_request(event.headers)

    def _on_response(self, event: Any) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.response_received(event.headers, getattr(event, "reason", b""))

    def _on_push(self, event: Any) -> None:
        parent = self.streams.get(event.parent_stream_id)
        accept = self.accept_push
        if parent is None or accept is None:
            self._reset(event.pushed_stream_id, "refused")
            return
        stream = StreamConnection(
            self, event.pushed_stream_id, min(parent.priority + 1, 7)
        )
        stream.pushed_by = parent
        stream.expect_push()
        self.streams[stream.stream_id] = stream
        delegate = accept(parent, stream, event.headers)
        if delegate is None:
            stream.reset("refused")
        else:
            stream.read_response(delegate)

    def _on_data(self, event: Any) -> None:
        if not event.data and event.stream_ended is None:
            if not self._spend(self._controls, "empty DATA frames"):
                return
        stream = self.streams.get(event.stream_id)
        if stream is None:
            self.acknowledge(event.stream_id, event.flow_controlled_length)
        else:
            stream.data_received(event.data, event.flow_controlled_length)

    def _on_stream_ended(self, event: Any) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.end_received()

    def _on_trailers(self, event: Any) -> None:
        # Trailers end their stream (StreamEnded follows); SPDY's HEADERS may
        # also come mid-stream, and then they are only cost.
        if event.stream_ended is None:
            self._spend(self._controls, "HEADERS frames")

    def _on_control_frame(self, event: Any) -> None:
        self._spend(self._controls, "control frames")

    def _on_settings(self, event: Any) -> None:
        if self._spend(self._controls, "SETTINGS frames"):
            self._on_window(event)

    def _on_stream_reset(self, event: Any) -> None:
        self._held.pop(event.stream_id, None)  # reset before it started
        if not self._spend(self._resets, "stream resets"):
            return
        if not event.remote_reset:
            gen_log.info(
                "%s stream %s from %s: bad input, reset (%s)",
                self.framing,
                event.stream_id,
                self.context,
                event.error_code,
            )
        stream = self.streams.get(event.stream_id)
        if (
            event.remote_reset
            and not self.client_side
            and event.stream_id % 2 == 0
            and event.error_code == REFUSED_STREAM[self.family]
        ):
            # A client refusing a push (even one we finished sending): SPDY's
            # way of saying it wants none, as SETTINGS_ENABLE_PUSH = 0 is h2's.
            self._push_refused = True
        if stream is not None:
            if event.error_code == REFUSED_STREAM[self.family]:
                stream.refused = True  # not processed: safe to send again
            gen_log.debug(
                "%s stream %s reset: %s",
                self.framing,
                stream.stream_id,
                event.error_code,
            )
            stream.peer_gone()

    def _spend(self, bucket: TokenBucket, what: str) -> bool:
        """Pay for something the peer made us do; False, and the session ends
        with GOAWAY, once it has cost more than ``bucket`` allows."""
        if bucket.spend():
            return True
        if not self._cut_off:
            self._cut_off = True
            gen_log.info(
                "%s from %s: too many %s (over %s); closing",
                self.framing,
                self.context,
                what,
                bucket.burst,
            )
            try:
                self.core.close_connection(ENHANCE_YOUR_CALM[self.family])
            except SEND_ERRORS:
                pass
            self._close_after_flush()
        return False

    def _on_window(self, event: Any) -> None:
        if self._ready:
            self.schedule_flush()

    def _on_goaway(self, event: Any) -> None:
        # Who went away first decides who closes the connection: the other.
        self._peer_went_away = not self._draining
        gen_log.debug(
            "%s from %s: GOAWAY %s", self.framing, self.context, event.error_code
        )
        if self.client_side:
            # Our streams the server never saw will not be answered: they may
            # be sent again elsewhere.
            for stream in list(self.streams.values()):
                if stream.stream_id > event.last_stream_id and stream.stream_id & 1:
                    stream.refused = True
                    stream.close()
        self.start_draining()

    # ------------------------------------------------------------ push

    @property
    def can_push(self) -> bool:
        """A push may be promised now."""
        if self.client_side or self._draining or self._push_refused:
            return False
        if self._next_push_id > MAX_STREAM_ID:
            return False
        if isinstance(self.core, H2Core):
            return self.core.can_push
        return True

    def push(
        self, parent: StreamConnection, headers: Headers
    ) -> StreamConnection | None:
        """Promise ``headers`` (a GET) on ``parent``; the pushed stream, or
        None if the peer cannot take it now or had it already."""
        path = dict(headers).get(b":path", b"")
        if not self.can_push or path in self.pushed_paths:
            return None
        promised_id = self._next_push_id
        try:
            # h2's PUSH_PROMISE shows the whole request; the SPDY core keeps
            # only what names the resource.
            self.core.push_stream(parent.stream_id, promised_id, headers)
        except SEND_ERRORS as exc:
            gen_log.debug("%r: no push of %r: %s", self, path, exc)
            return None
        self._next_push_id += 2
        self.pushed_paths.add(path)
        stream = StreamConnection(self, promised_id, min(parent.priority + 1, 7))
        stream.pushed_by = parent
        self.streams[promised_id] = stream
        self.schedule_flush()
        return stream

    def push_may_open(self) -> bool:
        """A pushed stream may send its head now: h2 counts a push against the
        client's SETTINGS_MAX_CONCURRENT_STREAMS from its HEADERS on, and does
        not stop us; pushed heads wait here until a slot is free. (The SPDY
        core counts a push when it is promised.)"""
        if isinstance(self.core, H2Core):
            return (
                len(self._open_pushes)
                < self.core.remote_settings.max_concurrent_streams
            )
        return True

    def push_opened(self, stream: StreamConnection) -> None:
        """A pushed stream sent its head: it counts against the client's limit."""
        self._open_pushes.add(stream)

    # ------------------------------------------------------------ client

    @property
    def accepts_streams(self) -> bool:
        """A client may open another stream here."""
        return not (
            self._draining or self._closed or self._next_stream_id > MAX_STREAM_ID
        )

    def new_stream(self, priority: int = 3) -> StreamConnection:
        """A new client stream; it opens when its head is written."""
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        stream = StreamConnection(self, stream_id, priority)
        self.streams[stream_id] = stream
        self._disarm_idle_timer()
        if self._next_stream_id > MAX_STREAM_ID:
            self.start_draining()  # ids ran out: finish, then a new session
        return stream

    # ------------------------------------------------------------ writing

    def schedule(self, stream: StreamConnection) -> None:
        """``stream`` has something to send."""
        self._ready[stream] = None
        self.schedule_flush()

    def send_now(self, stream: StreamConnection) -> bool:
        """Send ``stream``'s queued data at once, without waiting for the
        pump's IOLoop pass, when no other stream waits for the pump (so no
        priority is passed over) and the write buffer has room: a lone
        download then costs what Tornado's HTTP/1.1 path costs, a write and
        a send per chunk.

        :returns: True if all of it went; otherwise the rest waits for the
            pump, which handles windows, stalls and fairness.
        """
        if self._ready or self._closed:
            return False
        budget = self.params.write_buffer_size - self._unflushed
        if budget <= 0:
            return False
        try:
            stream.send_ready(budget)
        except SEND_ERRORS:
            return False  # the pump closes the stream
        self._send_queued()
        return not stream.wants_to_send

    def stream_finished(self, stream: StreamConnection) -> None:
        """``stream``'s message is complete and waits for the pump. After
        `FLUSH_BATCH` such streams the pump runs at once rather than on the
        next IOLoop pass: the first responses of a burst go out while the
        rest are made, and the peer works on them meanwhile."""
        self.schedule(stream)
        self._finished_waiting += 1
        if self._finished_waiting >= FLUSH_BATCH and not self._pumping:
            self._flush()

    def schedule_flush(self) -> None:
        """Run the write pump on the next IOLoop pass (once, however often asked)."""
        if not self._flush_scheduled and not self._closed:
            self._flush_scheduled = True
            self.io_loop.add_callback(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._finished_waiting = 0
        if self._closed:
            return
        if self._ready:
            self._pumping = True
            try:
                self._pump(self.params.write_buffer_size - self._unflushed)
            finally:
                self._pumping = False
        self._send_queued()
        if self._draining and not self.streams and not self._held and not self._closing:
            self._close_after_flush()

    def _pump(self, budget: int) -> None:
        """Send for ready streams: by priority, round-robin among equals."""
        ready = self._ready
        for stream in sorted(ready, key=_head_order):
            # Heads first, in stream-id order (ids must open in sequence),
            # a push's head before its parent's.
            if not stream.has_head:
                continue
            try:
                head_sent = stream.send_head()
            except SEND_ERRORS:
                gen_log.debug("%r: head not sent", stream, exc_info=True)
                stream.close()  # e.g. a push whose parent was reset
                continue
            except ValueError as exc:
                # The application's head cannot be put in this protocol's
                # frames (a field over SPDY/2's 64 KiB): this stream fails.
                gen_log.warning("%r: head not sent: %s", stream, exc)
                stream.reset("internal")
                continue
            if not head_sent and self.client_side:
                break
        quantum = self.core.max_outbound_frame_size
        order = sorted(ready, key=_send_order)
        for _, group in itertools.groupby(order, key=_priority):
            active = list(group)
            while active:
                still_active = []
                for stream in active:
                    try:
                        sent = stream.send_ready(min(budget, quantum))
                    except SEND_ERRORS:
                        gen_log.debug("%r: send failed", stream, exc_info=True)
                        stream.close()
                        continue
                    budget -= sent
                    if sent and self._stalled:
                        self._stalled.pop(stream, None)
                    if not stream.wants_to_send:
                        ready.pop(stream, None)
                    elif sent:
                        still_active.append(stream)
                    else:
                        self._note_stalled(stream)
                if budget <= 0:
                    return
                active = still_active

    def may_cut_frame(self, window: int) -> bool:
        """May a DATA frame be cut short to the ``window`` bytes the peer
        allows? Not below ``min_data_frame`` when the peer's initial window is
        twice that: it will open the window again. A peer whose windows are
        all tiny pays a control token for each such frame (data dribble,
        CVE-2019-9511)."""
        small = self.params.min_data_frame
        if window >= small:
            return True
        if self.core.remote_initial_window_size >= 2 * small:
            return False
        return self._spend(self._controls, "DATA frames cut by tiny windows")

    def _note_stalled(self, stream: StreamConnection) -> None:
        """``stream`` has data but the peer gives it no window: it has
        ``stall_timeout`` seconds to open it."""
        timeout = self.params.stall_timeout
        if not timeout or stream in self._stalled:
            return
        self._stalled[stream] = self.io_loop.time()
        if self._stall_timer is None:
            self._stall_timer = self.io_loop.call_later(timeout, self._reset_stalled)

    def _reset_stalled(self) -> None:
        self._stall_timer = None
        now = self.io_loop.time()
        timeout = self.params.stall_timeout
        for stream, since in list(self._stalled.items()):
            if now - since >= timeout:
                gen_log.info(
                    "%s stream %s from %s: no window for %ss; reset",
                    self.framing,
                    stream.stream_id,
                    self.context,
                    timeout,
                )
                stream.reset("cancel")
        if self._stalled and not self._closed:
            due = min(self._stalled.values()) + timeout - now
            self._stall_timer = self.io_loop.call_later(due, self._reset_stalled)

    def _send_queued(self) -> None:
        """Write what the core has queued. A large batch on a plain socket
        with nothing else waiting to go is sent with one ``sendmsg`` of the
        core's own buffers, so DATA is not copied to join it to its frame
        header (a tenth of a download's time); what the kernel does not take
        goes to the IOStream as usual."""
        buffers = self.core.buffers_to_send()
        if not buffers:
            return
        if self._vectored is not None and 1 < len(buffers) <= VECTORED_BUFFERS:
            buffers = self._send_vectored(self._vectored, buffers)
            if not buffers:  # all on the wire: as if a write had completed
                self._room_again()
                return
        self._write(b"".join(buffers))

    def _send_vectored(
        self, sock: socket.socket, buffers: list[bytes | memoryview]
    ) -> list[bytes | memoryview]:
        """Send ``buffers`` at once if they are large and the IOStream has
        nothing queued; what is left to send."""
        if self.stream.writing() or self.stream.closed() or self.trace is not None:
            return buffers
        size = sum(map(len, buffers))
        if size < VECTORED_MIN_BYTES:
            return buffers
        try:
            sent = sock.sendmsg(buffers)
        except OSError:
            return buffers  # blocked, or broken: the IOStream's write decides
        if sent == size:
            return []
        while sent:
            first = buffers[0]
            if sent < len(first):
                buffers[0] = memoryview(first)[sent:]
                break
            sent -= len(first)
            del buffers[0]
        return buffers

    def _write(self, data: bytes) -> None:
        if self.trace is not None:
            self.trace("send", data)
        size = len(data)
        try:
            future = self.stream.write(data)
        except iostream.StreamClosedError:
            self._wake_drained()  # the read loop must find the connection gone
            return
        self._unflushed += size
        if future.done():  # sent at once: no IOLoop pass for the callback
            self._written(future, size)
        else:
            future.add_done_callback(lambda f: self._written(f, size))

    def _written(self, future: Future[None], size: int) -> None:
        self._unflushed -= size
        failed = future.exception() is not None
        if failed:
            self._wake_drained()  # never will be: the read loop finds it closed
        else:
            self._room_again()

    def _room_again(self) -> None:
        """Bytes left for the socket: once at most half the write buffer
        waits, the read loop goes on and the pump runs again for the streams
        its budget left waiting."""
        if self._unflushed <= self.params.write_buffer_size // 2:
            self._wake_drained()
            if self._ready:
                self.schedule_flush()

    def _wake_drained(self) -> None:
        if self._drained is not None:
            future_set_result_unless_cancelled(self._drained, None)
            self._drained = None

    async def _wait_drained(self) -> None:
        if self._drained is None:
            self._drained = Future()
        await self._drained

    def acknowledge(self, stream_id: int, length: int) -> None:
        """Give ``length`` consumed bytes back to the peer's window."""
        if length:
            try:
                self.core.acknowledge_received_data(length, stream_id)
            except SEND_ERRORS:
                pass
            self.schedule_flush()

    def _reset(self, stream_id: int, reason: str) -> None:
        try:
            self.core.reset_stream(stream_id, _RESET_CODES[reason][self.family])
        except SEND_ERRORS:
            pass  # already closed in the core
        self.schedule_flush()

    def reset_stream(self, stream: StreamConnection, reason: str) -> None:
        """Reset ``stream`` on the wire (the stream closes itself)."""
        self._reset(stream.stream_id, reason)

    def reset_after_response(self, stream: StreamConnection) -> None:
        """The response ended before the request: tell the peer to stop
        sending (h2: NO_ERROR, RFC 9113 section 8.1; SPDY: CANCEL)."""
        code = 0 if self.family == "h2" else spdy.StatusCode.CANCEL
        try:
            self.core.reset_stream(stream.stream_id, code)
        except SEND_ERRORS:
            pass
        stream.close()

    def stream_closed(self, stream: StreamConnection) -> None:
        """Called once by each stream as it ends."""
        if self.streams.pop(stream.stream_id, None) is not None:
            if stream.stream_id % 2 and not self.client_side:
                self._inbound -= 1
        self._ready.pop(stream, None)
        self._stalled.pop(stream, None)
        self._open_pushes.discard(stream)
        if self._ready:
            self.schedule_flush()  # a stream limit may have made room
        if not self.streams:
            if self._draining:
                self.schedule_flush()
            else:
                self._arm_idle_timer()

    # ------------------------------------------------------------ closing

    def start_draining(self, last_stream_id: int | None = None) -> None:
        """Send GOAWAY: streams already accepted finish, new ones are refused;
        the connection closes when the last stream is done.

        :arg last_stream_id: the last of the peer's streams that will be
            served (by default the highest it opened).
        """
        if self._draining or self._closed:
            return
        self._draining = True
        # Requests received but held (not started yet) are among those served.
        self._last_served = (
            self._highest_request if last_stream_id is None else last_stream_id
        )
        try:
            self.core.close_connection(last_stream_id=last_stream_id)
        except SEND_ERRORS:
            pass
        self.schedule_flush()

    async def close(self) -> None:
        """Close gracefully and wait until the connection is gone."""
        self.start_draining()
        await self._closed_future

    def _close_after_flush(self) -> None:
        """Close once everything queued has gone out, and the peer has had a
        moment to read it (at most ``LINGER`` seconds)."""
        self._send_queued()
        if self._closing:
            return
        self._closing = self._draining = True
        self.io_loop.add_future(
            convert_yielded(self._linger_then_close()), lambda f: f.result()
        )

    async def _linger_then_close(self) -> None:
        while self._unflushed and not self.stream.closed():
            await self._wait_drained()
        # Closing while the peer's last frames (a WINDOW_UPDATE, its own
        # GOAWAY) sit unread would reset the connection, and a reset can
        # destroy what is still on its way to the peer: let it close first,
        # unless it went away first itself.
        if not self.stream.closed() and not self._peer_went_away:
            try:
                await gen.with_timeout(
                    datetime.timedelta(seconds=LINGER), self._closed_future
                )
            except TimeoutError:
                pass
        self.stream.close()

    def _connection_lost(self) -> None:
        if self._closed:
            return
        self._closed = True
        Session.live -= 1
        self._draining = True
        self._disarm_idle_timer()
        for timer in (self._preface_timer, self._stall_timer):
            if timer is not None:
                self.io_loop.remove_timeout(timer)
        self._preface_timer = self._stall_timer = None
        self._held.clear()
        self.stream.close()
        self._wake_drained()
        told = convert_yielded(self._tell_streams(list(self.streams.values())))
        self.io_loop.add_future(told, lambda f: f.result())

    async def _tell_streams(self, streams: list[StreamConnection]) -> None:
        """Tell the streams of a lost connection, `TEARDOWN_BATCH` at a time,
        each batch in its turn at the `InputGate` (each may run a handler's
        on_connection_close: a hundred at once would stall the other
        connections), then the owner."""
        gate = InputGate.current()
        for start in range(0, len(streams), TEARDOWN_BATCH):
            if start:
                await gate.turn(self.params.fair_share)
            with gate.charging():
                for stream in streams[start : start + TEARDOWN_BATCH]:
                    stream.connection_lost()
        self.server.on_close(self)
        future_set_result_unless_cancelled(self._closed_future, None)

    def _arm_idle_timer(self) -> None:
        timeout = self.params.idle_connection_timeout
        if timeout and self._idle_timer is None and not self._closed:
            self._idle_timer = self.io_loop.call_later(timeout, self._idle_check)

    def _disarm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self.io_loop.remove_timeout(self._idle_timer)
            self._idle_timer = None

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self.streams or self._held or self._closed:
            return
        idle = self.io_loop.time() - self._last_activity
        if idle >= self.params.idle_connection_timeout:
            gen_log.debug("%r idle for %.0fs: closing", self, idle)
            self.start_draining()
        else:
            self._arm_idle_timer()


def _priority(stream: StreamConnection) -> int:
    return stream.priority


def _head_order(stream: StreamConnection) -> tuple[int, int, int]:
    parent = stream.pushed_by
    if parent is not None:
        return (parent.stream_id, 0, stream.stream_id)
    return (stream.stream_id, 1, stream.stream_id)


def _send_order(stream: StreamConnection) -> tuple[int, int]:
    return (stream.priority, stream.stream_id)
