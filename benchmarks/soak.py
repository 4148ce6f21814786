"""Soak test: many connections with streams in flight for a while; errors and memory.

A SPDYServer runs in a subprocess pinned to core 0 (``taskset -c 0``) with a
small Tornado app: ``/`` answers 300 bytes, ``/big`` 64 KiB; every tenth request
is for ``/big``. The load runs on core 1: h2load over TLS with ALPN by default
(``--protocol h2``), h2load by prior knowledge over cleartext (``--protocol
h2c``), or, for ``--protocol spdy/3.1`` (or spdy/3, spdy/2), a load client on
tornado_spdy's core (``spdy_load.LoadClient``; h2load speaks no SPDY) run by
this script in a subprocess of its own.

The script samples the server's RSS (``VmRSS``) and CPU time once a second,
then, after the load stops, waits for the server to close every connection
and for an idle period, and prints PASS or FAIL:

* errors: failed, errored and timed-out requests, non-2xx responses, refused
  or broken connections, and WARNING/ERROR lines in the server's log: all 0;
* memory flat: over the measured run (after the warm-up), the RSS at the end
  less the RSS at the start under 5 MiB, and the least-squares slope of the
  RSS under 2 MiB per minute;
* connections: the server's socket count back to what it was before the load
  within 60 s of the load's end.

The load runs 240 s (``--warm-up``) before the measured run: the RSS climbs
to a high-water mark under this load and then stays there, and over TLS it
reached it only after 3 to 4 minutes here (over h2c after about 1.5). A leak
would keep climbing; see benchmarks/README.rst for the long runs and the
traced Python heap. ``spdy_load.py``'s own ``main`` is not used for SPDY: it opens and
loads connections at once and, with a TLS context made per connection, did not
open 1,000 here within the server's 10 s ``handshake_timeout``.

    python benchmarks/soak.py                      # 1,000 x 10 for 60 s, h2 over TLS
    python benchmarks/soak.py --connections 100 --duration 10 --json
    python benchmarks/soak.py --protocol spdy/3.1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from server_bench import CLIENT_CORE, Server, free_port, table  # noqa: E402
from spdy_load import LoadClient, client_core  # noqa: E402

from tornado_spdy import tls  # noqa: E402
from tornado_spdy.spdy import events  # noqa: E402

SMALL = 300
BIG = 65536
BIG_EVERY = 10  # one request in ten is for /big
# "Memory flat": the criterion printed with the result.
MAX_GROWTH_MIB = 5.0
MAX_SLOPE_MIB_PER_MIN = 2.0
# The server first works through what it had read from a connection: 1,000
# connections x 10 streams took it 12 s to close on a busy machine.
CLOSE_TIMEOUT = 60.0
SPDY_PROTOCOLS = ("spdy/3.1", "spdy/3", "spdy/2")

SERVER_PROGRAM = r"""
import logging
import resource
import ssl
import sys

import tornado.ioloop
import tornado.web

from tornado_spdy import SPDYServer

protocol, certfile, keyfile = sys.argv[1], sys.argv[3], sys.argv[4]
port, small, big = int(sys.argv[2]), int(sys.argv[5]), int(sys.argv[6])
# Log lines at WARNING and above go to stderr (a file): the soak counts them.
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Small(tornado.web.RequestHandler):
    def get(self):
        self.write(b"s" * small)


class Big(tornado.web.RequestHandler):
    def get(self):
        self.write(b"b" * big)


app = tornado.web.Application([(r"/", Small), (r"/big", Big)])
if protocol == "h2c":
    server = SPDYServer(app, plain_protocol="h2")
else:
    server = SPDYServer(app, ssl_options={"certfile": certfile, "keyfile": keyfile})
