"""Command line: ``python -m tornado_spdy [serve | info]``.

``serve [DIR] [--port 8443]`` serves a directory, or a small demo site, over
h2, spdy/3.1, spdy/3, spdy/2 and HTTP/1.1 with a development certificate made
on first use. ``info`` (the default without arguments) prints the version and
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
    args = parser.parse_args(argv)
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
