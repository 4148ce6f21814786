"""Bad input over the network: `SPDYServer` against hostile or broken peers.

Every protocol the server multiplexes (h2, SPDY/2, SPDY/3, SPDY/3.1; cleartext
by prior knowledge, and a few cases over TLS with ALPN) is driven here by raw
clients of this file's own over asyncio streams: h2 frames are written and
parsed with hyperframe and hpack, SPDY frames with the core's ``frames`` module
and `HeaderCodec`, so that the tests can send what no well-behaved client would.

The standard each test holds the server to: bad input gets the protocol's
answer (RST_STREAM or GOAWAY with the right status), an info-level log line,
and never an unhandled exception, a hang or unbounded memory; the stream or
session at fault is freed, and everyone else keeps being served.

- garbage after the handshake: GOAWAY, info log, others served during and after;
- a peer that stops reading (zero window, or a full socket): the stalled
  stream holds only its own resources, the session's buffered bytes stay
  bounded, other streams and connections are served promptly;
- a peer that disconnects mid-request or mid-response: the handler hears
  ``on_connection_close``, the session leaves ``server._connections``;
- header block bombs: SPDY refuses the stream and keeps its zlib state in step
  (or ends the session past ``max_inflate_size``); h2 answers as the h2
  library does;
- a handler raising mid-stream resets its stream only.

Every wait is on a concrete event (a frame received, an `asyncio.Event` set by a
handler, a session's close future) and bounded by `asyncio.wait_for`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import gc
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import hpack
import pytest
from hyperframe import frame as hf
from tornado import web

from tests import server_util
from tests.server_util import CHUNK, PAYLOAD, HelloHandler
from tornado_spdy.fairness import InputGate
from tornado_spdy.server import SPDYServer
from tornado_spdy.session import (
    LIGHT_READ_SLICES,
    MIN_SLICE,
    Session,
    SessionParameters,
)
from tornado_spdy.spdy import VERSIONS
from tornado_spdy.spdy import events as spdy_events
from tornado_spdy.spdy import frames as sf
from tornado_spdy.spdy.compression import HeaderCodec

pytestmark = pytest.mark.timeout(60)

PROTOCOLS = ("h2", "spdy/2", "spdy/3", "spdy/3.1")
SPDY = ("spdy/2", "spdy/3", "spdy/3.1")

TIMEOUT = 5.0  # one wait for one event (they take milliseconds)
SCENARIO_TIMEOUT = 45.0  # one whole test
CLEANUP_TIMEOUT = 2.0
#: IOLoop passes a test lets go by for something that takes a few.
MAX_PASSES = 1000

BIG = 10 * 1024 * 1024
MAX_WINDOW = 2**31 - 1

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Wire status codes.
H2_NO_ERROR = 0x0
H2_PROTOCOL_ERROR = 0x1
H2_INTERNAL_ERROR = 0x2
H2_FRAME_SIZE_ERROR = 0x6
H2_ENHANCE_YOUR_CALM = 0xB
SPDY_PROTOCOL_ERROR = 1  # RST_STREAM and GOAWAY
SPDY_INTERNAL_ERROR = 6  # RST_STREAM (SPDY/2 has it too)
SPDY_FRAME_TOO_LARGE = 11  # RST_STREAM, SPDY/3 only
H2_SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SPDY_SETTINGS_INITIAL_WINDOW_SIZE = 7


def too_large(protocol: str) -> int:
    """SPDY's RST_STREAM status for a header list over the limits."""
    return SPDY_PROTOCOL_ERROR if protocol == "spdy/2" else SPDY_FRAME_TOO_LARGE


def internal_error(protocol: str) -> int:
    return H2_INTERNAL_ERROR if protocol == "h2" else SPDY_INTERNAL_ERROR


class Deliberate(Exception):
    """Raised by the test handlers that are meant to fail."""


# ----------------------------------------------------------------- application


class Probe:
    """What the handlers report to the test: named events and counts."""

    def __init__(self) -> None:
        self.release = asyncio.Event()  # lets /wait handlers answer
        self.events: collections.defaultdict[str, asyncio.Event] = (
            collections.defaultdict(asyncio.Event)
        )
        self.counts: collections.Counter[str] = collections.Counter()

    def hit(self, name: str) -> None:
        self.counts[name] += 1
        self.events[name].set()

    async def wait(self, name: str, timeout: float = TIMEOUT) -> None:
        try:
            await asyncio.wait_for(self.events[name].wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"handler event {name!r} never happened") from None


class BaseHandler(web.RequestHandler):
    @property
    def probe(self) -> Probe:
        return self.settings["probe"]


class WaitHandler(BaseHandler):
    """Answers once the test sets ``probe.release``: a request in flight."""

    async def get(self) -> None:
        self.probe.hit("wait-started")
        await self.probe.release.wait()
        self.write(b"released")


class BigHandler(BaseHandler):
    """``size`` bytes (10 MiB by default), 64 KiB at a time, each flushed."""

    async def get(self) -> None:
        size = int(self.get_argument("size", str(BIG)))
        self.probe.hit("big-started")
        if not await server_util.write_flushed(self, size):
            self.probe.hit("big-write-failed")

    def on_connection_close(self) -> None:
        self.probe.hit("big-closed")


class UploadHandler(BaseHandler, server_util.UploadHandler):
    """Counts a streamed request body; reports its start and its close."""

    def prepare(self) -> None:
        super().prepare()
        self.probe.hit("upload-started")

    def on_connection_close(self) -> None:
        self.probe.hit("upload-closed")
        super().on_connection_close()


@web.stream_request_body
class BoomUploadHandler(BaseHandler):
    """Raises in ``data_received``: a handler failing mid-request."""

    def data_received(self, chunk: bytes) -> None:
        raise Deliberate("boom in data_received")

    def post(self) -> None:
        self.write(b"unreachable")

    def on_connection_close(self) -> None:
        self.probe.hit("boom-upload-closed")
        super().on_connection_close()


class BoomResponseHandler(BaseHandler):
    """Promises 100000 bytes, sends 1000 and raises: a handler failing
    mid-response."""

    async def get(self) -> None:
        self.set_header("Content-Length", "100000")
        self.write(PAYLOAD[:1000])
        await self.flush()
        self.probe.hit("boom-response-flushed")
        raise Deliberate("boom mid-response")


ROUTES = [
    (r"/hello", HelloHandler),
    (r"/wait", WaitHandler),
    (r"/big", BigHandler),
    (r"/upload", UploadHandler),
    (r"/boom-upload", BoomUploadHandler),
    (r"/boom-response", BoomResponseHandler),
]


# ----------------------------------------------------------------- raw clients


