"""The server that ``tests/test_attacks.py`` attacks, run in a subprocess so
that its memory (``VmRSS``) and its log are its own.

``python -m tests.attack_server PARAMS [OPTIONAL [BUFFERS]]`` (from the
repository root): ``PARAMS`` is a JSON object of `SessionParameters` fields;
``OPTIONAL`` a JSON list of those fields that may be dropped when this version
of `SessionParameters` lacks them (a limit that does not exist yet is no
limit); ``BUFFERS`` a JSON object with ``sndbuf`` and ``rcvbuf``, the socket
buffer sizes of the accepted connections.
Any other unknown field stops the server with a JSON ``{"error": ...}`` line.

It serves one application on several ports, all on 127.0.0.1: one per
multiplexed protocol by prior knowledge (``h2``, ``spdy/3.1``, ``spdy/3``,
``spdy/2``), one that sniffs (``sniff``) and one over TLS with ALPN (``tls``,
the development certificate); then prints ``{"pid": ..., "ports": {...}}`` on
one line of stdout. It logs at INFO to stderr as ``LEVEL name: message`` and
exits when its stdin closes (so that it cannot outlive the test run).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import sys
import threading
from typing import Any

from tornado import iostream, web
from tornado.netutil import bind_sockets

from tornado_spdy.server import SPDYServer
from tornado_spdy.session import SessionParameters
from tornado_spdy.testing import development_ssl_context

CHUNK = 64 * 1024
PAYLOAD = bytes(range(256)) * (CHUNK // 256)
HANG_LIMIT = 60.0  # a /hang request answers after this at the latest
PLAIN = ("h2", "spdy/3.1", "spdy/3", "spdy/2", "sniff")


class HelloHandler(web.RequestHandler):
    def get(self) -> None:
        self.write(b"hello")


class BigHandler(web.RequestHandler):
    """``size`` bytes (1 MiB by default), 64 KiB at a time, each flushed."""

    async def get(self) -> None:
        size = int(self.get_argument("size", str(1 << 20)))
        sent = 0
        try:
            while sent < size:
                n = min(CHUNK, size - sent)
                self.write(PAYLOAD[:n])
                await self.flush()
                sent += n
        except iostream.StreamClosedError:
            pass  # the peer went or the stream was reset: nothing to log


@web.stream_request_body
class UploadHandler(web.RequestHandler):
    """Counts a streamed request body."""

    def prepare(self) -> None:
        self.received = 0

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)

    def post(self) -> None:
        self.write(str(self.received))


class HangHandler(web.RequestHandler):
    """Answers when the peer goes (or after `HANG_LIMIT`): a stream held open."""

    async def get(self) -> None:
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self.gone), HANG_LIMIT)
        except TimeoutError:
            pass
        if not self.gone.done():
            self.write(b"done")

    def on_connection_close(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


ROUTES = [
    (r"/hello", HelloHandler),
    (r"/big", BigHandler),
    (r"/upload", UploadHandler),
    (r"/hang", HangHandler),
]


def session_params(values: dict[str, Any], optional: list[str]) -> SessionParameters:
    """`SessionParameters` from ``values``; see the module docstring."""
    known = {field.name for field in dataclasses.fields(SessionParameters)}
    missing = sorted(set(values) - known)
    if set(missing) - set(optional):
        raise KeyError(f"SessionParameters has no field {missing}")
    return SessionParameters(**{k: v for k, v in values.items() if k in known})


def listen(server: SPDYServer, buffers: dict[str, int]) -> int:
    sockets = bind_sockets(0, "127.0.0.1")
    for sock in sockets:  # inherited by the accepted sockets
        for name, option in (
            ("sndbuf", socket.SO_SNDBUF),
            ("rcvbuf", socket.SO_RCVBUF),
        ):
            if name in buffers:
                sock.setsockopt(socket.SOL_SOCKET, option, buffers[name])
    server.add_sockets(sockets)
    return sockets[0].getsockname()[1]


def exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(0)


async def main(
    values: dict[str, Any], optional: list[str], buffers: dict[str, int]
) -> None:
    try:
        params = session_params(values, optional)
    except (KeyError, TypeError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        sys.exit(2)
    app = web.Application(ROUTES)
    ports = {
        name: listen(
            SPDYServer(app, plain_protocol=name, session_params=params), buffers
        )
        for name in PLAIN
    }
    ports["tls"] = listen(
        SPDYServer(app, ssl_options=development_ssl_context(), session_params=params),
        buffers,
    )
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(json.dumps({"pid": os.getpid(), "ports": ports}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    optional_fields = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    socket_buffers = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    asyncio.run(main(json.loads(sys.argv[1]), optional_fields, socket_buffers))
