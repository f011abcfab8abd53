"""MLflow tracking (raymtl.tracking) against a real `mlflow server` on loopback with a SQLite store:
one MLflow run per trial in the RUN's experiment, its tags, params and per-epoch metrics equal to
the RUN's own records, a resumed trial continuing its run, and `raymtl reduce`'s `ensemble` run."""

from __future__ import annotations

import json
import sys

import pytest
from mlflow.tracking import MlflowClient

from raymtl import tracking
from raymtl.cli import main
from raymtl.ensemble import reduce as R
from raymtl.ensemble.plan import EnsemblePlan
from raymtl.errors import UserError
from tests.conftest import grid_preset
from tests.ensemble.test_reduce import tut_rows, write_member
from tests.results.servers import free_port
from tests.tracking.mlflow_server import mlflow_server
from tests.tracking.test_tensorboard import TRIAL, epoch, stage


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def the_runs(uri: str, run) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(tracking.experiment_name(str(run)))
    assert experiment.tags["run"] == str(run)
    return client.search_runs([experiment.experiment_id])


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    points = MlflowClient(uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in points)


def test_without_the_client_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    with pytest.raises(UserError, match=r"pip install 'raymtl\[tracking\]'"):
        tracking.check_mlflow("http://127.0.0.1:5000")


def test_a_server_that_does_not_answer_stops_the_command_at_once(tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["reduce", str(tmp_path), "--mlflow-uri", dead]) == 2
    assert f"--mlflow-uri {dead}: the MLflow tracking server does not answer" in capsys.readouterr().err


def test_a_resumed_trial_continues_its_mlflow_run(server, tmp_path):
    run = str(tmp_path / "resumed")
    first = tracking.TrialTracker(run, stage(), [], server)
    first.epoch(epoch(0))  # the worker dies after epoch 1's checkpoint, before logging epoch 1
    first._tb.close()
    second = tracking.TrialTracker(run, stage(), [epoch(0), epoch(1)], server)
    second.epoch(epoch(2))
    second.finish({"asc": 0.5})
    (only,) = the_runs(server, run)
    assert only.info.run_name == TRIAL and only.info.status == "FINISHED"
    assert history(server, only.info.run_id, "val_acc/asc") == [
        (e, epoch(e)["val_acc_asc"]) for e in range(3)
    ]
    assert only.data.metrics["test_acc/asc"] == 0.5


ONE_HOT = {0: [0.9, 0.05, 0.05], 1: [0.05, 0.9, 0.05]}


def test_reduce_logs_the_ensemble_as_one_mlflow_run(server, tmp_path):
    run = tmp_path / "fused"
    plan = EnsemblePlan([1, 2], [1], ["triple"], ["asc"])
    clips = {"a.wav": 0, "b.wav": 1}
    write_member(run, "asc", 1, 1, "triple", tut_rows(clips, "triple", lambda c, im, p: ONE_HOT[clips[c]]))
    write_member(run, "asc", 2, 1, "triple", tut_rows(clips, "triple", lambda c, im, p: ONE_HOT[0]))
    for _ in range(2):  # a second reduce continues the same run
        R.reduce_run(str(run), plan=plan, mlflow_uri=server)
    summary = json.loads((run / "ensemble" / "summary.json").read_text())
    (only,) = the_runs(server, run)
    assert only.info.run_name == "ensemble" and only.info.status == "FINISHED"
    asc = summary["tasks"]["asc"]
    assert only.data.metrics == {
        "ensemble_acc/asc": asc["ensemble_accuracy"],
        "member_acc_mean/asc": asc["member_accuracy"]["mean"],
        "member_acc_std/asc": asc["member_accuracy"]["std"],
    }  # no eight-member figure: the plan has no quadruple members
    assert (asc["member_accuracy"]["mean"], asc["member_accuracy"]["std"]) == (0.75, 0.25)


@pytest.mark.training
def test_train_logs_one_mlflow_run_per_trial_and_a_rerun_adds_none(server, tiny_features, tmp_path):
    preset = tmp_path / "tiny-grid.json"
    preset.write_text(json.dumps(grid_preset().to_dict()))
    run = tmp_path / "mlflow-run"
    args = ["train", "--experiment", "baseline-asc", "--division", "1", "--repeat", "1"]
    args += ["--variant", "triple", "--features", str(tiny_features), "--out", str(run)]
    args += ["--preset", str(preset), "--mlflow-uri", server]
    assert main(args) == 0

    trial = "baseline-asc-d1-r1-triple"
    (only,) = the_runs(server, run)
    assert only.info.run_name == trial and only.info.status == "FINISHED"
    tags = only.data.tags
    assert (tags["trial"], tags["experiment"], tags["division"], tags["repeat"], tags["variant"]) == (
        trial,
        "baseline-asc",
        "1",
        "1",
        "triple",
    )
    params = only.data.params
    assert (params["preset"], params["train.epochs_train_asc"], params["train.max_train_patches"]) == (
        "tiny-grid",
        "2",
        str(grid_preset().train.max_train_patches),
    )
    assert params["train.lr"] == str(grid_preset().train.lr)
    lines = (run / "trials" / trial / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(line) for line in lines]
    assert len(epochs) == 2
    for key in ("loss_asc", "train_acc_asc", "val_acc_asc", "patches_per_s", "seconds"):
        want = [(m["epoch"], float(m[key])) for m in epochs]
        assert history(server, only.info.run_id, tracking.scalar_tag(key)) == want, key
    result = json.loads((run / "trials" / trial / "result.json").read_text())
    assert only.data.metrics["test_acc/asc"] == result["test_accuracy"]["asc"]

    assert main(args) == 0  # already done: nothing trains, nothing is logged
    assert [r.info.run_id for r in the_runs(server, run)] == [only.info.run_id]
