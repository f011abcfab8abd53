"""The ensemble on a local autoscaling cluster: a CPU-only head and up to two accelerator worker
nodes, none up at the start (`tests/cluster/local_cluster.py`).

The driver is the README's cluster command, `raymtl ensemble`, run in a subprocess against the
cluster (this process keeps the test session's own Ray instance), with one flag a real cluster
does not need: `--accelerator accel`, the custom resource that stands in for a GPU here. The
autoscaling config is published to the cluster first (`raymtl cluster-config`), as cluster.yaml
does after `ray start --head`. While it trains, a second driver on the same RUN must refuse.
(On one machine, with no node types to add, the same plan trains two members at once at half a
CPU each: tests/ensemble/test_grid.py checks it on the tests' ensemble.)
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import ACCEL, PLAN_ARGS, RAYMTL, stop_process_group
from tests.conftest import add_span

pytestmark = pytest.mark.cluster

TRIALS = [f"{e}-d1-r1-{v}" for v in ("triple", "quadruple") for e in ("mtl-ic", "finetune-asc")]
TIMEOUT_S = 900


@pytest.fixture(scope="module")
def autoscaled(autoscaling_cluster, tiny_features, cluster_preset, tmp_path_factory):
    """Everything observed while the two-member ensemble trains on the local autoscaling
    cluster: the node count over time, both drivers' outputs, the head's node id."""
    cluster, env, head = autoscaling_cluster
    tmp = tmp_path_factory.mktemp("autoscaling")
    run = tmp / "RUN"
    seen: dict = {"timeline": [], "head": head}
    cmd = [
        RAYMTL,
        "ensemble",
        "--features",
        str(tiny_features),
        "--out",
        str(run),
        "--preset",
        str(cluster_preset),
        *PLAN_ARGS,
        "--accelerator",
        ACCEL,
    ]
    log = tmp / "driver.log"
    t0 = time.monotonic()
    with open(log, "w") as f:
        driver = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        lock = run / "ensemble" / "driver.lock"
        while driver.poll() is None:
            if time.monotonic() - t0 > TIMEOUT_S:
                pytest.fail(f"the ensemble did not finish in {TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            seen["timeline"].append((round(time.monotonic() - t0, 1), len(cluster.nodes())))
            if "second" not in seen and lock.is_file():
                # A second driver on the same RUN while the first holds it.
                seen["owner"] = json.loads(lock.read_text())
                seen["second"] = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            time.sleep(1.0)
        seen["wall_s"] = time.monotonic() - t0
    finally:
        stop_process_group(driver)
    seen["returncode"], seen["log"] = driver.returncode, log.read_text()
    if seen["returncode"] == 0:
        (tmp / "figures.json").write_text(json.dumps(_figures(run, seen), indent=1))
    return run, seen


def _result(run: Path, trial: str) -> dict:
    return json.loads((run / "trials" / trial / "result.json").read_text())


def _figures(run: Path, seen: dict) -> dict:
    """The issue's figures: nodes over time, members per node, wall time."""
    per_node: dict = {}
    for trial in TRIALS:
        r = _result(run, trial)
        per_node.setdefault(r["placement"]["node_id"], set()).add(trial.split("-d1-r1-")[1])
    changes = [seen["timeline"][0]] + [
        b for a, b in zip(seen["timeline"], seen["timeline"][1:]) if a[1] != b[1]
    ]
    return {
        "nodes_over_time_s": changes,
        "members_per_node": {k[-5:]: sorted(v) for k, v in per_node.items()},
        "wall_s": round(seen["wall_s"], 1),
    }


def test_the_autoscaler_adds_both_accelerator_nodes_for_the_queued_members(autoscaled):
    run, seen = autoscaled
    assert seen["returncode"] == 0, seen["log"][-4000:]
    counts = [n for _, n in seen["timeline"]]
    assert counts[0] == 1, f"worker nodes were up before the ensemble asked for them: {seen['timeline'][:5]}"
    assert max(counts) == 3, f"the autoscaler did not add both accelerator nodes: {_figures(run, seen)}"
    # Planned from the node types the cluster can add, not from the (CPU-only) head up at start.
    assert f"up to 2 members at once, 1 CPU and 1 {ACCEL} per Train worker" in seen["log"]
    print("autoscaling figures:", json.dumps(_figures(run, seen)))  # also in figures.json beside RUN


def test_members_train_on_both_worker_nodes_at_once_and_none_on_the_head(autoscaled):
    run, seen = autoscaled
    assert seen["returncode"] == 0, seen["log"][-4000:]
    spans, nodes = {}, {}
    for trial in TRIALS:
        r = _result(run, trial)
        assert r["placement"]["node_id"] != seen["head"] and r["placement"]["node_ip"] == "127.0.0.1"
        for p in r["placements"]:
            assert p["node_id"] != seen["head"], f"{trial} trained on the head"
            assert p["resources"].get(ACCEL) == 1.0 and p["device"] == "cpu"  # a fake GPU: no CUDA
        member = trial.split("-d1-r1-")[1]
        nodes.setdefault(member, set()).add(r["placement"]["node_id"])
        add_span(spans, member, r)
    # Each member's stages ran on one worker node, the two members on different ones ...
    assert all(len(v) == 1 for v in nodes.values()) and len(set.union(*nodes.values())) == 2, nodes
    # ... at the same time.
    (a0, a1), (b0, b1) = spans.values()
    assert max(a0, b0) < min(a1, b1), f"the members ran one after the other: {spans}"


def test_a_second_driver_on_the_same_run_refuses(autoscaled):
    run, seen = autoscaled
    second, owner = seen["second"], seen["owner"]
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    assert "is being trained by another `raymtl ensemble`" in second.stderr
    assert f"pid {owner['pid']}" in second.stderr and f"host {owner['host']}" in second.stderr
    assert not (run / "ensemble" / "driver.lock").exists()  # released by the first at its end
