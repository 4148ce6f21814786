"""`SPDYServer`: Tornado's `HTTPServer` speaking h2, SPDY/3.1, SPDY/3, SPDY/2
and HTTP/1.1 on one port.

Over TLS the protocol is chosen by ALPN (and NPN where the TLS stack has it)
from a table of protocol handlers, as in the 2012 SPDY pull request to Tornado;
without a choice, or with one the table lacks, HTTP/1.1 serves through
Tornado's own `HTTP1ServerConnection`. Cleartext connections speak HTTP/1.1
(with ``Upgrade: h2c``), or one protocol by prior knowledge, or whichever the
first bytes show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
import struct
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tornado import httputil, iostream
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.ioloop import IOLoop
from tornado.log import access_log, gen_log

from tornado_spdy import tls
from tornado_spdy.fairness import InputGate
from tornado_spdy.session import Session, SessionParameters, new_core
from tornado_spdy.stream import HOP_BY_HOP, Headers, _find_request

#: A protocol handler: serves one connection, given the server, the stream,
#: its request context and any bytes already read from it.
ProtocolHandler = Callable[
    ["SPDYServer", iostream.IOStream, Any, bytes], Awaitable[None] | None
]

#: The multiplexed protocols, by ALPN id, in our order of preference.
MULTIPLEXED = ("h2", "spdy/3.1", "spdy/3", "spdy/2")
#: What `SPDYServer` offers by default: the multiplexed ones, then HTTP/1.1.
DEFAULT_PROTOCOLS = (*MULTIPLEXED, "http/1.1")

#: The first bytes of every h2 connection (RFC 9113 section 3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_SNIFF_BYTES = 64  # enough for a SPDY SETTINGS + session WINDOW_UPDATE


class _HandshakeErrorsAtInfo(logging.Filter):
    """Tornado logs a client's failed TLS handshake (``SSL Error on ...``) at
    warning level; it is the peer's bad input, which this server logs at
    info like any other."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.msg == _SSL_ERROR_MESSAGE:
            record.levelno = logging.INFO
            record.levelname = "INFO"
        return True


#: Every SPDYServer of the process (see `SPDYServer.connections_in_process`).
_SERVERS: weakref.WeakSet[SPDYServer] = weakref.WeakSet()

_SSL_ERROR_MESSAGE = "SSL Error on %s %s: %s"  # tornado.iostream's
_HANDSHAKE_FILTER = _HandshakeErrorsAtInfo()


def serve_http1(
    server: SPDYServer, stream: iostream.IOStream, context: Any, initial: bytes
) -> None:
    """HTTP/1.1 through Tornado's own connection (``initial`` must be empty)."""
    conn = HTTP1ServerConnection(stream, server.conn_params, context)
    server._connections.add(conn)
    conn.start_serving(server)


def session_handler(framing: str) -> ProtocolHandler:
    """The handler that serves a connection as a ``framing`` session."""

    def serve(
        server: SPDYServer, stream: iostream.IOStream, context: Any, initial: bytes
    ) -> None:
        core = new_core(framing, False, server.session_params)
        session = Session(stream, core, server.session_params, context, server)
        server.track(session)
        session.start(initial)

    serve.__name__ = f"serve_{framing.replace('/', '').replace('.', '')}"
    return serve


def default_handler(name: str) -> ProtocolHandler:
    """The built-in handler of protocol ``name`` (an ALPN id)."""
    if name == "http/1.1":
        return serve_http1
    if name in MULTIPLEXED:
        return session_handler(name)
    raise ValueError(f"no built-in handler for protocol {name!r}")


