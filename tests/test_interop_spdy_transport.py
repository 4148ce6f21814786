"""Interoperability of the SPDY core with node's ``spdy-transport`` 3.0.0.

The core (`tornado_spdy.spdy.SPDYConnection`) runs over plain asyncio streams of this
file's own (no Tornado), against ``tests/peers/spdy_peer.js``, a node program that
drives ``spdy-transport`` directly over ``net`` / ``tls`` sockets. Both directions, for
SPDY/2, SPDY/3 and SPDY/3.1, over plain TCP and over TLS with ALPN:

- the core as the client of the node server: a GET, a POST of 2 MiB echoed back, a
  10 MiB download under flow control and a server push;
- the core as the server of the node client, on the same routes, pushing with
  ``push_stream``.

The peer is installed by ``npm ci --prefix tests/peers`` (from the lockfile there);
without it these tests skip, or fail where peers are required (CI).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import os
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.peers_util import PEERS_DIR, require_node_package, require_peer
from tests.server_util import pattern, sha256

# The core is imported inside the tests, so that a broken core fails them one by
# one instead of breaking the collection of the whole suite.

PEER_SCRIPT = os.path.join(PEERS_DIR, "spdy_peer.js")

VERSIONS = ("spdy/2", "spdy/3", "spdy/3.1")

HELLO = b"hello world"
PUSH_PARENT = b"pushed-parent"
PUSH_PATH = "/pushed.js"
PUSH_SIZE = 100_000
ECHO_SIZE = 2 * 1024 * 1024
BIG_SIZE = 10 * 1024 * 1024

PLAN = [
    {"method": "GET", "path": "/hello"},
    {"method": "POST", "path": "/echo", "body_size": ECHO_SIZE},
    {"method": "GET", "path": f"/bytes/{BIG_SIZE}"},
    {"method": "GET", "path": "/push"},
]

# The core's configuration in the main matrix: its default 64 KiB stream windows (so
# the 10 MiB download and the 2 MiB echo run under flow control, with WINDOW_UPDATEs
# every 32 KiB), but a 1 MiB SPDY/3.1 session window, because a session window no
# larger than the stream window trips two spdy-transport 3.1 bugs (as a sender):
# - its framer waits for session window only when the window is already <= 0, not
#   when it is smaller than the frame, so with several streams sending at once it
#   overruns the receiver's session window by up to one 8 KiB chunk per stream, and
#   a strict receiver ends the session (FLOW_CONTROL);
# - a response's closing empty DATA frame (FIN) waits for session window while the
#   stream is already forgotten; a WINDOW_UPDATE for that stream arriving meanwhile
#   is answered with RST_STREAM(INVALID_STREAM), which goes out before the FIN, so
#   the receiver sees a reset instead of the end of a complete body.
# A session window well above the stream windows keeps it from ever running dry.
CORE_CONFIG: dict[str, Any] = {"initial_session_window_size": 1024 * 1024}

# Every asyncio scenario is bounded well inside the pytest timeout.
SCENARIO_TIMEOUT = 45.0

pytestmark = [pytest.mark.peer, pytest.mark.timeout(60)]


# --------------------------------------------------------------------------- helpers

EXPECTED = {
    "/hello": (len(HELLO), sha256(HELLO)),
    "/echo": (ECHO_SIZE, sha256(pattern(ECHO_SIZE))),
    f"/bytes/{BIG_SIZE}": (BIG_SIZE, sha256(pattern(BIG_SIZE))),
    "/push": (len(PUSH_PARENT), sha256(PUSH_PARENT)),
    PUSH_PATH: (PUSH_SIZE, sha256(pattern(PUSH_SIZE))),
}


def make_certificate(directory: str) -> tuple[str, str]:
    """A throw-away self-signed certificate for 127.0.0.1 / localhost; (cert, key)
    paths in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return make_certificate(str(tmp_path_factory.mktemp("spdy-cert")))


@pytest.fixture
def node() -> str:
    node = require_peer("node")
    require_node_package("spdy-transport")
    return node


