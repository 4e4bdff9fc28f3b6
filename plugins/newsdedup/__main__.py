"""Entry point for python -m newsdedup."""

import sys

from newsdedup.cli import main

sys.exit(main())
