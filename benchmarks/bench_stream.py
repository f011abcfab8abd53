"""The mixup data stream alone: FEATURES (v2) -> the split's files -> cut + mixup pairing ->
`iter_torch_batches` (batch 256, as training consumes it), in patches/s, against the same rows
read, cut, paired and batched with plain pyarrow + numpy in this one process.

    python -m benchmarks.bench_stream [--size tiny|demo|full] [--features DIR] [--epochs 3]

Features come from the synthetic data (`raymtl.data.synth`, then `featurize`) under
`bench-out/` (`benchmarks.common`), made on the first run and reused after; `--features` names a
FEATURES folder made elsewhere (the full size: `raymtl synth --size full --seed 5` and
`raymtl featurize`, 12 GB of WAV, made once). One member's stream: division 1, train, the
variant's images. Reported, from one run:

- build: seconds from nothing to a stream ready to iterate (the event pool read and put in the
  object store, the stream defined), and to its first batch;
- the steady rate of the streamed path (each epoch re-reads the split's files, as training does
  when the set does not fit in memory), epochs after the first;
- the same with the split's clip rows materialized once (`materialize_scenes`), and with a
  2048-row local shuffle buffer (what the Train loop used before the streams shuffled);
- the plain single-process reader of the same layout and its ratio;
- bytes read per epoch (the Parquet column chunks of the split's files the stream decodes);
- peak memory of the driver and the Ray worker processes (private, and object store);
- the stream against what a GPU member consumes: ~8,000 mixup patches/s on an H100 (61.8 GFLOP a
  patch for the two MTL-IC networks of width 1, at half of ~990 TFLOP/s dense bf16).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import features as common_features
from benchmarks.common import setup_logging

BATCH = 256
DIVISION = 1
H100_PATCHES_PER_S = 8000  # 61.8 GFLOP per mixup patch (two width-1 MTL-IC nets) at ~495 TFLOP/s

log = logging.getLogger("bench_stream")


class MemorySampler:
    """Peak memory of this process and its descendants (the local Ray node), sampled from /proc:
    private (RssAnon) summed, and shared memory (the object store's pages) at its largest."""

    def __init__(self, every_s: float = 0.25):
        self.every_s = every_s
        self.peak_private = 0
        self.peak_shared = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree() -> list[int]:
        parents: dict[int, int] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(c for c, p in parents.items() if p == pid)
        return tree

    @staticmethod
    def _rss(pid: int) -> tuple[int, int]:
        anon = shmem = 0
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon = int(line.split()[1]) * 1024
                    elif line.startswith("RssShmem:"):
                        shmem = int(line.split()[1]) * 1024
        except OSError:
            pass
        return anon, shmem

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = [self._rss(p) for p in self._tree()]
            self.peak_private = max(self.peak_private, sum(a for a, _ in sizes))
            self.peak_shared = max(self.peak_shared, max((s for _, s in sizes), default=0))
            self._stop.wait(self.every_s)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def bytes_read_per_epoch(features: Path, variant: str) -> tuple[int, int]:
    """(bytes of the Parquet column chunks a mixup stream of division 1's train split decodes,
    bytes of the whole FEATURES folder's Parquet files)."""
    import pyarrow.parquet as pq

    from raymtl.data.features import VARIANT_IMAGES
    from raymtl.data.partitions import clip_columns, split_files

    columns = set(clip_columns("tut2017", VARIANT_IMAGES[variant]))
    read = 0
    for f in split_files(str(features), "tut2017", DIVISION, "train"):
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                if col.path_in_schema.split(".")[0] in columns:
                    read += col.total_compressed_size
    total = sum(p.stat().st_size for p in features.rglob("*.parquet"))
    return read, total


def plain_epoch(features: Path, variant: str, seed: int, epoch: int, pool: dict) -> int:
    """One epoch in this process: pyarrow read of the same files, the same cut, the same partners
    (the precomputed keys), torch batches."""
    import pyarrow.parquet as pq
    import torch

    from raymtl import schema
    from raymtl.config import FeatureConfig
    from raymtl.data import stored
    from raymtl.data.features import VARIANT_IMAGES
    from raymtl.data.mixup import partner_indices
    from raymtl.data.partitions import clip_columns, patch_index, read_manifest, split_files

    cfg = FeatureConfig(**read_manifest(str(features))["features"])
    images = VARIANT_IMAGES[variant]
    columns = clip_columns("tut2017", images)
    n = 0
    for f in split_files(str(features), "tut2017", DIVISION, "train"):
        table = pq.read_table(f, columns=columns)
        index, decoded = patch_index(table, "tut2017", images, cfg)
        label = table.column(schema.LABEL).to_numpy().astype(np.int64)
        idx_all = partner_indices(index.key, seed, epoch, len(pool["label"]))
        for s in range(0, len(index), BATCH):
            part = index.take(slice(s, s + BATCH))
            idx = idx_all[s : s + BATCH]
            x = stored.cut(decoded, images, part, cfg)
            x += pool["patch"][idx]
            x *= np.float32(0.5)
            batch = {
                "x": torch.from_numpy(x),
                "y_asc": torch.from_numpy(label[part.row]),
                "y_aec": torch.from_numpy(pool["label"][idx]),
            }
            n += len(batch["x"])
    return n


def ray_epochs(
    features: Path,
    variant: str,
    seed: int,
    epochs: int,
    concurrency: int,
    *,
    pairing: str = "tasks",
    block_patches: int | None = None,
    materialize: bool = False,
    shuffle_buffer: int | None = None,
) -> dict:
    import ray

    from raymtl.data.mixup import EpochCounter, load_event_pool
    from raymtl.data.streams import mixup_stream

    label = (
        "materialized"
        if materialize
        else f"shuffle buffer {shuffle_buffer}" if shuffle_buffer else "streamed"
    )
    t0 = time.perf_counter()
    pool_ref = ray.put(load_event_pool(str(features), DIVISION, "train"))
    counter = EpochCounter.start(0)
    ds = mixup_stream(
        str(features),
        DIVISION,
        "train",
        variant,
        seed,
        counter,
        pool_ref,
        pairing=pairing,
        batch_size=block_patches,
        concurrency=concurrency,
        materialize_scenes=materialize,
        shuffle=True,
    )
    build_s = time.perf_counter() - t0
    out, first_batch_s = [], None
    for epoch in range(epochs):
        ray.get(counter.set.remote(epoch))
        t = time.perf_counter()
        n = 0
        for batch in ds.iter_torch_batches(batch_size=BATCH, local_shuffle_buffer_size=shuffle_buffer):
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - t0
            n += len(batch["x"])
        out.append((n, time.perf_counter() - t))
        log.warning("ray epoch %d (%s): %d patches in %.2f s", epoch, label, n, out[-1][1])
    ray.kill(counter)
    steady = out[1:]
    return {
        "build_s": build_s,
        "first_batch_s": first_batch_s,
        "epochs": out,
        "patches_per_s": sum(r[0] for r in steady) / sum(r[1] for r in steady),
        "first_epoch_patches_per_s": out[0][0] / out[0][1],
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_stream", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--size", choices=("tiny", "demo", "full"), default="demo", help="synthetic data size (default demo)"
    )
    p.add_argument("--features", help="a FEATURES folder to use instead of the synthetic data of --size")
    p.add_argument("--variant", choices=("triple", "quadruple"), default="triple")
    p.add_argument(
        "--epochs", type=int, default=3, help="Ray epochs per path; the first is reported apart (default 3)"
    )
    p.add_argument(
        "--pairing",
        choices=("tasks", "actors"),
        default="tasks",
        help="mixup_stream's pairing (default tasks)",
    )
    p.add_argument("--block-patches", type=int, help="patches per block the pairing emits (default 1024)")
    p.add_argument(
        "--concurrency", type=int, default=1, help="mixup actors, with --pairing actors (default 1)"
    )
    p.add_argument("--skip", default="", help="comma-separated paths not to run: buffer,materialized,plain")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first one is warm-up)")
    skip = set(filter(None, args.skip.split(",")))
    setup_logging()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

    import ray

    from raymtl.data.mixup import load_event_pool
    from raymtl.ray_session import ensure_ray

    features = Path(args.features) if args.features else common_features(args.size)
    size = args.size if not args.features else f"{args.size} ({features})"
    seed = 0
    result: dict = {
        "size": size,
        "variant": args.variant,
        "pairing": args.pairing,
        "concurrency": args.concurrency,
    }
    with MemorySampler() as mem:
        ensure_ray()
        ray.data.DataContext.get_current().enable_progress_bars = False
        result["cpus"] = int(ray.cluster_resources().get("CPU", 0))
        streamed = ray_epochs(
            features,
            args.variant,
            seed,
            args.epochs,
            args.concurrency,
            pairing=args.pairing,
            block_patches=args.block_patches,
        )
        result["peak_private_bytes_streamed"] = mem.peak_private
        if "buffer" not in skip:
            buffered = ray_epochs(
                features,
                args.variant,
                seed,
                2,
                args.concurrency,
                pairing=args.pairing,
                block_patches=args.block_patches,
                shuffle_buffer=2048,
            )
        if "materialized" not in skip:
            kept = ray_epochs(
                features,
                args.variant,
                seed,
                args.epochs,
                args.concurrency,
                pairing=args.pairing,
                block_patches=args.block_patches,
                materialize=True,
            )
        plain_rate = None
        if "plain" not in skip:
            pool = load_event_pool(str(features), DIVISION, "train")
            plain = []
            for epoch in range(2):
                t0 = time.perf_counter()
                n = plain_epoch(features, args.variant, seed, epoch, pool)
                plain.append((n, time.perf_counter() - t0))
            plain_rate = plain[-1][0] / plain[-1][1]  # the second: warm page cache, as for Ray's
            del pool
    n = streamed["epochs"][0][0]
    read, total = bytes_read_per_epoch(features, args.variant)
    rate = streamed["patches_per_s"]
    result.update(
        patches_per_epoch=n,
        build_s=round(streamed["build_s"], 2),
        first_batch_s=round(streamed["first_batch_s"], 2),
        ray_patches_per_s=round(rate, 1),
        ray_first_epoch_patches_per_s=round(streamed["first_epoch_patches_per_s"], 1),
        bytes_read_per_epoch=read,
        features_bytes=total,
        peak_private_bytes=mem.peak_private,
        peak_object_store_bytes=mem.peak_shared,
        h100_patches_per_s=H100_PATCHES_PER_S,
        stream_over_h100=round(rate / H100_PATCHES_PER_S, 3),
    )
    lines = [
        f"bench_stream ({size}, {args.variant}, division {DIVISION} train, {n} patches/epoch, "
        f"{result['cpus']} CPUs, pairing in {args.pairing}"
        + (f", {args.concurrency} actor(s)" if args.pairing == "actors" else "")
        + "):",
        f"  build {streamed['build_s']:.1f} s (first batch after {streamed['first_batch_s']:.1f} s); "
        f"streamed {rate:.0f} patches/s (first epoch {streamed['first_epoch_patches_per_s']:.0f})",
        f"  bytes read per epoch {read / 2**20:.1f} MiB ({read / n:.0f} B/patch); "
        f"FEATURES {total / 2**20:.1f} MiB on disk",
    ]
    if "buffer" not in skip:
        result["ray_shuffle_buffer_patches_per_s"] = round(buffered["patches_per_s"], 1)
        lines.append(f"  with a 2048-row local shuffle buffer: {buffered['patches_per_s']:.0f} patches/s")
    if "materialized" not in skip:
        result["ray_materialized_patches_per_s"] = round(kept["patches_per_s"], 1)
        result["materialize_first_epoch_s"] = round(kept["epochs"][0][1], 2)
        lines.append(
            f"  materialized: {kept['patches_per_s']:.0f} patches/s (first epoch, which reads and keeps, "
            f"{kept['epochs'][0][1]:.1f} s)"
        )
    if plain_rate is not None:
        result["plain_patches_per_s"] = round(plain_rate, 1)
        result["ratio_ray_to_plain"] = round(rate / plain_rate, 3)
        lines.append(
            f"  plain pyarrow+numpy in one process: {plain_rate:.0f} patches/s; "
            f"ratio Ray/plain {rate / plain_rate:.2f}"
        )
    lines.append(
        f"  peak memory: {mem.peak_private / 2**20:.0f} MiB private (driver + Ray workers), "
        f"{mem.peak_shared / 2**20:.0f} MiB object store mapped"
    )
    lines.append(
        f"  GPU: an H100 member consumes ~{H100_PATCHES_PER_S} mixup patches/s (arithmetic, not measured); "
        f"this stream delivers {rate / H100_PATCHES_PER_S:.2f}x that (goal: 2x)"
    )
    print("\n".join(lines))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
