"""The harness of ``tests/test_attacks.py``: a server in a subprocess, raw
attacking clients, and an honest client whose latency is measured before and
during an attack.

- `ServerProcess` runs ``tests/attack_server.py`` with the `SessionParameters`
  a test needs, reads its ``VmRSS`` from ``/proc`` and collects its log.
- `connect` opens a raw client of ``tests/test_server_bad_input.py``
  (`H2RawClient`, `SPDYRawClient`: frames written as given, every frame
  received recorded) to one of its ports.
- `measure` runs the honest client (``h2load``, one connection, one request at
  a time, per-request latency from its ``--log-file``) in rounds, alternately
  alone and while attack loops run against the same server, and reports the
  median over rounds of each phase's p99, the server's peak memory growth and
  the attacks' outcomes, on a line starting with ``ATTACK-P99``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import queue
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from tests.peers_util import require_peer
from tests.test_server_bad_input import H2RawClient, RawClient, SPDYRawClient

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

START_TIMEOUT = 20.0  # the server subprocess is up (imports take a second)
STOP_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
HONEST_TIMEOUT = 30.0  # one h2load run
ATTACK_TIMEOUT = 15.0  # one attack, from connect to its answer
RSS_INTERVAL = 0.02  # seconds between two samples of the server's memory

#: The honest client's workload: ``ROUNDS`` rounds of ``REQUESTS`` sequential
#: GETs per phase (alone, then under attack, alternately). A round's p99 is
#: its 4th-slowest request, and with five rounds the median of a phase moved
#: between runs of the same code by more than most attacks move it (baseline
#: 0.42-0.77 ms for one case); nine make the ratio steadier (the module takes
#: about 7.5 minutes instead of 4 on the 2-CPU machine).
ROUNDS = 9
REQUESTS = 400
WARM_UP = 50

T = TypeVar("T")

#: Scheduling priority (nice) of the server: above the attacking client, which
#: runs in this process on the other CPUs.
FAVOURED_NICE = -10
#: Real-time priority (SCHED_FIFO) of the honest client. It shares its CPU
#: with the attacker, yet stands for a machine of its own: with a nice value
#: alone, the attacker's CPU time still delayed its wake-ups by milliseconds
#: (an attacker that only burns CPU and never touches the server raised its
#: p99 2.5-3.4 times), which would be counted against the server. The honest
#: client mostly waits for replies, so it takes little of that CPU.
HONEST_RT_PRIORITY = 10


def _split_cpus() -> tuple[set[int], set[int]]:
    """The CPUs of the server, and those of the clients (honest and
    attacking), when there are at least two: the server's own CPU stands for
    a machine of its own, so that the honest client's latency measures the
    server's fairness rather than the attacker's share of one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[0]}, set(cpus[1:])


SERVER_CPUS, CLIENT_CPUS = _split_cpus()


def _favoured(cpus: set[int], realtime: bool = False) -> Callable[[], None]:
    """For a child process before exec: pin it to ``cpus`` and raise its
    priority if allowed (root): real-time if ``realtime``, else a lower nice
    value; otherwise the figures include the machine's contention."""

    def setup() -> None:
        os.sched_setaffinity(0, cpus)
        with contextlib.suppress(PermissionError):
            os.nice(FAVOURED_NICE)
        if realtime:
            with contextlib.suppress(PermissionError):
                param = os.sched_param(HONEST_RT_PRIORITY)
                os.sched_setscheduler(0, os.SCHED_FIFO, param)

    return setup


