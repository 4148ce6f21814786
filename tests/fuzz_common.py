"""What the fuzzers `tests.fuzz_core` and `tests.fuzz_session` share.

The oracle's plumbing (`Failure`, the CPU timer raising `Hang`), the
campaign around it (which input runs next, counting and saving failures,
several processes, the report) and the options of both command lines. Each
fuzzer keeps what is its own: its inputs, how one runs, what fails, and the
columns of its report.

A *combo* is a pair ``(framing, side)``: the protocol version or framing
fuzzed (``spdy/3``, ``h2`` ...) and the side under test (``server`` or
``client``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import hashlib
import multiprocessing
import os
import random
import signal
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

Combo = tuple[str, str]
T = TypeVar("T")

# ---------------------------------------------------------------- oracle


class Failure(Exception):
    """An input broke a rule; ``kind`` says which."""

    def __init__(
        self, kind: str, detail: str, tb: str = "", label: str = "", where: str = ""
    ):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.tb = tb
        self.label = label  # the exception type (and API call): part of the signature
        self.where = where

    @property
    def signature(self) -> str:
        """What makes two failures the same: kind, exception type, place."""
        return " | ".join(p for p in (self.kind, self.label, self.where) if p)


class Hang(BaseException):
    """Raised by the CPU timer inside a hanging input (a BaseException, so that
    no ``except Exception`` in the code under test swallows it)."""


def innermost_tornado_spdy_frame(tb: Any) -> str:
    """``file:line function`` of the last frame of ``tb`` inside tornado_spdy."""
    where = ""
    for frame in traceback.extract_tb(tb):
        if "tornado_spdy" in frame.filename:
            where = f"{os.path.basename(frame.filename)}:{frame.lineno} {frame.name}"
    return where


def failure_from(kind: str, exc: BaseException, label: str = "") -> Failure:
    """A `Failure` for ``exc``; its type name, after ``label``, is signed."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    where = innermost_tornado_spdy_frame(exc.__traceback__)
    name = type(exc).__name__
    return Failure(kind, f"{name}: {exc}", tb, f"{label}{name}", where)


def _on_cpu_timer(signum: int, frame: Any) -> None:
    raise Hang()


_timer_installed = False


def install_cpu_timer() -> bool:
    """Make SIGVTALRM raise `Hang`; False where that cannot be done (not the
    main thread, or no such signal), and the timer stays unarmed."""
    global _timer_installed
    if not _timer_installed:
        try:
            signal.signal(signal.SIGVTALRM, _on_cpu_timer)
        except (ValueError, AttributeError):
            return False
        _timer_installed = True
    return True


