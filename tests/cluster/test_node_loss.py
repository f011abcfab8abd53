"""A worker node lost mid-member, on the local autoscaling cluster with the RUN on S3 (moto's
server on loopback, `s3` in conftest.py).

One member (division 1, repeat 1, triple, ASC) trains with `--accelerator accel`. Once its
stage 1 has a checkpoint registered (and is not finished), the raylet of the worker node that
runs its Train worker is killed (SIGKILL): the node, and every process on it, is gone. The member
must resume on another node from its last checkpoint, `result.json` must record the resume and
both nodes, no epoch may be trained or recorded twice, and `raymtl reduce` must give the accuracy
that the stored scores give when recounted here.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from raymtl.config import PRESETS
from tests.cluster.conftest import ACCEL, RAYMTL, stop_process_group

pytestmark = pytest.mark.cluster

# Three stage-1 epochs: the node is lost after the first checkpoint, with epochs left to resume.
NODE_LOSS_PRESET = dataclasses.replace(
    PRESETS["tiny"],
    name="node-loss-test",
    train=dataclasses.replace(
        PRESETS["tiny"].train,
        epochs_train_asc=3,
        epochs_train_aec=3,
        epochs_finetune_asc=1,
        max_train_patches=384,
    ),
)
STAGE1, FINETUNE = "mtl-ic-d1-r1-triple", "finetune-asc-d1-r1-triple"
MEMBER_RUN = "member-d1-r1-triple"
TIMEOUT_S = 600


class Bucket:
    """Reading the RUN on S3 the way raymtl does, through pyarrow."""

    def __init__(self, uri: str):
        self.fs, self.path = pafs.FileSystem.from_uri(uri)

    def read(self, rel: str) -> bytes:
        with self.fs.open_input_stream(f"{self.path}/{rel}") as f:
            return f.read()

    def json(self, rel: str):
        return json.loads(self.read(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(f"{self.path}/{rel}").type != pafs.FileType.NotFound

    def listdir(self, rel: str) -> list[str]:
        return [i.base_name for i in self.fs.get_file_info(pafs.FileSelector(f"{self.path}/{rel}"))]


def _registered_checkpoint(run: Bucket, trial: str) -> bool:
    """Ray Train has registered a checkpoint of `trial` (the folder alone appears earlier)."""
    try:
        snapshot = run.json(f"ray/{MEMBER_RUN}/checkpoint_manager_snapshot.json")
    except (OSError, ValueError):
        return False
    return ((snapshot.get("latest_checkpoint_result") or {}).get("metrics") or {}).get("trial") == trial


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _raylet_of_train_worker(cluster) -> tuple[int, str] | None:
    """(pid, node id) of the raylet whose node runs the Train worker, or None before it runs."""
    for pid in cluster.processes():
        if b"RayTrainWorker" not in _cmdline(pid):
            continue
        p = pid
        while p > 1:
            cmd = _cmdline(p)
            if b"/raylet/raylet" in cmd.split(b"\0")[0]:
                node = next(a for a in cmd.split(b"\0") if a.startswith(b"--node_id="))
                return p, node.split(b"=", 1)[1].decode()
            p = _parent(p)
    return None


@pytest.fixture(scope="module")
def node_lost(s3, autoscaling_cluster, tiny_features, tmp_path_factory):
    cluster, env, head = autoscaling_cluster
    tmp = tmp_path_factory.mktemp("node-loss")
    uri, preset = f"{s3[0]}/runs/node-loss", tmp / "node-loss-test.json"
    run = Bucket(uri)
    preset.write_text(json.dumps(NODE_LOSS_PRESET.to_dict()))
    cmd = [
        RAYMTL,
        "ensemble",
        "--features",
        str(tiny_features),
        "--out",
        uri,
        "--preset",
        str(preset),
        "--divisions",
        "1",
        "--repeats",
        "1",
        "--variants",
        "triple",
        "--tasks",
        "asc",
        "--accelerator",
        ACCEL,
    ]
    seen: dict = {"head": head}
    log = tmp / "driver.log"
    with open(log, "w") as f:
        driver = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not _registered_checkpoint(run, STAGE1):
            if driver.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"no stage-1 checkpoint (driver exit {driver.returncode}):\n{log.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        seen["stage1_finished_at_kill"] = run.exists(f"trials/{STAGE1}/result.json")
        raylet = _raylet_of_train_worker(cluster)
        assert raylet is not None, "no Train worker process found"
        seen["killed_pid"], seen["killed_node"] = raylet
        os.kill(raylet[0], signal.SIGKILL)
        seen["killed_at"] = time.time()
        driver.wait(timeout=TIMEOUT_S)
    finally:
        stop_process_group(driver)
    seen["returncode"], seen["log"] = driver.returncode, log.read_text()
    seen["reduce"] = subprocess.run(
        [RAYMTL, "reduce", uri], env=env, capture_output=True, text=True, timeout=300
    )
    return run, seen


def _result(run: Bucket, trial: str) -> dict:
    return run.json(f"trials/{trial}/result.json")


def test_the_member_resumes_on_another_node_from_its_checkpoint(node_lost):
    run, seen = node_lost
    assert seen["returncode"] == 0, seen["log"][-4000:]
    assert not seen["stage1_finished_at_kill"] and seen["killed_node"] != seen["head"]
    stage1 = _result(run, STAGE1)
    assert stage1["resumed_after_epoch"], "stage 1 started again from scratch"
    first, last = stage1["placements"][0], stage1["placements"][-1]
    assert first["node_id"] == seen["killed_node"]
    assert last["node_id"] not in (seen["killed_node"], seen["head"]) and last["from_epoch"] >= 1
    assert all(p["resources"].get(ACCEL) == 1.0 for p in stage1["placements"])
    assert _result(run, FINETUNE)["placement"]["node_id"] != seen["head"]


def test_nothing_is_trained_or_recorded_twice(node_lost):
    run, seen = node_lost
    epochs = [
        json.loads(line)["epoch"] for line in run.read(f"trials/{STAGE1}/metrics.jsonl").decode().splitlines()
    ]
    assert epochs == [0, 1, 2]
    assert sorted(run.listdir("trials")) == sorted([STAGE1, FINETUNE])
    assert "1 members in" in seen["log"] and "0 already done, 1 trained now" in seen["log"]


def test_reduce_after_the_node_loss_matches_a_recount_of_the_scores(node_lost):
    run, seen = node_lost
    assert seen["reduce"].returncode == 0, seen["reduce"].stderr[-3000:]
    summary = run.json("ensemble/summary.json")
    table = pq.read_table(f"{run.path}/trials/{FINETUNE}/scores.parquet", filesystem=run.fs).to_pydict()
    # Recount: each recording's patches vote with their argmax; ties go to the larger summed score.
    votes, sums, labels = collections.defaultdict(collections.Counter), {}, {}
    for clip, label, scores in zip(table["clip"], table["label"], table["scores"]):
        votes[clip][int(np.argmax(scores))] += 1
        sums[clip] = sums.get(clip, 0) + np.asarray(scores, dtype=np.float64)
        labels[clip] = label
    correct = 0
    for clip, counter in votes.items():
        top = max(counter.values())
        tied = [c for c, n in counter.items() if n == top]
        correct += max(tied, key=lambda c: sums[clip][c]) == labels[clip]
    accuracy = correct / len(votes)
    assert summary["tasks"]["asc"]["ensemble_accuracy"] == pytest.approx(accuracy)
    assert _result(run, FINETUNE)["test_accuracy"]["asc"] == pytest.approx(accuracy)
