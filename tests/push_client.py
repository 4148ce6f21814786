"""A small asyncio client that accepts server pushes, for tests.

`tornado_spdy.client.SPDYClient` refuses pushes, so push tests drive a protocol
core directly over a socket: the ``h2`` library (client side, ENABLE_PUSH on or
off) for h2, and our own `tornado_spdy.spdy.SPDYConnection` (client side) for
SPDY/2, SPDY/3 and SPDY/3.1. Both give the same event names
(``PushedStreamReceived``, ``ResponseReceived``, ``DataReceived`` ...), so one
`PushClient` serves all four protocols.

Besides the events, every frame the server sent is recorded as it came off the
wire (`WireFrame`, parsed here independently of either core), so that tests can
check frame order: a push's PUSH_PROMISE / SYN_STREAM before its parent's DATA,
pushed stream ids even and increasing, END_STREAM order under priorities.

Every wait is bounded (`PushClient.wait`); a broken connection fails whatever
is waited on instead of hanging.

Usage::

    client = await PushClient.connect(port, "spdy/3.1")
    page = client.request("/page")
    await client.wait(page.ended)
    for push in page.pushes:
        await client.wait(push.ended)
        print(push.path, push.status, len(push.body))
    await client.close()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ssl
import struct
import urllib.parse
from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from tornado_spdy import spdy

MULTIPLEXED = ("h2", "spdy/3.1", "spdy/3", "spdy/2")

#: RST_STREAM codes by family.
CANCEL = {"h2": 0x8, "spdy": spdy.StatusCode.CANCEL}
REFUSED_STREAM = {"h2": 0x7, "spdy": spdy.StatusCode.REFUSED_STREAM}

DEFAULT_TIMEOUT = 20.0

Headers = list[tuple[bytes, bytes]]

# ------------------------------------------------------------------ wire frames

H2_TYPES = {
    0: "DATA",
    1: "HEADERS",
    2: "PRIORITY",
    3: "RST_STREAM",
    4: "SETTINGS",
    5: "PUSH_PROMISE",
    6: "PING",
    7: "GOAWAY",
    8: "WINDOW_UPDATE",
    9: "CONTINUATION",
}
SPDY_TYPES = {
    1: "SYN_STREAM",
    2: "SYN_REPLY",
    3: "RST_STREAM",
    4: "SETTINGS",
    5: "NOOP",
    6: "PING",
    7: "GOAWAY",
    8: "HEADERS",
    9: "WINDOW_UPDATE",
    10: "CREDENTIAL",
}
_SPDY_STREAM_FRAMES = {1, 2, 3, 8, 9}
H2_END_STREAM = 0x1
H2_PADDED = 0x8
SPDY_FIN = 0x1


@dataclasses.dataclass
class WireFrame:
    """One frame as received: its type name, stream id and flags.

    ``promised_id`` is the new stream of an h2 PUSH_PROMISE; ``associated_id``
    and ``priority`` are those of a SPDY SYN_STREAM (a push when
    ``associated_id`` is not 0).
    """

    type: str
    stream_id: int
    flags: int
    length: int
    promised_id: int = 0
    associated_id: int = 0
    priority: int | None = None

    @property
    def end_stream(self) -> bool:
        if self.type in ("DATA", "HEADERS", "SYN_STREAM", "SYN_REPLY"):
            return bool(self.flags & 0x1)
        return False

    @property
    def is_push(self) -> bool:
        """A PUSH_PROMISE, or a SPDY SYN_STREAM that opens a pushed stream."""
        return self.type == "PUSH_PROMISE" or (
            self.type == "SYN_STREAM" and self.associated_id != 0
        )

    @property
    def pushed_id(self) -> int:
        return self.promised_id if self.type == "PUSH_PROMISE" else self.stream_id

    @property
    def parent_id(self) -> int:
        return self.stream_id if self.type == "PUSH_PROMISE" else self.associated_id


class WireScanner:
    """Splits the server's byte stream into `WireFrame` headers, independently
    of the protocol core (h2: 9-byte frame headers; SPDY: 8-byte headers and
    the stream id at the start of a stream control frame's payload)."""

    def __init__(self, family: str, spdy_version: int = 3):
        self.family = family
        self.spdy_version = spdy_version
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[WireFrame]:
        self._buffer += data
        frames = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> WireFrame | None:
        buf = self._buffer
        if self.family == "h2":
            if len(buf) < 9:
                return None
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                return None
            kind, flags = buf[3], buf[4]
            stream_id = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(buf[9 : 9 + length])
            del buf[: 9 + length]
            frame = WireFrame(
                H2_TYPES.get(kind, f"UNKNOWN({kind})"), stream_id, flags, length
            )
            if frame.type == "PUSH_PROMISE":
                offset = 1 if flags & H2_PADDED else 0
                frame.promised_id = (
                    int.from_bytes(payload[offset : offset + 4], "big") & 0x7FFFFFFF
                )
            return frame
        if len(buf) < 8:
            return None
        first, second = struct.unpack_from(">II", buf)
        flags, length = second >> 24, second & 0xFFFFFF
        if len(buf) < 8 + length:
            return None
        payload = bytes(buf[8 : 8 + length])
        del buf[: 8 + length]
        if not first & 0x80000000:
            return WireFrame("DATA", first & 0x7FFFFFFF, flags, length)
        kind = first & 0xFFFF
        frame = WireFrame(SPDY_TYPES.get(kind, f"UNKNOWN({kind})"), 0, flags, length)
        if kind in _SPDY_STREAM_FRAMES and len(payload) >= 4:
            frame.stream_id = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
        if kind == 1 and len(payload) >= 9:
            frame.associated_id = int.from_bytes(payload[4:8], "big") & 0x7FFFFFFF
            bits = 2 if self.spdy_version == 2 else 3
            frame.priority = payload[8] >> (8 - bits)
        return frame


# --------------------------------------------------------------------- streams


@dataclasses.dataclass(eq=False)
class Exchange:
    """One stream seen by the client: a request of ours or a push."""

    client: PushClient
    stream_id: int
    request_headers: Headers
    parent_id: int | None = None  # for a push: the stream it was promised on
    priority: int | None = None  # a SPDY push's priority
    headers: Headers | None = None  # the final response head
    informational: list[Headers] = dataclasses.field(default_factory=list)
    trailers: Headers | None = None
    chunks: list[bytes] = dataclasses.field(default_factory=list)
    reset_code: int | None = None
    pushes: list[Exchange] = dataclasses.field(default_factory=list)
    head: asyncio.Future[None] = dataclasses.field(init=False)
    first_data: asyncio.Future[None] = dataclasses.field(init=False)
    ended: asyncio.Future[None] = dataclasses.field(init=False)
    closed: asyncio.Future[None] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.head = loop.create_future()
        self.first_data = loop.create_future()
        self.ended = loop.create_future()  # END_STREAM (an error if reset)
        self.closed = loop.create_future()  # END_STREAM or reset

    def __repr__(self) -> str:
        return (
            f"<Exchange {self.stream_id} {self.path} status={self.status} "
            f"body={len(self.body)} reset={self.reset_code} parent={self.parent_id}>"
        )

    @property
    def is_push(self) -> bool:
        return self.parent_id is not None

    @property
    def path(self) -> str:
        """The request path (a SPDY/2 push's absolute URL reduced to its
        path and query)."""
        raw = dict(self.request_headers).get(b":path", b"").decode("latin1")
        if "://" in raw:
            parts = urllib.parse.urlsplit(raw)
            raw = parts.path + ("?" + parts.query if parts.query else "")
        return raw

    @property
    def status(self) -> int | None:
        if self.headers is None:
            return None
        value = dict(self.headers).get(b":status")
        return int(value) if value is not None else None

    def header(self, name: str, default: str | None = None) -> str | None:
        """A response header (joined with ", " if repeated)."""
        values = self.header_list(name)
        return ", ".join(values) if values else default

    def header_list(self, name: str) -> list[str]:
        key = name.lower().encode("latin1")
        values: list[str] = []
        for n, v in self.headers or ():
            if n == key:
                # SPDY joins repeated values with NUL in one header.
                values.extend(v.decode("latin1").split("\0"))
        return values

    def request_header(self, name: str) -> str | None:
        key = name.lower().encode("latin1")
        for n, v in self.request_headers:
            if n == key:
                return v.decode("latin1")
        return None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def _resolve(
        self, future: asyncio.Future[None], exc: BaseException | None = None
    ) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warnings


class StreamResetError(Exception):
    """The stream was reset instead of ending."""


class PushClient:
    """One h2 or SPDY connection from the client side, pushes accepted.

    :arg protocol: ``"h2"``, ``"spdy/3.1"``, ``"spdy/3"`` or ``"spdy/2"``.
    :arg enable_push: h2: SETTINGS_ENABLE_PUSH; SPDY: when False the core
        refuses every push with RST_STREAM REFUSED_STREAM.
    :arg window: our receive window per stream (advertised); by default the
        protocol's (64 KiB).
    :arg session_window: our connection receive window (h2, SPDY/3.1); by
        default the protocol's (64 KiB).
    :arg auto_ack: give received DATA back to flow control at once (else
        `ack_all` does it).
    :arg max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS we send: how
        many pushed streams the server may have open at once.
    """

    def __init__(
        self,
        protocol: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        authority: str,
        scheme: str,
        enable_push: bool = True,
        window: int | None = None,
        session_window: int | None = None,
        auto_ack: bool = True,
        max_concurrent_streams: int = 1000,
    ):
        if protocol not in MULTIPLEXED:
            raise ValueError(f"not a multiplexed protocol: {protocol!r}")
        self.protocol = protocol
        self.family = "h2" if protocol == "h2" else "spdy"
        self.reader = reader
        self.writer = writer
        self.authority = authority
        self.scheme = scheme
        self.auto_ack = auto_ack
        self.max_concurrent_streams = max_concurrent_streams
        self.conn: Any = self._make_core(enable_push, window, session_window)
        self._unacked: dict[int, int] = collections.defaultdict(int)
        version = 2 if protocol == "spdy/2" else 3
        self._scanner = WireScanner(self.family, version)
        self.wire: list[WireFrame] = []
        self.events: list[Any] = []
        self.streams: dict[int, Exchange] = {}
        self.exchanges: list[Exchange] = []  # our requests, in order
        self.pushes: list[Exchange] = []  # every push, in order of promise
        self.goaway: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self._next_ping = 1
        self._read_task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        self._reset_by_us_at: dict[int, int] = {}

    # ----------------------------------------------------------- connecting

    @classmethod
    async def connect(
        cls,
        port: int,
        protocol: str,
        host: str = "127.0.0.1",
        tls: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> PushClient:
        """Connect (over TLS with ALPN offering ``protocol`` alone, or
        cleartext for a server that speaks ``protocol`` by prior knowledge or
        sniffing) and send the connection preface."""
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols([protocol])
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), timeout
        )
        if tls:
            ssl_object = writer.get_extra_info("ssl_object")
            chosen = ssl_object.selected_alpn_protocol()
            if chosen != protocol:
                writer.close()
                raise ConnectionError(f"ALPN chose {chosen!r}, not {protocol!r}")
        client = cls(
            protocol,
            reader,
            writer,
            f"{host}:{port}",
            "https" if tls else "http",
            **kwargs,
        )
        client.start()
        return client

    def _make_core(
        self, enable_push: bool, window: int | None, session_window: int | None
    ) -> Any:
        if self.family == "h2":
            conn = _LenientH2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding=None)
            )
            values = {
                h2.settings.SettingCodes.ENABLE_PUSH: int(enable_push),
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams,
            }
            if window is not None:
                values[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
            conn.local_settings = h2.settings.Settings(
                client=True, initial_values=values
            )
            self._h2_session_window = session_window
            return conn
        config = spdy.SPDYConfiguration(
            client_side=True,
            version=self.protocol,
            enable_push=enable_push,
            max_concurrent_streams=self.max_concurrent_streams,
        )
        if window is not None:
            config.initial_window_size = window
        if session_window is not None:
            config.initial_session_window_size = session_window
        return spdy.SPDYConnection(config)

    def start(self) -> None:
        self.conn.initiate_connection()
        if self.family == "h2":
            extra = (self._h2_session_window or 65535) - 65535
            if extra > 0:
                self.conn.increment_flow_control_window(extra)
        self.flush()
        self._read_task = asyncio.ensure_future(self._read_loop())

    async def close(self) -> None:
        """Close the socket (no GOAWAY: the server must cope) and stop reading."""
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(BaseException):
                await self._read_task

    async def __aenter__(self) -> PushClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # --------------------------------------------------------------- sending

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] = (),
        priority: int | None = None,
        weight: int | None = None,
        body: bytes | None = None,
    ) -> Exchange:
        """Open a stream with a request; its `Exchange` is returned at once.

        :arg priority: SPDY: the SYN_STREAM priority (0 highest).
        :arg weight: h2: the HEADERS priority weight (1-256).
        """
        stream_id = self.conn.get_next_available_stream_id()
        fields: Headers = [
            (b":method", method.encode()),
            (b":path", path.encode("latin1")),
            (b":scheme", self.scheme.encode()),
            (b":authority", self.authority.encode()),
        ]
        fields += [(n.lower().encode("latin1"), v.encode("latin1")) for n, v in headers]
        end = not body
        if self.family == "h2":
            kwargs: dict[str, Any] = {}
            if weight is not None:
                kwargs["priority_weight"] = weight
            self.conn.send_headers(stream_id, fields, end_stream=end, **kwargs)
        else:
            self.conn.send_headers(stream_id, fields, end_stream=end, priority=priority)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        exchange = Exchange(self, stream_id, fields)
        self.streams[stream_id] = exchange
        self.exchanges.append(exchange)
        self.flush()
        return exchange

    def reset(self, stream_id: int, code: int | None = None) -> None:
        """RST_STREAM ``stream_id`` (CANCEL by default)."""
        if code is None:
            code = CANCEL[self.family]
        self.conn.reset_stream(stream_id, code)
        self._reset_by_us_at[stream_id] = len(self.wire)
        exchange = self.streams.get(stream_id)
        if exchange is not None:
            exchange.reset_code = code
            exchange._resolve(exchange.ended, StreamResetError(f"we reset {stream_id}"))
            exchange._resolve(exchange.closed)
        self.flush()

    async def ping(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """A PING round trip: everything the server queued before it saw the
        PING has been received when this returns."""
        if self.family == "h2":
            data = self._next_ping.to_bytes(8, "big")
            self._next_ping += 1
            self.conn.ping(data)
        else:
            data = self.conn.ping()
        future = asyncio.get_running_loop().create_future()
        self._pings[bytes(data)] = future
        self.flush()
        await self.wait(future, timeout)

    # ---------------------------------------------------------------- waiting

    async def wait(self, awaitable: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Await ``awaitable`` (a future of this client, or any awaitable) for
        at most ``timeout`` seconds; a lost connection fails it."""
        future = asyncio.ensure_future(awaitable)
        lost = asyncio.shield(self.lost)
        try:
            done, _ = await asyncio.wait(
                {future, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if future in done:
            return future.result()
        if lost in done or self.lost.done():
            future.cancel()
            raise ConnectionError(
                f"connection lost while waiting ({self.error!r}); frames: {self.wire_summary()}"
            )
        future.cancel()
        raise TimeoutError(f"nothing after {timeout} s; frames: {self.wire_summary()}")

    async def wait_for_pushes(
        self, count: int, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Until ``count`` pushes were announced."""
        await self.until(lambda: len(self.pushes) >= count, timeout)

    async def until(self, predicate: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until ``predicate()`` is true, checked after each read."""
        await self.wait(self._until(predicate), timeout)

    async def _until(self, predicate: Any) -> None:
        while not predicate():
            await self._progress.wait()

    def _progressed(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    def wire_summary(self, limit: int = 60) -> str:
        parts = []
        for f in self.wire[-limit:]:
            text = f"{f.type}:{f.stream_id}"
            if f.is_push:
                text += (
                    f"->{f.pushed_id}"
                    if f.type == "PUSH_PROMISE"
                    else f"<-{f.associated_id}"
                )
            if f.end_stream:
                text += "!"
            parts.append(text)
        return " ".join(parts)

    # ---------------------------------------------------------------- reading

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(256 * 1024)
                if not data:
                    break
                self.wire.extend(self._scanner.feed(data))
                try:
                    events = self.conn.receive_data(data)
                finally:
                    self.flush()
                for event in events:
                    self.events.append(event)
                    self._dispatch(event)
                self.flush()
                self._progressed()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a protocol error: surface it in the test
            self.error = exc
        finally:
            self._lose()

    def _lose(self) -> None:
        error = ConnectionError(f"connection lost ({self.error!r})")
        for exchange in list(self.streams.values()):
            for future in (exchange.head, exchange.first_data, exchange.ended):
                exchange._resolve(future, error)
            exchange._resolve(exchange.closed)
        if not self.lost.done():
            self.lost.set_result(None)
        self._progressed()

    def _dispatch(self, event: Any) -> None:
        name = type(event).__name__
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(event)

    def _on_PushedStreamReceived(self, event: Any) -> None:
        parent = self.streams.get(event.parent_stream_id)
        push = Exchange(
            self,
            event.pushed_stream_id,
            list(event.headers),
            parent_id=event.parent_stream_id,
            priority=getattr(event, "priority", None),
        )
        self.streams[push.stream_id] = push
        self.pushes.append(push)
        if parent is not None:
            parent.pushes.append(push)

    def _on_InformationalResponseReceived(self, event: Any) -> None:
        exchange = self.streams.get(event.stream_id)
        if exchange is not None:
            exchange.informational.append(list(event.headers))

    def _on_ResponseReceived(self, event: Any) -> None:
        exchange = self.streams.get(event.stream_id)
        if exchange is not None:
            exchange.headers = list(event.headers)
            exchange._resolve(exchange.head)

    def _on_TrailersReceived(self, event: Any) -> None:
        exchange = self.streams.get(event.stream_id)
        if exchange is not None:
            exchange.trailers = list(event.headers)

    def _on_DataReceived(self, event: Any) -> None:
        exchange = self.streams.get(event.stream_id)
        if exchange is not None and exchange.reset_code is None:
            exchange.chunks.append(bytes(event.data))
            exchange._resolve(exchange.first_data)
        if self.auto_ack:
            self.ack(event.stream_id, event.flow_controlled_length)
        else:
            self._unacked[event.stream_id] += event.flow_controlled_length

    def ack_all(self) -> None:
        """Give back everything received and not yet acknowledged."""
        unacked, self._unacked = self._unacked, collections.defaultdict(int)
        for stream_id, length in unacked.items():
            self.ack(stream_id, length)
        self.flush()

    def open_window(self, increment: int) -> None:
        """Open our connection (h2) / session (SPDY/3.1) receive window."""
        self.conn.increment_flow_control_window(increment)
        self.flush()

    def received(self) -> int:
        """DATA bytes received on every stream so far."""
        return sum(len(c) for e in self.streams.values() for c in e.chunks)

    def max_open_pushes(self) -> int:
        """The most pushed streams open at once on the wire: from their
        response HEADERS (h2) or SYN_STREAM (SPDY) to END_STREAM or a
        RST_STREAM (ours too)."""
        open_ids: set[int] = set()
        started: set[int] = set()
        most = 0
        for index, frame in enumerate(self.wire):
            for sid, at in self._reset_by_us_at.items():
                if at == index:
                    open_ids.discard(sid)
            sid = frame.stream_id
            if sid == 0 or sid % 2:
                continue
            if frame.type in ("HEADERS", "SYN_STREAM") and sid not in started:
                started.add(sid)
                open_ids.add(sid)
                most = max(most, len(open_ids))
            if frame.end_stream or frame.type == "RST_STREAM":
                open_ids.discard(sid)
        return most

    def ack(self, stream_id: int, length: int) -> None:
        """Give ``length`` received bytes back to flow control."""
        if not length:
            return
        with contextlib.suppress(h2.exceptions.H2Error, spdy.SPDYError):
            self.conn.acknowledge_received_data(length, stream_id)

    def _on_StreamEnded(self, event: Any) -> None:
        exchange = self.streams.get(event.stream_id)
        if exchange is not None:
            exchange._resolve(exchange.ended)
            exchange._resolve(exchange.closed)

    def _on_StreamReset(self, event: Any) -> None:
        exchange = self.streams.get(event.stream_id)
        if exchange is not None:
            exchange.reset_code = int(event.error_code)
            error = StreamResetError(
                f"stream {event.stream_id} reset: {event.error_code}"
            )
            exchange._resolve(exchange.head, error)
            exchange._resolve(exchange.first_data, error)
            exchange._resolve(exchange.ended, error)
            exchange._resolve(exchange.closed)

    def _on_ConnectionTerminated(self, event: Any) -> None:
        if not self.goaway.done():
            self.goaway.set_result(event)

    def _on_PingAckReceived(self, event: Any) -> None:
        future = self._pings.pop(bytes(event.ping_data), None)
        if future is not None and not future.done():
            future.set_result(None)

    # h2 names the acknowledgement of our PING so in older versions.
    _on_PingAcknowledged = _on_PingAckReceived


class _LenientH2Connection(h2.connection.H2Connection):
    """h2's client, except that it goes on reading after a GOAWAY, as a
    browser does: streams the server accepted (and pushes it promised) may
    still complete (RFC 9113 section 6.8). h2 itself closes the connection
    state on GOAWAY and rejects every later frame."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        result = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result


__all__ = [
    "CANCEL",
    "MULTIPLEXED",
    "REFUSED_STREAM",
    "Exchange",
    "PushClient",
    "StreamResetError",
    "WireFrame",
    "WireScanner",
]
