"""What a person watching the terminal sees while work runs: a progress bar with counts and an
ETA (`count_progress`, for featurize) and the grid's table of units (`GridDisplay`, for the
ensemble and study grids).

A unit is a named chain of trials (`member-d1-r1-triple`, `direct-asc+transfer-aec-d1-r1-triple`);
it is queued, running, done or failed, and a running unit is at some trial (stage) and epoch.

On a terminal (a TTY) both render with rich and refresh in place. Anywhere else (CI, `ray job
submit`, a pipe) they degrade to plain log lines through `logging`: one line per start, finish
and failure, and at most one summary line every `summary_every_s`. Failed units always reach
the terminal. The bookkeeping (states, counts, ETA) is `GridState`, a plain class with no
terminal in it, so it is tested without one.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, TextIO

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATE_STYLE = {QUEUED: "dim", RUNNING: "yellow", DONE: "green", FAILED: "bold red"}
SUMMARY_EVERY_S = 30.0  # plain mode: at most one summary line this often
MAX_ROWS = 24  # rich mode: longer grids show running and failed units first, then a count
ERROR_CHARS = 200  # a failure's message as shown in the table

Clock = Callable[[], float]


def duration(seconds: float) -> str:
    """45s, 3m05s, 1h02m: short enough for a table cell and a log line."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def console_for(stream: TextIO | None) -> Console:
    """A rich console on `stream` (default stderr, where the logs go)."""
    return Console(file=stream if stream is not None else sys.stderr)


def is_live(console: Console) -> bool:
    """Whether to refresh in place: a real terminal, not a dumb one."""
    return console.is_terminal and not console.is_dumb_terminal


# -----------------------------------------------------------------------------
# The grid's state


@dataclass
class Unit:
    name: str
    state: str = QUEUED
    trial: str | None = None  # the trial (stage) a running unit is at
    epoch: int | None = None
    val_acc: dict[str, float] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    order: int = 0  # when it last changed state: running and finished units sort by it


@dataclass(frozen=True)
class Counts:
    done: int  # finished here or before this run
    running: int
    failed: int
    queued: int

    @property
    def total(self) -> int:
        return self.done + self.running + self.failed + self.queued


class GridState:
    """The units of a grid, their states, and the counts and ETA the display shows.

    `already_done` counts units finished before this run (they are not in `units`). The ETA is
    the wall time per unit ended so far (done or failed, in this run) times the units left, so
    it already accounts for units running at once; None until the first unit ends. Events for a
    unit not in `units` add it: a display must never stop the work it shows."""

    def __init__(self, units: list[str], already_done: int = 0, clock: Clock = time.monotonic):
        if len(set(units)) != len(units):
            raise ValueError("unit names must be unique")
        self.clock = clock
        self.t0 = clock()
        self.already_done = already_done
        self.units: dict[str, Unit] = {u: Unit(u) for u in units}
        self._events = itertools.count(1)

    def _unit(self, name: str) -> Unit:
        return self.units.setdefault(name, Unit(name))

    def _move(self, unit: Unit, state: str) -> None:
        unit.state = state
        unit.order = next(self._events)

    def started(self, name: str) -> None:
        u = self._unit(name)
        u.trial, u.epoch, u.val_acc, u.error, u.ended = None, None, {}, None, None
        u.started = self.clock()
        self._move(u, RUNNING)

    def epoch(self, name: str, trial: str, epoch: int, val_acc: Mapping[str, float]) -> None:
        u = self._unit(name)
        if u.state != RUNNING:  # a result before its start event: it is running all the same
            self.started(name)
        u.trial, u.epoch, u.val_acc = trial, epoch, dict(val_acc)

    def finished(self, name: str) -> None:
        u = self._unit(name)
        u.ended = self.clock()
        self._move(u, DONE)

    def failed(self, name: str, error: str) -> None:
        u = self._unit(name)
        u.ended, u.error = self.clock(), error
        self._move(u, FAILED)

    def counts(self) -> Counts:
        n = {s: 0 for s in (QUEUED, RUNNING, DONE, FAILED)}
        for u in self.units.values():
            n[u.state] += 1
        return Counts(n[DONE] + self.already_done, n[RUNNING], n[FAILED], n[QUEUED])

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def eta(self) -> float | None:
        """Seconds until every unit has ended, at the pace so far; None before any has."""
        c = self.counts()
        ended = c.done - self.already_done + c.failed
        left = c.running + c.queued
        if left == 0:
            return 0.0
        if ended == 0:
            return None
        return self.elapsed() / ended * left

    def rows(self) -> list[Unit]:
        """Running units (longest running first), failed (latest first), queued (plan order),
        done (latest first)."""
        by = {s: [u for u in self.units.values() if u.state == s] for s in (QUEUED, RUNNING, DONE, FAILED)}
        return (
            sorted(by[RUNNING], key=lambda u: u.order)
            + sorted(by[FAILED], key=lambda u: -u.order)
            + by[QUEUED]
            + sorted(by[DONE], key=lambda u: -u.order)
        )

    def summary(self) -> str:
        c = self.counts()
        eta = self.eta()
        return (
            f"{c.done}/{c.total} done, {c.running} running, {c.failed} failed, {c.queued} queued; "
            f"{duration(self.elapsed())}, ETA {'-' if eta is None else duration(eta)}"
        )


