"""``python -m lsr_utils``: the ``lsr`` command (lsr_utils.apps.cli)."""
import sys

from .apps.cli import main

sys.exit(main())
