"""``python -m sluice`` runs the ``sluice`` command."""

from sluice.cli.main import main

main()
