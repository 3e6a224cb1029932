"""`python -m keyhygiene`: the same program as the `keyhygiene` command.

Child processes (the demo's moto server, scheduled rotations when no
`keyhygiene` script is on the PATH) are started this way.
"""

import os
import sys

from keyhygiene.cli.main import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.exit(main())
