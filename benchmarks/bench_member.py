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


def stage_split(trial: Path) -> dict:
    """A trial's own time from its metrics.jsonl and result.json: data (waiting for batches, and
    a fine-tune's one pass of its frozen layers 1-15, `precompute_s`, which comes before its
    first epoch's `seconds`), training (the rest of the epochs), validation, and scoring the test
    set with recording the trial (the rest of the trial's own `seconds`)."""
    metrics = [json.loads(line) for line in (trial / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((trial / "result.json").read_text())
    data = sum(m.get("data_s", 0.0) for m in metrics)
    precompute = sum(m.get("precompute_s", 0.0) for m in metrics)
    loop = sum(m["seconds"] for m in metrics)
    validate = sum(m.get("validate_s", 0.0) for m in metrics)
    return {
        "patches": sum(m["patches"] for m in metrics),
        "data_wait_s": round(data, 1),
        "precompute_s": round(precompute, 1),
        "train_s": round(loop - (data - precompute), 1),
        "validate_s": round(validate, 1),
        "score_s": round(result["seconds"] - loop - validate - precompute, 1),
        "test_accuracy": result["test_accuracy"],
    }


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
    p.add_argument(
        "--summarize",
        action="store_true",
        help="only print the time split of the member already trained in --out (no training)",
    )
    args = p.parse_args(argv)
    setup_logging()
    logging.getLogger("raymtl").setLevel(logging.INFO)
    specs = [TrialSpec(e, 1, 1, args.variant) for e in STAGES]
    total = None
    if not args.summarize:
        shutil.rmtree(args.out, ignore_errors=True)
        ensure_ray()
        ray.data.DataContext.get_current().enable_progress_bars = False
        t0 = time.perf_counter()
        run_trials(specs, args.features, args.out, str(PRESET), name=f"member-d1-r1-{args.variant}")
        total = time.perf_counter() - t0
    rows = {spec.experiment: stage_split(Path(args.out) / "trials" / spec.name) for spec in specs}
    stage_s = sum(r["data_wait_s"] + r["train_s"] + r["validate_s"] + r["score_s"] for r in rows.values())
    print(f"bench_member ({args.features}, division 1 repeat 1 {args.variant}, preset full-member):")
    if total is not None:
        print(
            f"  {total:.0f} s in all; outside the stages (streams defined, kept sets materialized, "
            f"Ray Train start-up): {total - stage_s:.0f} s"
        )
    for name, r in rows.items():
        print(
            f"  {name}: {r['patches']} patches; data {r['data_wait_s']:.0f} s (of which layers 1-15 "
            f"computed once: {r['precompute_s']:.0f} s), training {r['train_s']:.0f} s, "
            f"validation {r['validate_s']:.0f} s, scoring and recording {r['score_s']:.0f} s; "
            f"test accuracy {r['test_accuracy']}"
        )
    out = {"total_s": None if total is None else round(total, 1), "stages": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