def run(coro: Awaitable[Any], timeout: float = SCENARIO_TIMEOUT) -> Any:
    """Run one scenario on a fresh event loop, bounded by ``timeout``."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def header_dict(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return {bytes(n): bytes(v) for n, v in headers}


# ------------------------------------------------------------ the asyncio driver


@dataclass
class StreamRecord:
    """What one stream carried, as the test driver saw it."""

    stream_id: int
    request_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    response_headers: list[tuple[bytes, bytes]] | None = None
    body: bytearray = field(default_factory=bytearray)
    keep_body: bool = True
    hasher: Any = field(default_factory=hashlib.sha256)
    length: int = 0
    parent_id: int | None = None
    ended: asyncio.Future[None] | None = None

    def add(self, data: bytes | memoryview) -> None:
        self.hasher.update(data)
        self.length += len(data)
        if self.keep_body:
            self.body += data


class CoreDriver:
    """Runs one `SPDYConnection` over an asyncio (reader, writer) pair.

    A read task feeds ``receive_data`` and dispatches events; bodies are sent by
    coroutines that wait for flow-control windows. Every event but DataReceived is
    kept in ``self.events`` for the checks and for diagnostics.
    """

    def __init__(
        self,
        conn: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_request: Callable[[CoreDriver, StreamRecord], Awaitable[None]] | None = None,
    ) -> None:
        self.conn = conn
        self.reader = reader
        self.writer = writer
        self.on_request = on_request
        self.streams: dict[int, StreamRecord] = {}
        self.pushes: list[StreamRecord] = []
        self.events: list[Any] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None
        self._window_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._read_task: asyncio.Task[None] | None = None

    # -- plumbing

    def start(self) -> None:
        self.conn.initiate_connection()
        self.flush_nowait()
        self._read_task = asyncio.ensure_future(self._read_loop())

    def flush_nowait(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def flush(self) -> None:
        self.flush_nowait()
        await self.writer.drain()

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._fail(t.exception())

        task.add_done_callback(done)

    def _fail(self, exc: BaseException | None) -> None:
        if self.error is None and exc is not None:
            self.error = exc
        for record in list(self.streams.values()) + self.pushes:
            if record.ended is not None and not record.ended.done():
                record.ended.set_exception(
                    exc or ConnectionError("connection closed before the stream ended")
                )
                record.ended.exception()  # retrieved: no "never retrieved" noise
        if not self.closed.done():
            self.closed.set_result(None)

    def new_record(self, stream_id: int, **kw: Any) -> StreamRecord:
        record = StreamRecord(
            stream_id, ended=asyncio.get_running_loop().create_future(), **kw
        )
        self.streams[stream_id] = record
        return record

    async def _read_loop(self) -> None:
        from tornado_spdy.spdy import events as ev

        try:
            while True:
                data = await self.reader.read(256 * 1024)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                finally:
                    self.flush_nowait()  # also the GOAWAY of a ProtocolError
                for event in events:
                    if not isinstance(event, ev.DataReceived):
                        self.events.append(event)  # (DATA would keep every body)
                    self._dispatch(event, ev)
                self.flush_nowait()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception as exc:  # a core error: surface it in the test
            self._fail(exc)
            return
        self._fail(None)

    def _dispatch(self, event: Any, ev: Any) -> None:
        if isinstance(event, ev.RequestReceived):
            self.new_record(event.stream_id, request_headers=list(event.headers))
        elif isinstance(event, ev.ResponseReceived):
            record = self.streams.get(event.stream_id)
            assert record is not None, f"response for unknown stream {event}"
            record.response_headers = list(event.headers)
        elif isinstance(event, ev.PushedStreamReceived):
            record = self.new_record(
                event.pushed_stream_id,
                request_headers=list(event.headers),
                parent_id=event.parent_stream_id,
                keep_body=False,
            )
            self.pushes.append(record)
        elif isinstance(event, ev.DataReceived):
            record = self.streams.get(event.stream_id)
            assert record is not None, f"DATA for unknown stream {event}"
            record.add(event.data)
            self.conn.acknowledge_received_data(
                event.flow_controlled_length, event.stream_id
            )
        elif isinstance(event, ev.StreamEnded):
            record = self.streams[event.stream_id]
            if record.ended is not None and not record.ended.done():
                record.ended.set_result(None)
            if self.on_request is not None and record.response_headers is None:
                self.spawn(self.on_request(self, record))
        elif isinstance(event, ev.StreamReset):
            record = self.streams.get(event.stream_id)
            if record is not None and record.ended is not None:
                if not record.ended.done():
                    record.ended.set_exception(AssertionError(f"stream reset: {event}"))
                    record.ended.exception()
        elif isinstance(event, (ev.WindowUpdated, ev.RemoteSettingsChanged)):
            self._window_changed.set()
            self._window_changed = asyncio.Event()

    # -- sending

    async def send_body(
        self, stream_id: int, body: bytes, end_stream: bool = True
    ) -> None:
        """Send ``body`` on ``stream_id`` as the windows allow."""
        view = memoryview(body)
        offset = 0
        while offset < len(view):
            if self.closed.done():
                raise ConnectionError(f"connection closed: {self.error!r}")
            changed = self._window_changed
            size = min(
                len(view) - offset,
                self.conn.local_flow_control_window(stream_id),
                self.conn.max_outbound_frame_size,
            )
            if size <= 0:
                waiter = asyncio.ensure_future(changed.wait())
                await asyncio.wait(
                    [waiter, self.closed], return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                continue
            last = end_stream and offset + size == len(view)
            self.conn.send_data(
                stream_id, view[offset : offset + size], end_stream=last
            )
            offset += size
            await self.flush()
        if end_stream and not body:
            self.conn.end_stream(stream_id)
            await self.flush()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._read_task is not None:
            self._read_task.cancel()
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass


# ------------------------------------------------------------------ node processes


def client_ssl_context(protocol: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([protocol])
    return context


def server_ssl_context(protocol: str, certificate: tuple[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.set_alpn_protocols([protocol])
    return context


class NodeServer:
    """``spdy_peer.js server`` in a subprocess; stops when its stdin closes."""

    def __init__(
        self,
        node: str,
        protocol: str,
        tls: bool,
        certificate: tuple[str, str],
        log_path: str,
        extra: list[str] | None = None,
    ):
        self.args = [node, PEER_SCRIPT, "server", "--protocol", protocol]
        if tls:
            self.args += ["--tls", "--cert", certificate[0], "--key", certificate[1]]
        self.args += extra or []
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> NodeServer:
        self._log = open(self.log_path, "ab")
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
            if not line:
                raise AssertionError(f"node server did not start: {self.log()}")
            self.port = json.loads(line)["port"]
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self.proc is not None
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._log.close()

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]


async def run_node_client(
    node: str,
    protocol: str,
    tls: bool,
    port: int,
    plan: list[dict[str, Any]],
    log_path: str,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    args = [node, PEER_SCRIPT, "client", "--protocol", protocol, "--port", str(port)]
    if tls:
        args.append("--tls")
    args += ["--plan", json.dumps(plan), "--timeout", "35"] + (extra or [])
    with open(log_path, "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), 40)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    with open(log_path, encoding="utf-8", errors="replace") as f:
        log_text = f.read()[-4000:]
    assert stdout, f"node client printed nothing (exit {proc.returncode}): {log_text}"
    result: dict[str, Any] = json.loads(stdout.decode().splitlines()[-1])
    result["_exit"] = proc.returncode
    result["_log"] = log_text
    return result


# --------------------------------------------------- the core as the node's client


async def core_client_session(
    protocol: str,
    port: int,
    tls: bool,
    plan: list[dict[str, Any]],
    config: dict[str, Any] | None = None,
) -> tuple[CoreDriver, dict[str, StreamRecord]]:
    """Connect the core to 127.0.0.1:``port``, run ``plan`` concurrently, and
    return the driver and a record per path once every stream (pushes too) ended."""
    from tornado_spdy.spdy import SPDYConfiguration, SPDYConnection

    context = client_ssl_context(protocol) if tls else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    if tls:
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        assert alpn == protocol, f"ALPN chose {alpn!r}"
    if config is None:
        config = CORE_CONFIG
    conn = SPDYConnection(
        SPDYConfiguration(client_side=True, version=protocol, **config)
    )
    driver = CoreDriver(conn, reader, writer)
    driver.start()
    authority = f"127.0.0.1:{port}"
    records: dict[str, StreamRecord] = {}
    try:
        uploads = []
        for item in plan:
            method, path = item["method"], item["path"]
            body = pattern(item.get("body_size", 0))
            stream_id = conn.get_next_available_stream_id()
            record = driver.new_record(
                stream_id, keep_body=path != f"/bytes/{BIG_SIZE}"
            )
            records[path] = record
            conn.send_headers(
                stream_id,
                [
                    (":method", method),
                    (":path", path),
                    (":scheme", "https" if tls else "http"),
                    (":authority", authority),
                ],
                end_stream=method == "GET",
            )
            driver.flush_nowait()
            if method != "GET":
                uploads.append(driver.send_body(stream_id, body))
        await asyncio.gather(*uploads)
        await asyncio.gather(*(r.ended for r in records.values() if r.ended))
        # Every push was announced before its parent ended; wait for their bodies.
        await asyncio.gather(*(p.ended for p in driver.pushes if p.ended))
        if driver.error is not None:
            raise driver.error
        conn.close_connection()
        await driver.flush()
    finally:
        await driver.close()
    return driver, records


def check_core_client_results(
    driver: CoreDriver, records: dict[str, StreamRecord], protocol: str, tls: bool
) -> None:
    for path, record in records.items():
        assert record.response_headers is not None, path
        headers = header_dict(record.response_headers)
        assert headers[b":status"] == b"200", (path, record.response_headers)
        assert all(name == name.lower() for name in headers), record.response_headers
        length, digest = EXPECTED[path]
        assert (record.length, record.hasher.hexdigest()) == (length, digest), path
        assert headers[b"content-length"] == str(length).encode(), path
    assert bytes(records["/hello"].body) == HELLO
    assert headers_of(records["/hello"])[b"content-type"] == b"text/plain"

    # The push of /pushed.js, announced on the /push stream.
    assert len(driver.pushes) == 1, driver.pushes
    push = driver.pushes[0]
    assert push.parent_id == records["/push"].stream_id
    request = header_dict(push.request_headers)
    assert request[b":path"] == PUSH_PATH.encode(), push.request_headers
    assert request[b":method"] == b"GET", push.request_headers
    assert request[b":scheme"] == (b"https" if tls else b"http"), push.request_headers
    assert request.get(b":authority", b"").startswith(b"127.0.0.1:"), (
        push.request_headers
    )
    assert push.response_headers is not None, "push without ResponseReceived"
    response = header_dict(push.response_headers)
    assert response[b":status"] == b"200", push.response_headers
    assert response[b"content-type"] == b"application/javascript", push.response_headers
    assert (push.length, push.hasher.hexdigest()) == EXPECTED[PUSH_PATH]


def check_clean(driver: CoreDriver, node_log: str) -> None:
    """Neither side reset a stream or complained."""
    from tornado_spdy.spdy import events as ev

    # A reset of a stream that had already ended is tolerated (spdy-transport
    # answers a WINDOW_UPDATE for a stream it closed with RST_STREAM); any
    # other reset is a failure.
    ended_first = set()
    resets = []
    for event in driver.events:
        if isinstance(event, ev.StreamEnded):
            ended_first.add(event.stream_id)
        elif isinstance(event, ev.StreamReset) and event.stream_id not in ended_first:
            resets.append(event)
    assert not resets, resets
    goaways = [e for e in driver.events if isinstance(e, ev.ConnectionTerminated)]
    assert all(g.error_code == 0 for g in goaways), goaways
    complaints = [
        line
        for line in node_log.splitlines()
        if re.search(r"error|failed|ALPN chose", line)
    ]
    assert not complaints, node_log


def with_log(exc: BaseException, node_log: str) -> AssertionError:
    """``exc`` (a timeout shows as the cancellation of the scenario) as a test
    failure that carries the node peer's log."""
    what = "timed out" if isinstance(exc, asyncio.CancelledError) else repr(exc)
    return AssertionError(f"{what}; node log:\n{node_log}")


