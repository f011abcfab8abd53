"""S3 as the shared storage, for real: an S3 server on loopback (moto's server mode) and the
whole pipeline on `s3://` URIs on the local autoscaling cluster, every step the command a user
runs: featurize -> ensemble -> reduce -> results -> predict. Nothing the RUN records may name a
local path: manifest, result.json, model files and Train checkpoints name only s3:// URIs."""

from __future__ import annotations

import json
import subprocess

import pyarrow.fs as pafs
import pytest

from tests.cluster.conftest import ACCEL, RAYMTL, s3_meter
from tests.results.servers import cli_server, request

pytestmark = pytest.mark.cluster

TRIALS = ("mtl-ic-d1-r1-triple", "finetune-asc-d1-r1-triple")
MEMBER_RUN = "member-d1-r1-triple"


def _difference(after: dict, before: dict) -> dict[str, tuple[int, int, int]]:
    return {k: tuple(a - b for a, b in zip(v, before.get(k, (0, 0, 0)))) for k, v in after.items()}


@pytest.fixture(scope="module")
def on_s3(s3, autoscaling_cluster, tiny_data, cluster_preset, tmp_path_factory):
    bucket, _ = s3
    _, env, _ = autoscaling_cluster
    features, run = f"{bucket}/features", f"{bucket}/runs/r1"
    audio = sorted((tiny_data / "tut2017-eval" / "audio").glob("*.wav"))[0]
    steps = {
        "featurize": [
            "featurize",
            "--esc",
            str(tiny_data / "esc50"),
            "--tut-dev",
            str(tiny_data / "tut2017-dev"),
            "--tut-eval",
            str(tiny_data / "tut2017-eval"),
            "--out",
            features,
        ],
        "ensemble": [
            "ensemble",
            "--features",
            features,
            "--out",
            run,
            "--preset",
            str(cluster_preset),
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
        ],
        "reduce": ["reduce", run],
        "results": ["results", run, "--format", "json"],
        "predict": ["predict", run, str(audio), "--format", "json"],
    }
    done, logs, meter = {}, tmp_path_factory.mktemp("s3-steps"), {}
    for name, args in steps.items():
        before = s3_meter(env)
        done[name] = subprocess.run([RAYMTL, *args], env=env, capture_output=True, text=True, timeout=600)
        meter[name] = _difference(s3_meter(env), before)
        (logs / f"{name}.log").write_text(done[name].stdout + done[name].stderr)
        if done[name].returncode != 0:
            break
    fs, path = pafs.FileSystem.from_uri(run)
    return run, done, fs, path, _file_sizes(fs, path), meter


def _file_sizes(fs, folder: str) -> dict[str, int]:
    """Size of every file under `folder`, by its path below it."""
    return {
        i.path[len(folder) + 1 :]: i.size
        for i in fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
        if i.type == pafs.FileType.File
    }


def test_the_pipeline_runs_on_s3(on_s3):
    run, done, fs, path, files, meter = on_s3
    for name, proc in done.items():
        assert proc.returncode == 0, f"{name}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert list(done) == ["featurize", "ensemble", "reduce", "results", "predict"]
    for trial in TRIALS:
        assert f"trials/{trial}/result.json" in files and f"trials/{trial}/model-asc.pt" in files
    assert "ensemble/summary.json" in files and not any(k.endswith("driver.lock") for k in files)
    assert json.loads(done["predict"].stdout)  # predictions for the file, read from the S3 RUN


def test_no_local_path_leaks_into_the_run_records(on_s3, tiny_data, cluster_preset):
    run, done, fs, path, files, meter = on_s3
    manifest = json.loads(fs.open_input_stream(f"{path}/manifest.json").read())
    assert manifest["features"].startswith("s3://")
    for trial in TRIALS:
        result = json.loads(fs.open_input_stream(f"{path}/trials/{trial}/result.json").read())
        assert all(u.startswith("s3://") for u in result["models"].values())
        assert all(u is None or u.startswith("s3://") for u in result["stage1"].values())
    # No file that raymtl or Ray Train wrote for the RUN (records, models, checkpoints) names a
    # local folder of this test: the data, the preset file or the temp dirs.
    local = [str(tiny_data), str(cluster_preset.parent), "/tmp/pytest-of-"]
    ours = [
        k
        for k in files
        if k.startswith(("trials/", "ensemble/", f"ray/{MEMBER_RUN}/")) or k == "manifest.json"
    ]
    assert any(k.startswith(f"ray/{MEMBER_RUN}/checkpoint_") for k in ours)
    leaks = {k: [p for p in local if p.encode() in fs.open_input_stream(f"{path}/{k}").read()] for k in ours}
    assert not {k: v for k, v in leaks.items() if v}


def test_bytes_written_to_s3_per_member(on_s3):
    """The figure the issue asks for: what one member leaves on S3 (trial folders, and Ray
    Train's kept checkpoints and state)."""
    run, done, fs, path, files, meter = on_s3
    trials = sum(v for k, v in files.items() if k.startswith("trials/"))
    train = sum(v for k, v in files.items() if k.startswith(f"ray/{MEMBER_RUN}/"))
    assert trials > 0 and train > 0
    print(f"S3 bytes written per member: trial folders {trials}, Train checkpoints and state {train}")


def test_bytes_read_from_s3_per_member(on_s3, s3):
    """What the one-member ensemble read over HTTP from S3, by the meter in front of the server:
    its training, validation and test patches come from FEATURES on S3, so it reads at least
    the Parquet files of its own splits, and no more than a few passes over all of FEATURES
    (epochs read the kept copy in the object store, not S3 again)."""
    run, done, fs, path, files, meter = on_s3
    ensemble = meter["ensemble"]
    features_read = ensemble.get("GET features", (0, 0, 0))[2]
    run_read = ensemble.get("GET runs", (0, 0, 0))[2]
    run_written = sum(
        v[1] for k, v in ensemble.items() if k.split()[0] in ("PUT", "POST") and k.endswith("runs")
    )
    _, features = pafs.FileSystem.from_uri(f"{s3[0]}/features")
    on_s3_features = sum(v for k, v in _file_sizes(fs, features).items() if k.endswith(".parquet"))
    assert on_s3_features > 0
    assert 0 < features_read <= 4 * on_s3_features, (features_read, on_s3_features)
    assert run_written >= sum(v for k, v in files.items() if k.startswith("trials/")), ensemble
    print(
        f"S3 per member (tiny preset, 1 member = mtl-ic + finetune-asc): read {features_read} bytes of "
        f"FEATURES ({features_read / on_s3_features:.2f}x its {on_s3_features} bytes of Parquet) and "
        f"{run_read} bytes of the RUN; wrote {run_written} bytes to the RUN"
    )


def test_the_dashboard_reads_the_s3_run(on_s3):
    """`raymtl dashboard s3://…` as a user starts it: the page, and the run's numbers in its API
    equal to what `raymtl results` printed from the same S3 RUN."""
    run, done, fs, path, files, meter = on_s3
    results = json.loads(done["results"].stdout)
    with cli_server([run]) as (port, _):
        status, _, page = request(port, "/")
        assert status == 200 and b"<html" in page.lower()
        status, _, body = request(port, "/api/overview")
        assert status == 200
        overview = json.loads(body)
        status, _, body = request(port, "/api/tables")
        assert status == 200
        tables = json.loads(body)
    (listed,) = overview["runs"]
    assert listed["uri"] == run and listed["reduced"] and listed["ensemble"]
    assert tables["table1"] == results["table1"] and tables["table2"] == results["table2"]
