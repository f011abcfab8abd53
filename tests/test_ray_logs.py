"""Ray's own logs routed off the terminal (raymtl.ray_logs): to RUN/logs/ray.log, errors still on
the terminal, everything on the terminal with --verbose. Records are logged on Ray's loggers by
hand; no Ray instance is started.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest
from ray._private.ray_logging import setup_logger

from raymtl import ray_logs
from raymtl.run import layout


@pytest.fixture
def ray_console():
    """Stands in for the console handlers Ray puts on its "ray" and "ray.data" loggers (under
    pytest they write to a stream captured at import time)."""
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    loggers = [logging.getLogger(name) for name in ("ray", "ray.data")]
    for lg in loggers:
        lg.addHandler(handler)
    yield console
    for lg in loggers:
        lg.removeHandler(handler)


@pytest.fixture
def route(monkeypatch, ray_console):
    """route(run, verbose) -> (the routing, the terminal stream); undone after the test."""
    for name in ("RAY_DATA_DISABLE_PROGRESS_BARS", "RAY_AIR_NEW_OUTPUT"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    made = []

    def make(run, verbose=False):
        terminal = io.StringIO()
        made.append(ray_logs.route_ray_logs(None if run is None else str(run), verbose, stream=terminal))
        return made[-1], terminal

    yield make
    for r in reversed(made):
        r.undo()


def read(path: Path) -> str:
    for h in logging.getLogger("ray").handlers:
        h.flush()
    return path.read_text() if path.exists() else ""


def test_ray_data_records_go_to_the_run_and_not_to_the_terminal(route, tmp_path, ray_console):
    r, terminal = route(tmp_path / "run")
    assert r.path == Path(layout.ray_log(str(tmp_path / "run")))
    logging.getLogger("ray.data").info("Execution plan of Dataset dataset_1: InputDataBuffer -> Write")
    logging.getLogger("ray.tune").warning("a Tune warning")
    text = read(r.path)
    assert "INFO ray.data: Execution plan of Dataset dataset_1" in text
    assert "WARNING ray.tune: a Tune warning" in text
    assert terminal.getvalue() == "" and ray_console.getvalue() == ""


def test_ray_init_keeps_our_format(route, tmp_path):
    r, terminal = route(tmp_path / "run")
    setup_logger(logging.INFO, "%(filename)s -- %(message)s")  # what ray.init does
    logging.getLogger("ray.train").error("worker 0 died")
    assert "ERROR ray.train: worker 0 died" in terminal.getvalue()
    assert "ERROR ray.train: worker 0 died" in read(r.path)


def test_ray_errors_still_reach_the_terminal(route, tmp_path):
    r, terminal = route(tmp_path / "run")
    logging.getLogger("ray.train").error("worker 0 died")
    logging.getLogger("ray.data").error("a read task failed")
    assert terminal.getvalue().count("\n") == 2
    assert "worker 0 died" in terminal.getvalue() and "a read task failed" in terminal.getvalue()
    assert "ERROR ray.train: worker 0 died" in read(r.path)


def test_ray_records_never_reach_the_root_logger(route, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    route(tmp_path / "run")
    logging.getLogger("ray.data").error("a read task failed")
    assert [r for r in caplog.records if r.name == "ray" or r.name.startswith("ray.")] == []


def test_nothing_is_written_to_the_run_before_ray_says_something(route, tmp_path):
    route(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_with_verbose_ray_logs_reach_the_terminal_as_ray_sets_them_up(route, tmp_path, ray_console):
    r, terminal = route(tmp_path / "run", verbose=True)
    assert r.path is None and ray_logs.log_to_driver()
    logging.getLogger("ray.data").info("Execution plan of Dataset dataset_2")
    logging.getLogger("ray.train").error("worker 0 died")
    assert ray_console.getvalue() == "Execution plan of Dataset dataset_2\nworker 0 died\n"
    assert terminal.getvalue() == ""  # Ray's own handlers print them, not ours
    assert not (tmp_path / "run").exists()


def test_without_a_run_ray_warnings_reach_the_terminal_and_info_does_not(route):
    r, terminal = route(None)
    assert r.path is None
    logging.getLogger("ray.data").info("Execution plan of Dataset dataset_3")
    logging.getLogger("ray.data").warning("a slow read")
    assert "a slow read" in terminal.getvalue() and "dataset_3" not in terminal.getvalue()


def test_a_remote_run_logs_to_a_local_file_and_says_where(route, caplog):
    caplog.set_level(logging.INFO, logger=ray_logs.log.name)
    r, _ = route("s3://bucket/runs/paper")
    path, in_run = ray_logs.local_log_path("s3://bucket/runs/paper")
    assert r.path == path and not in_run
    assert path.parts[-3:] == ("s3_bucket_runs_paper", "logs", "ray.log")
    assert [m.getMessage() for m in caplog.records] == [
        f"Ray's logs of s3://bucket/runs/paper go to {path} (a remote RUN: kept on this machine)"
    ]


def test_worker_output_is_echoed_only_when_verbose_and_undo_restores_ray_logging(route, tmp_path):
    ray_logger = logging.getLogger("ray")
    before = list(ray_logger.handlers), ray_logger.propagate
    data_before = list(logging.getLogger("ray.data").handlers)
    r, _ = route(tmp_path / "run")
    assert not ray_logs.log_to_driver()
    r.undo()
    assert ray_logs.log_to_driver()
    assert (list(ray_logger.handlers), ray_logger.propagate) == before
    assert list(logging.getLogger("ray.data").handlers) == data_before


def test_without_verbose_ray_data_progress_bars_and_tune_console_output_are_off(route, tmp_path):
    route(tmp_path / "run")
    assert os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] == "1" and os.environ["RAY_AIR_NEW_OUTPUT"] == "0"
    assert not ray_logs.DataContext.get_current().enable_progress_bars


def test_routing_again_replaces_the_first(route, tmp_path):
    first, _ = route(tmp_path / "a")
    second, _ = route(tmp_path / "b")
    logging.getLogger("ray.data").info("hello")
    assert "hello" in read(second.path) and read(first.path) == ""