# A backlog as large as the burst of connections the load opens at once.
server.listen(port, "127.0.0.1", backlog=4096)
print("ready", flush=True)
tornado.ioloop.IOLoop.current().start()
"""


class SoakServer(Server):
    """`server_bench.Server` (RSS, close) running `SERVER_PROGRAM`, with its
    log in a temporary file."""

    def __init__(self, protocol: str):  # noqa: D107 - a different program
        self.kind = protocol
        self.port = free_port()
        certfile, keyfile = tls.development_certificate()
        self.log = tempfile.TemporaryFile(mode="w+")
        args = [protocol, str(self.port), certfile, keyfile, str(SMALL), str(BIG)]
        line = self.launch(SERVER_PROGRAM, args, stderr=self.log)
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(
                f"soak server did not start: {line!r} {self.log_lines()}"
            )
        scheme = "http" if protocol == "h2c" else "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}/"

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            # Fields after the ")" closing the command name: utime, stime are
            # the 12th and 13th.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sockets(self) -> int:
        """Open sockets of the server process (its listener and event-loop
        wake-up pair included)."""
        fd_dir = f"/proc/{self.proc.pid}/fd"
        count = 0
        for name in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                    count += 1
            except FileNotFoundError:  # closed while we looked
                pass
        return count

    def log_lines(self) -> list[str]:
        self.log.seek(0)
        return [line.rstrip() for line in self.log if line.strip()]


# -- samples -------------------------------------------------------------------


class Sampler(threading.Thread):
    """Samples the server's RSS (MiB) and CPU seconds once a second."""

    def __init__(self, server: SoakServer):
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, float, float]] = []  # (time, MiB, CPU s)
        self.stopped = threading.Event()

    def sample(self) -> None:
        self.samples.append(
            (
                time.monotonic(),
                self.server.rss_kib() / 1024,
                self.server.cpu_seconds(),
            )
        )

    def run(self) -> None:
        while True:
            self.sample()
            if self.stopped.wait(1.0):
                return


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, MiB)`` points, in MiB per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return cov / var * 60 if var else 0.0


