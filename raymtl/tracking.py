"""Sending a trial's settings, epoch metrics and final figures to the trackers researchers already
read: TensorBoard always, an MLflow tracking server when the user names one (`--mlflow-uri`).

The RUN folder stays the record (metrics.jsonl, result.json, summary.json); the trackers get copies
of the same numbers, so nothing here may stop a training: a tracker that fails mid-trial is logged
and dropped for the rest of it.

TensorBoard: one event folder per trial, RUN/tb/<trial>/ (`raymtl.run.layout.tb`), and
RUN/tb/ensemble/ for `raymtl reduce`'s figures, so `tensorboard --logdir RUN/tb` shows every
member's curves side by side. Scalars per epoch with step = epoch; a metric of one task is tagged
`<metric>/<task>` (`loss_asc` -> `loss/asc`), so TensorBoard groups both tasks' curves. The settings
are hparams and a text table at step 0. A writer opened again for the same trial (a worker restart)
purges the events from step 0 (`purge_step=0`) and logs the checkpoint's history again, so the
curves are exactly the history the trial resumed with. A local RUN is written in place; a remote
one (s3://) is written to a local folder and its event files copied into the RUN at every epoch's
end, so a TensorBoard on the bucket follows the training.

MLflow: one experiment per RUN, named `raymtl/<RUN folder name>`, found by its `run` tag (the RUN's
URI); one MLflow run per trial, named after the trial and found by its `trial` tag, so a trial that
resumes after a worker restart continues its MLflow run instead of making a second one. MLflow is
imported only when a URI is given (`pip install 'raymtl[tracking]'`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Iterator, Mapping

import pyarrow.fs as pafs
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from raymtl import storage
from raymtl.config import TASKS
from raymtl.errors import UserError
from raymtl.run import layout

log = logging.getLogger(__name__)

ENSEMBLE = "ensemble"  # the reduce's event folder and MLflow run name
TEST_ACC = "test_acc"  # a trial's final figure per task: the selected weights' test accuracy
NOT_SCALARS = ("trial", "stage", "epoch")  # keys of a metrics.jsonl line that are not curves
# summary.json's figures per task, logged by the reduce: (tag, how to read it from the task's summary)
ENSEMBLE_FIGURES = {
    "ensemble_acc": lambda s: s["ensemble_accuracy"],
    "member_acc_mean": lambda s: s["member_accuracy"]["mean"],
    "member_acc_std": lambda s: s["member_accuracy"]["std"],
    "eight_member_mean": lambda s: s["eight_member"].get("mean"),
}
MISSING_MLFLOW = (
    "--mlflow-uri needs the MLflow client, which raymtl does not install by default: "
    "pip install 'raymtl[tracking]'"
)


def scalar_tag(key: str) -> str:
    """The TensorBoard tag and MLflow metric name of a metrics.jsonl key: a task's metric is
    `<metric>/<task>` (`val_acc_asc` -> `val_acc/asc`), any other keeps its name."""
    metric, _, task = key.rpartition("_")
    return f"{metric}/{task}" if metric and task in TASKS else key


def epoch_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The curves of one metrics.jsonl line, by tag."""
    return {scalar_tag(k): float(v) for k, v in metrics.items() if k not in NOT_SCALARS}


def experiment_name(run: str) -> str:
    """The MLflow experiment of a RUN: `raymtl/<its folder name>`."""
    return f"raymtl/{os.path.basename(run.rstrip('/'))}"


# -- TensorBoard -------------------------------------------------------------------------------


class EventFolder:
    """A SummaryWriter whose events end up in RUN/tb/<name>/, in place on a local RUN, through a
    local folder copied in by `sync()` on a remote one. Every writer starts by purging the
    folder's earlier events (`purge_step=0`): what it logs replaces them."""

    def __init__(self, run: str, name: str):
        self._fs, run_path = storage.resolve(run)
        self._target = layout.tb(run_path, name)
        self._local = isinstance(self._fs, pafs.LocalFileSystem)
        if self._local:
            self._fs.create_dir(self._target, recursive=True)
            folder = self._target
        else:
            folder = tempfile.mkdtemp(prefix="raymtl-tb-")
        self.writer = SummaryWriter(folder, purge_step=0, flush_secs=30)

    def sync(self) -> None:
        """Flush the events; on a remote RUN, copy every event file of this writer into it."""
        self.writer.flush()
        if self._local:
            return
        folder = self.writer.get_logdir()
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), "rb") as f:
                storage.write_bytes(self._fs, storage.join(self._target, name), f.read())

    def close(self) -> None:
        self.sync()
        self.writer.close()
        if not self._local:
            shutil.rmtree(self.writer.get_logdir(), ignore_errors=True)


