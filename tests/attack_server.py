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
import sys
import threading
from typing import Any

from tornado import web

from tests import server_util
from tests.server_util import HelloHandler, UploadHandler
from tornado_spdy.server import SPDYServer
from tornado_spdy.session import SessionParameters

HANG_LIMIT = 60.0  # a /hang request answers after this at the latest
PLAIN = ("h2", "spdy/3.1", "spdy/3", "spdy/2", "sniff")


class BigHandler(web.RequestHandler):
    """``size`` bytes (1 MiB by default), 64 KiB at a time, each flushed."""

    async def get(self) -> None:
        size = int(self.get_argument("size", str(1 << 20)))
        # A failed flush: the peer went or the stream was reset, nothing to log.
        await server_util.write_flushed(self, size)


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
    servers = {
        name: SPDYServer(
            app,
            **server_util.server_options(name, name == "tls"),
            session_params=params,
        )
        for name in (*PLAIN, "tls")
    }
    ports = {
        name: server_util.listen(server, **buffers) for name, server in servers.items()
    }
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
