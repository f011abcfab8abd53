"""The live display (raymtl.live): the grid's state and ETA, its plain log lines when the output
is not a terminal, its rich table when it is, and the counting progress bar. No Ray, a fake clock.
"""

from __future__ import annotations

import io
import logging
import time

import pytest
from rich.console import Console

from raymtl import live as L

UNITS = ["member-d1-r1-triple", "member-d2-r1-triple", "direct-asc+transfer-aec-d1-r1-triple"]
A, B, C = UNITS


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def plain(clock: Clock, already_done: int = 0, every: float = 30.0) -> L.GridDisplay:
    """A display on a stream that is not a terminal: log lines."""
    return L.GridDisplay(UNITS, already_done, stream=io.StringIO(), clock=clock, summary_every_s=every)


def lines(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == L.log.name]


# ---------------------------------------------------------------- state


def test_counts_follow_each_unit_through_its_states():
    s = L.GridState(UNITS, already_done=2, clock=Clock())
    assert s.counts() == L.Counts(done=2, running=0, failed=0, queued=3)
    s.started(A)
    s.started(B)
    s.finished(A)
    s.failed(B, "boom")
    assert s.counts() == L.Counts(done=3, running=0, failed=1, queued=1)
    assert s.counts().total == 5


def test_eta_is_the_wall_time_per_ended_unit_times_the_units_left():
    clock = Clock()
    s = L.GridState(UNITS, clock=clock)
    s.started(A)
    s.started(B)
    clock.t = 60
    assert s.eta() is None  # nothing ended yet
    s.finished(A)
    clock.t = 100
    s.failed(B, "boom")  # a failed unit took its time too
    assert s.eta() == pytest.approx(100 / 2 * 1)  # one unit (C) left
    s.started(C)
    s.finished(C)
    assert s.eta() == 0.0


def test_units_finished_before_this_run_do_not_count_towards_the_pace():
    clock = Clock()
    s = L.GridState([A, B], already_done=10, clock=clock)
    s.started(A)
    clock.t = 30
    s.finished(A)
    assert s.eta() == pytest.approx(30)


def test_rows_put_running_first_then_failed_then_queued_then_done():
    s = L.GridState(UNITS + ["e", "f"], clock=Clock())
    s.started(C)
    s.started(A)
    s.finished(A)
    s.failed("e", "x")
    s.started("f")
    assert [u.name for u in s.rows()] == [C, "f", "e", B, A]


def test_an_epoch_records_the_trial_and_accuracy_and_an_unknown_unit_is_added():
    s = L.GridState([A], clock=Clock())
    s.epoch("late", "mtl-ic", 3, {"asc": 0.5, "aec": 0.25})
    u = s.units["late"]
    assert (u.state, u.trial, u.epoch, u.val_acc) == (L.RUNNING, "mtl-ic", 3, {"asc": 0.5, "aec": 0.25})
    assert L.where(u) == "mtl-ic epoch 3 (val_acc aec 0.250, asc 0.500)"


def test_durations_read_short():
    assert [L.duration(s) for s in (0, 45.4, 65, 3599, 3720)] == ["0s", "45s", "1m05s", "59m59s", "1h02m"]


# ---------------------------------------------------------------- plain lines


def test_plain_mode_logs_a_line_per_start_finish_and_failure(caplog):
    caplog.set_level(logging.INFO, logger=L.log.name)
    clock = Clock()
    d = plain(clock, already_done=1)
    assert not d.live
    d.started(A)
    clock.t = 65
    d.finished(A)
    d.failed(B, "RuntimeError: out of memory")
    d.close()
    assert lines(caplog) == [
        ("INFO", f"grid: started {A} | 1/4 done, 1 running, 0 failed, 2 queued; 0s, ETA -"),
        ("INFO", f"grid: finished {A} in 1m05s | 2/4 done, 0 running, 0 failed, 2 queued; 1m05s, ETA 2m10s"),
        (
            "ERROR",
            f"grid: FAILED {B}: RuntimeError: out of memory | 2/4 done, 0 running, 1 failed, 1 queued; "
            "1m05s, ETA 32s",
        ),
    ]