def headers_of(record: StreamRecord) -> dict[bytes, bytes]:
    assert record.response_headers is not None
    return header_dict(record.response_headers)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("protocol", VERSIONS)
def test_core_client_against_node_server(
    node: str, certificate: tuple[str, str], tmp_path: Any, protocol: str, tls: bool
) -> None:
    """GET, 2 MiB POST echo, 10 MiB download (64 KiB windows) and a push."""

    async def scenario() -> None:
        log = str(tmp_path / "node-server.log")
        async with NodeServer(node, protocol, tls, certificate, log) as server:
            try:
                driver, records = await core_client_session(
                    protocol, server.port, tls, PLAN
                )
            except BaseException as exc:
                raise with_log(exc, server.log()) from exc
            check_core_client_results(driver, records, protocol, tls)
            check_clean(driver, server.log())

    run(scenario())


@pytest.mark.parametrize("protocol", VERSIONS)
def test_core_client_large_windows_and_compressed_headers(
    node: str, certificate: tuple[str, str], tmp_path: Any, protocol: str
) -> None:
    """The core advertises a 1 MiB stream window (SETTINGS id 7, little-endian ids
    in SPDY/2) and a 16 MiB session window: the node server must honour them, or the
    download stalls. The node side compresses its header blocks (zlib level > 0)."""
    plan = [
        {"method": "GET", "path": f"/bytes/{BIG_SIZE}"},
        {"method": "GET", "path": "/push"},
    ]
    config = {
        "initial_window_size": 1024 * 1024,
        "initial_session_window_size": 16 * 1024 * 1024,
    }

    async def scenario() -> None:
        log = str(tmp_path / "node-server.log")
        async with NodeServer(
            node, protocol, False, certificate, log, extra=["--compress"]
        ) as server:
            try:
                driver, records = await core_client_session(
                    protocol, server.port, False, plan, config
                )
            except BaseException as exc:
                raise with_log(exc, server.log()) from exc
            check_clean(driver, server.log())
        record = records[f"/bytes/{BIG_SIZE}"]
        assert (record.length, record.hasher.hexdigest()) == EXPECTED[
            f"/bytes/{BIG_SIZE}"
        ]
        assert len(driver.pushes) == 1
        push = driver.pushes[0]
        assert (push.length, push.hasher.hexdigest()) == EXPECTED[PUSH_PATH]
        assert header_dict(push.response_headers or [])[b":status"] == b"200"

    run(scenario())


