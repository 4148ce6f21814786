"""`SPDYServer` against independent clients.

The server runs in each test's own asyncio loop (Tornado's IOLoop wraps it) on
127.0.0.1, port 0; the clients are driven as asyncio subprocesses, every one
bounded by a timeout:

- ``curl --http2`` over TLS (ALPN), over cleartext with ``Upgrade: h2c``, and
  ``--http2-prior-knowledge``;
- ``nghttp -nv`` (its frame log is checked) over TLS, h2c prior knowledge and
  h2c ``Upgrade`` (``-u``), and ``nghttp`` for bodies;
- ``h2load -n 1000 -c 1 -m 100`` over TLS and h2c prior knowledge, and 100
  concurrent streams held open at once on one h2 connection;
- node's ``spdy-transport`` client (``tests/peers/spdy_peer.js``) over spdy/2,
  spdy/3 and spdy/3.1, over TLS with ALPN, cleartext prior knowledge and
  cleartext sniffing.

Every scenario carries a GET, a POST of 2 MiB echoed back and a GET of 10 MiB,
whose sha256 are checked; the protocol really spoken is checked twice, from
the client's side (curl's ``%{http_version}``, nghttp's frames, h2load's
application protocol, the node client's ALPN result) and from the server's
(every handler records ``self.request.framing`` and echoes it in
``X-Framing``). The "gate" handler proves concurrency without sleeping: each
request waits until N requests of its group are in flight at once, then all
are released; the server must have seen one connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import pytest
from tornado import web

from tests import server_util
from tests.peers_util import PEERS_DIR, require_node_package, require_peer, run_peer
from tests.server_util import pattern, sha256

# tornado_spdy is imported inside the helpers, so that a broken package fails
# these tests one by one rather than the collection of the whole suite.

SPDY_PEER = os.path.join(PEERS_DIR, "spdy_peer.js")

SPDY_VERSIONS = ("spdy/2", "spdy/3", "spdy/3.1")

HELLO = b"hello world"
ECHO_SIZE = 2 * 1024 * 1024
BIG_SIZE = 10 * 1024 * 1024
CONCURRENT = 100

#: How long a gated request waits for the rest of its group.
GATE_TIMEOUT = 30.0
#: One client process, and one whole scenario.
PEER_TIMEOUT = 60.0
SCENARIO_TIMEOUT = 100.0
#: The server's graceful close at the end of a scenario.
CLOSE_TIMEOUT = 10.0

pytestmark = [
    pytest.mark.peer,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("no_tornado_errors"),
]


# --------------------------------------------------------------------------- data


def file_sha256(path: os.PathLike[str] | str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


@pytest.fixture
def post_file(tmp_path: Any) -> str:
    """The 2 MiB request body, as a file for the command-line clients."""
    path = tmp_path / "post.bin"
    path.write_bytes(pattern(ECHO_SIZE))
    return str(path)


# ---------------------------------------------------------------- the application


class Gate:
    """Holds requests until ``n`` of them are in flight at once."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.arrived = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.sessions: set[int] = set()
        self.timed_out = 0

    def arrive(self, n: int, connection: Any) -> None:
        self.arrived += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.sessions.add(id(getattr(connection, "session", connection)))
        if self.in_flight >= n:
            self.event.set()


@dataclasses.dataclass
class ServerState:
    """What the server saw."""

    connections: int = 0
    framings: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    gates: dict[str, Gate] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(Gate)
    )


class BaseHandler(web.RequestHandler):
    def prepare(self) -> None:
        framing = getattr(self.request, "framing", None) or "none"
        self.settings["state"].framings[framing] += 1
        self.set_header("X-Framing", framing)


class HelloHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write(HELLO)


