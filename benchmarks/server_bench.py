"""SPDYServer against Tornado's own HTTPServer, over the loopback.

Each server runs in a subprocess pinned to core 0 (``taskset -c 0``); the load
generators (h2load, wrk, ``spdy_load.py``, curl) and this script's own clients
run on core 1. All figures come from one run, so compare the ratios.

1. hello-world requests per second: Tornado HTTP/1.1 (``h2load --h1 -c 50``,
   ``wrk -t1 -c50``), SPDYServer over HTTP/1.1 (the same), over spdy/3.1
   (``spdy_load.py -c 1 -m 100``) and over h2c (``h2load -c 1 -m 100``).
2. 100 MB download throughput from ``/bytes/104857600`` (64 KiB writes with a
   flush between): curl over HTTP/1.1, a small downloader on our core with
   16 MiB windows over spdy/3.1, curl (the HTTP/1.1 baseline's own client) and
   h2load with 16 MiB / 1 GiB windows over h2c.
3. idle session memory: the server's RSS growth per connection after 200
   connections have each made one request and stay open.

    python benchmarks/server_bench.py            # about three minutes
    python benchmarks/server_bench.py -n 20000   # more requests per run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from spdy_load import client_core  # noqa: E402

from tornado_spdy.spdy import events  # noqa: E402

SERVER_CORE = "0"
CLIENT_CORE = "1"
BIG = 104857600  # 100 MiB, reported in 10**6-byte MB
DOWNLOAD_RUNS = 7  # a download takes a tenth of a second: noisy, so more runs

SERVER_PROGRAM = r"""
import sys
import tornado.ioloop
import tornado.web

kind, port = sys.argv[1], int(sys.argv[2])


class Hello(tornado.web.RequestHandler):
    def get(self):
        self.write("Hello, world!")


class Bytes(tornado.web.RequestHandler):
    async def get(self, n):
        n = int(n)
        chunk = b"x" * 65536
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(n))
        while n > 0:
            piece = chunk if n >= 65536 else chunk[:n]
            self.write(piece)
            n -= len(piece)
            await self.flush()


app = tornado.web.Application([(r"/", Hello), (r"/bytes/(\d+)", Bytes)])
if kind == "tornado":
    from tornado.httpserver import HTTPServer

    server = HTTPServer(app)
else:
    from tornado_spdy import SPDYServer

    server = SPDYServer(app, plain_protocol=kind)