def test_plain_mode_summarises_epochs_at_most_once_a_period(caplog):
    caplog.set_level(logging.INFO, logger=L.log.name)
    clock = Clock()
    d = plain(clock, every=30)
    d.started(A)  # a line at 0 s: the period starts over
    for t, epoch in ((10, 1), (29, 2), (31, 3), (40, 4), (61, 5)):
        clock.t = t
        d.epoch(A, "mtl-ic", epoch, {"asc": 0.5})
    running = [m for _, m in lines(caplog) if "running:" in m]
    assert running == [
        f"grid: running: {A} mtl-ic epoch 3 (val_acc asc 0.500) | 0/3 done, 1 running, 0 failed, 2 queued; "
        "31s, ETA -",
        f"grid: running: {A} mtl-ic epoch 5 (val_acc asc 0.500) | 0/3 done, 1 running, 0 failed, 2 queued; "
        "1m01s, ETA -",
    ]


def test_failures_are_logged_whatever_the_period(caplog):
    caplog.set_level(logging.INFO, logger=L.log.name)
    d = plain(Clock(), every=1e9)
    d.started(A)
    d.failed(A, "boom")
    d.failed(B, "bang")
    assert [m.split(" | ")[0] for lvl, m in lines(caplog) if lvl == "ERROR"] == [
        f"grid: FAILED {A}: boom",
        f"grid: FAILED {B}: bang",
    ]


# ---------------------------------------------------------------- rich table


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=160)


def test_on_a_terminal_the_table_shows_each_unit_and_its_state():
    console, clock = terminal(), Clock()
    with L.GridDisplay(UNITS, 1, console=console, clock=clock, title="ensemble") as d:
        assert d.live
        d.started(A)
        d.epoch(A, "finetune-asc", 7, {"asc": 0.625})
        clock.t = 5
        d.started(B)
        d.finished(B)
    out = console.file.getvalue()
    final = out[out.rindex("ensemble: ") :]  # the last frame
    assert "ensemble: 2/4 done, 1 running, 0 failed, 1 queued" in final
    for unit, state in ((A, "running"), (B, "done"), (C, "queued")):
        row = next(line for line in final.splitlines() if unit in line)
        assert state in row
    assert "finetune-asc" in final and "0.625" in final


def test_on_a_terminal_a_failure_is_printed_above_the_table_and_logged_nowhere_else(caplog):
    console = terminal()
    with L.GridDisplay(UNITS, 0, console=console, clock=Clock()) as d:
        d.started(A)
        d.failed(A, "RuntimeError: boom")
    assert f"grid: FAILED {A}: RuntimeError: boom" in console.file.getvalue()
    assert lines(caplog) == []


def test_a_long_grid_shows_its_first_rows_and_counts_the_rest():
    units = [f"member-d{d}-r{r}-triple" for d in range(1, 5) for r in range(1, 4)]
    table = L.render_grid(L.GridState(units, clock=Clock()), "grid", max_rows=4)
    console = terminal()
    console.print(table)
    out = console.file.getvalue()
    assert sum(u in out for u in units) == 4
    assert "... 8 more queued, 0 more done" in out


# ---------------------------------------------------------------- progress bar


def test_count_progress_logs_counts_and_an_eta_at_most_once_a_period(caplog):
    caplog.set_level(logging.INFO, logger=L.log.name)
    clock = Clock()
    stream = io.StringIO()  # not a terminal
    with L.count_progress("featurize", 10, unit="clips", stream=stream, every_s=30, clock=clock) as bar:
        for t in (10, 20, 31, 40):
            clock.t = t
            bar.advance()
        clock.t = 50
        bar.update(10)
    assert [m for _, m in lines(caplog)] == [
        "featurize: 3/10 clips, 31s, ETA 1m12s",
        "featurize: 10/10 clips in 50s",
    ]


def test_count_progress_reads_a_polled_count():
    counts = iter([2, 5, 7, 7, 7])
    with L.count_progress("x", 7, poll=lambda: next(counts, 7), poll_every_s=0.01, console=terminal()) as bar:
        deadline = time.monotonic() + 10
        while bar.done < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert bar.done == 7


def test_count_progress_renders_a_bar_with_counts_on_a_terminal():
    console = terminal()
    with L.count_progress("featurize", 4, unit="clips", console=console) as bar:
        bar.advance(3)
    assert "featurize" in console.file.getvalue() and "3/4" in console.file.getvalue()