class EchoHandler(BaseHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.write(self.request.body)


class BytesHandler(BaseHandler):
    async def get(self, size: str) -> None:
        await server_util.write_pattern(self, int(size))


class GateHandler(BaseHandler):
    """``/gate/<group>/<n>``: answers once ``n`` requests of ``group`` are
    in flight together (503 if that never happens within GATE_TIMEOUT)."""

    async def get(self, group: str, size: str) -> None:
        gate = self.settings["state"].gates[group]
        gate.arrive(int(size), self.request.connection)
        try:
            await asyncio.wait_for(gate.event.wait(), GATE_TIMEOUT)
        except TimeoutError:
            gate.timed_out += 1
            self.set_status(503)
        finally:
            gate.in_flight -= 1
        self.set_header("Content-Type", "text/plain")
        self.write(f"{gate.max_in_flight}\n")


def make_app(state: ServerState) -> web.Application:
    return web.Application(
        [
            (r"/hello", HelloHandler),
            (r"/echo", EchoHandler),
            (r"/bytes/(\d+)", BytesHandler),
            (r"/gate/(\w+)/(\d+)", GateHandler),
        ],
        state=state,
    )


@dataclasses.dataclass
class Served:
    port: int
    state: ServerState
    tls: bool

    def url(self, path: str) -> str:
        return server_util.local_url(self.tls, self.port, path)


@contextlib.asynccontextmanager
async def serve(tls: bool, **kwargs: Any) -> AsyncIterator[Served]:
    """An `SPDYServer` on 127.0.0.1 in the running loop."""
    from tornado_spdy import SPDYServer
    from tornado_spdy.testing import development_ssl_context

    state = ServerState()
    counting_server = server_util.counting(SPDYServer, state)
    if tls:
        kwargs["ssl_options"] = development_ssl_context()
    server = counting_server(make_app(state), **kwargs)
    port = server_util.listen(server)
    try:
        yield Served(port, state, tls)
    finally:
        closed = await server_util.close_gracefully(server, CLOSE_TIMEOUT)
    # Reached only when the scenario itself passed.
    assert closed, f"close_all_connections() did not finish in {CLOSE_TIMEOUT} s"


def run(scenario: Awaitable[Any]) -> Any:
    """Run one scenario on a fresh event loop, bounded by SCENARIO_TIMEOUT."""

    async def bounded() -> Any:
        return await asyncio.wait_for(scenario, SCENARIO_TIMEOUT)

    return asyncio.run(bounded())


@dataclasses.dataclass
class Completed:
    argv: Sequence[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.out[-6000:]}\n"
            f"--- stderr\n{self.stderr.decode('utf-8', 'replace')[-4000:]}"
        )

    def check(self) -> Completed:
        assert self.returncode == 0, self.describe()
        return self


async def execute(
    *argv: str, timeout: float = PEER_TIMEOUT, cwd: str | None = None
) -> Completed:
    """Run a client program to its end, bounded by ``timeout``."""
    return Completed(argv, *await run_peer(argv, timeout, cwd))


# ------------------------------------------------------------------------- curl

CURL_MODES = {
    # mode: (tls, curl's protocol option, server options, (http_version, framing))
    "tls-alpn": (True, "--http2", {}, ("2", "h2")),
    "h2c-upgrade": (False, "--http2", {}, ("2", "h2")),
    "h2c-prior-knowledge": (
        False,
        "--http2-prior-knowledge",
        {"plain_protocol": "h2"},
        ("2", "h2"),
    ),
    "h2c-sniff": (
        False,
        "--http2-prior-knowledge",
        {"plain_protocol": "sniff"},
        ("2", "h2"),
    ),
    # The fallback: ALPN offers http/1.1 too, and Tornado's own HTTP/1.1 serves.
    "tls-alpn-http1.1": (True, "--http1.1", {}, ("1.1", "http/1.1")),
}

CURL_WRITE_OUT = (
    "%{http_version} %{response_code} %{size_download} %header{x-framing}\n"
)


@pytest.mark.parametrize("mode", list(CURL_MODES))
def test_curl(mode: str, tmp_path: Any, post_file: str) -> None:
    """GET, POST 2 MiB echoed and GET 10 MiB.

    Over TLS and by Upgrade the three share one connection (``--next``; the
    POST goes over the upgraded connection). curl 7.88.1 cannot reuse a
    prior-knowledge connection (curl/curl#10634, fixed in curl 8.0: "Error in
    the HTTP2 framing layer" on the second request, against nghttpd too), so
    there each request is a curl run of its own.
    """
    curl = require_peer("curl")
    tls, option, server_options, expected = CURL_MODES[mode]
    reuse = option != "--http2-prior-knowledge"
    outputs = [tmp_path / name for name in ("hello.out", "echo.out", "big.out")]

    async def scenario() -> None:
        async with serve(tls, **server_options) as served:
            common = ["-sS", "-k", option, "-w", CURL_WRITE_OUT]
            requests = [
                ["-o", str(outputs[0]), served.url("/hello")],
                [
                    "--data-binary",
                    f"@{post_file}",
                    "-H",
                    "Content-Type: application/octet-stream",
                    "-o",
                    str(outputs[1]),
                    served.url("/echo"),
                ],
                ["-o", str(outputs[2]), served.url(f"/bytes/{BIG_SIZE}")],
            ]
            if reuse:
                argv = [curl]
                for request in requests:
                    argv += [*common, *request, "--next"]
                runs = [argv[:-1]]
            else:
                runs = [[curl, *common, *request] for request in requests]
            lines = []
            for argv in runs:
                done = (await execute(*argv)).check()
                lines += [(line, done) for line in done.out.splitlines()]
            assert len(lines) == 3, [done.describe() for _, done in lines]
            for line, done in lines:
                version, status, _, framing = line.split(" ")
                assert (version, framing) == expected, done.describe()
                assert status == "200", done.describe()
            assert served.state.connections == (1 if reuse else 3)
            assert served.state.framings == {expected[1]: 3}

    run(scenario())
    assert file_sha256(outputs[0]) == (len(HELLO), sha256(HELLO))
    assert file_sha256(outputs[1]) == (ECHO_SIZE, sha256(pattern(ECHO_SIZE)))
    assert file_sha256(outputs[2]) == (BIG_SIZE, sha256(pattern(BIG_SIZE)))


