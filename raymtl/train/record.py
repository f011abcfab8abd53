"""Writing a finished trial's folder (`raymtl.train.trial` describes it).

Called by the Train worker that trained the trial (rank 0), right after it scored the test
patches: the selected networks, the test scores, the metrics per epoch, and `result.json` last,
whose presence marks the trial finished. Everything goes through pyarrow file systems, so on a
cluster the worker writes straight to the shared RUN storage.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import raymtl
from raymtl import schema, storage
from raymtl.models import save_model
from raymtl.ray_session import placement
from raymtl.run import layout
from raymtl.run.records import TrialResult, write_result
from raymtl.train import trial as T
from raymtl.train.evaluate import vote
from raymtl.train.scoring import scores_matrix, scores_table
from raymtl.train.stage import StageConfig, build_network, model_config


def write_trial(
    run: str,
    stage: StageConfig,
    state: dict,
    best_weights: dict[str, dict],
    test_scores: dict[str, dict[str, np.ndarray]],
    class_names: dict[str, list[str]],
    seconds: float,
    device: str,
    torch_device: str | None = None,
) -> TrialResult:
    """Write the trial folder of `stage` and return its result (`device`: CPU or GPU;
    `torch_device`: the torch device it trained on, recorded with the node)."""
    spec = stage.spec
    fs, run_path = storage.resolve(run)
    fs.create_dir(layout.trial_dir(run_path, spec.name), recursive=True)
    tables, accuracy, model_uris = [], {}, {}
    for t in stage.targets:
        model_uris[t] = save_selected(run, stage, t, best_weights[t], state, class_names)
        table = scores_table(spec.name, t, test_scores[t])
        tables.append(table)
        clips, labels = table.column(schema.CLIP).to_numpy(), table.column(schema.LABEL).to_numpy()
        accuracy[t] = vote(clips, scores_matrix(table), labels).accuracy
    buf = io.BytesIO()
    pq.write_table(pa.concat_tables(tables), buf)
    storage.write_bytes(fs, layout.scores(run_path, spec.name), buf.getvalue())
    metrics = "".join(json.dumps(m) + "\n" for m in state["history"])
    storage.write_text(fs, layout.metrics(run_path, spec.name), metrics)
    result = TrialResult(
        trial=spec.name,
        experiment=spec.experiment,
        division=spec.division,
        repeat=spec.repeat,
        variant=spec.variant,
        preset=stage.preset.name,
        targets=tuple(stage.targets),
        test_accuracy=accuracy,
        val_accuracy=dict(state["best_acc"]),
        best_epoch=dict(state["best_epoch"]),
        epochs=stage.epochs,
        seed=stage.seed,
        stage1=dict(stage.init),
        models=model_uris,
        n_classes=dict(stage.n_classes),
        seconds=round(seconds, 1),
        device=device,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        raymtl_version=raymtl.__version__,
        resumed_after_epoch=tuple(state.get("resumed_after_epoch", ())),
        placement=placement(torch_device),
        placements=tuple(state.get("placements", ())),
    )
    write_result(fs, run_path, result)  # last: marks it finished
    return result


def save_selected(
    run: str, stage: StageConfig, target: str, weights: dict, state: dict, class_names: dict | None = None
) -> str:
    """Write the selected network of `target` as RUN/trials/<trial>/model-<target>.pt; its URI."""

    net = build_network(stage, target, restore=False)
    net.load_state_dict(weights)
    buf = io.BytesIO()
    save_model(
        buf,
        net,
        kind=stage.model_kind,
        task=target,
        cfg=model_config(stage),
        n_classes=stage.n_classes,
        extra={
            "trial": stage.trial,
            "experiment": stage.spec.experiment,
            "variant": stage.spec.variant,
            "best_epoch": int(state["best_epoch"][target]),
            "val_accuracy": float(state["best_acc"][target]),
            # {task: [class names]} in label order; checkpoints written before this lack it.
            **({"class_names": class_names} if class_names is not None else {}),
        },
    )
    uri = T.model_file(run, stage.spec, target)
    fs, path = storage.resolve(uri)
    storage.write_bytes(fs, path, buf.getvalue())
    return uri
