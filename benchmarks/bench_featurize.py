"""Featurization throughput: the Ray Data pipeline against a plain single-process librosa loop
over the same files (both read, compute the log-mel channel images and write them as FEATURES
version 2 stores them: int16, each image once), in seconds of audio per wall second, measured in
one run; and bytes on disk per patch the streams cut from them."""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import BENCH_OUT, setup_logging, synth_data


def plain_loop(data, out) -> tuple[int, float]:
    """The same work without Ray: one process, one file after another."""
    from raymtl.config import FeatureConfig
    from raymtl.data import stored
    from raymtl.data.audio import load_clip
    from raymtl.data.esc50 import parse_esc50
    from raymtl.data.features import LogMel, channel_images
    from raymtl.data.tut2017 import parse_tut2017

    cfg = FeatureConfig()
    clips = list(parse_esc50(data / "esc50").clips) + list(
        parse_tut2017(data / "tut2017-dev", data / "tut2017-eval").clips
    )
    logmel = LogMel(cfg)
    logmel(np.zeros(cfg.sample_rate_hz, np.float32))
    n_patches, audio_s, cells = 0, 0.0, []
    for c in clips:
        tut = c.dataset == "tut2017"
        a = load_clip(
            c.path,
            channels=2 if tut else 1,
            sample_rate_hz=cfg.sample_rate_hz,
            duration_s=10.0 if tut else 5.0,
            exact_duration=tut,
        )
        audio_s += a.samples.shape[0] / cfg.sample_rate_hz
        images = channel_images(a.samples, logmel)
        for name in stored.STORED_IMAGES[c.dataset]:
            cells.append(stored.encode(stored.quantize(images[name])[0]))
        n_patches += len(images) * cfg.n_patches(next(iter(images.values())).shape[1])
    table = pa.table({"image": pa.array(cells, pa.binary())})
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "plain.parquet", compression="none")
    return n_patches, audio_s


def main(argv=None) -> dict:
    import ray

    from raymtl.data.featurize import featurize

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", default="tiny")
    args = p.parse_args(argv)
    setup_logging()
    data = synth_data(args.size)
    ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Warm-up: the first Ray Data job pays worker start-up; a user featurizing a real dataset
    # pays it once per hour-long run, so it is measured separately.
    out_ray = BENCH_OUT / "bench-featurize-ray"
    t = time.perf_counter()
    featurize(
        str(data / "esc50"),
        str(data / "tut2017-dev"),
        str(data / "tut2017-eval"),
        str(out_ray),
        overwrite=True,
    )
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    report = featurize(
        str(data / "esc50"),
        str(data / "tut2017-dev"),
        str(data / "tut2017-eval"),
        str(out_ray),
        overwrite=True,
    )
    ray_s = time.perf_counter() - t
    out_plain = BENCH_OUT / "bench-featurize-plain"
    t = time.perf_counter()
    n_plain, audio_s = plain_loop(data, out_plain)
    plain_s = time.perf_counter() - t
    assert n_plain == report.patches, (n_plain, report.patches)
    parquet_bytes = sum(f.stat().st_size for f in out_ray.rglob("*.parquet"))
    cpus = int(ray.cluster_resources().get("CPU", 0))
    ray.shutdown()
    shutil.rmtree(out_plain, ignore_errors=True)
    res = {
        "clips": report.clips,
        "patches": report.patches,
        "cpus": cpus,
        "ray_audio_s_per_s": audio_s / ray_s,
        "plain_audio_s_per_s": audio_s / plain_s,
        "ratio_ray_over_plain": plain_s / ray_s,
        "ray_first_run_s": first_s,
        "bytes_per_patch": parquet_bytes / report.patches,
    }
    print(
        f"featurize ({args.size}, {report.clips} clips, {report.patches} patches, {cpus} CPUs): "
        f"Ray Data {res['ray_audio_s_per_s']:.0f} s audio/s, "
        f"plain loop {res['plain_audio_s_per_s']:.0f} s audio/s, "
        f"ratio {res['ratio_ray_over_plain']:.2f}x (first Ray run incl. start-up {first_s:.1f} s); "
        f"{res['bytes_per_patch']:.0f} bytes/patch on disk "
        f"(a float32 patch: {128 * 128 * 4}; FEATURES v1 stored that)"
    )
    return res


if __name__ == "__main__":
    main()
