"""`raymtl export`: one trained network as a TorchScript or ONNX file, for use outside Ray and
outside raymtl, with the feature settings it needs stored beside it.

What is exported (`--task`):

- `both`: the stage-1 multitask network that `raymtl predict --model mtl` uses (same rule,
  `--mtl-target`, `--trial`): outputs `asc` (B, 15) and `aec` (B, 50).
- `asc` or `aec`: one fine-tuned fusion network of that task (Fig. 4): the ensemble member with
  the best validation accuracy (ties: lower division, repeat, triple first), or `--trial NAME`.
  An ensemble is many networks; export its members one by one and sum their scores.

The exported model takes `patches`, float32 (B, 128, 128): log-mel dB patches (mel bands x
frames), and returns the softmax scores of each task, in the order of `outputs`. It includes the
per-patch standardisation of layer 1, so it takes the patches exactly as featurization makes them.

Beside FILE, FILE.json (also embedded: TorchScript `_extra_files["raymtl.json"]`, ONNX metadata
property `raymtl`) says how to make those patches and use the scores: the FeatureConfig (44.1 kHz,
Hann 2048, hop 1024, 128 Slaney mel bands, power to dB against 1.0 with no top_db, patches 128
frames wide at hop 32), the channel images per task, the class names, the vote rule, and where the
network came from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

import raymtl
from raymtl import storage
from raymtl.config import TASKS
from raymtl.data.features import VARIANT_IMAGES
from raymtl.errors import OutputExistsError, UserError
from raymtl.serving.models import (
    best_member,
    class_names,
    load_member,
    read_run,
    run_features,
    select_mtl,
)
from raymtl.serving.patches import EVENT_IMAGE

log = logging.getLogger(__name__)

FORMAT = "raymtl-export/1"
EXPORT_FORMATS = ("torchscript", "onnx")
EXPORT_TASKS = ("asc", "aec", "both")
INPUT_NAME = "patches"
METADATA_KEY = "raymtl"  # ONNX metadata property
EXTRA_FILE = "raymtl.json"  # TorchScript extra file
ONNX_OPSET = 17
VOTE_RULE = (
    "a recording's answer is the majority vote of its patches' argmax over all its patches and "
    "channel images; ties go to the class with the larger summed score"
)


def sidecar_path(out: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(out)}.json")


def _wrapper(net, tasks: Sequence[str]):

    class SoftmaxOutputs(nn.Module):
        """logits {task: (B, P)} -> softmax scores, a tuple in `tasks` order."""

        def __init__(self):
            super().__init__()
            self.net = net
            self.tasks = tuple(tasks)

        def forward(self, patches: torch.Tensor):
            logits = self.net(patches)  # (B, 128, 128) -> {task: (B, P_task)}
            return tuple(logits[t].softmax(dim=1) for t in self.tasks)

    return SoftmaxOutputs().eval()


def export_model(
    run: str,
    fmt: str,
    task: str,
    out: str,
    *,
    trial: str | None = None,
    mtl_target: str = "asc",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the model to `out` and its settings to `out`.json; return those settings."""

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if task not in EXPORT_TASKS:
        raise UserError(f"unknown --task {task!r}; valid: {', '.join(EXPORT_TASKS)}")
    out_path, side = Path(out), sidecar_path(out)
    for p in (out_path, side):
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p} exists; pass --overwrite to replace it")
    if not out_path.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out_path.parent} does not exist")
    _, _, manifest = read_run(run)
    if task == "both":
        info = select_mtl(run, mtl_target, trial)
        member = load_member(info, mtl_target)
        tasks = TASKS
        what = f"stage-1 multitask network (target {mtl_target})"
    else:
        info = best_member(run, task, trial)
        member = load_member(info, task)
        tasks = (task,)
        what = f"fine-tuned fusion network for {task}"
    names, names_source = class_names(manifest, [member.meta])
    features = run_features(manifest)
    images = {"asc": list(VARIANT_IMAGES[member.variant]), "aec": [EVENT_IMAGE]}
    settings = {
        "format": FORMAT,
        "model_format": fmt,
        "model_file": out_path.name,
        "what": what,
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", features.n_mels, features.patch_frames],
            "meaning": "log-mel dB patches (mel bands x frames), as raymtl featurize makes them",
        },
        "outputs": [
            {"name": t, "shape": ["batch", len(names[t])], "meaning": f"softmax scores over the {t} classes"}
            for t in tasks
        ],
        "features": dataclasses.asdict(features),
        "images": {t: images[t] for t in tasks},
        "images_meaning": (
            "left/right: log-mel of each channel; sum/diff: left + right / left - right of the log-mel "
            "images (mono audio: left = right); mono: log-mel of the mono (channel-averaged) audio"
        ),
        "class_names": {t: names[t] for t in tasks},
        "class_names_from": names_source,
        "vote": VOTE_RULE,
        "source": {
            "run": os.path.basename(os.path.abspath(run).rstrip("/")) if "://" not in run else run,
            "trial": member.trial,
            "kind": member.meta["kind"],
            "target": member.meta["task"],
            "variant": member.variant,
            "val_accuracy": member.val_accuracy,
            "model_config": dataclasses.asdict(member.meta["config"]),
        },
        "raymtl_version": raymtl.__version__,
    }
    wrapper = _wrapper(member.net.cpu().eval(), tasks)
    example = torch.zeros(2, features.n_mels, features.patch_frames) - 60.0  # (B, 128, 128), log-mel dB
    text = json.dumps(settings, indent=2)
    with storage.atomic_local_file(out_path) as tmp:
        if fmt == "torchscript":
            _torchscript(wrapper, example, tmp, text)
        else:
            _onnx(wrapper, example, tmp, tasks, text)
    storage.write_text(*storage.resolve(side), text + "\n")
    log.info("exported %s of %s to %s (%s) and %s", what, member.trial, out_path, fmt, side)
    return settings


