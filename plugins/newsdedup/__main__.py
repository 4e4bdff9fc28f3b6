"""Entry point for python -m newsdedup."""

import sys

from newsdedup.cli import main

# Airflow imports every module under plugins/ when it looks for plugins: only run as a program.
if __name__ == "__main__":
    sys.exit(main())
