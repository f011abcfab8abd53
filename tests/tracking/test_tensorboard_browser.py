"""TensorBoard itself on the tiny ensemble's RUN/tb: `tensorboard --logdir RUN/tb` as a user starts
it, its scalars page opened in the dashboard test's headless chromium. The page must list every
trial's run and the ensemble's and, filtered to val_acc, draw both tasks' validation accuracy;
its screenshot is kept in the test's tmp folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.results.servers import free_port, wait_until_ready

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def tensorboard(logdir, log_path, timeout_s: float = 300):
    """`tensorboard --logdir LOGDIR` on loopback; yields its URL once it lists every run."""
    port = free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
    cmd += ["--port", str(port)]
    runs = sorted(p.name for p in logdir.iterdir())
    url = f"http://127.0.0.1:{port}"

    def lists_every_run() -> bool:
        with urllib.request.urlopen(f"{url}/data/runs", timeout=5) as r:
            return sorted(json.loads(r.read())) == runs

    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_ready(
                lists_every_run,
                proc,
                f"tensorboard with the runs {runs}",
                timeout_s,
                1,
                log_path.read_text,
            )
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)


def test_tensorboards_scalars_page_shows_every_trial_and_the_ensemble(browser, tiny_ensemble, tmp_path):
    run, code, out, reduce_code, _ = tiny_ensemble
    assert code == 0 and reduce_code == 0, out
    trials = sorted(p.name for p in (run / "trials").iterdir())
    with tensorboard(run / "tb", tmp_path / "tensorboard.log") as url:
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        try:
            page.goto(f"{url}/#scalars", timeout=120_000)
            # the runs table beside the charts: one row per event folder
            for name in [*trials, "ensemble"]:
                page.get_by_text(name, exact=True).first.wait_for(timeout=120_000)
            # the charts: one section per metric, one card per tag; the tag filter opens those of val_acc
            page.get_by_label("Filter tags (regular expressions supported)").fill("val_acc")
            for tag in ("val_acc/asc", "val_acc/aec"):
                page.get_by_text(tag, exact=True).first.wait_for(timeout=120_000)
            time.sleep(2)  # let the charts draw their lines before the picture
            shot = tmp_path / "tensorboard-scalars.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            assert shot.stat().st_size > 10_000
        finally:
            page.close()
