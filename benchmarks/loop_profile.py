"""Where an asyncio event loop's time goes, in a process that does not know
it is watched: every callback and every loop pass timed.

A test's server runs in a subprocess; to see what its IOLoop passes are made
of (which is what an honest client's latency under attack is made of), set
``LOOP_PROFILE`` to a path prefix and put ``benchmarks/loop_profile_site`` on
``PYTHONPATH``. Every Python process started so installs the profiler at
start-up (its ``sitecustomize``) and writes ``PREFIX.<pid>`` (JSON) every
0.2 s and at exit:

* ``callbacks``: how many callbacks took < 25 us, < 50 us, ... (doubling);
* ``slow``: the callbacks over 100 us by name: count, total and longest;
* ``passes``: the same histogram for whole passes (the sum of their
  callbacks, the wait for I/O left out);
* ``long_passes``: for the passes over 300 us, the callbacks over 30 us that
  made them, by name, and their total time.

A callback is named by what it runs: ``task:`` and the coroutine of a task
step, ``cb:`` and the function of a Tornado ``add_callback``, or the
function itself. Then this script prints the files::

    LOOP_PROFILE=/tmp/lp PYTHONPATH=benchmarks/loop_profile_site \\
        python -m pytest tests/test_attacks.py -s -p no:cacheprovider -k huffman
    python benchmarks/loop_profile.py /tmp/lp.*

Timing every callback costs about a microsecond each: compare figures taken
with the profiler only with figures taken with it. It was written to find
why an honest request waited under attack (``tornado_spdy.fairness``).
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.events
import atexit
import collections
import json
import os
import sys
import threading
import time
from typing import Any

BUCKETS = 14  # < 25 us, < 50 us, ... < 102 ms, and the rest
SLOW = 100e-6  # a callback named in ``slow``
LONG_PASS = 300e-6  # a pass whose make-up is kept
PART = 30e-6  # a callback named in a long pass's make-up
WRITE_EVERY = 0.2  # seconds


def bucket(seconds: float) -> int:
    """Index of the doubling bucket from 25 us that ``seconds`` falls in."""
    index, scaled = 0, seconds / 25e-6
    while scaled >= 1 and index < BUCKETS - 1:
        scaled /= 2
        index += 1
    return index


def name_of(handle: asyncio.Handle) -> str:
    callback: Any = handle._callback  # type: ignore[attr-defined]
    args = handle._args  # type: ignore[attr-defined]
    if getattr(callback, "__name__", "") == "_run_callback" and args:
        inner = getattr(args[0], "func", args[0])  # Tornado's add_callback
        return "cb:" + getattr(inner, "__qualname__", repr(inner))
    owner = getattr(callback, "__self__", None)
    if owner is not None and hasattr(owner, "get_coro"):  # a task's step
        coro = owner.get_coro()
        return "task:" + getattr(coro, "__qualname__", repr(coro))
    return str(getattr(callback, "__qualname__", repr(callback)))


class LoopProfile:
    """Counts kept by the patched `asyncio.Handle._run` and
    ``BaseEventLoop._run_once``; `install` makes the one of a process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.callbacks = [0] * BUCKETS
        self.passes = [0] * BUCKETS
        self.slow: dict[str, list[float]] = collections.defaultdict(
            lambda: [0, 0.0, 0.0]
        )
        self.long_passes: collections.Counter[str] = collections.Counter()
        self._pass_time = 0.0
        self._pass_parts: list[tuple[float, asyncio.Handle]] = []

    def timed_run(self, run: Any) -> Any:
        def _run(handle: asyncio.Handle) -> None:
            began = time.perf_counter()
            run(handle)
            took = time.perf_counter() - began
            self.callbacks[bucket(took)] += 1
            self._pass_time += took
            if took > PART:
                self._pass_parts.append((took, handle))
            if took > SLOW:
                entry = self.slow[name_of(handle)]
                entry[0] += 1
                entry[1] += took
                entry[2] = max(entry[2], took)

        return _run

    def timed_pass(self, run_once: Any) -> Any:
        def _run_once(loop: asyncio.AbstractEventLoop) -> None:
            self._pass_time = 0.0
            self._pass_parts.clear()
            run_once(loop)
            self.passes[bucket(self._pass_time)] += 1
            if self._pass_time > LONG_PASS:
                for took, handle in self._pass_parts:
                    self.long_passes[name_of(handle)] += took

        return _run_once

    def write(self) -> None:
        slow = sorted(self.slow.items(), key=lambda item: -item[1][1])[:25]
        report = {
            "argv": sys.argv,
            "callbacks": self.callbacks,
            "slow": slow,
            "passes": self.passes,
            "long_passes": self.long_passes.most_common(15),
        }
        with open(self.path + ".tmp", "w") as out:
            json.dump(report, out, indent=0)
        os.replace(self.path + ".tmp", self.path)


def install(prefix: str) -> LoopProfile:
    """Time every callback and pass of every asyncio loop of this process,
    written to ``prefix.<pid>``."""
    profile = LoopProfile(f"{prefix}.{os.getpid()}")
    handle_class: Any = asyncio.events.Handle
    handle_class._run = profile.timed_run(handle_class._run)
    loop_class: Any = asyncio.base_events.BaseEventLoop
    loop_class._run_once = profile.timed_pass(loop_class._run_once)

    def keep_writing() -> None:
        while True:
            time.sleep(WRITE_EVERY)
            profile.write()

    threading.Thread(target=keep_writing, daemon=True).start()
    atexit.register(profile.write)
    return profile


def _histogram(counts: list[int]) -> str:
    limits = [f"<{25 * 2**i}us" for i in range(BUCKETS - 1)] + ["more"]
    return "  ".join(
        f"{limit}:{n}" for limit, n in zip(limits, counts, strict=True) if n
    )


def show(path: str) -> None:
    with open(path) as source:
        report = json.load(source)
    print(f"== {path}: {' '.join(report['argv'])[:100]}")
    print(f"callbacks  {_histogram(report['callbacks'])}")
    print(f"passes     {_histogram(report['passes'])}")
    print("slowest callbacks (count, total ms, longest ms):")
    for name, (count, total, longest) in report["slow"][:12]:
        print(f"  {count:7d} {total * 1e3:9.1f} {longest * 1e3:8.2f}  {name}")
    print("what passes over 300 us were made of (total ms):")
    for name, total in report["long_passes"][:10]:
        print(f"  {total * 1e3:9.1f}  {name}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for path in sys.argv[1:]:
        if not path.endswith(".tmp"):
            show(path)
