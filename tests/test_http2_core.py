"""`H2Core`, the adapter of the ``h2`` library, with an ``h2`` client and no
I/O: what it changes in ``h2``'s behaviour."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events

from tornado_spdy.http2 import H2Core
from tornado_spdy.stream import request_from_headers

REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "a")]


def connected() -> tuple[h2.connection.H2Connection, H2Core]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = H2Core(client_side=False)
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def exchange(
    client: h2.connection.H2Connection, server: H2Core, headers: list[tuple[str, str]]
) -> h2.events.RequestReceived:
    """One request and its empty 200 response; the server's request event."""
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, headers, end_stream=True)
    events = server.receive_data(client.data_to_send())
    (request,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    server.send_headers(stream_id, [(b":status", b"200")], end_stream=True)
    client.receive_data(server.data_to_send())
    return request


def test_closed_streams_are_forgotten_every_few_streams():
    """h2 walks all its streams to forget the closed ones; H2Core lets it do
    so every FORGET_EVERY new streams, so a long connection keeps at most
    that many closed streams, not one per request."""
    client, server = connected()
    for _ in range(5 * H2Core.FORGET_EVERY):
        exchange(client, server, REQUEST)
        assert len(server.streams) <= H2Core.FORGET_EVERY


def test_cookie_crumbs_are_joined_for_tornado():
    """h2's own joining of cookie fields is off: the crumbs a client sends
    (RFC 9113 section 8.2.3) reach the Tornado layer, which joins them."""
    client, server = connected()
    request = exchange(
        client, server, [*REQUEST, ("cookie", "a=1"), ("x", "y"), ("cookie", "b=2")]
    )
    _, _, _, fields = request_from_headers(request.headers)
    assert fields["Cookie"] == "a=1; b=2"
    assert fields["X"] == "y"