@contextlib.contextmanager
def _on_client_cpus() -> Any:
    """Run this process (the attacker) on the clients' CPUs meanwhile."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, CLIENT_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ----------------------------------------------------------------- the server


class ServerProcess:
    """``tests/attack_server.py`` in a subprocess.

    :arg params: `SessionParameters` fields.
    :arg optional: fields of ``params`` dropped if `SessionParameters` lacks
        them (a limit that does not exist yet is no limit).
    :arg buffers: ``{"sndbuf": bytes, "rcvbuf": bytes}`` for the server's
        sockets (small ones make a stalled peer show sooner).
    """

    def __init__(
        self,
        params: dict[str, Any],
        optional: Iterable[str] = (),
        buffers: dict[str, int] | None = None,
    ):
        self.params = params
        self.buffers = buffers or {}
        self.optional = list(optional)
        self.ports: dict[str, int] = {}
        self.pid = 0
        self.log: list[str] = []
        self._stdout: queue.Queue[str] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the server; raise `RuntimeError` if it does not come up."""
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.attack_server",
                json.dumps(self.params),
                json.dumps(self.optional),
                json.dumps(self.buffers),
            ],
            cwd=REPO_ROOT,
            preexec_fn=_favoured(SERVER_CPUS),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        try:
            line = self._stdout.get(timeout=START_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"attack server silent; log: {self.log[-10:]}") from None
        ready = json.loads(line) if line.startswith("{") else {"error": line}
        if "error" in ready:
            self.stop()
            raise RuntimeError(f"attack server failed: {ready['error']}; {self.log}")
        self.pid = ready["pid"]
        self.ports = ready["ports"]

    def _pump_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._stdout.put(line.strip())
        self._stdout.put("")  # EOF: start() fails at once

    def _pump_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self.log.append(line.rstrip("\n"))

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def rss(self) -> int:
        """The server's resident memory in bytes (``VmRSS``)."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log_mark(self) -> int:
        """A position in the log; see `lines_above_info`."""
        return len(self.log)

    def lines_above_info(self, since: int = 0) -> list[str]:
        """Log lines (after ``since``) at WARNING level or above, with any
        traceback lines that follow them."""
        return [
            line
            for line in self.log[since:]
            if not line.startswith(("INFO ", "DEBUG "))
        ]

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()  # the server exits on EOF
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


# ----------------------------------------------------------------- raw clients


async def connect(
    port: int,
    protocol: str,
    tls: bool = False,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
) -> RawClient:
    """A raw client of ``protocol`` connected to ``port`` (TLS with ALPN if
    ``tls``); small socket buffers make a stalled peer show sooner."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)),
            CONNECT_TIMEOUT,
        )
        context = None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols([protocol])
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                sock=sock, ssl=context, server_hostname="localhost" if tls else None
            ),
            CONNECT_TIMEOUT,
        )
    except BaseException:
        sock.close()
        raise
    cls = H2RawClient if protocol == "h2" else SPDYRawClient
    return cls(protocol, reader, writer, "https" if tls else "http")


async def flood(
    client: RawClient,
    blobs: Iterable[bytes],
    done: Callable[[], bool] = lambda: False,
    timeout: float = ATTACK_TIMEOUT,
) -> None:
    """Write ``blobs`` as fast as the server reads them while reading its
    answers; stop writing when ``done()`` holds or the connection ends, and
    return once ``done()`` holds or the server has closed the connection.

    :raises AssertionError: neither happened within ``timeout``.
    """
    reading = asyncio.ensure_future(
        client.read_until(lambda: client.eof or done(), timeout)
    )
    try:
        for blob in blobs:
            if reading.done():
                break
            client.send(blob)
            await client.writer.drain()
    except (ConnectionError, OSError):
        pass  # closed by the server: its answer is in what was read
    await reading


async def close(client: RawClient) -> None:
    """Drop the connection (the server sees it go at once)."""
    client.abort()
    await asyncio.sleep(0)  # let the transport release its socket


async def closed_within(client: RawClient, timeout: float) -> float:
    """Seconds until the server closes ``client``'s connection, reading (and
    recording) whatever it sends meanwhile.

    :raises AssertionError: still open after ``timeout``.
    """
    start = time.monotonic()
    await client.read_until(lambda: client.eof, timeout)
    return time.monotonic() - start


# ----------------------------------------------------------------- the honest client


async def honest_round(port: int, requests: int, per_connection: int) -> list[float]:
    """Latencies (ms) of ``requests`` sequential GETs of ``/hello`` by
    ``h2load`` over h2 (prior knowledge), ``per_connection`` on each of its
    connections, one after another.

    :raises AssertionError: a request failed or was not answered 200.
    """
    latencies: list[float] = []
    left = requests
    while left > 0:
        count = min(left, per_connection)
        latencies += await _h2load(port, count)
        left -= count
    return latencies


async def _h2load(port: int, count: int) -> list[float]:
    h2load = require_peer("h2load")
    with tempfile.TemporaryDirectory() as tmp:
        log_file = os.path.join(tmp, "h2load.log")
        proc = await asyncio.create_subprocess_exec(
            h2load,
            "-n",
            str(count),
            "-c",
            "1",
            "-m",
            "1",
            f"--log-file={log_file}",
            f"http://127.0.0.1:{port}/hello",
            preexec_fn=_favoured(CLIENT_CPUS, realtime=True),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), HONEST_TIMEOUT)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        with open(log_file) as f:
            rows = [line.split("\t") for line in f if line.strip()]
    statuses = [int(row[1]) for row in rows]
    if len(rows) != count or set(statuses) != {200}:
        raise AssertionError(
            f"honest client not served: {len(rows)} of {count} answered, "
            f"statuses {sorted(set(statuses))}; h2load said:\n"
            + output.decode(errors="replace")
        )
    return [int(row[2]) / 1000.0 for row in rows]