# ------------------------------------------------------------------------ nghttp

NGHTTP_MODES = {
    # mode: (tls, nghttp options, server options)
    "tls-alpn": (True, [], {}),
    "h2c-prior-knowledge": (False, [], {"plain_protocol": "h2"}),
    "h2c-upgrade": (False, ["-u"], {}),
    "h2c-sniff": (False, [], {"plain_protocol": "sniff"}),
}

#: nghttp's receive windows in the verbose run, as powers of two minus one:
#: 16 KiB - 1 per stream, 32 KiB - 1 for the connection, so that the server's
#: sender is held by (strictly enforced) flow control all through 10 MiB.
NGHTTP_WINDOW_BITS = 14
NGHTTP_CONNECTION_WINDOW_BITS = 15

_FRAME = re.compile(
    r"\] (send|recv) (\w+) frame <length=(\d+), flags=(0x[0-9a-f]+), stream_id=(\d+)>"
)


def frames(log: str) -> list[tuple[str, str, int, int, int]]:
    """``(direction, type, length, flags, stream_id)`` of each frame in
    ``nghttp -v``'s log."""
    return [(d, t, int(n), int(f, 16), int(s)) for d, t, n, f, s in _FRAME.findall(log)]


_ENTRY = re.compile(r"^\[ *[\d.]+\] ", re.M)
_SENT_HEADERS = re.compile(r"send HEADERS frame <[^>]*stream_id=(\d+)>")
_PATH = re.compile(r"^\s+:path: (\S+)$", re.M)


def request_paths(log: str) -> dict[str, int]:
    """``{path: stream id}`` of the requests in ``nghttp -v``'s log."""
    paths = {}
    for entry in _ENTRY.split(log):
        sent = _SENT_HEADERS.match(entry)
        path = _PATH.search(entry)
        if sent and path:
            paths[path.group(1)] = int(sent.group(1))
    return paths


@pytest.mark.parametrize("mode", list(NGHTTP_MODES))
def test_nghttp(mode: str, post_file: str) -> None:
    """nghttp's frame log for a GET and a 10 MiB GET on one connection, then
    the bodies of a 10 MiB GET and of a 2 MiB POST echoed."""
    nghttp = require_peer("nghttp")
    tls, options, server_options = NGHTTP_MODES[mode]

    async def scenario() -> None:
        async with serve(tls, **server_options) as served:
            big = served.url(f"/bytes/{BIG_SIZE}")
            verbose = await execute(
                nghttp,
                "-nv",
                "-w",
                str(NGHTTP_WINDOW_BITS),
                "-W",
                str(NGHTTP_CONNECTION_WINDOW_BITS),
                *options,
                served.url("/hello"),
                big,
            )
            verbose.check()
            log = verbose.out
            if tls:
                assert "The negotiated protocol: h2" in log, verbose.describe()
            if "-u" in options:
                assert "HTTP Upgrade success" in log, verbose.describe()
            seen = frames(log)
            types = {(d, t) for d, t, *_ in seen}
            assert ("recv", "SETTINGS") in types, verbose.describe()
            # The server acknowledged our SETTINGS.
            acks = [f for f in seen if f[:2] == ("recv", "SETTINGS") and f[3] & 0x1]
            assert acks, verbose.describe()
            assert ("recv", "RST_STREAM") not in types, verbose.describe()
            goaways = [f for f in seen if f[:2] == ("recv", "GOAWAY")]
            assert not goaways, verbose.describe()
            # Both responses: status, framing and the ends of their bodies.
            paths = request_paths(log)
            # By Upgrade, the upgraded request is stream 1 (RFC 7540, 3.2).
            hello_id = 1 if "-u" in options else paths["/hello"]
            big_id = paths[f"/bytes/{BIG_SIZE}"]
            for stream_id in (hello_id, big_id):
                assert f"recv (stream_id={stream_id}) :status: 200" in log, (
                    verbose.describe()
                )
                assert f"recv (stream_id={stream_id}) x-framing: h2" in log, (
                    verbose.describe()
                )
            received = collections.Counter()
            ended = set()
            for d, t, length, flags, stream_id in seen:
                if (d, t) == ("recv", "DATA"):
                    received[stream_id] += length
                    if flags & 0x1:
                        ended.add(stream_id)
            largest = max(
                length for d, t, length, *_ in seen if (d, t) == ("recv", "DATA")
            )
            assert largest <= (1 << NGHTTP_WINDOW_BITS) - 1
            assert received[hello_id] == len(HELLO)
            assert received[big_id] == BIG_SIZE
            assert ended == {hello_id, big_id}
            assert served.state.connections == 1

            download = await execute(nghttp, *options, big)
            download.check()
            assert len(download.stdout) == BIG_SIZE
            assert sha256(download.stdout) == sha256(pattern(BIG_SIZE))

            upload = await execute(
                nghttp,
                *options,
                "-d",
                post_file,
                "-H",
                "content-type: application/octet-stream",
                served.url("/echo"),
            )
            upload.check()
            assert len(upload.stdout) == ECHO_SIZE
            assert sha256(upload.stdout) == sha256(pattern(ECHO_SIZE))
            assert served.state.framings == {"h2": 4}
            assert served.state.connections == 3

    run(scenario())


