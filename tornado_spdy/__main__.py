"""Command line: ``python -m tornado_spdy [serve | fetch | info]``.

``serve [DIR] [--port 8443]`` serves a directory, or a small demo site, over
h2, spdy/3.1, spdy/3, spdy/2 and HTTP/1.1 with a development certificate made
on first use. ``fetch URL`` fetches with `SPDYClient` and prints the protocol,
status, headers and body (``-v``: every frame; ``--protocol``: force one). ``info`` (the default without arguments) prints the version and
shows the SPDY core at work: one request and response through a client and a
server `SPDYConnection` of each version, wired together in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from typing import Any, TextIO

from tornado_spdy import PROTOCOLS, version
from tornado_spdy.spdy import VERSIONS, SPDYConfiguration, SPDYConnection, events


def exchange(protocol: str) -> str:
    """One GET through a client and a server core; a line describing it."""
    client = SPDYConnection(SPDYConfiguration(client_side=True, version=protocol))
    server = SPDYConnection(SPDYConfiguration(client_side=False, version=protocol))
    client.initiate_connection()
    server.initiate_connection()
    stream_id = client.get_next_available_stream_id()
    request = [
        (":method", "GET"),
        (":path", "/"),
        (":scheme", "https"),
        (":authority", "localhost"),
    ]
    client.send_headers(stream_id, request, end_stream=True)
    wire = client.data_to_send()
    for event in server.receive_data(wire):
        if isinstance(event, events.RequestReceived):
            server.send_headers(event.stream_id, [(":status", "200")])
            server.send_data(event.stream_id, b"Hello, world!", end_stream=True)
    answer = server.data_to_send()
    status = body = b""
    for event in client.receive_data(answer):
        if isinstance(event, events.ResponseReceived):
            status = dict(event.headers)[b":status"]
        elif isinstance(event, events.DataReceived):
            body += bytes(event.data)
    return (
        f"{protocol:9} GET / -> {status.decode()} {body.decode()!r} "
        f"({len(wire)} bytes out, {len(answer)} bytes back)"
    )


def info() -> int:
    print(f"tornado_spdy {version}")
    print("protocols:", ", ".join(PROTOCOLS))
    for protocol in VERSIONS:
        print(exchange(protocol))
    print("serve a site over all of them: python -m tornado_spdy serve [DIR]")
    return 0


async def serve(
    directory: str | None, port: int, plain_port: int | None, host: str
) -> None:
    from tornado_spdy.demo import make_app
    from tornado_spdy.server import SPDYServer
    from tornado_spdy.tls import development_certificate

    certfile, keyfile = development_certificate()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    app = make_app(directory)
    server = SPDYServer(app, ssl_options=context)
    server.listen(port, host)
    where = directory or "the demo site"
    print(f"tornado_spdy {version} serving {where}")
    print(f"  https://localhost:{port}/  ({', '.join(PROTOCOLS)} by ALPN)")
    print(f"  certificate: {certfile} (self-signed, for development)")
    if plain_port is not None:
        SPDYServer(app, plain_protocol="sniff").listen(plain_port, host)
        print(
            f"  http://localhost:{plain_port}/  (h2c, SPDY or HTTP/1.1 by their first bytes)"
        )
    print("Ctrl-C stops.", flush=True)
    await asyncio.Event().wait()


async def fetch(args: argparse.Namespace) -> int:
    from tornado.httpclient import HTTPClientError

    from tornado_spdy.client import SPDYClient
    from tornado_spdy.trace import frame_tracer

    client = SPDYClient(force_instance=True)
    if args.verbose:
        client.pool.trace = frame_tracer(sys.stderr)
    progress = _Progress(sys.stderr if sys.stderr.isatty() or args.progress else None)
    output = open(args.output, "wb") if args.output else sys.stdout.buffer
    try:
        response = await client.fetch(
            args.url,
            method=args.method,
            body=args.data.encode() if args.data is not None else None,
            validate_cert=not args.insecure,
            protocol=args.protocol,
            header_callback=progress.header,
            streaming_callback=lambda chunk: progress.write(chunk, output),
            raise_error=False,
            request_timeout=args.timeout,
            allow_nonstandard_methods=True,
        )
    except HTTPClientError as exc:  # pragma: no cover - raise_error is False
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        progress.done()
        if args.output:
            output.close()
        client.close()
    if response.code == 599:
        print(f"error: {response.error}", file=sys.stderr)
        return 1
    print(f"protocol: {getattr(response, 'framing', None)}", file=sys.stderr)
    print(f"status: {response.code} {response.reason}", file=sys.stderr)
    for name, value in response.headers.get_all():
        print(f"{name}: {value}", file=sys.stderr)
    for url in getattr(response, "associated_urls", ()):
        print(f"pushed: {url}", file=sys.stderr)
    return 0 if response.code < 400 else 22


class _Progress:
    """A progress bar on stderr for downloads with a Content-Length."""

    def __init__(self, out: TextIO | None):
        self.out = out
        self.total = 0
        self.received = 0

    def header(self, line: str) -> None:
        name, _, value = line.partition(":")
        if name.lower() == "content-length" and value.strip().isdigit():
            self.total = int(value)

    def write(self, chunk: bytes, output: Any) -> None:
        output.write(chunk)
        self.received += len(chunk)
        if self.out is not None and self.total > 1024 * 1024:
            width = 40
            filled = width * self.received // self.total
            print(
                f"\r[{'#' * filled}{'.' * (width - filled)}] "
                f"{self.received // 1024} / {self.total // 1024} KiB",
                end="",
                file=self.out,
            )

    def done(self) -> None:
        if self.out is not None and self.total > 1024 * 1024:
            print(file=self.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tornado_spdy")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("info", help="version, protocols, the core at work")
    serve_parser = commands.add_parser("serve", help="serve a directory or the demo")
    serve_parser.add_argument("directory", nargs="?", help="default: the demo site")
    serve_parser.add_argument("--port", type=int, default=8443, help="TLS port")
    serve_parser.add_argument(
        "--plain-port", type=int, default=None, help="also serve cleartext here"
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    fetch_parser = commands.add_parser("fetch", help="fetch a URL with SPDYClient")
    fetch_parser.add_argument("url")
    fetch_parser.add_argument("-v", "--verbose", action="store_true", help="frames")
    fetch_parser.add_argument(
        "--protocol", help="h2, spdy/3.1, spdy/3, spdy/2 or http/1.1"
    )
    fetch_parser.add_argument("-o", "--output", help="write the body to this file")
    fetch_parser.add_argument("-X", "--method", default="GET")
    fetch_parser.add_argument("-d", "--data", help="request body")
    fetch_parser.add_argument(
        "-k", "--insecure", action="store_true", help="do not check the certificate"
    )
    fetch_parser.add_argument(
        "--progress",
        action="store_true",
        help="progress bar even when stderr is not a terminal",
    )
    fetch_parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        return asyncio.run(fetch(args))
    if args.command == "serve":
        if args.directory is not None and not os.path.isdir(args.directory):
            parser.error(f"not a directory: {args.directory}")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        try:
            asyncio.run(serve(args.directory, args.port, args.plain_port, args.host))
        except KeyboardInterrupt:
            pass
        return 0
    return info()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
