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
from raymtl.train import trial as T
from raymtl.train.evaluate import vote
from raymtl.train.loop import StageConfig, build_network, model_config
from raymtl.train.scoring import scores_matrix, scores_table


def write_trial(
    run: str,
    stage: StageConfig,
    state: dict,
    best_weights: dict[str, dict],
    test_scores: dict[str, dict[str, np.ndarray]],
    class_names: dict[str, list[str]],
    seconds: float,
    device: str,
) -> dict:
    """Write the trial folder of `stage` and return its result.json content."""
    spec = stage.spec
    fs, _ = storage.resolve(run)
    tdir = T.trial_dir(run, spec)
    fs.create_dir(tdir, recursive=True)
    tables, accuracy, model_uris = [], {}, {}
    for t in stage.targets:
        model_uris[t] = save_selected(run, stage, t, best_weights[t], state, class_names)
        table = scores_table(spec.name, t, test_scores[t])
        tables.append(table)
        clips, labels = table.column(schema.CLIP).to_numpy(), table.column(schema.LABEL).to_numpy()
        accuracy[t] = vote(clips, scores_matrix(table), labels).accuracy
    buf = io.BytesIO()
    pq.write_table(pa.concat_tables(tables), buf)
    storage.write_bytes(fs, storage.join(tdir, T.SCORES), buf.getvalue())
    storage.write_text(fs, storage.join(tdir, T.METRICS), "".join(json.dumps(m) + "\n" for m in state["history"]))
    result = {
        "trial": spec.name,
        "experiment": spec.experiment,
        "division": spec.division,
        "repeat": spec.repeat,
        "variant": spec.variant,
        "preset": stage.preset.name,
        "targets": list(stage.targets),
        "test_accuracy": accuracy,
        "best_epoch": state["best_epoch"],
        "val_accuracy": state["best_acc"],
        "epochs": stage.epochs,
        "resumed_after_epoch": state.get("resumed_after_epoch", []),  # worker restarts from a checkpoint
        "seed": stage.seed,
        "stage1": stage.init,
        "models": model_uris,
        "n_classes": stage.n_classes,
        "seconds": round(seconds, 1),  # the stage's own time in its Train worker, over restarts
        "device": device,
        # Where the worker that finished it ran, and every (re)start's node, device and resources.
        "node_id": state["placements"][-1]["node_id"] if state.get("placements") else None,
        "node_ip": state["placements"][-1]["node_ip"] if state.get("placements") else None,
        "placements": state.get("placements", []),
        "raymtl_version": raymtl.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    storage.write_json(fs, storage.join(tdir, T.RESULT), result, overwrite=False)  # last: marks it finished
    return result


def save_selected(
    run: str, stage: StageConfig, target: str, weights: dict, state: dict, class_names: dict | None = None
) -> str:
    """Write the selected network of `target` as RUN/trials/<trial>/model-<target>.pt; its URI."""
    from raymtl.models import save_model

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
