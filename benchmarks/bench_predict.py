"""Prediction speed: `raymtl predict` throughput in seconds of audio per wall second (mtl and
ensemble, with featurization alone beside it), and the Ray Serve endpoint's latency p50/p99 and
throughput under a bounded load from a second process on loopback, with `serve.batch` batching
and without (max_batch_size 1): the ratio is batching's gain, measured in one run.

Without --run, a RUN of the preset's network sizes is written under bench-out/ with untrained
(randomly initialised) weights: speed does not depend on the weights, and it spares the
benchmark an ensemble training. Its answers are meaningless; its timings are not.

    python -m benchmarks.bench_predict [--run RUN] [--preset demo|tiny|paper] [--files 6]
        [--requests 24] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import BENCH_OUT, setup_logging, synth_data

CLIENT_DEADLINE_S = 300  # the load generator stops by itself after this, whatever is left


def random_run(preset_name: str) -> Path:
    """A RUN with an mtl-ic trial and two fine-tuned members per task, untrained weights."""
    from raymtl import storage
    from raymtl.config import get_preset
    from raymtl.data.classes import ESC50_CLASSES, TUT2017_SCENES
    from raymtl.models import build_model, save_model

    preset = get_preset(preset_name)
    run = BENCH_OUT / f"run-predict-{preset_name}"
    if (run / "manifest.json").exists():
        return run
    fs, _ = storage.resolve(str(run))
    n_classes = {"asc": len(TUT2017_SCENES), "aec": len(ESC50_CLASSES)}
    names = {"asc": list(TUT2017_SCENES), "aec": list(ESC50_CLASSES)}
    trials = [("mtl-ic", "triple", "mtl-ic", ("asc", "aec"))]
    trials += [(f"finetune-{t}", v, "fusion", (t,)) for t in ("asc", "aec") for v in ("triple", "quadruple")]
    for experiment, variant, kind, targets in trials:
        name = f"{experiment}-d1-r1-{variant}"
        tdir = run / "trials" / name
        tdir.mkdir(parents=True, exist_ok=True)
        for t in targets:
            net = build_model(kind, preset.model, n_classes, t)
            extra = {"trial": name, "experiment": experiment, "variant": variant, "class_names": names}
            save_model(
                tdir / f"model-{t}.pt",
                net,
                kind=kind,
                task=t,
                cfg=preset.model,
                n_classes=n_classes,
                extra=extra,
            )
        result = {
            "trial": name,
            "val_accuracy": {t: 0.0 for t in targets},
            "note": "untrained: benchmark only",
        }
        storage.write_json(fs, str((tdir / "result.json").resolve()), result)
    manifest = {
        "format": "raymtl-run",
        "features": None,
        "preset": preset.to_dict(),
        "note": "untrained: benchmark only",
    }
    storage.write_json(fs, str((run / "manifest.json").resolve()), manifest)
    return run


def _predict_throughput(run: str, kind: str, files: list[Path], audio_s: float, repeats: int) -> dict:
    """Best of `repeats` passes (a shared machine's other load only ever slows a pass down)."""
    from raymtl.serving.models import load_models
    from raymtl.serving.predict import Predictor

    predictor = Predictor(load_models(run, kind))
    fz = predictor.featurizer
    predictor.predict_file(files[0])  # warm-up: first forward passes pick their kernels
    predict_s = featurize_s = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for f in files:
            predictor.predict_file(f)
        predict_s = min(predict_s, time.perf_counter() - t)
        t = time.perf_counter()
        for f in files:
            fz.patch_sets(fz.load(f))
        featurize_s = min(featurize_s, time.perf_counter() - t)
    members = {m.trial for m in predictor.models.scene_members + predictor.models.event_members}
    return {
        "networks": len(members),
        "audio_s_per_s": audio_s / predict_s,
        "featurize_audio_s_per_s": audio_s / featurize_s,
        "seconds": predict_s,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(url: str, path: Path, n: int, concurrency: int) -> dict:
    """The load from a second process: `n` uploads of `path`, `concurrency` at a time."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_predict",
            "--client",
            url,
            "--file",
            str(path),
            "--requests",
            str(n),
            "--concurrency",
            str(concurrency),
        ],
        capture_output=True,
        text=True,
        timeout=CLIENT_DEADLINE_S + 60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def client(url: str, path: Path, n: int, concurrency: int) -> dict:
    """Bounded in count (n requests) and in time (CLIENT_DEADLINE_S); loopback only."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    if not url.startswith(("http://127.", "http://localhost")):
        raise SystemExit(f"the load generator only sends to loopback, not {url}")
    data = path.read_bytes()
    deadline = time.monotonic() + CLIENT_DEADLINE_S

    def one(_):
        if time.monotonic() > deadline:
            return None
        t = time.perf_counter()
        r = requests.post(f"{url}/predict", files={"file": (path.name, data)}, timeout=120)
        return time.perf_counter() - t, r.status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for r in pool.map(one, range(n)) if r is not None]
    wall = time.perf_counter() - t0
    latencies = np.array([r[0] for r in results])
    return {
        "requests": len(results),
        "ok": sum(r[1] == 200 for r in results),
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "requests_per_s": len(results) / wall,
    }


def _serve(run: str, path: Path, audio_s: float, n: int, concurrency: int, max_batch_size: int) -> dict:
    import requests
    from ray import serve

    from raymtl.serving.serve import ServeOptions, start

    cpus = max(1, (os.cpu_count() or 2) - 1)  # one core left to the proxy and the load generator
    options = ServeOptions(
        model="mtl", max_batch_size=max_batch_size, batch_wait_timeout_s=0.02, num_cpus=cpus
    )
    url = start(run, "127.0.0.1", _free_port(), options)
    try:
        _load(url, path, 2, 1)  # warm-up
        before = requests.get(f"{url}/stats", timeout=30).json()
        res = _load(url, path, n, concurrency)
        after = requests.get(f"{url}/stats", timeout=30).json()
    finally:
        serve.shutdown()
    batches = after["batches"] - before["batches"]
    res["mean_batch"] = (after["batched_requests"] - before["batched_requests"]) / max(1, batches)
    res["audio_s_per_s"] = res["requests_per_s"] * audio_s
    return res


def main(argv=None) -> dict:
    import ray
    import soundfile as sf

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", default=None, help="a finished RUN (default: untrained networks of --preset)")
    p.add_argument("--preset", default="demo", help="network sizes of the untrained RUN: tiny | demo | paper")
    p.add_argument("--files", type=int, default=6, help="10 s stereo files for the predict throughput")
    p.add_argument("--requests", type=int, default=24)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="predict passes; the best counts")
    p.add_argument("--client", default=None, help=argparse.SUPPRESS)  # the second process
    p.add_argument("--file", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        print(json.dumps(client(args.client, Path(args.file), args.requests, args.concurrency)))
        return {}
    setup_logging()
    run = args.run or str(random_run(args.preset))
    files = sorted((synth_data("tiny") / "tut2017-eval" / "audio").glob("*.wav"))[: args.files]
    audio_s = sum(sf.info(str(f)).duration for f in files)
    res = {"run": run, "preset": None if args.run else args.preset, "files": len(files), "audio_s": audio_s}
    for kind in ("mtl", "ensemble"):
        r = res[kind] = _predict_throughput(run, kind, files, audio_s, args.repeats)
        print(
            f"predict --model {kind} ({r['networks']} network(s), {len(files)} x 10 s stereo, "
            f"{'untrained ' + args.preset if not args.run else run}, best of {args.repeats}): "
            f"{r['audio_s_per_s']:.1f} s audio/s "
            f"(featurization alone {r['featurize_audio_s_per_s']:.1f} s audio/s)",
            flush=True,
        )
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        one = files[0]
        res["serve_batched"] = _serve(run, one, 10.0, args.requests, args.concurrency, max_batch_size=8)
        res["serve_unbatched"] = _serve(run, one, 10.0, args.requests, args.concurrency, max_batch_size=1)
    finally:
        ray.shutdown()
    for name in ("serve_batched", "serve_unbatched"):
        s = res[name]
        print(
            f"serve {name.split('_')[1]} (mtl; {s['requests']} uploads of a 10 s WAV, "
            f"{args.concurrency} at a time, "
            f"second process, loopback): p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, "
            f"{s['requests_per_s']:.2f} requests/s = {s['audio_s_per_s']:.1f} s audio/s, "
            f"mean batch {s['mean_batch']:.1f}, "
            f"{s['ok']}/{s['requests']} ok",
            flush=True,
        )
    res["batching_ratio"] = res["serve_batched"]["requests_per_s"] / res["serve_unbatched"]["requests_per_s"]
    print(f"serve.batch throughput ratio (batched / unbatched): {res['batching_ratio']:.2f}x")
    return res


if __name__ == "__main__":
    main()
