"""Ray Jobs: a real local cluster (`ray start --head` on loopback, with its job server), a small
ensemble submitted with `JobSubmissionClient` through `jobs/ensemble.py`, then `jobs/reduce.py`."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raymtl.config import PRESETS

pytestmark = pytest.mark.training

REPO = Path(__file__).resolve().parents[2]
# The smallest run that still goes through both stages: one epoch each, few patches.
JOB_PRESET = dataclasses.replace(
    PRESETS["tiny"],
    name="jobs-test",
    train=dataclasses.replace(
        PRESETS["tiny"].train,
        epochs_train_asc=1,
        epochs_train_aec=1,
        epochs_finetune_asc=1,
        epochs_finetune_aec=1,
        max_train_patches=256,
    ),
)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster of its own (own ports and temp dir, beside the test session's
    instance), stopped at the end by stopping `ray start --block`."""
    from ray.job_submission import JobSubmissionClient

    tmp = tmp_path_factory.mktemp("cluster")
    gcs, dash, agent = _free_ports(3)
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    head = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--dashboard-agent-listen-port={agent}",
            "--num-cpus=2",
            "--num-gpus=0",
            f"--temp-dir={Path('/tmp') / ('rt' + str(gcs))}",  # short: Unix socket paths are length-limited
        ],
        stdout=open(tmp / "head.log", "w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    client, deadline = None, time.monotonic() + 120
    while client is None:
        if head.poll() is not None:
            pytest.fail(
                f"ray start --head exited {head.returncode}:\n{(tmp / 'head.log').read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"the job server at {address} did not come up:\n{(tmp / 'head.log').read_text()[-3000:]}"
            )
        try:
            client = JobSubmissionClient(address)
            client.list_jobs()
        except Exception:
            client = None
            time.sleep(1)
    yield client
    # `ray start --block` stops its processes on SIGTERM, but takes ~30 s over it: a throwaway
    # cluster, so its process group is killed after a few seconds' grace.
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)


def _run_job(client, entrypoint: str, timeout_s: float = 600) -> tuple[str, str]:
    from ray.job_submission import JobStatus

    job = client.submit_job(
        entrypoint=entrypoint,
        runtime_env={"working_dir": str(REPO), "excludes": [".venv/", ".git/", "bench-out/", "demo-out/"]},
    )
    deadline = time.monotonic() + timeout_s
    while (status := client.get_job_status(job)) not in {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
    }:
        if time.monotonic() > deadline:
            client.stop_job(job)
            pytest.fail(f"job {job} still {status} after {timeout_s} s:\n{client.get_job_logs(job)[-3000:]}")
        time.sleep(1)
    return status, client.get_job_logs(job)


def test_submitted_ensemble_and_reduce_jobs_write_the_run(cluster, tiny_features, tmp_path):
    from ray.job_submission import JobStatus

    run, preset = tmp_path / "RUN", tmp_path / "jobs-test.json"
    preset.write_text(json.dumps(JOB_PRESET.to_dict()))
    status, logs = _run_job(
        cluster,
        f"{sys.executable} jobs/ensemble.py --features {tiny_features} --out {run} --preset {preset} "
        "--divisions 1 --repeats 1 --variants triple --tasks asc",
    )
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "1 members in" in logs and "1 trained now" in logs
    for trial in ("mtl-ic-d1-r1-triple", "finetune-asc-d1-r1-triple"):
        result = json.loads((run / "trials" / trial / "result.json").read_text())
        assert result["preset"] == "jobs-test" and 0 <= result["test_accuracy"]["asc"] <= 1

    status, logs = _run_job(cluster, f"{sys.executable} jobs/reduce.py {run}")
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    summary = json.loads((run / "ensemble" / "summary.json").read_text())
    assert list(summary["tasks"]) == ["asc"] and summary["tasks"]["asc"]["n_members"] == 1
    assert f"{100 * summary['tasks']['asc']['ensemble_accuracy']:.1f}%" in logs
