"""The attack harness's own noise: attacks that never touch the server.

``tests/test_attacks.py`` measures an honest client's p99 while an attack
runs, the server on one CPU and the clients (honest and attacking) on the
others. The honest client runs real-time, so that the attacker's share of
their CPU is not counted against the server. This script checks that: it
runs the harness (`tests.attack_util.measure`) against the attack server
with attacks that load only the clients' CPU, and prints the same
``ATTACK-P99`` lines. A ratio near 1 means the figures of the attack tests
are the server's::

    python benchmarks/null_attack.py [--kind cpu|socketpair|both]

* ``cpu``: four loops burning CPU in the attacking process, 0.2 s each;
* ``socketpair``: four loops sending 16 KB messages to themselves over a
  socket pair (system calls and loopback networking, on the clients' CPU).

Run it from the repository root (it imports ``tests``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import attack_util  # noqa: E402

LOOPS = 4  # as many as the costliest attack tests run
ATTACK_SECONDS = 0.2  # one attack; the loops repeat it until the round ends
MESSAGE = b"x" * 16384


async def burn_cpu() -> int:
    """Python work in slices, as an attacking client does between writes."""
    end = time.perf_counter() + ATTACK_SECONDS
    while time.perf_counter() < end:
        for _ in range(20000):
            pass
        await asyncio.sleep(0)
    return 1


async def ping_pong() -> int:
    """Messages sent to ourselves over a socket pair, one at a time."""
    loop = asyncio.get_running_loop()
    ends = socket.socketpair()
    for end in ends:
        end.setblocking(False)
    try:
        deadline = time.perf_counter() + ATTACK_SECONDS
        while time.perf_counter() < deadline:
            await loop.sock_sendall(ends[0], MESSAGE)
            received = 0
            while received < len(MESSAGE):
                received += len(await loop.sock_recv(ends[1], 65536))
    finally:
        for end in ends:
            end.close()
    return 1


ATTACKS = {"cpu": burn_cpu, "socketpair": ping_pong}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=[*ATTACKS, "both"], default="both")
    kind = parser.parse_args().kind
    kinds = list(ATTACKS) if kind == "both" else [kind]
    server = attack_util.ServerProcess({})
    server.start()
    try:
        for kind in kinds:
            asyncio.run(
                attack_util.measure(
                    f"null-{kind}", server, ATTACKS[kind], parallel=LOOPS
                )
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