def _settings_table(settings: Mapping[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in settings.items())
    return f"| setting | value |\n|---|---|\n{rows}"


# -- MLflow ------------------------------------------------------------------------------------


def _mlflow():
    try:
        import mlflow  # noqa: PLC0415 (the optional `tracking` extra, only when a URI is given)
    except ImportError:
        raise UserError(MISSING_MLFLOW) from None
    return mlflow


@contextlib.contextmanager
def _no_retries() -> Iterator[None]:
    """MLflow retries a request for minutes by default; a check must answer now."""
    saved = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
        else:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = saved


def check_mlflow(uri: str | None) -> None:
    """Before any training: the client is installed and the server answers (UserError if not)."""
    if not uri:
        return
    mlflow = _mlflow()
    try:
        with _no_retries():
            mlflow.tracking.MlflowClient(uri).search_experiments(max_results=1)
    except Exception as e:  # the client raises its own exceptions and requests' alike
        raise UserError(f"--mlflow-uri {uri}: the MLflow tracking server does not answer ({e})") from None


class MlflowRun:
    """One MLflow run of the RUN's experiment, found by its `trial` tag or made."""

    def __init__(self, uri: str, run: str, name: str, tags: Mapping[str, Any]):
        mlflow = _mlflow()
        self._entities = mlflow.entities
        self.client = mlflow.tracking.MlflowClient(uri)
        experiment_id = _experiment_id(self.client, run)
        found = self.client.search_runs([experiment_id], filter_string=f"tags.trial = '{name}'")
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            log.info("%s: continuing MLflow run %s", name, self.run_id)
        else:
            tags = {"trial": name, **{k: str(v) for k, v in tags.items()}}
            self.run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def last_step(self, key: str) -> int:
        """The highest step logged for `key` (-1: none)."""
        return max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=-1)

    def log(self, scalars: Mapping[str, float], step: int, params: Mapping[str, Any] = {}) -> None:
        now = int(time.time() * 1000)
        E = self._entities
        self.client.log_batch(
            self.run_id,
            metrics=[E.Metric(k, v, now, step) for k, v in scalars.items()],
            params=[E.Param(k, str(v)) for k, v in params.items()],
        )

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def _experiment_id(client, run: str) -> str:
    """The RUN's experiment (its `run` tag), made on first use. Another RUN of the same folder
    name gets the name with its URI's hash; two workers making it at once agree on one."""
    query = f"tags.run = '{run}'"
    found = client.search_experiments(filter_string=query)
    if found:
        return found[0].experiment_id
    name = experiment_name(run)
    if client.get_experiment_by_name(name) is not None:
        name = f"{name} ({hashlib.sha1(run.encode()).hexdigest()[:8]})"
    try:
        return client.create_experiment(name, tags={"run": run})
    except Exception:  # made meanwhile by another trial of this RUN
        found = client.search_experiments(filter_string=query)
        if not found:
            raise
        return found[0].experiment_id


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# -- a trial -----------------------------------------------------------------------------------


