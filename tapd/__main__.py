"""``python -m tapd`` runs the command line."""

import sys

from tapd.cli import main

sys.exit(main())
