"""The mixup data stream alone: Parquet -> division/split filter -> mixup pairing ->
`iter_torch_batches` (batch 256, as training consumes it), in patches/s, against the same rows
read, filtered, paired and batched with plain pyarrow + numpy in this one process.

    python -m benchmarks.bench_stream [--size demo|tiny] [--epochs 4]

Features come from the synthetic data (`raymtl.data.synth`, then `featurize`) under
`bench-out/` (`benchmarks.common`), made on the first run and reused after. Each epoch re-reads the Parquet
files in both paths (as training does: Ray Data re-executes the stream every epoch). The Ray
figure is the mean over the epochs after the first; the first, which pays for starting the
actors, is reported separately. A second figure has the scene patches read and filtered once
(`mixup_stream(materialize_scenes=True)`, as the training runner does for data that fits in
memory), so that only the pairing re-runs each epoch.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.common import features as common_features
from benchmarks.common import setup_logging

BATCH = 256
DIVISION = 1

log = logging.getLogger("bench_stream")


def plain_epoch(features: Path, variant: str, seed: int, epoch: int) -> int:
    """One epoch in this process: pyarrow read, split_mask filter, the same partners, torch batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from raymtl import schema
    from raymtl.data.features import ESC_IMAGES, VARIANT_IMAGES
    from raymtl.data.mixup import key_hash, partner_indices
    from raymtl.data.splits import split_mask

    cols = [
        schema.DATASET,
        schema.SUBSET,
        schema.FOLD,
        schema.CLIP,
        schema.IMAGE,
        schema.PATCH_INDEX,
        schema.LABEL,
        schema.PATCH,
    ]
    table = pa.concat_tables(
        pq.read_table(p, columns=cols) for p in sorted(glob.glob(str(features / "*.parquet")))
    )
    meta = {c: table[c].to_numpy(zero_copy_only=False) for c in (schema.DATASET, schema.SUBSET, schema.FOLD)}
    image = table[schema.IMAGE].to_numpy(zero_copy_only=False)

    def rows(dataset, images):
        mask = split_mask(meta, dataset, "train", DIVISION) & np.isin(image, images)
        t = table.filter(pa.array(mask))
        arr = t[schema.PATCH].combine_chunks()
        arr = arr.storage if isinstance(arr, pa.ExtensionArray) else arr  # Ray's tensor type, or its storage
        patches = arr.flatten().to_numpy().reshape(-1, 128, 128)
        return t, patches

    esc, pool = rows("esc50", ESC_IMAGES)
    tut, scenes = rows("tut2017", VARIANT_IMAGES[variant])
    order = np.lexsort((esc[schema.PATCH_INDEX].to_numpy(), esc[schema.CLIP].to_numpy(zero_copy_only=False)))
    pool, pool_label = pool[order], esc[schema.LABEL].to_numpy()[order].astype(np.int64)
    keys = key_hash(
        tut[schema.CLIP].to_numpy(zero_copy_only=False),
        tut[schema.IMAGE].to_numpy(zero_copy_only=False),
        tut[schema.PATCH_INDEX].to_numpy(),
    )
    idx = partner_indices(keys, seed, epoch, len(pool))
    y_scene = tut[schema.LABEL].to_numpy().astype(np.int64)
    n = 0
    half = np.float32(0.5)
    for s in range(0, len(scenes), BATCH):
        i = idx[s : s + BATCH]
        batch = {
            "x": torch.from_numpy(half * scenes[s : s + BATCH] + half * pool[i]),
            "y_asc": torch.from_numpy(y_scene[s : s + BATCH]),
            "y_aec": torch.from_numpy(pool_label[i]),
        }
        n += len(batch["x"])
    return n


def ray_epochs(
    features: Path, variant: str, seed: int, epochs: int, concurrency: int, materialize: bool = False
) -> list[tuple[int, float]]:
    import ray

    from raymtl.data.mixup import EpochCounter, load_event_pool
    from raymtl.data.streams import mixup_stream

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
        concurrency=concurrency,
        materialize_scenes=materialize,
    )
    out = []
    for epoch in range(epochs):
        ray.get(counter.set.remote(epoch))
        t0 = time.perf_counter()
        n = 0
        for batch in ds.iter_torch_batches(batch_size=BATCH):
            n += len(batch["x"])
        out.append((n, time.perf_counter() - t0))
        log.info(
            "ray epoch %d%s: %d patches in %.2f s", epoch, " (materialized)" * materialize, n, out[-1][1]
        )
    ray.kill(counter)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_stream", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--size", choices=("tiny", "demo"), default="demo", help="synthetic data size (default demo)"
    )
    p.add_argument("--variant", choices=("triple", "quadruple"), default="quadruple")
    p.add_argument(
        "--epochs", type=int, default=4, help="Ray epochs; the first is reported apart (default 4)"
    )
    p.add_argument("--concurrency", type=int, default=1, help="mixup actors (default 1)")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first one is warm-up)")
    setup_logging()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

    import ray

    from raymtl.ray_session import ensure_ray

    ensure_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    features = common_features(args.size)
    seed = 0

    plain = []
    for epoch in range(2):
        t0 = time.perf_counter()
        n = plain_epoch(features, args.variant, seed, epoch)
        plain.append((n, time.perf_counter() - t0))
    plain_rate = plain[-1][0] / plain[-1][1]  # the second: warm page cache, as for Ray's

    runs = ray_epochs(features, args.variant, seed, args.epochs, args.concurrency)
    # What the training runner does when the scene patches fit in memory: read and filter once,
    # then only the pairing re-runs each epoch.
    t0 = time.perf_counter()
    kept = ray_epochs(features, args.variant, seed, args.epochs, args.concurrency, materialize=True)
    kept_total_s = time.perf_counter() - t0
    n = runs[0][0]
    if any(r[0] != n for r in runs) or plain[0][0] != n:
        raise RuntimeError(f"row counts differ: ray {[r[0] for r in runs]}, plain {plain[0][0]}")
    warm = runs[1:]
    ray_rate = sum(r[0] for r in warm) / sum(r[1] for r in warm)
    kept_rate = sum(r[0] for r in kept[1:]) / sum(r[1] for r in kept[1:])
    result = {
        "size": args.size,
        "variant": args.variant,
        "patches_per_epoch": n,
        "cpus": int(ray.cluster_resources().get("CPU", 0)),
        "ray_patches_per_s": round(ray_rate, 1),
        "ray_first_epoch_patches_per_s": round(runs[0][0] / runs[0][1], 1),
        "plain_patches_per_s": round(plain_rate, 1),
        "ratio_ray_to_plain": round(ray_rate / plain_rate, 3),
        "ray_materialized_patches_per_s": round(kept_rate, 1),
        "ray_materialized_total_s": round(kept_total_s, 2),
    }
    print(
        f"bench_stream: Parquet->filter->mixup->iter_torch_batches({BATCH}) {ray_rate:.0f} patches/s on Ray "
        f"(first epoch {result['ray_first_epoch_patches_per_s']:.0f}), plain pyarrow+numpy {plain_rate:.0f} "
        f"patches/s, ratio {ray_rate / plain_rate:.2f} ({n} patches/epoch, {args.size} {args.variant}, "
        f"{result['cpus']} CPUs); with the scene patches materialized once, {kept_rate:.0f} patches/s "
        f"(ratio {kept_rate / plain_rate:.2f})"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
