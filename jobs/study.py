"""Ray Job entry point: run the study (arguments as `raymtl study`).

    ray job submit --working-dir . -- python jobs/study.py --features s3://bucket/features \
        --out s3://bucket/runs/paper --preset paper
"""

import sys
from pathlib import Path

# The code shipped with `--working-dir .` comes first, before any installed copy of raymtl.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raymtl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["study", *sys.argv[1:]]))