def where(u: Unit) -> str:
    """A running unit's position: `mtl-ic epoch 3 (val_acc asc 0.412, aec 0.200)`."""
    if u.trial is None:
        return "starting"
    acc = ", ".join(f"{t} {a:.3f}" for t, a in sorted(u.val_acc.items()))
    return f"{u.trial} epoch {u.epoch}" + (f" (val_acc {acc})" if acc else "")


def render_grid(state: GridState, title: str, max_rows: int = MAX_ROWS) -> Table:
    """The rich table of a grid: one row per unit (the first `max_rows`), then a count of the rest."""
    table = Table(title=f"{title}: {state.summary()}", title_justify="left", expand=False)
    for name in ("unit", "state", "trial", "epoch", "val acc", "time"):
        table.add_column(name, no_wrap=name != "state")
    now = state.clock()
    rows = state.rows()
    for u in rows[:max_rows]:
        acc = ", ".join(f"{t} {a:.3f}" for t, a in sorted(u.val_acc.items()))
        took = "" if u.started is None else duration((now if u.ended is None else u.ended) - u.started)
        status = Text(u.state, style=STATE_STYLE[u.state])
        if u.error:
            status.append(f": {u.error[:ERROR_CHARS]}")
        trial = (u.trial or "") if u.state == RUNNING else ""
        epoch = "" if u.epoch is None or u.state != RUNNING else str(u.epoch)
        table.add_row(u.name, status, trial, epoch, acc if u.state == RUNNING else "", took)
    rest = rows[max_rows:]
    if rest:
        n = {s: sum(u.state == s for u in rest) for s in (QUEUED, DONE)}
        table.add_row(Text(f"... {n[QUEUED]} more queued, {n[DONE]} more done", style="dim"))
    return table


# -----------------------------------------------------------------------------
# The grid's display


class GridDisplay:
    """The grid's view: a rich table refreshing in place on a terminal, log lines elsewhere.

    Call `started`, `epoch`, `finished` and `failed` as the grid's units move (from a Tune
    callback), and `close` at the end (or use it as a context manager). `console` overrides
    `stream` (tests render into a `Console(file=io.StringIO(), force_terminal=True)`)."""

    def __init__(
        self,
        units: list[str],
        already_done: int = 0,
        stream: TextIO | None = None,
        *,
        title: str = "grid",
        summary_every_s: float = SUMMARY_EVERY_S,
        clock: Clock = time.monotonic,
        console: Console | None = None,
        max_rows: int = MAX_ROWS,
    ):
        self.state = GridState(units, already_done, clock)
        self.title = title
        self.summary_every_s = summary_every_s
        self.max_rows = max_rows
        self.console = console if console is not None else console_for(stream)
        # Tune's callbacks and rich's refresh thread share the state; reentrant, because printing a
        # failure above the table re-renders the table while the lock is held.
        self._lock = threading.RLock()
        self._last_summary = self.state.t0
        self._live: Live | None = None
        self._rerouted: list[tuple[logging.StreamHandler, TextIO]] = []
        if is_live(self.console):
            self._start_live()

    @property
    def live(self) -> bool:
        return self._live is not None

    # events -------------------------------------------------------------

    def started(self, unit: str) -> None:
        with self._lock:
            self.state.started(unit)
            if not self.live:
                self._line(f"started {unit}")

    def epoch(self, unit: str, trial: str, epoch: int, val_acc: Mapping[str, float]) -> None:
        with self._lock:
            self.state.epoch(unit, trial, epoch, val_acc)
            if not self.live and self.state.clock() - self._last_summary >= self.summary_every_s:
                running = "; ".join(f"{u.name} {where(u)}" for u in self.state.rows() if u.state == RUNNING)
                self._line(f"running: {running}" if running else "")

    def finished(self, unit: str) -> None:
        with self._lock:
            self.state.finished(unit)
            if not self.live:
                u = self.state.units[unit]
                took = 0.0 if u.started is None else u.ended - u.started
                self._line(f"finished {unit} in {duration(took)}")

    def failed(self, unit: str, error: str) -> None:
        with self._lock:
            self.state.failed(unit, error)
            if self.live:
                # Printed above the table, so it stays on the screen after the table moves on.
                self.console.print(Text(f"{self.title}: FAILED {unit}: {error}", style="bold red"))
            else:
                self._line(f"FAILED {unit}: {error}", logging.ERROR)

    def close(self) -> None:
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.update(self._render(), refresh=True)
            live.stop()
            for handler, stream in self._rerouted:
                handler.setStream(stream)
            self._rerouted = []

    def __enter__(self) -> GridDisplay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # output -------------------------------------------------------------

    def _line(self, what: str, level: int = logging.INFO) -> None:
        """One plain line: the event, then the grid's counts (every line carries them, so the
        periodic summary restarts its period)."""
        self._last_summary = self.state.clock()
        log.log(level, "%s: %s%s%s", self.title, what, " | " if what else "", self.state.summary())

    def _render(self) -> Table:
        with self._lock:
            return render_grid(self.state, self.title, self.max_rows)

    def _start_live(self) -> None:
        redirect = self.console.file in (sys.stdout, sys.stderr)
        originals = (sys.stdout, sys.stderr)
        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=2,
            redirect_stdout=redirect,
            redirect_stderr=redirect,
        )
        self._live.start()
        if redirect:
            self._rerouted = reroute_log_handlers(originals)


