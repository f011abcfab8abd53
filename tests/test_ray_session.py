"""The local Ray instance raymtl starts (raymtl.ray_session): its raylet keeps the idle worker
processes that raymtl's fractional-CPU data tasks use, so a second pass over the data runs in
the processes of the first instead of starting new ones."""

from __future__ import annotations

import os
import time

import pytest

from raymtl.data.streams import DATA_CPUS
from raymtl.ray_session import WORKERS_PER_CPU, prepare_local_instance, worker_settings

SETTINGS = ("RAY_num_workers_soft_limit", "RAY_worker_maximum_startup_concurrency")


def test_a_local_instance_keeps_and_starts_four_workers_per_cpu(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    prepare_local_instance(num_cpus=2)
    assert [os.environ[name] for name in SETTINGS] == ["8", "8"]
    for name in SETTINGS:
        monkeypatch.delenv(name)
    prepare_local_instance(num_cpus=16)
    assert [os.environ[name] for name in SETTINGS] == ["64", "64"]


def test_settings_the_user_made_win(monkeypatch):
    monkeypatch.setenv(SETTINGS[0], "3")
    monkeypatch.delenv(SETTINGS[1], raising=False)
    prepare_local_instance(num_cpus=2)
    assert [os.environ[name] for name in SETTINGS] == ["3", "8"]


def test_four_workers_per_cpu_cover_the_data_tasks_a_node_runs_at_once():
    assert WORKERS_PER_CPU * DATA_CPUS >= 1  # the smallest share raymtl's data tasks ask for


def _process_start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime, clock ticks since boot


def test_a_second_pass_of_quarter_cpu_tasks_starts_no_worker_process(ray_session):
    """Eight quarter-CPU tasks at once on the tests' 2 CPUs (a barrier holds each until all eight
    run, so eight workers are in use), then idle for longer than Ray's 1 s before it ends surplus
    idle workers, then eight again: with Ray's default (one idle worker per CPU) six of the
    second pass's workers would be new processes."""
    ray = ray_session
    n = int(ray.cluster_resources()["CPU"] / DATA_CPUS)

    @ray.remote(num_cpus=0)
    class Barrier:
        def __init__(self):
            self.arrived = 0

        def arrive(self) -> int:
            self.arrived += 1
            return self.arrived

        def count(self) -> int:
            return self.arrived

    @ray.remote(num_cpus=DATA_CPUS)
    def hold(barrier, expected: int) -> tuple[int, int]:
        ray.get(barrier.arrive.remote())
        deadline = time.monotonic() + 60
        while ray.get(barrier.count.remote()) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return os.getpid(), _process_start_ticks(os.getpid())

    def one_pass() -> dict[int, int]:
        barrier = Barrier.remote()
        workers = dict(ray.get([hold.remote(barrier, n) for _ in range(n)], timeout=120))
        ray.kill(barrier)
        return workers

    first = one_pass()
    assert len(first) == n == 8, "the eight tasks ran in eight worker processes at once"
    time.sleep(3)  # Ray ends idle workers beyond its soft limit after 1 s (checked every 0.2 s)
    with open("/proc/uptime") as f:
        before_second = float(f.read().split()[0]) * os.sysconf("SC_CLK_TCK")
    second = one_pass()
    started_since = sorted(pid for pid, start in second.items() if start > before_second)
    assert started_since == [], f"worker processes started for the second pass: {started_since}"


@pytest.mark.parametrize(
    "cpus, expected", [(0.5, "4"), (1, "4"), (2, "8"), (None, str(WORKERS_PER_CPU * (os.cpu_count() or 1)))]
)
def test_worker_settings(cpus, expected):
    assert set(worker_settings(cpus).values()) == {expected}
