"""`make bench`: every benchmark in turn, each printing its ratio measured in one run."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "benchmarks.bench_featurize",
    "benchmarks.bench_stream",
    "benchmarks.bench_step",
    "benchmarks.bench_train",
    "benchmarks.bench_grid",
    "benchmarks.bench_predict",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(name).main([])
        except Exception as e:  # one broken benchmark must not hide the others' numbers
            print(f"{name} failed: {e!r}", flush=True)
            failed.append(name)
        finally:
            import ray

            ray.shutdown()  # each benchmark starts its own Ray instance
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
