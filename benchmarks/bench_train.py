"""Ray's overhead on one member: a `tiny` baseline-asc trial in Ray Train against a plain
PyTorch loop over the same patches in this process, measured in one run.

Reports (1) the steady-state epoch time inside the Ray Train worker (streamed from Parquet)
against the plain loop's epoch time (data already in memory), and (2) the whole trial's wall
time against the plain loop's total, i.e. the fixed start-up cost of a Train run."""

from __future__ import annotations

import argparse
import json
import shutil
import time

import numpy as np
import torch

from benchmarks.common import BENCH_OUT, features, setup_logging


def plain_epochs(feats, preset, epochs: int) -> list[float]:
    """The same network, optimiser, batch size and data, without Ray."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raymtl.config import FeatureConfig
    from raymtl.data import stored
    from raymtl.data.partitions import clip_columns, patch_index, read_manifest, split_files
    from raymtl.models import build_model

    cfg = FeatureConfig(**read_manifest(str(feats))["features"])
    images = ("left", "right", "sum")

    def patches(split):
        table = pa.concat_tables(
            pq.read_table(f, columns=clip_columns("tut2017", images))
            for f in split_files(str(feats), "tut2017", 1, split)
        ).combine_chunks()
        index, decoded = patch_index(table, "tut2017", images, cfg)
        labels = table.column("label").to_numpy().astype(np.int64)[index.row]
        return torch.from_numpy(stored.cut(decoded, images, index, cfg)), torch.from_numpy(labels)

    x, y = patches("train")
    x_val, _ = patches("validation")
    # The same memory format (channels-last) and threads (one, as a 1-CPU Train worker gets) as
    # the Train loop, so the ratio is Ray's alone.
    torch.set_num_threads(1)
    net = build_model("baseline", preset.model, {"asc": 15, "aec": 50}, task="asc").to(
        memory_format=torch.channels_last
    )
    x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (N, 1, 128, 128)
    opt = torch.optim.Adam(net.parameters(), lr=preset.train.lr)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        net.train()
        for b in torch.randperm(len(x)).split(preset.train.batch_size):
            loss = torch.nn.functional.cross_entropy(net(x[b])["asc"], y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()  # the per-epoch validation pass, as the Ray loop does it
        with torch.no_grad():
            for b in x_val.split(preset.train.batch_size):
                net(b)["asc"].softmax(dim=1)
        times.append(time.perf_counter() - t)
    return times


def main(argv=None) -> dict:
    import ray

    from raymtl.config import get_preset
    from raymtl.train.runner import run_trial
    from raymtl.train.trial import TrialSpec

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", default="tiny")
    args = p.parse_args(argv)
    setup_logging()
    feats = features(args.size)
    preset = get_preset("tiny")
    epochs = preset.train.epochs_train_asc
    run = BENCH_OUT / "bench-train-run"
    shutil.rmtree(run, ignore_errors=True)
    ray.init(include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    t = time.perf_counter()
    run_trial(TrialSpec("baseline-asc", 1, 1, "triple"), str(feats), str(run), preset)
    ray_total = time.perf_counter() - t
    ray.shutdown()
    metrics = [
        json.loads(x)
        for x in (run / "trials" / "baseline-asc-d1-r1-triple" / "metrics.jsonl").read_text().splitlines()
    ]
    ray_epoch = float(np.median([m["seconds"] for m in metrics[1:]]))  # without the first (warm-up) epoch
    t = time.perf_counter()
    plain = plain_epochs(feats, preset, epochs)
    plain_total = time.perf_counter() - t
    plain_epoch = float(np.median(plain[1:]))
    res = {
        "ray_epoch_s": ray_epoch,
        "plain_epoch_s": plain_epoch,
        "epoch_ratio": ray_epoch / plain_epoch,
        "ray_trial_s": ray_total,
        "plain_total_s": plain_total,
        "trial_ratio": ray_total / plain_total,
        "patches_per_epoch": metrics[0]["patches"],
    }
    print(
        f"train ({metrics[0]['patches']} patches/epoch, tiny): Ray Train epoch {ray_epoch:.2f} s vs "
        f"plain PyTorch {plain_epoch:.2f} s: ratio {res['epoch_ratio']:.2f}; whole trial {ray_total:.0f} s "
        f"vs plain {plain_total:.0f} s ({epochs} epochs): ratio {res['trial_ratio']:.2f}"
    )
    return res


if __name__ == "__main__":
    main()
