"""A SPDYServer backend for the deployment tests (tests/test_deployment.py).

Every response names the process that served it, so a test can tell which
backend, or which of several processes sharing a port, answered::

    {"name": "b1", "pid": 4242, "framing": "h2", "can_push": true}

``framing`` is the protocol the request came over (to this process, so behind
HAProxy's HTTP mode it is the backend hop's); ``can_push`` says whether the
peer of this connection lets the server push. ``GET /?push=1`` also pushes
``/style.css`` where it can.

Three ways of listening, one per deployment the tests (and docs/deployment.rst)
describe:

``--fork N``
    ``bind_sockets(port, reuse_port=True)`` then ``fork_processes(N)``: N
    children share one listening socket (Tornado's multi-process recipe).
``--reuse-port``
    ``SPDYServer.listen(port, reuse_port=True)`` in this one process; start
    several with the same ``--tls-port`` and the kernel spreads connections.
otherwise
    one process, one TLS port, plus a cleartext port (``--plain-port``) that
    speaks h2 by prior knowledge, for HAProxy's ``proto h2`` servers.

Once listening, each serving process prints one JSON line to stdout:
``{"pid": ..., "name": ..., "tls_port": ..., "plain_port": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys

from tornado import netutil, process, web

from tornado_spdy import SPDYServer
from tornado_spdy.tls import development_certificate
from tornado_spdy.web import RequestHandler


class WhoAmI(RequestHandler):
    """Answers with the serving process's identity and the protocol used."""

    def get(self) -> None:
        if self.get_query_argument("push", None):
            self.push("/style.css")
        connection = self.request.connection
        session = getattr(connection, "session", None)
        body = {
            "name": self.settings["backend_name"],
            "pid": os.getpid(),
            "framing": getattr(self.request, "framing", None),
            "can_push": bool(session is not None and session.can_push),
        }
        # The same facts in a header, for clients that print headers only
        # (curl -w '%header{x-served-by}' with parallel transfers).
        self.set_header(
            "X-Served-By", f"{body['name']} {body['pid']} {body['framing']}"
        )
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body) + "\n")


class Style(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/css")
        self.finish("body { color: black }\n")


def make_app(name: str) -> web.Application:
    # No access log: the tests read stdout for the ready line only, and the
    # log would cost CPU the shared test machine does not have.
    return web.Application(
        [("/", WhoAmI), ("/style.css", Style)],
        backend_name=name,
        log_function=lambda handler: None,
    )


def tls_context(certdir: str) -> ssl.SSLContext:
    certfile, keyfile = development_certificate(certdir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def announce(name: str, tls_port: int, plain_port: int | None) -> None:
    line = {
        "pid": os.getpid(),
        "name": name,
        "tls_port": tls_port,
        "plain_port": plain_port,
    }
    # One write(2) of under PIPE_BUF bytes: forked children share the pipe,
    # and print() may split a line over two writes that interleave.
    os.write(sys.stdout.fileno(), (json.dumps(line) + "\n").encode())


def port_of(sockets: list[socket.socket]) -> int:
    return int(sockets[0].getsockname()[1])


async def serve_forked(args: argparse.Namespace, sockets: list[socket.socket]) -> None:
    """One child of ``--fork``: serve the inherited sockets."""
    server = SPDYServer(make_app(args.name), ssl_options=tls_context(args.certdir))
    server.add_sockets(sockets)
    announce(args.name, port_of(sockets), None)
    await asyncio.Event().wait()


async def serve(args: argparse.Namespace) -> None:
    """One process: a TLS port, and a cleartext h2 port if asked."""
    app = make_app(args.name)
    server = SPDYServer(app, ssl_options=tls_context(args.certdir))
    server.listen(args.tls_port, args.host, reuse_port=args.reuse_port)
    tls_port = port_of(list(server._sockets.values()))
    plain_port = None
    if args.plain_port is not None:
        # HAProxy's `proto h2` servers speak cleartext h2 by prior knowledge.
        plain = SPDYServer(app, plain_protocol="h2")
        plain_sockets = netutil.bind_sockets(args.plain_port, args.host)
        plain.add_sockets(plain_sockets)
        plain_port = port_of(plain_sockets)
    announce(args.name, tls_port, plain_port)
    await asyncio.Event().wait()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="named in every response")
    parser.add_argument("--certdir", required=True, help="development cert dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--plain-port", type=int, default=None)
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--fork", type=int, default=0, metavar="N")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.fork:
        # Bind before forking (no IOLoop may exist yet): the children inherit
        # the listening socket and the kernel hands each connection to one.
        sockets = netutil.bind_sockets(args.tls_port, args.host, reuse_port=True)
        process.fork_processes(args.fork, max_restarts=0)
        asyncio.run(serve_forked(args, sockets))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main(sys.argv[1:])
