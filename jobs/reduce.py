"""Ray Job entry point: fuse the members' scores (arguments as `raymtl reduce`).

ray job submit --working-dir . -- python jobs/reduce.py s3://bucket/runs/paper
"""

import sys
from pathlib import Path

# The code shipped with `--working-dir .` comes first, before any installed copy of raymtl.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raymtl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["reduce", *sys.argv[1:]]))
