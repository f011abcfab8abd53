"""One ensemble member end to end at the paper's data size: `mtl-ic`, then `finetune-asc` and
`finetune-aec`, in one Ray Train run (as the grid runs a member), with a small network and one
epoch per stage (`benchmarks/presets/full-member.json`): the data path and the stages' fixed
costs at full size, not the paper's training time.

    python -m benchmarks.bench_member --features FEATURES [--out RUN]    (make member-full)

Prints each stage's time split into data preparation (the streams defined and the kept sets
materialized, once for the member; then the time the training loop waited for batches),
training (the rest of the epochs), validation and scoring the test set; from the trials'
metrics.jsonl and result.json. Not in CI: it takes tens of minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from benchmarks.common import BENCH_OUT, setup_logging

PRESET = Path(__file__).parent / "presets" / "full-member.json"
STAGES = ("mtl-ic", "finetune-asc", "finetune-aec")


def main(argv: list[str] | None = None) -> dict:
    import ray

    from raymtl.ray_session import ensure_ray
    from raymtl.train.runner import run_trials
    from raymtl.train.trial import TrialSpec

    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_member", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--features", required=True, help="a FEATURES folder (the full size: raymtl synth --size full)"
    )
    p.add_argument("--out", default=str(BENCH_OUT / "member-full"), help="the RUN folder (replaced)")
    p.add_argument("--variant", choices=("triple", "quadruple"), default="triple")
    args = p.parse_args(argv)
    setup_logging()
    logging.getLogger("raymtl").setLevel(logging.INFO)
    shutil.rmtree(args.out, ignore_errors=True)
    ensure_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    specs = [TrialSpec(e, 1, 1, args.variant) for e in STAGES]
    t0 = time.perf_counter()
    run_trials(specs, args.features, args.out, str(PRESET), name=f"member-d1-r1-{args.variant}")
    total = time.perf_counter() - t0
    rows = {}
    for spec in specs:
        trial = Path(args.out) / "trials" / spec.name
        metrics = [json.loads(line) for line in (trial / "metrics.jsonl").read_text().splitlines()]
        result = json.loads((trial / "result.json").read_text())
        data = sum(m.get("data_s", 0.0) for m in metrics)
        loop = sum(m["seconds"] for m in metrics)
        validate = sum(m.get("validate_s", 0.0) for m in metrics)
        rows[spec.experiment] = {
            "patches": sum(m["patches"] for m in metrics),
            "data_wait_s": round(data, 1),
            "train_s": round(loop - data, 1),
            "validate_s": round(validate, 1),
            "score_s": round(result["seconds"] - loop - validate, 1),
            "test_accuracy": result["test_accuracy"],
        }
    stage_s = sum(r["data_wait_s"] + r["train_s"] + r["validate_s"] + r["score_s"] for r in rows.values())
    print(
        f"bench_member ({args.features}, division 1 repeat 1 {args.variant}, preset full-member): "
        f"{total:.0f} s in all"
    )
    print(
        "  outside the stages (streams defined, kept sets materialized, Ray Train start-up): "
        f"{total - stage_s:.0f} s"
    )
    for name, r in rows.items():
        print(
            f"  {name}: {r['patches']} patches; data wait {r['data_wait_s']:.0f} s, "
            f"training {r['train_s']:.0f} s, validation {r['validate_s']:.0f} s, "
            f"scoring {r['score_s']:.0f} s; test accuracy {r['test_accuracy']}"
        )
    out = {"total_s": round(total, 1), "stages": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
