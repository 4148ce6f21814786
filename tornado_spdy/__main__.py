"""Command line: ``python -m tornado_spdy``.

For now it shows the SPDY core at work: one request and response through a
client and a server `SPDYConnection` of each version, wired together in memory.
"""

from __future__ import annotations

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


def main(argv: list[str] | None = None) -> int:
    print(f"tornado_spdy {version}")
    print("protocols:", ", ".join(PROTOCOLS))
    for protocol in VERSIONS:
        print(exchange(protocol))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
