"""``python -m ehc.cli``."""

from . import main

main()