@dataclasses.dataclass
class Reply:
    """What came back on one stream."""

    auto_window: bool = True
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = dataclasses.field(default_factory=list)
    body: bytearray = dataclasses.field(default_factory=bytearray, repr=False)
    ended: bool = False
    reset: int | None = None

    def __repr__(self) -> str:
        return (
            f"Reply(status={self.status}, body={len(self.body)} bytes, "
            f"ended={self.ended}, reset={self.reset})"
        )

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class RawClient:
    """A hand-driven client: frames are written as given and every received
    frame is recorded. Reading happens only inside `read_until`, so a test
    that stops calling it is a peer that stops reading."""

    def __init__(
        self,
        protocol: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        scheme: str,
    ):
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.scheme = scheme
        self.replies: dict[int, Reply] = {}
        self.frames: list[Any] = []
        self.goaway: tuple[int, int] | None = None  # (last stream id, status)
        self.settings_received = False
        self.eof = False
        self._next_id = 1

    @property
    def local_port(self) -> int:
        return self.writer.get_extra_info("sockname")[1]

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)

    async def read_until(
        self, predicate: Callable[[], bool], timeout: float = TIMEOUT
    ) -> None:
        """Read and handle frames until ``predicate()`` holds."""

        async def loop() -> None:
            while not predicate():
                if self.eof:
                    raise AssertionError(
                        f"{self.protocol}: connection closed; frames: "
                        f"{self.frames[-5:]!r}, goaway: {self.goaway}"
                    )
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, ssl.SSLError):
                    data = b""
                if not data:
                    self.eof = True
                    continue
                self.feed(data)

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.protocol}: timed out; last frames {self.frames[-5:]!r}, "
                f"replies {self.replies!r}"
            ) from None

    async def read_to_eof(self) -> None:
        await self.read_until(lambda: self.eof)

    async def handshake(self, settings: dict[int, int] | None = None, window=0) -> None:
        """Send our preface (SETTINGS, a connection window) and wait for the
        server's SETTINGS: the session is up on the server."""
        self.send(self.preface(settings or {}, window))
        await self.read_until(lambda: self.settings_received)

    def request(
        self,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        end: bool = True,
        headers: list[tuple[str, str]] | None = None,
        auto_window: bool = True,
    ) -> int:
        """Open a stream; without ``end`` the request stays open (no body,
        no FIN)."""
        stream_id = self.new_stream(auto_window)
        fields = [
            (":method", method),
            (":path", path),
            (":scheme", self.scheme),
            (":authority", "localhost"),
            *(headers or []),
        ]
        self.send(self.headers_frame(stream_id, fields, end and body is None))
        if body is not None:
            self.send_body(stream_id, body, end)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end: bool = True) -> None:
        pieces = [body[i : i + 16384] for i in range(0, len(body), 16384)] or [b""]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            self.send(self.data_frame(stream_id, piece, end and last))

    def new_stream(self, auto_window: bool = True) -> int:
        """The next stream id, with its `Reply` ready."""
        stream_id = self._next_id
        self._next_id += 2
        self.replies[stream_id] = Reply(auto_window)
        return stream_id

    async def get(self, path: str = "/hello") -> Reply:
        stream_id = self.request(path)
        reply = self.replies[stream_id]
        await self.read_until(lambda: reply.done)
        return reply

    async def get_with(self, fields: list[tuple[str, str]]) -> Reply:
        """A GET with exactly these fields (pseudo-headers included)."""
        stream_id = self.new_stream()
        reply = self.replies[stream_id]
        self.send(self.headers_frame(stream_id, fields, True))
        await self.read_until(lambda: reply.done)
        return reply

    # per protocol
    def preface(self, settings: dict[int, int], window: int) -> bytes:
        raise NotImplementedError

    def headers_frame(
        self, stream_id: int, fields: list[tuple[str, str]], end: bool
    ) -> bytes:
        raise NotImplementedError

    def data_frame(self, stream_id: int, data: bytes, end: bool) -> bytes:
        raise NotImplementedError

    def ping_frames(self, count: int) -> bytes:
        raise NotImplementedError

    def goaway_frame(self) -> bytes:
        """GOAWAY, no error, no server stream accepted."""
        raise NotImplementedError

    def feed(self, data: bytes) -> None:
        raise NotImplementedError


