"""``python -m fastapi_stack_auth.emulator --help``."""

import sys

from ._cli import main

sys.exit(main())
