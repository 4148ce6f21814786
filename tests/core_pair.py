"""Helpers for the SPDY core tests: two `SPDYConnection` objects wired together
without sockets, and a hand-driven peer that writes raw frames.

- `make_pair` builds a connected client and server (SETTINGS exchanged).
- `pump` shuttles `data_to_send()` both ways until both sides are quiet,
  optionally cutting the bytes into pieces first.
- `RawPeer` builds frames by hand with `tornado_spdy.spdy.frames` and its own
  `HeaderCodec`, to play a peer that breaks the rules; it also parses (and
  inflates, keeping the zlib state in step) what a real connection sends it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence

from tornado_spdy.spdy import VERSIONS, SPDYConfiguration, SPDYConnection
from tornado_spdy.spdy import events as ev
from tornado_spdy.spdy.compression import HeaderCodec
from tornado_spdy.spdy.frames import (
    FLAG_FIN,
    FLAG_UNIDIRECTIONAL,
    DataFrame,
    Frame,
    FrameParser,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)
from tornado_spdy.spdy.profile import VersionProfile

ALL_VERSIONS = ("spdy/2", "spdy/3", "spdy/3.1")

Headers = list[tuple[bytes, bytes]]
Split = int | Sequence[int] | Callable[[bytes], Iterable[bytes]] | None

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/index.html"),
    (b":scheme", b"https"),
    (b":authority", b"example.com:443"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/html")]


def request(path: bytes = b"/index.html", method: bytes = b"GET", *extra) -> Headers:
    """A request header list in h2 names."""
    return [
        (b":method", method),
        (b":path", path),
        (b":scheme", b"https"),
        (b":authority", b"example.com:443"),
        *extra,
    ]


def make_pair(
    version: str,
    client: dict | None = None,
    server: dict | None = None,
    **config,
) -> tuple[SPDYConnection, SPDYConnection]:
    """A client and a server connection of ``version`` after the SETTINGS
    exchange. ``config`` applies to both sides; ``client`` / ``server`` hold
    settings for one side only."""
    c = SPDYConnection(
        SPDYConfiguration(
            client_side=True, version=version, **{**config, **(client or {})}
        )
    )
    s = SPDYConnection(
        SPDYConfiguration(
            client_side=False, version=version, **{**config, **(server or {})}
        )
    )
    c.initiate_connection()
    s.initiate_connection()
    client_events, server_events = pump(c, s)
    assert all(
        isinstance(e, (ev.RemoteSettingsChanged, ev.WindowUpdated))
        for e in client_events + server_events
    ), (client_events, server_events)
    return c, s


def pieces(data: bytes, split: Split) -> list[bytes]:
    """``data`` cut as ``split`` says: None (whole), an int (chunks of that
    size), a sequence of offsets, or a function returning the pieces."""
    if not data:
        return []
    if split is None:
        return [data]
    if callable(split):
        parts = [bytes(p) for p in split(data)]
        assert b"".join(parts) == data
        return parts
    if isinstance(split, int):
        return [data[i : i + split] for i in range(0, len(data), split)]
    cuts = sorted({0, len(data), *(p for p in split if 0 < p < len(data))})
    return [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def feed(conn: SPDYConnection, data: bytes, split: Split = None) -> list[ev.Event]:
    """Give ``data`` to ``conn.receive_data`` in the pieces ``split`` asks for."""
    events: list[ev.Event] = []
    for piece in pieces(data, split):
        events += conn.receive_data(piece)
    return events


def pump(
    client: SPDYConnection,
    server: SPDYConnection,
    split: Split = None,
    max_rounds: int = 10_000,
) -> tuple[list[ev.Event], list[ev.Event]]:
    """Shuttle bytes both ways until neither side has anything to send;
    the events each side saw."""
    client_events: list[ev.Event] = []
    server_events: list[ev.Event] = []
    for _ in range(max_rounds):
        to_server = client.data_to_send()
        to_client = server.data_to_send()
        if not to_server and not to_client:
            return client_events, server_events
        if to_server:
            server_events += feed(server, to_server, split)
        if to_client:
            client_events += feed(client, to_client, split)
    raise AssertionError("pump did not settle")


def of_type(events: Iterable[ev.Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def parse(version: str | VersionProfile, data: bytes) -> list[Frame]:
    """The frames in ``data`` (header blocks left compressed)."""
    profile = VERSIONS[version] if isinstance(version, str) else version
    return FrameParser(profile).feed(data)


class RawPeer:
    """A peer driven by hand: frames are built one by one, rules optional.

    :arg version: the SPDY version.
    :arg client_side: which side this peer plays (only for ``handshake``'s
        config of the real connection; frames carry whatever ids you give).
    """

    def __init__(self, version: str, client_side: bool = True):
        self.version = version
        self.profile = VERSIONS[version]
        self.client_side = client_side
        # One zlib stream each way, as a real peer has.
        self.codec = HeaderCodec(self.profile)  # compresses what we send
        self.inflater = HeaderCodec(  # inflates what the real connection sends
            self.profile, max_header_list_size=1 << 24, max_inflate_size=1 << 24
        )
        self.parser = FrameParser(self.profile)
        self.decoded: list[tuple[int, Headers]] = []

    # building frames

    def frame(self, frame: Frame) -> bytes:
        return frame.serialize(self.profile)

    def block(
        self, headers: Iterable[tuple[bytes, bytes]], to_wire: str | None = None
    ) -> bytes:
        """A compressed header block, serialized by hand (so it can break any
        rule). ``to_wire`` ("request", "response", "push", "trailers") renames
        h2 names to this version's and adds what a well-behaved peer adds;
        None sends the list exactly as given (upper case names and all).
        Repeated names are NUL-joined."""
        return self.codec.compress(self.serialize(self.wire_headers(headers, to_wire)))

    def wire_headers(self, headers, to_wire: str | None) -> Headers:
        headers = list(headers)
        if to_wire is None:
            return headers
        names = self.profile.wire_names
        if to_wire == "push" and self.profile.absolute_push_url:
            fields = dict(headers)
            url = fields[b":scheme"] + b"://" + fields[b":authority"] + fields[b":path"]
            headers = [
                (n, v)
                for n, v in headers
                if n not in (b":scheme", b":authority", b":path")
            ]
            headers.append((b":path", url))
        wire = [(names.get(n, n), v) for n, v in headers]
        if to_wire in ("request", "response", "push"):
            wire.append((names[b":version"], b"HTTP/1.1"))
        return wire

    def serialize(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """An uncompressed header block: count, then length-prefixed names and
        values (repeated names NUL-joined)."""
        fmt = ">H" if self.profile.length_size == 2 else ">I"
        fields: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            fields.setdefault(name, []).append(value)
        out = [struct.pack(fmt, len(fields))]
        for name, values in fields.items():
            value = b"\0".join(values)
            out += [
                struct.pack(fmt, len(name)),
                name,
                struct.pack(fmt, len(value)),
                value,
            ]
        return b"".join(out)

    def parse_block(self, raw: bytes) -> Headers:
        """An inflated header block as (wire name, value) pairs (NUL-joined
        values left joined)."""
        size = self.profile.length_size
        fmt = ">H" if size == 2 else ">I"
        (count,) = struct.unpack_from(fmt, raw)
        pos, out = size, []
        for _ in range(count):
            (n,) = struct.unpack_from(fmt, raw, pos)
            name = raw[pos + size : pos + size + n]
            pos += size + n
            (n,) = struct.unpack_from(fmt, raw, pos)
            out.append((name, raw[pos + size : pos + size + n]))
            pos += size + n
        assert pos == len(raw), "trailing bytes in header block"
        return out

    def syn_stream(
        self,
        stream_id: int,
        headers: Iterable[tuple[bytes, bytes]] = REQUEST,
        fin: bool = False,
        associated: int = 0,
        priority: int = 0,
        raw: bool = False,
    ) -> bytes:
        to_wire = None if raw else "request"
        flags = FLAG_FIN if fin else 0
        if associated:
            flags |= FLAG_UNIDIRECTIONAL
            to_wire = None if raw else "push"
        block = self.block(headers, to_wire)
        return self.frame(SynStreamFrame(stream_id, associated, priority, block, flags))

    def syn_reply(
        self, stream_id: int, headers=RESPONSE, fin: bool = False, raw: bool = False
    ) -> bytes:
        block = self.block(headers, None if raw else "response")
        return self.frame(SynReplyFrame(stream_id, block, FLAG_FIN if fin else 0))

    def headers(
        self, stream_id: int, headers, fin: bool = False, raw: bool = False
    ) -> bytes:
        block = self.block(headers, None if raw else "trailers")
        return self.frame(HeadersFrame(stream_id, block, FLAG_FIN if fin else 0))

    def data(self, stream_id: int, payload: bytes = b"", fin: bool = False) -> bytes:
        return self.frame(DataFrame(stream_id, payload, FLAG_FIN if fin else 0))

    def rst(self, stream_id: int, status: int) -> bytes:
        return self.frame(RstStreamFrame(stream_id, status))

    def settings(self, settings: dict[int, int]) -> bytes:
        return self.frame(SettingsFrame([(k, v, 0) for k, v in settings.items()]))

    def ping(self, ping_id: int) -> bytes:
        return self.frame(PingFrame(ping_id))

    def goaway(self, last: int, status: int = 0) -> bytes:
        return self.frame(GoAwayFrame(last, status))

    def window_update(self, stream_id: int, delta: int) -> bytes:
        return self.frame(WindowUpdateFrame(stream_id, delta))

    # reading what the real connection sent

    def read(self, data: bytes) -> list[Frame]:
        """Parse ``data``; header blocks are inflated in order (their header
        lists, with wire names and NUL-joined values, go to ``self.decoded``
        as ``(stream_id, headers)``)."""
        frames = self.parser.feed(data)
        for frame in frames:
            if isinstance(frame, (SynStreamFrame, SynReplyFrame, HeadersFrame)):
                raw = self.inflater.inflate(frame.header_block, frame.stream_id)
                self.decoded.append((frame.stream_id, self.parse_block(raw)))
        return frames

    def read_from(self, conn: SPDYConnection) -> list[Frame]:
        return self.read(conn.data_to_send())


def raw_peer_and(
    version: str, raw_is_client: bool = True, **config
) -> tuple[RawPeer, SPDYConnection]:
    """A `RawPeer` and a real connection of the other side, the real one's
    SETTINGS already read by the raw peer (so its output starts empty)."""
    peer = RawPeer(version, client_side=raw_is_client)
    conn = SPDYConnection(
        SPDYConfiguration(client_side=not raw_is_client, version=version, **config)
    )
    conn.initiate_connection()
    peer.read_from(conn)
    return peer, conn