class H2RawClient(RawClient):
    """h2 framed by hyperframe, header blocks by hpack."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 2**24
        self._buffer = bytearray()
        self._header_block: dict[int, bytearray] = {}

    def preface(self, settings: dict[int, int], window: int) -> bytes:
        data = H2_PREFACE + hf.SettingsFrame(0, settings=settings).serialize()
        if window:
            data += hf.WindowUpdateFrame(0, window_increment=window).serialize()
        return data

    def header_block(self, fields: list[tuple[str, str]]) -> bytes:
        # Literal strings: hpack's pure-Python Huffman coder takes seconds on
        # the bombs' 100 KB values.
        return self.encoder.encode(fields, huffman=False)

    def headers_frame(
        self, stream_id: int, fields: list[tuple[str, str]], end: bool
    ) -> bytes:
        return self.block_frames(stream_id, self.header_block(fields), end)

    @staticmethod
    def block_frames(stream_id: int, block: bytes, end: bool) -> bytes:
        """HEADERS, and CONTINUATION frames if the block needs them."""
        pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)] or [b""]
        out = []
        for index, piece in enumerate(pieces):
            flags = {"END_HEADERS"} if index == len(pieces) - 1 else set()
            if index == 0:
                if end:
                    flags.add("END_STREAM")
                frame: hf.Frame = hf.HeadersFrame(stream_id, data=piece, flags=flags)
            else:
                frame = hf.ContinuationFrame(stream_id, data=piece, flags=flags)
            out.append(frame.serialize())
        return b"".join(out)

    def data_frame(self, stream_id: int, data: bytes, end: bool) -> bytes:
        flags = {"END_STREAM"} if end else set()
        return hf.DataFrame(stream_id, data=data, flags=flags).serialize()

    def ping_frames(self, count: int) -> bytes:
        return b"".join(
            hf.PingFrame(0, opaque_data=struct.pack(">Q", n)).serialize()
            for n in range(count)
        )

    def goaway_frame(self) -> bytes:
        return hf.GoAwayFrame(0, last_stream_id=0, error_code=H2_NO_ERROR).serialize()

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 9:
            frame, length = hf.Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
            if len(buffer) < 9 + length:
                break
            frame.parse_body(memoryview(bytes(buffer[9 : 9 + length])))
            del buffer[: 9 + length]
            self.frames.append(frame)
            self.on_frame(frame)

    def on_frame(self, frame: hf.Frame) -> None:
        reply = self.replies.get(frame.stream_id)
        if isinstance(frame, hf.SettingsFrame):
            if "ACK" not in frame.flags:
                self.settings_received = True
                self.send(hf.SettingsFrame(0, flags={"ACK"}).serialize())
        elif isinstance(frame, hf.PingFrame):
            if "ACK" not in frame.flags:
                self.send(
                    hf.PingFrame(
                        0, opaque_data=frame.opaque_data, flags={"ACK"}
                    ).serialize()
                )
        elif isinstance(frame, hf.GoAwayFrame):
            self.goaway = (frame.last_stream_id, frame.error_code)
        elif isinstance(frame, (hf.HeadersFrame, hf.ContinuationFrame)):
            block = self._header_block.setdefault(frame.stream_id, bytearray())
            block += frame.data
            if "END_HEADERS" in frame.flags:
                del self._header_block[frame.stream_id]
                fields = self.decoder.decode(bytes(block), raw=True)
                if reply is not None:
                    reply.headers += fields
                    for name, value in fields:
                        if name == b":status":
                            reply.status = int(value)
            if reply is not None and "END_STREAM" in frame.flags:
                reply.ended = True
        elif isinstance(frame, hf.DataFrame):
            if reply is not None:
                reply.body += frame.data
                if "END_STREAM" in frame.flags:
                    reply.ended = True
                size = frame.flow_controlled_length
                if reply.auto_window and size:
                    self.send(
                        hf.WindowUpdateFrame(
                            frame.stream_id, window_increment=size
                        ).serialize()
                        + hf.WindowUpdateFrame(0, window_increment=size).serialize()
                    )
        elif isinstance(frame, hf.RstStreamFrame):
            if reply is not None:
                reply.reset = frame.error_code


class SPDYRawClient(RawClient):
    """SPDY framed by `tornado_spdy.spdy.frames`, header blocks by one
    `HeaderCodec` per session (as the protocol requires)."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.profile = VERSIONS[self.protocol]
        self.codec = HeaderCodec(
            self.profile, max_header_list_size=2**24, max_header_fields=10_000
        )
        self.parser = sf.FrameParser(self.profile)
        self._next_ping = 1

    def serialize(self, frame: sf.Frame) -> bytes:
        return frame.serialize(self.profile)

    def preface(self, settings: dict[int, int], window: int) -> bytes:
        data = b""
        if settings:
            entries = [(key, value, 0) for key, value in settings.items()]
            data += self.serialize(sf.SettingsFrame(entries))
        if window and self.profile.session_flow_control:
            data += self.serialize(sf.WindowUpdateFrame(0, window))
        return data

    def header_block(self, fields: list[tuple[str, str]]) -> bytes:
        version = ((self.profile.wire_names[b":version"], b"HTTP/1.1"),)
        return self.codec.encode(fields, version)

    def headers_frame(
        self, stream_id: int, fields: list[tuple[str, str]], end: bool
    ) -> bytes:
        return self.syn_stream(stream_id, self.header_block(fields), end)

    def syn_stream(self, stream_id: int, block: bytes, end: bool) -> bytes:
        flags = sf.FLAG_FIN if end else 0
        return self.serialize(sf.SynStreamFrame(stream_id, 0, 0, block, flags))

    def data_frame(self, stream_id: int, data: bytes, end: bool) -> bytes:
        return sf.DataFrame(stream_id, data, sf.FLAG_FIN if end else 0).serialize()

    def ping_frames(self, count: int) -> bytes:
        pings = []
        for _ in range(count):
            pings.append(self.serialize(sf.PingFrame(self._next_ping)))
            self._next_ping += 2
        return b"".join(pings)

    def goaway_frame(self) -> bytes:
        return self.serialize(sf.GoAwayFrame(0, 0))

    def feed(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            self.frames.append(frame)
            self.on_frame(frame)

    def on_frame(self, frame: sf.Frame) -> None:
        reply = self.replies.get(getattr(frame, "stream_id", -1))
        if isinstance(frame, sf.SettingsFrame):
            self.settings_received = True
        elif isinstance(frame, sf.PingFrame):
            if frame.ping_id % 2 == 0:  # the server's: echo it
                self.send(self.serialize(frame))
        elif isinstance(frame, sf.GoAwayFrame):
            self.goaway = (frame.last_good_stream_id, frame.status_code)
        elif isinstance(frame, (sf.SynReplyFrame, sf.HeadersFrame)):
            fields = self.codec.decode(frame.header_block, frame.stream_id)[0]
            if reply is not None:
                reply.headers += fields
                for name, value in fields:
                    if name == b":status":
                        reply.status = int(value)
                if frame.flags & sf.FLAG_FIN:
                    reply.ended = True
        elif isinstance(frame, sf.DataFrame):
            if reply is not None:
                reply.body += frame.data
                if frame.flags & sf.FLAG_FIN:
                    reply.ended = True
                size = len(frame.data)
                # SPDY/2 too: the server follows Chromium, which windowed SPDY/2.
                if reply.auto_window and size:
                    updates = self.serialize(
                        sf.WindowUpdateFrame(frame.stream_id, size)
                    )
                    if self.profile.session_flow_control:
                        updates += self.serialize(sf.WindowUpdateFrame(0, size))
                    self.send(updates)
        elif isinstance(frame, sf.RstStreamFrame):
            if reply is not None:
                reply.reset = frame.status_code


# ----------------------------------------------------------------- the server


class WriteMeter:
    """Watches what every server session hands to its IOStream, and when it
    stops reading.

    ``peak[session]`` is the highest ``session._unflushed`` right after a
    write (bytes handed to the IOStream and not yet on the wire, the write
    included); `expect` resolves when a condition on the session holds once
    the write's own completion callbacks have run, or once the session's read
    loop has begun to wait for its write buffer to drain.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.peak: collections.Counter[Session] = collections.Counter()
        self._waiters: list[tuple[Session, Callable[[Session], bool], Any]] = []
        original_write = Session._write
        original_wait = Session._wait_drained
        meter = self

        def _write(session: Session, data: bytes) -> None:
            original_write(session, data)
            meter.peak[session] = max(meter.peak[session], session._unflushed)
            # After the IOStream's own callbacks for this write (call_soon is FIFO).
            asyncio.get_running_loop().call_soon(meter._check, session)

        async def _wait_drained(session: Session) -> None:
            # Checked once the read loop is suspended: the pause that follows
            # a read's last answers comes with no write of its own.
            asyncio.get_running_loop().call_soon(meter._check, session)
            await original_wait(session)

        monkeypatch.setattr(Session, "_write", _write)
        monkeypatch.setattr(Session, "_wait_drained", _wait_drained)

    def _check(self, session: Session) -> None:
        for waiter in list(self._waiters):
            watched, predicate, future = waiter
            if watched is session and not future.done() and predicate(session):
                future.set_result(None)
                self._waiters.remove(waiter)

    def expect(self, session: Session, predicate: Callable[[Session], bool]) -> Any:
        """A future resolved at the first write or pause after which
        ``predicate`` holds (at once if it holds already); ask before doing
        what causes it."""
        future = asyncio.get_running_loop().create_future()
        if predicate(session):
            future.set_result(None)
        else:
            self._waiters.append((session, predicate, future))
        return future


@dataclasses.dataclass
class Harness:
    server: SPDYServer
    port: int
    protocol: str
    tls: bool
    probe: Probe
    clients: list[RawClient] = dataclasses.field(default_factory=list)

    async def connect(self, rcvbuf: int | None = None, limit: int = 2**16) -> RawClient:
        """A raw client of the harness's protocol (TLS with ALPN if so)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        context = None
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols([self.protocol])
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                sock=sock,
                ssl=context,
                server_hostname="localhost" if self.tls else None,
                limit=limit,
            ),
            TIMEOUT,
        )
        if self.tls:
            chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
            assert chosen == self.protocol
        cls = H2RawClient if self.protocol == "h2" else SPDYRawClient
        client = cls(self.protocol, reader, writer, "https" if self.tls else "http")
        self.clients.append(client)
        return client

    async def client_and_session(self) -> tuple[RawClient, Session]:
        """A raw client past its handshake, and the server's session for it."""
        client = await self.connect()
        await client.handshake()
        return client, self.session_of(client)

    async def established(self) -> tuple[RawClient, Session]:
        """`client_and_session`, once served a GET: a session whose reads
        are no longer all costly input (see ``Session._unproven``)."""
        client, session = await self.client_and_session()
        assert (await client.get("/hello")).status == 200
        return client, session

    def session_ports(self) -> set[int]:
        """The client ports of the server's sessions."""
        return {
            conn.context.address[1]
            for conn in self.server._connections
            if isinstance(conn, Session)
        }

    def session_of(self, client: RawClient) -> Session:
        """The server's session for ``client`` (after its handshake)."""
        for conn in self.server._connections:
            if isinstance(conn, Session) and conn.context.address[1] == (
                client.local_port
            ):
                return conn
        raise AssertionError(f"no server session for {client.local_port}")

    async def served(self) -> None:
        """A new connection is served a GET at once."""
        client = await self.connect()
        await client.handshake()
        reply = await client.get("/hello")
        assert (reply.status, bytes(reply.body)) == (200, b"hello")
        assert client.goaway is None
        await client.close()

    async def bystander(self) -> tuple[RawClient, int]:
        """Another connection with a request in flight (on /wait) while the
        test misbehaves; it answers when ``probe.release`` is set."""
        self.probe.events["wait-started"].clear()
        client = await self.connect()
        await client.handshake()
        stream_id = client.request("/wait")
        await self.probe.wait("wait-started")
        return client, stream_id

    async def bystander_served(self, client: RawClient, stream_id: int) -> None:
        self.probe.release.set()
        reply = client.replies[stream_id]
        await client.read_until(lambda: reply.done)
        assert (reply.status, bytes(reply.body)) == (200, b"released")
        assert client.goaway is None

    async def goes_away(
        self,
        client: RawClient,
        session: Session,
        goaway: tuple[int, int],
        bystander: tuple[RawClient, int],
    ) -> None:
        """``client``'s session ends: ``goaway`` (last stream id, status), EOF,
        and it leaves the server; the `bystander` and a new connection are
        served meanwhile."""
        await client.read_to_eof()
        assert client.goaway == goaway
        await self.gone(session)
        await self.bystander_served(*bystander)
        await self.served()

    async def gone(self, session: Session) -> None:
        """``session`` ends and leaves the server's connections."""
        try:
            await asyncio.wait_for(asyncio.shield(session._closed_future), TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"{session!r} never closed: streams {session.streams}"
            ) from None
        assert session not in self.server._connections


