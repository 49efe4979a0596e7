"""``python -m streammix``: the command line program."""

from __future__ import annotations

import sys

from streammix.cli.main import main

sys.exit(main())
