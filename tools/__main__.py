"""``python -m dockstate.tools`` runs the CLI."""

import sys

from dockstate.tools.cli import main

sys.exit(main())