# ------------------------------------------------------------------------ h2load

_H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout"
)
_H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_H2LOAD_PROTOCOL = re.compile(r"Application protocol: (\S+)")


def h2load_summary(done: Completed) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    out = done.out
    protocol = _H2LOAD_PROTOCOL.search(out)
    requests = _H2LOAD_REQUESTS.search(out)
    status = _H2LOAD_STATUS.search(out)
    assert protocol and requests and status, done.describe()
    return (
        protocol.group(1),
        tuple(map(int, requests.groups())),
        tuple(map(int, status.groups())),
    )


H2LOAD_MODES = {
    "tls-alpn": (True, {}, "h2"),
    "h2c-prior-knowledge": (False, {"plain_protocol": "h2"}, "h2c"),
}


@pytest.mark.parametrize("mode", list(H2LOAD_MODES))
def test_h2load(mode: str) -> None:
    """``h2load -n 1000 -c 1 -m 100``: every request succeeds with a 2xx."""
    h2load = require_peer("h2load")
    tls, server_options, expected_protocol = H2LOAD_MODES[mode]

    async def scenario() -> None:
        async with serve(tls, **server_options) as served:
            done = await execute(
                h2load, "-n", "1000", "-c", "1", "-m", "100", served.url("/hello")
            )
            done.check()
            protocol, requests, status = h2load_summary(done)
            assert protocol == expected_protocol, done.describe()
            assert requests == (1000, 1000, 1000, 1000, 0, 0, 0), done.describe()
            assert status == (1000, 0, 0, 0), done.describe()
            assert served.state.connections == 1
            assert served.state.framings == {"h2": 1000}

    run(scenario())


@pytest.mark.parametrize("mode", list(H2LOAD_MODES))
def test_h2load_concurrent_streams(mode: str) -> None:
    """100 h2 streams open at once on one connection (the gate releases them
    only when all 100 are in the server together)."""
    h2load = require_peer("h2load")
    tls, server_options, expected_protocol = H2LOAD_MODES[mode]

    async def scenario() -> None:
        async with serve(tls, **server_options) as served:
            n = str(CONCURRENT)
            done = await execute(
                h2load, "-n", n, "-c", "1", "-m", n, served.url(f"/gate/h2/{n}")
            )
            done.check()
            protocol, requests, status = h2load_summary(done)
            assert protocol == expected_protocol, done.describe()
            assert requests[3:] == (CONCURRENT, 0, 0, 0), done.describe()
            assert status == (CONCURRENT, 0, 0, 0), done.describe()
            gate = served.state.gates["h2"]
            assert gate.max_in_flight == CONCURRENT
            assert gate.timed_out == 0
            assert len(gate.sessions) == 1
            assert served.state.connections == 1

    run(scenario())


# ------------------------------------------------------- node's spdy-transport

