"""cluster.yaml validates against the JSON schema that ships inside the ray wheel, and the job
entry points are thin wrappers over the CLI."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_validates_against_rays_own_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0  # a CPU head
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    assert gpu and all(isinstance(v, int) for t in types.values() for v in t["resources"].values())
    assert gpu[0]["max_workers"] > gpu[0]["min_workers"]  # autoscaling GPU workers
    assert any("pip install" in c and "raymtl" in c for c in config["setup_commands"])


def test_every_node_gets_the_worker_settings_of_a_local_instance():
    """cluster.yaml's `ray start` commands give each node raymtl.ray_session's worker settings
    for its CPUs (here: this machine's)."""
    import subprocess

    from raymtl.ray_session import worker_settings

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    starts = [
        c
        for key in ("head_start_ray_commands", "worker_start_ray_commands")
        for c in config[key]
        if "ray start" in c
    ]
    assert len(starts) == 2
    for command in starts:
        env = command.split(" ray start")[0]
        shown = subprocess.run(
            ["bash", "-c", f"{env} env"], capture_output=True, text=True, check=True
        ).stdout
        settings = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
        for name, value in worker_settings().items():
            assert settings.get(name) == value, (command, name)


def test_a_broken_cluster_yaml_fails_the_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["max_workers"] = "eight"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


@pytest.mark.parametrize(
    "job,verb", [("featurize", "featurize"), ("ensemble", "ensemble"), ("reduce", "reduce")]
)
def test_job_entry_points_call_the_cli_verb(job, verb, monkeypatch):
    seen = {}
    monkeypatch.setattr("raymtl.cli.main", lambda argv: seen.setdefault("argv", argv) and 0)
    monkeypatch.setattr("sys.argv", [f"jobs/{job}.py", "--x", "1"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "jobs" / f"{job}.py"), run_name="__main__")
    assert e.value.code == 0 and seen["argv"] == [verb, "--x", "1"]
