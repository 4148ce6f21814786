"""Rapid Reset (CVE-2023-44487): a peer that opens streams and resets them at
once is stopped with GOAWAY after the reset budget, while an honest client on
another connection is served."""

import asyncio
import logging

import h2.config
import h2.connection
import h2.events
import pytest
import tornado.web

from tornado_spdy import SPDYServer
from tornado_spdy.session import SessionParameters
from tornado_spdy.spdy import SPDYConfiguration, SPDYConnection, StatusCode
from tornado_spdy.spdy import events as spdy_events

ATTACK_STREAMS = 1500  # over the default burst of 1,000


class Hello(tornado.web.RequestHandler):
    def get(self):
        self.write("hello")


def request(port):
    return [
        (":method", "GET"),
        (":path", "/"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
    ]


class H2Peer:
    def __init__(self):
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )

    def start(self):
        self.conn.initiate_connection()

    def open_and_reset(self, stream_id, port):
        self.conn.send_headers(stream_id, request(port), end_stream=True)
        self.conn.reset_stream(stream_id)

    def get(self, stream_id, port):
        self.conn.send_headers(stream_id, request(port), end_stream=True)

    def receive(self, data):
        try:
            return self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            return []

    def goaway(self, events):
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event.error_code
        return None

    def ended(self, events, stream_id):
        return any(
            isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id
            for e in events
        )


class SpdyPeer:
    def __init__(self):
        self.conn = SPDYConnection(
            SPDYConfiguration(client_side=True, version="spdy/3.1")
        )

    def start(self):
        self.conn.initiate_connection()

    def open_and_reset(self, stream_id, port):
        self.conn.send_headers(stream_id, request(port), end_stream=True)
        self.conn.reset_stream(stream_id, StatusCode.CANCEL)

    def get(self, stream_id, port):
        self.conn.send_headers(stream_id, request(port), end_stream=True)

    def receive(self, data):
        try:
            return self.conn.receive_data(data)
        except Exception:
            return []

    def goaway(self, events):
        for event in events:
            if isinstance(event, spdy_events.ConnectionTerminated):
                return event.error_code
        return None

    def ended(self, events, stream_id):
        return any(
            isinstance(e, spdy_events.StreamEnded) and e.stream_id == stream_id
            for e in events
        )


PEERS = {"h2": (H2Peer, 0xB), "spdy/3.1": (SpdyPeer, 1)}


async def connect(port, peer):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    peer.start()
    writer.write(peer.conn.data_to_send())
    return reader, writer


async def honest_get(port, peer_class):
    peer = peer_class()
    reader, writer = await connect(port, peer)
    peer.get(1, port)
    writer.write(peer.conn.data_to_send())
    try:
        while True:
            data = await reader.read(65536)
            assert data, "connection closed before the response"
            events = peer.receive(data)
            writer.write(peer.conn.data_to_send())
            if peer.ended(events, 1):
                return True
    finally:
        writer.close()


@pytest.mark.parametrize("protocol", sorted(PEERS))
def test_rapid_reset_ends_the_session(protocol, caplog):
    peer_class, expected = PEERS[protocol]
    caplog.set_level(logging.INFO)

    async def scenario():
        app = tornado.web.Application([("/", Hello)])
        server = SPDYServer(
            app, plain_protocol=protocol, session_params=SessionParameters()
        )
        server.listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        attacker = peer_class()
        reader, writer = await connect(port, attacker)
        goaway = None
        stream_id = 1
        try:
            for _ in range(ATTACK_STREAMS // 50):
                for _ in range(50):
                    attacker.open_and_reset(stream_id, port)
                    stream_id += 2
                writer.write(attacker.conn.data_to_send())
                await writer.drain()
            # The server answers with GOAWAY, then closes.
            while goaway is None:
                data = await asyncio.wait_for(reader.read(65536), 10)
                if not data:
                    break
                goaway = attacker.goaway(attacker.receive(data))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
        served = await asyncio.wait_for(honest_get(port, peer_class), 10)
        server.stop()
        await asyncio.wait_for(server.close_all_connections(), 10)
        return goaway, served

    goaway, served = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert goaway == expected
    assert served
    assert any("stream resets" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("protocol", sorted(PEERS))
def test_resets_within_the_budget_are_served(protocol):
    """An honest client that cancels a few hundred streams keeps its session."""
    peer_class, _ = PEERS[protocol]

    async def scenario():
        app = tornado.web.Application([("/", Hello)])
        server = SPDYServer(app, plain_protocol=protocol)
        server.listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        peer = peer_class()
        reader, writer = await connect(port, peer)
        for stream_id in range(1, 400, 2):
            peer.open_and_reset(stream_id, port)
        peer.get(401, port)
        writer.write(peer.conn.data_to_send())
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, "the session was closed"
                events = peer.receive(data)
                assert peer.goaway(events) is None
                writer.write(peer.conn.data_to_send())
                if peer.ended(events, 401):
                    return True
        finally:
            writer.close()
            server.stop()
            await asyncio.wait_for(server.close_all_connections(), 10)

    assert asyncio.run(asyncio.wait_for(scenario(), 60))
