"""Resources from the plan: what `raymtl ensemble` requests per member and how many it queues,
from the nodes up and the node types the cluster can add (no Ray needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from raymtl.ensemble.capacity import Capacity, NodeGroup, load_autoscaling_config, node_groups, plan_resources
from raymtl.errors import InputFileError

ROOT = Path(__file__).resolve().parents[2]
HEAD_CPU = {"CPU": 8.0}
GPU_WORKERS = (NodeGroup("gpu_worker", {"CPU": 8.0, "GPU": 1.0}, 0, 8),)


def test_a_two_cpu_machine_keeps_half_a_cpu_per_member_and_two_at_once():
    plan = plan_resources(Capacity(up={"CPU": 2.0}, head={"CPU": 2.0}), members=24)
    assert (plan.accelerators_per_trial, plan.cpus_per_trial, plan.max_concurrent) == (0.0, 0.5, 2)


def test_a_fixed_gpu_cluster_runs_as_many_members_as_it_has_gpus():
    plan = plan_resources(Capacity(up={"CPU": 32.0, "GPU": 4.0}, head=HEAD_CPU), members=24)
    assert (plan.accelerators_per_trial, plan.cpus_per_trial, plan.max_concurrent) == (1.0, 1.0, 4)


def test_gpu_nodes_the_autoscaler_can_add_count_though_none_is_up():
    """cluster.yaml at start: only the CPU head is up. Members request a GPU each and all are
    queued at once, so that the autoscaler sees demand for every GPU node it may add."""
    capacity = Capacity(up=HEAD_CPU, head=HEAD_CPU, groups=GPU_WORKERS)
    plan = plan_resources(capacity, members=24)
    assert (plan.accelerators_per_trial, plan.cpus_per_trial, plan.max_concurrent) == (1.0, 1.0, 24)
    assert "gpu_worker" in plan.describe()
    assert plan_resources(capacity, members=24, max_concurrent=6).max_concurrent == 6  # the user's cap wins


def test_the_accelerator_is_a_resource_name():
    capacity = Capacity(
        up={"CPU": 1.0}, head={"CPU": 1.0}, groups=(NodeGroup("w", {"CPU": 1.0, "accel": 1.0}, 0, 2),)
    )
    plan = plan_resources(capacity, members=2, accelerator="accel")
    assert (plan.accelerator, plan.accelerators_per_trial, plan.max_concurrent) == ("accel", 1.0, 2)
    assert plan_resources(capacity, members=2).accelerators_per_trial == 0.0  # no GPU anywhere


def test_cpu_only_worker_types_warn_that_members_may_land_on_the_head(caplog):
    capacity = Capacity(up=HEAD_CPU, head=HEAD_CPU, groups=(NodeGroup("cpu_worker", {"CPU": 16.0}, 0, 4),))
    with caplog.at_level(logging.WARNING, logger="raymtl.ensemble.capacity"):
        plan = plan_resources(capacity, members=6)
    assert (plan.accelerators_per_trial, plan.cpus_per_trial, plan.max_concurrent) == (0.0, 1.0, 6)
    assert "head" in caplog.text


def test_node_groups_of_cluster_yaml_leave_out_the_head():
    groups = node_groups(load_autoscaling_config(str(ROOT / "cluster.yaml")))
    assert [g.name for g in groups] == ["gpu_worker"]
    (gpu,) = groups
    assert gpu.resources["GPU"] == 1 and (gpu.min_count, gpu.max_count) == (0, 8) and gpu.can_add


def test_a_file_that_is_not_a_cluster_config_is_refused(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("just: text\n")
    with pytest.raises(InputFileError, match="available_node_types"):
        load_autoscaling_config(str(bad))


def test_cluster_yaml_publishes_its_node_types_after_starting_the_head():
    import yaml

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    commands = config["head_start_ray_commands"]
    start = next(i for i, c in enumerate(commands) if "ray start --head" in c)
    assert any("raymtl cluster-config ~/ray_bootstrap_config.yaml" in c for c in commands[start + 1 :])