@contextlib.contextmanager
def _quiet():
    """Tracing warns that the input shape check in `as_images` becomes a constant: it does, for
    the (B, 128, 128) input the file is made for; and the ONNX exporter warns that InstanceNorm
    (layer 1's per-patch standardisation, no running stats) is exported for inference: it is."""

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*instance_norm.*")
        # dynamo=False is deprecated in favour of the torch.export-based exporter, which needs
        # onnxscript as well; the legacy one exports these conv networks exactly (tested).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, message=".*(legacy TorchScript|will be removed).*"
        )
        yield


def _torchscript(wrapper, example, path: Path, settings_json: str) -> None:

    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(wrapper, (example,), strict=False)
    torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: settings_json})


def _onnx(wrapper, example, path: Path, tasks: Sequence[str], settings_json: str) -> None:
    try:  # the optional `export` extra: imported where used, so TorchScript works without it
        import onnx  # noqa: PLC0415
    except ImportError:
        raise UserError(
            "ONNX export needs the onnx package (torch.onnx.export requires it): pip install 'raymtl[export]'"
        ) from None
    axes = {INPUT_NAME: {0: "batch"}, **{t: {0: "batch"} for t in tasks}}
    with _quiet(), torch.no_grad():
        # dynamo=False: the TorchScript-based exporter; it needs onnx but not onnxscript, and
        # these plain conv networks need nothing newer.
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(tasks),
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
        )
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, settings_json
    onnx.save(model, str(path))


class ExportedModel:
    """An exported file read back: `model(patches)` -> {task: softmax (B, P)} as numpy.

    TorchScript files run on torch alone; ONNX files on onnxruntime (`raymtl[export]`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        side = sidecar_path(self.path)
        if not side.is_file():
            raise UserError(f"{self.path}: no settings file {side} beside it")
        self.settings = json.loads(side.read_text(encoding="utf-8"))
        self.tasks = [o["name"] for o in self.settings["outputs"]]
        if self.settings["model_format"] == "torchscript":

            extra = {EXTRA_FILE: ""}
            self._ts = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra)
            self.embedded = json.loads(extra[EXTRA_FILE])
            self._run = self._run_torchscript
        else:
            import onnx  # noqa: PLC0415 (the optional `export` extra, as in _onnx)
            import onnxruntime as ort  # noqa: PLC0415

            meta = {
                p.key: p.value for p in onnx.load(str(self.path), load_external_data=False).metadata_props
            }
            self.embedded = json.loads(meta[METADATA_KEY])
            self._session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            self._run = self._run_onnx

    def _run_torchscript(self, x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in self._ts(torch.from_numpy(x))]

    def _run_onnx(self, x: np.ndarray) -> list[np.ndarray]:
        return self._session.run(self.tasks, {INPUT_NAME: x})

    def __call__(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(patches, dtype=np.float32)
        return dict(zip(self.tasks, self._run(x)))