@pytest.mark.parametrize("protocol", VERSIONS)
def test_core_client_against_node_server_guessing_the_version(
    node: str, certificate: tuple[str, str], tmp_path: Any, protocol: str
) -> None:
    """Plain TCP without ALPN, as a node-spdy server sees it: spdy-transport is not
    told the version but learns 2 or 3 from the first control frame, and with its
    ``autoSpdy31`` option turns 3 into 3.1 at the first WINDOW_UPDATE for stream 0.
    (Without ``autoSpdy31`` it serves a SPDY/3.1 client as SPDY/3 and never opens the
    session window, so a 3.1 upload stalls after 64 KiB.)"""
    plan = [
        {"method": "POST", "path": "/echo", "body_size": ECHO_SIZE},
        {"method": "GET", "path": "/push"},
    ]

    async def scenario() -> None:
        log = str(tmp_path / "node-server.log")
        extra = ["--guess-version", "--auto-spdy31"]
        async with NodeServer(node, protocol, False, certificate, log, extra) as server:
            try:
                driver, records = await core_client_session(
                    protocol, server.port, False, plan
                )
            except BaseException as exc:
                raise with_log(exc, server.log()) from exc
            check_clean(driver, server.log())
        for path, record in records.items():
            assert (record.length, record.hasher.hexdigest()) == EXPECTED[path], path
        assert len(driver.pushes) == 1
        push = driver.pushes[0]
        assert (push.length, push.hasher.hexdigest()) == EXPECTED[PUSH_PATH]

    run(scenario())