def p99(latencies: list[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(latencies)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


# ----------------------------------------------------------------- measuring


@dataclasses.dataclass
class Figures:
    """What `measure` found; ``report`` is the ``ATTACK-P99`` line."""

    name: str
    baseline_p99: list[float]  # ms, one per round
    attack_p99: list[float]
    rss_before: int
    rss_peak: int
    attacks: int

    @property
    def baseline(self) -> float:
        return statistics.median(self.baseline_p99)

    @property
    def during(self) -> float:
        return statistics.median(self.attack_p99)

    @property
    def ratio(self) -> float:
        return self.during / self.baseline

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss_before

    def report(self) -> str:
        rounds = lambda values: "/".join(f"{v:.2f}" for v in values)  # noqa: E731
        return (
            f"ATTACK-P99 {self.name}: baseline_p99_ms={self.baseline:.2f} "
            f"attack_p99_ms={self.during:.2f} ratio={self.ratio:.2f} "
            f"within_2x={'yes' if self.ratio <= 2.0 else 'no'} "
            f"rss_growth_mb={self.rss_growth / 2**20:.1f} attacks={self.attacks} "
            f"(rounds: baseline {rounds(self.baseline_p99)}, "
            f"attack {rounds(self.attack_p99)})"
        )


class _AttackLoops:
    """``parallel`` loops each repeating ``attack()`` until stopped; the
    outcomes are collected, the first exception kept."""

    def __init__(self, attack: Callable[[], Awaitable[T]], parallel: int, repeat: bool):
        self.repeat = repeat
        self.outcomes: list[T] = []
        self.error: BaseException | None = None
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.ensure_future(self._loop(attack)) for _ in range(parallel)
        ]

    async def _loop(self, attack: Callable[[], Awaitable[T]]) -> None:
        while not self._stop.is_set():
            try:
                outcome = await asyncio.wait_for(attack(), ATTACK_TIMEOUT)
            except BaseException as exc:  # reported by stop()
                if self.error is None:
                    self.error = exc
                return
            self.outcomes.append(outcome)
            if not self.repeat:
                return

    async def stop(self) -> None:
        """Let the attacks in flight end (at least one attack ends); re-raise
        the first error."""
        self._stop.set()
        done, pending = await asyncio.wait(self._tasks, timeout=ATTACK_TIMEOUT)
        for task in pending:
            task.cancel()
        if self.error is not None:
            raise self.error
        assert not pending, "an attack loop did not stop"
        assert self.outcomes, "no attack ended"


class _RssSampler:
    def __init__(self, server: ServerProcess):
        self.peak = server.rss()
        self._task = asyncio.ensure_future(self._sample(server))

    async def _sample(self, server: ServerProcess) -> None:
        while True:
            self.peak = max(self.peak, server.rss())
            await asyncio.sleep(RSS_INTERVAL)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def measure(
    name: str,
    server: ServerProcess,
    attack: Callable[[], Awaitable[T]],
    parallel: int = 1,
    per_connection: int = REQUESTS,
    honest_port: str = "h2",
    repeat: bool = True,
) -> tuple[Figures, list[T]]:
    """The honest client's p99 alone and while ``attack`` runs in ``parallel``
    loops against ``server``, its peak memory growth meanwhile, and the
    outcomes of every attack; prints the ``ATTACK-P99`` line.

    Rounds alternate (alone, attacked, alone, ...) so that the machine's own
    noise falls on both phases alike; each phase's figure is the median over
    its rounds.
    """
    with _on_client_cpus():
        port = server.ports[honest_port]
        await honest_round(port, WARM_UP, per_connection)
        rss_before = server.rss()
        sampler = _RssSampler(server)
        baseline, during = [], []
        outcomes: list[T] = []
        try:
            for _ in range(ROUNDS):
                baseline.append(p99(await honest_round(port, REQUESTS, per_connection)))
                loops = _AttackLoops(attack, parallel, repeat)
                try:
                    latencies = await honest_round(port, REQUESTS, per_connection)
                finally:
                    await loops.stop()
                during.append(p99(latencies))
                outcomes += loops.outcomes
        finally:
            await sampler.stop()
        figures = Figures(
            name, baseline, during, rss_before, sampler.peak, len(outcomes)
        )
        print(figures.report())
        return figures, outcomes
