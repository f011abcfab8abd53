"""The ensemble grid's parallel efficiency and scheduling overhead, measured in one run.

N members (divisions 1..N, repeat 1, triple, ASC only, a short `tiny`-based preset) are trained
twice on the same local Ray instance, each time into a fresh RUN:
  - one after another: `raymtl ensemble --max-concurrent 1`;
  - in parallel: `--max-concurrent K` with `--cpus-per-trial` chosen so K members fit.
Reports the speed-up (sequential / parallel wall time), the parallel efficiency (speed-up / K),
and the overhead per member in the sequential run: its wall time minus the time the members'
trials report as their own (`result.json` "seconds": epochs and scoring in the Train worker),
over N. That overhead is everything else a member costs: Tune's scheduling, the member's data
preparation (event pool, materialized streams) and Ray Train's start-up, once per member.

On a GPU machine pass `--gpus-per-trial` (e.g. 1, or 0.5 to pack two members on a GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from benchmarks.common import BENCH_OUT, features, setup_logging


def _preset_file(epochs: int) -> Path:
    from raymtl.config import PRESETS

    tiny = PRESETS["tiny"]
    preset = dataclasses.replace(
        tiny,
        name="bench-grid",
        train=dataclasses.replace(
            tiny.train,
            epochs_train_asc=epochs,
            epochs_train_aec=epochs,
            epochs_finetune_asc=epochs,
            max_train_patches=512,
        ),
    )
    path = BENCH_OUT / "bench-grid-preset.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(preset.to_dict()))
    return path


def _grid(
    feats: Path, run: Path, preset: Path, n: int, concurrent: int, cpus: float, gpus: float
) -> tuple[float, float]:
    """(wall seconds, sum of the trials' own seconds) of one ensemble run into a fresh `run`."""
    from raymtl.ensemble.grid import GridOptions, run_ensemble
    from raymtl.ensemble.plan import EnsemblePlan

    shutil.rmtree(run, ignore_errors=True)
    plan = EnsemblePlan(divisions=list(range(1, n + 1)), repeats=[1], variants=["triple"], tasks=["asc"])
    options = GridOptions(gpus_per_trial=gpus, cpus_per_trial=cpus, max_concurrent=concurrent)
    t0 = time.perf_counter()
    report = run_ensemble(str(feats), str(run), str(preset), plan, options)
    wall = time.perf_counter() - t0
    if report.failed:
        raise RuntimeError(f"members failed: {report.failed}")
    own = sum(json.loads(p.read_text())["seconds"] for p in run.glob("trials/*/result.json"))
    return wall, own


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=2, help="N members (divisions 1..N; at most 4)")
    p.add_argument("--concurrent", type=int, default=2, help="K members at once in the parallel run")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    args = p.parse_args(argv)
    setup_logging()

    import ray

    from raymtl.ray_session import ensure_ray

    feats = features("tiny")
    ensure_ray()
    total_cpus = ray.cluster_resources().get("CPU", 1)
    # K Train workers plus one CPU for the Ray Data tasks feeding them.
    cpus = 1.0 if args.gpus_per_trial else max(0.25, (total_cpus - 1) / args.concurrent)
    preset = _preset_file(args.epochs)
    out = BENCH_OUT / "grid"

    seq_wall, seq_own = _grid(feats, out / "sequential", preset, args.members, 1, cpus, args.gpus_per_trial)
    par_wall, _ = _grid(
        feats, out / "parallel", preset, args.members, args.concurrent, cpus, args.gpus_per_trial
    )
    speedup = seq_wall / par_wall
    device = f"{args.gpus_per_trial} GPU" if args.gpus_per_trial else f"{cpus:g} CPU"
    print(
        f"grid: {args.members} members (mtl-ic + finetune-asc each), {device} per Train worker, "
        f"{int(total_cpus)} CPUs"
    )
    print(f"  one after another: {seq_wall:.1f} s; {args.concurrent} at once: {par_wall:.1f} s")
    print(f"  speed-up {speedup:.2f}x, parallel efficiency {speedup / args.concurrent:.2f}")
    print(
        f"  overhead per member (sequential wall - trials' own time in their Train workers): "
        f"{(seq_wall - seq_own) / args.members:.1f} s"
    )


if __name__ == "__main__":
    main()
