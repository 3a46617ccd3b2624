"""Generic built-in steps: ``route`` and ``deliver``."""
