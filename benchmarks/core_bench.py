"""Benchmarks of the SPDY core (`tornado_spdy.spdy`), with ``h2`` as the reference.

Run from the repository root::

    python benchmarks/core_bench.py            # everything, about two minutes
    python benchmarks/core_bench.py --quick    # smaller counts, for a smoke run
    python benchmarks/core_bench.py --profile  # cProfile of the pair and DATA loops

What it measures, for SPDY/2, SPDY/3 and SPDY/3.1, and for ``h2.H2Connection``
doing the same work in the same run:

``pair``
    One request/response pair through a client and a server core, no I/O: the
    client sends browser-like request headers (8 fields, END_STREAM); the bytes
    go to the server's ``receive_data``; on ``RequestReceived`` the server sends
    ``:status``, ``content-type``, ``content-length`` and ``b"Hello, world!"``
    with END_STREAM; the bytes go to the client's ``receive_data``, which
    acknowledges the DATA (and any WINDOW_UPDATE goes back). Median of several
    runs of N pairs on fresh connections; microseconds of CPU time (process
    time: the machines are shared and noisy) per pair, and the server's share
    alone. Target: at most 40 us per pair.
``DATA``
    A 100 MB body from the server to the client on one stream, in memoryview
    slices: the server sends what the windows allow (up to 256 KiB per write),
    the client receives and acknowledges each DATA event, WINDOW_UPDATEs go
    back. Two settings: 16 KiB frames with the default 64 KiB windows, and
    64 KiB frames with 16 MiB stream and session windows. MB (10**6 bytes) per
    second of CPU time.
    Target: at least 500 MB/s.
``memory``
    tracemalloc: the bytes a server connection holds after
    ``initiate_connection`` and the client's SETTINGS (the handshake), after one
    request/response, and after 1,000 of them. Target: at most 64 KiB after
    the handshake.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import platform
import pstats
import statistics
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import h2
import h2.config
import h2.connection
import h2.events
import h2.settings

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])

from tornado_spdy.spdy import SPDYConfiguration, SPDYConnection  # noqa: E402
from tornado_spdy.spdy import events as ev  # noqa: E402

VERSIONS = ("spdy/2", "spdy/3", "spdy/3.1")
H2 = "h2"

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/index.html"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    ),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"en-US,en;q=0.5"),
    (b"accept-encoding", b"gzip, deflate, br"),
]
RESPONSE = [
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
]
BODY = b"Hello, world!"

LARGE_WINDOW = 16 * 1024 * 1024
WRITE_SIZE = 256 * 1024  # what the server writes at most per pass


# ------------------------------------------------------------- connections


def spdy_pair(version: str, large: bool = False) -> tuple[Any, Any]:
    client_config: dict[str, Any] = {}
    server_config: dict[str, Any] = {}
    if large:
        client_config = {
            "initial_window_size": LARGE_WINDOW,
            "initial_session_window_size": LARGE_WINDOW,
        }
        server_config = {"max_outbound_frame_size": 64 * 1024}
    c = SPDYConnection(
        SPDYConfiguration(client_side=True, version=version, **client_config)
    )
    s = SPDYConnection(
        SPDYConfiguration(client_side=False, version=version, **server_config)
    )
    c.initiate_connection()
    s.initiate_connection()
    _exchange(c, s)
    return c, s


def h2_pair(large: bool = False) -> tuple[Any, Any]:
    c = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    s = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    c.initiate_connection()
    if large:
        c.update_settings(
            {
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: LARGE_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: 64 * 1024,
            }
        )
        c.increment_flow_control_window(LARGE_WINDOW - 65535)
    s.initiate_connection()
    _exchange(c, s)
    return c, s


def _exchange(c: Any, s: Any) -> None:
    while True:
        to_server, to_client = c.data_to_send(), s.data_to_send()
        if not to_server and not to_client:
            return
        if to_server:
            s.receive_data(to_server)
        if to_client:
            c.receive_data(to_client)


def make_pair(impl: str, large: bool = False) -> tuple[Any, Any]:
    return h2_pair(large) if impl == H2 else spdy_pair(impl, large)


def event_types(impl: str) -> tuple[type, type]:
    if impl == H2:
        return h2.events.RequestReceived, h2.events.DataReceived
    return ev.RequestReceived, ev.DataReceived


# ------------------------------------------------------ request/response


def pair_loop(impl: str, n: int) -> tuple[float, float]:
    """``n`` request/response pairs on fresh connections: (CPU seconds of the
    whole loop, the server's share of the wall-clock time)."""
    c, s = make_pair(impl)
    request_received, data_received = event_types(impl)
    clock = time.perf_counter
    server_time = 0.0
    cpu_start = time.process_time()
    start = clock()
    for _ in range(n):
        stream_id = c.get_next_available_stream_id()
        c.send_headers(stream_id, REQUEST, end_stream=True)
        wire = c.data_to_send()
        t0 = clock()
        for event in s.receive_data(wire):
            if type(event) is request_received:
                s.send_headers(event.stream_id, RESPONSE)
                s.send_data(event.stream_id, BODY, end_stream=True)
        wire = s.data_to_send()
        server_time += clock() - t0
        for event in c.receive_data(wire):
            if type(event) is data_received:
                c.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        back = c.data_to_send()
        if back:
            t0 = clock()
            s.receive_data(back)
            server_time += clock() - t0
    wall = clock() - start
    return time.process_time() - cpu_start, server_time / wall


def bench_pairs(impl: str, n: int, runs: int) -> dict[str, float]:
    pair_loop(impl, min(n, 200))  # warm up
    totals, servers = [], []
    for _ in range(runs):
        cpu, server_share = pair_loop(impl, n)
        totals.append(cpu / n * 1e6)
        servers.append(cpu * server_share / n * 1e6)
    return {
        "pair_us": statistics.median(totals),
        "pair_best_us": min(totals),
        "server_us": statistics.median(servers),
    }


STAGES = (
    "client send_headers",
    "client data_to_send",
    "server receive_data (SYN_STREAM)",
    "server send_headers (SYN_REPLY)",
    "server send_data",
    "server data_to_send",
    "client receive_data (SYN_REPLY, DATA)",
    "client acknowledge, server receives",
)


def pair_stages(impl: str, n: int = 3000) -> str:
    """Where the time of a pair goes, call by call (wall clock, no profiler)."""
    c, s = make_pair(impl)
    data_received = event_types(impl)[1]
    clock = time.perf_counter
    spent = [0.0] * len(STAGES)
    for _ in range(n):
        t0 = clock()
        stream_id = c.get_next_available_stream_id()
        c.send_headers(stream_id, REQUEST, end_stream=True)
        t1 = clock()
        wire = c.data_to_send()
        t2 = clock()
        s.receive_data(wire)
        t3 = clock()
        s.send_headers(stream_id, RESPONSE)
        t4 = clock()
        s.send_data(stream_id, BODY, end_stream=True)
        t5 = clock()
        wire = s.data_to_send()
        t6 = clock()
        events = c.receive_data(wire)
        t7 = clock()
        for event in events:
            if type(event) is data_received:
                c.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        back = c.data_to_send()
        if back:
            s.receive_data(back)
        t8 = clock()
        marks = (t0, t1, t2, t3, t4, t5, t6, t7, t8)
        for i in range(len(STAGES)):
            spent[i] += marks[i + 1] - marks[i]
    total = sum(spent)
    lines = [f"stages of a pair with {impl}: {total / n * 1e6:.1f} us (wall clock)"]
    for name, seconds in zip(STAGES, spent, strict=True):
        lines.append(
            f"  {name:<40}{seconds / n * 1e6:7.1f} us {seconds / total * 100:5.1f} %"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ DATA


def data_loop(impl: str, size: int, large: bool) -> float:
    """CPU seconds to move ``size`` bytes of DATA from server to client."""
    c, s = make_pair(impl, large)
    request_received, data_received = event_types(impl)
    stream_id = c.get_next_available_stream_id()
    c.send_headers(stream_id, REQUEST, end_stream=True)
    s.receive_data(c.data_to_send())
    s.send_headers(stream_id, RESPONSE[:2])
    c.receive_data(s.data_to_send())
    body = memoryview(bytes(size))
    position = received = 0
    start = time.process_time()
    while received < size:
        written = 0
        while position < size and written < WRITE_SIZE:
            n = min(
                size - position,
                s.max_outbound_frame_size,
                s.local_flow_control_window(stream_id),
            )
            if n <= 0:
                break
            s.send_data(
                stream_id,
                body[position : position + n],
                end_stream=position + n == size,
            )
            position += n
            written += n
        for event in c.receive_data(s.data_to_send()):
            if type(event) is data_received:
                received += len(event.data)
                c.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        back = c.data_to_send()
        if back:
            s.receive_data(back)
    return time.process_time() - start


def bench_data(impl: str, size: int, large: bool, runs: int) -> float:
    """MB/s (10**6 bytes per second), median of ``runs``."""
    return statistics.median(
        size / data_loop(impl, size, large) / 1e6 for _ in range(runs)
    )


# ---------------------------------------------------------------- memory


def _client_bytes(impl: str, requests: int) -> tuple[bytes, list[bytes]]:
    """What a client sends: its handshake, then ``requests`` requests (made
    before tracing starts, so none of the client's memory is counted)."""
    if impl == H2:
        c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
    else:
        c = SPDYConnection(SPDYConfiguration(client_side=True, version=impl))
    c.initiate_connection()
    handshake = c.data_to_send()
    wires = []
    for _ in range(requests):
        stream_id = c.get_next_available_stream_id()
        c.send_headers(stream_id, REQUEST, end_stream=True)
        wires.append(c.data_to_send())
    return handshake, wires


def _server(impl: str) -> Any:
    if impl == H2:
        return h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
    return SPDYConnection(SPDYConfiguration(client_side=False, version=impl))


def _serve(impl: str, handshake: bytes, wires: list[bytes]) -> Any:
    request_received = event_types(impl)[0]
    s = _server(impl)
    s.initiate_connection()
    s.receive_data(handshake)
    s.data_to_send()
    for wire in wires:
        for event in s.receive_data(wire):
            if type(event) is request_received:
                s.send_headers(event.stream_id, RESPONSE)
                s.send_data(event.stream_id, BODY, end_stream=True)
        s.data_to_send()
    return s


def traced_size(build: Callable[[], Any]) -> int:
    """Bytes still allocated (tracemalloc) by what ``build`` returns."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        size = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del kept
    return size


def bench_memory(impl: str) -> dict[str, float]:
    handshake, wires = _client_bytes(impl, 1000)
    _serve(
        impl, handshake, wires[:2]
    )  # warm up: first-use caches are not the session's
    result = {}
    for label, count in (("idle", 0), ("after_1", 1), ("after_1000", 1000)):
        result[label] = traced_size(
            lambda count=count: _serve(impl, handshake, wires[:count])
        )
    # Averaged over 100 idle sessions: no one-off allocation in the figure.
    result["idle_avg100"] = (
        traced_size(lambda: [_serve(impl, handshake, []) for _ in range(100)]) / 100
    )
    return result


# --------------------------------------------------------------- profiles


def profile(impl: str, what: str, top: int = 18) -> str:
    profiler = cProfile.Profile()
    if what == "pair":
        profiler.runcall(pair_loop, impl, 5000)
    else:
        profiler.runcall(data_loop, impl, 50_000_000, what == "data-large")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            (tottime, cumtime, calls, f"{filename.rsplit('/', 2)[-1]}:{line}({name})")
        )
    rows.sort(reverse=True)
    lines = [f"cProfile of {what} with {impl}: {total:.2f} s in all"]
    lines.append(f"{'own %':>6} {'cum %':>6} {'calls':>9}  function")
    for tottime, cumtime, calls, label in rows[:top]:
        lines.append(
            f"{tottime / total * 100:6.1f} {cumtime / total * 100:6.1f} {calls:9d}  {label}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument("--pairs", type=int, default=5000, help="pairs per run")
    parser.add_argument(
        "--runs", type=int, default=7, help="runs (the median is shown)"
    )
    parser.add_argument("--mb", type=int, default=100, help="DATA body size in MB")
    parser.add_argument("--data-runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the loops too")
    parser.add_argument("--only", choices=VERSIONS + (H2,), action="append")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.runs, args.mb, args.data_runs = 500, 3, 10, 1
    impls = args.only or list(VERSIONS + (H2,))
    size = args.mb * 1_000_000

    print(
        f"tornado_spdy core benchmark, {datetime.date.today()}: Python "
        f"{platform.python_version()}, zlib {zlib.ZLIB_VERSION}, h2 {h2.__version__}, "
        f"{platform.machine()}"
    )
    results: dict[str, dict[str, float]] = {}
    for impl in impls:
        row = bench_pairs(impl, args.pairs, args.runs)
        row["data_16k"] = bench_data(impl, size, False, args.data_runs)
        row["data_64k"] = bench_data(impl, size, True, args.data_runs)
        row.update(bench_memory(impl))
        results[impl] = row
        print(f"  {impl}: done", file=sys.stderr)

    reference = results.get(H2)
    columns = [(impl, results[impl]) for impl in impls]
    lines = [
        ("request/response pair, us (target <= 40)", "pair_us", "{:.1f}"),
        ("  best run, us", "pair_best_us", "{:.1f}"),
        ("  of which the server, us", "server_us", "{:.1f}"),
        ("DATA MB/s, 16 KiB frames, 64 KiB windows", "data_16k", "{:.0f}"),
        ("DATA MB/s, 64 KiB frames, 16 MiB windows", "data_64k", "{:.0f}"),
        ("server after handshake, KiB (<= 64)", "idle", "{:.1f}"),
        ("  same, mean of 100 sessions, KiB", "idle_avg100", "{:.1f}"),
        ("server after 1 request, KiB", "after_1", "{:.1f}"),
        ("server after 1,000 requests, KiB", "after_1000", "{:.1f}"),
    ]
    width = 44
    print()
    print(f"{'':<{width}}" + "".join(f"{impl:>11}" for impl, _ in columns))
    for label, key, fmt in lines:
        scale = 1024 if key in ("idle", "idle_avg100", "after_1", "after_1000") else 1
        cells = "".join(f"{fmt.format(row[key] / scale):>11}" for _, row in columns)
        print(f"{label:<{width}}{cells}")
        if reference is not None and key in (
            "pair_us",
            "data_16k",
            "data_64k",
            "after_1",
        ):
            ratios = "".join(
                f"{'x' + format(row[key] / reference[key], '.2f'):>11}"
                for _, row in columns
            )
            print(f"{'    ratio to h2':<{width}}{ratios}")
    if args.profile:
        for impl in impls:
            print()
            print(pair_stages(impl))
        for impl in [i for i in impls if i != H2][-1:]:
            for what in ("pair", "data", "data-large"):
                print()
                print(profile(impl, what))
    return 0


if __name__ == "__main__":
    sys.exit(main())
