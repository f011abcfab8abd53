"""Fixtures of the multi-node tests: the smallest preset that still runs both stages, written
as a preset file for the drivers these tests start in subprocesses."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raymtl.config import PRESETS
from tests.cluster.local_cluster import LocalAutoscalingCluster

# tiny's network, one epoch per stage on 128 training patches: a member is mostly Ray start-up.
CLUSTER_PRESET = dataclasses.replace(
    PRESETS["tiny"],
    name="cluster-test",
    train=dataclasses.replace(
        PRESETS["tiny"].train,
        epochs_train_asc=1,
        epochs_train_aec=1,
        epochs_finetune_asc=1,
        epochs_finetune_aec=1,
        max_train_patches=128,
    ),
)
# Two members (division 1, repeat 1, both variants), ASC only: mtl-ic then finetune-asc each.
PLAN_ARGS = ["--divisions", "1", "--repeats", "1", "--variants", "triple,quadruple", "--tasks", "asc"]
RAYMTL = str(Path(sys.executable).with_name("raymtl"))  # the console script, as users run it
ACCEL = "accel"  # the custom resource that stands in for a GPU on the accelerator nodes
# Two CPUs, as a GPU node has more CPUs than its Train worker takes: a member's Tune trial (0.01
# CPU) that lands on a node must leave room there for a Train worker's full CPU, or a member
# whose node is lost cannot restart on the node that is left.
WORKER_TYPES = {"accel_worker": {"resources": {"CPU": 2, ACCEL: 1}, "max_workers": 2}}


@pytest.fixture(scope="package")
def s3(tmp_path_factory):
    """An S3 server on loopback (moto's server mode, behind the byte meter of
    tests/cluster/s3_server.py) with an empty bucket: (bucket URI, the environment that points
    pyarrow, and so Ray and raymtl, at it). pyarrow reads the endpoint from AWS_ENDPOINT_URL_S3,
    as the AWS SDKs do."""
    import urllib.request

    import pyarrow.fs as pafs

    from tests.cluster.local_cluster import free_ports

    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.s3_server", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(env["AWS_ENDPOINT_URL_S3"], timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"moto_server exited {server.returncode}: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        os.environ.update(env)  # this process reads and checks the bucket through pyarrow too
        fs, _ = pafs.FileSystem.from_uri("s3://raymtl-test?allow_bucket_creation=true")
        fs.create_dir("raymtl-test")
        yield "s3://raymtl-test", env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_process_group(server)


@pytest.fixture(scope="package")
def autoscaling_cluster(s3, tmp_path_factory):
    """A CPU-only head (1 CPU) and up to two accelerator worker nodes (2 CPUs + 1 `accel` each),
    none up at the start, with its node types published as cluster.yaml does; shared by the
    tests of this package (the autoscaling test runs first, while no worker node is up):
    (cluster, the environment of a driver on it, the head's node id)."""
    tmp = tmp_path_factory.mktemp("local-cluster")
    with LocalAutoscalingCluster(tmp, {"CPU": 1}, WORKER_TYPES, extra_env=s3[1]) as cluster:
        env = {**cluster.env(), "RAY_ADDRESS": cluster.address}
        (head,) = [n["node_id"] for n in cluster.nodes()]
        publish = subprocess.run(
            [RAYMTL, "cluster-config", str(cluster.config_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert publish.returncode == 0, publish.stderr[-3000:]
        yield cluster, env, head


@pytest.fixture(scope="session")
def cluster_preset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cluster-preset") / "cluster-test.json"
    path.write_text(json.dumps(CLUSTER_PRESET.to_dict()))
    return path


def s3_meter(env: dict) -> dict[str, tuple[int, int, int]]:
    """The S3 server's byte meter so far: {"GET features": (requests, bytes sent, bytes received
    back), ...} by method and the key's first folder (tests/cluster/s3_server.py)."""
    import urllib.request

    from tests.cluster.s3_server import METER_PATH

    with urllib.request.urlopen(env["AWS_ENDPOINT_URL_S3"] + METER_PATH, timeout=10) as r:
        return {k: tuple(v) for k, v in json.loads(r.read()).items()}


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL a driver started with start_new_session=True, and everything it started there."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
