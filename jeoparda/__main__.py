"""``python -m jeoparda`` runs the command-line interface."""
import sys

from jeoparda.cli import main

sys.exit(main())
