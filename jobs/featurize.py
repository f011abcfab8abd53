"""Ray Job entry point: featurize both datasets (arguments as `raymtl featurize`).

    ray job submit --working-dir . -- python jobs/featurize.py --esc s3://.../ESC-50 \
        --tut-dev ... --tut-eval ... --out s3://bucket/features
"""

import sys
from pathlib import Path

# The code shipped with `--working-dir .` comes first, before any installed copy of raymtl.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raymtl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["featurize", *sys.argv[1:]]))
