"""``python -m llama_entra.emulator``."""

import sys

from llama_entra.emulator.cli import main

sys.exit(main())
