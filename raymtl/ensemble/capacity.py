"""What the cluster can run ensemble members on: the nodes up now, and the worker node types
the autoscaler may add.

Ray 2.60 keeps a cluster's node types in its GCS as a `ClusterConfig` (node groups, each with
its resources and min/max count): `ray._private.state.state.get_cluster_config()` is what Ray
Train (its "insufficient cluster resources" check) and Ray Data (whether autoscaling is on)
read. The 2.60 autoscaler does not write it, though: on a cluster started from an autoscaling
config it is empty, and the autoscaler's status in the GCS (what `ray status` prints) only names
node types already launched. So the cluster's config is published once, after `ray start
--head` (`raymtl cluster-config FILE`, see cluster.yaml); where none was published, the driver
reads `~/ray_bootstrap_config.yaml`, the file that `ray up` gives the head's autoscaler, when it
runs on the head (as `ray job submit` entry points do). Neither: a fixed cluster, or one machine.

What `raymtl ensemble` makes of it (`plan_resources`): members request one accelerator each
(`GPU`, or the resource name given) when the cluster has or can add nodes with one; on a
cluster that can add nodes, all members not yet finished are queued at once, since pending
demand is what makes the autoscaler add nodes; otherwise as many as fit in what is up now.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

import ray
import ray._private.state
import yaml
from ray._raylet import GcsClient
from ray.core.generated import autoscaler_pb2

from raymtl.errors import InputFileError

log = logging.getLogger(__name__)

BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"  # where `ray up` puts the head's autoscaling config
HEAD_RESOURCE = "node:__internal_head__"  # every head node has it


@dataclass(frozen=True)
class NodeGroup:
    """A worker node type: the resources of one node and how many the autoscaler may run."""

    name: str
    resources: Mapping[str, float]
    min_count: int
    max_count: int  # -1: no limit

    @property
    def can_add(self) -> bool:
        return self.max_count == -1 or self.max_count > self.min_count


@dataclass(frozen=True)
class Capacity:
    """The cluster as a driver sees it when it plans: resources up now (all nodes, and the head's
    alone), and the worker node types from the cluster's config (empty: no autoscaler)."""

    up: Mapping[str, float]
    head: Mapping[str, float]
    groups: tuple[NodeGroup, ...] = ()
    source: str = "the resources up now"

    @property
    def autoscaling(self) -> bool:
        return any(g.can_add for g in self.groups)

    def has(self, resource: str) -> bool:
        """Whether any node has, or the autoscaler can add one with, `resource`."""
        return self.up.get(resource, 0) > 0 or any(
            g.resources.get(resource, 0) > 0 and g.max_count != 0 for g in self.groups
        )

    def on_head(self, resource: str) -> bool:
        return self.head.get(resource, 0) > 0

    def describe(self) -> str:
        if not self.groups:
            return f"{_resources_text(self.up)} up, no node types to add ({self.source})"
        types = ", ".join(
            f"{g.name} ({_resources_text(g.resources)}; {g.min_count}-{_max_text(g.max_count)})"
            for g in self.groups
        )
        return f"{_resources_text(self.up)} up; worker node types {types} ({self.source})"


def _resources_text(resources: Mapping[str, float]) -> str:
    shown = {
        k: v
        for k, v in resources.items()
        if not k.startswith("node:") and k not in ("memory", "object_store_memory")
    }
    return ", ".join(f"{v:g} {k}" for k, v in sorted(shown.items())) or "nothing"


def read_capacity() -> Capacity:
    """The connected cluster's capacity (call after `ray.init`)."""

    up = ray.cluster_resources()
    head = next((n["Resources"] for n in ray.nodes() if n["Alive"] and HEAD_RESOURCE in n["Resources"]), {})
    groups, source = _published_groups(), "the cluster config in the GCS"
    if groups is None:
        path = os.path.expanduser(BOOTSTRAP_CONFIG)
        groups, source = (
            (node_groups(load_autoscaling_config(path)), path) if os.path.isfile(path) else ((), "")
        )
    return Capacity(
        up=dict(up), head=dict(head), groups=tuple(groups), source=source or "the resources up now"
    )


def _published_groups() -> tuple[NodeGroup, ...] | None:
    config = ray._private.state.state.get_cluster_config()
    if config is None or not config.node_group_configs:
        return None
    return tuple(
        NodeGroup(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.min_count), int(g.max_count))
        for g in config.node_group_configs
    )


def load_autoscaling_config(path: str) -> dict:
    """A cluster launcher config (YAML or JSON) as a dict; a clear error when it is not one."""

    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except OSError as e:
        raise InputFileError(path, f"cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise InputFileError(path, f"not valid YAML ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("available_node_types"), dict):
        raise InputFileError(path, "not a Ray cluster config: it has no available_node_types")
    return config


