"""A SPDY load generator on tornado_spdy's core (h2load speaks no SPDY).

One connection (or ``-c`` of them), ``-m`` streams in flight on each, ``-n``
requests in all, like ``h2load -n N -c C -m M``; prints requests per second.
Its own ceiling is measured with ``--ceiling``: the same client against an
in-memory server core that answers at once, no network and no Tornado.

    python benchmarks/spdy_load.py -n 20000 -c 1 -m 100 --protocol spdy/3.1 http://127.0.0.1:8080/
    python benchmarks/spdy_load.py --ceiling -n 20000 -m 100
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import time
import urllib.parse

from tornado_spdy.spdy import SPDYConfiguration, SPDYConnection, events

WINDOW = 16 * 1024 * 1024


def client_core(protocol: str) -> SPDYConnection:
    return SPDYConnection(
        SPDYConfiguration(
            client_side=True,
            version=protocol,
            initial_window_size=WINDOW,
            initial_session_window_size=WINDOW,
            max_concurrent_streams=1000,
        )
    )


class LoadClient:
    """Keeps ``streams`` requests in flight on one connection until ``total``
    have been answered."""

    def __init__(
        self,
        core: SPDYConnection,
        headers: list[tuple[bytes, bytes]],
        total: int,
        streams: int,
    ):
        self.core = core
        self.headers = headers
        self.left_to_send = total
        self.in_flight = 0
        self.done = 0
        self.failed = 0
        self.body_bytes = 0
        self.streams = streams

    def fill(self) -> None:
        core = self.core
        while self.in_flight < self.streams and self.left_to_send:
            stream_id = core.get_next_available_stream_id()
            core.send_headers(stream_id, self.headers, end_stream=True)
            self.in_flight += 1
            self.left_to_send -= 1

    def on_events(self, received: list[events.Event]) -> None:
        core = self.core
        for event in received:
            kind = type(event)
            if kind is events.DataReceived:
                self.body_bytes += event.flow_controlled_length
                core.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            elif kind is events.StreamEnded:
                self.in_flight -= 1
                self.done += 1
            elif kind is events.StreamReset:
                self.in_flight -= 1
                self.failed += 1
        self.fill()


async def run_connection(
    url: str, protocol: str, total: int, streams: int, insecure: bool
) -> LoadClient:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.set_alpn_protocols([protocol])
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
    core = client_core(protocol)
    headers = [
        (b":method", b"GET"),
        (b":path", (parts.path or "/").encode()),
        (b":scheme", parts.scheme.encode()),
        (b":authority", parts.netloc.encode()),
        (b"user-agent", b"tornado_spdy-load/1"),
    ]
    client = LoadClient(core, headers, total, streams)
    core.initiate_connection()
    client.fill()
    writer.write(core.data_to_send())
    while client.done + client.failed < total:
        data = await reader.read(262144)
        if not data:
            raise ConnectionError("server closed the connection")
        client.on_events(core.receive_data(data))
        out = core.data_to_send()
        if out:
            writer.write(out)
    writer.close()
    return client


def ceiling(protocol: str, total: int, streams: int) -> float:
    """Requests per second of the client alone, against a server core that
    answers in memory."""
    core = client_core(protocol)
    server = SPDYConnection(
        SPDYConfiguration(
            client_side=False, version=protocol, max_concurrent_streams=1000
        )
    )
    headers = [
        (b":method", b"GET"),
        (b":path", b"/"),
        (b":scheme", b"http"),
        (b":authority", b"bench"),
    ]
    client = LoadClient(core, headers, total, streams)
    core.initiate_connection()
    server.initiate_connection()
    server.receive_data(core.data_to_send())
    core.receive_data(server.data_to_send())
    server_time = 0.0
    start = time.perf_counter()
    client.fill()
    while client.done < total:
        wire = core.data_to_send()
        t = time.perf_counter()
        for event in server.receive_data(wire):
            if type(event) is events.RequestReceived:
                server.send_headers(
                    event.stream_id, [(b":status", b"200"), (b"content-length", b"13")]
                )
                server.send_data(event.stream_id, b"Hello, world!", end_stream=True)
        answer = server.data_to_send()
        server_time += time.perf_counter() - t
        client.on_events(core.receive_data(answer))
    elapsed = time.perf_counter() - start - server_time
    return total / elapsed


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("-n", type=int, default=10000, help="requests in all")
    parser.add_argument("-c", type=int, default=1, help="connections")
    parser.add_argument(
        "-m", type=int, default=100, help="streams in flight per connection"
    )
    parser.add_argument("--protocol", default="spdy/3.1")
    parser.add_argument("-k", "--insecure", action="store_true")
    parser.add_argument("--ceiling", action="store_true", help="the client's own limit")
    args = parser.parse_args(argv)
    if args.ceiling:
        print(
            f"ceiling {args.protocol}: {ceiling(args.protocol, args.n, args.m):.0f} req/s"
        )
        return
    per_connection = args.n // args.c
    start = time.perf_counter()
    clients = await asyncio.gather(
        *(
            run_connection(
                args.url, args.protocol, per_connection, args.m, args.insecure
            )
            for _ in range(args.c)
        )
    )
    elapsed = time.perf_counter() - start
    done = sum(c.done for c in clients)
    failed = sum(c.failed for c in clients)
    print(
        f"{args.protocol}: {done} done, {failed} failed in {elapsed:.2f}s: {done / elapsed:.0f} req/s"
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