class TrialTracker:
    """A trial's trackers, on the Train worker that records it (rank 0): `start` when the trial
    starts or resumes, `epoch` after each epoch, `finish` with its result. Failures are logged,
    never raised, once the trial has started."""

    _live: "set[TrialTracker]" = set()  # this process's open trackers

    def __init__(self, run: str, stage, history: list[dict[str, Any]], mlflow_uri: str | None = None):
        self.trial = stage.trial
        self._last_epoch = max(stage.epochs.values()) - 1
        settings = {
            "preset": stage.preset.name,
            "experiment": stage.spec.experiment,
            "division": stage.spec.division,
            "repeat": stage.spec.repeat,
            "variant": stage.spec.variant,
            "seed": stage.seed,
            "stage": stage.model_kind,
            **{f"epochs_{t}": n for t, n in stage.epochs.items()},
        }
        self._tb: EventFolder | None = EventFolder(run, self.trial)
        w = self._tb.writer
        metric_tags = {f"{k}/{t}": 0.0 for t in stage.targets for k in ("val_acc", TEST_ACC)}
        for summary in hparams(settings, metric_tags):  # the HPARAMS tab's session of this trial
            w.file_writer.add_summary(summary, 0)
        w.add_text("settings", _settings_table(settings), 0)
        for metrics in history:  # what the trial resumes with (after purge_step=0)
            self._tb_epoch(metrics)
        self._mlflow: MlflowRun | None = None
        if mlflow_uri:
            tags = {
                k: settings[k] for k in ("experiment", "division", "repeat", "variant", "stage", "preset")
            }
            self._mlflow = MlflowRun(mlflow_uri, run, self.trial, {**tags, "run": run})
            preset = _flat({k: v for k, v in stage.preset.to_dict().items() if k != "name"})
            self._mlflow.log({}, 0, {"preset": stage.preset.name, "seed": stage.seed, **preset})
            logged = self._mlflow.last_step(scalar_tag("patches_per_s"))
            for metrics in history:  # epochs trained before a restart that MLflow missed
                if metrics["epoch"] > logged:
                    self._mlflow.log(epoch_scalars(metrics), metrics["epoch"])
        self._tb.sync()
        TrialTracker._live.add(self)

    @classmethod
    def fail_all(cls) -> None:
        """Close every tracker of this process, marking its MLflow run failed (its stage failed)."""
        for tracker in list(cls._live):
            tracker._close("FAILED")

    def epoch(self, metrics: Mapping[str, Any]) -> None:
        if self._tb is not None:
            self._guard("TensorBoard", lambda: (self._tb_epoch(metrics), self._tb.sync()))
        if self._mlflow is not None:
            self._guard("MLflow", lambda: self._mlflow.log(epoch_scalars(metrics), metrics["epoch"]))

    def finish(self, test_accuracy: Mapping[str, float]) -> None:
        """The trial's final figures (step: its last epoch), then close."""
        final = {f"{TEST_ACC}/{t}": float(a) for t, a in test_accuracy.items()}
        if self._tb is not None:
            self._guard("TensorBoard", lambda: self._tb_scalars(final, self._last_epoch))
        if self._mlflow is not None:
            self._guard("MLflow", lambda: self._mlflow.log(final, self._last_epoch))
        self._close("FINISHED")

    def _tb_epoch(self, metrics: Mapping[str, Any]) -> None:
        self._tb_scalars(epoch_scalars(metrics), metrics["epoch"])

    def _tb_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self._tb.writer.add_scalar(tag, value, step)

    def _close(self, status: str) -> None:
        if self._tb is not None:
            self._guard("TensorBoard", self._tb.close)
        if self._mlflow is not None:
            self._guard("MLflow", lambda: self._mlflow.end(status))
        self._tb = self._mlflow = None
        TrialTracker._live.discard(self)

    def _guard(self, tracker: str, call) -> None:
        try:
            call()
        except Exception as e:  # a tracker must not stop the training
            log.warning("%s: %s tracking stopped (%s: %s)", self.trial, tracker, type(e).__name__, e)
            if tracker == "TensorBoard":
                self._tb = None
            else:
                self._mlflow = None


# -- the ensemble ------------------------------------------------------------------------------


def ensemble_scalars(summary: Mapping[str, Any]) -> dict[str, float]:
    """summary.json's final figures by tag (`ensemble_acc/asc`, ...); figures that are None
    (no member of a task, no eight-member ensemble) are left out."""
    out = {}
    for task, s in summary["tasks"].items():
        for tag, read in ENSEMBLE_FIGURES.items():
            value = read(s)
            if value is not None:
                out[f"{tag}/{task}"] = float(value)
    return out


def log_ensemble(run: str, summary: Mapping[str, Any], mlflow_uri: str | None = None) -> None:
    """The reduce's figures at step 0: to RUN/tb/ensemble/ (replacing an earlier reduce's) and,
    with a URI, as the MLflow run `ensemble` of the RUN's experiment. Also accuracy against
    ensemble size as `by_size_mean/<task>` with step = members."""
    scalars = ensemble_scalars(summary)
    tb = EventFolder(run, ENSEMBLE)
    for tag, value in scalars.items():
        tb.writer.add_scalar(tag, value, 0)
    for task, s in summary["tasks"].items():
        for size in s.get("by_size", []):
            tb.writer.add_scalar(f"by_size_mean/{task}", size["mean"], size["members"])
    tb.close()
    if mlflow_uri:
        mlflow_run = MlflowRun(mlflow_uri, run, ENSEMBLE, {"run": run})
        mlflow_run.log(scalars, 0)
        mlflow_run.end()
