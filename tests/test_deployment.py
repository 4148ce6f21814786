"""Deployment beyond one process: several cores, and several machines behind
HAProxy (docs/deployment.rst describes what these tests run).

Every server is a separate process (``tests/deploy/backend.py``), never a fork
of pytest, started in its own process group and killed with it at the end of
the test. Each response names the process that served it (backend name, PID and
the protocol it received), so the tests can tell who answered:

- more than one core: two processes serving one port, made by
  ``bind_sockets(reuse_port=True)`` + ``fork_processes(2)``, or by two
  independently started processes each calling
  ``SPDYServer.listen(port, reuse_port=True)``; both PIDs answer h2 (curl, many
  connections) and SPDY/3.1 (`SPDYClient`, and ``python -m tornado_spdy fetch``);
- more than one machine: a real HAProxy 2.6 (``tests/deploy/haproxy-http.cfg``
  and ``haproxy-tcp.cfg``, run as they are) in front of two backends. HTTP mode
  ends TLS at HAProxy (h2 and HTTP/1.1 to clients by ALPN) and speaks h2 to the
  backends; TCP mode passes TLS through, so ALPN, SPDY and push reach the
  backends. Requests spread over both backends, and once HAProxy's health
  check has marked a killed backend DOWN, every request succeeds on the other.

HAProxy listens on a socket the test opened (``bind "fd@N"``), so its port is
free by construction and connections wait in the backlog until it accepts: no
start-up polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from tests.peers_util import require_peer

# tornado_spdy is imported inside the helpers, so that a broken package fails
# these tests one by one rather than the collection of the whole suite.

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
DEPLOY_DIR = os.path.join(TESTS_DIR, "deploy")
BACKEND = os.path.join(DEPLOY_DIR, "backend.py")
HAPROXY_HTTP_CFG = os.path.join(DEPLOY_DIR, "haproxy-http.cfg")
HAPROXY_TCP_CFG = os.path.join(DEPLOY_DIR, "haproxy-tcp.cfg")

#: A backend's start (Python, Tornado, a TLS context) on a slow, shared machine.
START_TIMEOUT = 20.0
#: One client process or fetch.
CLIENT_TIMEOUT = 15.0
#: HAProxy marking a killed backend DOWN (checks every 100 ms, fall 2).
DOWN_TIMEOUT = 10.0
#: A whole scenario.
SCENARIO_TIMEOUT = 50.0
#: Connections per round when two processes share a port; rounds at most.
ROUND = 12
ROUNDS = 5

pytestmark = [pytest.mark.peer, pytest.mark.timeout(60)]


def run(scenario: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))


# ------------------------------------------------------------------- processes


class Lines:
    """The lines a child writes to one pipe, collected as they come."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self.eof = False
        self._grew = asyncio.Event()
        self._task = asyncio.ensure_future(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._grew.set()
        self.eof = True
        self._grew.set()

    async def wait_for(
        self, match: Callable[[str], bool], count: int = 1, timeout: float = 10.0
    ) -> list[str]:
        """The first ``count`` lines that ``match``, waiting for them."""

        async def until_found() -> list[str]:
            while True:
                found = [line for line in self.lines if match(line)]
                if len(found) >= count:
                    return found[:count]
                if self.eof:
                    raise EOFError(f"pipe closed after:\n{self.text()}")
                self._grew.clear()
                await self._grew.wait()

        try:
            return await asyncio.wait_for(until_found(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no {count} matching line(s) within {timeout}s:\n{self.text()}"
            ) from None

    def text(self) -> str:
        return "\n".join(self.lines[-30:])

    async def closed(self) -> None:
        """Until the pipe is closed by every process that holds it."""
        await self._task


@dataclasses.dataclass
class Child:
    process: asyncio.subprocess.Process
    lines: Lines


class Children:
    """Child processes, each the leader of its own process group; every group
    is killed when the ``async with`` block ends, however it ends."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    async def __aenter__(self) -> Children:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in self.children:  # every group first, then the waits
            signal_group(child)
        for child in self.children:
            await self.kill(child)

    async def start(
        self,
        argv: Sequence[str],
        read: str = "stdout",
        pass_fds: Sequence[int] = (),
        env: dict[str, str] | None = None,
    ) -> Child:
        """Start ``argv``; its ``read`` pipe ("stdout" or "stderr") is
        collected, the other stream goes to a log file."""
        log = open(os.path.join(self.log_dir, f"child{len(self.children)}.log"), "wb")
        with log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if read == "stdout" else log,
                stderr=asyncio.subprocess.PIPE if read == "stderr" else log,
                start_new_session=True,  # its own group: killpg reaches forks
                pass_fds=pass_fds,
                env=child_env(env),
            )
        stream = process.stdout if read == "stdout" else process.stderr
        assert stream is not None
        child = Child(process, Lines(stream))
        self.children.append(child)
        return child

    async def kill(self, child: Child) -> None:
        """Kill ``child``'s process group; return once the group is gone (its
        leader reaped, and the pipe closed by every process holding it)."""
        signal_group(child)
        await asyncio.wait_for(child.process.wait(), 10)
        await asyncio.wait_for(child.lines.closed(), 10)


def signal_group(child: Child) -> None:
    # Even when the leader is gone: forked members of its group may be alive.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signal.SIGKILL)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment, with the working tree importable by the children."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p
    )
    env.update(extra or {})
    return env


# -------------------------------------------------------------------- backends


@dataclasses.dataclass
class Backend:
    name: str
    pid: int
    tls_port: int
    plain_port: int | None
    child: Child


@pytest.fixture(scope="module")
def certdir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The development certificate, and HAProxy's PEM (certificate + key)."""
    from tornado_spdy.tls import development_certificate

    directory = tmp_path_factory.mktemp("cert")
    certfile, keyfile = development_certificate(str(directory))
    with open(directory / "haproxy.pem", "w") as pem:
        for path in (certfile, keyfile):
            with open(path) as part:
                pem.write(part.read())
    return str(directory)


def ready_lines(child: Child, count: int) -> Awaitable[list[str]]:
    return child.lines.wait_for(lambda line: line.startswith("{"), count, START_TIMEOUT)


async def start_backend(
    children: Children, certdir: str, name: str, *options: str, processes: int = 1
) -> list[Backend]:
    """Start tests/deploy/backend.py; one `Backend` per serving process."""
    argv = [sys.executable, BACKEND, "--name", name, "--certdir", certdir, *options]
    child = await children.start(argv)
    backends = []
    for line in await ready_lines(child, processes):
        info = json.loads(line)
        backends.append(
            Backend(name, info["pid"], info["tls_port"], info["plain_port"], child)
        )
    return backends


async def two_backends(children: Children, certdir: str) -> list[Backend]:
    """Backends b1 and b2, each with a TLS port and a cleartext h2 port."""
    started = await asyncio.gather(
        start_backend(children, certdir, "b1", "--plain-port", "0"),
        start_backend(children, certdir, "b2", "--plain-port", "0"),
    )
    return [backends[0] for backends in started]


# --------------------------------------------------------------------- clients


@dataclasses.dataclass(frozen=True)
class Answer:
    """One response: the client's protocol and status, and who served it."""

    version: str  # as the client saw it: curl's %{http_version}, or a framing
    status: int
    name: str = ""
    pid: int = 0
    framing: str = ""  # as the serving process saw it
    connects: int = 0  # connections curl opened for it (0: it reused one)


async def run_client(argv: Sequence[str], timeout: float = CLIENT_TIMEOUT) -> str:
    """Run a client program; its stdout (its stderr joins any failure)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{argv[0]} took over {timeout}s") from None
    assert process.returncode == 0, f"{argv} exited {process.returncode}: {err!r}"
    return out.decode()


CURL_FORMAT = "%{num_connects} %{http_version} %{response_code} %header{x-served-by}\\n"


async def curl(url: str, n: int, *options: str, connections: int = 1) -> list[Answer]:
    """GET ``url`` ``n`` times with curl, over one connection (reused) or
    ``connections`` parallel ones."""
    argv = [require_peer("curl"), "-sS", "-k", "-w", CURL_FORMAT, *options]
    if connections > 1:
        # New connections at once rather than streams of one h2 connection.
        argv += ["-Z", "--parallel-immediate", "--parallel-max", str(connections)]
    for _ in range(n):
        argv += ["-o", os.devnull, url]
    out = await run_client(argv)
    answers = [parse_curl(line) for line in out.splitlines() if line.strip()]
    assert len(answers) == n, out
    return answers


def parse_curl(line: str) -> Answer:
    connects, version, status, *served_by = line.split()
    if len(served_by) != 3:
        return Answer(version, int(status), connects=int(connects))
    name, pid, framing = served_by
    return Answer(version, int(status), name, int(pid), framing, int(connects))


async def spdy_fetch(url: str, protocol: str, n: int = 1) -> list[Answer]:
    """GET ``url`` ``n`` times at once with `SPDYClient`, each over a new
    connection, offering only ``protocol`` by ALPN. At once: processes sharing
    one listening socket take turns only when connections arrive together
    (one after another, the same idle process may accept them all)."""
    from tornado_spdy import SPDYClient

    client = SPDYClient(force_instance=True)

    async def one() -> Answer:
        response = await client.fetch(
            url,
            validate_cert=False,
            protocol=protocol,
            force_connection=True,  # a new session: a new TCP connection
            request_timeout=CLIENT_TIMEOUT,
        )
        body = json.loads(response.body)
        return Answer(
            response.framing,
            response.code,
            body["name"],
            body["pid"],
            body["framing"],
        )

    try:
        return list(await asyncio.gather(*(one() for _ in range(n))))
    finally:
        client.close()


async def nghttp_push(url: str) -> tuple[str, dict[str, Any], str]:
    """``nghttp`` (which accepts pushes) fetching a page that pushes: its frame
    log (``-nv``), the page, and what follows the page (pushed bodies)."""
    nghttp = require_peer("nghttp")
    frames = await run_client([nghttp, "-nv", url + "?push=1"])
    page, _, rest = (await run_client([nghttp, url + "?push=1"])).partition("\n")
    return frames, json.loads(page), rest


def require_peers(*names: str) -> None:
    """Skip (or, in CI, fail) before starting anything if a peer is missing."""
    for name in names:
        require_peer(name)


def names(answers: Sequence[Answer]) -> set[str]:
    return {answer.name for answer in answers}


def pids(answers: Sequence[Answer]) -> set[int]:
    return {answer.pid for answer in answers}


# ------------------------------------------------------------------ more cores


async def until_both_pids(
    fetch: Callable[[], Awaitable[list[Answer]]], expected: set[int]
) -> list[Answer]:
    """Rounds of fetches until every expected PID has answered (at most
    ``ROUNDS``): which process accepts a connection is the kernel's choice."""
    answers: list[Answer] = []
    for _ in range(ROUNDS):
        answers += await fetch()
        if pids(answers) >= expected:
            break
    return answers


async def both_processes_serve(port: int, expected: set[int]) -> None:
    url = f"https://127.0.0.1:{port}/"
    h2 = await until_both_pids(
        lambda: curl(url, ROUND, "--http2", connections=ROUND), expected
    )
    assert {(a.version, a.status, a.framing) for a in h2} == {("2", 200, "h2")}
    assert {a.connects for a in h2} == {1}  # each on a connection of its own
    assert pids(h2) == expected, h2

    spdy = await until_both_pids(lambda: spdy_fetch(url, "spdy/3.1", 6), expected)
    assert {(a.version, a.status, a.framing) for a in spdy} == {
        ("spdy/3.1", 200, "spdy/3.1")
    }
    assert pids(spdy) == expected, spdy


def test_fork_processes_share_a_port(certdir: str, tmp_path: Any) -> None:
    """``bind_sockets(port, reuse_port=True)`` then ``fork_processes(2)``: both
    children answer on the one port, over h2 and SPDY/3.1."""
    require_peer("curl")

    async def scenario() -> None:
        async with Children(str(tmp_path)) as children:
            forked = await start_backend(
                children, certdir, "forked", "--fork", "2", processes=2
            )
            assert len({b.pid for b in forked}) == 2
            assert len({b.tls_port for b in forked}) == 1
            await both_processes_serve(forked[0].tls_port, {b.pid for b in forked})

    run(scenario())


def test_reuse_port_processes_share_a_port(certdir: str, tmp_path: Any) -> None:
    """Two processes started independently, each with
    ``SPDYServer.listen(port, reuse_port=True)``: both answer on the port, and
    ``python -m tornado_spdy fetch --protocol spdy/3.1`` gets SPDY from it."""
    require_peer("curl")

    async def scenario() -> None:
        async with Children(str(tmp_path)) as children:
            (first,) = await start_backend(children, certdir, "r1", "--reuse-port")
            port = str(first.tls_port)
            (second,) = await start_backend(
                children, certdir, "r2", "--reuse-port", "--tls-port", port
            )
            assert second.tls_port == first.tls_port
            await both_processes_serve(first.tls_port, {first.pid, second.pid})

            url = f"https://127.0.0.1:{port}/"
            argv = [sys.executable, "-m", "tornado_spdy", "fetch", "-k"]
            body = await run_client([*argv, "--protocol", "spdy/3.1", url])
            served = json.loads(body)
            assert served["framing"] == "spdy/3.1"
            assert served["pid"] in {first.pid, second.pid}

    run(scenario())


# --------------------------------------------------------------------- HAProxy


@contextlib.asynccontextmanager
async def haproxy(
    children: Children, config: str, env: dict[str, str]
) -> AsyncIterator[tuple[Child, str]]:
    """HAProxy running ``config`` in the foreground (``-db``), listening on a
    socket opened here; yields it and its ``https://`` URL."""
    binary = require_peer("haproxy")
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        port = listener.getsockname()[1]
        env = {**env, "BIND": f"fd@{listener.fileno()}"}
        child = await children.start(
            [binary, "-db", "-f", config],
            read="stderr",  # where `log stderr` sends health-check events
            pass_fds=[listener.fileno()],
            env=env,
        )
    # Our copy of the socket is closed: HAProxy's is the only one left.
    try:
        yield child, f"https://127.0.0.1:{port}/"
    except BaseException as exc:
        # HAProxy's log says what happened to the requests that failed.
        exc.add_note(f"HAProxy's log:\n{child.lines.text()}")
        raise


def http_mode(children: Children, backends: Sequence[Backend], pem: str) -> Any:
    addresses = {
        f"B{i + 1}_ADDR": f"127.0.0.1:{b.plain_port}" for i, b in enumerate(backends)
    }
    return haproxy(children, HAPROXY_HTTP_CFG, {"PEM": pem, **addresses})


def tcp_mode(children: Children, backends: Sequence[Backend]) -> Any:
    addresses = {
        f"B{i + 1}_ADDR": f"127.0.0.1:{b.tls_port}" for i, b in enumerate(backends)
    }
    return haproxy(children, HAPROXY_TCP_CFG, addresses)


def pem_of(certdir: str) -> str:
    return os.path.join(certdir, "haproxy.pem")


def test_haproxy_http_mode(certdir: str, tmp_path: Any) -> None:
    """TLS ends at HAProxy: h2 and HTTP/1.1 clients, h2 to both backends;
    a SPDY-only client gets HTTP/1.1; no push reaches the client."""
    require_peers("haproxy", "curl", "nghttp")

    async def scenario() -> None:
        async with Children(str(tmp_path)) as children:
            backends = await two_backends(children, certdir)
            async with http_mode(children, backends, pem_of(certdir)) as (_, url):
                # Several requests over one client connection: HTTP mode
                # balances requests, not connections.
                h2 = await curl(url, 6, "--http2")
                assert {(a.version, a.status, a.framing) for a in h2} == {
                    ("2", 200, "h2")
                }
                assert names(h2) == {"b1", "b2"}
                assert sum(a.connects for a in h2) == 1

                http1 = await curl(url, 6, "--http1.1")
                assert {(a.version, a.status, a.framing) for a in http1} == {
                    ("1.1", 200, "h2")
                }
                assert names(http1) == {"b1", "b2"}
                assert sum(a.connects for a in http1) == 1

                # HAProxy offers h2 and http/1.1 only: SPDY ends at the door.
                (spdy,) = await spdy_fetch(url, "spdy/3.1")
                assert (spdy.version, spdy.status, spdy.framing) == (
                    "http/1.1",
                    200,
                    "h2",
                )

                # HAProxy's h2 connections to backends forbid push
                # (SETTINGS_ENABLE_PUSH = 0): the backend cannot push, and
                # nghttp, which accepts pushes, receives none.
                frames, body, pushed = await nghttp_push(url)
                assert "PUSH_PROMISE" not in frames
                assert body["can_push"] is False
                assert body["framing"] == "h2"
                assert pushed == ""

    run(scenario())


def test_haproxy_tcp_mode(certdir: str, tmp_path: Any) -> None:
    """TLS passthrough: the client's ALPN reaches the backends, so h2, every
    SPDY version and server push work end to end, on both backends."""
    require_peers("haproxy", "curl", "nghttp")

    async def scenario() -> None:
        async with Children(str(tmp_path)) as children:
            backends = await two_backends(children, certdir)
            async with tcp_mode(children, backends) as (_, url):
                # TCP mode balances connections: one request per connection.
                h2 = await curl(url, 6, "--http2", connections=6)
                assert {(a.version, a.status, a.framing) for a in h2} == {
                    ("2", 200, "h2")
                }
                assert names(h2) == {"b1", "b2"}
                assert sum(a.connects for a in h2) == 6

                http1 = await curl(url, 2, "--http1.1", connections=2)
                assert {(a.version, a.status, a.framing) for a in http1} == {
                    ("1.1", 200, "http/1.1")
                }

                spdy = await spdy_fetch(url, "spdy/3.1", 4)
                assert {(a.version, a.status, a.framing) for a in spdy} == {
                    ("spdy/3.1", 200, "spdy/3.1")
                }
                assert names(spdy) == {"b1", "b2"}
                for protocol in ("spdy/3", "spdy/2"):
                    (answer,) = await spdy_fetch(url, protocol)
                    assert (answer.version, answer.framing) == (protocol, protocol)

                frames, body, pushed = await nghttp_push(url)
                assert re.search(r"recv PUSH_PROMISE frame", frames), frames
                assert re.search(r"recv \(stream_id=\d+\) :path: /style.css", frames)
                assert body["can_push"] is True
                assert pushed == "body { color: black }\n"

    run(scenario())


async def wait_down(haproxy_child: Child, backend: str, server: str) -> None:
    """Until HAProxy logs ``backend/server`` DOWN (its health check's verdict)."""
    needle = f"Server {backend}/{server} is DOWN"
    await haproxy_child.lines.wait_for(lambda line: needle in line, 1, DOWN_TIMEOUT)


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_haproxy_survives_the_loss_of_a_backend(
    mode: str, certdir: str, tmp_path: Any
) -> None:
    """b2 is killed; once HAProxy's check marks it DOWN, every request, over
    each protocol the mode carries, succeeds on b1. (In the moment between the
    kill and the check's verdict requests may fail; that is not asserted.)"""
    require_peers("haproxy", "curl")

    async def scenario() -> None:
        async with Children(str(tmp_path)) as children:
            b1, b2 = await two_backends(children, certdir)
            if mode == "http":
                proxy = http_mode(children, (b1, b2), pem_of(certdir))
                backend_section = "spdy_servers"
            else:
                proxy = tcp_mode(children, (b1, b2))
                backend_section = "spdy_servers_tls"
            async with proxy as (haproxy_child, url):
                before = await curl(url, 4, "--http2", connections=4)
                assert names(before) == {"b1", "b2"}

                await children.kill(b2.child)
                await wait_down(haproxy_child, backend_section, "b2")

                answers = await curl(url, 10, "--http2")
                if mode == "http":
                    answers += await curl(url, 10, "--http1.1")
                else:
                    answers += await curl(url, 10, "--http2", connections=10)
                    answers += await spdy_fetch(url, "spdy/3.1", 10)
                failed = [a for a in answers if a.status != 200 or a.name != "b1"]
                assert not failed, f"{len(failed)} of {len(answers)}: {failed}"

    run(scenario())
