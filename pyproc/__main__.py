"""``python -m pyproc ...`` is the ``pyproc`` command."""
import sys

from .cli import main

sys.exit(main())