@contextlib.asynccontextmanager
async def serving(
    protocol: str,
    tls: bool = False,
    params: SessionParameters | None = None,
    sndbuf: int | None = None,
    routes: list[tuple[str, type[web.RequestHandler]]] = ROUTES,
    probe: Probe | None = None,
    close_timeout: float = CLEANUP_TIMEOUT,
    stuck_fails: bool = False,
) -> AsyncIterator[Harness]:
    """A `SPDYServer` on 127.0.0.1 for ``protocol`` (cleartext by prior
    knowledge, or TLS with ALPN) serving ``routes``, whose handlers report to
    ``probe``; ``sndbuf`` is the accepted sockets' send buffer size.

    At the end the harness's clients are aborted and the server closed
    gracefully. A close that takes over ``close_timeout`` fails the test
    with ``stuck_fails``; else the sessions still open are dropped, so that
    the loop shuts down cleanly (what stuck them is for the test to report).
    """
    probe = probe or Probe()
    app = web.Application(routes, probe=probe)
    server = SPDYServer(
        app,
        session_params=params or SessionParameters(),
        **server_util.server_options(protocol, tls),
    )
    port = server_util.listen(server, sndbuf=sndbuf)
    harness = Harness(server, port, protocol, tls, probe)
    try:
        yield harness
    finally:
        probe.release.set()
        for client in harness.clients:
            client.abort()
        harness.clients.clear()
        if not await server_util.close_gracefully(server, close_timeout):
            assert not stuck_fails, f"the server took over {close_timeout} s to close"
            # A session stuck by a bug the test reports; free its handlers so
            # that the loop shuts down cleanly.
            for conn in list(server._connections):
                if isinstance(conn, Session):
                    conn._connection_lost()


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))
    gc.collect()  # "exception never retrieved" and friends log now, in the test


def errors(caplog: pytest.LogCaptureFixture, deliberate: bool = False) -> list:
    """Records at ERROR and above, except (with ``deliberate``) those of the
    handlers' own deliberate exceptions."""
    bad = []
    for record in caplog.records:
        if record.levelno < logging.ERROR:
            continue
        if deliberate and record.name == "tornado.application":
            exc = record.exc_info[1] if record.exc_info else None
            if isinstance(exc, Deliberate):
                continue
        bad.append(record)
    return bad


def above_info(caplog: pytest.LogCaptureFixture) -> list:
    return [r for r in caplog.records if r.levelno > logging.INFO]


def info_lines(caplog: pytest.LogCaptureFixture, protocol: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tornado.general"
        and r.levelno == logging.INFO
        and protocol in r.getMessage()
    ]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def param_id(value: Any) -> str:
    if isinstance(value, bytes):
        return value[:6].hex()
    return str(value)


# ----------------------------------------------------------------- 1. garbage

JUNK = b"\xde\xad\xbe\xef" * 64
# A DATA frame header on stream 0 (h2: PROTOCOL_ERROR), then junk.
H2_DATA_ON_STREAM_0 = b"\x00\x00\x08\x00\x00\x00\x00\x00\x00" + b"garbage!"
HTTP1_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

GARBAGE_CASES = [
    # (protocol, tls, garbage, GOAWAY status)
    ("h2", False, H2_DATA_ON_STREAM_0, H2_PROTOCOL_ERROR),
    # A frame header announcing 0xdeadbe bytes: over SETTINGS_MAX_FRAME_SIZE.
    ("h2", False, JUNK, H2_FRAME_SIZE_ERROR),
    ("spdy/2", False, JUNK, SPDY_PROTOCOL_ERROR),  # control frame of version 0x5ead
    ("spdy/3", False, JUNK, SPDY_PROTOCOL_ERROR),
    ("spdy/3.1", False, JUNK, SPDY_PROTOCOL_ERROR),
    ("spdy/3", False, HTTP1_REQUEST, SPDY_PROTOCOL_ERROR),  # DATA over 1 MiB long
    ("spdy/2", False, HTTP1_REQUEST, SPDY_PROTOCOL_ERROR),
    ("h2", True, H2_DATA_ON_STREAM_0, H2_PROTOCOL_ERROR),
    ("spdy/3.1", True, JUNK, SPDY_PROTOCOL_ERROR),
]


@pytest.mark.parametrize("protocol,tls,garbage,status", GARBAGE_CASES, ids=param_id)
def test_garbage_after_handshake(protocol, tls, garbage, status, logs):
    """Garbage after the handshake: GOAWAY with the protocol's status, the
    connection closed, an info line; another connection with a request in
    flight is served during and after, and so is a new one."""

    async def scenario() -> None:
        async with serving(protocol, tls=tls) as h:
            bystander = await h.bystander()
            client, session = await h.client_and_session()
            client.send(garbage)
            await h.goes_away(client, session, (0, status), bystander)

    run(scenario())
    assert info_lines(logs, protocol), logs.text
    assert not errors(logs), logs.text


def test_h2_garbage_instead_of_preface(logs):
    """No client preface (an HTTP/1.1 request on an h2 prior-knowledge port):
    the connection closes, with GOAWAY PROTOCOL_ERROR or without (RFC 9113
    section 3.4 lets a server omit it); an info line; others are served."""

    async def scenario() -> None:
        async with serving("h2") as h:
            other, waiting = await h.bystander()
            client = await h.connect()
            client.send(HTTP1_REQUEST)
            await client.read_to_eof()
            assert client.goaway in (None, (0, H2_PROTOCOL_ERROR))
            preface = (hf.SettingsFrame, hf.WindowUpdateFrame, hf.GoAwayFrame)
            assert all(isinstance(f, preface) for f in client.frames)
            await h.bystander_served(other, waiting)
            await h.served()

    run(scenario())
    assert info_lines(logs, "h2"), logs.text
    assert not errors(logs), logs.text


# ----------------------------------------------------------------- 2. slow peers


def window_settings(protocol: str, size: int) -> dict[int, int]:
    key = H2_SETTINGS_INITIAL_WINDOW_SIZE
    if protocol != "h2":
        key = SPDY_SETTINGS_INITIAL_WINDOW_SIZE
    return {key: size}


