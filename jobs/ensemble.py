"""Ray Job entry point: train the ensemble (arguments as `raymtl ensemble`).

    ray job submit --working-dir . -- python jobs/ensemble.py --features s3://bucket/features \
        --out s3://bucket/runs/paper --preset paper
"""

import sys
from pathlib import Path

# The code shipped with `--working-dir .` comes first, before any installed copy of raymtl.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raymtl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["ensemble", *sys.argv[1:]]))