# --------------------------------------------------- the core as the node's server


async def serve_route(driver: CoreDriver, record: StreamRecord, tls: bool) -> None:
    """The test server's routes, written with the core."""
    conn = driver.conn
    request = header_dict(record.request_headers)
    method = request.get(b":method", b"").decode()
    path = request.get(b":path", b"").decode()
    stream_id = record.stream_id
    body: bytes
    content_type = "application/octet-stream"
    match = re.fullmatch(r"/bytes/(\d+)", path)
    if method == "GET" and path == "/hello":
        body, content_type = HELLO, "text/plain"
    elif method == "POST" and path == "/echo":
        body = bytes(record.body)
    elif method == "GET" and match:
        body = pattern(int(match.group(1)))
    elif method == "GET" and path == "/push":
        body, content_type = PUSH_PARENT, "text/plain"
    else:
        body, content_type = b"not found", "text/plain"
    status = "404" if body == b"not found" else "200"
    record.response_headers = []  # answered: no second dispatch
    conn.send_headers(
        stream_id,
        [
            (":status", status),
            ("content-type", content_type),
            ("content-length", str(len(body))),
        ],
    )
    push_id = None
    push_body = b""
    if path == "/push":
        # spdy-transport's client needs :status in the push SYN_STREAM itself, so
        # the response headers go with it (send_headers right after push_stream).
        push_id = conn.get_next_available_stream_id()
        conn.push_stream(
            stream_id,
            push_id,
            [
                (":method", "GET"),
                (":path", PUSH_PATH),
                (":scheme", "https" if tls else "http"),
                (":authority", request.get(b":authority", b"127.0.0.1").decode()),
            ],
        )
        push_body = pattern(PUSH_SIZE)
        conn.send_headers(
            push_id,
            [
                (":status", "200"),
                ("content-type", "application/javascript"),
                ("content-length", str(len(push_body))),
            ],
        )
    await driver.flush()
    sends = [driver.send_body(stream_id, body)]
    if push_id is not None:
        sends.append(driver.send_body(push_id, push_body))
    await asyncio.gather(*sends)


