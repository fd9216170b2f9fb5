"""``python -m jeoparda`` runs the command-line interface."""
import sys

from jeoparda.cli import main

if __name__ == "__main__":  # reader processes (forkserver) import this module again
    sys.exit(main())
