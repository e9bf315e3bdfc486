"""`python -m emoedge`: the same entry point as the `emoedge` command."""

import sys

from emoedge.cli import main

sys.exit(main())