def memory_figures(
    samples: list[tuple[float, float, float]], start: float, end: float
) -> dict[str, float]:
    """RSS and CPU over the measured run, ``start`` to ``end`` (monotonic).

    No sample after ``end`` counts: h2load says its duration is over just
    before it stops its clients, and a sample taken after that sees the
    server tearing down the 10,000 streams in flight (8 MiB more in one
    second here), which is not growth under load; the RSS after the closing
    is reported on its own."""
    run = [s for s in samples if start <= s[0] <= end]
    if len(run) < 2:
        raise RuntimeError("too few samples in the measured run")
    mib = [m for _, m, _ in run]
    cpu = (run[-1][2] - run[0][2]) / (run[-1][0] - run[0][0])
    return {
        "rss_start_mib": mib[0],
        "rss_end_mib": mib[-1],
        "rss_max_mib": max(mib),
        "rss_slope_mib_per_min": slope_per_minute([(t, m) for t, m, _ in run]),
        # A leak keeps its slope; a high-water mark being reached loses it.
        "rss_slope_second_half_mib_per_min": slope_per_minute(
            [(t, m) for t, m, _ in run[len(run) // 2 :]]
        ),
        "rss_max_whole_test_mib": max(m for _, m, _ in samples),
        "cpu_percent": 100 * cpu,
        "samples": len(run),
        "measured_s": end - start,
        "rss_samples_mib": [round(m, 2) for m in mib],
    }


# -- h2load --------------------------------------------------------------------


def h2load_command(args: argparse.Namespace, url: str) -> list[str]:
    # h2load takes its URIs round robin: BIG_EVERY - 1 small ones, one big.
    urls = [url] * (BIG_EVERY - 1) + [url + "big"]
    return [
        "taskset",
        "-c",
        CLIENT_CORE,
        "h2load",
        "-c",
        str(args.connections),
        "-m",
        str(args.streams),
        "-D",
        str(args.duration),
        "--warm-up-time",
        str(args.warm_up),
        *urls,
    ]


def parse_h2load(out: str) -> dict[str, Any]:
    requests = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout",
        out,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    rate = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    if not (requests and codes and rate):
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    total, started, done, succeeded, failed, errored, timeout = map(
        int, requests.groups()
    )
    _, c3, c4, c5 = map(int, codes.groups())
    return {
        "requests_done": done,
        "requests_succeeded": succeeded,
        "req_per_s": float(rate.group(3)),
        "failed": failed,
        "errored": errored,
        "timeout": timeout,
        "non_2xx": c3 + c4 + c5,
        # h2load counts a connection it could not make as failed requests;
        # its "clients" line says how many it made.
        "protocol_line": next(
            (ln.strip() for ln in out.splitlines() if "Application protocol" in ln),
            "",
        ),
    }


def run_h2load(
    args: argparse.Namespace, url: str, on_main_phase: threading.Event
) -> tuple[str, float, float]:
    """Runs h2load; returns its output and the monotonic times its measured
    run started and ended (it says when its warm-up is over)."""
    proc = subprocess.Popen(
        h2load_command(args, url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    start = end = 0.0
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Main benchmark duration is started" in line and not start:
                start = time.monotonic()
                on_main_phase.set()
            elif "Main benchmark duration is over" in line and not end:
                end = time.monotonic()
        proc.wait(timeout=args.duration + args.warm_up + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines)
    if not start:
        raise RuntimeError(f"h2load never started its measured run:\n{out}")
    return out, start, end or time.monotonic()


# -- the SPDY load client (a subprocess of this script) ------------------------


async def spdy_connect(
    url: str, protocol: str, context: ssl.SSLContext
) -> tuple[Any, Any, Any, float]:
    """Opens a connection and sends the session's first frames; returns the
    reader, writer, client core and the seconds it took."""
    parts = urllib.parse.urlsplit(url)
    began = time.monotonic()
    reader, writer = await asyncio.open_connection(
        parts.hostname, parts.port, ssl=context
    )
    core = client_core(protocol)
    core.initiate_connection()
    # The server wants a first frame within its handshake_timeout.
    writer.write(core.data_to_send())
    return reader, writer, core, time.monotonic() - began


async def spdy_drive(
    reader: Any, writer: Any, core: Any, streams: int, clients: list[LoadClient]
) -> None:
    """Keeps ``streams`` requests in flight on one connection until cancelled."""
    try:
        authority = "{}:{}".format(*writer.get_extra_info("peername")[:2])
        base = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b"user-agent", b"tornado_spdy-soak/1"),
        ]
        client = StatusCountingClient(core, base, streams)
        clients.append(client)
        client.fill()
        writer.write(core.data_to_send())
        while True:
            data = await reader.read(262144)
            if not data:
                raise ConnectionError("server closed the connection")
            client.on_events(core.receive_data(data))
            out = core.data_to_send()
            if out:
                writer.write(out)
    finally:
        writer.close()


class StatusCountingClient(LoadClient):
    """`spdy_load.LoadClient` with no end, the /big mix, and a count of
    non-2xx responses."""

    def __init__(self, core: Any, base: list[tuple[bytes, bytes]], streams: int):
        super().__init__(core, base, 1 << 62, streams)
        self.base = base
        self.sent = 0
        self.non_2xx = 0

    def fill(self) -> None:
        # LoadClient.fill sends one header list; this one sends one request
        # in BIG_EVERY for /big, as h2load does with its URI list.
        core = self.core
        while self.in_flight < self.streams:
            self.sent += 1
            path = b"/big" if self.sent % BIG_EVERY == 0 else b"/"
            core.send_headers(
                core.get_next_available_stream_id(),
                [(b":path", path), *self.base],
                end_stream=True,
            )
            self.in_flight += 1

    def on_events(self, received: list[events.Event]) -> None:
        for event in received:
            if type(event) is events.ResponseReceived:
                status = dict(event.headers).get(b":status", b"")
                if not status.startswith(b"2"):
                    self.non_2xx += 1
        super().on_events(received)


async def spdy_load_main(args: argparse.Namespace) -> None:
    """The SPDY load client: opens every connection, then keeps the streams
    busy; warms up, measures for --duration, prints a JSON line of counts."""
    # Connect first, then load: a Python client that served its first
    # connections while opening the rest took over 10 s (the server's
    # handshake_timeout) to open 100 on this machine.
    # One context for all: each one loads certifi's bundle (tens of ms here).
    context = tls.client_context([args.protocol], validate_cert=False)
    opened = await asyncio.gather(
        *(
            spdy_connect(args.url, args.protocol, context)
            for _ in range(args.connections)
        ),
        return_exceptions=True,
    )
    connected = [o for o in opened if not isinstance(o, BaseException)]
    refused = [o for o in opened if isinstance(o, BaseException)]
    clients: list[LoadClient] = []
    tasks = [
        asyncio.ensure_future(spdy_drive(*o[:3], args.streams, clients))
        for o in connected
    ]
    await asyncio.sleep(args.warm_up)
    before = sum(c.done for c in clients), sum(c.failed for c in clients)
    print("Main benchmark duration is started", flush=True)
    started = time.monotonic()
    await asyncio.sleep(args.duration)
    elapsed = time.monotonic() - started
    done = sum(c.done for c in clients) - before[0]
    failed = sum(c.failed for c in clients) - before[1]
    print("Main benchmark duration is over", flush=True)
    broken = [t.exception() for t in tasks if t.done() and t.exception()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    errors = refused + broken
    result = {
        "requests_done": done,
        "req_per_s": done / elapsed,
        "failed": failed,
        # Connections that could not be made or broke during the run.
        "errored": len(errors),
        "timeout": 0,
        # Counted from the first request on, warm-up included.
        "non_2xx": sum(getattr(c, "non_2xx", 0) for c in clients),
        "connections_made": len(connected),
        "connect_seconds_max": max((o[3] for o in connected), default=0.0),
        "first_error": repr(errors[0]) if errors else "",
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_spdy_load(
    args: argparse.Namespace, url: str, on_main_phase: threading.Event
) -> tuple[dict[str, Any], float, float]:
    """Runs `spdy_load_main` in a subprocess on the client core."""
    cmd = [
        "taskset",
        "-c",
        CLIENT_CORE,
        sys.executable,
        os.path.abspath(__file__),
        "--spdy-client",
        url,
        "--protocol",
        args.protocol,
        "--connections",
        str(args.connections),
        "--streams",
        str(args.streams),
        "--duration",
        str(args.duration),
        "--warm-up",
        str(args.warm_up),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    start = end = 0.0
    result = None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Main benchmark duration is started"):
                start = time.monotonic()
                on_main_phase.set()
            elif line.startswith("Main benchmark duration is over"):
                end = time.monotonic()
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        proc.wait(timeout=args.duration + args.warm_up + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None or not start:
        raise RuntimeError("the SPDY load client failed:\n" + "".join(lines))
    return result, start, end or time.monotonic()


# -- the run -------------------------------------------------------------------


def wait_for_sockets(
    server: SoakServer, baseline: int, timeout: float
) -> tuple[int, float]:
    """Polls until the server is back to ``baseline`` sockets; returns the
    count and the seconds it took (or the timeout)."""
    start = time.monotonic()
    while True:
        count = server.sockets()
        waited = time.monotonic() - start
        if count <= baseline or waited >= timeout:
            return count, waited
        time.sleep(0.1)


def ensure_file_descriptors(connections: int) -> None:
    """Raises the soft limit to the hard one; both the server and the load
    inherit it and need a descriptor per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < connections + 100:
        sys.exit(
            f"ulimit -n is {soft}: too few descriptors for {connections} connections"
        )


def soak(args: argparse.Namespace) -> dict[str, Any]:
    server = SoakServer(args.protocol)
    try:
        sampler = Sampler(server)
        baseline_sockets = server.sockets()
        sampler.start()
        main_phase = threading.Event()
        if args.protocol in SPDY_PROTOCOLS:
            load, start, end = run_spdy_load(args, server.url, main_phase)
        else:
            out, start, end = run_h2load(args, server.url, main_phase)
            load = parse_h2load(out)
            if args.verbose:
                print(out, file=sys.stderr)
        sockets_after, close_seconds = wait_for_sockets(
            server, baseline_sockets, CLOSE_TIMEOUT
        )
        time.sleep(args.idle)  # the idle period, to see what memory is given back
        sampler.stopped.set()
        sampler.join()
        idle_rss = server.rss_kib() / 1024
        memory = memory_figures(sampler.samples, start, end)
        log = [
            ln
            for ln in server.log_lines()
            if ln.startswith(("WARNING", "ERROR", "CRITICAL"))
        ]
    finally:
        server.close()
    errors = load["failed"] + load["errored"] + load["timeout"] + load["non_2xx"]
    growth = memory["rss_end_mib"] - memory["rss_start_mib"]
    flat = (
        growth < MAX_GROWTH_MIB
        and memory["rss_slope_mib_per_min"] < MAX_SLOPE_MIB_PER_MIN
    )
    closed = sockets_after <= baseline_sockets
    return {
        "protocol": args.protocol,
        "connections": args.connections,
        "streams": args.streams,
        "duration_s": args.duration,
        "warm_up_s": args.warm_up,
        **load,
        "errors": errors,
        "server_log_warnings": len(log),
        "server_log_first": log[:5],
        **memory,
        "rss_growth_mib": growth,
        "memory_flat": flat,
        "sockets_before": baseline_sockets,
        "sockets_after": sockets_after,
        "close_seconds": close_seconds,
        "all_closed": closed,
        "idle_s": args.idle,
        "rss_after_idle_mib": idle_rss,
        "pass": errors == 0 and not log and flat and closed,
    }


def report(r: dict[str, Any]) -> str:
    rows = [
        (
            "load",
            f"{r['protocol']}, {r['connections']} connections x {r['streams']} streams",
        ),
        (
            "measured run (after warm-up), s",
            f"{r['duration_s']} (seen: {r['measured_s']:.1f}; warm-up {r['warm_up_s']})",
        ),
        ("requests done (measured run)", f"{r['requests_done']:,}"),
        ("requests per second", f"{r['req_per_s']:,.0f}"),
        (
            "failed / errored / timeout / non-2xx",
            f"{r['failed']} / {r['errored']} / {r['timeout']} / {r['non_2xx']}",
        ),
        ("errors", str(r["errors"])),
        ("server log lines at WARNING or above", str(r["server_log_warnings"])),
        ("server CPU, % of one core", f"{r['cpu_percent']:.0f}"),
        ("RSS at start (after warm-up), MiB", f"{r['rss_start_mib']:.1f}"),
        ("RSS at end, MiB", f"{r['rss_end_mib']:.1f}"),
        ("RSS max, MiB", f"{r['rss_max_mib']:.1f}"),
        ("RSS end - start, MiB", f"{r['rss_growth_mib']:+.1f}"),
        (
            "RSS slope, MiB per minute (least squares)",
            f"{r['rss_slope_mib_per_min']:+.2f}",
        ),
        (
            "RSS slope over the second half, MiB per minute",
            f"{r['rss_slope_second_half_mib_per_min']:+.2f}",
        ),
        (
            "RSS max, whole test (warm-up and closing included), MiB",
            f"{r['rss_max_whole_test_mib']:.1f}",
        ),
        (
            f"RSS after closing + {r['idle_s']:g} s idle, MiB",
            f"{r['rss_after_idle_mib']:.1f}",
        ),
        (
            "server sockets before / after the load",
            f"{r['sockets_before']} / {r['sockets_after']}",
        ),
        ("seconds to close every connection", f"{r['close_seconds']:.1f}"),
    ]
    lines = [table(rows, ("soak", "value"))]
    lines += [f"  server log: {ln}" for ln in r["server_log_first"]]
    lines.append(
        f"errors 0: {'yes' if r['errors'] == 0 and not r['server_log_warnings'] else 'NO'}; "
        f"memory flat (end - start < {MAX_GROWTH_MIB:g} MiB and slope < "
        f"{MAX_SLOPE_MIB_PER_MIN:g} MiB/min): {'yes' if r['memory_flat'] else 'NO'}; "
        f"all connections closed within {CLOSE_TIMEOUT:g} s: "
        f"{'yes' if r['all_closed'] else 'NO'}"
    )
    lines.append("PASS" if r["pass"] else "FAIL")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument(
        "--streams", type=int, default=10, help="in flight per connection"
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds measured")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=240,
        # Until the RSS has reached its high-water mark under the load (over
        # TLS 3 to 4 minutes here), its slope says nothing about a leak.
        help="seconds of load before measuring",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=10.0,
        help="seconds idle after the load before the last RSS sample",
    )
    parser.add_argument(
        "--protocol", default="h2", choices=("h2", "h2c", *SPDY_PROTOCOLS)
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show h2load's output"
    )
    parser.add_argument("--spdy-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_file_descriptors(args.connections)
    if args.spdy_client:  # the load-client subprocess of a SPDY soak
        args.url = args.spdy_client
        asyncio.run(spdy_load_main(args))
        return
    result = soak(args)
    print(json.dumps(result, indent=2) if args.json else report(result))
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
