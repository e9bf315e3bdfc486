"""`python -m emoedge`: the same entry point as the `emoedge` command (and what `torchrun -m emoedge` runs)."""

import sys

from emoedge.cli import main

if __name__ == "__main__":
    sys.exit(main())