@contextlib.contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise `Hang` in the block once this process used ``seconds`` of CPU."""
    armed = install_cpu_timer()
    if armed:
        signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)


def run_with_cpu_limit(
    run: Callable[[], T], budget: float
) -> tuple[T | None, Failure | None, float]:
    """``run()`` under a CPU timer of ``budget`` seconds: its result, the
    `Failure` it raised, and the CPU seconds it took. An input over budget
    runs once more (the machine may have been busy): a ``hang`` only if it
    is over budget twice."""
    failure: Failure | None = None
    for attempt in (1, 2):
        start = time.process_time()
        try:
            with cpu_limit(budget):
                result: T | None = run()
            failure = None
        except Failure as exc:
            result, failure = None, exc
        except Hang:
            result, failure = None, None
            if attempt == 2:
                failure = Failure("hang", f"over {budget:.1f} s of CPU, twice")
                failure.tb = traceback.format_exc()
            continue
        elapsed = time.process_time() - start
        if failure is None and elapsed > budget and attempt == 1:
            continue  # no timer fired (not the main thread?): confirm once
        if failure is None and elapsed > budget:
            failure = Failure("hang", f"{elapsed:.2f} s of CPU, twice")
        return result, failure, elapsed
    return None, failure, budget


# ------------------------------------------------------------ minimizing


class _HasData(Protocol):
    data: bytes


InputT = TypeVar("InputT", bound=_HasData)


def shrink_data(
    best: InputT,
    frames: list[tuple[int, int]],
    drop_frame: Callable[[InputT, int, int], InputT],
    drop_bytes: Callable[[InputT, int, int], InputT],
    fails: Callable[[InputT], bool],
    deadline: float,
) -> InputT:
    """Delta debugging over ``best.data``: drop whole ``frames`` (from the
    end), then byte ranges of halving sizes, keeping each drop after which
    the input still ``fails``. ``drop_frame`` and ``drop_bytes`` make the
    input without the bytes ``[start, end)``."""
    for start, end in reversed(frames):
        candidate = drop_frame(best, start, end)
        if fails(candidate):
            best = candidate
    width = max(1, len(best.data) // 2)
    while width >= 1 and time.monotonic() < deadline:
        position = 0
        while position < len(best.data) and time.monotonic() < deadline:
            end = min(position + width, len(best.data))
            candidate = drop_bytes(best, position, end)
            if fails(candidate):
                best = candidate
            else:
                position += width
        width //= 2
    return best


# -------------------------------------------------------------- campaign


@dataclass
class Stats:
    """What a campaign counts. A fuzzer's subclass adds its own counters (named
    in ``counters``, so that `merge` adds them up), the ``title`` and the
    per-combo table of its report (`table`)."""

    executed: Counter = field(default_factory=Counter)  # inputs by combo
    origins: Counter = field(default_factory=Counter)  # inputs by kind
    failures: Counter = field(default_factory=Counter)  # failing inputs by signature
    combo_failures: Counter = field(default_factory=Counter)  # ... and by combo
    examples: dict = field(default_factory=dict)  # signature -> first detail
    reproducers: dict = field(default_factory=dict)  # signature -> where
    elapsed: float = 0.0
    jobs: int = 1

    title: ClassVar[str] = ""
    counters: ClassVar[tuple[str, ...]] = (
        "executed",
        "origins",
        "failures",
        "combo_failures",
    )
    example_chars: ClassVar[int] = 200  # of a failure's first line, in `examples`

    def merge(self, other: Stats) -> None:
        """Add ``other``'s figures (another process's) to these."""
        for name in self.counters:
            getattr(self, name).update(getattr(other, name))
        for signature, detail in other.examples.items():
            self.examples.setdefault(signature, detail)
        for signature, path in other.reproducers.items():
            self.reproducers.setdefault(signature, path)

    @property
    def total(self) -> int:
        return sum(self.executed.values())

    @property
    def failing_inputs(self) -> int:
        return sum(self.failures.values())

    def add_failure(
        self,
        combo: Combo,
        failure: Failure,
        case_seed: int,
        save: Callable[[str], str],
        out_dir: str | None,
        max_saved: int,
    ) -> None:
        """Count ``failure``. The first input of its signature is saved by
        ``save(out_dir)``, which returns where, unless there is no
        ``out_dir`` or ``max_saved`` were saved already."""
        signature = failure.signature
        self.failures[signature] += 1
        self.combo_failures[combo] += 1
        first_line = failure.detail.splitlines()[0][: self.example_chars]
        self.examples.setdefault(signature, f"{combo[0]} {combo[1]}: {first_line}")
        if signature in self.reproducers:
            return
        if out_dir and len(self.reproducers) < max_saved:
            self.reproducers[signature] = save(out_dir)
        else:
            self.reproducers[signature] = f"(not saved) case seed {case_seed}"

    def table(self) -> list[str]:
        """The report's lines about each combo: a heading and a row each."""
        raise NotImplementedError

    def summary(self) -> str:
        """The report's line about the whole campaign."""
        rate = self.total / self.elapsed if self.elapsed else 0.0
        return (
            f"total: {self.total} inputs in {self.elapsed:.1f} s with {self.jobs} "
            f"process(es) ({rate:.0f} inputs/s); failing inputs: {self.failing_inputs}; "
            f"distinct failures: {len(self.failures)}"
        )

    def report(self) -> str:
        """What the campaign did, per combo and in all, and each failure."""
        lines = [self.title, "", *self.table(), "", self.summary()]
        lines.append(
            "inputs by kind: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.origins.items()))
        )
        for signature, count in self.failures.most_common():
            lines.append(f"FAILURE x{count}: {signature}")
            lines.append(f"    first: {self.examples.get(signature, '')}")
            lines.append(f"    reproducer: {self.reproducers.get(signature, '')}")
        return "\n".join(lines)


@dataclass
class CaseStats(Stats):
    """The figures of a campaign of cases run by a core fuzzer: also the
    inputs that ended in a session error (by combo) and the CPU time of the
    slowest input."""

    protocol_errors: Counter = field(default_factory=Counter)  # by combo
    max_cpu: float = 0.0

    counters: ClassVar[tuple[str, ...]] = (*Stats.counters, "protocol_errors")
    example_chars: ClassVar[int] = 160

    def merge(self, other: Stats) -> None:
        super().merge(other)
        if isinstance(other, CaseStats):
            self.max_cpu = max(self.max_cpu, other.max_cpu)

    def table(self) -> list[str]:
        lines = [
            f"{'version':<10}{'side':<8}{'inputs':>10}{'session errors':>16}{'failures':>10}"
        ]
        for (version, side), n in sorted(self.executed.items()):
            failed = self.combo_failures[version, side]
            share = self.protocol_errors[version, side] / n if n else 0.0
            lines.append(f"{version:<10}{side:<8}{n:>10}{share:>15.0%}{failed:>10}")
        return lines

    def summary(self) -> str:
        return f"{super().summary()}; slowest input: {self.max_cpu * 1000:.0f} ms CPU"


