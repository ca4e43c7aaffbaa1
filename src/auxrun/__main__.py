"""``python -m auxrun`` = the ``auxrun`` command."""

from .cli import main

main()