server.listen(port, "127.0.0.1")
print("ready", flush=True)
tornado.ioloop.IOLoop.current().start()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server subprocess pinned to the server core. ``kind`` is
    "tornado" or a SPDYServer ``plain_protocol``."""

    def __init__(self, kind: str):
        self.kind = kind
        self.port = free_port()
        line = self.launch(SERVER_PROGRAM, [kind, str(self.port)])
        if line.strip() != "ready":
            raise RuntimeError(f"server {kind} did not start: {line!r}")
        self.url = f"http://127.0.0.1:{self.port}/"

    def launch(self, program: str, args: list[str], stderr: Any = None) -> str:
        """Run ``program`` with ``args`` on the server core; its first line."""
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, sys.executable, "-c", program, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONPATH": os.path.dirname(HERE)},
            text=True,
        )
        return self.proc.stdout.readline()

    def rss_kib(self) -> int:
        # The python process is the child of taskset after exec: same pid.
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def run(cmd: list[str]) -> str:
    out = subprocess.run(
        ["taskset", "-c", CLIENT_CORE, *cmd],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.stdout + out.stderr


def h2load(
    url: str, n: int, c: int, m: int, h1: bool, extra: tuple[str, ...] = ()
) -> float:
    out = run(
        [
            "h2load",
            *(["--h1"] if h1 else []),
            "-n",
            str(n),
            "-c",
            str(c),
            "-m",
            str(m),
            *extra,
            url,
        ]
    )
    done = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out
    )
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    if not done or not rate or int(done.group(2)) != n:
        raise RuntimeError(f"h2load failed: {out}")
    return float(rate.group(1))


def wrk(url: str, seconds: int) -> float:
    out = run(["wrk", "-t1", "-c50", f"-d{seconds}s", url])
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk failed: {out}")
    return float(match.group(1))


def spdy_load(url: str, n: int, protocol: str) -> float:
    out = run(
        [
            sys.executable,
            os.path.join(HERE, "spdy_load.py"),
            "-n",
            str(n),
            "-c",
            "1",
            "-m",
            "100",
            "--protocol",
            protocol,
            url,
        ]
    )
    match = re.search(r"(\d+) done, 0 failed in [\d.]+s: (\d+) req/s", out)
    if not match or int(match.group(1)) != n:
        raise RuntimeError(f"spdy_load failed: {out}")
    return float(match.group(2))


def spdy_ceiling(n: int) -> float:
    out = run(
        [
            sys.executable,
            os.path.join(HERE, "spdy_load.py"),
            "--ceiling",
            "-n",
            str(n),
            "-m",
            "100",
        ]
    )
    return float(re.search(r"([\d.]+) req/s", out).group(1))


# -- downloads ---------------------------------------------------------------


def curl_download(url: str, protocol: str = "--http1.1") -> float:
    """Downloads ``url`` with curl (``protocol``: ``--http1.1``, or
    ``--http2-prior-knowledge`` for h2c); MB/s of its ``time_total``."""
    out = run(
        [
            "curl",
            protocol,
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
            url,
        ]
    )
    size, seconds = out.split()
    if int(size) != BIG:
        raise RuntimeError(f"curl got {size} bytes")
    return BIG / float(seconds) / 1e6


def h2load_download(url: str, *extra: str) -> float:
    out = run(
        ["h2load", "-n", "1", "-c", "1", "-m", "1", "-w", "24", "-W", "30", *extra, url]
    )
    match = re.search(r"finished in ([\d.]+)(m?s),", out)
    if not match or "1 succeeded" not in out:
        raise RuntimeError(f"h2load download failed: {out}")
    seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    return BIG / seconds / 1e6


def spdy_download(port: int, path: str, protocol: str = "spdy/3.1") -> float:
    """Downloads ``path`` on our client core with 16 MiB windows; MB/s.

    A blocking socket read 4 MiB at a time, and one WINDOW_UPDATE per read
    rather than per frame: the client must not be what limits the figure
    (curl is C).
    """
    start = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    core = client_core(protocol)
    core.initiate_connection()
    stream_id = core.get_next_available_stream_id()
    core.send_headers(
        stream_id,
        [
            (b":method", b"GET"),
            (b":path", path.encode()),
            (b":scheme", b"http"),
            (b":authority", f"127.0.0.1:{port}".encode()),
        ],
        end_stream=True,
    )
    sock.sendall(core.data_to_send())
    received = 0
    ended = False
    while not ended:
        data = sock.recv(4 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        consumed = 0
        for event in core.receive_data(data):
            kind = type(event)
            if kind is events.DataReceived:
                received += len(event.data)
                consumed += event.flow_controlled_length
            elif kind is events.StreamEnded:
                ended = True
            elif kind is events.StreamReset:
                raise RuntimeError("stream reset")
        if consumed and not ended:
            core.acknowledge_received_data(consumed, stream_id)
        out = core.data_to_send()
        if out:
            sock.sendall(out)
    elapsed = time.perf_counter() - start
    sock.close()
    if received != BIG:
        raise RuntimeError(f"got {received} bytes")
    return BIG / elapsed / 1e6


# -- idle memory ---------------------------------------------------------------


async def idle_http11(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while not data.endswith(b"Hello, world!"):
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return writer


async def idle_spdy(port: int, protocol: str = "spdy/3.1"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    core = client_core(protocol)
    core.initiate_connection()
    core.send_headers(
        core.get_next_available_stream_id(),
        [
            (b":method", b"GET"),
            (b":path", b"/"),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1"),
        ],
        end_stream=True,
    )
    writer.write(core.data_to_send())
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("closed")
        received = core.receive_data(chunk)
        out = core.data_to_send()
        if out:
            writer.write(out)
        if any(type(e) is events.StreamEnded for e in received):
            return writer


async def idle_h2(port: int):
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(
        1,
        [
            (":method", "GET"),
            (":path", "/"),
            (":scheme", "http"),
            (":authority", "127.0.0.1"),
        ],
        end_stream=True,
    )
    writer.write(conn.data_to_send())
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("closed")
        received = conn.receive_data(chunk)
        out = conn.data_to_send()
        if out:
            writer.write(out)
        if any(isinstance(e, h2.events.StreamEnded) for e in received):
            return writer


async def idle_memory(kind: str, opener, connections: int) -> float:
    """KiB of server RSS per idle connection, on a fresh server."""
    server = Server(kind)
    try:
        for _ in range(3):  # warm up first-use caches, then let them go
            writer = await opener(server.port)
            writer.close()
        await asyncio.sleep(0.3)
        before = server.rss_kib()
        writers = []
        for i in range(0, connections, 20):
            writers += await asyncio.gather(
                *(opener(server.port) for _ in range(min(20, connections - i)))
            )
        await asyncio.sleep(0.5)
        after = server.rss_kib()
        for writer in writers:
            writer.close()
        return (after - before) / connections
    finally:
        server.close()


# -- the run -------------------------------------------------------------------


def median3(fn, *args, repeats: int = 3) -> float:
    return statistics.median(fn(*args) for _ in range(repeats))


def run_ratio(results: dict[str, list[float]], name: str, base: str) -> float:
    """The median of ``name`` / ``base`` taken run by run (the runs are
    interleaved): a machine that changes speed during the benchmark moves
    both figures of a run, but not always the medians of the two columns."""
    return statistics.median(
        value / reference
        for value, reference in zip(results[name], results[base], strict=True)
    )


def table(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    width = max(len(r[0]) for r in rows + [head])
    vwidth = max(len(r[1]) for r in rows + [head])
    rule = "=" * width + "  " + "=" * vwidth
    lines = [rule, f"{head[0]:<{width}}  {head[1]:>{vwidth}}", rule]
    lines += [f"{a:<{width}}  {b:>{vwidth}}" for a, b in rows]
    lines.append(rule)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-n", type=int, default=10000, help="requests per hello-world run"
    )
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument(
        "--connections",
        type=int,
        default=200,
        help="idle connections for the memory test",
    )
    parser.add_argument(
        "--skip", default="", help="comma list of: hello, download, memory"
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    skip = set(filter(None, args.skip.split(",")))
    have_wrk = shutil.which("wrk") is not None
    rows: list[tuple[str, str]] = []
    n = args.n

    if "hello" not in skip:
        tornado, spdy_h1, spdy31, spdy_h2 = (
            Server(k) for k in ("tornado", "http/1.1", "spdy/3.1", "h2")
        )
        try:
            # warm-up runs, not counted
            h2load(tornado.url, 1000, 50, 1, True)
            h2load(spdy_h1.url, 1000, 50, 1, True)
            spdy_load(spdy31.url, 1000, "spdy/3.1")
            h2load(spdy_h2.url, 1000, 1, 100, False)
            results: dict[str, list[float]] = {}
            for _ in range(3):  # interleaved, so drift hits every server alike
                runs = {
                    "tornado h1 h2load": lambda: h2load(tornado.url, n, 50, 1, True),
                    "spdy h1 h2load": lambda: h2load(spdy_h1.url, n, 50, 1, True),
                    "spdy/3.1": lambda: spdy_load(spdy31.url, n, "spdy/3.1"),
                    "h2": lambda: h2load(spdy_h2.url, n, 1, 100, False),
                }
                if have_wrk:
                    runs["tornado h1 wrk"] = lambda: wrk(tornado.url, args.wrk_seconds)
                    runs["spdy h1 wrk"] = lambda: wrk(spdy_h1.url, args.wrk_seconds)
                for name, fn in runs.items():
                    results.setdefault(name, []).append(fn())
                    print(f"  {name}: {results[name][-1]:.0f} req/s", file=sys.stderr)
            ceiling = median3(spdy_ceiling, n)
        finally:
            for s in (tornado, spdy_h1, spdy31, spdy_h2):
                s.close()
        med = {k: statistics.median(v) for k, v in results.items()}
        base = "tornado h1 h2load"
        rows += [
            (
                f"Tornado HTTPServer, HTTP/1.1, h2load --h1 -n {n} -c 50, req/s",
                f"{med[base]:,.0f}",
            ),
        ]
        if have_wrk:
            rows.append(
                (
                    f"Tornado HTTPServer, HTTP/1.1, wrk -t1 -c50 -d{args.wrk_seconds}s, req/s",
                    f"{med['tornado h1 wrk']:,.0f}",
                )
            )
        rows.append(
            (
                f"SPDYServer, HTTP/1.1, h2load --h1 -n {n} -c 50, req/s",
                f"{med['spdy h1 h2load']:,.0f}",
            )
        )
        if have_wrk:
            rows.append(
                (
                    f"SPDYServer, HTTP/1.1, wrk -t1 -c50 -d{args.wrk_seconds}s, req/s",
                    f"{med['spdy h1 wrk']:,.0f}",
                )
            )
        rows += [
            (
                f"SPDYServer, spdy/3.1, spdy_load.py -n {n} -c 1 -m 100, req/s",
                f"{med['spdy/3.1']:,.0f}",
            ),
            (f"SPDYServer, h2c, h2load -n {n} -c 1 -m 100, req/s", f"{med['h2']:,.0f}"),
            (
                "spdy_load.py --ceiling -m 100 (generator alone), req/s",
                f"{ceiling:,.0f}",
            ),
            (
                "ratio SPDYServer HTTP/1.1 / Tornado HTTP/1.1 (h2load)",
                f"{run_ratio(results, 'spdy h1 h2load', base):.2f}",
            ),
            (
                "ratio spdy/3.1 / Tornado HTTP/1.1 (target >= 1.4)",
                f"{run_ratio(results, 'spdy/3.1', base):.2f}",
            ),
            (
                "ratio h2 / Tornado HTTP/1.1 (target >= 1.0)",
                f"{run_ratio(results, 'h2', base):.2f}",
            ),
        ]
        if have_wrk:
            rows.append(
                (
                    "ratio SPDYServer HTTP/1.1 / Tornado HTTP/1.1 (wrk)",
                    f"{run_ratio(results, 'spdy h1 wrk', 'tornado h1 wrk'):.2f}",
                )
            )

    if "download" not in skip:
        tornado, spdy31, spdy_h2 = (Server(k) for k in ("tornado", "spdy/3.1", "h2"))
        try:
            path = f"bytes/{BIG}"
            dl: dict[str, list[float]] = {}
            for _ in range(DOWNLOAD_RUNS):
                dl.setdefault("h1", []).append(curl_download(tornado.url + path))
                dl.setdefault("spdy/3.1", []).append(
                    spdy_download(spdy31.port, "/" + path)
                )
                dl.setdefault("h2 curl", []).append(
                    curl_download(spdy_h2.url + path, "--http2-prior-knowledge")
                )
                dl.setdefault("h2", []).append(h2load_download(spdy_h2.url + path))
                dl.setdefault("h2 64K", []).append(
                    h2load_download(spdy_h2.url + path, "-f", "64K")
                )
                print(
                    f"  download: {[round(v[-1]) for v in dl.values()]} MB/s",
                    file=sys.stderr,
                )
        finally:
            for s in (tornado, spdy31, spdy_h2):
                s.close()
        med = {k: statistics.median(v) for k, v in dl.items()}
        rows += [
            ("100 MiB download, Tornado HTTP/1.1 (curl), MB/s", f"{med['h1']:,.0f}"),
            (
                "100 MiB download, SPDYServer spdy/3.1 (our core, 16 MiB windows), MB/s",
                f"{med['spdy/3.1']:,.0f}",
            ),
            (
                "100 MiB download, SPDYServer h2c (curl --http2-prior-knowledge), MB/s",
                f"{med['h2 curl']:,.0f}",
            ),
            (
                "100 MiB download, SPDYServer h2c (h2load -w 24 -W 30), MB/s",
                f"{med['h2']:,.0f}",
            ),
            (
                "100 MiB download, SPDYServer h2c, 64 KiB frames (h2load -f 64K), MB/s",
                f"{med['h2 64K']:,.0f}",
            ),
            (
                "ratio spdy/3.1 / Tornado HTTP/1.1 (target >= 0.8)",
                f"{run_ratio(dl, 'spdy/3.1', 'h1'):.2f}",
            ),
            (
                "ratio h2 (curl) / Tornado HTTP/1.1 (curl) (target >= 0.8)",
                f"{run_ratio(dl, 'h2 curl', 'h1'):.2f}",
            ),
            (
                "ratio h2 (h2load) / Tornado HTTP/1.1 (curl)",
                f"{run_ratio(dl, 'h2', 'h1'):.2f}",
            ),
            (
                "ratio h2, 64 KiB frames / Tornado HTTP/1.1",
                f"{run_ratio(dl, 'h2 64K', 'h1'):.2f}",
            ),
        ]

    if "memory" not in skip:
        c = args.connections
        mem = {
            name: statistics.median(
                asyncio.run(idle_memory(kind, opener, c)) for _ in range(3)
            )
            for name, kind, opener in (
                ("Tornado HTTPServer, HTTP/1.1", "tornado", idle_http11),
                ("SPDYServer, spdy/3.1", "spdy/3.1", idle_spdy),
                ("SPDYServer, h2c", "h2", idle_h2),
            )
        }
        rows += [
            (f"idle memory, {name}, KiB per connection ({c} open)", f"{v:.1f}")
            for name, v in mem.items()
        ]

    print(
        table(
            rows,
            ("measurement (median of 3, downloads of 7; ratios run by run)", "value"),
        )
    )


if __name__ == "__main__":
    main()