StatsT = TypeVar("StatsT", bound=Stats)
CaseStatsT = TypeVar("CaseStatsT", bound=CaseStats)


class _Case(Protocol):
    origin: str


CaseT = TypeVar("CaseT", bound=_Case)


def run_campaign(
    stats: CaseStatsT,
    generate: Callable[[random.Random, Combo], CaseT],
    run_checked: Callable[[CaseT], tuple[Any, Failure | None, float]],
    save_reproducer: Callable[..., str],
    inputs: int,
    seed: int,
    combos: Sequence[Combo],
    job: int = 0,
    max_seconds: float | None = None,
    out_dir: str | None = None,
    minimize_budget: float = 20.0,
    max_saved: int = 20,
) -> CaseStatsT:
    """The campaign of a core fuzzer: ``inputs`` cases round-robin over
    ``combos``, each made by ``generate(rng, combo)`` and run by
    ``run_checked`` (its outcome has ``protocol_error``), counted in
    ``stats``; a failure's first case is saved by
    ``save_reproducer(out_dir, case=, failure=, budget=)``."""
    start = time.monotonic()
    # A look at the clock every 16 inputs: they take about a millisecond.
    for combo, case_seed in schedule(
        inputs, seed, combos, job, max_seconds, check_every=16
    ):
        case = generate(random.Random(case_seed), combo)
        outcome, failure, cpu = run_checked(case)
        stats.executed[combo] += 1
        stats.origins[case.origin.split(":")[0]] += 1
        stats.max_cpu = max(stats.max_cpu, cpu)
        if outcome is not None and outcome.protocol_error:
            stats.protocol_errors[combo] += 1
        if failure is not None:
            save = functools.partial(
                save_reproducer, case=case, failure=failure, budget=minimize_budget
            )
            stats.add_failure(combo, failure, case_seed, save, out_dir, max_saved)
    stats.elapsed = time.monotonic() - start
    return stats


def schedule(
    inputs: int,
    seed: int,
    combos: Sequence[Combo],
    job: int = 0,
    max_seconds: float | None = None,
    check_every: int = 1,
) -> Iterator[tuple[Combo, int]]:
    """``(combo, case seed)`` of each input of one job, round-robin over
    ``combos``, until ``inputs`` ran or ``max_seconds`` passed (looked at
    every ``check_every`` inputs). Each combo of each job draws its case
    seeds from its own generator: a case seed replays one input."""
    rngs = {
        combo: random.Random(f"{seed}/{job}/{combo[0]}/{combo[1]}") for combo in combos
    }
    deadline = time.monotonic() + max_seconds if max_seconds else None
    for index in range(inputs):
        if (
            deadline is not None
            and index % check_every == 0
            and time.monotonic() > deadline
        ):
            return
        combo = combos[index % len(combos)]
        yield combo, rngs[combo].getrandbits(64)


def _run_job(arguments: tuple) -> Stats:
    campaign, inputs, seed, combos, job, options = arguments
    return campaign(inputs, seed, combos, job=job, **options)