class CoreServer:
    """An asyncio server speaking ``protocol`` with the core on 127.0.0.1."""

    def __init__(
        self,
        protocol: str,
        tls: bool,
        certificate: tuple[str, str],
        config: dict[str, Any] | None = None,
    ):
        self.protocol = protocol
        self.tls = tls
        self.certificate = certificate
        self.config = CORE_CONFIG if config is None else config
        self.drivers: list[CoreDriver] = []
        self.alpn: list[str | None] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> CoreServer:
        context = (
            server_ssl_context(self.protocol, self.certificate) if self.tls else None
        )
        self.server = await asyncio.start_server(
            self._on_connection, "127.0.0.1", 0, ssl=context
        )
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        from tornado_spdy.spdy import SPDYConfiguration, SPDYConnection

        if self.tls:
            self.alpn.append(
                writer.get_extra_info("ssl_object").selected_alpn_protocol()
            )
        conn = SPDYConnection(
            SPDYConfiguration(client_side=False, version=self.protocol, **self.config)
        )

        async def on_request(driver: CoreDriver, record: StreamRecord) -> None:
            await serve_route(driver, record, self.tls)

        driver = CoreDriver(conn, reader, writer, on_request)
        self.drivers.append(driver)
        driver.start()
        await driver.closed
        await driver.close()

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self.server is not None
        self.server.close()
        for driver in self.drivers:
            await driver.close()
        await self.server.wait_closed()


