"""Server push (`tornado_spdy.web.PushMixin`), over h2, SPDY/3.1, SPDY/3 and SPDY/2.

`SPDYClient` refuses pushes, so the tests drive a raw client core over a socket
(`tests.push_client.PushClient`: the ``h2`` library for h2, our
`tornado_spdy.spdy.SPDYConnection` for SPDY), which records each frame as it
came off the wire; HTTP/1.1 is read as raw bytes. Independent clients check
the same pushes byte for byte: ``nghttp -nv`` (h2), Node's ``http2`` client
(``tests/peers/push_client.js``) and spdy-transport's client
(``tests/peers/spdy_peer.js``) for SPDY/2, SPDY/3 and SPDY/3.1, over TLS with ALPN.

Each test runs a `SPDYServer` in its own event loop on 127.0.0.1 (cleartext by
prior knowledge, except the interop tests). Handlers and tests meet on
`asyncio.Event` objects and PING round trips, never on sleeps; every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import tornado.template
from tornado import web

from tests import server_util
from tests.peers_util import PEERS_DIR, require_node_package, require_peer, run_peer
from tests.push_client import CANCEL, PushClient, StreamResetError
from tornado_spdy import SPDYServer
from tornado_spdy.session import SessionParameters
from tornado_spdy.web import PushError, RequestHandler

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_tornado_errors")]

PROTOCOLS = ("h2", "spdy/3.1", "spdy/3", "spdy/2")
SPDY = ("spdy/3.1", "spdy/3", "spdy/2")

#: One scenario, start to end.
SCENARIO_TIMEOUT = 60.0
#: A handler waiting for the test to release it.
HOLD_TIMEOUT = 30.0
#: An external client process.
PEER_TIMEOUT = 60.0
#: Waits for what takes milliseconds when it works: where a known bug makes a
#: test fail by waiting, the wait is short.
QUICK = 5.0

KiB = 1024
MiB = 1024 * 1024


# ---------------------------------------------------------------------- data


@functools.cache
def asset_bytes(name: str, size: int) -> bytes:
    """The body of ``/asset/<name>?size=<size>``: text lines naming the asset
    (distinct per asset, compressible)."""
    line_no = 0
    parts = []
    total = 0
    while total < size:
        line = f"{name} line {line_no:07d}\n".encode()
        parts.append(line)
        total += len(line)
        line_no += 1
    return b"".join(parts)[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CONTENT_TYPES = {
    ".js": "application/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
    ".html": "text/html",
}


def asset_url(name: str, size: int | None = None) -> str:
    return f"/asset/{name}" + (f"?size={size}" if size is not None else "")


def page_url(push: Sequence[str] = (), **params: str) -> str:
    """``/page`` with its query: the paths to push, in order, and options."""
    query = [("push", p) for p in push] + list(params.items())
    return "/page" + ("?" + urllib.parse.urlencode(query) if query else "")


# ---------------------------------------------------------------- server state


class State:
    """What the handlers saw and did; named events for the tests."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)
        self.requests: list[dict[str, Any]] = []
        self.push_errors: list[str] = []
        self.closed: list[str] = []

    def event(self, name: str) -> asyncio.Event:
        return self._events[name]

    async def wait(self, name: str, timeout: float = HOLD_TIMEOUT) -> None:
        await asyncio.wait_for(self._events[name].wait(), timeout)

    def record(self, handler: web.RequestHandler) -> None:
        request = handler.request
        self.requests.append(
            {
                "path": request.uri,
                "framing": getattr(request, "framing", None),
                "priority": getattr(request, "priority", None),
                "pushed": getattr(request.connection, "pushed_by", None) is not None,
                "headers": dict(request.headers.get_all()),
            }
        )


class Base(RequestHandler):
    @property
    def state(self) -> State:
        return self.settings["state"]

    def prepare(self) -> None:
        self.state.record(self)

    def on_finish(self) -> None:
        self.state.event(f"finished:{self.request.uri}").set()


class Page(Base):
    """``/page?push=P&push=Q...``: pushes each P, then writes its body.

    Options: ``push_header=name:value`` adds a request header to every
    push; ``wait=N`` first waits for the test (events ``arrived:N`` /
    ``release:N``); ``flush_first=1`` sends the head before pushing (the push
    must fail with PushError); ``preload=1`` sets Link rel=preload headers
    instead of pushing; ``body=B`` is the body (``page`` by default).
    """

    async def get(self) -> None:
        wait = self.get_query_argument("wait", None)
        if wait:
            self.state.event(f"arrived:{wait}").set()
            await self.state.wait(f"release:{wait}")
        if self.get_query_argument("flush_first", None):
            self.write("head ")
            await self.flush()
        extra = dict(h.split(":", 1) for h in self.get_query_arguments("push_header"))
        for path in self.get_query_arguments("push"):
            try:
                self.push(path, extra or None)
            except PushError as exc:
                self.state.push_errors.append(str(exc))
        for link in self.get_query_arguments("link"):
            self.add_header("Link", link)
        self.write(self.get_query_argument("body", "page"))

    async def head(self) -> None:
        await self.get()


