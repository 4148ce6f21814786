"""`tornado_spdy.SPDYClient` against independent servers and our own.

The servers:

- ``nghttpd`` (nghttp2): h2 over TLS (ALPN) and h2c by prior knowledge, with a
  push configured by ``-p/push.html=/pushed.js`` and ``--echo-upload``; its
  ``-v`` frame log is how the tests see connections and streams on its side;
- node's ``spdy-transport`` server (``tests/peers/spdy_peer.js server``): spdy/2,
  spdy/3 and spdy/3.1, over TLS (ALPN) and cleartext (prior knowledge), pushing
  ``/pushed.js`` with ``/push``; its stderr log names each connection and request;
- Tornado's own `tornado.httpserver.HTTPServer` (HTTP/1.1, over TLS the client's
  ALPN offer is simply not answered);
- our `SPDYServer`, in every protocol, over TLS and cleartext, with an
  application of its own (``make_app``) that records what it saw;
- raw servers made of a protocol core and a socket (``raw_server``), for wire
  sequences no real server makes on demand: RST_STREAM(REFUSED_STREAM),
  GOAWAY above the request, an RST_STREAM after a complete response; and
  silent listeners that accept and never write (timeouts).

``python -m tornado_spdy fetch`` runs as a subprocess against our server.

Each scenario runs in a fresh asyncio loop (``run``), bounded by
``asyncio.wait_for``; servers run in the same loop or as subprocesses, and
every wait for a peer is bounded too. Nothing synchronises on sleeps:
handlers and tests meet on `asyncio.Event` objects (the gate that holds
requests until N are in flight, the hold that keeps responses back until the
test lets them go), and peers' logs are awaited line by line.

Bodies are checked by sha256; the test pattern is ``byte[i] = i % 251``
(spdy_peer.js's).

Known bugs are marked ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import gc
import gzip
import hashlib
import json
import os
import re
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.simple_httpclient import HTTPTimeoutError, SimpleAsyncHTTPClient

from tests import server_util
from tests.peers_util import PEERS_DIR, require_node_package, require_peer
from tests.server_util import pattern, sha256

# tornado_spdy is imported inside the helpers, so that a broken package fails
# these tests one by one rather than the collection of the whole file.

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPDY_PEER = os.path.join(PEERS_DIR, "spdy_peer.js")

MULTIPLEXED = ("h2", "spdy/3.1", "spdy/3", "spdy/2")
SPDY_VERSIONS = ("spdy/2", "spdy/3", "spdy/3.1")

KiB = 1024
MiB = 1024 * 1024

HELLO = b"hello world"
PUSH_PARENT = b"pushed-parent"
PUSH_SIZE = 100_000
ECHO_SIZE = 2 * MiB
BIG_SIZE = 10 * MiB
CONCURRENT = 100
#: Tornado's client sends form-encoded POSTs by default; ours are bytes.
OCTETS = {"Content-Type": "application/octet-stream"}

#: One scenario, start to end.
SCENARIO_TIMEOUT = 90.0
#: A handler waiting for the rest of its group, or for the test.
HOLD_TIMEOUT = 30.0
#: A peer process starting, or a line awaited in its log.
PEER_TIMEOUT = 20.0
#: Waits for what takes milliseconds when it works.
QUICK = 5.0
#: The graceful close of a server at the end of a scenario.
CLOSE_TIMEOUT = 10.0

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_tornado_errors")]


# --------------------------------------------------------------------- data


class Sink:
    """A ``streaming_callback`` that hashes what it is given."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.length = 0
        self.calls = 0

    def __call__(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.length += len(chunk)
        self.calls += 1

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def check_stream(sink: Sink, response: HTTPResponse, n: int) -> None:
    """A streamed download of ``n`` pattern bytes arrived whole, in pieces."""
    assert response.code == 200
    assert response.body == b""  # streamed, not buffered
    assert sink.length == n
    assert sink.sha256 == sha256(pattern(n))
    assert sink.calls > 1


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run one scenario on a fresh event loop, bounded by SCENARIO_TIMEOUT."""

    async def bounded() -> Any:
        return await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT)

    return asyncio.run(bounded())


def make_client(**kwargs: Any) -> Any:
    """An `SPDYClient` that does not check certificates (unless told to)."""
    from tornado_spdy import SPDYClient

    return SPDYClient(force_instance=True, defaults={"validate_cert": False}, **kwargs)


@contextlib.contextmanager
def spdy_client(**kwargs: Any) -> Iterator[Any]:
    """`make_client`, closed at the end of the block."""
    client = make_client(**kwargs)
    try:
        yield client
    finally:
        client.close()


def only_session(client: Any) -> Any:
    """The one session of ``client``'s pool."""
    sessions = list(client.pool.sessions.values())
    assert len(sessions) == 1, sessions
    return sessions[0]


def opened_streams(session: Any) -> int:
    """How many streams a client session has opened (ids 1, 3, 5...)."""
    return (session._next_stream_id - 1) // 2


async def bounded(awaitable: Awaitable[Any], timeout: float = QUICK) -> Any:
    return await asyncio.wait_for(awaitable, timeout)


class FrameWatch:
    """The frames of ``client``'s sessions, through the frame tracer of
    ``python -m tornado_spdy fetch -v``: lines like ``[h2] recv
    GoAwayFrame(...)``, awaited as they come. Install before the first fetch."""

    def __init__(self, client: Any) -> None:
        from tornado_spdy.trace import frame_tracer

        self.lines: list[str] = []
        self._partial = ""
        self._changed = asyncio.Event()
        client.pool.trace = frame_tracer(self)  # type: ignore[arg-type]

    def write(self, text: str) -> int:
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        if complete:
            self.lines.extend(complete)
            self._changed.set()
        return len(text)

    def flush(self) -> None:
        pass

    async def wait(self, needle: str, timeout: float = QUICK) -> str:
        """The first frame line containing ``needle``, once it comes."""

        async def waiting() -> str:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(waiting(), timeout)
        except TimeoutError:
            shown = "\n".join(self.lines[-40:])
            raise AssertionError(f"no {needle!r} in frames:\n{shown}") from None


# ---------------------------------------------------- our server's application


class Gate:
    """Holds requests until ``n`` of them are in flight at once."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    def arrive(self, n: int) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.in_flight >= n:
            self.event.set()


class Hold:
    """Keeps ``/hold`` responses back until the test releases them, one by
    one or all together."""

    def __init__(self) -> None:
        self.arrived = 0
        self.arrival = asyncio.Event()
        self.tokens = asyncio.Semaphore(0)

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.tokens.release()

    async def wait_arrived(self, n: int) -> None:
        while self.arrived < n:
            self.arrival.clear()
            await bounded(self.arrival.wait())


@dataclasses.dataclass
class ServerState:
    """What our server saw."""

    connections: int = 0
    #: (path, framing, id of the connection or session, stream id) per request.
    requests: list[tuple[str, str, int, int | None]] = dataclasses.field(
        default_factory=list
    )
    gates: dict[str, Gate] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(Gate)
    )
    hold: Hold = dataclasses.field(default_factory=Hold)
    #: Set at teardown: ``/never`` handlers may end.
    never: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    #: Requests whose connection (stream) closed before they answered.
    aborted: list[str] = dataclasses.field(default_factory=list)
    aborted_event: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def paths(self) -> list[str]:
        return [r[0] for r in self.requests]

    def streams_of(self, path: str) -> int:
        return sum(1 for r in self.requests if r[0] == path)


class BaseHandler:
    """Mixed into every handler: records the request, echoes its framing."""

    def prepare(self: Any) -> None:
        request = self.request
        framing = getattr(request, "framing", None) or "none"
        connection = request.connection
        owner = getattr(connection, "session", None) or getattr(
            connection, "stream", connection
        )
        self.settings["state"].requests.append(
            (request.path, framing, id(owner), getattr(connection, "stream_id", None))
        )
        self.set_header("X-Framing", framing)

    def on_connection_close(self: Any) -> None:
        super().on_connection_close()  # type: ignore[misc]
        state = self.settings["state"]
        state.aborted.append(self.request.path)
        state.aborted_event.set()


class Handler(BaseHandler, web.RequestHandler):
    pass


class HelloHandler(Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.set_header("X-Test", "yes")
        self.write(HELLO)


class EchoHandler(Handler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.write(self.request.body)


@web.stream_request_body
class ShaHandler(Handler):
    """``POST /sha``: the length and sha256 of the streamed request body."""

    def prepare(self) -> None:
        super().prepare()
        self.digest = hashlib.sha256()
        self.length = 0

    def data_received(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.length += len(chunk)

    def post(self) -> None:
        self.write({"length": self.length, "sha256": self.digest.hexdigest()})


class BytesHandler(Handler):
    async def get(self, size: str) -> None:
        await server_util.write_pattern(self, int(size))


class GateHandler(Handler):
    """``/gate/<group>/<n>``: answers once ``n`` requests of the group are in
    flight together (503 if that never happens)."""

    async def get(self, group: str, size: str) -> None:
        gate = self.settings["state"].gates[group]
        gate.arrive(int(size))
        try:
            await asyncio.wait_for(gate.event.wait(), HOLD_TIMEOUT)
        except TimeoutError:
            self.set_status(503)
        finally:
            gate.in_flight -= 1
        self.write(f"{gate.max_in_flight}")


class HoldHandler(Handler):
    """``/hold``: answers when the test releases it (``state.hold``)."""

    async def get(self) -> None:
        hold = self.settings["state"].hold
        hold.arrived += 1
        hold.arrival.set()
        await asyncio.wait_for(hold.tokens.acquire(), HOLD_TIMEOUT)
        self.write(HELLO)


class NeverHandler(Handler):
    """``/never``: no answer until the end of the test (then a late one, if
    anyone still listens)."""

    async def get(self) -> None:
        await self.settings["state"].never.wait()
        with contextlib.suppress(Exception):
            self.finish(b"too late")


class RedirectHandler(Handler):
    """``/redirect/<n>``: n redirects, then ``/hello``."""

    def get(self, count: str) -> None:
        n = int(count)
        self.redirect("/hello" if n == 0 else f"/redirect/{n - 1}")


GZIP_TEXT = b"compressible line of text\n" * 4000


class GzipHandler(Handler):
    """``/gzip``: a gzip-encoded body, whatever the request said."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.set_header("Content-Encoding", "gzip")
        self.write(gzip.compress(GZIP_TEXT))


class PriorityHandler(Handler):
    def get(self) -> None:
        self.write(str(getattr(self.request, "priority", None)))


def _push_handler_class() -> type:
    from tornado_spdy.web import RequestHandler as PushingHandler

    class PushHandler(BaseHandler, PushingHandler):
        """``/push``: pushes ``/pushed.js``."""

        def get(self) -> None:
            self.push("/pushed.js")
            self.set_header("Content-Type", "text/plain")
            self.write(PUSH_PARENT)

    return PushHandler


class PushedHandler(Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/javascript")
        self.write(pattern(PUSH_SIZE))


def make_app(state: ServerState) -> web.Application:
    return web.Application(
        [
            (r"/hello", HelloHandler),
            (r"/echo", EchoHandler),
            (r"/sha", ShaHandler),
            (r"/bytes/(\d+)", BytesHandler),
            (r"/gate/(\w+)/(\d+)", GateHandler),
            (r"/hold", HoldHandler),
            (r"/never", NeverHandler),
            (r"/redirect/(\d+)", RedirectHandler),
            (r"/gzip", GzipHandler),
            (r"/priority", PriorityHandler),
            (r"/push", _push_handler_class()),
            (r"/pushed.js", PushedHandler),
        ],
        state=state,
    )


@dataclasses.dataclass
class Served:
    port: int
    state: ServerState
    tls: bool
    server: Any

    def url(self, path: str) -> str:
        return server_util.local_url(self.tls, self.port, path)


@contextlib.asynccontextmanager
async def serve(
    tls: bool = True,
    state: ServerState | None = None,
    port: int = 0,
    tornado_server: bool = False,
    sndbuf: int | None = None,
    rcvbuf: int | None = None,
    **kwargs: Any,
) -> AsyncIterator[Served]:
    """Our `SPDYServer` (or Tornado's `HTTPServer`) on 127.0.0.1, counting the
    connections it accepts (whose socket buffers are ``sndbuf`` and
    ``rcvbuf`` bytes, when given)."""
    from tornado_spdy import SPDYServer
    from tornado_spdy.testing import development_ssl_context

    if state is None:
        state = ServerState()
    base = HTTPServer if tornado_server else SPDYServer
    counting_server = server_util.counting(base, state)
    if tls:
        kwargs["ssl_options"] = development_ssl_context()
    server = counting_server(make_app(state), **kwargs)
    served = Served(
        server_util.listen(server, port, sndbuf=sndbuf, rcvbuf=rcvbuf),
        state,
        tls,
        server,
    )
    try:
        yield served
    finally:
        state.never.set()
        state.hold.release(1000)
        await server_util.close_gracefully(server, CLOSE_TIMEOUT)


# ------------------------------------------------------------- peer processes


class ProcessLog:
    """Lines a peer process writes, read as they come."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(
        self, predicate: Callable[[str], bool], timeout: float = PEER_TIMEOUT
    ) -> str:
        """Wait until ``predicate(text)`` holds; the text."""

        async def waiting() -> str:
            while not predicate(self.text):
                if self._task.done():
                    raise AssertionError(f"peer exited; log:\n{self.text[-3000:]}")
                self._changed.clear()
                await self._changed.wait()
            return self.text

        return await asyncio.wait_for(waiting(), timeout)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._task, QUICK)


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), QUICK)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def free_port() -> int:
    """A port nothing listens on now (nghttpd cannot be told port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Peer:
    port: int
    log: ProcessLog
    tls: bool

    def url(self, path: str) -> str:
        return server_util.local_url(self.tls, self.port, path)


@pytest.fixture(scope="module")
def htdocs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """nghttpd's document root."""
    root = tmp_path_factory.mktemp("htdocs")
    (root / "hello.txt").write_bytes(HELLO)
    (root / "push.html").write_bytes(PUSH_PARENT)
    (root / "pushed.js").write_bytes(pattern(PUSH_SIZE))
    (root / "big.bin").write_bytes(pattern(BIG_SIZE))
    return str(root)


@contextlib.asynccontextmanager
async def nghttpd(tls: bool, htdocs: str, *extra: str) -> AsyncIterator[Peer]:
    """nghttpd on 127.0.0.1 with ``-v`` (its frame log in ``Peer.log``),
    ``--echo-upload``, ``/pushed.js`` pushed with ``/push.html``, and
    ``extra`` options."""
    from tornado_spdy.tls import development_certificate

    program = require_peer("nghttpd")
    port = free_port()
    argv = [
        program,
        "-v",
        "-a",
        "127.0.0.1",
        "-d",
        htdocs,
        "--echo-upload",
        "-p/push.html=/pushed.js",
        *extra,
        str(port),
    ]
    if tls:
        certfile, keyfile = development_certificate()
        argv += [keyfile, certfile]
    else:
        argv.append("--no-tls")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    log = ProcessLog(proc.stdout)
    try:
        await log.wait_for(lambda text: f"listen 127.0.0.1:{port}" in text)
        yield Peer(port, log, tls)
    finally:
        await stop_process(proc)
        await log.close()


def nghttpd_connections(text: str) -> set[str]:
    return set(re.findall(r"^\[id=(\d+)\]", text, re.M))


def nghttpd_requests(text: str) -> list[tuple[str, str, str]]:
    """(connection id, stream id, path) of each request nghttpd received."""
    return re.findall(
        r"^\[id=(\d+)\] \[[ \d.]+\] recv \(stream_id=(\d+)\) :path: (\S+)", text, re.M
    )


@contextlib.asynccontextmanager
async def spdy_peer(protocol: str, tls: bool) -> AsyncIterator[Peer]:
    """spdy_peer.js's server (spdy-transport) on 127.0.0.1; its stderr log in
    ``Peer.log``."""
    from tornado_spdy.tls import development_certificate

    node = require_peer("node")
    require_node_package("spdy-transport")
    argv = [node, SPDY_PEER, "server", "--protocol", protocol]
    if tls:
        certfile, keyfile = development_certificate()
        argv += ["--tls", "--cert", certfile, "--key", keyfile]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    log = ProcessLog(proc.stderr)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), PEER_TIMEOUT)
        assert line, f"spdy_peer.js did not start:\n{log.text}"
        yield Peer(json.loads(line)["port"], log, tls)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        await stop_process(proc)
        await log.close()


def node_connections(text: str) -> list[str]:
    return re.findall(r"conn (\d+) open", text)


def node_requests(text: str) -> list[tuple[str, str, str]]:
    """(connection, method, path) of each request the node server received."""
    return re.findall(r"conn (\d+) stream \d+ (\w+) (\S+) request body", text)


# ======================================================================
# What every server is put through
# ======================================================================


async def get_post_download(
    client: Any,
    url: Callable[[str], str],
    framing: str,
    *,
    hello_path: str = "/hello",
    big_path: str = f"/bytes/{BIG_SIZE}",
    **options: Any,
) -> tuple[HTTPResponse, HTTPResponse]:
    """GET `HELLO` at ``hello_path``, POST 2 MiB to ``/echo`` (echoed back),
    download ``BIG_SIZE`` pattern bytes from ``big_path`` by
    ``streaming_callback``: each in ``framing``. The GET's and the POST's
    responses, for the caller's own checks."""
    hello = await client.fetch(url(hello_path), **options)
    assert hello.code == 200 and hello.body == HELLO
    assert hello.framing == framing

    body = pattern(ECHO_SIZE)
    echo = await client.fetch(
        url("/echo"), method="POST", body=body, headers=OCTETS, **options
    )
    assert echo.code == 200 and echo.framing == framing
    assert sha256(echo.body) == sha256(body)

    sink = Sink()
    big = await client.fetch(url(big_path), streaming_callback=sink, **options)
    check_stream(sink, big, BIG_SIZE)
    assert big.framing == framing
    return hello, echo


async def get_hello_at_once(client: Any, url: str, **options: Any) -> None:
    """``CONCURRENT`` GETs of `HELLO` at ``url``, all started at once."""
    responses = await asyncio.gather(
        *(client.fetch(url, **options) for _ in range(CONCURRENT))
    )
    assert {(r.code, r.body) for r in responses} == {(200, HELLO)}


async def get_pushing(
    client: Any, url: Callable[[str], str], path: str, **options: Any
) -> HTTPResponse:
    """GET ``path``, whose response pushes ``/pushed.js``: the parent lists
    the push in ``associated_urls`` and ``push_callback`` gets it whole.
    Returns the push."""
    pushed: asyncio.Future[HTTPResponse] = asyncio.get_running_loop().create_future()
    parent = await client.fetch(url(path), push_callback=pushed.set_result, **options)
    assert parent.code == 200 and parent.body == PUSH_PARENT
    push_url = url("/pushed.js")
    assert parent.associated_urls == [push_url]
    push = await bounded(pushed)
    assert push.code == 200 and push.effective_url == push_url
    assert push.associated_to_url == url(path)
    assert sha256(push.body) == sha256(pattern(PUSH_SIZE))
    return push


async def get_pushed_again(client: Any, push_url: str, **options: Any) -> None:
    """A GET of what was pushed is answered from the push cache, on no
    stream of its own."""
    session = only_session(client)
    streams = opened_streams(session)
    again = await client.fetch(push_url, **options)
    assert again.code == 200 and getattr(again, "pushed", False)
    assert sha256(again.body) == sha256(pattern(PUSH_SIZE))
    assert opened_streams(session) == streams


# ======================================================================
# Our SPDYServer: every protocol, TLS and cleartext
# ======================================================================

#: mode: (tls, server options, client options, fetch options, expected framing)
OWN_MODES: dict[
    str, tuple[bool, dict[str, Any], dict[str, Any], dict[str, Any], str]
] = {
    "tls-alpn": (True, {}, {}, {}, "h2"),
    **{
        f"tls-{p}": (True, {}, {}, {"protocol": p}, p)
        for p in (*MULTIPLEXED, "http/1.1")
    },
    "plain-http/1.1": (False, {}, {}, {}, "http/1.1"),
    "plain-h2-prior-knowledge": (
        False,
        {"plain_protocol": "h2"},
        {"plain_protocol": "h2"},
        {},
        "h2",
    ),
    **{
        f"plain-{p}": (False, {"plain_protocol": "sniff"}, {}, {"protocol": p}, p)
        for p in ("spdy/3.1", "spdy/3", "spdy/2")
    },
}


@pytest.mark.parametrize("mode", list(OWN_MODES))
def test_own_server(mode: str) -> None:
    """GET, POST of 2 MiB echoed, 10 MiB streamed download (streaming_callback),
    all on one connection (HTTP/1.1: one each), in the framing asked for, seen
    from both sides."""
    tls, server_options, client_options, options, framing = OWN_MODES[mode]

    async def scenario() -> None:
        async with serve(tls, **server_options) as served:
            with spdy_client(**client_options) as client:
                hello, _ = await get_post_download(
                    client, served.url, framing, **options
                )
                assert hello.headers["X-Framing"] == framing
            state = served.state
            assert {r[1] for r in state.requests} == {framing}
            if framing in MULTIPLEXED:
                assert state.connections == 1
                assert len({r[2] for r in state.requests}) == 1
                assert [r[3] for r in state.requests] == [1, 3, 5]

    run(scenario)


@pytest.mark.parametrize(
    "mode", [m for m in OWN_MODES if OWN_MODES[m][4] in MULTIPLEXED and m != "tls-alpn"]
)
def test_finished_requests_leave_no_cyclic_garbage(mode: str) -> None:
    """With the cyclic garbage collector off, the streams and handlers of
    finished requests are freed all the same, on both sides: nothing they
    leave behind waits for a collection (a pause that grows with the load)."""
    from tornado_spdy.stream import StreamConnection

    tls, server_options, client_options, options, framing = OWN_MODES[mode]
    kinds = (StreamConnection, web.RequestHandler)

    def alive() -> list[Any]:
        return [obj for obj in gc.get_objects() if isinstance(obj, kinds)]

    async def scenario() -> None:
        async with serve(tls, **server_options) as served:
            with spdy_client(**client_options) as client:
                await client.fetch(served.url("/hello"), **options)  # warm up
                gc.collect()
                gc.disable()
                try:
                    for _ in range(10):
                        await client.fetch(served.url("/hello"), **options)
                        await client.fetch(
                            served.url("/echo"),
                            method="POST",
                            body=b"x" * 100_000,
                            headers=OCTETS,
                            **options,
                        )
                    # Freed by reference counting as their last callbacks
                    # run; a cycle would stay until the deadline.
                    deadline = asyncio.get_running_loop().time() + 5
                    while alive() and asyncio.get_running_loop().time() < deadline:
                        await asyncio.sleep(0.01)
                    assert not alive(), collections.Counter(
                        type(o).__name__ for o in alive()
                    )
                finally:
                    gc.enable()

    run(scenario)


@pytest.mark.parametrize(
    "mode", [m for m in OWN_MODES if m.startswith("plain-") and "http/1.1" not in m]
)
def test_partly_sent_writes_keep_the_bytes_in_order(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In cleartext a large batch of frames goes out in one ``sendmsg`` of the
    core's buffers; when the kernel takes only part of it (the server's
    socket buffers are made small), the rest follows through the IOStream.
    The 10 MiB download (and the 2 MiB upload) arrive whole and in order."""
    from tornado_spdy.session import Session

    partly_sent = []
    send_vectored = Session._send_vectored

    def counting(self: Session, sock: socket.socket, buffers: list[Any]) -> Any:
        size = sum(map(len, buffers))
        left = send_vectored(self, sock, buffers)
        if 0 < sum(map(len, left)) < size and not self.client_side:
            partly_sent.append(size)
        return left

    monkeypatch.setattr(Session, "_send_vectored", counting)
    _, server_options, client_options, options, framing = OWN_MODES[mode]

    async def scenario() -> None:
        async with serve(False, sndbuf=4096, rcvbuf=4096, **server_options) as served:
            with spdy_client(**client_options) as client:
                await get_post_download(client, served.url, framing, **options)

    run(scenario)
    assert partly_sent  # else the test missed the case it is about


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_hundred_concurrent_fetches_one_connection(protocol: str) -> None:
    """100 fetches at once to one origin: all in flight together on the server
    (a gate holds each until all 100 arrived), over exactly one TCP connection
    (counted where the server accepts them), one session, 100 streams."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                url = served.url(f"/gate/g/{CONCURRENT}")
                responses = await asyncio.gather(
                    *(client.fetch(url, protocol=protocol) for _ in range(CONCURRENT))
                )
                session = only_session(client)
                assert opened_streams(session) == CONCURRENT
            assert [r.code for r in responses] == [200] * CONCURRENT
            assert {r.framing for r in responses} == {protocol}
            assert {r.body for r in responses} == {str(CONCURRENT).encode()}
            state = served.state
            assert state.connections == 1
            assert len({r[2] for r in state.requests}) == 1
            assert len({r[3] for r in state.requests}) == CONCURRENT

    run(scenario)


@pytest.mark.parametrize(
    "protocol",
    ["h2", "spdy/3.1", "spdy/3", "spdy/2"],
)
def test_server_stream_limit(protocol: str) -> None:
    """Our server allows 10 concurrent streams; 100 fetches at once all
    succeed on one connection, at most 10 in flight on the server (a gate
    proves 10 were)."""

    async def scenario() -> None:
        async with serve(True, max_concurrent_streams=10) as served:
            with spdy_client() as client:
                responses = await asyncio.gather(
                    *(
                        client.fetch(served.url("/gate/g/10"), protocol=protocol)
                        for _ in range(CONCURRENT)
                    ),
                    return_exceptions=True,
                )
            codes = collections.Counter(getattr(r, "code", repr(r)) for r in responses)
            assert codes == {200: CONCURRENT}
            assert served.state.gates["g"].max_in_flight == 10
            assert served.state.connections == 1

    run(scenario)


# ======================================================================
# Tornado's own HTTPServer (HTTP/1.1)
# ======================================================================


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_tornado_httpserver(tls: bool) -> None:
    """Against Tornado's HTTPServer the client speaks HTTP/1.1 (over TLS, the
    server ignores the ALPN offer): GET, POST 2 MiB, 10 MiB streamed."""

    async def scenario() -> None:
        async with serve(tls, tornado_server=True) as served:
            with spdy_client() as client:
                await get_post_download(client, served.url, "http/1.1")
            assert served.state.streams_of("/hello") == 1

    run(scenario)


# ======================================================================
# nghttpd (h2 over TLS, h2c by prior knowledge)
# ======================================================================

NGHTTPD_MODES = {"tls": (True, {}), "h2c": (False, {"protocol": "h2"})}


@pytest.mark.peer
@pytest.mark.parametrize("mode", list(NGHTTPD_MODES))
def test_nghttpd(mode: str, htdocs: str) -> None:
    """GET, POST 2 MiB (``--echo-upload``), 10 MiB streamed download and 100
    concurrent fetches, all on one nghttpd connection."""
    tls, options = NGHTTPD_MODES[mode]

    async def scenario() -> None:
        async with nghttpd(tls, htdocs) as peer:
            with spdy_client() as client:
                _, echo = await get_post_download(
                    client,
                    peer.url,
                    "h2",
                    hello_path="/hello.txt",
                    big_path="/big.bin",
                    **options,
                )
                assert echo.headers.get("Nghttpd-Response") == "echo"
                await get_hello_at_once(client, peer.url("/hello.txt"), **options)
                assert opened_streams(only_session(client)) == 3 + CONCURRENT
            text = await peer.log.wait_for(
                lambda t: len(nghttpd_requests(t)) >= 3 + CONCURRENT
            )
            assert nghttpd_connections(text) == {"1"}, text[-2000:]
            requests = nghttpd_requests(text)
            assert len(requests) == 3 + CONCURRENT
            assert len({stream for _, stream, _ in requests}) == 3 + CONCURRENT

    run(scenario)


@pytest.mark.peer
@pytest.mark.parametrize("mode", list(NGHTTPD_MODES))
def test_nghttpd_push(mode: str, htdocs: str) -> None:
    """nghttpd pushes /pushed.js with /push.html: ``push_callback`` gets it
    (sha256 checked), the parent lists it in ``associated_urls``, and a later
    GET of it is answered from the push cache without a stream of its own
    (nghttpd never receives a request for it)."""
    tls, options = NGHTTPD_MODES[mode]

    async def scenario() -> None:
        async with nghttpd(tls, htdocs) as peer:
            with spdy_client() as client:
                push = await get_pushing(client, peer.url, "/push.html", **options)
                await get_pushed_again(client, push.effective_url, **options)

                # A request after it: once nghttpd logged this one, it would
                # have logged one for /pushed.js too.
                hello = await client.fetch(peer.url("/hello.txt"), **options)
                assert hello.code == 200
            text = await peer.log.wait_for(lambda t: "/hello.txt" in t)
            paths = [path for _, _, path in nghttpd_requests(text)]
            assert paths == ["/push.html", "/hello.txt"], text[-3000:]
            assert "PUSH_PROMISE" in text

    run(scenario)


@pytest.mark.peer
@pytest.mark.parametrize("mode", list(NGHTTPD_MODES))
def test_nghttpd_stream_limit(mode: str, htdocs: str) -> None:
    """nghttpd allowing 10 concurrent streams (``-m 10``), 100 fetches at
    once: streams past the limit wait for a free slot, or (sent before the
    client had nghttpd's SETTINGS) are refused with REFUSED_STREAM and sent
    again; all succeed on one connection."""
    tls, options = NGHTTPD_MODES[mode]

    async def scenario() -> None:
        async with nghttpd(tls, htdocs, "-m", "10") as peer:
            with spdy_client() as client:
                await get_hello_at_once(client, peer.url("/hello.txt"), **options)
            text = await peer.log.wait_for(
                lambda t: len(nghttpd_requests(t)) >= CONCURRENT
            )
            assert nghttpd_connections(text) == {"1"}

    run(scenario)


# ======================================================================
# node's spdy-transport server (spdy/2, spdy/3, spdy/3.1; TLS and plain)
# ======================================================================

NODE_MODES = [(p, tls) for p in SPDY_VERSIONS for tls in (True, False)]
NODE_IDS = [f"{p}-{'tls' if tls else 'plain'}" for p, tls in NODE_MODES]


def node_options(protocol: str, tls: bool) -> dict[str, Any]:
    # Over TLS the client's ALPN offer meets the server's one protocol; in
    # cleartext the protocol is prior knowledge.
    return {} if tls else {"protocol": protocol}


@pytest.mark.peer
@pytest.mark.parametrize(("protocol", "tls"), NODE_MODES, ids=NODE_IDS)
def test_node_spdy_transport(protocol: str, tls: bool) -> None:
    """GET, POST 2 MiB echoed, 10 MiB streamed download and 100 concurrent
    fetches, all on one connection, in the version asked for."""
    options = node_options(protocol, tls)

    async def scenario() -> None:
        async with spdy_peer(protocol, tls) as peer:
            with spdy_client() as client:
                await get_post_download(client, peer.url, protocol, **options)
                await get_hello_at_once(client, peer.url("/hello"), **options)
                assert opened_streams(only_session(client)) == 3 + CONCURRENT
            text = await peer.log.wait_for(
                lambda t: len(node_requests(t)) >= 3 + CONCURRENT
            )
            assert node_connections(text) == ["1"], text[-2000:]
            assert f"alpn={protocol}" in text if tls else "open plain" in text

    run(scenario)


@pytest.mark.peer
@pytest.mark.parametrize(("protocol", "tls"), NODE_MODES, ids=NODE_IDS)
def test_node_push(protocol: str, tls: bool) -> None:
    """spdy-transport pushes /pushed.js with /push (its SYN_STREAM lacks
    FLAG_UNIDIRECTIONAL; in SPDY/2 its url is a bare path): ``push_callback``
    gets it, and a later GET of it opens no stream."""
    options = node_options(protocol, tls)

    async def scenario() -> None:
        async with spdy_peer(protocol, tls) as peer:
            with spdy_client() as client:
                push = await get_pushing(client, peer.url, "/push", **options)
                assert push.headers["Content-Type"] == "application/javascript"
                assert push.framing == protocol
                await get_pushed_again(client, push.effective_url, **options)

                hello = await client.fetch(peer.url("/hello"), **options)
                assert hello.code == 200
            text = await peer.log.wait_for(lambda t: "GET /hello" in t)
            paths = [path for _, _, path in node_requests(text)]
            assert paths == ["/push", "/hello"], text[-2000:]

    run(scenario)


@pytest.mark.peer
@pytest.mark.parametrize("protocol", SPDY_VERSIONS)
def test_node_download_default_window(protocol: str) -> None:
    """1 MiB downloads from spdy-transport with the client's default windows
    (256 KiB per stream), 40 times. The client's WINDOW_UPDATEs for the last
    window of a response reach spdy-transport after it forgot the stream (all
    its DATA queued), and it answers each with RST_STREAM(INVALID_STREAM),
    mostly right after the FIN: the complete response must stand (it was
    dropped, 599, about one response in four)."""

    async def scenario() -> None:
        async with spdy_peer(protocol, False) as peer:
            with spdy_client() as client:
                for _ in range(40):
                    response = await client.fetch(
                        peer.url(f"/bytes/{MiB}"), protocol=protocol
                    )
                    assert sha256(response.body) == sha256(pattern(MiB))

    run(scenario)


# ======================================================================
# Push from our server
# ======================================================================


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_push_own_server(protocol: str) -> None:
    """Our server pushes /pushed.js with /push: ``push_callback`` gets it, and
    a later GET of it is answered from the push without a new stream (the
    server ran its handler once, for the push; the client opened no stream)."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                push = await get_pushing(client, served.url, "/push", protocol=protocol)
                assert push.framing == protocol
                push_url = push.effective_url

                session = only_session(client)
                streams = opened_streams(session)
                server_streams = len(served.state.requests)
                sink = Sink()
                lines: list[str] = []
                again = await client.fetch(
                    push_url,
                    protocol=protocol,
                    streaming_callback=sink,
                    header_callback=lines.append,
                )
                assert again.code == 200 and again.pushed is True
                assert again.body == b""  # streamed
                assert sink.sha256 == sha256(pattern(PUSH_SIZE))
                assert "Content-Type: application/javascript\r\n" in lines
                assert lines[-1] == "\r\n"
                assert opened_streams(session) == streams == 1
                assert len(served.state.requests) == server_streams
                assert served.state.streams_of("/pushed.js") == 1

                # A second GET of it is a real request: a push answers once.
                third = await client.fetch(push_url, protocol=protocol)
                assert not getattr(third, "pushed", False)
                assert sha256(third.body) == sha256(pattern(PUSH_SIZE))
                assert opened_streams(session) == 2
                assert served.state.streams_of("/pushed.js") == 2

    run(scenario)


# ======================================================================
# Timeouts, errors, redirects
# ======================================================================

SOME = ("h2", "spdy/3.1", "spdy/2", "http/1.1")


@pytest.mark.parametrize("protocol", SOME)
def test_request_timeout(protocol: str) -> None:
    """A server that never answers: ``request_timeout`` gives 599
    HTTPTimeoutError (whatever ``raise_error``), the server's stream is
    reset (its handler's ``on_connection_close`` runs), and the session goes
    on serving."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                for raise_error in (True, False):
                    with pytest.raises(HTTPTimeoutError) as caught:
                        await client.fetch(
                            served.url("/never"),
                            request_timeout=0.5,
                            raise_error=raise_error,
                            protocol=protocol,
                        )
                    assert caught.value.code == 599
                    assert isinstance(caught.value, HTTPClientError)
                    assert "Timeout" in str(caught.value)
                state = served.state
                while len(state.aborted) < 2:
                    state.aborted_event.clear()
                    await bounded(state.aborted_event.wait())
                assert state.aborted == ["/never", "/never"]
                hello = await client.fetch(served.url("/hello"), protocol=protocol)
                assert hello.code == 200 and hello.framing == protocol
            if protocol in MULTIPLEXED:
                assert served.state.connections == 1

    run(scenario)


@contextlib.asynccontextmanager
async def silent_peer(
    scheme: str,
) -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """A listener on 127.0.0.1 that accepts connections and never writes a
    byte: its URL (``scheme``) and the connections it accepted so far."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.append(writer)

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"{scheme}://127.0.0.1:{port}/", accepted
    finally:
        listener.close()
        for writer in accepted:
            writer.close()
        await listener.wait_closed()


@pytest.mark.parametrize("protocol", [None, "h2", "spdy/3"])
def test_connect_timeout(protocol: str | None) -> None:
    """A listener that accepts TCP and never completes the TLS handshake:
    ``connect_timeout`` gives 599 HTTPTimeoutError, as Tornado's own client
    does; a later fetch to the same origin is not stuck behind it."""

    async def scenario() -> None:
        options = {} if protocol is None else {"protocol": protocol}
        async with silent_peer("https") as (url, accepted):
            with spdy_client() as client:
                for _ in range(2):
                    with pytest.raises(HTTPTimeoutError) as caught:
                        await client.fetch(url, connect_timeout=0.3, **options)
                    assert caught.value.code == 599
                    assert "connect" in str(caught.value).lower() or "TLS" in str(
                        caught.value
                    )
                stock = SimpleAsyncHTTPClient(force_instance=True)
                try:
                    with pytest.raises(HTTPTimeoutError):
                        await stock.fetch(url, connect_timeout=0.3, validate_cert=False)
                finally:
                    stock.close()
                assert len(accepted) == 3

    run(scenario)


def test_connect_timeout_while_another_connects() -> None:
    """Two fetches to one origin whose TLS handshake never ends, at once:
    the one with a 0.3 s ``connect_timeout`` fails after 0.3 s, not when the
    other one (2.5 s) gives up. (Tornado's own client connects for each.)"""

    async def scenario() -> None:
        async with silent_peer("https") as (url, _):
            with spdy_client() as client:
                slow = asyncio.ensure_future(client.fetch(url, connect_timeout=2.5))
                quick = asyncio.ensure_future(client.fetch(url, connect_timeout=0.3))
                try:
                    with pytest.raises(HTTPTimeoutError):
                        await asyncio.wait_for(asyncio.shield(quick), 1.5)
                finally:
                    for future in (slow, quick):
                        with contextlib.suppress(Exception):
                            await future

    run(scenario)


@pytest.mark.parametrize("protocol", ["h2", "spdy/3", "http/1.1"])
def test_request_timeout_silent_peer(protocol: str) -> None:
    """A cleartext peer that accepts the connection and never writes a byte
    (no SETTINGS, no response): ``request_timeout`` gives 599
    HTTPTimeoutError."""

    async def scenario() -> None:
        async with silent_peer("http") as (url, accepted):
            with spdy_client() as client:
                with pytest.raises(HTTPTimeoutError) as caught:
                    await client.fetch(url, request_timeout=0.3, protocol=protocol)
                assert caught.value.code == 599
                assert len(accepted) == 1

    run(scenario)


@pytest.mark.parametrize("protocol", SOME)
def test_raise_error(protocol: str) -> None:
    """An HTTP error status raises HTTPClientError (with the response) by
    default, and is returned with ``raise_error=False``."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                with pytest.raises(HTTPClientError) as caught:
                    await client.fetch(served.url("/missing"), protocol=protocol)
                assert caught.value.code == 404
                assert caught.value.response is not None
                assert caught.value.response.framing == protocol
                response = await client.fetch(
                    served.url("/missing"), raise_error=False, protocol=protocol
                )
                assert response.code == 404 and response.error is not None
                assert response.framing == protocol

    run(scenario)


#: How connection refused shows, per target: (URL scheme, fetch options).
REFUSED_MODES = {
    "http/1.1": ("http", {}),
    "h2c-prior-knowledge": ("http", {"protocol": "h2"}),
    "spdy/3-prior-knowledge": ("http", {"protocol": "spdy/3"}),
    "tls-alpn": ("https", {}),
}


@pytest.mark.parametrize("mode", list(REFUSED_MODES))
def test_connection_refused(mode: str) -> None:
    """A refused connection fails the fetch as it fails with Tornado's own
    client: the 599 response's error (`ConnectionRefusedError`) is raised,
    whatever ``raise_error`` says (Tornado: ``raise_error=False`` only keeps
    HTTP status errors from raising); the 599 response itself reaches
    ``fetch_impl``'s callback."""
    from tornado.httpclient import HTTPRequest, _RequestProxy

    scheme, options = REFUSED_MODES[mode]

    async def scenario() -> None:
        port = free_port()
        url = f"{scheme}://127.0.0.1:{port}/"
        client = make_client()
        stock = SimpleAsyncHTTPClient(force_instance=True)
        try:
            for raise_error in (True, False):
                with pytest.raises(ConnectionRefusedError):
                    await client.fetch(url, raise_error=raise_error, **options)
                with pytest.raises(ConnectionRefusedError):
                    await stock.fetch(url, raise_error=raise_error, validate_cert=False)
            done: asyncio.Future[HTTPResponse] = (
                asyncio.get_running_loop().create_future()
            )
            request = HTTPRequest(url, validate_cert=False)
            for name, value in options.items():
                setattr(request, name, value)
            client.fetch_impl(_RequestProxy(request, client.defaults), done.set_result)
            response = await bounded(done)
            assert response.code == 599
            assert isinstance(response.error, ConnectionRefusedError)
        finally:
            client.close()
            stock.close()

    run(scenario)


@pytest.mark.parametrize("protocol", SOME)
def test_redirects(protocol: str) -> None:
    """``follow_redirects`` follows up to ``max_redirects`` (on the same
    session); past it the 302 is the answer (raised by default); with
    ``follow_redirects=False`` the 302 is returned as is."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                response = await client.fetch(
                    served.url("/redirect/3"), max_redirects=5, protocol=protocol
                )
                assert response.code == 200 and response.body == HELLO
                assert response.effective_url == served.url("/hello")
                assert response.framing == protocol
                assert served.state.paths() == [
                    "/redirect/3",
                    "/redirect/2",
                    "/redirect/1",
                    "/redirect/0",
                    "/hello",
                ]

                with pytest.raises(HTTPClientError) as caught:
                    await client.fetch(
                        served.url("/redirect/3"), max_redirects=2, protocol=protocol
                    )
                assert caught.value.code == 302
                assert caught.value.response is not None
                assert caught.value.response.effective_url == served.url("/redirect/1")

                response = await client.fetch(
                    served.url("/redirect/3"),
                    follow_redirects=False,
                    raise_error=False,
                    protocol=protocol,
                )
                assert response.code == 302
                assert response.headers["Location"] == "/redirect/2"
            if protocol in MULTIPLEXED:
                assert served.state.connections == 1

    run(scenario)


# ======================================================================
# TLS verification
# ======================================================================


def test_validate_cert() -> None:
    """``validate_cert=True`` rejects the self-signed development certificate
    (against certifi's CAs); with ``ca_certs`` naming that certificate the
    same fetch succeeds, over h2 by ALPN."""
    from tornado_spdy.tls import development_certificate

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                with pytest.raises((ssl.SSLError, HTTPClientError)) as caught:
                    await client.fetch(served.url("/hello"), validate_cert=True)
                error = caught.value
                if isinstance(error, HTTPClientError):
                    assert error.code == 599
                else:
                    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
                certfile, _ = development_certificate()
                response = await client.fetch(
                    served.url("/hello"), validate_cert=True, ca_certs=certfile
                )
                assert response.code == 200 and response.body == HELLO
                assert response.framing == "h2"
            # The failed handshake, then the good one.
            assert served.state.connections == 2

    run(scenario)


# ======================================================================
# Request and response options
# ======================================================================


@pytest.mark.parametrize("protocol", SOME)
def test_decompress_response(protocol: str) -> None:
    """A gzip-encoded response is gunzipped with ``decompress_response``
    (the default) and left as it came without it."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                response = await client.fetch(served.url("/gzip"), protocol=protocol)
                assert response.code == 200
                assert response.body == GZIP_TEXT
                assert "Content-Encoding" not in response.headers
                assert response.headers.get("X-Consumed-Content-Encoding") == "gzip"

                raw = await client.fetch(
                    served.url("/gzip"), decompress_response=False, protocol=protocol
                )
                assert raw.headers["Content-Encoding"] == "gzip"
                assert gzip.decompress(raw.body) == GZIP_TEXT
                assert len(raw.body) < len(GZIP_TEXT) // 10

    run(scenario)


@pytest.mark.parametrize(
    "protocol",
    [
        "h2",
        *SPDY_VERSIONS,
        "http/1.1",
    ],
)
def test_header_callback(protocol: str) -> None:
    """``header_callback`` gets the status line, each header line and the
    blank line, as with Tornado's own client, and the body still arrives."""

    async def scenario() -> None:
        async with serve(True) as served:
            client = make_client()
            lines: list[str] = []
            try:
                response = await client.fetch(
                    served.url("/hello"),
                    header_callback=lines.append,
                    protocol=protocol,
                )
            finally:
                client.close()
            assert response.code == 200 and response.body == HELLO
            assert re.fullmatch(r"HTTP/\S+ 200 OK\r\n", lines[0]), lines
            assert "X-Test: yes\r\n" in lines
            assert f"X-Framing: {protocol}\r\n" in lines
            assert lines[-1] == "\r\n"
            assert all(line.endswith("\r\n") for line in lines)

    run(scenario)


@pytest.mark.parametrize("protocol", SOME)
def test_body_producer_upload(protocol: str) -> None:
    """A ``body_producer`` uploads 2 MiB in 16 KiB writes to a server with
    64 KiB stream windows: writes wait for flow control (not every write's
    future is done at once), and the server receives every byte."""

    async def scenario() -> None:
        async with serve(True, initial_window_size=65535) as served:
            client = make_client()
            waited = 0
            piece = 16 * KiB
            body = pattern(ECHO_SIZE)

            async def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
                nonlocal waited
                for start in range(0, len(body), piece):
                    future = write(body[start : start + piece])
                    if not future.done():  # type: ignore[attr-defined]
                        waited += 1
                    await future

            try:
                response = await client.fetch(
                    served.url("/sha"),
                    method="POST",
                    body_producer=producer,
                    headers={**OCTETS, "Content-Length": str(len(body))},
                    protocol=protocol,
                )
            finally:
                client.close()
            assert response.code == 200
            assert json.loads(response.body) == {
                "length": len(body),
                "sha256": sha256(body),
            }
            if protocol in MULTIPLEXED:
                assert waited > 0

    run(scenario)


#: What urgency the server sees for what the client asked, per protocol
#: (SPDY/2 has 2 bits of priority: 0-7 is scaled to 0-3 and back).
PRIORITIES = {
    "h2": {0: 0, 1: 1, 5: 5, 7: 7, None: 3},
    "spdy/3.1": {0: 0, 1: 1, 5: 5, 7: 7, None: 3},
    "spdy/3": {0: 0, 1: 1, 5: 5, 7: 7, None: 3},
    "spdy/2": {0: 0, 7: 7},
}


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_priority_reaches_server(protocol: str) -> None:
    """``priority`` (0 most urgent to 7) is the server's ``request.priority``."""

    async def scenario() -> None:
        async with serve(True) as served:
            client = make_client()
            seen = {}
            try:
                for asked in PRIORITIES[protocol]:
                    options = {} if asked is None else {"priority": asked}
                    response = await client.fetch(
                        served.url("/priority"), protocol=protocol, **options
                    )
                    seen[asked] = int(response.body)
            finally:
                client.close()
            assert seen == PRIORITIES[protocol]

    run(scenario)


# ======================================================================
# Sessions: reuse, force_connection, dead sessions, GOAWAY, refused streams
# ======================================================================


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_idle_session_reused(protocol: str) -> None:
    """A fetch after the previous one finished (the session idle, no stream
    open) goes on the same session, as the next stream."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                await client.fetch(served.url("/hello"), protocol=protocol)
                session = only_session(client)
                assert not session.streams  # idle
                await client.fetch(served.url("/hello"), protocol=protocol)
                assert only_session(client) is session
                assert opened_streams(session) == 2
            assert served.state.connections == 1
            assert [r[3] for r in served.state.requests] == [1, 3]

    run(scenario)


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_force_connection(protocol: str) -> None:
    """``force_connection=True`` opens a second session to the same origin."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                first = await client.fetch(served.url("/hello"), protocol=protocol)
                second = await client.fetch(
                    served.url("/hello"), protocol=protocol, force_connection=True
                )
                assert first.framing == second.framing == protocol
            state = served.state
            assert state.connections == 2
            assert len({r[2] for r in state.requests}) == 2
            assert [r[3] for r in state.requests] == [1, 1]

    run(scenario)


def test_close_closes_every_session() -> None:
    """``client.close()`` closes every session it opened, the one a
    ``force_connection`` fetch replaced included."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                await client.fetch(served.url("/hello"))
                first = only_session(client)
                await client.fetch(served.url("/hello"), force_connection=True)
                second = only_session(client)
                assert second is not first
            assert second.stream.closed()
            assert first.stream.closed()

    run(scenario)


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_dead_session_replaced(protocol: str) -> None:
    """The server drops the connection (no GOAWAY): once the client saw it
    close, the next fetch opens a new session."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                await client.fetch(served.url("/hello"), protocol=protocol)
                session = only_session(client)
                for connection in list(served.server._connections):
                    connection.stream.close()
                await bounded(session._closed_future)
                response = await client.fetch(served.url("/hello"), protocol=protocol)
                assert response.code == 200 and response.body == HELLO
                assert only_session(client) is not session
            assert served.state.connections == 2

    run(scenario)


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_dead_session_unnoticed(protocol: str) -> None:
    """The server drops the connection and the client fetches at once, before
    its session has seen the end: the fetch still succeeds, on a new
    session."""

    async def scenario() -> None:
        async with serve(True) as served:
            with spdy_client() as client:
                await client.fetch(served.url("/hello"), protocol=protocol)
                for connection in list(served.server._connections):
                    connection.stream.close()
                response = await client.fetch(served.url("/hello"), protocol=protocol)
                assert response.code == 200 and response.body == HELLO
            assert served.state.connections == 2

    run(scenario)


async def held_fetches(
    client: Any, served: Served, n: int, protocol: str
) -> list[asyncio.Future[HTTPResponse]]:
    """``n`` fetches of ``/hold``, once the server holds them all (until the
    test calls ``state.hold.release``)."""
    held = [
        asyncio.ensure_future(client.fetch(served.url("/hold"), protocol=protocol))
        for _ in range(n)
    ]
    await served.state.hold.wait_arrived(n)
    return held


async def goaway_received(served: Served, watch: FrameWatch) -> asyncio.Future[None]:
    """Start the server's ``close_all_connections()`` and wait until the
    client received its GOAWAY; the closing, still under way."""
    closing = asyncio.ensure_future(served.server.close_all_connections())
    await watch.wait("recv GoAwayFrame")
    return closing


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_goaway_later_fetches_new_connection(protocol: str) -> None:
    """Three fetches in flight, held by the server; the server stops listening
    and ``close_all_connections()`` sends GOAWAY. Once the client has the
    GOAWAY (its frame trace shows it) the session takes no new stream: a
    server restarted on the same port gets the next fetch, on a new
    connection, while the old one still waits for its accepted streams."""

    async def scenario() -> None:
        state = ServerState()
        async with serve(True, state=state) as served:
            with spdy_client() as client:
                watch = FrameWatch(client)
                held = await held_fetches(client, served, 3, protocol)
                session = only_session(client)
                served.server.stop()
                closing = await goaway_received(served, watch)
                assert not session.accepts_streams
                assert not any(future.done() for future in held)

                async with serve(True, port=served.port) as restarted:
                    response = await client.fetch(
                        restarted.url("/hello"), protocol=protocol
                    )
                    assert response.code == 200 and response.body == HELLO
                    assert response.framing == protocol
                    assert only_session(client) is not session
                    assert restarted.state.connections == 1
                    assert not closing.done()  # the held streams are accepted

                    # How the held fetches end is test_goaway_accepted_streams_finish's.
                    state.hold.release(3)
                    await bounded(asyncio.gather(*held, return_exceptions=True))
                    await bounded(closing, CLOSE_TIMEOUT)
            assert state.connections == 1
            assert state.streams_of("/hold") == 3
            assert state.streams_of("/hello") == 0

    run(scenario)


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_goaway_accepted_streams_finish(protocol: str) -> None:
    """Fetches the server accepted before its GOAWAY
    (``close_all_connections()``) finish with their responses; then the
    connection closes."""

    async def scenario() -> None:
        state = ServerState()
        async with serve(True, state=state) as served:
            with spdy_client() as client:
                watch = FrameWatch(client)
                held = await held_fetches(client, served, 3, protocol)
                session = only_session(client)
                closing = await goaway_received(served, watch)
                state.hold.release(3)
                results = await bounded(asyncio.gather(*held, return_exceptions=True))
                await bounded(closing, CLOSE_TIMEOUT)
                await bounded(session._closed_future)
            assert [getattr(r, "code", r) for r in results] == [200, 200, 200]
            assert {r.body for r in results} == {HELLO}

    run(scenario)


@pytest.mark.parametrize("protocol", ["h2", "spdy/3"])
def test_goaway_close_is_prompt(protocol: str) -> None:
    """After the server's GOAWAY, the connection closes as soon as the last
    accepted stream is done (well under a second), on both sides."""

    async def scenario() -> None:
        state = ServerState()
        async with serve(True, state=state) as served:
            with spdy_client() as client:
                watch = FrameWatch(client)
                [held] = await held_fetches(client, served, 1, protocol)
                session = only_session(client)
                closing = await goaway_received(served, watch)
                state.hold.release()
                assert (await bounded(held)).code == 200
                await bounded(session._closed_future, 1.0)
                await bounded(closing, 1.0)

    run(scenario)


# ------------------------------------- raw servers: refusals, late resets


@dataclasses.dataclass
class RawServer:
    """What a raw server saw: (connection number, stream id) per request."""

    port: int
    requests: list[tuple[int, int]]
    connections: int = 0


def raw_rst_stream(protocol: str, stream_id: int, code: int) -> bytes:
    """An RST_STREAM frame, built by hand (the cores will not reset a stream
    they consider closed)."""
    if protocol == "h2":
        return (
            struct.pack(">I", 4)[1:]
            + bytes([3, 0])
            + struct.pack(">II", stream_id, code)
        )
    version = 2 if protocol == "spdy/2" else 3
    return struct.pack(">HHIII", 0x8000 | version, 3, 8, stream_id, code)


@contextlib.asynccontextmanager
async def raw_server(
    decide: Callable[[int, int], str], protocol: str = "h2"
) -> AsyncIterator[RawServer]:
    """A cleartext server (prior knowledge) made of a protocol core alone: the
    ``h2`` library for h2, our SPDY core for SPDY (used here only to frame
    what the test dictates). ``decide(connection number, request number)``
    says what each request gets: ``"answer"`` (200 hello world),
    ``"refuse"`` (RST_STREAM REFUSED_STREAM), ``"goaway"`` (GOAWAY with last
    stream id 0, then the connection closes), ``"answer-reset"`` (200 hello
    world ending the stream, then, in the same write, an RST_STREAM for that
    finished stream: h2 NO_ERROR, SPDY INVALID_STREAM, as spdy-transport
    sends one for a WINDOW_UPDATE on a stream it forgot) or
    ``"answer-close"`` (200 hello world, a graceful GOAWAY sparing that
    stream, and the connection closed right after)."""
    import h2.config
    import h2.connection
    import h2.errors

    from tornado_spdy.spdy import SPDYConfiguration, SPDYConnection, StatusCode

    seen = RawServer(0, [])
    handlers: set[asyncio.Task[None]] = set()
    if protocol == "h2":
        refused, late_reset = h2.errors.ErrorCodes.REFUSED_STREAM, 0
    else:
        refused, late_reset = StatusCode.REFUSED_STREAM, StatusCode.INVALID_STREAM

    def new_core() -> Any:
        if protocol == "h2":
            return h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=False, header_encoding=None)
            )
        return SPDYConnection(SPDYConfiguration(client_side=False, version=protocol))

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        seen.connections += 1
        number = seen.connections
        core = new_core()
        core.initiate_connection()
        writer.write(core.data_to_send())
        count = 0
        try:
            while data := await reader.read(65536):
                closing = False
                extra = b""
                for event in core.receive_data(data):
                    if type(event).__name__ != "RequestReceived":
                        continue
                    count += 1
                    stream_id = event.stream_id
                    seen.requests.append((number, stream_id))
                    action = decide(number, count)
                    if action == "refuse":
                        core.reset_stream(stream_id, refused)
                    elif action == "goaway":
                        core.close_connection(last_stream_id=0)
                        closing = True
                    else:
                        core.send_headers(
                            stream_id,
                            [
                                (":status", "200"),
                                ("content-length", str(len(HELLO))),
                            ],
                        )
                        core.send_data(stream_id, HELLO, end_stream=True)
                        if action == "answer-reset":
                            extra += raw_rst_stream(protocol, stream_id, late_reset)
                        elif action == "answer-close":
                            core.close_connection(last_stream_id=stream_id)
                            closing = True
                writer.write(core.data_to_send() + extra)
                await writer.drain()
                if closing:
                    break
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()

    def start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(handle(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    listener = await asyncio.start_server(start, "127.0.0.1", 0)
    seen.port = listener.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        listener.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await listener.wait_closed()


def test_refused_stream_retried_once() -> None:
    """RST_STREAM(REFUSED_STREAM) on the first request: the client sends it
    again (on the same session, which still takes streams) and gets 200."""

    async def scenario() -> None:
        async with raw_server(lambda conn, n: "refuse" if n == 1 else "answer") as raw:
            with spdy_client() as client:
                response = await client.fetch(
                    f"http://127.0.0.1:{raw.port}/", protocol="h2"
                )
            assert response.code == 200 and response.body == HELLO
            assert raw.requests == [(1, 1), (1, 3)]

    run(scenario)


def test_refused_stream_retried_only_once() -> None:
    """A server that refuses every stream: one retry, then the fetch fails
    (599, raised whatever ``raise_error``)."""

    async def scenario() -> None:
        async with raw_server(lambda conn, n: "refuse") as raw:
            with spdy_client() as client:
                with pytest.raises(HTTPClientError) as caught:
                    await client.fetch(
                        f"http://127.0.0.1:{raw.port}/",
                        protocol="h2",
                        raise_error=False,
                    )
                assert caught.value.code == 599
            assert raw.requests == [(1, 1), (1, 3)]

    run(scenario)


def test_goaway_above_last_stream_retried() -> None:
    """GOAWAY with last stream id 0 answers the first request (then the
    server closes): the request was not processed, and the client sends it
    again on a new connection."""

    async def scenario() -> None:
        async with raw_server(
            lambda conn, n: "goaway" if conn == 1 else "answer"
        ) as raw:
            with spdy_client() as client:
                response = await client.fetch(
                    f"http://127.0.0.1:{raw.port}/", protocol="h2"
                )
            assert response.code == 200 and response.body == HELLO
            assert raw.requests == [(1, 1), (2, 1)]
            assert raw.connections == 2

    run(scenario)


# ------------------------------------------------------------------ the CLI


async def cli(*args: str) -> tuple[int, bytes, str]:
    """``python -m tornado_spdy ARGS``: exit status, stdout, stderr."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tornado_spdy",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), PEER_TIMEOUT * 2)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"python -m tornado_spdy {' '.join(args)} hung") from None
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("protocol", [None, "spdy/3.1", "spdy/2", "http/1.1"])
def test_cli_fetch(protocol: str | None) -> None:
    """``python -m tornado_spdy fetch -k URL`` prints the body on stdout, the
    protocol and status on stderr, and exits 0."""

    async def scenario() -> None:
        async with serve(True) as served:
            args = ["fetch", "-k", served.url("/hello")]
            if protocol is not None:
                args += ["--protocol", protocol]
            status, stdout, stderr = await cli(*args)
            assert status == 0, stderr
            assert stdout == HELLO
            assert f"protocol: {protocol or 'h2'}\n" in stderr, stderr
            assert "status: 200 OK" in stderr
            assert re.search(
                r"^X-Framing: " + re.escape(protocol or "h2") + "$", stderr, re.M
            )

    run(scenario)


def test_cli_fetch_output_verbose(tmp_path: Any) -> None:
    """``fetch -k -v -o FILE``: 1 MiB written to the file (sha256 checked),
    frames on stderr; a 404 exits 22; without ``-k`` the self-signed
    certificate fails the fetch (exit 1)."""

    async def scenario() -> None:
        async with serve(True) as served:
            out = tmp_path / "body.bin"
            status, stdout, stderr = await cli(
                "fetch", "-k", "-v", "-o", str(out), served.url(f"/bytes/{MiB}")
            )
            assert status == 0, stderr
            assert stdout == b""
            assert sha256(out.read_bytes()) == sha256(pattern(MiB))
            assert "[h2] send connection preface" in stderr
            assert "[h2] recv SettingsFrame" in stderr
            assert "[h2] recv DataFrame" in stderr
            assert "protocol: h2" in stderr

            status, _, stderr = await cli("fetch", "-k", served.url("/missing"))
            assert status == 22, stderr
            assert "status: 404" in stderr

            status, _, stderr = await cli("fetch", served.url("/hello"))
            assert status == 1
            assert "CERTIFICATE_VERIFY_FAILED" in stderr or "error" in stderr

    run(scenario)


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_reset_after_complete_response(protocol: str) -> None:
    """A complete response (its stream ended by the server), followed in the
    same read by an RST_STREAM for that finished stream: the response
    stands (INTEROP.md: spdy-transport answers a WINDOW_UPDATE for a stream
    it closed with RST_STREAM; RFC 9113 section 8.1)."""

    async def scenario() -> None:
        async with raw_server(lambda conn, n: "answer-reset", protocol) as raw:
            with spdy_client() as client:
                for _ in range(2):
                    response = await client.fetch(
                        f"http://127.0.0.1:{raw.port}/", protocol=protocol
                    )
                    assert response.code == 200 and response.body == HELLO
            assert raw.requests == [(1, 1), (1, 3)]

    run(scenario)


@pytest.mark.parametrize("protocol", MULTIPLEXED)
def test_complete_response_then_connection_close(protocol: str) -> None:
    """The server answers, sends a graceful GOAWAY that spares the stream and
    closes the connection, all in one write (as a server closing an idle or
    draining connection may): the fetch has its response."""

    async def scenario() -> None:
        async with raw_server(lambda conn, n: "answer-close", protocol) as raw:
            with spdy_client() as client:
                response = await client.fetch(
                    f"http://127.0.0.1:{raw.port}/", protocol=protocol
                )
            assert response.code == 200 and response.body == HELLO
            assert raw.requests == [(1, 1)]

    run(scenario)