def check_node_client_results(
    result: dict[str, Any], plan: list[dict[str, Any]], protocol: str, tls: bool
) -> None:
    assert "error" not in result, result
    assert result["_exit"] == 0, result
    if tls:
        assert result["alpn"] == protocol
    responses = result["responses"]
    assert [r["path"] for r in responses] == [p["path"] for p in plan]
    for response in responses:
        path = response["path"]
        assert response["status"] == 200, response
        assert (response["body_length"], response["body_sha256"]) == EXPECTED[path], (
            path
        )
        assert response["headers"]["content-length"] == str(EXPECTED[path][0])
    if any(p["path"] == "/push" for p in plan):
        assert len(result["pushes"]) == 1, result["pushes"]
        push = result["pushes"][0]
        # SPDY/2 names a pushed resource by an absolute URL; spdy-transport reports
        # that URL as the push's path.
        absolute = r"https?://127\.0\.0\.1:\d+" + re.escape(PUSH_PATH)
        assert push["path"] == PUSH_PATH or re.fullmatch(absolute, push["path"]), push
        assert push["parent_path"] == "/push"
        assert push["status"] == 200, push
        assert push["request_headers"][":method"] == "GET", push
        assert push["request_headers"]["content-type"] == "application/javascript", push
        assert (push["body_length"], push["body_sha256"]) == EXPECTED[PUSH_PATH]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("protocol", VERSIONS)
def test_node_client_against_core_server(
    node: str, certificate: tuple[str, str], tmp_path: Any, protocol: str, tls: bool
) -> None:
    """The node client's GET, 2 MiB POST echo, 10 MiB download and push, served by
    the core. Both sides advertise 64 KiB stream windows; the core must wait for
    the node's WINDOW_UPDATEs (stream and, in SPDY/3.1, session)."""

    async def scenario() -> None:
        async with CoreServer(protocol, tls, certificate) as server:
            result = await run_node_client(
                node,
                protocol,
                tls,
                server.port,
                PLAN,
                str(tmp_path / "node-client.log"),
                # 64 KiB receive windows on the node side (1 MiB by default): the
                # core's sends wait for the node's WINDOW_UPDATEs all the way.
                extra=["--window-size", "65536"],
            )
            errors = [d.error for d in server.drivers if d.error is not None]
        assert not errors, (errors, result.get("_log"))
        assert len(server.drivers) == 1
        check_clean(server.drivers[0], result["_log"])
        if tls:
            assert server.alpn == [protocol]
        check_node_client_results(result, PLAN, protocol, tls)

    run(scenario())


@pytest.mark.parametrize("protocol", VERSIONS)
def test_node_client_compressed_headers_large_windows(
    node: str, certificate: tuple[str, str], tmp_path: Any, protocol: str
) -> None:
    """The node client compresses its header blocks; the core server advertises
    1 MiB stream windows (and a 16 MiB session window in SPDY/3.1)."""
    plan = [
        {"method": "GET", "path": "/hello"},
        {"method": "POST", "path": "/echo", "body_size": ECHO_SIZE},
        {"method": "GET", "path": "/push"},
    ]
    config = {
        "initial_window_size": 1024 * 1024,
        "initial_session_window_size": 16 * 1024 * 1024,
    }

    async def scenario() -> None:
        async with CoreServer(protocol, False, certificate, config) as server:
            result = await run_node_client(
                node,
                protocol,
                False,
                server.port,
                plan,
                str(tmp_path / "node-client.log"),
                extra=["--compress"],
            )
            errors = [d.error for d in server.drivers if d.error is not None]
        assert not errors, (errors, result.get("_log"))
        assert len(server.drivers) == 1
        check_clean(server.drivers[0], result["_log"])
        check_node_client_results(result, plan, protocol, False)

    run(scenario())
