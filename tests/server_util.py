"""Serving helpers the server tests share: a server's listening socket, its
graceful close, the test pattern bodies are made of, and the handlers of the
raw-peer tests' applications (`tests.test_server_bad_input`,
`tests.fault_util` and the subprocess server of `tests.attack_server`).

tornado_spdy is imported inside the helpers only: the test files that use
them keep failing one by one, not at collection, when the package is broken.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import socket
from typing import Any, Protocol

from tornado import iostream, web
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer

#: Bodies are written a chunk at a time, each flushed, ...
CHUNK = 64 * 1024
#: ... each chunk (or its start) being this.
PAYLOAD = bytes(range(256)) * (CHUNK // 256)

#: `write_pattern` writes in pieces of this size, each flushed, so that the
#: download runs under the server's back-pressure.
PATTERN_PIECE = 256 * 1024

_PERIOD = bytes(range(251))


def chunked_body(size: int) -> bytes:
    """The ``size`` bytes `write_flushed` writes."""
    whole, rest = divmod(size, CHUNK)
    return PAYLOAD * whole + PAYLOAD[:rest]


@functools.cache
def pattern(n: int) -> bytes:
    """``n`` bytes of the test pattern ``byte[i] = i % 251`` (that of the
    peers' ``tests/peers/spdy_peer.js`` too)."""
    return (_PERIOD * (n // 251 + 1))[:n]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- servers


def local_url(tls: bool, port: int, path: str) -> str:
    """The URL of ``path`` on a test server at 127.0.0.1:``port``."""
    return f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}"


class Counted(Protocol):
    connections: int


def counting(base: type[TCPServer], counted: Counted) -> type[Any]:
    """A subclass of ``base`` (a `SPDYServer`, or Tornado's `HTTPServer`)
    that counts the connections it accepts in ``counted.connections``."""

    class CountingServer(base):  # type: ignore[valid-type,misc]
        @classmethod
        def configurable_default(cls) -> type:
            return cls  # not Configurable's choice: this very class

        async def handle_stream(self, stream: Any, address: tuple) -> None:
            counted.connections += 1
            result = super().handle_stream(stream, address)
            if result is not None:  # HTTPServer's is not a coroutine
                await result

    return CountingServer


def server_options(protocol: str, tls: bool) -> dict[str, Any]:
    """`SPDYServer` keywords for ``protocol``: over TLS, ALPN picks it (with
    the development certificate); in cleartext it is prior knowledge."""
    if tls:
        from tornado_spdy.testing import development_ssl_context

        return {"ssl_options": development_ssl_context()}
    return {"plain_protocol": protocol}


def listen(
    server: TCPServer,
    port: int = 0,
    sndbuf: int | None = None,
    rcvbuf: int | None = None,
) -> int:
    """Make ``server`` listen on 127.0.0.1 (``port`` 0: an unused one) and
    return the port. ``sndbuf`` and ``rcvbuf`` are socket buffer sizes, which
    the accepted sockets inherit."""
    [sock] = bind_sockets(port, "127.0.0.1", family=socket.AF_INET)
    for size, option in ((sndbuf, socket.SO_SNDBUF), (rcvbuf, socket.SO_RCVBUF)):
        if size is not None:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
    server.add_sockets([sock])
    return sock.getsockname()[1]


async def close_gracefully(server: Any, timeout: float) -> bool:
    """Stop ``server`` listening, then close its connections gracefully
    (``close_all_connections()``: GOAWAY, the streams in flight finish);
    False if that took more than ``timeout`` seconds."""
    server.stop()
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout)
    except TimeoutError:
        return False
    return True


# ----------------------------------------------------------------- handlers


async def write_flushed(handler: web.RequestHandler, size: int) -> bool:
    """Write `chunked_body` (``size`` bytes), each chunk flushed; False if a
    flush failed because the stream is gone (reset, or the peer left)."""
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        handler.write(PAYLOAD[:n])
        try:
            await handler.flush()
        except iostream.StreamClosedError:
            return False
        sent += n
    return True


async def write_pattern(handler: web.RequestHandler, n: int) -> None:
    """Answer `pattern` (``n`` bytes, of known length) a piece at a time,
    each flushed."""
    data = pattern(n)
    handler.set_header("Content-Type", "application/octet-stream")
    handler.set_header("Content-Length", str(n))
    for start in range(0, n, PATTERN_PIECE):
        handler.write(data[start : start + PATTERN_PIECE])
        await handler.flush()


class HelloHandler(web.RequestHandler):
    def get(self) -> None:
        self.write(b"hello")


@web.stream_request_body
class UploadHandler(web.RequestHandler):
    """Counts a streamed request body; answers the count."""

    def prepare(self) -> None:
        self.received = 0

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)

    def post(self) -> None:
        self.write(str(self.received))
