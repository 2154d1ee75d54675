"""``python -m agrnet`` (and ``torchrun -m agrnet``) runs the command line."""

import sys

from agrnet.cli import main

sys.exit(main())
