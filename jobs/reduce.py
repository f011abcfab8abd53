"""Ray Job entry point: fuse the members' scores (arguments as `raymtl reduce`).

    ray job submit --working-dir . -- python jobs/reduce.py s3://bucket/runs/paper
"""

import sys

from raymtl.cli import main

if __name__ == "__main__":
    sys.exit(main(["reduce", *sys.argv[1:]]))
