"""One driver per RUN: the lock in RUN/ensemble/driver.lock, its owner record and stale rule."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from raymtl.ensemble import lock as L


def _write_owner(run, **owner):
    path = run / "ensemble" / L.LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path.write_text(json.dumps({"host": socket.gethostname(), "started": now, "heartbeat": now, **owner}))
    return path


def test_the_lock_records_its_owner_and_is_removed_at_the_end(tmp_path):
    run = tmp_path / "RUN"
    with L.RunLock(str(run), command="raymtl ensemble ...") as held:
        owner = json.loads((run / "ensemble" / L.LOCK_FILE).read_text())
        assert owner["host"] == socket.gethostname() and owner["pid"] == held._record()["pid"]
        assert owner["command"] == "raymtl ensemble ..." and owner["heartbeat"] >= owner["started"]
    assert not (run / "ensemble" / L.LOCK_FILE).exists()


def test_a_second_driver_refuses_while_the_owner_lives(tmp_path):
    run = tmp_path / "RUN"
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = _write_owner(run, pid=owner.pid, command="raymtl ensemble --out RUN")
        with pytest.raises(L.RunLockedError) as e:
            L.RunLock(str(run)).acquire()
        message = str(e.value)
        assert f"pid {owner.pid}" in message and socket.gethostname() in message
        assert "raymtl ensemble --out RUN" in message and str(path) in message
        assert path.exists()  # left alone
    finally:
        owner.kill()
        owner.wait()


def test_a_lock_whose_driver_is_gone_is_taken_over(tmp_path, caplog):
    run = tmp_path / "RUN"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_owner(run, pid=gone.pid)
    with L.RunLock(str(run)) as held:
        assert json.loads((run / "ensemble" / L.LOCK_FILE).read_text())["token"] == held.token
    assert "stale lock" in caplog.text and "is gone" in caplog.text


def test_a_lock_from_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path):
    run = tmp_path / "RUN"
    now = time.time()
    fresh = {"host": "elsewhere", "pid": 1, "started": now - 1000, "heartbeat": now - 10}
    assert L.stale_reason(fresh, now) is None
    assert "heartbeat" in L.stale_reason({**fresh, "heartbeat": now - L.STALE_AFTER_S - 1}, now)
    _write_owner(run, **fresh)
    with pytest.raises(L.RunLockedError, match="host elsewhere"):
        L.RunLock(str(run)).acquire()