async def leave_mid_download(h: Harness, client: RawClient, session: Session) -> None:
    """``client`` goes during its ``/big`` download: the handler hears
    ``on_connection_close`` and the session ends."""
    client.abort()
    await h.probe.wait("big-closed")
    await h.gone(session)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_zero_window_stream_does_not_hold_up_others(protocol, logs):
    """A peer that never opens the window of a 10 MiB response: that stream
    gets its window's worth and waits (its handler blocked on ``flush()``,
    nothing piling up in the session), while a second stream on the same
    session and another connection are served; when the peer goes, the
    handler hears of it and the session is freed."""
    window = 16384

    async def scenario() -> None:
        async with serving(protocol) as h:
            client = await h.connect()
            # Small stream windows; a large connection (session) window.
            await client.handshake(window_settings(protocol, window), 1 << 20)
            session = h.session_of(client)
            stalled = client.request("/big", auto_window=False)
            await h.probe.wait("big-started")
            hello = client.request("/hello")
            big, small = client.replies[stalled], client.replies[hello]
            await client.read_until(lambda: small.done and len(big.body) >= window)
            assert (small.status, bytes(small.body)) == (200, b"hello")
            assert (big.status, len(big.body), big.done) == (200, window, False)
            await h.served()
            # Still stalled, and holding no more than the handler's one chunk.
            stream = session.streams[stalled]
            assert stream._queued - stream._sent <= CHUNK
            assert session._unflushed <= CHUNK
            assert not small.reset and client.goaway is None
            await leave_mid_download(h, client, session)
            await h.served()

    run(scenario())
    assert not above_info(logs), logs.text


class OneWriteHandler(BaseHandler):
    """``size`` pattern bytes in one write: more than the write pump's budget."""

    def get(self) -> None:
        self.write(server_util.pattern(int(self.get_argument("size"))))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_large_write_to_a_peer_with_open_windows(protocol, logs):
    """A peer that opens every window at the start and sends no WINDOW_UPDATE
    gets a 4 MiB response written at once, over many passes of the write
    pump (each limited to ``write_buffer_size``): each pass that the socket
    takes whole (one ``sendmsg``) must start the next, for no frame from the
    peer will."""
    size = 4 * 1024 * 1024
    params = SessionParameters(write_buffer_size=128 * 1024)

    async def scenario() -> None:
        routes = [*ROUTES, (r"/one-write", OneWriteHandler)]
        async with serving(protocol, params=params, routes=routes) as h:
            client = await h.connect()
            default_window = 65535 if protocol == "h2" else 65536
            await client.handshake(
                window_settings(protocol, MAX_WINDOW), MAX_WINDOW - default_window
            )
            stream_id = client.request(f"/one-write?size={size}", auto_window=False)
            reply = client.replies[stream_id]
            await client.read_until(lambda: reply.done)
            assert reply.status == 200
            assert bytes(reply.body) == server_util.pattern(size)

    run(scenario())
    assert not above_info(logs), logs.text


class BigHeaderHandler(BaseHandler):
    """A response with a 70,000-byte header: more than SPDY/2's 16-bit
    lengths can carry (HTTP/1.1, h2 and SPDY/3 carry it)."""

    def get(self) -> None:
        self.set_header("X-Big", "v" * 70000)
        self.write("ok")


def test_a_head_spdy2_cannot_carry_fails_its_stream_alone(logs):
    """SPDY/2 cannot carry the head: that stream is reset (INTERNAL_ERROR),
    with a warning naming it; a request beside it on the same session is
    served. (The encoder's error used to leave the write pump: the session
    hung, and said so at ERROR on every pass.)"""

    async def scenario() -> None:
        routes = [*ROUTES, (r"/big-header", BigHeaderHandler)]
        async with serving("spdy/2", routes=routes) as h:
            client = await h.connect()
            await client.handshake()
            big = client.replies[client.request("/big-header")]
            hello = client.replies[client.request("/hello")]
            await client.read_until(lambda: big.done and hello.done)
            assert (big.status, big.reset) == (None, SPDY_INTERNAL_ERROR)
            assert (hello.status, bytes(hello.body)) == (200, b"hello")

    run(scenario())
    assert not errors(logs), logs.text
    (warning,) = [r.getMessage() for r in above_info(logs)]
    assert "head not sent" in warning and "16-bit lengths" in warning


# A control budget the PING floods below cannot spend: they prove the pause
# for a full write buffer, which the budget's GOAWAY would otherwise forestall
# (test_attacks.py::test_control_frame_flood tests that).
STALL_PARAMS = SessionParameters(write_buffer_size=256 * 1024, control_burst=100_000)
STALL_SLACK = 64 * 1024 + STALL_PARAMS.chunk_size  # frame headers, a read's answers


async def stall(h: Harness, meter: WriteMeter) -> tuple[RawClient, Session, int]:
    """A peer that grants every window, asks for 10 MiB and stops reading its
    socket; returns once the server holds a full write buffer for it."""
    client = await h.connect(rcvbuf=16 * 1024, limit=16 * 1024)
    default_window = 65535 if h.protocol == "h2" else 65536
    await client.handshake(
        window_settings(h.protocol, MAX_WINDOW), MAX_WINDOW - default_window
    )
    session = h.session_of(client)
    wbs = session.params.write_buffer_size
    full = meter.expect(session, lambda s: s._unflushed >= wbs)
    stream_id = client.request("/big")  # and never read again
    await asyncio.wait_for(full, TIMEOUT)
    return client, session, stream_id


def stall_serving(protocol: str) -> contextlib.AbstractAsyncContextManager[Harness]:
    """`serving` for `stall`: a small write buffer, small socket buffers."""
    return serving(protocol, params=STALL_PARAMS, sndbuf=16 * 1024)


async def flood_pings(client: RawClient, session: Session, meter: WriteMeter) -> None:
    """2000 PINGs from the stalled ``client``: their answers cannot be sent,
    and the session must stop reading (if it has not already: the kernel may
    take part of the full write buffer after `stall`, and the session resumes
    only once half of it has gone)."""
    paused = meter.expect(session, lambda s: s._drained is not None and not s._closing)
    client.send(client.ping_frames(2000))
    await asyncio.wait_for(paused, TIMEOUT)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_peer_that_stops_reading(protocol, logs, monkeypatch):
    """A peer that stops reading its socket mid-response (and then floods
    PINGs): the session buffers no more than ``write_buffer_size`` (plus a
    read's worth of answers) and stops reading; other connections are served
    all along."""
    meter = WriteMeter(monkeypatch)

    async def scenario() -> None:
        async with stall_serving(protocol) as h:
            other, waiting = await h.bystander()
            client, session, stream_id = await stall(h, meter)
            await h.served()
            await flood_pings(client, session, meter)
            await h.served()
            await h.bystander_served(other, waiting)
            stream = session.streams[stream_id]
            assert stream._queued - stream._sent <= CHUNK
            wbs = session.params.write_buffer_size
            assert meter.peak[session] <= wbs + STALL_SLACK
            assert session._unflushed <= wbs + STALL_SLACK

    run(scenario())
    assert not errors(logs), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_peer_that_stops_reading_then_leaves(protocol, logs, monkeypatch):
    """The non-reading, PING-flooding peer of the previous test disconnects:
    its handler hears ``on_connection_close`` and the session is freed."""
    meter = WriteMeter(monkeypatch)

    async def scenario() -> None:
        async with stall_serving(protocol) as h:
            client, session, _ = await stall(h, meter)
            await flood_pings(client, session, meter)
            await leave_mid_download(h, client, session)
            await h.served()

    run(scenario())
    assert not errors(logs), logs.text


def test_peer_that_stops_reading_then_leaves_quietly(logs, monkeypatch):
    """Control for the test above: a non-reading peer that sends nothing more
    (the read loop still waits on the socket) is noticed when it leaves."""
    meter = WriteMeter(monkeypatch)

    async def scenario() -> None:
        async with stall_serving("h2") as h:
            client, session, _ = await stall(h, meter)
            await leave_mid_download(h, client, session)
            await h.served()

    run(scenario())
    assert not errors(logs), logs.text


# ----------------------------------------------------------------- 3. disconnects


