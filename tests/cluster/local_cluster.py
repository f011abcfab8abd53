"""A local autoscaling Ray cluster for tests: Ray's fake multi-node provider on this machine.

`ray.cluster_utils.AutoscalingCluster` starts such a cluster, but its `start()` and `shutdown()`
run `ray stop --force`, which stops every Ray instance of the machine (the test session's own
among them), and it reads `fake_multi_node/example.yaml`, which the 2.60 wheel lacks. This
helper does what it does with neither: it writes the autoscaling config itself and runs
`ray start --head --block` with `RAY_FAKE_CLUSTER=1` in a process session of its own, on
loopback and free ports, then stops exactly that session.

Worker nodes are real raylets that the autoscaler's monitor process starts (as children of the
head's processes) with the resources their node type declares; a custom resource stands in for
a GPU, which has no CUDA device here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HEAD_TYPE = "ray.head.default"  # the node type name the fake provider gives the head


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def autoscaling_config(
    gcs_port: int, head_resources: dict, worker_types: dict, idle_timeout_minutes: float
) -> dict:
    """The fake provider's cluster config (what `fake_multi_node/example.yaml` held): a head
    type that the autoscaler never adds, the worker types, and no setup of any kind."""
    types = {HEAD_TYPE: {"resources": head_resources, "node_config": {}, "max_workers": 0}}
    types.update({name: {"node_config": {}, "min_workers": 0, **t} for name, t in worker_types.items()})
    return {
        "cluster_name": "raymtl-test",
        "max_workers": sum(t["max_workers"] for t in worker_types.values()),
        "provider": {
            "type": "fake_multinode",
            "gcs_address": f"127.0.0.1:{gcs_port}",  # the provider's default is the machine IP :6379
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": types,
        "head_node_type": HEAD_TYPE,
        "auth": {},
        "upscaling_speed": 2.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


class LocalAutoscalingCluster:
    """`with LocalAutoscalingCluster(tmp, {"CPU": 1}, {"accel_worker": {...}}) as c:` then
    `RAY_ADDRESS=c.address` for drivers (in subprocesses: this process keeps its own Ray)."""

    def __init__(
        self,
        tmp: Path,
        head_resources: dict,
        worker_types: dict,
        idle_timeout_minutes: float = 5.0,
        extra_env: dict | None = None,
    ):
        self.tmp = Path(tmp)
        self.extra_env = dict(extra_env or {})  # e.g. the S3 endpoint, for every node's processes
        self.gcs_port, self.client_port, self.agent_port, self.dashboard_port = free_ports(4)
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.head_cpus = head_resources.get("CPU", 0)
        self.config = autoscaling_config(self.gcs_port, head_resources, worker_types, idle_timeout_minutes)
        self.config_path = self.tmp / "autoscaling.json"
        # Short: Unix socket paths under the temp dir are length-limited.
        self.temp_dir = Path("/tmp") / f"rc{self.gcs_port}"
        self.log = self.tmp / "head.log"
        self.head: subprocess.Popen | None = None
        self.last_error = ""
        self._gcs = None

    def env(self) -> dict:
        """The environment of every process of this cluster and of its drivers."""
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(
            RAY_FAKE_CLUSTER="1",
            AUTOSCALER_UPDATE_INTERVAL_S="1",
            # Ray's "not a cluster" switch: every node, the autoscaler's too, takes the loopback
            # address as its IP instead of the machine's outward one.
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            # A test cluster on loopback: no token, whether or not ~/.ray/auth_token exists (the
            # head turns token authentication on when it finds one, its drivers do not).
            RAY_AUTH_MODE="disabled",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout_s: float = 120) -> "LocalAutoscalingCluster":
        self.config_path.write_text(json.dumps(self.config, indent=1))
        head_resources = {
            k: v
            for k, v in self.config["available_node_types"][HEAD_TYPE]["resources"].items()
            if k not in ("CPU", "GPU")
        }
        ray_bin = str(Path(sys.executable).with_name("ray"))
        cmd = [
            ray_bin,
            "start",
            "--head",
            "--block",
            f"--autoscaling-config={self.config_path}",
            "--node-ip-address=127.0.0.1",
            f"--port={self.gcs_port}",
            f"--num-cpus={self.head_cpus}",
            "--num-gpus=0",
            f"--resources={json.dumps(head_resources)}",
            "--include-dashboard=false",
            f"--dashboard-port={self.dashboard_port}",  # its usage-stats module starts even so
            f"--ray-client-server-port={self.client_port}",
            f"--dashboard-agent-listen-port={self.agent_port}",
            f"--temp-dir={self.temp_dir}",
        ]
        with open(self.log, "w") as f:
            self.head = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        try:
            while not self.nodes():
                if self.head.poll() is not None:
                    raise RuntimeError(
                        f"ray start --head exited {self.head.returncode}:\n{self.log.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the head did not come up:\n{self.log.read_text()[-3000:]}\n{self.last_error}"
                    )
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def nodes(self) -> list[dict]:
        """The cluster's live nodes, from its GCS ([{node_id, ip, resources}]; [] while it is not
        up). A standalone GCS client: this process stays connected to its own Ray instance."""
        from ray._raylet import GcsClient
        from ray.core.generated.gcs_pb2 import GcsNodeInfo

        try:
            if self._gcs is None:
                self._gcs = GcsClient(address=self.address)
            infos = self._gcs.get_all_node_info(timeout=10)
        except Exception as e:  # not up yet, or gone
            self.last_error = repr(e)
            return []
        return [
            {"node_id": i.node_id.hex(), "ip": i.node_manager_address, "resources": dict(i.resources_total)}
            for i in infos.values()
            if i.state == GcsNodeInfo.GcsNodeState.ALIVE
        ]

    def processes(self) -> list[int]:
        """Every process of this cluster: those in the head's process session (worker nodes'
        raylets and their workers are started from it and stay in it)."""
        if self.head is None:
            return []
        return session_processes(self.head.pid)

    def stop(self) -> None:
        """SIGTERM to `ray start --block` (it stops the head's processes), then SIGKILL to
        whatever of the session is left (worker nodes started by the autoscaler)."""
        if self.head is None:
            return
        if self.head.poll() is None:
            self.head.send_signal(signal.SIGTERM)
            try:
                self.head.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(3):
            left = session_processes(self.head.pid)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        if self.head.poll() is None:
            self.head.kill()
            self.head.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalAutoscalingCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def session_processes(sid: int) -> list[int]:
    """Process ids in the process session `sid`, from /proc (Linux)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the command: state, ppid, pgrp, session
            out.append(int(stat.parent.name))
    return out
