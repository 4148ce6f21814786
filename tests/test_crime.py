"""CRIME: a secret header value must not be compressed against data an
attacker can add to the same request, in SPDY (zlib) or h2 (HPACK)."""

import h2.config
import h2.connection
import hpack
import pytest

from tornado_spdy.http2 import H2Core
from tornado_spdy.spdy import SPDYConfiguration, SPDYConnection, events

VERSIONS = ["spdy/2", "spdy/3", "spdy/3.1"]
SECRET = b"session=7f3a9c2e51d04b8aa6e2"


def request(path: bytes, cookie: bytes = SECRET) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"GET"),
        (b":path", path),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b"cookie", cookie),
    ]


def syn_stream_sizes(version: str, paths: list[bytes]) -> list[int]:
    """The size of each SYN_STREAM a client sends for these paths, in order,
    on one session (one shared zlib stream)."""
    client = SPDYConnection(SPDYConfiguration(client_side=True, version=version))
    client.initiate_connection()
    client.data_to_send()
    sizes = []
    for path in paths:
        client.send_headers(client.get_next_available_stream_id(), request(path), True)
        sizes.append(len(client.data_to_send()))
    return sizes


@pytest.mark.parametrize("version", VERSIONS)
def test_guessing_the_cookie_in_the_path_does_not_shrink_the_request(version):
    # The attacker's classic probe: put a guess of the secret in the path and
    # watch the compressed size. A right guess must cost as much as a wrong one.
    right = b"/" + SECRET
    wrong = b"/" + b"session=00000000000000000000"[: len(SECRET)]
    assert len(right) == len(wrong)
    for first, second in ((right, wrong), (wrong, right)):
        warm, a, b = syn_stream_sizes(version, [b"/", first, second])
        sizes = dict(zip((first, second), (a, b), strict=True))
        assert sizes[right] >= sizes[wrong]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_secret_goes_out_stored_and_still_arrives(version):
    client = SPDYConnection(SPDYConfiguration(client_side=True, version=version))
    server = SPDYConnection(SPDYConfiguration(client_side=False, version=version))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    for stream_id in (1, 3, 5):
        client.send_headers(stream_id, request(b"/a"), True)
        wire = client.data_to_send()
        assert SECRET in wire  # verbatim: a stored block, not compressed
        [received] = [
            e
            for e in server.receive_data(wire)
            if isinstance(e, events.RequestReceived)
        ]
        assert dict(received.headers)[b"cookie"] == SECRET


def test_a_session_without_sensitive_headers_compresses_cookies():
    config = SPDYConfiguration(
        client_side=True, version="spdy/3.1", sensitive_headers=frozenset()
    )
    client = SPDYConnection(config)
    client.send_headers(1, request(b"/a"), True)
    assert SECRET not in client.data_to_send()


def test_h2_marks_cookies_and_credentials_never_indexed():
    client = H2Core(client_side=True)
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_headers(1, [*request(b"/a"), (b"authorization", b"Bearer x")], True)
    [received] = [
        e
        for e in server.receive_data(client.data_to_send())
        if type(e).__name__ == "RequestReceived"
    ]
    never = {
        bytes(h[0])
        for h in received.headers
        if isinstance(h, hpack.NeverIndexedHeaderTuple)
    }
    assert {b"cookie", b"authorization"} <= never