async def leave_mid_upload(h: Harness) -> None:
    """A peer sends the headers of a POST to a streaming handler, no body,
    and goes: the handler hears ``on_connection_close``, the session ends."""
    client, session = await h.client_and_session()
    client.request("/upload", method="POST", end=False)
    await h.probe.wait("upload-started")
    client.abort()
    await h.probe.wait("upload-closed")
    await h.gone(session)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_disconnect_mid_request(protocol, logs):
    """Headers of a POST to a streaming handler, no body, then the peer goes:
    the handler's ``on_connection_close`` runs, the session is freed, nothing
    is logged above info."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            await leave_mid_upload(h)
            await h.served()

    run(scenario())
    assert not above_info(logs), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_disconnect_mid_request_closes_handler_once(protocol, logs):
    """As over HTTP/1.1, a handler hears ``on_connection_close`` once."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            await leave_mid_upload(h)
            assert h.probe.counts["upload-closed"] == 1

    run(scenario())


@pytest.mark.parametrize(
    "protocol,tls", [(p, False) for p in PROTOCOLS] + [("h2", True)], ids=param_id
)
def test_disconnect_mid_response(protocol, tls, logs):
    """The peer goes in the middle of a 10 MiB response: the handler's
    ``flush()`` fails, its ``on_connection_close`` runs, the session is
    freed, nothing is logged above info."""

    async def scenario() -> None:
        async with serving(protocol, tls=tls) as h:
            client, session = await h.client_and_session()
            stream_id = client.request("/big")
            reply = client.replies[stream_id]
            await client.read_until(lambda: len(reply.body) >= 100_000)
            client.abort()
            await h.probe.wait("big-closed")
            await h.probe.wait("big-write-failed")
            await h.gone(session)
            await h.served()
            assert h.probe.counts["big-closed"] == 1

    run(scenario())
    assert not above_info(logs), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_peer_goaway_with_request_in_flight(protocol, logs):
    """The peer says GOAWAY while its request is being handled (it will open
    no more streams): the request in flight is still answered, then the
    server closes the connection; nothing is logged above info."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            client, session = await h.client_and_session()
            stream_id = client.request("/wait")
            await h.probe.wait("wait-started")
            client.send(client.goaway_frame())
            await client.read_until(lambda: client.goaway is not None)
            h.probe.release.set()
            reply = client.replies[stream_id]
            await client.read_until(lambda: reply.done)
            assert (reply.status, bytes(reply.body)) == (200, b"released")
            await client.read_to_eof()
            await h.gone(session)

    run(scenario())
    assert not above_info(logs), logs.text


class DrainHandler(BaseHandler):
    """Makes its session say GOAWAY (graceful), then answers."""

    def get(self) -> None:
        self.request.connection.session.start_draining()
        self.write(b"drained")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_requests_held_when_we_say_goaway_are_served(protocol, logs):
    """Ten requests in one write while another connection is open: the
    session feeds the read to its core in slices and starts each slice's
    requests a few per IOLoop pass (``session.START_BATCH``), so the first
    to run makes the server say GOAWAY while others are still held. Those
    the GOAWAY names (received before it) are all answered; those after it
    were never processed (h2: REFUSED_STREAM; SPDY: ignored, as its GOAWAY
    allows)."""

    async def scenario() -> None:
        routes = [*ROUTES, (r"/drain", DrainHandler)]
        async with serving(protocol, routes=routes) as h:
            bystander = await h.bystander()
            client, session = await h.client_and_session()
            ids = [client.new_stream() for _ in range(10)]
            fields = request_fields("/drain")
            client.send(b"".join(client.headers_frame(i, fields, True) for i in ids))

            def named() -> list[int]:
                assert client.goaway is not None
                return [i for i in ids if i <= client.goaway[0]]

            await client.read_until(
                lambda: (
                    client.goaway is not None
                    and all(client.replies[i].done for i in named())
                )
            )
            for stream_id in named():
                reply = client.replies[stream_id]
                assert (reply.status, reply.reset) == (200, None), stream_id
                assert bytes(reply.body) == b"drained"
            for stream_id in ids[len(named()) :]:
                assert client.replies[stream_id].status is None
            await client.read_to_eof()
            await h.gone(session)
            await h.bystander_served(*bystander)

    run(scenario())
    assert not above_info(logs), logs.text


@pytest.mark.parametrize("company", ["alone", "bystander"])
@pytest.mark.parametrize("protocol", SPDY)
def test_a_costly_frame_gives_other_connections_turns(protocol, company, logs):
    """A header block that costs many times ``fair_share`` to inflate (900 KB
    of values in 2 KB; over the limit, so it is drained and refused) while
    another connection is open: the session then lets one IOLoop pass go by
    per ``fair_share`` the read took (``session.MAX_OVERRUN_TURNS`` at most)
    before it reads again, where after an ordinary read it reads at once.
    A connection alone lets one pass go by, so that others can be accepted.
    (A share of 50 us, set here whatever the default: the inflate takes
    about 40 of them here, and still more than 5 on a machine several times
    faster. The frame is handed to the core whole, as to a peer whose
    earlier bytes were cheap: in the small slices of a new peer the core
    inflates it as it comes, a slice's worth at a time.)"""
    params = SessionParameters(fair_share=50e-6)

    async def scenario() -> None:
        async with serving(protocol, params=params) as h:
            bystander = await h.bystander() if company == "bystander" else None
            client, session = await h.established()
            assert isinstance(client, SPDYRawClient)
            session._slice_size = lambda suspect=False: 1 << 20  # type: ignore[method-assign]
            passes = PassCounter()
            refused_at: list[int] = []
            read_at: list[int] = []
            read_again = asyncio.Event()
            receive = session.core.receive_data
            read_bytes = session.stream.read_bytes

            def receive_and_note(data: bytes) -> Any:
                events = receive(data)
                if any(isinstance(e, spdy_events.StreamReset) for e in events):
                    refused_at.append(passes.count)
                return events

            def read_and_note(*args: Any, **kwargs: Any) -> Any:
                if refused_at and not read_at:
                    read_at.append(passes.count)
                    read_again.set()
                return read_bytes(*args, **kwargs)

            session.core.receive_data = receive_and_note  # type: ignore[method-assign]
            session.stream.read_bytes = read_and_note  # type: ignore[method-assign]
            stream_id = client.new_stream()
            block = client.header_block(request_fields() + big_fields(900_000))
            client.send(client.syn_stream(stream_id, block, True))
            await client.read_until(lambda: client.replies[stream_id].done)
            await asyncio.wait_for(read_again.wait(), TIMEOUT)
            passes.stop()
            assert client.replies[stream_id].reset == too_large(protocol)
            least = 5 if bystander else 1
            assert read_at[0] - refused_at[0] >= least, (refused_at, read_at)
            if bystander:
                await h.bystander_served(*bystander)

    run(scenario())
    assert not above_info(logs), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_light_read_is_not_queued_behind_costly_input(protocol, logs):
    """While the process's `InputGate` holds costly input back (a slice
    waiting behind a debt of ten seconds), a read of more than one slice but
    at most ``LIGHT_READ_SLICES`` (a GET and two PINGs) is handed to the core
    at once, and the GET answered: an honest request does not wait its turn
    behind the others' work."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            bystander = await h.bystander()  # the session is not alone
            client, session = await h.established()
            gate = InputGate.current()
            held_back = asyncio.ensure_future(gate.turn(session.params.fair_share))
            await asyncio.sleep(0)
            gate.charge(10.0)
            stream_id = client.new_stream()
            data = client.headers_frame(stream_id, request_fields(), True)
            data += client.ping_frames(2)
            slice_size = max(MIN_SLICE, -(-len(data) // LIGHT_READ_SLICES))
            assert slice_size < len(data) <= LIGHT_READ_SLICES * slice_size
            session._byte_cost = session.params.fair_share / slice_size
            client.send(data)
            reply = client.replies[stream_id]
            await client.read_until(lambda: reply.done)
            assert reply.status == 200
            assert not held_back.done()
            held_back.cancel()
            await h.bystander_served(*bystander)

    run(scenario())
    assert not above_info(logs), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_new_connection_takes_turns_until_its_first_request_starts(protocol, logs):
    """A session's reads are costly input, fed in turns at the `InputGate`,
    until its first request has started; an established session's light
    read is handed to the core at once. (Many new connections that each send
    one request, all at once, then take turns with those already served
    rather than filling an IOLoop pass.)"""

    async def scenario() -> None:
        async with serving(protocol) as h:
            bystander = await h.bystander()
            old_client, old_session = await h.established()
            new_client, new_session = await h.client_and_session()
            in_turns = {old_session: 0, new_session: 0}
            for session in in_turns:
                session._byte_cost = 1e-9  # any GET is one light read
                session._receive_fairly = counted(  # type: ignore[method-assign]
                    session._receive_fairly, in_turns, session
                )
            assert (await new_client.get("/hello")).status == 200
            assert in_turns[new_session] >= 1
            in_turns[new_session] = 0
            assert (await old_client.get("/hello")).status == 200
            new_session._byte_cost = 1e-9
            assert (await new_client.get("/hello")).status == 200
            assert in_turns == {old_session: 0, new_session: 0}
            await h.bystander_served(*bystander)

    run(scenario())
    assert not above_info(logs), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_new_connection_is_set_up_in_its_turn(protocol, logs):
    """A new connection's session is built in a turn at the `InputGate`,
    like costly input: until the turn comes, the connection has no session
    (and no SETTINGS), while an established connection is served."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            old_client, _ = await h.established()
            held = HeldGate()
            new_client = await h.connect()
            new_client.send(new_client.preface({}, 0))
            await held.waiting()
            held.held = False  # the established connection's turns pass
            assert (await old_client.get("/hello")).status == 200
            assert new_client.local_port not in h.session_ports()
            held.release()
            await new_client.read_until(lambda: new_client.settings_received)
            assert (await new_client.get("/hello")).status == 200

    run(scenario())
    assert not above_info(logs), logs.text


class HeldGate:
    """Holds every turn at the process's `InputGate` while ``held`` (a
    connection being set up, a new session's reads) until `release`;
    ``asked`` is set when a turn waits."""

    def __init__(self) -> None:
        self.gate = InputGate.current()
        self.turn = self.gate.turn
        self.held = True
        self.asked, self.given = asyncio.Event(), asyncio.Event()
        self.gate.turn = self.held_turn  # type: ignore[method-assign]

    async def held_turn(self, share: float) -> None:
        if self.held:
            self.asked.set()
            await self.given.wait()
        await self.turn(share)

    async def waiting(self) -> None:
        await asyncio.wait_for(self.asked.wait(), TIMEOUT)

    def release(self) -> None:
        self.gate.turn = self.turn  # type: ignore[method-assign]
        self.given.set()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_close_all_connections_closes_one_waiting_to_be_set_up(protocol, logs):
    """`SPDYServer.close_all_connections` while a new connection waits for
    its turn to be set up: it is closed (it has no request to finish), and
    when the turn comes no session is built for it."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            held = HeldGate()
            client = await h.connect()
            client.send(client.preface({}, 0))
            await held.waiting()
            assert len(h.server._arriving) == 1
            await asyncio.wait_for(h.server.close_all_connections(), TIMEOUT)
            await client.read_to_eof()
            held.release()
            for _ in range(MAX_PASSES):  # its turn, then the handler's end
                await asyncio.sleep(0)
                if not h.server._arriving:
                    break
            assert not client.settings_received
            assert not h.server._arriving and not h.server._connections

    run(scenario())
    assert not above_info(logs), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_preface_waiting_its_turn_is_not_missing(protocol, logs):
    """``handshake_timeout`` ends while the peer's preface, which came in
    time, still waits its turn at the `InputGate`: the session does not
    close for want of a preface; it waits the timeout again, and serves
    the peer once its turn comes."""

    async def scenario() -> None:
        params = SessionParameters(handshake_timeout=0.2)
        async with serving(protocol, params=params) as h:
            bystander = await h.bystander()  # the session is not alone
            client = await h.connect()
            # Not reading the server's SETTINGS yet: the raw h2 client would
            # acknowledge them before its preface.
            for _ in range(MAX_PASSES):
                if client.local_port in h.session_ports():
                    break
                await asyncio.sleep(0)
            session = h.session_of(client)
            timed_out = asyncio.Event()
            no_preface = session._no_preface

            def noted() -> None:
                timed_out.set()
                no_preface()

            session._no_preface = noted  # type: ignore[method-assign]
            held = HeldGate()
            client.send(client.preface({}, 0) + client.ping_frames(1))
            await held.waiting()
            await asyncio.wait_for(timed_out.wait(), TIMEOUT)
            assert not session.stream.closed()
            held.release()
            assert (await client.get("/hello")).status == 200
            await h.bystander_served(*bystander)

    run(scenario())
    assert not above_info(logs), logs.text


def counted(
    receive_fairly: Callable[[bytes], Awaitable[None]],
    counts: dict[Session, int],
    session: Session,
) -> Callable[[bytes], Awaitable[None]]:
    """``session._receive_fairly``, counting its calls in ``counts``."""

    async def receive(data: bytes) -> None:
        counts[session] += 1
        await receive_fairly(data)

    return receive


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_fair_share_still_serves(protocol, logs):
    """``fair_share=0`` (the smallest slices, no share to count turns in)
    with another connection open: requests are still answered."""

    async def scenario() -> None:
        async with serving(protocol, params=SessionParameters(fair_share=0.0)) as h:
            bystander = await h.bystander()
            client, _ = await h.client_and_session()
            replies = [client.replies[client.request("/hello")] for _ in range(3)]
            await client.read_until(lambda: all(r.done for r in replies))
            assert [r.status for r in replies] == [200] * 3
            await h.bystander_served(*bystander)

    run(scenario())
    assert not above_info(logs), logs.text


class PassCounter:
    """Counts IOLoop passes (a callback that schedules itself again)."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        if self._running:
            self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


# ----------------------------------------------------------------- 4. header bombs


def big_fields(size: int) -> list[tuple[str, str]]:
    """``size`` bytes of header values, in fields of 50 KB (SPDY/2 lengths
    are 16-bit)."""
    count = -(-size // 50_000)
    return [(f"x-bomb-{n}", "a" * (size // count)) for n in range(count)]


def bomb_fields(kind: str) -> list[tuple[str, str]]:
    if kind == "value":  # 200 KB of values: inflates past 64 KiB
        return big_fields(200_000)
    if kind == "fields":  # 300 small fields: over max_header_fields
        return [(f"x-field-{n}", "v") for n in range(300)]
    raise ValueError(kind)


def request_fields(path: str = "/hello") -> list[tuple[str, str]]:
    return [
        (":method", "GET"),
        (":path", path),
        (":scheme", "http"),
        (":authority", "localhost"),
    ]


@pytest.mark.parametrize("kind", ["value", "fields"])
@pytest.mark.parametrize("protocol", SPDY)
def test_spdy_header_bomb_refuses_stream(protocol, kind, logs):
    """A SYN_STREAM whose header block inflates past the limit: RST_STREAM
    FRAME_TOO_LARGE (SPDY/2: PROTOCOL_ERROR); the zlib state stays in step, so
    the next SYN_STREAM on the same session is served."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            client = await h.connect()
            await client.handshake()
            assert isinstance(client, SPDYRawClient)
            block = client.header_block(request_fields() + bomb_fields(kind))
            assert len(block) < 16384  # a bomb: small on the wire
            bombed = client.replies[client.new_stream()]
            client.send(client.syn_stream(1, block, True))
            reply = await client.get("/hello")
            await client.read_until(lambda: bombed.done)
            assert (bombed.reset, bombed.status) == (too_large(protocol), None)
            assert (reply.status, bytes(reply.body)) == (200, b"hello")
            reply = await client.get("/hello")  # and again: still in step
            assert (reply.status, bytes(reply.body)) == (200, b"hello")
            assert client.goaway is None

    run(scenario())
    assert not errors(logs), logs.text


@pytest.mark.parametrize("protocol", ["spdy/3"])
def test_spdy_header_bomb_logged_at_info(protocol, logs):
    """The refused bomb leaves an info line naming the protocol."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            client = await h.connect()
            await client.handshake()
            assert isinstance(client, SPDYRawClient)
            block = client.header_block(request_fields() + bomb_fields("value"))
            bombed = client.replies[client.new_stream()]
            client.send(client.syn_stream(1, block, True))
            await client.get("/hello")
            await client.read_until(lambda: bombed.done)
            assert bombed.reset == SPDY_FRAME_TOO_LARGE

    run(scenario())
    assert info_lines(logs, protocol), logs.text


@pytest.mark.parametrize("protocol", SPDY)
def test_spdy_absurd_header_bomb_ends_session(protocol, logs):
    """A header block inflating past ``max_inflate_size`` (1 MiB) costs too
    much to follow: GOAWAY PROTOCOL_ERROR, an info line, others served."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            bystander = await h.bystander()
            client, session = await h.client_and_session()
            assert isinstance(client, SPDYRawClient)
            fields = request_fields() + big_fields(4_000_000)
            block = client.header_block(fields)
            assert len(block) < 65536
            client.send(client.syn_stream(1, block, True))
            await h.goes_away(client, session, (0, SPDY_PROTOCOL_ERROR), bystander)

    run(scenario())
    assert info_lines(logs, protocol), logs.text
    assert not errors(logs), logs.text


@pytest.mark.parametrize("kind", ["literal", "indexed"])
def test_h2_header_bomb(kind, logs):
    """An h2 header list over MAX_HEADER_LIST_SIZE (64 KiB): a 100 KB literal
    over HEADERS and CONTINUATION frames, or an HPACK bomb (one 3 KB header
    put in the dynamic table, then referenced 100 times in a few hundred
    bytes). h2's answer is GOAWAY ENHANCE_YOUR_CALM (its DenialOfServiceError);
    the server logs it at info and keeps serving everyone else."""

    async def scenario() -> None:
        async with serving("h2") as h:
            bystander = await h.bystander()
            client, session = await h.client_and_session()
            assert isinstance(client, H2RawClient)
            last_good = 0
            if kind == "literal":
                fields = request_fields() + [("x-bomb", "a" * 100_000)]
            else:
                big = [("x-big", "b" * 3000)]
                reply = await client.get_with(request_fields() + big)
                assert (reply.status, bytes(reply.body)) == (200, b"hello")
                last_good = 1
                fields = request_fields() + big * 100
            block = client.header_block(fields)
            if kind == "indexed":
                assert len(block) < 1000
            client.send(client.block_frames(client.new_stream(), block, True))
            await h.goes_away(
                client, session, (last_good, H2_ENHANCE_YOUR_CALM), bystander
            )

    run(scenario())
    assert info_lines(logs, "h2"), logs.text
    assert not errors(logs), logs.text


@pytest.mark.parametrize("protocol", ["h2", "spdy/3"])
def test_configured_header_limit(protocol, logs):
    """``SessionParameters(max_header_size=8192)``: a 16 KB header list is
    refused (h2: GOAWAY ENHANCE_YOUR_CALM; SPDY: RST_STREAM FRAME_TOO_LARGE)."""
    params = SessionParameters(max_header_size=8192)

    async def scenario() -> None:
        async with serving(protocol, params=params) as h:
            client = await h.connect()
            await client.handshake()
            fields = request_fields() + [("x-big", "c" * 16_000)]
            if protocol == "h2":
                # h2 answers an oversized header list for the whole connection.
                with contextlib.suppress(AssertionError):
                    await client.get_with(fields)
                assert client.goaway == (0, H2_ENHANCE_YOUR_CALM)
                other = await h.connect()
                await other.handshake()
                assert (await other.get("/hello")).status == 200
            else:
                reply = await client.get_with(fields)
                assert reply.reset == SPDY_FRAME_TOO_LARGE, reply
                assert (await client.get("/hello")).status == 200

    run(scenario())
    assert not errors(logs), logs.text


# ----------------------------------------------------------------- 5. handler errors


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_handler_exception_resets_only_its_stream(protocol, logs):
    """A handler raising in ``data_received``: its stream gets RST_STREAM
    INTERNAL_ERROR, the exception is logged by tornado.application, and the
    other streams of the session (a GET, a 300 KB download, an upload)
    complete; the failed handler is released by ``on_connection_close``."""
    size = 300_000

    async def scenario() -> None:
        async with serving(protocol) as h:
            client = await h.connect()
            await client.handshake()
            boom = client.request("/boom-upload", "POST", body=b"x" * 1000)
            hello = client.request("/hello")
            big = client.request(f"/big?size={size}")
            upload = client.request("/upload", "POST", body=b"y" * 1000)
            replies = client.replies
            await client.read_until(lambda: all(r.done for r in replies.values()))
            assert replies[boom].reset == internal_error(protocol)
            assert (replies[hello].status, bytes(replies[hello].body)) == (
                200,
                b"hello",
            )
            assert replies[big].status == 200 and replies[big].ended
            assert bytes(replies[big].body) == server_util.chunked_body(size)
            assert (replies[upload].status, bytes(replies[upload].body)) == (
                200,
                b"1000",
            )
            assert client.goaway is None
            await h.probe.wait("boom-upload-closed")
            assert (await client.get("/hello")).status == 200

    run(scenario())
    deliberate = [
        r for r in logs.records if r.name == "tornado.application" and r.exc_info
    ]
    assert deliberate and isinstance(deliberate[0].exc_info[1], Deliberate)
    assert not errors(logs, deliberate=True), logs.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_handler_exception_mid_response_resets_its_stream(protocol, logs):
    """A handler that promised 100000 bytes raises after sending 1000: Tornado
    can only call ``finish()``; the short response must not end as if
    complete (HTTP/1.1 closes the connection) but be reset INTERNAL_ERROR,
    while the other streams complete."""

    async def scenario() -> None:
        async with serving(protocol) as h:
            client = await h.connect()
            await client.handshake()
            boom = client.request("/boom-response")
            hello = client.request("/hello")
            replies = client.replies
            await client.read_until(lambda: all(r.done for r in replies.values()))
            assert (replies[hello].status, bytes(replies[hello].body)) == (
                200,
                b"hello",
            )
            assert client.goaway is None
            assert (await client.get("/hello")).status == 200
            assert len(replies[boom].body) == 1000
            assert replies[boom].reset == internal_error(protocol), replies[boom]

    run(scenario())
    # Tornado itself logs "Cannot send error response after headers written"
    # (and over HTTP/1.1 "Failed to flush partial response") at error level.
    unexpected = [
        r
        for r in errors(logs, deliberate=True)
        if "after headers written" not in r.getMessage()
        and "partial response" not in r.getMessage()
    ]
    assert not unexpected, logs.text