def reroute_log_handlers(originals: tuple[TextIO, TextIO]) -> list[tuple[logging.StreamHandler, TextIO]]:
    """While a rich Live display runs, make the log handlers that write to the terminal write
    through it (rich has replaced sys.stdout and sys.stderr by proxies that print above the
    display); a handler keeps the stream it was made with, and would tear the display apart.
    Returns (handler, its own stream) pairs to restore."""
    proxies = {id(originals[0]): sys.stdout, id(originals[1]): sys.stderr}
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    changed = []
    for lg in loggers:
        for h in lg.handlers:
            if type(h) is logging.StreamHandler and id(h.stream) in proxies:
                changed.append((h, h.setStream(proxies[id(h.stream)])))
    return changed


# -----------------------------------------------------------------------------
# A progress bar with counts


class CountProgress:
    """A count of items done out of `total`: `update(done)` or `advance(n)`. A rich bar on a
    terminal; elsewhere a log line at most every `every_s` (and one at the end)."""

    def __init__(
        self,
        description: str,
        total: int,
        unit: str,
        console: Console,
        every_s: float,
        clock: Clock,
    ):
        self.description, self.total, self.unit = description, total, unit
        self.every_s, self.clock = every_s, clock
        self.t0 = self._last_line = clock()
        self.done = 0
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        if is_live(console):
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self._task = self._progress.add_task(description, total=total)
            self._progress.start()

    def update(self, done: int) -> None:
        with self._lock:
            self.done = min(max(done, self.done), self.total)
            if self._progress is not None:
                self._progress.update(self._task, completed=self.done)
            elif self.clock() - self._last_line >= self.every_s:
                self._line()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def eta(self) -> float | None:
        """Seconds left at the pace so far; None before anything is done."""
        if self.done == 0:
            return None
        return (self.clock() - self.t0) / self.done * (self.total - self.done)

    def _line(self) -> None:
        self._last_line = self.clock()
        eta = self.eta()
        log.info(
            "%s: %d/%d %s, %s, ETA %s",
            self.description,
            self.done,
            self.total,
            self.unit,
            duration(self.clock() - self.t0),
            "-" if eta is None else duration(eta),
        )

    def close(self, finished: bool) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif finished:
            log.info(
                "%s: %d/%d %s in %s",
                self.description,
                self.done,
                self.total,
                self.unit,
                duration(self.clock() - self.t0),
            )


@contextmanager
def count_progress(
    description: str,
    total: int,
    *,
    unit: str = "items",
    poll: Callable[[], int] | None = None,
    poll_every_s: float = 0.5,
    stream: TextIO | None = None,
    console: Console | None = None,
    every_s: float = SUMMARY_EVERY_S,
    clock: Clock = time.monotonic,
) -> Iterator[CountProgress]:
    """A progress bar of `total` items with counts, elapsed time and an ETA.

    Advance it with the yielded object's `update(done)` / `advance(n)`, or give `poll`, a function
    returning the count done so far, which a background thread calls every `poll_every_s` (for
    work the caller blocks on, such as a Ray Data write whose tasks report elsewhere)."""
    bar = CountProgress(
        description, total, unit, console if console is not None else console_for(stream), every_s, clock
    )
    stop = threading.Event()

    def poll_now() -> None:
        try:
            bar.update(poll())
        except Exception as e:  # a count that cannot be read must never stop the work
            log.debug("progress of %s not read: %s", description, e)

    poller = None
    if poll is not None:

        def loop() -> None:
            while not stop.wait(poll_every_s):
                poll_now()

        poller = threading.Thread(target=loop, name=f"progress-{description}", daemon=True)
        poller.start()
    finished = False
    try:
        yield bar
        finished = True
    finally:
        stop.set()
        if poller is not None:
            poller.join()
            if finished:
                poll_now()
        bar.close(finished)
