"""The whole ``qeuopt`` command: ``main`` parses and dispatches; ``ratings`` and
``analysis`` add their subcommands. ``python -m qeuopt`` runs it too."""

from qeuopt.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