class Asset(Base):
    """``/asset/<name>?size=N&pieces=P``: `asset_bytes`, written in P pieces
    with a flush after each (1 piece by default)."""

    async def get(self, name: str) -> None:
        size = int(self.get_query_argument("size", "1000"))
        pieces = int(self.get_query_argument("pieces", "1"))
        data = asset_bytes(name, size)
        ext = os.path.splitext(name)[1]
        self.set_header(
            "Content-Type", CONTENT_TYPES.get(ext, "application/octet-stream")
        )
        step = -(-size // pieces) if size else 0
        for start in range(0, size, step or 1):
            self.write(data[start : start + step])
            if pieces > 1:
                await self.flush()


class Held(Base):
    """``/held/<name>``: waits for ``release:<name>`` (after sending a first
    chunk if ``first=1``), then sends the rest. Its close callback sets
    ``closed:<name>``."""

    name = ""

    async def get(self, name: str) -> None:
        self.name = name
        self.set_header("Content-Type", "application/javascript")
        if self.get_query_argument("first", None):
            self.write(f"first chunk of {name}\n")
            await self.flush()
        self.state.event(f"arrived:{name}").set()
        await self.state.wait(f"release:{name}")
        if self.name not in self.state.closed:
            self.write(f"rest of {name}\n")

    def on_connection_close(self) -> None:
        self.state.closed.append(self.name)
        self.state.event(f"closed:{self.name}").set()
        self.state.event(f"release:{self.name}").set()


def held_body(name: str, first: bool) -> bytes:
    return (f"first chunk of {name}\n" if first else "").encode() + (
        f"rest of {name}\n"
    ).encode()


class Nested(Base):
    """``/nested.js``: a pushed handler that tries to push ``/asset/deep.js``."""

    def get(self) -> None:
        try:
            self.push(asset_url("deep.js"))
        except PushError as exc:  # not expected: the push is just not made
            self.state.push_errors.append(str(exc))
        self.set_header("Content-Type", "application/javascript")
        self.write("nested")


class EchoHeaders(Base):
    """``/echo-headers.json``: the request's headers as JSON."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(dict(self.request.headers.get_all())))


class Template(Base):
    """``/template/<name>``: renders a template."""

    def get(self, name: str) -> None:
        self.render(name)


class Widget(web.UIModule):
    def render(self) -> str:
        return "<div>widget</div>"

    def css_files(self) -> list[str]:
        return ["mod.css"]

    def javascript_files(self) -> list[str]:
        return ["mod.js"]


TEMPLATES = {
    "static.html": (
        "<html><head>"
        '<link rel="stylesheet" href="{{ static_url("app.css", push=True) }}">'
        '<script src="{{ static_url("app.js") }}"></script>'
        "</head><body>"
        '<img src="{{ static_url("logo.png", push=False) }}">'
        "</body></html>"
    ),
    "module.html": "<html><head></head><body>{% module Widget() %}</body></html>",
}

STATIC_FILES = {
    "app.css": b"body { color: red }\n" * 40,
    "app.js": b"console.log('app');\n" * 60,
    "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "mod.css": b".widget { color: blue }\n" * 30,
    "mod.js": b"console.log('module');\n" * 50,
}


def make_app(state: State, static_path: str | None, **settings: Any) -> web.Application:
    return web.Application(
        [
            (r"/page", Page),
            (r"/asset/(.+)", Asset),
            (r"/held/(.+)", Held),
            (r"/nested\.js", Nested),
            (r"/echo-headers\.json", EchoHeaders),
            (r"/template/(.+)", Template),
            (r"/redirect", web.RedirectHandler, {"url": asset_url("target.js")}),
        ],
        state=state,
        static_path=static_path,
        template_loader=tornado.template.DictLoader(TEMPLATES),
        ui_modules={"Widget": Widget},
        **settings,
    )


# ---------------------------------------------------------------- the harness


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("push_static")
    for name, data in STATIC_FILES.items():
        (path / name).write_bytes(data)
    return str(path)


def scenario(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop, bounded by SCENARIO_TIMEOUT."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def bounded() -> None:
            await asyncio.wait_for(fn(*args, **kwargs), SCENARIO_TIMEOUT)

        asyncio.run(bounded())

    return wrapper


@dataclasses.dataclass
class Served:
    server: SPDYServer
    port: int
    state: State
    protocol: str
    tls: bool
    clients: list[PushClient] = dataclasses.field(default_factory=list)

    async def connect(self, protocol: str | None = None, **kwargs: Any) -> PushClient:
        client = await PushClient.connect(
            self.port, protocol or self.protocol, tls=self.tls, **kwargs
        )
        self.clients.append(client)
        return client

    def url(self, path: str) -> str:
        return server_util.local_url(self.tls, self.port, path)


@contextlib.asynccontextmanager
async def serve(
    protocol: str,
    tls: bool = False,
    static_path: str | None = None,
    **settings: Any,
) -> AsyncIterator[Served]:
    """An `SPDYServer` on 127.0.0.1 speaking ``protocol`` (cleartext, by prior
    knowledge; over TLS, whatever ALPN picks)."""
    state = State()
    app = make_app(state, static_path, **settings)
    server = SPDYServer(app, **server_util.server_options(protocol, tls))
    served = Served(server, server_util.listen(server), state, protocol, tls)
    try:
        yield served
    finally:
        for client in served.clients:
            await client.close()
        await server_util.close_gracefully(server, 10)


async def fetch_page(
    client: PushClient, path: str, timeout: float = 20.0, **kwargs: Any
) -> tuple[Any, list[Any]]:
    """Request ``path``; wait for it and for every push announced on it."""
    page = client.request(path, **kwargs)
    await client.wait(page.ended, timeout)
    for push in page.pushes:
        await client.wait(push.closed, timeout)
    return page, page.pushes


def push_frames(client: PushClient) -> list[Any]:
    return [f for f in client.wire if f.is_push]


def first_data_index(client: PushClient, stream_id: int) -> int:
    """Where the first DATA frame of ``stream_id`` is in the wire log."""
    for index, frame in enumerate(client.wire):
        if frame.type == "DATA" and frame.stream_id == stream_id:
            return index
    raise AssertionError(f"no DATA on stream {stream_id}: {client.wire_summary()}")


def xfail_for(protocols: tuple[str, ...], reason: str) -> Callable[[str], Any]:
    """``pytest.param(protocol)``, marked xfail(strict) for ``protocols``."""

    def param(protocol: str) -> Any:
        marks = (
            [pytest.mark.xfail(strict=True, reason=reason)]
            if protocol in protocols
            else []
        )
        return pytest.param(protocol, marks=marks, id=protocol)

    return param


all_protocols = pytest.mark.parametrize("protocol", PROTOCOLS)


# -------------------------------------------------------------- basic pushes


@all_protocols
@scenario
async def test_pushes_arrive_before_parent_data_with_even_increasing_ids(
    protocol: str,
) -> None:
    """Three pushes on one page and two on a second page of the same
    connection: each PUSH_PROMISE / push SYN_STREAM is on the wire before the
    parent's first DATA; promised ids are even and increasing across pages;
    the pushed request is the GET the handler asked for; bodies match."""
    async with serve(protocol) as served:
        client = await served.connect()
        names = [("a.js", 3000), ("b.css", 20_000), ("c.png", 100)]
        priority = 1 if protocol == "spdy/2" else 2
        page, pushes = await fetch_page(
            client,
            page_url([asset_url(n, s) for n, s in names]),
            priority=priority,
        )
        assert page.status == 200 and page.body == b"page"
        assert [p.path for p in pushes] == [asset_url(n, s) for n, s in names]
        for push, (name, size) in zip(pushes, names, strict=True):
            assert push.status == 200, push
            assert push.body == asset_bytes(name, size), push
            ext = os.path.splitext(name)[1]
            assert push.header("content-type") == CONTENT_TYPES[ext]
            assert push.request_header(":method") == "GET"
            assert push.parent_id == page.stream_id
        ids = [p.stream_id for p in pushes]
        assert ids == [2, 4, 6], ids

        frames = push_frames(client)
        assert [f.pushed_id for f in frames] == ids
        assert all(f.parent_id == page.stream_id for f in frames)
        first_data = first_data_index(client, page.stream_id)
        for frame in frames:
            assert client.wire.index(frame) < first_data, client.wire_summary()
        if protocol != "h2":
            # A push goes one priority below its parent.
            assert {f.priority for f in frames} == {priority + 1}, frames
            # Its response head is in the push's SYN_STREAM (spdy-transport
            # insists): no HEADERS frame on a pushed stream.
            assert not [f for f in client.wire if f.type == "HEADERS"]

        second, more = await fetch_page(
            client, page_url([asset_url("d.js"), asset_url("e.js")])
        )
        assert second.status == 200
        assert [p.stream_id for p in more] == [8, 10]
        assert [p.body for p in more] == [
            asset_bytes("d.js", 1000),
            asset_bytes("e.js", 1000),
        ]
        pushed = [r for r in served.state.requests if r["pushed"]]
        assert len(pushed) == 5
        # A push is one priority below its parent (0 is the most urgent).
        [page_priority] = {
            r["priority"] for r in served.state.requests if r["path"] == page.path
        }
        assert {r["priority"] for r in pushed[:3]} == {page_priority + 1}
        assert {r["framing"] for r in served.state.requests} == {protocol}


@all_protocols
@scenario
async def test_push_after_flush_raises_push_error(protocol: str) -> None:
    """push() after the head was sent raises PushError; nothing is pushed and
    the page completes."""
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(
            client, page_url([asset_url("late.js")], flush_first="1")
        )
        assert page.status == 200
        assert page.body == b"head page"
        assert pushes == [] and push_frames(client) == []
        assert len(served.state.push_errors) == 1
        assert "/asset/late.js" in served.state.push_errors[0]


@all_protocols
@scenario
async def test_push_of_a_404(protocol: str) -> None:
    """A push of a path the application does not have is delivered as what
    the application answers: a 404 on the pushed stream."""
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(
            client, page_url(["/missing.js", asset_url("ok.js")])
        )
        assert page.status == 200 and page.body == b"page"
        assert [(p.path, p.status) for p in pushes] == [
            ("/missing.js", 404),
            (asset_url("ok.js"), 200),
        ]
        assert b"404" in pushes[0].body
        assert pushes[1].body == asset_bytes("ok.js", 1000)


@all_protocols
@scenario
async def test_push_of_a_redirect(protocol: str) -> None:
    """A pushed redirect is pushed as the redirect; its target is not."""
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(client, page_url(["/redirect"]))
        assert page.status == 200
        assert len(pushes) == 1
        assert pushes[0].status == 301
        assert pushes[0].header("location") == asset_url("target.js")
        assert not any(r["path"].startswith("/asset/") for r in served.state.requests)


@all_protocols
@scenario
async def test_no_second_level_push(protocol: str) -> None:
    """A pushed handler's push() is refused quietly: one push only."""
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(client, page_url(["/nested.js"]))
        assert page.status == 200
        assert [(p.path, p.status, p.body) for p in pushes] == [
            ("/nested.js", 200, b"nested")
        ]
        await client.ping()
        assert len(push_frames(client)) == 1, client.wire_summary()
        assert served.state.push_errors == []
        assert not any("deep.js" in r["path"] for r in served.state.requests)


@all_protocols
@scenario
async def test_no_push_while_answering_head(protocol: str) -> None:
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(
            client, page_url([asset_url("a.js")]), method="HEAD"
        )
        assert page.status == 200 and page.body == b""
        assert pushes == [] and push_frames(client) == []
        # The same page by GET pushes.
        page, pushes = await fetch_page(client, page_url([asset_url("a.js")]))
        assert [p.path for p in pushes] == [asset_url("a.js")]


@all_protocols
@scenario
async def test_large_push_under_flow_control(protocol: str) -> None:
    """2 MiB pushed through the client's 64 KiB windows (stream and, in h2
    and SPDY/3.1, connection): WINDOW_UPDATEs let it through, the client's
    core sees no window overrun, and the body is intact."""
    size = 2 * MiB
    async with serve(protocol) as served:
        client = await served.connect(
            window=64 * KiB - 1 if protocol == "h2" else 64 * KiB
        )
        page, pushes = await fetch_page(
            client, page_url([asset_url("big.js", size), asset_url("small.css")])
        )
        assert client.error is None
        assert page.status == 200 and page.body == b"page"
        big, small = pushes
        assert big.reset_code is None and big.status == 200
        assert len(big.body) == size
        assert sha256(big.body) == sha256(asset_bytes("big.js", size))
        assert small.body == asset_bytes("small.css", 1000)
        largest = max(f.length for f in client.wire if f.type == "DATA")
        # h2: the client's SETTINGS_MAX_FRAME_SIZE; SPDY: our own limit.
        frame_limit = 16 * KiB if protocol == "h2" else SessionParameters.max_frame_size
        assert largest <= frame_limit


@all_protocols
@scenario
async def test_push_cancelled_by_client(protocol: str) -> None:
    """The client resets a pushed stream: the pushed handler's
    on_connection_close runs, the parent completes, and the connection goes
    on serving."""
    async with serve(protocol) as served:
        client = await served.connect()
        page = client.request(page_url(["/held/c.js?first=1"]))
        await client.wait_for_pushes(1)
        push = client.pushes[0]
        client.reset(push.stream_id, CANCEL[client.family])
        await asyncio.wait_for(served.state.wait("closed:c.js"), HOLD_TIMEOUT)
        await client.wait(page.ended)
        assert page.status == 200 and page.body == b"page"
        assert served.state.closed == ["c.js"]
        with pytest.raises(StreamResetError):
            await client.wait(push.ended)
        again, pushes = await fetch_page(client, page_url([asset_url("after.js")]))
        assert again.status == 200
        assert [p.body for p in pushes] == [asset_bytes("after.js", 1000)]


@pytest.mark.parametrize("early_hints", [False, True])
@scenario
async def test_h2_push_refused_by_settings(early_hints: bool) -> None:
    """An h2 client with SETTINGS_ENABLE_PUSH = 0 gets no PUSH_PROMISE and its
    page; with ``early_hints``, a 103 with Link rel=preload first and the same
    Link on the final response."""
    async with serve("h2", early_hints=early_hints) as served:
        client = await served.connect(enable_push=False)
        paths = [asset_url("a.js"), "/style.css?v=1"]
        page, pushes = await fetch_page(client, page_url(paths))
        assert client.error is None
        assert page.status == 200 and page.body == b"page"
        assert pushes == [] and push_frames(client) == []
        expected = [
            "</asset/a.js>; rel=preload; as=script",
            "</style.css?v=1>; rel=preload; as=style",
        ]
        if early_hints:
            assert len(page.informational) == 1, page.informational
            hint = page.informational[0]
            assert (b":status", b"103") in hint
            links = [v.decode() for n, v in hint if n == b"link"]
            assert links == expected
            assert page.header_list("link") == expected
        else:
            assert page.informational == []
            assert page.header_list("link") == []
        assert not any(r["pushed"] for r in served.state.requests)


REFUSAL_RACE_BUG = (
    "bug: a SPDY client's refusal (RST_STREAM REFUSED_STREAM) of a push the server "
    "already finished is dropped: SPDYConnection._on_rst_stream returns without an "
    "event for a stream it no longer has, so Session._on_stream_reset never sets "
    "_push_refused and every later page pushes again"
)


@pytest.mark.parametrize("protocol", SPDY)
@pytest.mark.parametrize(
    "pushed, early_hints",
    [
        ("/held/r.js?first=1", False),
        ("/held/r.js?first=1", True),
        pytest.param(
            asset_url("a.js"),
            False,
            id="finished-push",
        ),
    ],
)
@scenario
async def test_spdy_push_refused_by_client(
    protocol: str, pushed: str, early_hints: bool
) -> None:
    """A SPDY client refuses a push (RST_STREAM REFUSED_STREAM): the page
    completes, and later pages of the connection push nothing (with
    ``early_hints``: they carry Link rel=preload headers instead, and no
    103: SPDY has none). The refused push is one still being sent, or (the
    common case) a small one the server had already finished."""
    async with serve(protocol, early_hints=early_hints) as served:
        client = await served.connect(enable_push=False)
        page = client.request(page_url([pushed]))
        await client.wait(page.ended)
        assert page.status == 200 and page.body == b"page"
        assert len(push_frames(client)) == 1  # made, and refused by the core
        assert page.header_list("link") == []
        if pushed.startswith("/held/"):
            await served.state.wait("closed:r.js")
        second = client.request(page_url([asset_url("b.js")]))
        await client.wait(second.ended)
        assert second.status == 200
        await client.ping()
        assert len(push_frames(client)) == 1, client.wire_summary()
        expected = ["</asset/b.js>; rel=preload; as=script"] if early_hints else []
        assert second.header_list("link") == expected
        assert second.informational == []


@all_protocols
@scenario
async def test_same_url_pushed_once_per_connection(protocol: str) -> None:
    """A URL named twice by one page (also as a relative path) is pushed
    once; a later page of the same connection does not push it again; a new
    connection does."""
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(
            client,
            page_url(
                [asset_url("a.js"), asset_url("a.js"), "asset/a.js", "./asset/a.js"]
            ),
        )
        assert [p.path for p in pushes] == [asset_url("a.js")]
        second, more = await fetch_page(
            client, page_url([asset_url("a.js"), asset_url("b.js")])
        )
        assert [p.path for p in more] == [asset_url("b.js")]
        other = await served.connect()
        third, again = await fetch_page(other, page_url([asset_url("a.js")]))
        assert [p.path for p in again] == [asset_url("a.js")]
        assert again[0].body == asset_bytes("a.js", 1000)


@all_protocols
@scenario
async def test_streamed_pushed_response(protocol: str) -> None:
    """A pushed handler that flushes several times: its pieces arrive as
    several DATA frames and make up the body."""
    size, pieces = 50_000, 5
    async with serve(protocol) as served:
        client = await served.connect()
        url = f"/asset/stream.js?size={size}&pieces={pieces}"
        page, pushes = await fetch_page(client, page_url([url]))
        [push] = pushes
        assert push.status == 200
        assert push.body == asset_bytes("stream.js", size)
        data = [
            f
            for f in client.wire
            if f.type == "DATA" and f.stream_id == push.stream_id and f.length
        ]
        assert len(data) >= pieces
        # Streamed: no Content-Length, over every protocol.
        assert push.header("content-length") is None


@all_protocols
@pytest.mark.parametrize("accept_gzip", [False, True])
@scenario
async def test_push_with_gzip(protocol: str, accept_gzip: bool) -> None:
    """With compress_response, a pushed body is gzipped when the page request
    accepted gzip; over SPDY always (SPDY clients must take gzip)."""
    size = 20_000
    async with serve(protocol, compress_response=True) as served:
        client = await served.connect()
        headers = [("accept-encoding", "gzip, deflate")] if accept_gzip else []
        page, pushes = await fetch_page(
            client, page_url([asset_url("z.js", size)]), headers=headers
        )
        [push] = pushes
        assert push.status == 200
        gzipped = accept_gzip or protocol != "h2"
        if gzipped:
            assert push.header("content-encoding") == "gzip"
            assert len(push.body) < size
            assert gzip.decompress(push.body) == asset_bytes("z.js", size)
        else:
            assert push.header("content-encoding") is None
            assert push.body == asset_bytes("z.js", size)
        [pushed] = [r for r in served.state.requests if r["pushed"]]
        assert ("gzip" in pushed["headers"].get("Accept-Encoding", "")) == gzipped


@all_protocols
@scenario
async def test_push_across_goaway(protocol: str) -> None:
    """close_all_connections() while a push is in progress and a page is
    still being worked on: GOAWAY goes out; the promised push completes; the
    page accepted before the GOAWAY is served but pushes nothing new."""
    async with serve(protocol) as served:
        client = await served.connect()
        first = client.request(page_url(["/held/slow.js?first=1"]))
        await client.wait_for_pushes(1)
        held = client.pushes[0]
        second = client.request(page_url([asset_url("late.js")], wait="late"))
        await served.state.wait("arrived:late")
        closing = asyncio.ensure_future(served.server.close_all_connections())
        await client.wait(client.goaway)
        served.state.event("release:late").set()
        served.state.event("release:slow.js").set()
        await client.wait(first.ended, QUICK)
        await client.wait(held.ended, QUICK)
        await client.wait(second.ended, QUICK)
        assert first.status == 200 and first.body == b"page"
        assert held.status == 200 and held.body == held_body("slow.js", True)
        assert second.status == 200 and second.body == b"page"
        assert second.pushes == []
        assert len(push_frames(client)) == 1, client.wire_summary()
        await asyncio.wait_for(closing, 10)
        await client.wait(client.lost)


@all_protocols
@scenario
async def test_parent_data_waits_for_push_heads_over_spdy(protocol: str) -> None:
    """SPDY: a parent's DATA waits until its pushes' SYN_STREAMs (with their
    status) are sent, so a page whose pushed handler is slow holds its body
    back; h2 has sent PUSH_PROMISE already and the page goes ahead."""
    async with serve(protocol) as served:
        client = await served.connect()
        page = client.request(page_url(["/held/x.js"]))
        await served.state.wait("arrived:x.js")
        await served.state.wait(f"finished:{page.path}")
        await client.ping()
        if protocol == "h2":
            await client.wait(page.ended)
            assert page.body == b"page"
            assert len(page.pushes) == 1 and page.pushes[0].headers is None
        else:
            assert page.headers is not None  # SYN_REPLY went out
            assert not page.first_data.done(), client.wire_summary()
            assert page.pushes == []
        served.state.event("release:x.js").set()
        await client.wait(page.ended)
        [push] = page.pushes
        await client.wait(push.ended)
        assert push.body == held_body("x.js", False)
        [frame] = push_frames(client)
        assert client.wire.index(frame) < first_data_index(client, page.stream_id)


@all_protocols
@scenario
async def test_pushed_request_carries_page_headers(protocol: str) -> None:
    """The pushed GET carries the page request's cookies, user-agent,
    accept-language and accept-encoding, and not its other headers."""
    async with serve(protocol) as served:
        client = await served.connect()
        cookies = (
            [("cookie", "session=abc"), ("cookie", "theme=dark")]
            if protocol == "h2"
            else [("cookie", "session=abc; theme=dark")]
        )
        headers = [
            *cookies,
            ("user-agent", "PushTest/1.0"),
            ("accept-language", "fr-CH, fr;q=0.9"),
            ("accept-encoding", "identity"),
            ("x-secret", "not copied"),
        ]
        page, pushes = await fetch_page(
            client, page_url(["/echo-headers.json"]), headers=headers
        )
        [push] = pushes
        seen = json.loads(push.body)
        assert seen["Cookie"] == "session=abc; theme=dark"
        assert seen["User-Agent"] == "PushTest/1.0"
        assert seen["Accept-Language"] == "fr-CH, fr;q=0.9"
        assert seen["Accept-Encoding"] == "identity"
        assert "X-Secret" not in seen
        assert seen["Host"] == f"127.0.0.1:{served.port}"
        if protocol == "h2":
            # The PUSH_PROMISE shows the client the request it answers.
            assert push.request_header("user-agent") == "PushTest/1.0"
            assert push.request_header(":authority") == f"127.0.0.1:{served.port}"
            assert push.request_header(":scheme") == "http"


SPDY_REQUEST_HEADERS_BUG = (
    "bug: a SPDY push SYN_STREAM carries the synthesized request's headers "
    "(cookie, user-agent, accept-language, accept-encoding) next to the response "
    "headers; SPDY has no push request, so the client takes them as response "
    "headers of the pushed resource (the user's cookie ends up in the cached "
    "response). SPDYConnection._emit_push encodes push_request whole; only "
    ":scheme/:host/:path (SPDY/2: url) belong there"
)


@pytest.mark.parametrize("protocol", SPDY)
@scenario
async def test_spdy_push_response_headers_are_not_request_headers(
    protocol: str,
) -> None:
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(
            client,
            page_url([asset_url("a.js")]),
            headers=[("cookie", "session=secret"), ("user-agent", "PushTest/1.0")],
        )
        [push] = pushes
        names = {n for n, _ in push.headers or ()}
        assert not names & {b"cookie", b"user-agent", b"accept-encoding"}, push.headers


MAX_CONCURRENT_BUG = (
    "bug: over h2 the server opens pushed streams beyond the client's "
    "SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 5.1.2): promises are not counted "
    "(reserved), and StreamConnection.send_head relies on h2 raising "
    "TooManyStreamsError, which h2 only does for new streams, never for the "
    "response HEADERS of a reserved (pushed) stream; nghttp2 answers with GOAWAY "
    "PROTOCOL_ERROR 'push response HEADERS: max concurrent streams exceeded'"
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@scenario
async def test_pushes_respect_client_max_concurrent_streams(protocol: str) -> None:
    """A client that takes one pushed stream at a time
    (SETTINGS_MAX_CONCURRENT_STREAMS = 1) never has two open on the wire; the
    page completes and every push made completes."""
    async with serve(protocol) as served:
        client = await served.connect(max_concurrent_streams=1)
        paths = [asset_url("a.js", 200_000), asset_url("b.css"), asset_url("c.png")]
        page, pushes = await fetch_page(client, page_url(paths))
        assert page.status == 200 and page.body == b"page"
        assert pushes, "not a single push"
        for push in pushes:
            assert push.reset_code is None and push.status == 200, push
            name, _, size = push.path.removeprefix("/asset/").partition("?size=")
            assert push.body == asset_bytes(name, int(size or 1000))
        assert client.max_open_pushes() <= 1, client.wire_summary()


@all_protocols
@scenario
async def test_push_from_an_empty_response(protocol: str) -> None:
    """A page with no body still pushes; its end comes after the push is
    announced."""
    async with serve(protocol) as served:
        client = await served.connect()
        page, pushes = await fetch_page(client, page_url([asset_url("a.js")], body=""))
        assert page.status == 200 and page.body == b""
        assert [p.body for p in pushes] == [asset_bytes("a.js", 1000)]
        [frame] = push_frames(client)
        end = next(
            i
            for i, f in enumerate(client.wire)
            if f.stream_id == page.stream_id and f.end_stream
        )
        assert client.wire.index(frame) < end


@all_protocols
@scenario
async def test_push_path_forms_and_extra_headers(protocol: str) -> None:
    """Relative paths resolve against the page; an absolute URL of this host
    is pushed by its path, one of another host is not pushed; headers given to
    push() reach the pushed request."""
    async with serve(protocol) as served:
        client = await served.connect()
        host = f"127.0.0.1:{served.port}"
        paths = [
            "echo-headers.json",
            f"http://{host}/asset/abs.js",
            "http://elsewhere.example/asset/other.js",
            "/asset/../asset/dots.js",
        ]
        page, pushes = await fetch_page(
            client, page_url(paths, push_header="X-Push-Reason:preload")
        )
        assert [p.path for p in pushes] == [
            "/echo-headers.json",
            "/asset/abs.js",
            "/asset/dots.js",
        ]
        seen = json.loads(pushes[0].body)
        assert seen["X-Push-Reason"] == "preload"
        assert pushes[1].body == asset_bytes("abs.js", 1000)


PARENT_RESET_BUG = (
    "bug: SPDY, the client resets a page whose push has not sent its head: the "
    "core forgets the reserved push with its parent (SPDYConnection._forget) "
    "without telling the Tornado layer, and the pushed StreamConnection lives on; "
    "when its handler answers, Session._pump calls stream.send_head(), the core "
    "raises StreamClosedError, which send_head (it catches TOO_MANY_STREAMS only) "
    "and the head loop of _pump (no SEND_ERRORS handler, unlike its DATA loop) "
    "let escape: 'Exception in callback Session._flush' on every later flush, "
    "and the whole connection stalls"
)


@pytest.mark.parametrize("protocol", SPDY)
@scenario
async def test_spdy_parent_reset_while_push_head_pending(protocol: str) -> None:
    """SPDY holds a page's DATA until its pushes' heads are out; the client
    resets such a page while its pushed handler has not answered yet: no
    server error, the pushed handler ends, and the connection goes on serving.
    (In h2 the parent is not held, so it is over before it could be reset.)"""
    async with serve(protocol) as served:
        client = await served.connect()
        page = client.request(page_url(["/held/p.js"]))
        await served.state.wait("arrived:p.js")
        await served.state.wait(f"finished:{page.path}")
        client.reset(page.stream_id)
        await client.ping()
        served.state.event("release:p.js").set()
        await served.state.wait("finished:/held/p.js", QUICK)
        again, pushes = await fetch_page(
            client, page_url([asset_url("next.js")]), timeout=QUICK
        )
        assert again.status == 200 and again.body == b"page"
        assert [p.body for p in pushes] == [asset_bytes("next.js", 1000)]


# ---------------------------------------------------- static files and modules


@all_protocols
@pytest.mark.parametrize("static_push", [False, True])
@scenario
async def test_static_url_push_in_template(
    protocol: str, static_push: bool, static_dir: str
) -> None:
    """``static_url(path, push=True)`` pushes; with the ``static_push``
    setting a plain ``static_url(path)`` does too; ``push=False`` never."""
    async with serve(
        protocol, static_path=static_dir, static_push=static_push
    ) as served:
        client = await served.connect()
        page, pushes = await fetch_page(client, "/template/static.html")
        assert page.status == 200
        html = page.body.decode()
        if protocol != "h2":
            html = _maybe_gunzip(page)
        urls = re.findall(r'(?:href|src)="([^"]+)"', html)
        css, js, png = urls
        expected = [css, js] if static_push else [css]
        assert [p.path for p in pushes] == expected
        for push in pushes:
            name = urllib.parse.urlsplit(push.path).path.rsplit("/", 1)[1]
            assert push.status == 200
            assert _maybe_gunzip(push, text=False) == STATIC_FILES[name]
        assert "?v=" in css


@all_protocols
@pytest.mark.parametrize("static_push", [False, True])
@scenario
async def test_ui_module_files_pushed(
    protocol: str, static_push: bool, static_dir: str
) -> None:
    """A UI module's css and JavaScript files are pushed with ``static_push``."""
    async with serve(
        protocol, static_path=static_dir, static_push=static_push
    ) as served:
        client = await served.connect()
        page, pushes = await fetch_page(client, "/template/module.html")
        assert page.status == 200
        html = _maybe_gunzip(page)
        assert "<div>widget</div>" in html
        linked = re.findall(r'(?:href|src)="([^"]+)"', html)
        assert len(linked) == 2 and all("/static/mod." in u for u in linked)
        if static_push:
            assert sorted(p.path for p in pushes) == sorted(linked)
            for push in pushes:
                name = urllib.parse.urlsplit(push.path).path.rsplit("/", 1)[1]
                assert _maybe_gunzip(push, text=False) == STATIC_FILES[name]
        else:
            assert pushes == []


def _maybe_gunzip(exchange: Any, text: bool = True) -> Any:
    body = exchange.body
    if exchange.header("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return body.decode() if text else body


# --------------------------------------------------------- settings


@all_protocols
@pytest.mark.parametrize("push_preload", [False, True])
@scenario
async def test_push_preload_links(protocol: str, push_preload: bool) -> None:
    """``push_preload`` turns Link rel=preload headers into pushes, except
    those marked nopush; other rels are not pushed; the Links stay on the
    response."""
    links = [
        "</asset/a.css>; rel=preload; as=style",
        "</asset/b.js>; rel=preload; as=script; nopush",
        "</asset/c.js>; rel=preload; as=script, </asset/d.png>; rel=prefetch",
    ]
    async with serve(protocol, push_preload=push_preload) as served:
        client = await served.connect()
        query = urllib.parse.urlencode([("link", link) for link in links])
        page, pushes = await fetch_page(client, f"/page?{query}")
        assert page.status == 200
        assert page.header_list("link") == links
        if push_preload:
            assert [p.path for p in pushes] == ["/asset/a.css", "/asset/c.js"]
            assert pushes[0].body == asset_bytes("a.css", 1000)
        else:
            assert pushes == []


@all_protocols
@scenario
async def test_push_max(protocol: str) -> None:
    """``push_max`` caps the pushes of one response; with early_hints the rest
    are announced by Link headers (and, over h2, a 103)."""
    async with serve(protocol, push_max=2, early_hints=True) as served:
        client = await served.connect()
        paths = [asset_url(f"{i}.js") for i in range(5)]
        page, pushes = await fetch_page(client, page_url(paths))
        assert [p.path for p in pushes] == paths[:2]
        expected = [f"<{p}>; rel=preload; as=script" for p in paths[2:]]
        assert page.header_list("link") == expected
        if protocol == "h2":
            [hint] = page.informational
            assert [v.decode() for n, v in hint if n == b"link"] == expected
        # The cap is per response.
        second, more = await fetch_page(client, page_url([asset_url("x.js")]))
        assert [p.path for p in more] == [asset_url("x.js")]


def _digests(cookie_value: str) -> list[bytes]:
    raw = base64.urlsafe_b64decode(cookie_value + "=" * (-len(cookie_value) % 4))
    return [raw[i : i + 4] for i in range(0, len(raw), 4)]


def _url_digest(url: str) -> bytes:
    return hashlib.sha256(url.encode()).digest()[:4]


@all_protocols
@scenario
async def test_push_cookie_digest(protocol: str) -> None:
    """With ``push_cookie`` the response remembers what it pushed in a
    cookie; a returning client that sends it is not pushed those again."""
    async with serve(protocol, push_cookie="pushed") as served:
        a, b, c = asset_url("a.js"), asset_url("b.js"), asset_url("c.js")
        first_client = await served.connect()
        first, pushes = await fetch_page(first_client, page_url([a, b]))
        assert [p.path for p in pushes] == [a, b]
        [set_cookie] = first.header_list("set-cookie")
        value = re.match(r"pushed=([^;]*)", set_cookie)
        assert value is not None, set_cookie
        cookie = value.group(1)
        assert _digests(cookie) == [_url_digest(a), _url_digest(b)]
        assert "expires=" in set_cookie.lower()

        # A second visit (a new connection) with the cookie: nothing pushed.
        again = await served.connect()
        second, none = await fetch_page(
            again, page_url([a, b]), headers=[("cookie", f"pushed={cookie}")]
        )
        assert second.status == 200 and none == []
        assert second.header_list("set-cookie") == []

        # A page with one known and one new resource: only the new one.
        third_client = await served.connect()
        third, only_c = await fetch_page(
            third_client, page_url([a, c]), headers=[("cookie", f"pushed={cookie}")]
        )
        assert [p.path for p in only_c] == [c]
        [updated] = third.header_list("set-cookie")
        new_value = re.match(r"pushed=([^;]*)", updated)
        assert new_value is not None
        assert set(_digests(new_value.group(1))) == {
            _url_digest(a),
            _url_digest(b),
            _url_digest(c),
        }

        # A cookie that is not base64 is ignored, not an error.
        fourth_client = await served.connect()
        fourth, all_again = await fetch_page(
            fourth_client, page_url([a]), headers=[("cookie", "pushed=!!not*base64")]
        )
        assert fourth.status == 200 and [p.path for p in all_again] == [a]


# ------------------------------------------------------------------ HTTP/1.1


async def http1_exchange(
    port: int, path: str, headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request (Connection: close); every byte of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1"))
    try:
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


def split_http1(raw: bytes) -> list[tuple[str, list[tuple[str, str]], bytes]]:
    """The responses in ``raw``: (status line, headers, body); a 1xx has no
    body, the last response's body is the rest."""
    responses = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        status, *fields = head.decode("latin1").split("\r\n")
        headers = [tuple(f.split(": ", 1)) for f in fields]
        if status.split(" ")[1].startswith("1"):
            responses.append((status, headers, b""))
            continue
        responses.append((status, headers, raw))
        break
    return responses  # type: ignore[return-value]


@pytest.mark.parametrize("early_hints", [False, True])
@scenario
async def test_http1_push_is_a_no_op(early_hints: bool) -> None:
    """Over HTTP/1.1 push() does nothing; with ``early_hints`` a ``103 Early
    Hints`` with the Link headers precedes the response, which carries them
    too."""
    async with serve("http/1.1", early_hints=early_hints) as served:
        raw = await http1_exchange(served.port, page_url([asset_url("a.js"), "/b.css"]))
        responses = split_http1(raw)
        links = [
            ("Link", "</asset/a.js>; rel=preload; as=script"),
            ("Link", "</b.css>; rel=preload; as=style"),
        ]
        if early_hints:
            assert raw.startswith(
                b"HTTP/1.1 103 Early Hints\r\n"
                b"Link: </asset/a.js>; rel=preload; as=script\r\n"
                b"Link: </b.css>; rel=preload; as=style\r\n\r\n"
                b"HTTP/1.1 200 OK\r\n"
            ), raw[:300]
            assert len(responses) == 2
        else:
            assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:300]
            assert len(responses) == 1
        status, headers, body = responses[-1]
        assert status == "HTTP/1.1 200 OK"
        assert body == b"page"
        assert [h for h in headers if h[0] == "Link"] == (links if early_hints else [])
        assert [r["framing"] for r in served.state.requests] == ["http/1.1"]


@pytest.mark.parametrize(
    "alt_svc, expected",
    [
        (
            8443,
            [
                ("Alt-Svc", 'h2=":8443"; ma=86400'),
                ("Alternate-Protocol", "8443:npn-spdy/3.1"),
            ],
        ),
        ('h2="alt.example:443"', [("Alt-Svc", 'h2="alt.example:443"')]),
        (None, []),
    ],
)
@scenario
async def test_alt_svc_on_http1(alt_svc: Any, expected: list[tuple[str, str]]) -> None:
    async with serve("http/1.1", alt_svc=alt_svc) as served:
        raw = await http1_exchange(served.port, "/page")
        [(status, headers, body)] = split_http1(raw)
        assert status == "HTTP/1.1 200 OK" and body == b"page"
        found = [h for h in headers if h[0] in ("Alt-Svc", "Alternate-Protocol")]
        assert found == expected


@all_protocols
@scenario
async def test_no_alt_svc_on_multiplexed(protocol: str) -> None:
    async with serve(protocol, alt_svc=8443) as served:
        client = await served.connect()
        page, _ = await fetch_page(client, "/page")
        assert page.status == 200
        assert page.header("alt-svc") is None
        assert page.header("alternate-protocol") is None


# ------------------------------------------------------------------ priority


PRIORITY_CASES = [
    pytest.param("h2", "header", id="h2-urgency-header"),
    pytest.param("h2", "weight", id="h2-weight"),
    *[pytest.param(p, "syn_stream", id=p) for p in SPDY],
]


@pytest.mark.parametrize("protocol, how", PRIORITY_CASES)
@scenario
async def test_priority_small_urgent_response_overtakes_big_one(
    protocol: str, how: str
) -> None:
    """A 10 MB response at the lowest priority is in flight (its first DATA
    arrived) when a small one at the highest priority is asked for: the
    small one ends first, while the big one is still far from done."""
    big_size = 10 * 1000 * 1000
    small_size = 20_000
    async with serve(protocol) as served:
        client = await served.connect()
        low, high = (3, 0) if protocol == "spdy/2" else (7, 0)
        big_url = f"/asset/big.bin?size={big_size}&pieces=40"
        small_url = f"/asset/small.bin?size={small_size}"
        kwargs_low: dict[str, Any] = {}
        kwargs_high: dict[str, Any] = {}
        if how == "header":
            kwargs_low["headers"] = [("priority", "u=7")]
            kwargs_high["headers"] = [("priority", "u=0")]
        elif how == "weight":
            kwargs_low["weight"], kwargs_high["weight"] = 1, 256
        else:
            kwargs_low["priority"], kwargs_high["priority"] = low, high
        big = client.request(big_url, **kwargs_low)
        await client.wait(big.first_data)
        small = client.request(small_url, **kwargs_high)
        await client.wait(small.ended)
        received_big = len(big.body)
        assert not big.ended.done()
        await client.wait(big.ended, timeout=40)
        assert small.body == asset_bytes("small.bin", small_size)
        assert sha256(big.body) == sha256(asset_bytes("big.bin", big_size))
        assert received_big < big_size // 2, received_big
        ends = [
            f.stream_id
            for f in client.wire
            if f.end_stream and f.stream_id in (big.stream_id, small.stream_id)
        ]
        assert ends == [small.stream_id, big.stream_id]
        priorities = {r["path"]: r["priority"] for r in served.state.requests}
        assert priorities == {big_url: 7, small_url: 0}


@pytest.mark.parametrize("protocol", ["h2", "spdy/3.1"])
@scenario
async def test_priority_is_strict_under_a_shared_window(protocol: str) -> None:
    """With the connection window (h2, SPDY/3.1) used up by a low-priority
    response, a high-priority one is asked for; the next 32 KiB of window the
    client opens go to the high-priority response first, whole (strict
    priority, not round robin), and only the rest to the low-priority one."""
    big_size, small_size, grant = 1 * MiB, 20_000, 32 * KiB
    async with serve(protocol) as served:
        client = await served.connect(window=4 * MiB, auto_ack=False)
        low = {"weight": 1} if protocol == "h2" else {"priority": 7}
        high = {"weight": 256} if protocol == "h2" else {"priority": 0}
        big = client.request(f"/asset/big.bin?size={big_size}", **low)
        await client.until(lambda: len(big.body) >= 64 * KiB - 1)
        small_url = f"/asset/small.bin?size={small_size}"
        small = client.request(small_url, **high)
        await served.state.wait(f"finished:{small_url}")
        await client.ping()  # nothing more can come: the window is used up
        before_big, before = len(big.body), client.received()
        assert len(small.body) == 0 and before_big < 64 * KiB + 1
        client.open_window(grant)
        await client.until(lambda: client.received() >= before + grant)
        assert small.ended.done(), (len(small.body), len(big.body) - before_big)
        assert small.body == asset_bytes("small.bin", small_size)
        assert len(big.body) - before_big == grant - small_size
        client.auto_ack = True
        client.ack_all()
        client.open_window(big_size)
        await client.wait(big.ended)
        assert big.body == asset_bytes("big.bin", big_size)


@pytest.mark.parametrize("protocol", ["h2", "spdy/3.1"])
@scenario
async def test_round_robin_among_equal_priorities(protocol: str) -> None:
    """Two responses of the same priority, both waiting on a used-up
    connection window: the next four frames of window are shared frame by frame,
    half each (h2 frames are 16 KiB, SPDY's our own ``max_frame_size``)."""
    frame = 16 * KiB if protocol == "h2" else SessionParameters.max_frame_size
    size, grant = 4 * MiB, 4 * frame
    async with serve(protocol) as served:
        client = await served.connect(window=4 * MiB, auto_ack=False)
        same = {} if protocol == "h2" else {"priority": 3}
        first = client.request(f"/asset/one.bin?size={size}", **same)
        await client.until(lambda: len(first.body) >= 64 * KiB - 1)
        second_url = f"/asset/two.bin?size={size}"
        second = client.request(second_url, **same)
        await served.state.wait(f"finished:{second_url}")
        await client.ping()
        before_first, before = len(first.body), client.received()
        assert len(second.body) == 0
        client.open_window(grant)
        await client.until(lambda: client.received() >= before + grant)
        assert len(first.body) - before_first == grant // 2
        assert len(second.body) == grant // 2
        # Frame by frame: the grant went out as first, second, first, second.
        grant_frames = [
            f.stream_id
            for f in client.wire
            if f.type == "DATA" and f.stream_id in (first.stream_id, second.stream_id)
        ][-grant // frame :]
        assert grant_frames == [first.stream_id, second.stream_id] * 2
        priorities = {r["path"]: r["priority"] for r in served.state.requests}
        assert priorities[second_url] == 3


# ------------------------------------------------------------------ interop


async def execute(*argv: str, timeout: float = PEER_TIMEOUT) -> tuple[int, bytes, str]:
    """Run a client program to its end: exit status, stdout, stderr."""
    code, out, err = await run_peer(argv, timeout)
    return code, out, err.decode("utf-8", "replace")


async def run_json(*argv: str) -> dict[str, Any]:
    """Run a node peer that prints one JSON line."""
    code, out, err = await execute(*argv)
    text = out.decode("utf-8", "replace")
    assert code == 0, text[-3000:] + err[-3000:]
    return json.loads(text.strip().splitlines()[-1])


INTEROP_ASSETS = [("app.js", 300_000), ("style.css", 5_000), ("logo.png", 70_000)]
INTEROP_PAGE = page_url([asset_url(n, s) for n, s in INTEROP_ASSETS])
INTEROP_EXPECTED = {
    asset_url(n, s): (s, sha256(asset_bytes(n, s))) for n, s in INTEROP_ASSETS
}

_NGHTTP_FRAME = re.compile(
    r"\] (send|recv) (\w+) frame <length=(\d+), flags=(0x[0-9a-f]+), stream_id=(\d+)>"
)
_NGHTTP_PROMISED = re.compile(r"\(padlen=\d+, promised_stream_id=(\d+)\)")


@pytest.mark.peer
@scenario
async def test_nghttp_receives_pushes() -> None:
    """``nghttp -nv`` over TLS (ALPN h2): a PUSH_PROMISE for every asset, each
    before the page's DATA, promised ids 2, 4, 6, and each pushed stream's
    DATA adds up to its size and ends the stream. Then ``nghttp`` writes the
    bodies it received (the page's and the push's, in arrival order) and the
    push is checked byte for byte."""
    nghttp = require_peer("nghttp")
    async with serve("h2", tls=True) as served:
        # Browser-sized windows (2**16 - 1 per stream is nghttp's default).
        window = ["-w", "20", "-W", "24"]
        code, raw, err = await execute(nghttp, "-nv", *window, served.url(INTEROP_PAGE))
        out = raw.decode("utf-8", "replace")
        assert code == 0, out[-3000:] + err[-2000:]
        frames = [
            (d, t, int(n), int(f, 16), int(s))
            for d, t, n, f, s in _NGHTTP_FRAME.findall(out)
        ]
        [page_id] = {f[4] for f in frames if f[:2] == ("send", "HEADERS")}
        pushes = [f for f in frames if f[:2] == ("recv", "PUSH_PROMISE")]
        assert len(pushes) == len(INTEROP_ASSETS), out[-3000:]
        assert all(f[4] == page_id for f in pushes), pushes
        promised = [int(p) for p in _NGHTTP_PROMISED.findall(out)]
        assert promised == [2, 4, 6]
        first_page_data = next(
            i
            for i, f in enumerate(frames)
            if f[:2] == ("recv", "DATA") and f[4] == page_id
        )
        assert all(frames.index(f) < first_page_data for f in pushes)
        for stream_id, (name, size) in zip(promised, INTEROP_ASSETS, strict=True):
            data = [
                f for f in frames if f[:2] == ("recv", "DATA") and f[4] == stream_id
            ]
            assert sum(f[2] for f in data) == size, (name, data)
            assert data[-1][3] & 0x1, data[-1]  # END_STREAM
        for path in INTEROP_EXPECTED:
            assert f"recv (stream_id={page_id}) :path: {path}" in out
        assert "recv RST_STREAM" not in out and "recv GOAWAY" not in out

        # Bodies: one push, and a page body (one small DATA frame) that the
        # asset cannot contain, so stdout minus the page body is the push.
        marker = "<<the page>>"
        size = 300_000
        url = served.url(page_url([asset_url("app.js", size)], body=marker))
        code, raw, err = await execute(nghttp, *window, url)
        assert code == 0, err
    assert raw.count(marker.encode()) == 1
    pushed = raw.replace(marker.encode(), b"", 1)
    assert len(pushed) == size
    assert sha256(pushed) == sha256(asset_bytes("app.js", size))


@pytest.mark.peer
@scenario
async def test_nghttp_push_with_one_concurrent_stream() -> None:
    """``nghttp --max-concurrent-streams=1`` takes one pushed stream at a
    time: the server must not open a second before the first ends."""
    nghttp = require_peer("nghttp")
    async with serve("h2", tls=True) as served:
        code, raw, err = await execute(
            nghttp,
            "-nv",
            "--max-concurrent-streams=1",
            served.url(INTEROP_PAGE),
        )
        out = raw.decode("utf-8", "replace")
    goaway = [
        line
        for line in out.splitlines()
        if "recv GOAWAY" in line or "INVALID" in line or "error_code=PROTOCOL" in line
    ]
    assert goaway == [], "\n".join(goaway)
    assert code == 0, err
    ends = re.findall(r"recv DATA frame <length=\d+, flags=0x01, stream_id=(\d+)>", out)
    assert sorted(int(e) for e in ends if int(e) % 2 == 0) == [2, 4, 6]


@pytest.mark.peer
@scenario
async def test_node_http2_client_receives_pushes() -> None:
    """Node's built-in ``http2`` client (tests/peers/push_client.js) over TLS:
    every push arrives, with status 200 and the bytes of the asset."""
    node = require_peer("node")
    script = os.path.join(PEERS_DIR, "push_client.js")
    async with serve("h2", tls=True) as served:
        plan = json.dumps([{"path": INTEROP_PAGE}])
        result = await run_json(
            node, script, "--port", str(served.port), "--plan", plan
        )
    [page] = result["responses"]
    assert page["status"] == 200
    assert page["body_sha256"] == sha256(b"page")
    pushes = {p["path"]: p for p in result["pushes"]}
    assert set(pushes) == set(INTEROP_EXPECTED)
    for path, (size, digest) in INTEROP_EXPECTED.items():
        push = pushes[path]
        assert push["status"] == 200, push
        assert push["parent_path"] == INTEROP_PAGE
        assert (push["body_length"], push["body_sha256"]) == (size, digest), path
    assert result["alpn"] == "h2"


@pytest.mark.peer
@pytest.mark.parametrize("protocol", SPDY)
@scenario
async def test_spdy_transport_client_receives_pushes(protocol: str) -> None:
    """spdy-transport's client (tests/peers/spdy_peer.js) over TLS with ALPN:
    every push arrives, with status 200 and the bytes of the asset."""
    node = require_peer("node")
    require_node_package("spdy-transport")
    script = os.path.join(PEERS_DIR, "spdy_peer.js")
    async with serve(protocol, tls=True) as served:
        plan = json.dumps([{"method": "GET", "path": INTEROP_PAGE}])
        result = await run_json(
            node,
            script,
            "client",
            "--protocol",
            protocol,
            "--tls",
            "--port",
            str(served.port),
            "--plan",
            plan,
        )
        framings = {r["framing"] for r in served.state.requests}
    assert result["alpn"] == protocol
    assert framings == {protocol}
    [page] = result["responses"]
    assert page["status"] == 200
    assert page["body_sha256"] == sha256(b"page")
    pushes = {
        urllib.parse.urlsplit(p["path"])._replace(scheme="", netloc="").geturl(): p
        for p in result["pushes"]
    }
    assert set(pushes) == set(INTEROP_EXPECTED), result["pushes"]
    for path, (size, digest) in INTEROP_EXPECTED.items():
        push = pushes[path]
        assert push["status"] == 200, push
        assert push["parent_path"] == INTEROP_PAGE
        # SPDY: compress_response is off; the body is the asset itself.
        assert (push["body_length"], push["body_sha256"]) == (size, digest), path
