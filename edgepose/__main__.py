"""``python -m edgepose``: the ``edgepose`` command."""

import sys

from .cli import main

sys.exit(main())
