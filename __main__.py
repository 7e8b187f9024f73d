"""``python -m vidseq``: the same entry point as the ``vidseq`` command."""

import sys

from vidseq.cli import main

sys.exit(main())
