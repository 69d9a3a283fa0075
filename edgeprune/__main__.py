"""``python -m edgeprune`` runs the CLI."""

import sys

from edgeprune.cli.main import main

sys.exit(main())