SPDY_TRANSPORTS = {
    # transport: (tls, server options for a protocol)
    "tls-alpn": (True, lambda protocol: {}),
    "plain": (False, lambda protocol: {"plain_protocol": protocol}),
    "sniff": (False, lambda protocol: {"plain_protocol": "sniff"}),
}

#: The data test's variants: a transport, and whether the client compresses
#: its header blocks (spdy-transport stores them, zlib level 0, by default).
SPDY_VARIANTS = {
    "tls-alpn": ("tls-alpn", False),
    "plain": ("plain", False),
    "sniff": ("sniff", False),
    "tls-alpn-compressed": ("tls-alpn", True),
}


@pytest.fixture
def node() -> str:
    node = require_peer("node")
    require_node_package("spdy-transport")
    return node


async def spdy_client(
    node: str,
    protocol: str,
    served: Served,
    plan: list[dict[str, Any]],
    compress: bool = False,
) -> dict[str, Any]:
    argv = [node, SPDY_PEER, "client", "--protocol", protocol]
    if compress:
        argv.append("--compress")
    argv += ["--port", str(served.port), "--plan", json.dumps(plan)]
    argv += ["--timeout", str(PEER_TIMEOUT - 5)]
    if served.tls:
        argv.append("--tls")
    done = await execute(*argv, cwd=PEERS_DIR)
    lines = done.out.strip().splitlines()
    assert lines, done.describe()
    result = json.loads(lines[-1])
    assert done.returncode == 0 and "error" not in result, done.describe()
    if served.tls:
        assert result["alpn"] == protocol, done.describe()
    return result


SPDY_PLAN = [
    {"method": "GET", "path": "/hello"},
    {"method": "POST", "path": "/echo", "body_size": ECHO_SIZE},
    {"method": "GET", "path": f"/bytes/{BIG_SIZE}"},
]

SPDY_EXPECTED = {
    "/hello": (len(HELLO), sha256(HELLO)),
    "/echo": (ECHO_SIZE, sha256(pattern(ECHO_SIZE))),
    f"/bytes/{BIG_SIZE}": (BIG_SIZE, sha256(pattern(BIG_SIZE))),
}


@pytest.mark.parametrize("variant", list(SPDY_VARIANTS))
@pytest.mark.parametrize("protocol", SPDY_VERSIONS)
def test_spdy_transport(node: str, protocol: str, variant: str) -> None:
    """GET, POST 2 MiB echoed, GET 10 MiB, concurrently on one SPDY session."""
    transport, compress = SPDY_VARIANTS[variant]
    tls, server_options = SPDY_TRANSPORTS[transport]

    async def scenario() -> None:
        async with serve(tls, **server_options(protocol)) as served:
            result = await spdy_client(node, protocol, served, SPDY_PLAN, compress)
            responses = result["responses"]
            assert [r["path"] for r in responses] == [p["path"] for p in SPDY_PLAN]
            for response in responses:
                assert response.get("status") == 200, response
                assert response["headers"].get("x-framing") == protocol, response
                assert (response["body_length"], response["body_sha256"]) == (
                    SPDY_EXPECTED[response["path"]]
                ), response["path"]
            assert result["pushes"] == []
            assert served.state.connections == 1
            assert served.state.framings == {protocol: len(SPDY_PLAN)}

    run(scenario())


@pytest.mark.parametrize("transport", ["tls-alpn", "plain"])
@pytest.mark.parametrize("protocol", SPDY_VERSIONS)
def test_spdy_transport_concurrent_streams(
    node: str, protocol: str, transport: str
) -> None:
    """100 streams open at once on one SPDY session."""
    tls, server_options = SPDY_TRANSPORTS[transport]
    group = protocol.replace("/", "").replace(".", "_")
    path = f"/gate/{group}/{CONCURRENT}"

    async def scenario() -> None:
        async with serve(tls, **server_options(protocol)) as served:
            plan = [{"method": "GET", "path": path}] * CONCURRENT
            result = await spdy_client(node, protocol, served, plan)
            statuses = collections.Counter(r.get("status") for r in result["responses"])
            assert statuses == {200: CONCURRENT}
            for response in result["responses"]:
                assert response["headers"].get("x-framing") == protocol
                assert response["body_length"] == len(f"{CONCURRENT}\n")
            gate = served.state.gates[group]
            assert gate.arrived == CONCURRENT
            assert gate.max_in_flight == CONCURRENT
            assert gate.timed_out == 0
            assert len(gate.sessions) == 1
            assert served.state.connections == 1
            assert served.state.framings == {protocol: CONCURRENT}

    run(scenario())
