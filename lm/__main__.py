"""``python -m lm`` runs the CLI."""

from lm.cli import main

main()