def node_groups(config: Mapping[str, Any]) -> tuple[NodeGroup, ...]:
    """The worker node types of a cluster launcher config (the head's type is left out: it is
    there from the start and the autoscaler never adds one)."""
    head = config.get("head_node_type")
    groups = []
    for name, t in config["available_node_types"].items():
        if name == head:
            continue
        resources = {k: float(v) for k, v in (t.get("resources") or {}).items()}
        groups.append(NodeGroup(name, resources, int(t.get("min_workers", 0)), int(t.get("max_workers", 0))))
    return tuple(groups)


def publish(config_path: str) -> tuple[NodeGroup, ...]:
    """Report the worker node types of the autoscaling config at `config_path` to the connected
    cluster's GCS, where drivers (and Ray Train's own resource check) read them."""

    groups = node_groups(load_autoscaling_config(config_path))
    message = autoscaler_pb2.ClusterConfig()
    for g in groups:
        ngc = autoscaler_pb2.NodeGroupConfig(name=g.name, min_count=g.min_count, max_count=g.max_count)
        for k, v in g.resources.items():
            ngc.resources[k] = int(v)  # whole units, as the autoscaler's node types have them
        message.node_group_configs.append(ngc)
    GcsClient(address=ray.get_runtime_context().gcs_address).report_cluster_config(
        message.SerializeToString()
    )
    return groups


@dataclass(frozen=True)
class ResourcePlan:
    """How members run: per Train worker, CPUs and accelerators (of resource `accelerator`), and
    how many members Tune runs at once."""

    accelerator: str
    accelerators_per_trial: float
    cpus_per_trial: float
    max_concurrent: int
    why: str

    def describe(self) -> str:
        accel = (
            f" and {self.accelerators_per_trial:g} {self.accelerator}" if self.accelerators_per_trial else ""
        )
        return (
            f"up to {self.max_concurrent} members at once, {self.cpus_per_trial:g} CPU{accel} per Train "
            f"worker ({self.why})"
        )


def plan_resources(
    capacity: Capacity,
    members: int,
    accelerator: str = "GPU",
    accelerators_per_trial: float | None = None,
    cpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
) -> ResourcePlan:
    """Resources per member and members at once, from what the cluster has or can add; None
    means decide (the `auto` of the command line)."""
    if accelerators_per_trial is None:
        accelerators_per_trial = 1.0 if capacity.has(accelerator) else 0.0
    if cpus_per_trial is None:
        cpus_per_trial = _auto_cpus(capacity, accelerators_per_trial)
    if capacity.autoscaling:
        why = f"the autoscaler can add {', '.join(g.name for g in capacity.groups if g.can_add)} nodes"
        if accelerators_per_trial == 0 and capacity.on_head("CPU"):
            log.warning(
                "members request CPUs only, which the head has too: some may train on the head. Give the "
                "worker node types a resource of their own and pass it as --accelerator to keep them off it."
            )
        concurrent = max_concurrent or members  # pending members are the demand that adds nodes
    else:
        why = "no node types to add: what is up now"
        concurrent = max_concurrent or _fits_now(
            capacity.up, accelerator, accelerators_per_trial, cpus_per_trial
        )
    return ResourcePlan(accelerator, accelerators_per_trial, cpus_per_trial, max(1, concurrent), why)


def _auto_cpus(capacity: Capacity, accelerators_per_trial: float) -> float:
    """One CPU per Train worker, except on a CPU-only machine with fewer than 3 CPUs: there,
    half a CPU each, so that two members train at once beside the CPU kept for Ray Data. A
    member's training is compute-bound on one thread, so one member at a time would leave a
    core mostly idle; two at once trained 1.65x the members per hour on 2 cores (tiny preset)."""
    if accelerators_per_trial > 0 or capacity.autoscaling:
        return 1.0
    return 1.0 if capacity.up.get("CPU", 1) - 1 >= 2 else 0.5


def _fits_now(
    up: Mapping[str, float], accelerator: str, accelerators_per_trial: float, cpus_per_trial: float
) -> int:
    """As many members at once as the nodes up now have worker slots for (at least 1)."""
    if accelerators_per_trial > 0:
        return max(1, int(up.get(accelerator, 0) // accelerators_per_trial))
    # CPU only: keep one CPU free for the Ray Data tasks that feed the workers.
    return max(1, int((up.get("CPU", 1) - 1) // max(cpus_per_trial, 1e-9)))


def _max_text(max_count: int) -> str:
    return "∞" if max_count == -1 else str(max_count)
