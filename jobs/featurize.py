"""Ray Job entry point: featurize both datasets (arguments as `raymtl featurize`).

    ray job submit --working-dir . -- python jobs/featurize.py --esc s3://.../ESC-50 \
        --tut-dev ... --tut-eval ... --out s3://bucket/features
"""

import sys

from raymtl.cli import main

if __name__ == "__main__":
    sys.exit(main(["featurize", *sys.argv[1:]]))
