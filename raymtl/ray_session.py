"""Connecting to Ray: an existing cluster (RAY_ADDRESS, or inside `ray job submit`) if there
is one, else a local instance on whatever this machine has (the embedded default)."""

from __future__ import annotations

import logging
import os

import ray

from raymtl import ray_logs
from raymtl.run.progress import Placement

log = logging.getLogger(__name__)


def placement(device: str | None = None) -> Placement:
    """Where this process runs: host, pid, and its Ray node (none outside Ray)."""
    node_id = node_ip = None
    try:
        if ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id()
            node_ip = ray.util.get_node_ip_address()
    except Exception as e:  # recording where a process runs must never stop it
        log.debug("no Ray node for the placement record: %s", e)
    return Placement.of_process(node_id, node_ip, device)


# Ray worker processes per CPU of a node that the raylet keeps when idle, and starts at once.
# raymtl's data tasks ask for a quarter or half of a CPU (raymtl.data.streams: DATA_CPUS,
# PAIR_TASK_CPUS), so a node runs up to four of them per CPU, beside the Train and Tune actors.
# Ray's defaults are one per CPU for both:
# - it ended the surplus idle workers after 1 s, between every two passes over the data, and
#   started them again on the next (imports and the event pool fetched anew: seconds of CPU
#   each). At the paper's size on 2 CPUs one member's mixup stream went from 8,054 to 11,349
#   patches/s with four kept per CPU (docs/development.md);
# - it warned on the terminal ("N PYTHON worker processes have been started ...") whenever the
#   live workers passed 4x its start-up concurrency, which the demo always did.
# cluster.yaml gives every node the same (tests/ensemble/test_cluster_config.py checks it).
WORKERS_PER_CPU = 4


def worker_settings(num_cpus: float | None = None) -> dict[str, str]:
    """The raylet's worker settings (environment variables) for a node of `num_cpus` CPUs
    (default: this machine's)."""
    n = str(WORKERS_PER_CPU * max(1, int(num_cpus if num_cpus is not None else (os.cpu_count() or 1))))
    return {"RAY_num_workers_soft_limit": n, "RAY_worker_maximum_startup_concurrency": n}


def prepare_local_instance(num_cpus: float | None = None) -> None:
    """Call before starting a local Ray instance of `num_cpus` CPUs (set before ray.init, so
    every Ray process inherits it; a value the user set wins):

    - a local instance is never preempted, so Ray Train's preemption-watcher actor is skipped,
      one process less per Train run;
    - the raylet keeps and starts `WORKERS_PER_CPU` workers per CPU (`worker_settings`).
    """
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    for name, value in worker_settings(num_cpus).items():
        os.environ.setdefault(name, value)


def ensure_ray(num_cpus: int | None = None) -> None:
    if ray.is_initialized():
        return
    # Workers' stdout and stderr are echoed here only when Ray's logs are wanted on the terminal
    # (raymtl.ray_logs); otherwise they stay in Ray's session logs.
    to_driver = ray_logs.log_to_driver()
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=to_driver)
        log.info("connected to the Ray cluster at %s", os.environ["RAY_ADDRESS"])
        ray_logs.note_session(_session_logs())
        return
    prepare_local_instance(num_cpus)
    # The dashboard head stays (include_dashboard=None: if its packages are installed, which
    # ray[default] brings): it serves the State API, and Ray Train V2's PlacementGroupCleaner
    # actor asks that API every second whether its Train controller is alive. Without it each
    # poll fails and logs "State API may be temporarily unavailable", for as long as the cleaner
    # lives, past the end of the run.
    ray.init(num_cpus=num_cpus, include_dashboard=None, log_to_driver=to_driver)
    log.info("started a local Ray instance with %s CPUs", int(ray.cluster_resources().get("CPU", 0)))
    ray_logs.note_session(_session_logs())


def _session_logs() -> str | None:
    """This Ray session's log folder on this machine (None where Ray does not say)."""
    try:
        return ray._private.worker.global_worker.node.get_logs_dir_path()
    except Exception:  # a private API; the folder is only named in a log file
        return None