class SPDYServer(HTTPServer):
    """An `HTTPServer` that also speaks h2, SPDY/3.1, SPDY/3 and SPDY/2.

    It takes every argument of `HTTPServer`, and:

    :arg npn_protocols: the protocols offered by ALPN (and NPN), most preferred
        first: names, or ``(name, handler)`` pairs for protocols of your own.
        By default h2, spdy/3.1, spdy/3, spdy/2, http/1.1.
    :arg plain_protocol: what a cleartext connection speaks: ``"http/1.1"``
        (the default; h2c by ``Upgrade`` if ``h2c_upgrade``), one of the
        multiplexed protocols by prior knowledge, or ``"sniff"`` to tell h2,
        SPDY and HTTP/1.1 apart by the first bytes.
    :arg h2c_upgrade: accept ``Upgrade: h2c`` on cleartext HTTP/1.1.
    :arg max_concurrent_streams: streams a client may have open at once.
    :arg initial_window_size: our receive window per stream.
    :arg log_protocol: when the application has no ``log_function`` setting,
        install `log_request`, whose access-log lines name the protocol.
    :arg session_params: a `SessionParameters` with every session limit
        (``max_concurrent_streams`` and ``initial_window_size`` override it;
        ``chunk_size``, ``max_header_size``, ``max_body_size``,
        ``body_timeout``, ``idle_connection_timeout`` and
        ``decompress_request`` are taken from `HTTPServer`'s arguments).

    A client's failed TLS handshake is logged at info level (Tornado's
    ``SSL Error on ...`` warning is lowered for every server in the process).

    Like `HTTPServer` it is `Configurable`:
    ``HTTPServer.configure("tornado_spdy.SPDYServer")`` makes ``app.listen()``
    and `tornado.testing.AsyncHTTPTestCase` use it.
    """

    def initialize(
        self,
        request_callback: httputil.HTTPServerConnectionDelegate
        | Callable[[httputil.HTTPServerRequest], None],
        no_keep_alive: bool = False,
        xheaders: bool = False,
        ssl_options: dict[str, Any] | ssl.SSLContext | None = None,
        protocol: str | None = None,
        decompress_request: bool = False,
        chunk_size: int | None = None,
        max_header_size: int | None = None,
        idle_connection_timeout: float | None = None,
        body_timeout: float | None = None,
        max_body_size: int | None = None,
        max_buffer_size: int | None = None,
        trusted_downstream: list[str] | None = None,
        npn_protocols: Sequence[str | tuple[str, ProtocolHandler]] | None = None,
        plain_protocol: str = "http/1.1",
        h2c_upgrade: bool = True,
        max_concurrent_streams: int | None = None,
        initial_window_size: int | None = None,
        session_params: SessionParameters | None = None,
        log_protocol: bool = True,
    ) -> None:
        """See the class; called by `Configurable` with the constructor's arguments."""
        settings = getattr(request_callback, "settings", None)
        if log_protocol and isinstance(settings, dict):
            settings.setdefault("log_function", log_request)
        self.protocol_handlers = _protocol_table(npn_protocols or DEFAULT_PROTOCOLS)
        if ssl_options is not None:
            ssl_options = tls.server_context(ssl_options, list(self.protocol_handlers))
            gen_log.addFilter(_HANDSHAKE_FILTER)  # once: filters are a set
        super().initialize(
            request_callback,
            no_keep_alive=no_keep_alive,
            xheaders=xheaders,
            ssl_options=ssl_options,
            protocol=protocol,
            decompress_request=decompress_request,
            chunk_size=chunk_size,
            max_header_size=max_header_size,
            idle_connection_timeout=idle_connection_timeout,
            body_timeout=body_timeout,
            max_body_size=max_body_size,
            max_buffer_size=max_buffer_size,
            trusted_downstream=trusted_downstream,
        )
        if plain_protocol != "sniff" and plain_protocol not in (
            *self.protocol_handlers,
            "http/1.1",
        ):
            raise ValueError(f"unknown plain_protocol {plain_protocol!r}")
        self.plain_protocol = plain_protocol
        self.h2c_upgrade = h2c_upgrade
        #: Connections accepted and not yet handed to their protocol (TLS
        #: handshake, sniffing, their turn at the InputGate).
        self._arriving: set[iostream.IOStream] = set()
        _SERVERS.add(self)
        self.session_params = _session_params(
            session_params,
            max_concurrent_streams=max_concurrent_streams,
            initial_window_size=initial_window_size,
            chunk_size=chunk_size,
            max_header_size=max_header_size,
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            idle_connection_timeout=idle_connection_timeout,
            decompress=decompress_request or None,
        )

    @classmethod
    def configurable_default(cls) -> type[HTTPServer]:
        return SPDYServer

    async def handle_stream(  # type: ignore[override]
        self, stream: iostream.IOStream, address: tuple[Any, ...]
    ) -> None:
        """Pick the protocol of a new connection and hand it to its handler."""
        self._arriving.add(stream)
        try:
            chosen = await self._choose_in_time(stream, address)
            if chosen is None:
                return
            # Building a session costs as much as a request: connections
            # opened many at once are set up in turns, between the others'
            # reads.
            gate = InputGate.current()
            await gate.turn(self.session_params.fair_share)
        finally:
            self._arriving.discard(stream)
        if stream.closed():
            return  # by the peer, or by close_all_connections meanwhile
        name, initial = chosen
        context = _HTTPRequestContext(
            stream, address, self.protocol, self.trusted_downstream
        )
        handler = self.protocol_handlers.get(name, serve_http1)
        with gate.charging():
            result = handler(self, stream, context, initial)
        if result is not None:
            await result

    async def _choose_in_time(
        self, stream: iostream.IOStream, address: tuple[Any, ...]
    ) -> tuple[str, bytes] | None:
        """The protocol and first bytes of a new connection, or None (and
        the connection closed) if they do not come within
        ``handshake_timeout``."""
        try:
            return await asyncio.wait_for(
                self._choose_protocol(stream), self.session_params.handshake_timeout
            )
        except (TimeoutError, iostream.StreamClosedError, ssl.SSLError, OSError) as exc:
            gen_log.info(
                "connection from %s: no protocol chosen: %s", address, repr(exc)
            )
            stream.close()
            return None

    async def _choose_protocol(self, stream: iostream.IOStream) -> tuple[str, bytes]:
        if isinstance(stream, iostream.SSLIOStream):
            await stream.wait_for_handshake()
            assert isinstance(stream.socket, ssl.SSLSocket)
            return tls.negotiated_protocol(stream.socket) or "http/1.1", b""
        if self.plain_protocol != "sniff":
            return self.plain_protocol, b""
        return _sniff(await _peek(stream, _SNIFF_BYTES), self.protocol_handlers), b""

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        """Tornado's delegate for a request; HTTP/1.1 ones are wrapped to see
        ``Upgrade: h2c``."""
        delegate = super().start_request(server_conn, request_conn)
        if isinstance(server_conn, HTTP1ServerConnection):
            return _HTTP1Adapter(self, delegate, request_conn)
        return delegate

    async def close_all_connections(self) -> None:
        """Close every connection gracefully, all at once: sessions send
        GOAWAY and finish the streams they accepted; HTTP/1.1 connections
        finish their request; connections not yet set up (TLS handshake,
        sniffing, waiting for their turn) are closed at once."""
        # Connections not yet set up have no request to finish.
        for stream in list(self._arriving):
            stream.close()
        # Connections that arrive meanwhile (before stop()) are closed too.
        while self._connections:
            connections = list(self._connections)
            for conn in connections:
                if isinstance(conn, Session):
                    conn.start_draining()
            await asyncio.gather(*(conn.close() for conn in connections))

    @staticmethod
    def connections_in_process() -> int:
        """Open connections (sessions and HTTP/1.1 ones) of every SPDYServer
        in this process: a session that is the only one has nobody to share
        the IOLoop with, and need not slice its input."""
        return sum(
            len(server._connections) + len(server._arriving) for server in _SERVERS
        )

    def track(self, connection: Session) -> None:
        """Count ``connection`` among those `close_all_connections` closes."""
        self._connections.add(connection)  # type: ignore[arg-type]

    def on_close(self, server_conn: object) -> None:
        """A connection (session or HTTP/1.1) has closed."""
        self._connections.discard(server_conn)

    def upgrade_to_h2c(
        self,
        request_conn: httputil.HTTPConnection,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        """Take over an HTTP/1.1 connection whose request asked for h2c."""
        settings = headers["HTTP2-Settings"].encode("ascii")
        context = request_conn.context  # type: ignore[attr-defined]
        assert isinstance(request_conn, HTTP1Connection)
        stream = request_conn.detach()  # its HTTP1ServerConnection then ends
        stream.write(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        core = new_core("h2", False, self.session_params)
        session = Session(stream, core, self.session_params, context, self)
        self.track(session)
        session.start(upgrade=(settings, _h2_request(start_line, headers)))


def log_request(handler: Any) -> None:
    """Tornado's access log line, with the protocol the request came over,
    e.g. ``200 GET / (127.0.0.1) h2 0.52ms``."""
    status = handler.get_status()
    if status < 400:
        log_method = access_log.info
    elif status < 500:
        log_method = access_log.warning
    else:
        log_method = access_log.error
    log_method(
        "%d %s %s %.2fms",
        status,
        handler._request_summary(),
        getattr(handler.request, "framing", handler.request.version),
        1000.0 * handler.request.request_time(),
    )


class _HTTP1Adapter(httputil.HTTPMessageDelegate):
    """Wraps an HTTP/1.1 request's delegate: marks the request's framing and
    performs the h2c upgrade when one is asked for."""

    def __init__(
        self,
        server: SPDYServer,
        delegate: httputil.HTTPMessageDelegate,
        connection: httputil.HTTPConnection,
    ):
        self.server = server
        self.delegate = delegate
        self.connection = connection

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        if self.server.h2c_upgrade and _wants_h2c(headers):
            self.server.upgrade_to_h2c(self.connection, start_line, headers)
            return None
        result = self.delegate.headers_received(start_line, headers)
        request = _find_request(self.delegate)
        if request is not None:
            request.framing = "http/1.1"  # type: ignore[attr-defined]
            request.priority = 3  # type: ignore[attr-defined]
        return result

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()


def _wants_h2c(headers: httputil.HTTPHeaders) -> bool:
    """An ``Upgrade: h2c`` request we can take: HTTP2-Settings and no body
    (a body would have to be read as HTTP/1.1 first)."""
    upgrade = headers.get("Upgrade", "").lower()
    return (
        "h2c" in [p.strip() for p in upgrade.split(",")]
        and "HTTP2-Settings" in headers
        and headers.get("Content-Length", "0") == "0"
        and "Transfer-Encoding" not in headers
    )


def _h2_request(
    start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders
) -> Headers:
    """An HTTP/1.1 request head as an h2 header list (for the upgrade)."""
    result: Headers = [
        (b":method", start_line.method.encode("latin1")),
        (b":path", start_line.path.encode("latin1")),
        (b":scheme", b"http"),
        (b":authority", headers.get("Host", "").encode("latin1")),
    ]
    skip = {*HOP_BY_HOP, "host", "http2-settings"}
    for name, value in headers.get_all():
        if name.lower() not in skip:
            result.append((name.lower().encode("latin1"), value.encode("latin1")))
    return result


def _protocol_table(
    protocols: Sequence[str | tuple[str, ProtocolHandler]],
) -> dict[str, ProtocolHandler]:
    table: dict[str, ProtocolHandler] = {}
    for item in protocols:
        if isinstance(item, str):
            table[item] = default_handler(item)
        else:
            name, handler = item
            table[name] = handler
    return table


def _session_params(
    base: SessionParameters | None, **overrides: Any
) -> SessionParameters:
    """``base`` (or the defaults) with every override that is not None."""
    params = dataclasses.replace(base) if base is not None else SessionParameters()
    for name, value in overrides.items():
        if value is not None:
            setattr(params, name, value)
    return params


def _sniff(data: bytes, table: dict[str, ProtocolHandler]) -> str:
    """The protocol a cleartext connection's first bytes show."""
    if data.startswith(H2_PREFACE[: len(data)]) and "h2" in table:
        return "h2"
    if data[:1] == b"\x80" and len(data) >= 4:
        version = struct.unpack(">H", data[:2])[0] & 0x7FFF
        if version == 2 and "spdy/2" in table:
            return "spdy/2"
        if version == 3:
            # 3 and 3.1 look alike; a 3.1 client opens its session window
            # (WINDOW_UPDATE on stream 0) at once.
            if _has_session_window_update(data) and "spdy/3.1" in table:
                return "spdy/3.1"
            if "spdy/3" in table:
                return "spdy/3"
            if "spdy/3.1" in table:
                return "spdy/3.1"
    return "http/1.1"


def _has_session_window_update(data: bytes) -> bool:
    position = 0
    while position + 8 <= len(data):
        first, second = struct.unpack_from(">II", data, position)
        if first == 0x80030009 and data[position + 8 : position + 12] == bytes(4):
            return True
        position += 8 + (second & 0xFFFFFF)
    return False


async def _peek(stream: iostream.IOStream, size: int) -> bytes:
    """The first bytes the peer sent, left unread in the socket.

    Waits for ``size`` bytes, or for as many as show the protocol: 4 (24 for
    the h2 preface), or what arrives within 50 ms of the first byte.
    """
    sock = stream.socket
    assert sock is not None
    io_loop = IOLoop.current()
    loop_time = io_loop.time
    first_seen: float | None = None
    while True:
        await _readable(io_loop, sock)
        try:
            data = sock.recv(size, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        if not data:
            raise iostream.StreamClosedError()
        if first_seen is None:
            first_seen = loop_time()
        if len(data) >= size or _decisive(data) or loop_time() - first_seen > 0.05:
            return data
        await asyncio.sleep(0.005)  # level-triggered: let more bytes arrive


async def _readable(io_loop: IOLoop, sock: socket.socket) -> None:
    """Wait until ``sock`` is readable, without reading from it."""
    readable: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_readable(fd: Any, events: int) -> None:
        if not readable.done():
            readable.set_result(None)

    io_loop.add_handler(sock, on_readable, IOLoop.READ)
    try:
        await readable
    finally:
        # Also when cancelled (the handshake timeout): a handler left behind
        # would refuse the next connection given this fd.
        io_loop.remove_handler(sock)


def _decisive(data: bytes) -> bool:
    if data[:1] == b"\x80":
        return len(data) >= 32  # room for SETTINGS and a WINDOW_UPDATE
    if H2_PREFACE.startswith(data[:3]):
        return len(data) >= len(H2_PREFACE)
    return len(data) >= 4
