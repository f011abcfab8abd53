"""`python -m raymtl ...`, the same as the `raymtl` console script."""

import sys

from raymtl.cli import main

sys.exit(main())
