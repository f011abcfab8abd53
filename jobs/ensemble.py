"""Ray Job entry point: train the ensemble (arguments as `raymtl ensemble`).

    ray job submit --working-dir . -- python jobs/ensemble.py --features s3://bucket/features \
        --out s3://bucket/runs/paper --preset paper
"""

import sys

from raymtl.cli import main

if __name__ == "__main__":
    sys.exit(main(["ensemble", *sys.argv[1:]]))
