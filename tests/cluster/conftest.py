"""Fixtures of the multi-node tests: the smallest preset that still runs both stages, written
as a preset file for the drivers these tests start in subprocesses."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from raymtl.config import PRESETS

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


@pytest.fixture(scope="session")
def cluster_preset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cluster-preset") / "cluster-test.json"
    path.write_text(json.dumps(CLUSTER_PRESET.to_dict()))
    return path


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL a driver started with start_new_session=True, and everything it started there."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