def run_jobs(
    campaign: Callable[..., StatsT],
    inputs: int,
    seed: int,
    framings: Sequence[str],
    sides: Sequence[str],
    jobs: int = 1,
    **options: Any,
) -> StatsT:
    """Run ``campaign(inputs, seed, combos, job=0, **options)`` over every
    combo of ``framings`` and ``sides`` in this process; or share ``inputs``
    among ``jobs`` forked processes (job ``k`` draws its own inputs) and
    merge their statistics, ``elapsed`` then being the wall time of them all.
    """
    combos = [(framing, side) for framing in framings for side in sides]
    if jobs <= 1:
        stats = campaign(inputs, seed, combos, job=0, **options)
        stats.jobs = 1
        return stats
    start = time.monotonic()
    share = [inputs // jobs + (k < inputs % jobs) for k in range(jobs)]
    arguments = [(campaign, share[k], seed, combos, k, options) for k in range(jobs)]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        results = pool.map(_run_job, arguments)
    stats = results[0]
    for other in results[1:]:
        stats.merge(other)
    stats.jobs = jobs
    stats.elapsed = time.monotonic() - start
    return stats


def reproducer_directory(out_dir: str, combo: Combo, failure: Failure) -> str:
    """A directory under ``out_dir`` for the reproducer of ``failure``, named
    by combo, kind and a digest of the signature, so that reruns reuse it."""
    digest = hashlib.sha1(failure.signature.encode()).hexdigest()[:10]
    framing, side = combo
    path = os.path.join(
        out_dir, f"{framing.replace('/', '')}-{side}-{failure.kind}-{digest}"
    )
    os.makedirs(path, exist_ok=True)
    return path


def write_files(directory: str, files: dict[str, str | bytes]) -> None:
    """Write each text or bytes of ``files`` under its name in ``directory``."""
    for name, content in files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(os.path.join(directory, name), mode) as f:
            f.write(content)


class Replayable:
    """A dataclass input with ``data`` and ``cuts``, saved as the repr of its
    fields."""

    data: bytes
    cuts: tuple[int, ...]

    def to_repr(self) -> str:
        return repr(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_repr(cls: type[ReplayableT], text: str) -> ReplayableT:
        return cls(**ast.literal_eval(text))

    def pieces(self) -> list[bytes]:
        """``data`` cut at ``cuts``."""
        bounds = sorted({c for c in self.cuts if 0 < c < len(self.data)})
        starts = [0, *bounds]
        ends = [*bounds, len(self.data)]
        return [self.data[a:b] for a, b in zip(starts, ends, strict=True)]


ReplayableT = TypeVar("ReplayableT", bound=Replayable)


class _Saved(Protocol):
    data: bytes

    def to_repr(self) -> str: ...


SavedT = TypeVar("SavedT", bound=_Saved)


def save_case(
    out_dir: str,
    combo: Combo,
    case: SavedT,
    failure: Failure,
    minimize: Callable[[SavedT], SavedT],
    describe: Callable[[SavedT], str],
    name: str = "case.repr",
) -> str:
    """Save ``case`` (replayable as ``name``, and its bytes), then its
    ``minimize``-d version and the failure, each input told by ``describe``;
    return the directory."""
    path = reproducer_directory(out_dir, combo, failure)
    write_files(path, {name: case.to_repr(), "data.bin": case.data})
    small = minimize(case)
    trace = (
        f"{describe(case)}\nsignature: {failure.signature}\n\n"
        f"minimized input ({len(small.data)} bytes; {describe(small)}):\n"
        f"{small.data.hex()}\n\n{failure.detail}\n\n{failure.tb}\n"
    )
    write_files(path, {f"minimized.{name.split('.')[-1]}": small.to_repr()})
    write_files(path, {"traceback.txt": trace})
    return path


def replay_case(
    path: str,
    load: Callable[[str], SavedT],
    run_checked: Callable[[SavedT], tuple[Any, Failure | None, float]],
    describe: Callable[[SavedT], str],
) -> int:
    """Run the case saved at ``path`` (read by ``load``) and print what
    happens; the exit status: 1 if it fails."""
    with open(path) as f:
        case = load(f.read())
    outcome, failure, cpu = run_checked(case)
    about = f"{describe(case)}: {len(case.data)} bytes, {cpu * 1000:.1f} ms CPU"
    return print_replay(about, outcome, failure)


def print_replay(about: str, outcome: Any, failure: Failure | None) -> int:
    """Print what a replayed input did; the exit status: 1 if it failed."""
    print(about)
    if failure is None:
        print("no failure:", outcome)
        return 0
    print(failure.signature)
    print(failure.detail)
    print(failure.tb)
    return 1


# ------------------------------------------------------------ command line


def campaign_parser(
    module: str, doc: str, out_name: str, minimize_seconds: float, saved_input: str
) -> argparse.ArgumentParser:
    """The options both fuzzers take; the caller adds how combos are chosen.

    ``out_name`` is the default ``--out`` directory under the temporary
    directory, ``saved_input`` the name of the replayable file a reproducer
    holds (``--replay`` runs one).
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}", description=doc.split("\n\n")[0]
    )
    parser.add_argument(
        "--inputs",
        type=int,
        default=10_000,
        help="inputs in all (shared by the framings and sides chosen)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jobs", type=int, default=1, help="processes (2 cores: 2 at most)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop after this long"
    )
    parser.add_argument(
        "--out",
        default=os.path.join(tempfile.gettempdir(), out_name),
        help="where reproducers go (default: %(default)s)",
    )
    parser.add_argument("--minimize-seconds", type=float, default=minimize_seconds)
    parser.add_argument(
        "--replay",
        metavar=saved_input.replace(".", "_").upper(),
        help=f"run one saved {saved_input} and print what happens",
    )
    return parser


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of a fuzzer's ``run`` given by the options of
    `campaign_parser`."""
    return {
        "jobs": args.jobs,
        "max_seconds": args.max_seconds,
        "out_dir": args.out,
        "minimize_budget": args.minimize_seconds,
    }


def command(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    replay: Callable[[str], int],
    run: Callable[[argparse.Namespace, dict[str, Any]], Stats],
) -> int:
    """A fuzzer's command line: replay a saved input, or run
    ``run(args, options)`` (options: those of `run_options`) and print its
    report; the exit status."""
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    return print_report(run(args, run_options(args)))


def print_report(stats: Stats) -> int:
    """Print the report of a campaign; the exit status: 1 if an input failed."""
    print(stats.report())
    return 1 if stats.failing_inputs else 0
